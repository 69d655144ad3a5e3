//! upload-pack, protocol v0/v1: what is advertised, and the plan for one
//! stateless POST (acknowledgments, shallow lines, the pack-objects run).

/// The capabilities gitpat's upload-pack implements with either engine
/// (symref and agent are added by the advertisement).
const CAPABILITIES: &[&str] = &[
    "multi_ack_detailed",
    "no-done",
    "side-band-64k",
    "thin-pack",
    "ofs-delta",
    "shallow",
    "deepen-since",
    "deepen-not",
    "deepen-relative",
    "no-progress",
    "include-tag",
    "allow-tip-sha1-in-want",
    "allow-reachable-sha1-in-want",
    "object-format=sha1",
];

/// The capabilities to advertise: `filter` only when the pack engine can
/// apply filters (git pack-objects can; libgit2 cannot).
pub fn capabilities(filter: bool) -> Vec<&'static str> {
    let mut caps = CAPABILITIES.to_vec();
    if filter {
        caps.insert(caps.len() - 1, "filter");
    }
    caps
}

use git2::Repository;

use crate::git::negotiate::{self, NegotiateError, ShallowUpdate};
use crate::git::pack_objects::{self, PackObjectsCommand};
use crate::git::pktline;
use crate::git::refs::RefCache;
use crate::git::upload_request::{self, RequestError, UploadRequest};

/// git caps an upload-pack request at 10 MiB (after inflating); so do we.
pub const MAX_REQUEST_BYTES: u64 = 10 * 1024 * 1024;

/// What to answer a v0/v1 upload-pack POST.
#[derive(Debug)]
pub enum Plan {
    /// The whole reply: acknowledgments (and shallow lines), no pack yet;
    /// or an `ERR` packet.
    Reply(Vec<u8>),
    /// `preamble` (shallow lines, acknowledgments), then the pack of
    /// `spec`, through side-band when `side_band` says so.
    Pack {
        preamble: Vec<u8>,
        spec: Box<PackSpec>,
        side_band: SideBand,
        progress: bool,
    },
}

/// What goes in the pack, for either engine.
#[derive(Debug)]
pub struct PackSpec {
    pub req: UploadRequest,
    /// The client's haves we hold.
    pub common: Vec<git2::Oid>,
    pub shallow: ShallowUpdate,
}

impl PackSpec {
    /// The `git pack-objects` run that makes this pack.
    pub fn git_command(&self, progress: bool) -> PackObjectsCommand {
        pack_objects::pack_objects_command(&self.req, &self.common, &self.shallow, progress)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideBand {
    None,
    /// `side-band`: packets of at most 1000 bytes.
    Small,
    /// `side-band-64k`.
    Large,
}

/// A request git would not send: HTTP 400 with this text.
#[derive(Debug)]
pub struct BadRequest(pub String);

fn err_reply(msg: &str) -> Plan {
    let mut out = Vec::new();
    pktline::write_err(&mut out, msg);
    Plan::Reply(out)
}

/// Works out the reply to one stateless v0 request against `repo`: want
/// validation, the shallow boundary, the acknowledgments, and whether (and
/// how) to send the pack.
pub fn plan_v0(repo: &Repository, cache: &RefCache, body: &[u8]) -> Result<Plan, BadRequest> {
    let req = upload_request::parse_v0(body).map_err(|e: RequestError| BadRequest(e.to_string()))?;
    if req.wants.is_empty() {
        // The probe git sends before a large (chunked) request.
        return Ok(Plan::Reply(Vec::new()));
    }
    if let Some(spec) = &req.filter {
        if let Err(e) = pack_objects::validate_filter(spec) {
            return Ok(err_reply(&format!("upload-pack: {e}")));
        }
    }
    let refs = match cache.get(repo.path()) {
        Ok(r) => r,
        Err(e) => return Ok(err_reply(&format!("upload-pack: cannot read refs: {e}"))),
    };
    if let Err(e) = negotiate::validate_wants(repo, &req.wants, &refs.tips) {
        return Ok(err_reply(&e.to_string()));
    }
    let visible = |_: &str| true;
    let shallow = match negotiate::compute_shallow(repo, &req, &visible) {
        Ok(s) => s,
        Err(e @ NegotiateError::NotOurRef(_)) => return Ok(err_reply(&e.to_string())),
        Err(e) => return Ok(err_reply(&format!("upload-pack: {e}"))),
    };
    let mut preamble = Vec::new();
    if req.is_deepen() {
        negotiate::write_shallow_v0(&mut preamble, &shallow).map_err(|e| BadRequest(e.to_string()))?;
    }
    if req.wants_only {
        return Ok(Plan::Reply(preamble));
    }
    let n = negotiate::negotiate_v0(repo, &req.wants, &req.haves, req.done, &req.options);
    negotiate::write_acks(&mut preamble, &n.acks).map_err(|e| BadRequest(e.to_string()))?;
    if !n.send_pack {
        return Ok(Plan::Reply(preamble));
    }
    Ok(pack_plan(req, n.common, shallow, preamble))
}

fn pack_plan(req: UploadRequest, common: Vec<git2::Oid>, shallow: ShallowUpdate, preamble: Vec<u8>) -> Plan {
    let side_band = if req.options.side_band_64k {
        SideBand::Large
    } else if req.options.side_band {
        SideBand::Small
    } else {
        SideBand::None
    };
    let progress = side_band != SideBand::None && !req.options.no_progress;
    Plan::Pack {
        preamble,
        spec: Box::new(PackSpec { req, common, shallow }),
        side_band,
        progress,
    }
}

/// Frames a chunk of pack data (or progress) for the client.
pub fn frame(side_band: SideBand, band: pktline::Band, data: &[u8]) -> Vec<u8> {
    match side_band {
        SideBand::None => {
            if band == pktline::Band::Data {
                data.to_vec()
            } else {
                Vec::new()
            }
        }
        SideBand::Large => {
            let mut out = Vec::with_capacity(data.len() + 16);
            pktline::write_sideband(&mut out, band, data);
            out
        }
        SideBand::Small => {
            let mut out = Vec::with_capacity(data.len() + 16);
            for chunk in data.chunks(995) {
                pktline::write_sideband(&mut out, band, chunk);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_is_advertised_only_when_it_works() {
        assert!(capabilities(true).contains(&"filter"));
        assert!(!capabilities(false).contains(&"filter"));
        assert_eq!(capabilities(true).last(), Some(&"object-format=sha1"));
    }

    #[test]
    fn side_band_framing() {
        let data = vec![7u8; 2000];
        assert_eq!(frame(SideBand::None, pktline::Band::Data, &data), data);
        assert!(frame(SideBand::None, pktline::Band::Progress, b"x").is_empty());
        let small = frame(SideBand::Small, pktline::Band::Data, &data);
        let packets = pktline::decode_all(&small).unwrap();
        assert_eq!(packets.len(), 3, "side-band packets carry at most 995 bytes");
        let large = frame(SideBand::Large, pktline::Band::Progress, &data);
        assert_eq!(&large[..5], b"07d5\x02");
    }
}
