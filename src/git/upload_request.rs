//! Parsing of upload-pack request bodies: the v0/v1 stateless request
//! (wants, shallow and deepen lines, filter, flush, haves, flush or done)
//! and the protocol v2 command request (`command=`, capabilities, `0001`,
//! arguments, `0000`), including the arguments of v2 `fetch`.
//!
//! The body is fully buffered (git caps it at 10 MiB); parsing is pure.

use std::fmt;

use git2::Oid;

use crate::git::pktline::{self, Packet, PktError};

/// A request parsing error. The text of each is what the client is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Bad pkt-line framing, or a body that ends inside a packet.
    Pkt(PktError),
    /// A line that is not UTF-8.
    NotUtf8,
    /// A `want`/`have`/`shallow` line whose object id is not 40 hex digits.
    BadOid(String),
    /// A line this parser does not know in that section.
    UnknownCommand(String),
    /// `deepen` with a value that is not a positive integer.
    InvalidDeepen(String),
    /// `deepen-since` with a value that is not a positive timestamp.
    InvalidDeepenSince(String),
    /// `deepen` together with `deepen-since` or `deepen-not`.
    DeepenConflict,
    /// The body ended before the flush (or `done`) that closes a section.
    MissingFlush,
    /// A delim or response-end packet where none belongs.
    UnexpectedPacket,
    /// A v2 request without `command=`, or with two.
    BadCommand(String),
    /// More lines of one kind than a request may hold.
    TooMany(&'static str, usize),
    /// So many short lines that holding them would cost more than twice
    /// the request's size.
    TooCostly,
}

/// The most of each kind of line one request may hold (each costs memory
/// beyond its bytes: capped, a request holds at most about twice its size).
pub const MAX_CAPABILITIES: usize = 1024;
pub const MAX_LINES: usize = 500_000;
/// What a v2 request's lines may cost beyond twice its size.
const LINE_BUDGET_SLACK: usize = 64 * 1024;

fn capped<T>(v: &mut Vec<T>, max: usize, what: &'static str, item: T) -> Result<(), RequestError> {
    if v.len() >= max {
        return Err(RequestError::TooMany(what, max));
    }
    v.push(item);
    Ok(())
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Pkt(e) => write!(f, "{e}"),
            RequestError::TooMany(what, max) => write!(f, "protocol error: more than {max} {what} in one request"),
            RequestError::TooCostly => write!(f, "protocol error: the request holds too many short lines"),
            RequestError::NotUtf8 => write!(f, "protocol error: line is not UTF-8"),
            RequestError::BadOid(l) => {
                write!(f, "protocol error, expected to get object ID, not '{l}'")
            }
            RequestError::UnknownCommand(l) => write!(f, "protocol error: unexpected '{l}'"),
            RequestError::InvalidDeepen(l) => write!(f, "Invalid deepen: {l}"),
            RequestError::InvalidDeepenSince(l) => write!(f, "Invalid deepen-since: {l}"),
            RequestError::DeepenConflict => {
                write!(f, "deepen and deepen-since (or deepen-not) cannot be used together")
            }
            RequestError::MissingFlush => write!(f, "protocol error: expected flush packet"),
            RequestError::UnexpectedPacket => write!(f, "protocol error: unexpected packet"),
            RequestError::BadCommand(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<PktError> for RequestError {
    fn from(e: PktError) -> Self {
        RequestError::Pkt(e)
    }
}

/// What the client asked for in a fetch, in v0 (from capabilities on the
/// want lines) or v2 (from arguments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchOptions {
    pub multi_ack: bool,
    pub multi_ack_detailed: bool,
    pub no_done: bool,
    pub side_band: bool,
    pub side_band_64k: bool,
    pub thin_pack: bool,
    pub ofs_delta: bool,
    pub include_tag: bool,
    pub no_progress: bool,
    /// v2 only: do not send `ready` before the client says `done`.
    pub wait_for_done: bool,
}

/// A parsed upload-pack fetch request (v0/v1 body, or v2 `fetch` args).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadRequest {
    /// Objects wanted, in request order (duplicates kept).
    pub wants: Vec<Oid>,
    /// v2 `want-ref <ref>` names.
    pub want_refs: Vec<String>,
    /// v0: every capability word found on want lines, in order.
    pub capabilities: Vec<String>,
    /// The client's current shallow boundary.
    pub shallows: Vec<Oid>,
    /// `deepen N` (N > 0).
    pub depth: Option<u32>,
    /// `deepen-since T` (seconds since the epoch, > 0).
    pub deepen_since: Option<i64>,
    /// `deepen-not <ref>` names, as sent.
    pub deepen_not: Vec<String>,
    /// Depth counts from the client's shallow boundary, not from the wants.
    pub deepen_relative: bool,
    /// `filter <spec>`, verbatim.
    pub filter: Option<String>,
    /// Objects the client has, in request order.
    pub haves: Vec<Oid>,
    /// The client said `done`: send the pack whatever the negotiation says.
    pub done: bool,
    /// v0: the body ended right after the want section's flush, with no
    /// have section at all (a shallow client's first round): the answer is
    /// the shallow section alone.
    pub wants_only: bool,
    pub options: FetchOptions,
}

impl UploadRequest {
    /// True if the v0 capability `name` (or `name=value`) was sent.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capability(name).is_some()
    }

    /// The value of a v0 `name=value` capability, `""` for a bare `name`.
    pub fn capability(&self, name: &str) -> Option<&str> {
        self.capabilities.iter().find_map(|c| {
            if c == name {
                Some("")
            } else {
                c.strip_prefix(name)?.strip_prefix('=')
            }
        })
    }

    /// True when the client asked for any deepening.
    pub fn is_deepen(&self) -> bool {
        self.depth.is_some() || self.deepen_since.is_some() || !self.deepen_not.is_empty()
    }

    /// Fill `options` from the v0 capabilities.
    fn options_from_capabilities(&mut self) {
        let has = |n: &str| self.has_capability(n);
        let options = FetchOptions {
            multi_ack: has("multi_ack"),
            multi_ack_detailed: has("multi_ack_detailed"),
            no_done: has("no-done"),
            side_band: has("side-band"),
            side_band_64k: has("side-band-64k"),
            thin_pack: has("thin-pack"),
            ofs_delta: has("ofs-delta"),
            include_tag: has("include-tag"),
            no_progress: has("no-progress"),
            wait_for_done: false,
        };
        let deepen_relative = has("deepen-relative");
        self.options = options;
        self.deepen_relative |= deepen_relative;
    }

    /// Reject `deepen` combined with `deepen-since`/`deepen-not`, as git does.
    fn check_deepen(&self) -> Result<(), RequestError> {
        let by_rev_list = self.deepen_since.is_some() || !self.deepen_not.is_empty();
        if self.depth.is_some() && by_rev_list {
            return Err(RequestError::DeepenConflict);
        }
        Ok(())
    }
}

/// Parse `<40 hex>` exactly.
fn parse_oid(hex: &str, line: &str) -> Result<Oid, RequestError> {
    let ok = hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let bad = || RequestError::BadOid(line.to_string());
    if !ok {
        return Err(bad());
    }
    Oid::from_str(hex).map_err(|_| bad())
}

/// The text of a data packet without its trailing newline.
fn text<'a>(packet: &Packet<'a>) -> Result<Option<&'a str>, RequestError> {
    match packet.line() {
        Some(bytes) => std::str::from_utf8(bytes).map(Some).map_err(|_| RequestError::NotUtf8),
        None => Ok(None),
    }
}

/// Apply one shallow/deepen/filter line shared by v0 and v2. Returns
/// `Ok(false)` when `line` is none of them.
fn parse_shallow_line(req: &mut UploadRequest, line: &str) -> Result<bool, RequestError> {
    if let Some(hex) = line.strip_prefix("shallow ") {
        capped(&mut req.shallows, MAX_LINES, "shallow lines", parse_oid(hex, line)?)?;
    } else if let Some(n) = line.strip_prefix("deepen ") {
        let depth: u32 = n.parse().map_err(|_| RequestError::InvalidDeepen(line.to_string()))?;
        if depth == 0 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::InvalidDeepen(line.to_string()));
        }
        req.depth = Some(depth);
    } else if let Some(t) = line.strip_prefix("deepen-since ") {
        let since: i64 = t
            .parse()
            .map_err(|_| RequestError::InvalidDeepenSince(line.to_string()))?;
        if since <= 0 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::InvalidDeepenSince(line.to_string()));
        }
        req.deepen_since = Some(since);
    } else if let Some(r) = line.strip_prefix("deepen-not ") {
        capped(&mut req.deepen_not, MAX_CAPABILITIES, "deepen-not lines", r.to_string())?;
    } else if let Some(spec) = line.strip_prefix("filter ") {
        req.filter = Some(spec.to_string());
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// Parse one v0 `want <oid>[ caps]` line into `req`.
fn parse_want_v0(req: &mut UploadRequest, line: &str, rest: &str) -> Result<(), RequestError> {
    let (hex, caps) = rest.split_once(' ').unwrap_or((rest, ""));
    capped(&mut req.wants, MAX_LINES, "wants", parse_oid(hex, line)?)?;
    for c in caps.split(' ').filter(|c| !c.is_empty()) {
        capped(&mut req.capabilities, MAX_CAPABILITIES, "capabilities", c.to_string())?;
    }
    Ok(())
}

/// Parse a v0/v1 stateless upload-pack request body.
///
/// Layout: want/shallow/deepen*/filter lines, flush, then have lines ended
/// by a flush or `done`. A body whose first section has no want (git's
/// probe `0000`) parses to a request with no wants: nothing to do.
/// Well-framed packets after the closing flush or `done` are ignored, as
/// git stops reading there; the whole body must still be valid pkt-lines. Guarantees: every want/have/shallow is a well-formed object id,
/// `deepen` > 0, and `deepen` is not mixed with `deepen-since`/`deepen-not`.
pub fn parse_v0(body: &[u8]) -> Result<UploadRequest, RequestError> {
    let mut iter = pktline::packets(body).peekable();
    let mut req = UploadRequest::default();
    loop {
        let packet = iter.next().ok_or(RequestError::MissingFlush)??;
        let Some(line) = text(&packet)? else {
            if packet == Packet::Flush {
                break;
            }
            return Err(RequestError::UnexpectedPacket);
        };
        if let Some(rest) = line.strip_prefix("want ") {
            parse_want_v0(&mut req, line, rest)?;
        } else if !parse_shallow_line(&mut req, line)? {
            return Err(RequestError::UnknownCommand(line.to_string()));
        }
    }
    req.options_from_capabilities();
    req.check_deepen()?;
    if req.wants.is_empty() {
        return Ok(req);
    }
    if iter.peek().is_none() {
        req.wants_only = true;
        return Ok(req);
    }
    let mut end = false;
    for packet in iter {
        let packet = packet?;
        // Packets after the end are framed (checked) but ignored.
        if end {
            continue;
        }
        let Some(line) = text(&packet)? else {
            if packet == Packet::Flush {
                end = true;
                continue;
            }
            return Err(RequestError::UnexpectedPacket);
        };
        if line == "done" {
            req.done = true;
            end = true;
            continue;
        }
        match line.strip_prefix("have ") {
            Some(hex) => capped(&mut req.haves, MAX_LINES, "haves", parse_oid(hex, line)?)?,
            None => return Err(RequestError::UnknownCommand(line.to_string())),
        }
    }
    if end {
        Ok(req)
    } else {
        Err(RequestError::MissingFlush)
    }
}

/// A protocol v2 command request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandRequest {
    /// The value of `command=` (`ls-refs`, `fetch`, ...), not checked.
    pub command: String,
    /// The other lines before the delimiter (`agent=...`,
    /// `object-format=sha1`, `server-option=...`), verbatim.
    pub capabilities: Vec<String>,
    /// The argument lines after the delimiter, without newlines.
    pub args: Vec<String>,
}

/// Parse a v2 command request: `command=<name>` and capability lines (in
/// any order), an optional `0001` followed by argument lines, then `0000`.
///
/// Returns `Ok(None)` for a body that is a lone flush (git ends the
/// session quietly). Anything after the closing flush is ignored. Exactly
/// one `command=` must be present.
pub fn parse_v2(body: &[u8]) -> Result<Option<CommandRequest>, RequestError> {
    let mut packets = pktline::packets(body).peekable();
    if matches!(packets.peek(), Some(Ok(Packet::Flush))) {
        // What follows must still be framed right.
        return packets.try_for_each(|p| p.map(drop)).map(|()| None).map_err(Into::into);
    }
    let mut req = CommandRequest::default();
    let mut command = None;
    let mut in_args = false;
    let mut closed = false;
    // What keeping the lines costs (each a String in a Vec that may have
    // twice the room), at most about twice the request's own size.
    let budget = 2 * body.len() + LINE_BUDGET_SLACK;
    let mut cost = 0usize;
    while let Some(packet) = packets.next() {
        let packet = packet?;
        match (&packet, in_args) {
            (Packet::Flush, _) => {
                closed = true;
                // Anything after is ignored, but must be framed right.
                packets.try_for_each(|p| p.map(drop))?;
                break;
            }
            (Packet::Delim, false) => in_args = true,
            (Packet::Data(_), _) => {
                let line = text(&packet)?.unwrap_or_default().to_string();
                cost += 2 * std::mem::size_of::<String>() + line.len();
                if cost > budget {
                    return Err(RequestError::TooCostly);
                }
                if in_args {
                    capped(&mut req.args, MAX_LINES, "arguments", line)?;
                } else if let Some(name) = line.strip_prefix("command=") {
                    if command.replace(name.to_string()).is_some() {
                        return Err(RequestError::BadCommand("command supplied twice".into()));
                    }
                } else {
                    capped(&mut req.capabilities, MAX_CAPABILITIES, "capabilities", line)?;
                }
            }
            _ => return Err(RequestError::UnexpectedPacket),
        }
    }
    if !closed {
        return Err(RequestError::MissingFlush);
    }
    req.command = command.ok_or_else(|| RequestError::BadCommand("no command requested".into()))?;
    Ok(Some(req))
}

/// Parse the argument lines of a v2 `fetch` into an [`UploadRequest`].
///
/// Known: `want`, `want-ref`, `have`, `done`, `thin-pack`, `no-progress`,
/// `include-tag`, `ofs-delta`, `shallow`, `deepen`, `deepen-since`,
/// `deepen-not`, `deepen-relative`, `filter`, `wait-for-done`. Anything
/// else is an error. In v2 the client always has side-band and ACKs are
/// plain, so `options` only carries the pack options and `wait_for_done`.
pub fn parse_fetch_args<S: AsRef<str>>(args: &[S]) -> Result<UploadRequest, RequestError> {
    let mut req = UploadRequest::default();
    for arg in args {
        let line = arg.as_ref();
        let o = &mut req.options;
        match line {
            "done" => req.done = true,
            "thin-pack" => o.thin_pack = true,
            "no-progress" => o.no_progress = true,
            "include-tag" => o.include_tag = true,
            "ofs-delta" => o.ofs_delta = true,
            "wait-for-done" => o.wait_for_done = true,
            "deepen-relative" => req.deepen_relative = true,
            _ => parse_fetch_line(&mut req, line)?,
        }
    }
    req.check_deepen()?;
    Ok(req)
}

/// The `fetch` argument lines that carry a value.
fn parse_fetch_line(req: &mut UploadRequest, line: &str) -> Result<(), RequestError> {
    if let Some(hex) = line.strip_prefix("want ") {
        capped(&mut req.wants, MAX_LINES, "wants", parse_oid(hex, line)?)?;
    } else if let Some(hex) = line.strip_prefix("have ") {
        capped(&mut req.haves, MAX_LINES, "haves", parse_oid(hex, line)?)?;
    } else if let Some(name) = line.strip_prefix("want-ref ") {
        capped(&mut req.want_refs, MAX_LINES, "want-refs", name.to_string())?;
    } else if !parse_shallow_line(req, line)? {
        return Err(RequestError::UnknownCommand(line.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod cost_tests {
    use super::*;
    use crate::test_alloc::measure;

    fn pkt(line: &str) -> Vec<u8> {
        let mut out = format!("{:04x}", line.len() + 4).into_bytes();
        out.extend_from_slice(line.as_bytes());
        out
    }

    const OID: &str = "5fa2e434c6aefedc8d01125a22199c04c2234e67";
    const TEN_MIB: usize = 10 << 20;

    /// Parses `body` with `parse`, and shows that it held at most twice
    /// the body (and a little) at its peak.
    fn within_twice<T: std::fmt::Debug>(what: &str, body: &[u8], parse: impl FnOnce(&[u8]) -> T) -> T {
        let (out, peak) = measure(|| parse(body));
        assert!(
            peak <= 2 * body.len() + 256 * 1024,
            "{what}: {peak} bytes at the peak for a body of {}",
            body.len()
        );
        out
    }

    #[test]
    fn the_worst_fetch_requests_cost_at_most_twice_their_size() {
        // v0: a want, then 10 MiB of flush packets.
        let mut body = pkt(&format!("want {OID} side-band-64k\n"));
        body.extend(b"0000".repeat(TEN_MIB / 4));
        let r = within_twice("v0 flushes", &body, parse_v0);
        assert_eq!(r.unwrap().wants.len(), 1);
        // v0: want lines full of one-byte capabilities: refused at the cap.
        let caps = vec!["a"; 30_000].join(" ");
        let mut body = Vec::new();
        while body.len() < TEN_MIB {
            body.extend(pkt(&format!("want {OID} {caps}\n")));
        }
        body.extend(b"0000");
        let r = within_twice("v0 capabilities", &body, parse_v0);
        assert_eq!(r.unwrap_err(), RequestError::TooMany("capabilities", MAX_CAPABILITIES));
        // v0: 10 MiB of haves: taken, at 20 bytes each.
        let mut body = pkt(&format!("want {OID}\n"));
        body.extend(b"0000");
        let have = pkt(&format!("have {OID}\n"));
        while body.len() < TEN_MIB {
            body.extend(&have);
        }
        body.extend(pkt("done\n"));
        let r = within_twice("v0 haves", &body, parse_v0);
        assert!(r.is_ok() || r == Err(RequestError::TooMany("haves", MAX_LINES)));
        // v2: 10 MiB of one-byte capability lines, then of one-byte arguments.
        for delim in [false, true] {
            let mut body = pkt("command=fetch");
            if delim {
                body.extend(b"0001");
            }
            body.extend(b"0005x".repeat(TEN_MIB / 5));
            body.extend(b"0000");
            let r = within_twice("v2 one-byte lines", &body, parse_v2);
            assert!(
                r.is_err(),
                "v2 one-byte lines (args: {delim}): {:?}",
                r.map(|r| r.map(|r| r.args.len()))
            );
        }
        // v2: a real fetch of many haves fits.
        let mut body = pkt("command=fetch");
        body.extend(b"0001");
        for _ in 0..50_000 {
            body.extend(pkt(&format!("have {OID}\n")));
        }
        body.extend(pkt("done\n"));
        body.extend(b"0000");
        let r = within_twice("v2 haves", &body, parse_v2).unwrap().unwrap();
        assert_eq!(r.args.len(), 50_001);
        let (fetch, peak) = measure(|| parse_fetch_args(&r.args));
        assert_eq!(fetch.unwrap().haves.len(), 50_000);
        assert!(peak <= 2 * body.len(), "fetch args: {peak}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";

    fn body(lines: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            match *l {
                "<flush>" => pktline::write_flush(&mut out),
                "<delim>" => pktline::write_delim(&mut out),
                _ => pktline::write_line(&mut out, l).unwrap(),
            }
        }
        out
    }

    fn oid(s: &str) -> Oid {
        Oid::from_str(s).unwrap()
    }

    #[test]
    fn a_shallow_first_round_has_no_have_section() {
        let b = body(&[&format!("want {A} shallow"), "deepen 1", "<flush>"]);
        let r = parse_v0(&b).unwrap();
        assert!(r.wants_only && !r.done && r.haves.is_empty());
        assert_eq!(r.depth, Some(1));
        let b = body(&[&format!("want {A}"), "<flush>", "<flush>"]);
        assert!(!parse_v0(&b).unwrap().wants_only);
    }

    #[test]
    fn parses_a_full_v0_request() {
        let first = format!(
            "want {A} multi_ack_detailed no-done side-band-64k thin-pack ofs-delta deepen-relative agent=git/2.47.3"
        );
        let b = body(&[
            &first,
            &format!("want {B}"),
            &format!("shallow {C}"),
            "deepen 3",
            "filter blob:none",
            "<flush>",
            &format!("have {C}"),
            &format!("have {B}"),
            "done",
        ]);
        let req = parse_v0(&b).unwrap();
        assert_eq!(req.wants, vec![oid(A), oid(B)]);
        assert_eq!(req.shallows, vec![oid(C)]);
        assert_eq!(req.depth, Some(3));
        assert_eq!(req.filter.as_deref(), Some("blob:none"));
        assert_eq!(req.haves, vec![oid(C), oid(B)]);
        assert!(req.done);
        assert!(req.deepen_relative);
        assert!(req.options.multi_ack_detailed && req.options.no_done);
        assert!(req.options.side_band_64k && req.options.thin_pack && req.options.ofs_delta);
        assert!(!req.options.include_tag && !req.options.multi_ack && !req.options.side_band);
        assert_eq!(req.capability("agent"), Some("git/2.47.3"));
        assert_eq!(req.capability("thin-pack"), Some(""));
        assert_eq!(req.capability("thin"), None);
    }

    #[test]
    fn v0_request_ending_in_flush_is_not_done() {
        let b = body(&[&format!("want {A}"), "<flush>", &format!("have {B}"), "<flush>"]);
        let req = parse_v0(&b).unwrap();
        assert!(!req.done);
        assert_eq!(req.haves, vec![oid(B)]);
        // A clone: wants, flush, done.
        let req = parse_v0(&body(&[&format!("want {A}"), "<flush>", "done"])).unwrap();
        assert!(req.done && req.haves.is_empty());
    }

    #[test]
    fn v0_deepen_since_and_not() {
        let b = body(&[
            &format!("want {A}"),
            "deepen-since 1577836800",
            "deepen-not refs/heads/old",
            "deepen-not v1",
            "<flush>",
            "done",
        ]);
        let req = parse_v0(&b).unwrap();
        assert_eq!(req.deepen_since, Some(1_577_836_800));
        assert_eq!(req.deepen_not, vec!["refs/heads/old", "v1"]);
        assert!(req.is_deepen());
    }

    #[test]
    fn v0_probe_and_no_wants() {
        let req = parse_v0(b"0000").unwrap();
        assert!(req.wants.is_empty());
        // Trailing data after the closing section is ignored.
        let mut b = body(&[&format!("want {A}"), "<flush>", "done"]);
        b.extend_from_slice(b"garbage");
        assert!(parse_v0(&b).is_err(), "bad framing is still an error");
        let mut b = body(&[&format!("want {A}"), "<flush>", "done"]);
        b.extend_from_slice(b"0000");
        assert!(parse_v0(&b).unwrap().done);
    }

    #[test]
    fn v0_errors() {
        let cases: Vec<(Vec<u8>, RequestError)> = vec![
            (
                body(&["want 1234", "<flush>"]),
                RequestError::BadOid("want 1234".into()),
            ),
            (
                body(&[&format!("want {A}x"), "<flush>"]),
                RequestError::BadOid(format!("want {A}x")),
            ),
            (
                body(&[&format!("want {}", "g".repeat(40)), "<flush>"]),
                RequestError::BadOid(format!("want {}", "g".repeat(40))),
            ),
            (
                body(&[&format!("want {A}"), "frob", "<flush>"]),
                RequestError::UnknownCommand("frob".into()),
            ),
            (body(&[&format!("want {A}")]), RequestError::MissingFlush),
            (
                body(&[&format!("want {A}"), "<flush>", &format!("have {B}")]),
                RequestError::MissingFlush,
            ),
            (
                body(&[&format!("want {A}"), "<flush>", "have zz"]),
                RequestError::BadOid("have zz".into()),
            ),
            (
                body(&[&format!("want {A}"), "<flush>", &format!("want {B}"), "done"]),
                RequestError::UnknownCommand(format!("want {B}")),
            ),
            (
                body(&[&format!("want {A}"), "deepen 0", "<flush>", "done"]),
                RequestError::InvalidDeepen("deepen 0".into()),
            ),
            (
                body(&[&format!("want {A}"), "deepen -1", "<flush>", "done"]),
                RequestError::InvalidDeepen("deepen -1".into()),
            ),
            (
                body(&[&format!("want {A}"), "deepen +2", "<flush>", "done"]),
                RequestError::InvalidDeepen("deepen +2".into()),
            ),
            (
                body(&[&format!("want {A}"), "deepen-since x", "<flush>", "done"]),
                RequestError::InvalidDeepenSince("deepen-since x".into()),
            ),
            (
                body(&[&format!("want {A}"), "deepen 2", "deepen-not x", "<flush>", "done"]),
                RequestError::DeepenConflict,
            ),
            (
                body(&[&format!("want {A}"), "<delim>", "<flush>"]),
                RequestError::UnexpectedPacket,
            ),
            (b"00".to_vec(), RequestError::Pkt(PktError::Truncated)),
            (b"zzzz".to_vec(), RequestError::Pkt(PktError::BadHex(*b"zzzz"))),
            (b"".to_vec(), RequestError::MissingFlush),
            (b"0006\xff\n0000".to_vec(), RequestError::NotUtf8),
        ];
        for (b, want) in cases {
            assert_eq!(parse_v0(&b), Err(want.clone()), "{want}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 7u32;
        for _ in 0..3000 {
            let len = (seed % 40) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    b"0123456789abcdef wanthvdoe\n"[(seed >> 16) as usize % 27]
                })
                .collect();
            let _ = parse_v0(&buf);
            let _ = parse_v2(&buf);
        }
    }

    #[test]
    fn parses_v2_command_requests() {
        let b = body(&[
            "command=ls-refs",
            "agent=git/2.47.3",
            "object-format=sha1",
            "<delim>",
            "peel",
            "symrefs",
            "ref-prefix HEAD",
            "<flush>",
        ]);
        let req = parse_v2(&b).unwrap().unwrap();
        assert_eq!(req.command, "ls-refs");
        assert_eq!(req.capabilities, vec!["agent=git/2.47.3", "object-format=sha1"]);
        assert_eq!(req.args, vec!["peel", "symrefs", "ref-prefix HEAD"]);
        // No delimiter: no arguments. The command may follow capabilities.
        let req = parse_v2(&body(&["agent=x", "command=fetch", "<flush>"]))
            .unwrap()
            .unwrap();
        assert_eq!(req.command, "fetch");
        assert!(req.args.is_empty());
        assert_eq!(parse_v2(b"0000").unwrap(), None);
    }

    #[test]
    fn v2_errors() {
        assert_eq!(
            parse_v2(&body(&["command=fetch", "<delim>", "done"])),
            Err(RequestError::MissingFlush)
        );
        assert!(matches!(
            parse_v2(&body(&["agent=x", "<delim>", "<flush>"])),
            Err(RequestError::BadCommand(_))
        ));
        assert!(matches!(
            parse_v2(&body(&["command=a", "command=b", "<flush>"])),
            Err(RequestError::BadCommand(_))
        ));
        assert_eq!(
            parse_v2(&body(&["command=fetch", "<delim>", "<delim>", "<flush>"])),
            Err(RequestError::UnexpectedPacket)
        );
        assert_eq!(parse_v2(b""), Err(RequestError::MissingFlush));
    }

    #[test]
    fn parses_v2_fetch_args() {
        let args = [
            "thin-pack".to_string(),
            "no-progress".into(),
            "include-tag".into(),
            "ofs-delta".into(),
            format!("want {A}"),
            "want-ref refs/heads/main".into(),
            format!("have {B}"),
            format!("shallow {C}"),
            "deepen 1".into(),
            "deepen-relative".into(),
            "filter tree:0".into(),
            "wait-for-done".into(),
            "done".into(),
        ];
        let req = parse_fetch_args(&args).unwrap();
        assert_eq!(req.wants, vec![oid(A)]);
        assert_eq!(req.want_refs, vec!["refs/heads/main"]);
        assert_eq!(req.haves, vec![oid(B)]);
        assert_eq!(req.shallows, vec![oid(C)]);
        assert_eq!(req.depth, Some(1));
        assert!(req.deepen_relative && req.done);
        assert_eq!(req.filter.as_deref(), Some("tree:0"));
        let o = &req.options;
        assert!(o.thin_pack && o.no_progress && o.include_tag && o.ofs_delta && o.wait_for_done);
        assert!(matches!(
            parse_fetch_args(&["bogus"]),
            Err(RequestError::UnknownCommand(_))
        ));
        assert!(matches!(parse_fetch_args(&["want 12"]), Err(RequestError::BadOid(_))));
        assert_eq!(
            parse_fetch_args(&["deepen 1", "deepen-since 5"]),
            Err(RequestError::DeepenConflict)
        );
    }

    #[test]
    fn parses_what_real_git_sends() {
        // Recorded shape of git 2.47's first stateless fetch request.
        let b = body(&[
            &format!("want {A} multi_ack_detailed no-done side-band-64k thin-pack include-tag ofs-delta deepen-since deepen-not agent=git/2.47.3"),
            &format!("want {B}"),
            "<flush>",
            &format!("have {C}"),
            "<flush>",
        ]);
        let req = parse_v0(&b).unwrap();
        assert_eq!(req.wants.len(), 2);
        assert!(req.options.include_tag);
        assert!(!req.done);
    }
}
