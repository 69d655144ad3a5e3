//! upload-pack, protocol v2: the capability advertisement and the reply
//! to one stateless command request (`ls-refs`, `fetch`, `object-info`).
//!
//! A `fetch` reply is built as git's upload-pack builds it: without `done`
//! and with haves, an `acknowledgments` section, then (when ready) a delim;
//! then `shallow-info` when the client is or becomes shallow, `wanted-refs`
//! for `want-ref`s, and `packfile` followed by the pack on side-band-64k.
//! Errors the client should show go out as an `ERR` packet.

use git2::{Oid, Repository};

use std::sync::Arc;

use crate::git::advertise::{self, LsRefsArgs};
use crate::git::negotiate::{self, NegotiateError};
use crate::git::pack_objects;
use crate::git::pktline;
use crate::git::refs::{RefCache, Refs};
use crate::git::upload_pack::{BadRequest, PackSpec, Plan, SideBand};
use crate::git::upload_request::{self, CommandRequest};

/// The v2 capabilities (after `version 2` and `agent=`), in git's order.
/// `filter` only when the pack engine can apply filters; `session_id`
/// names this server's side of the session.
pub fn capabilities(filter: bool, session_id: &str) -> Vec<String> {
    let fetch = if filter {
        "fetch=shallow wait-for-done filter"
    } else {
        "fetch=shallow wait-for-done"
    };
    vec![
        "ls-refs=unborn".to_string(),
        fetch.to_string(),
        "server-option".to_string(),
        "object-format=sha1".to_string(),
        "object-info".to_string(),
        format!("session-id={session_id}"),
    ]
}

/// The `info/refs` body for a v2 client: no `# service=` header (git's
/// http-backend sends none in v2), the capabilities, a flush.
pub fn advertisement(filter: bool, session_id: &str, agent: &str) -> Result<Vec<u8>, advertise::AdvertiseError> {
    let caps = capabilities(filter, session_id);
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    advertise::capabilities_v2(&caps, agent)
}

fn err_reply(msg: &str) -> Plan {
    let mut out = Vec::new();
    pktline::write_err(&mut out, msg);
    Plan::Reply(out)
}

fn bad(e: impl std::fmt::Display) -> BadRequest {
    BadRequest(e.to_string())
}

/// Works out the reply to one v2 command request against `repo`. `filter`
/// says whether the pack engine can apply filters. A body that is not
/// pkt-lines at all is a [`BadRequest`] (HTTP 400); a well-framed request
/// git would refuse gets an `ERR` packet.
pub fn plan_v2(repo: &Repository, cache: &RefCache, body: &[u8], filter: bool) -> Result<Plan, BadRequest> {
    let req = match upload_request::parse_v2(body) {
        Ok(Some(r)) => r,
        // A lone flush: nothing to do.
        Ok(None) => return Ok(Plan::Reply(Vec::new())),
        Err(upload_request::RequestError::Pkt(e)) => return Err(bad(e)),
        Err(e) => return Ok(err_reply(&format!("upload-pack: {e}"))),
    };
    if let Some(msg) = check_capabilities(&req) {
        return Ok(err_reply(&msg));
    }
    match req.command.as_str() {
        "ls-refs" => ls_refs(repo, cache, &req),
        "fetch" => fetch(repo, cache, &req, filter),
        "object-info" => object_info(repo, &req),
        other => Ok(err_reply(&format!("upload-pack: invalid command '{other}'"))),
    }
}

/// The capability lines of a request: `agent=`, `session-id=`,
/// `server-option=` (accepted and ignored) and `object-format=sha1`.
fn check_capabilities(req: &CommandRequest) -> Option<String> {
    for cap in &req.capabilities {
        let (name, value) = cap.split_once('=').unwrap_or((cap.as_str(), ""));
        match name {
            "agent" | "session-id" | "server-option" => {}
            "object-format" if value == "sha1" => {}
            "object-format" => return Some(format!("upload-pack: mismatched object format: {value}")),
            _ => return Some(format!("upload-pack: unexpected capability '{cap}'")),
        }
    }
    None
}

/// The refs `keep` accepts (and perhaps others), or the `ERR` reply.
fn read_refs(repo: &Repository, cache: &RefCache, keep: &dyn Fn(&str) -> bool) -> Result<Arc<Refs>, Plan> {
    cache
        .get_matching(repo.path(), keep)
        .map_err(|e| err_reply(&format!("upload-pack: cannot read refs: {e}")))
}

fn ls_refs(repo: &Repository, cache: &RefCache, req: &CommandRequest) -> Result<Plan, BadRequest> {
    let args = match LsRefsArgs::parse(&req.args) {
        Ok(a) => a,
        Err(e) => return Ok(err_reply(&format!("ls-refs: {e}"))),
    };
    let refs = match read_refs(repo, cache, &|name| args.matches(name)) {
        Ok(r) => r,
        Err(plan) => return Ok(plan),
    };
    advertise::ls_refs(&refs.list, &args).map(Plan::Reply).map_err(bad)
}

/// `object-info`: `size` and `oid <oid>` arguments; the reply echoes the
/// attributes asked, then `<oid> <size>` per object (`<oid> ` when the
/// repository has no such object), then a flush.
fn object_info(repo: &Repository, req: &CommandRequest) -> Result<Plan, BadRequest> {
    let mut size = false;
    let mut oids = Vec::new();
    for arg in &req.args {
        if arg == "size" {
            size = true;
        } else if let Some(hex) = arg.strip_prefix("oid ") {
            match Oid::from_str(hex) {
                Ok(o) if hex.len() == 40 => oids.push((hex.to_string(), o)),
                _ => {
                    return Ok(err_reply(&format!(
                        "object-info: protocol error, expected to get oid, not '{hex}'"
                    )))
                }
            }
        } else {
            return Ok(err_reply(&format!("object-info: unexpected line: '{arg}'")));
        }
    }
    let mut out = Vec::new();
    if !oids.is_empty() {
        let odb = repo.odb().map_err(bad)?;
        if size {
            pktline::write_line(&mut out, "size").map_err(bad)?;
        }
        for (hex, oid) in &oids {
            let mut line = hex.clone();
            if size {
                match odb.read_header(*oid) {
                    Ok((n, _)) => line.push_str(&format!(" {n}")),
                    Err(_) => line.push(' '),
                }
            }
            pktline::write_line(&mut out, &line).map_err(bad)?;
        }
    }
    pktline::write_flush(&mut out);
    Ok(Plan::Reply(out))
}

fn fetch(repo: &Repository, cache: &RefCache, cmd: &CommandRequest, filter_ok: bool) -> Result<Plan, BadRequest> {
    let mut req = match upload_request::parse_fetch_args(&cmd.args) {
        Ok(r) => r,
        Err(e) => return Ok(err_reply(&format!("upload-pack: {e}"))),
    };
    if let Some(spec) = &req.filter {
        if !filter_ok {
            return Ok(err_reply("upload-pack: filtering not recognized by server"));
        }
        if let Err(e) = pack_objects::validate_filter(spec) {
            return Ok(err_reply(&format!("upload-pack: {e}")));
        }
    }
    let refs = match read_refs(repo, cache, &|_| true) {
        Ok(r) => r,
        Err(plan) => return Ok(plan),
    };
    // want-ref: the ref must exist; its object joins the wants.
    let mut wanted_refs = Vec::new();
    for name in &req.want_refs {
        match refs.find(name).filter(|_| name.starts_with("refs/")) {
            Some(r) => match r.oid() {
                Some(oid) => wanted_refs.push((oid, name.clone())),
                None => return Ok(err_reply(&format!("upload-pack: unknown ref {name}"))),
            },
            None => return Ok(err_reply(&format!("upload-pack: unknown ref {name}"))),
        }
    }
    req.wants.extend(wanted_refs.iter().map(|(oid, _)| *oid));
    let acks_only = req.options.wait_for_done && !req.haves.is_empty();
    if req.wants.is_empty() && !acks_only {
        // Nothing wanted: git ends the response without a word.
        return Ok(Plan::Reply(Vec::new()));
    }
    if let Err(e) = negotiate::validate_wants(repo, &req.wants, &refs.tips) {
        return Ok(err_reply(&e.to_string()));
    }

    let mut preamble = Vec::new();
    let common = if negotiate::v2_sends_acknowledgments(&req) {
        let n = negotiate::negotiate_v2(repo, &req.wants, &req.haves, req.options.wait_for_done);
        negotiate::write_acknowledgments(&mut preamble, &n).map_err(bad)?;
        if !n.ready {
            pktline::write_flush(&mut preamble);
            return Ok(Plan::Reply(preamble));
        }
        pktline::write_delim(&mut preamble);
        n.common
    } else {
        // `done` (or no haves): the common haves still bound the pack.
        negotiate::negotiate_v2(repo, &req.wants, &req.haves, true).common
    };

    let visible = |_: &str| true;
    let shallow = match negotiate::compute_shallow(repo, &req, &visible) {
        Ok(s) => s,
        Err(e @ NegotiateError::NotOurRef(_)) => return Ok(err_reply(&e.to_string())),
        Err(e) => return Ok(err_reply(&format!("upload-pack: {e}"))),
    };
    if req.is_deepen() || !req.shallows.is_empty() || shallow.repo_is_shallow {
        pktline::write_line(&mut preamble, "shallow-info").map_err(bad)?;
        negotiate::write_shallow_lines(&mut preamble, &shallow).map_err(bad)?;
        pktline::write_delim(&mut preamble);
    }
    if !wanted_refs.is_empty() {
        pktline::write_line(&mut preamble, "wanted-refs").map_err(bad)?;
        for (oid, name) in &wanted_refs {
            pktline::write_line(&mut preamble, &format!("{oid} {name}")).map_err(bad)?;
        }
        pktline::write_delim(&mut preamble);
    }
    pktline::write_line(&mut preamble, "packfile").map_err(bad)?;
    let progress = !req.options.no_progress;
    Ok(Plan::Pack {
        preamble,
        spec: Box::new(PackSpec { req, common, shallow }),
        side_band: SideBand::Large,
        progress,
    })
}

/// Whether a `Git-Protocol` header value asks for v2: colon-separated
/// `key=value` pairs, one of them `version=2`.
pub fn wants_v2(git_protocol: Option<&str>) -> bool {
    git_protocol.is_some_and(|v| v.split(':').any(|kv| kv.trim() == "version=2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_git_protocol_header_asks_for_v2() {
        assert!(wants_v2(Some("version=2")));
        assert!(wants_v2(Some("object-format=sha1:version=2")));
        assert!(!wants_v2(None));
        assert!(!wants_v2(Some("version=1")));
        assert!(!wants_v2(Some("version=20")));
        assert!(!wants_v2(Some("xversion=2")));
    }

    /// Each payload of `out` as text, LF kept, up to and including the
    /// `packfile` header; runs of shallow lines sorted (git's order follows
    /// its traversal, and clients do not care).
    fn sections(mut out: &[u8]) -> Vec<String> {
        use crate::git::pktline::{decode, Packet};
        let mut v: Vec<String> = Vec::new();
        while let Ok(Some((p, used))) = decode(out) {
            out = &out[used..];
            let text = match p {
                Packet::Data(d) => String::from_utf8_lossy(d).into_owned(),
                Packet::Delim => "<delim>".into(),
                Packet::Flush => "<flush>".into(),
                Packet::ResponseEnd => "<end>".into(),
            };
            let end = text == "packfile\n";
            v.push(text);
            if end {
                break;
            }
        }
        let mut i = 0;
        while i < v.len() {
            let start = i;
            while i < v.len() && v[i].starts_with("shallow ") {
                i += 1;
            }
            v[start..i].sort();
            i += 1;
        }
        v
    }

    #[test]
    fn a_shallow_repositorys_shallow_info_matches_git() {
        use crate::git::test_fixtures::{git, git_io, history_repo};
        let src = history_repo();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", src.path().display());
        git(
            dir.path(),
            &["clone", "-q", "--bare", "--depth", "2", "--no-single-branch", &url, "."],
        );
        let repo = Repository::open(dir.path()).unwrap();
        let tips: Vec<String> = git(dir.path(), &["for-each-ref", "--format=%(objectname)", "refs/heads"])
            .lines()
            .map(str::to_string)
            .collect();
        // deepen-since the newest tip's date, and deepen-not another branch.
        let since = git(dir.path(), &["log", "-1", "--format=%ct", tips[0].as_str()]);
        let since = format!("deepen-since {}", since.trim());
        let branches: Vec<String> = git(dir.path(), &["for-each-ref", "--format=%(refname)", "refs/heads"])
            .lines()
            .map(str::to_string)
            .collect();
        let not = format!("deepen-not {}", branches.last().expect("a branch"));
        let extras: Vec<Vec<&str>> = vec![vec![], vec!["deepen 1"], vec!["deepen 3"], vec![&since], vec![&not]];
        for extra in &extras {
            let mut body = Vec::new();
            for l in ["command=fetch", "object-format=sha1"] {
                pktline::write_line(&mut body, l).unwrap();
            }
            pktline::write_delim(&mut body);
            for t in &tips {
                pktline::write_line(&mut body, &format!("want {t}")).unwrap();
            }
            for l in extra.iter().copied().chain(["ofs-delta", "no-progress", "done"]) {
                pktline::write_line(&mut body, l).unwrap();
            }
            pktline::write_flush(&mut body);
            let (theirs, ok) = git_io(
                dir.path(),
                &["upload-pack", "--stateless-rpc", "."],
                &[("GIT_PROTOCOL", "version=2")],
                &body,
            );
            assert!(ok);
            let Ok(Plan::Pack { preamble, .. }) = plan_v2(&repo, &RefCache::default(), &body, true) else {
                panic!("{extra:?}: no pack planned");
            };
            let theirs = sections(&theirs);
            assert!(
                theirs.first().is_some_and(|l| l == "shallow-info\n"),
                "{extra:?}: {theirs:?}"
            );
            assert_eq!(sections(&preamble), theirs, "{extra:?}");
        }
    }

    #[test]
    fn filter_is_advertised_only_when_it_works() {
        assert!(capabilities(true, "s").contains(&"fetch=shallow wait-for-done filter".to_string()));
        assert!(capabilities(false, "s").contains(&"fetch=shallow wait-for-done".to_string()));
        let body = advertisement(false, "sid", "gitpat/1").unwrap();
        assert!(body.starts_with(b"000eversion 2\n0013agent=gitpat/1\n"));
        assert!(body.ends_with(b"0013session-id=sid\n0000"));
    }
}
