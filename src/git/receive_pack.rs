//! receive-pack, protocol v0: read the commands and the pack, index the
//! pack into a quarantine folder (`intake`: thin packs completed from the
//! repository, objects checked, new tips proved connected), check each
//! command against the ref's current value and the branch policy, move the
//! pack in, then move the refs by compare-and-swap. A push that fails leaves
//! no ref changed and no pack behind.

use std::fmt;
use std::io::Read;

use git2::{Oid, Repository, Signature};

use crate::auth::restriction::{self, RefPattern};

use super::intake::{Intake, IntakeError, Quarantine};
use super::pkt_reader::{AsyncPktReader, Pkt, PktReader};
use super::pktline::{self, Band};

/// What gitpat's receive-pack implements.
pub const CAPABILITIES: &[&str] = &[
    "report-status",
    "report-status-v2",
    "delete-refs",
    "side-band-64k",
    "quiet",
    "atomic",
    "ofs-delta",
    "push-options",
    "object-format=sha1",
];

pub const PROTECTED_PUSH: &str = "You are not allowed to push code to protected branches on this project.";
pub const PROTECTED_FORCE_PUSH: &str = "You are not allowed to force push code to a protected branch on this project.";
pub const DELETE_CURRENT: &str = "deletion of the current branch prohibited";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub old: Oid,
    pub new: Oid,
    pub name: String,
}

impl Command {
    pub fn is_delete(&self) -> bool {
        self.new.is_zero()
    }
    pub fn is_create(&self) -> bool {
        self.old.is_zero()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    pub commands: Vec<Command>,
    pub capabilities: Vec<String>,
    pub push_options: Vec<String>,
    pub shallow: Vec<Oid>,
}

impl Request {
    pub fn has(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

/// A request git would not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn perr<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

fn parse_oid(s: &str) -> Result<Oid, ProtocolError> {
    if s.len() != 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return perr(format!("expected an object id, got {s:?}"));
    }
    Oid::from_str(s).map_err(|_| ProtocolError(format!("bad object id {s:?}")))
}

/// The most bytes of commands, shallow lines and push options one push may
/// send (they are held in memory): room for some 200,000 ref updates.
pub const MAX_COMMAND_BYTES: usize = 32 * 1024 * 1024;

/// What a push's lines may cost beyond twice their size.
const LINE_COST_SLACK: usize = 64 * 1024;

/// Reads the request as it comes, one packet at a time (sans I/O: fed by
/// [`read_request`] or [`read_request_async`]). Each packet is charged its
/// header and what keeping it costs against [`MAX_COMMAND_BYTES`], so an
/// empty packet is not free.
pub struct RequestParser {
    req: Request,
    budget: usize,
    /// Bytes of the request so far, and what keeping its lines costs.
    read: usize,
    cost: usize,
    state: State,
}

enum State {
    First,
    Commands,
    PushOptions,
}

impl Default for RequestParser {
    fn default() -> Self {
        RequestParser {
            req: Request::default(),
            budget: MAX_COMMAND_BYTES,
            read: 0,
            cost: 0,
            state: State::First,
        }
    }
}

impl RequestParser {
    /// Charges a line of `wire` bytes whose keeping costs `kept` (the
    /// item, twice over for the room a growing Vec keeps): the request may
    /// hold [`MAX_COMMAND_BYTES`], and never cost more than twice its size.
    fn charge(&mut self, wire: usize, kept: usize) -> Result<(), ProtocolError> {
        self.budget = self.budget.checked_sub(wire).ok_or_else(|| {
            ProtocolError(format!(
                "the commands and push options are larger than {} MiB",
                MAX_COMMAND_BYTES >> 20
            ))
        })?;
        self.read += wire;
        self.cost += kept;
        if self.cost > 2 * self.read + LINE_COST_SLACK {
            return perr("the request holds too many short lines");
        }
        Ok(())
    }

    /// Takes the next packet (`None`: the input ended). Gives the request
    /// once it is complete; the stream is then at the start of the pack. A
    /// request with no command at all (git's `0000` probe before a chunked
    /// push) is an empty command list.
    pub fn feed(&mut self, pkt: Option<Pkt>) -> Result<Option<Request>, ProtocolError> {
        let line = match (pkt, &self.state) {
            (None | Some(Pkt::Flush), State::First) => return Ok(Some(std::mem::take(&mut self.req))),
            (None, _) => return perr("the request ended before its flush packet"),
            (Some(Pkt::Flush), State::Commands) => {
                if self.req.commands.is_empty() {
                    return perr("no command before the flush packet");
                }
                if !self.req.has("push-options") {
                    return Ok(Some(std::mem::take(&mut self.req)));
                }
                self.state = State::PushOptions;
                return Ok(None);
            }
            (Some(Pkt::Flush), State::PushOptions) => return Ok(Some(std::mem::take(&mut self.req))),
            (Some(Pkt::Data(d)), _) => d,
            (Some(p), _) => return perr(format!("unexpected {p:?} packet")),
        };
        let line = match line.strip_suffix(b"\n") {
            Some(l) => l.to_vec(),
            None => line,
        };
        match self.state {
            State::First | State::Commands => {
                let (commands, shallow, caps) = (
                    self.req.commands.len(),
                    self.req.shallow.len(),
                    self.req.capabilities.len(),
                );
                parse_line(&mut self.req, &line)?;
                // What the line added: a command, a shallow id, capabilities.
                let kept = self.req.commands[commands..]
                    .iter()
                    .map(|c| 2 * std::mem::size_of::<Command>() + c.name.len())
                    .sum::<usize>()
                    + (self.req.shallow.len() - shallow) * 2 * std::mem::size_of::<Oid>()
                    + self.req.capabilities[caps..]
                        .iter()
                        .map(|c| 2 * std::mem::size_of::<String>() + c.len())
                        .sum::<usize>();
                self.charge(4 + line.len(), kept)?;
                self.state = State::Commands;
            }
            State::PushOptions => {
                self.charge(4 + line.len(), 2 * std::mem::size_of::<String>() + line.len())?;
                let opt = String::from_utf8(line).map_err(|_| ProtocolError("a push option is not UTF-8".into()))?;
                self.req.push_options.push(opt);
            }
        }
        Ok(None)
    }
}

fn read_error(e: std::io::Error) -> ProtocolError {
    ProtocolError(format!("cannot read the request: {e}"))
}

/// Reads the commands (and push options, when negotiated) off `r`, leaving
/// it at the start of the pack.
pub fn read_request<R: Read>(r: &mut PktReader<R>) -> Result<Request, ProtocolError> {
    let mut parser = RequestParser::default();
    loop {
        if let Some(req) = parser.feed(r.read_pkt().map_err(read_error)?)? {
            return Ok(req);
        }
    }
}

/// [`read_request`] on the async side.
pub async fn read_request_async<R: tokio::io::AsyncRead + Unpin>(
    r: &mut AsyncPktReader<R>,
) -> Result<Request, ProtocolError> {
    let mut parser = RequestParser::default();
    loop {
        if let Some(req) = parser.feed(r.read_pkt().await.map_err(read_error)?)? {
            return Ok(req);
        }
    }
}

fn parse_line(req: &mut Request, line: &[u8]) -> Result<(), ProtocolError> {
    let (text, caps) = match line.iter().position(|&b| b == 0) {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let text = std::str::from_utf8(text).map_err(|_| ProtocolError("a command is not UTF-8".into()))?;
    if let Some(oid) = text.strip_prefix("shallow ") {
        if !req.commands.is_empty() {
            return perr("shallow line after a command");
        }
        req.shallow.push(parse_oid(oid)?);
        return Ok(());
    }
    let mut parts = text.splitn(3, ' ');
    let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return perr(format!("malformed command {text:?}"));
    };
    if let Some(caps) = caps {
        if !req.commands.is_empty() {
            return perr("capabilities after the first command");
        }
        let caps = std::str::from_utf8(caps).map_err(|_| ProtocolError("capabilities are not UTF-8".into()))?;
        req.capabilities = caps.split(' ').filter(|c| !c.is_empty()).map(str::to_string).collect();
    }
    req.commands.push(Command {
        old: parse_oid(old)?,
        new: parse_oid(new)?,
        name: name.to_string(),
    });
    Ok(())
}

/// Which refs the pusher may move how.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The protected branch (the default branch), as a full ref name.
    pub protected_ref: Option<String>,
    /// Maintainers and owners may push to it (never force-push or delete).
    pub may_push_protected: bool,
    /// A restricted token's ref patterns: a command to any other ref is
    /// refused (`None`: any ref).
    pub push_refs: Option<Vec<RefPattern>>,
}

/// The outcome of a push, as report-status says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub unpack: Result<(), String>,
    /// Per command, in order: `Ok` or the reason it was refused.
    pub refs: Vec<(String, Result<(), String>)>,
    /// Lines for the pusher (git shows them as `remote: ...`), sent on
    /// side-band 2 before the report when side-band was negotiated.
    pub notes: Vec<String>,
}

impl Report {
    /// The report-status lines (v1 and v2 read the same lines when no hook
    /// rewrites a ref), framed in side-band 1 when asked, ending with flush;
    /// with side-band, the notes first on band 2.
    pub fn encode(&self, side_band: bool) -> Vec<u8> {
        let mut inner = Vec::new();
        let unpack = match &self.unpack {
            Ok(()) => "unpack ok".to_string(),
            Err(e) => format!("unpack {}", one_line(e)),
        };
        let _ = pktline::write_line(&mut inner, &unpack);
        for (name, r) in &self.refs {
            let line = match r {
                Ok(()) => format!("ok {name}"),
                Err(why) => format!("ng {name} {}", one_line(why)),
            };
            let _ = pktline::write_line(&mut inner, &line);
        }
        pktline::write_flush(&mut inner);
        if !side_band {
            return inner;
        }
        let mut out = Vec::new();
        for note in &self.notes {
            pktline::write_sideband(&mut out, Band::Progress, format!("{}\n", one_line(note)).as_bytes());
        }
        pktline::write_sideband(&mut out, Band::Data, &inner);
        pktline::write_flush(&mut out);
        out
    }

    pub fn all_ok(&self) -> bool {
        self.unpack.is_ok() && self.refs.iter().all(|(_, r)| r.is_ok())
    }
}

fn one_line(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    s.chars().take(1000).collect()
}

fn current(repo: &Repository, name: &str) -> Option<Oid> {
    repo.refname_to_id(name).ok()
}

/// Why a command may not go ahead, before anything is written.
fn check(repo: &Repository, c: &Command, policy: &Policy) -> Result<(), String> {
    if !c.name.starts_with("refs/") || !git2::Reference::is_valid_name(&c.name) {
        return Err("funny refname".into());
    }
    if let Some(patterns) = &policy.push_refs {
        if !patterns.iter().any(|p| p.matches(&c.name)) {
            return Err(restriction::push_refused(&c.name));
        }
    }
    let protected = policy.protected_ref.as_deref() == Some(c.name.as_str());
    let cur = current(repo, &c.name);
    if c.is_delete() {
        if protected {
            return Err(DELETE_CURRENT.into());
        }
        return match cur {
            Some(cur) if cur != c.old && !c.old.is_zero() => Err(REF_UPDATE_FAILED.into()),
            _ => Ok(()),
        };
    }
    // The header only: a big blob is never inflated to learn its type.
    let kind = repo.odb().and_then(|odb| odb.read_header(c.new)).map(|(_, kind)| kind);
    let Ok(kind) = kind else {
        return Err(MISSING_OBJECTS.into());
    };
    if c.name.starts_with("refs/heads/") && kind != git2::ObjectType::Commit {
        // git: "trying to write non-commit object ... to branch", reported as
        // its ref transaction's failure.
        return Err(REF_UPDATE_FAILED.into());
    }
    match (cur, c.is_create()) {
        (Some(_), true) => return Err(REF_UPDATE_FAILED.into()),
        (None, false) => return Err(REF_UPDATE_FAILED.into()),
        (Some(cur), false) if cur != c.old => return Err(REF_UPDATE_FAILED.into()),
        _ => {}
    }
    if protected && !c.is_create() {
        if !policy.may_push_protected {
            return Err(PROTECTED_PUSH.into());
        }
        let fast_forward = repo.graph_descendant_of(c.new, c.old).unwrap_or(false) || c.new == c.old;
        if !fast_forward {
            return Err(PROTECTED_FORCE_PUSH.into());
        }
    }
    Ok(())
}

/// Applies commands in one libgit2 transaction: every ref locked, its value
/// checked again under the lock, then all written.
fn apply(repo: &Repository, cmds: &[&Command], sig: &Signature) -> Result<(), String> {
    let mut tx = repo.transaction().map_err(|e| e.message().to_string())?;
    for c in cmds {
        tx.lock_ref(&c.name).map_err(|_| "failed to lock".to_string())?;
    }
    for c in cmds {
        let cur = current(repo, &c.name);
        let expected = if c.old.is_zero() { None } else { Some(c.old) };
        let stale = if c.is_delete() {
            expected.is_some() && cur != expected
        } else {
            cur != expected
        };
        if stale {
            return Err(REF_UPDATE_FAILED.into());
        }
    }
    for c in cmds {
        if c.is_delete() {
            if current(repo, &c.name).is_some() {
                tx.remove(&c.name).map_err(|e| e.message().to_string())?;
            }
        } else {
            tx.set_target(&c.name, c.new, Some(sig), "push")
                .map_err(|e| e.message().to_string())?;
        }
    }
    tx.commit().map_err(|_| REF_UPDATE_FAILED.to_string())
}

/// What the ref transaction itself refuses (a stale old value, a ref that
/// exists already, a non-commit on a branch), as git reports it.
const REF_UPDATE_FAILED: &str = "failed to update ref";
/// A new value that is absent, or reaches an absent object.
const MISSING_OBJECTS: &str = "missing necessary objects";
const ATOMIC_TRANSACTION_FAILED: &str = "atomic transaction failed";
const ATOMIC_PUSH_FAILURE: &str = "atomic push failure";

/// An atomic push with a refusal, reported as git's receive-pack does: it
/// queues the commands in one transaction, stopping at the first command
/// its own checks refuse (which keeps its reason; every other command gets
/// `atomic push failure`); when only the transaction refuses (stale old
/// values), every command gets `atomic transaction failed`.
fn atomic_failure(results: &mut [Result<(), String>]) {
    let first_own = results
        .iter()
        .position(|r| matches!(r, Err(e) if e != REF_UPDATE_FAILED));
    for (i, r) in results.iter_mut().enumerate() {
        match first_own {
            Some(f) if f == i => {}
            Some(_) => *r = Err(ATOMIC_PUSH_FAILURE.into()),
            None => *r = Err(ATOMIC_TRANSACTION_FAILED.into()),
        }
    }
}

/// Whether a push needs a pack: unless every command is a deletion.
pub fn needs_pack(req: &Request) -> bool {
    req.commands.iter().any(|c| !c.is_delete())
}

/// Runs a push read whole from `pack` here (blocking): unpacks it when
/// [`needs_pack`], then [`conclude`]s.
pub fn execute(
    repo: &Repository,
    req: &Request,
    pack: &mut dyn Read,
    intake: &Intake,
    policy: &Policy,
    sig: &Signature,
) -> Report {
    execute_screened(repo, req, pack, intake, policy, sig, &mut no_screen)
}

/// [`execute`] with a [`Screen`] of the new objects.
pub fn execute_screened(
    repo: &Repository,
    req: &Request,
    pack: &mut dyn Read,
    intake: &Intake,
    policy: &Policy,
    sig: &Signature,
    screen: Screen<'_>,
) -> Report {
    let started = std::time::Instant::now();
    let unpacked = if needs_pack(req) {
        intake.unpack(repo, pack).map(Some)
    } else {
        Ok(None)
    };
    conclude_screened(repo, req, unpacked, started.elapsed(), intake, policy, sig, screen)
}

/// What a screen of a push's new objects decided (leaked-token push
/// protection): refuse every command with `refuse`, or let them go; and
/// the lines to show the pusher either way.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Screened {
    pub refuse: Option<String>,
    pub notes: Vec<String>,
}

/// Looks at a push whose commands passed every check, before anything
/// moves: the repository (seeing the quarantine), the quarantine, and the
/// new values of the commands that would land.
pub type Screen<'a> = &'a mut dyn FnMut(&Repository, &Quarantine, &[Oid]) -> Screened;

fn no_screen(_: &Repository, _: &Quarantine, _: &[Oid]) -> Screened {
    Screened::default()
}

/// The rest of a push once its pack is in a quarantine (`Ok(None)`: no
/// pack was needed; `Err`: the `unpack` error): checks and applies the
/// commands, and reports. `atomic` pushes apply all or none. `unpacked` is
/// how long the pack took, for the log.
pub fn conclude(
    repo: &Repository,
    req: &Request,
    unpacked: Result<Option<Quarantine>, IntakeError>,
    unpacked_in: std::time::Duration,
    intake: &Intake,
    policy: &Policy,
    sig: &Signature,
) -> Report {
    conclude_screened(repo, req, unpacked, unpacked_in, intake, policy, sig, &mut no_screen)
}

/// [`conclude`], with `screen` asked about the new objects once the
/// commands that would land are known (none: not asked); a refusal
/// refuses them all, and the quarantine goes.
#[allow(clippy::too_many_arguments)]
pub fn conclude_screened(
    repo: &Repository,
    req: &Request,
    unpacked: Result<Option<Quarantine>, IntakeError>,
    unpacked_in: std::time::Duration,
    intake: &Intake,
    policy: &Policy,
    sig: &Signature,
    screen: Screen<'_>,
) -> Report {
    let n = req.commands.len();
    let mut notes = Vec::new();
    let mut results: Vec<Result<(), String>> = vec![Ok(()); n];
    let started = std::time::Instant::now();
    let quarantine = match unpacked {
        Ok(q) => q,
        Err(e) => {
            return Report {
                unpack: Err(e.to_string()),
                refs: req
                    .commands
                    .iter()
                    .map(|c| (c.name.clone(), Err("unpacker error".into())))
                    .collect(),
                notes: Vec::new(),
            }
        }
    };
    for (i, c) in req.commands.iter().enumerate() {
        if req.commands[..i].iter().any(|p| p.name == c.name) {
            results[i] = Err("duplicate ref update".into());
        } else {
            results[i] = check(repo, c, policy);
        }
    }
    if let Some(q) = &quarantine {
        let tips: Vec<Oid> = (0..n)
            .filter(|&i| results[i].is_ok() && !req.commands[i].is_delete())
            .map(|i| req.commands[i].new)
            .collect();
        let missing = intake.disconnected(repo, q, &tips);
        for (i, c) in req.commands.iter().enumerate() {
            if results[i].is_ok() && !c.is_delete() && missing.contains(&c.new) {
                results[i] = Err(MISSING_OBJECTS.into());
            }
        }
    }
    let checked = started.elapsed();
    let atomic = req.has("atomic");
    if atomic && results.iter().any(Result::is_err) {
        atomic_failure(&mut results);
    }
    if let (Some(q), true) = (&quarantine, results.iter().any(Result::is_ok)) {
        let tips: Vec<Oid> = (0..n)
            .filter(|&i| results[i].is_ok() && !req.commands[i].is_delete())
            .map(|i| req.commands[i].new)
            .collect();
        let verdict = screen(repo, q, &tips);
        notes = verdict.notes;
        if let Some(why) = verdict.refuse {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(why.clone());
            }
        }
    }
    if results.iter().any(Result::is_ok) {
        if let Some(q) = &quarantine {
            if let Err(e) = q.install(&repo.path().join("objects")) {
                let msg = format!("cannot store the pack: {e}");
                return Report {
                    unpack: Err(msg),
                    refs: req
                        .commands
                        .iter()
                        .map(|c| (c.name.clone(), Err("unpacker error".into())))
                        .collect(),
                    notes,
                };
            }
        }
    }
    drop(quarantine);
    if let Ok(odb) = repo.odb() {
        let _ = odb.refresh();
    }
    let ok: Vec<usize> = (0..n).filter(|&i| results[i].is_ok()).collect();
    if atomic {
        let cmds: Vec<&Command> = ok.iter().map(|&i| &req.commands[i]).collect();
        if !cmds.is_empty() && apply(repo, &cmds, sig).is_err() {
            for &i in &ok {
                results[i] = Err(ATOMIC_TRANSACTION_FAILED.into());
            }
        }
    } else {
        for &i in &ok {
            if let Err(e) = apply(repo, &[&req.commands[i]], sig) {
                results[i] = Err(e);
            }
        }
    }
    tracing::debug!(
        "push to {}: {n} commands, unpacked in {} ms, then checked in {} ms, done in {} ms ({} engine)",
        repo.path().display(),
        unpacked_in.as_millis(),
        checked.as_millis(),
        started.elapsed().as_millis(),
        intake.engine.name()
    );
    Report {
        unpack: Ok(()),
        refs: req.commands.iter().map(|c| c.name.clone()).zip(results).collect(),
        notes,
    }
}

/// After a push into a repository whose HEAD names a branch that does not
/// exist, points HEAD at the branch the push created (as GitLab does for a
/// first push). Returns the new default branch, if it changed.
pub fn adopt_pushed_head(repo: &Repository, report: &Report) -> Option<String> {
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target()?.to_string();
    if current(repo, &target).is_some() {
        return None;
    }
    let branch = report
        .refs
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(name, _)| name)
        .find(|name| name.starts_with("refs/heads/") && current(repo, name).is_some())?;
    repo.set_head(branch).ok()?;
    branch.strip_prefix("refs/heads/").map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &[u8]) -> Result<Request, ProtocolError> {
        read_request(&mut PktReader::new(body))
    }

    fn pkt(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        pktline::write_data(&mut v, s.as_bytes()).unwrap();
        v
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const Z: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn commands_and_push_options_are_bounded() {
        let mut body = pkt(&format!("{Z} {A} refs/heads/new\0report-status push-options\n"));
        body.extend(b"0000");
        let option = format!("o={}\n", "x".repeat(60_000));
        let n = MAX_COMMAND_BYTES / option.len() + 1;
        for _ in 0..n {
            body.extend(pkt(&option));
        }
        body.extend(b"0000");
        let err = req(&body).unwrap_err();
        assert!(err.0.contains("larger than 32 MiB"), "{err}");
        // just under the bound is fine
        let mut ok = pkt(&format!("{Z} {A} refs/heads/new\0report-status push-options\n"));
        ok.extend(b"0000");
        for _ in 0..n - 2 {
            ok.extend(pkt(&option));
        }
        ok.extend(b"0000");
        assert_eq!(req(&ok).unwrap().push_options.len(), n - 2);
    }

    #[test]
    fn empty_and_tiny_packets_are_charged_what_they_cost() {
        use crate::test_alloc::measure;
        // 32 MiB of empty push options (4 bytes each on the wire, a String
        // each kept): refused early, never holding more than twice the body.
        let mut body = pkt(&format!("{Z} {A} refs/heads/new\0report-status push-options\n"));
        body.extend(b"0000");
        body.extend(b"0004".repeat(MAX_COMMAND_BYTES / 4));
        body.extend(b"0000");
        let (r, peak) = measure(|| req(&body));
        let err = r.unwrap_err();
        assert!(err.0.contains("too many short lines"), "{err}");
        assert!(peak <= 2 * body.len(), "{peak}");
        // A few are fine, as git sends them.
        let mut ok = pkt(&format!("{Z} {A} refs/heads/new\0report-status push-options\n"));
        ok.extend(b"0000");
        ok.extend(b"0004".repeat(100));
        ok.extend(pkt("ci.skip\n"));
        ok.extend(b"0000");
        let options = req(&ok).unwrap().push_options;
        assert_eq!(options.len(), 101);
        // Many commands, as a mirror push sends them: within twice the body.
        let mut many = Vec::new();
        for i in 0..100_000 {
            let caps = if i == 0 { "\0report-status" } else { "" };
            many.extend(pkt(&format!("{Z} {A} refs/heads/b{i}{caps}\n")));
        }
        many.extend(b"0000");
        let (r, peak) = measure(|| req(&many));
        assert_eq!(r.unwrap().commands.len(), 100_000);
        assert!(peak <= 2 * many.len(), "{peak} for {}", many.len());
    }

    #[test]
    fn parses_commands_caps_and_options() {
        let mut body = pkt(&format!(
            "{Z} {A} refs/heads/new\0report-status side-band-64k push-options agent=git/2.47\n"
        ));
        body.extend(pkt(&format!("{A} {Z} refs/heads/old\n")));
        body.extend(b"0000");
        body.extend(pkt("ci.skip\n"));
        body.extend(b"0000PACK");
        let mut r = PktReader::new(&body[..]);
        let q = read_request(&mut r).unwrap();
        assert_eq!(q.commands.len(), 2);
        assert!(q.commands[0].is_create() && q.commands[1].is_delete());
        assert!(q.has("side-band-64k") && q.has("report-status") && !q.has("atomic"));
        assert_eq!(q.push_options, vec!["ci.skip"]);
        let mut rest = Vec::new();
        r.into_inner().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"PACK");
    }

    #[test]
    fn the_probe_is_an_empty_request() {
        assert_eq!(req(b"0000").unwrap().commands.len(), 0);
        assert_eq!(req(b"").unwrap().commands.len(), 0);
    }

    #[test]
    fn malformed_requests_are_refused() {
        for body in [
            pkt("garbage\n"),
            pkt(&format!("{A} refs/heads/x\n")),
            pkt(&format!("{Z} zzzz refs/heads/x\n")),
            pkt(&format!("{Z} {A} refs/heads/x\n")), // no flush
            b"00zz".to_vec(),
        ] {
            assert!(req(&body).is_err(), "{:?}", String::from_utf8_lossy(&body));
        }
    }

    use crate::git::test_fixtures::{git, git_io, rich_repo};

    /// A bare copy of the rich fixture (main: c1 c2 c3, dev: + d1) to push into.
    fn server() -> (tempfile::TempDir, tempfile::TempDir, Repository) {
        let src = rich_repo();
        let dest = tempfile::tempdir().unwrap();
        git(
            dest.path(),
            &["clone", "-q", "--bare", src.path().to_str().unwrap(), "."],
        );
        // As gitpat's own repositories are made (RepoStore::stage).
        git(dest.path(), &["config", "core.logAllRefUpdates", "true"]);
        let repo = Repository::open_bare(dest.path()).unwrap();
        (src, dest, repo)
    }

    fn oid(repo: &Repository, rev: &str) -> Oid {
        repo.revparse_single(rev).unwrap().id()
    }

    fn cmd(old: Oid, new: Oid, name: &str) -> Command {
        Command {
            old,
            new,
            name: name.into(),
        }
    }

    fn request(commands: Vec<Command>, atomic: bool) -> Request {
        let caps = if atomic {
            vec!["report-status".into(), "atomic".into()]
        } else {
            vec!["report-status".into()]
        };
        Request {
            commands,
            capabilities: caps,
            ..Default::default()
        }
    }

    /// `git pack-objects` output for `revs` (rev-list syntax) from `dir`.
    fn pack_of(dir: &std::path::Path, revs: &str) -> Vec<u8> {
        let (out, ok) = git_io(
            dir,
            &["pack-objects", "--revs", "--stdout", "-q"],
            &[],
            format!("{revs}\n").as_bytes(),
        );
        assert!(ok);
        out
    }

    /// What git sends when the server has every object already.
    /// A commit on `main` in `src` that the server's `repo` lacks: the
    /// server's tip, the new one, and the pack between them.
    fn one_commit_ahead(src: &std::path::Path, repo: &Repository) -> (Oid, Oid, Vec<u8>) {
        git(src, &["checkout", "-q", "main"]);
        crate::git::test_fixtures::commit(src, "f", "4", "c4", 50);
        let old = oid(repo, "main");
        let new = Repository::open(src).unwrap().revparse_single("main").unwrap().id();
        let pack = pack_of(src, &format!("{new}\n--not\n{old}"));
        (old, new, pack)
    }

    fn empty_pack() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "--bare", "."]);
        let (out, ok) = git_io(dir.path(), &["pack-objects", "--stdout", "-q"], &[], b"");
        assert!(ok && out.len() == 32);
        out
    }

    /// Both engines: git (the newest here) and libgit2, with the default
    /// input limit.
    fn intakes() -> Vec<Intake> {
        let max_input_size = crate::settings::DEFAULT_RECEIVE_MAX_INPUT_SIZE;
        vec![
            Intake {
                engine: crate::git::test_fixtures::git_engine(),
                max_input_size,
            },
            Intake {
                engine: crate::git::pack::PackEngine::Libgit2,
                max_input_size,
            },
        ]
    }

    fn policy(may_push_protected: bool) -> Policy {
        Policy {
            protected_ref: Some("refs/heads/main".into()),
            may_push_protected,
            push_refs: None,
        }
    }

    fn sig() -> Signature<'static> {
        Signature::now("Pusher", "pusher@example.com").unwrap()
    }

    fn packs(repo: &Repository) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(repo.path().join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn leftovers(repo: &Repository) -> usize {
        std::fs::read_dir(repo.path().join("objects"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("incoming-")
            })
            .count()
    }

    #[test]
    fn a_new_branch_at_a_known_commit_keeps_no_empty_pack() {
        for intake in intakes() {
            let (src, _d, repo) = server();
            let before = packs(&repo);
            let main = oid(&repo, "main");
            let empty = pack_of(src.path(), &format!("{main}\n--not\n{main}"));
            let r = execute(
                &repo,
                &request(vec![cmd(Oid::zero(), main, "refs/heads/copy")], false),
                &mut &empty[..],
                &intake,
                &policy(false),
                &sig(),
            );
            assert!(r.all_ok(), "{r:?}");
            assert_eq!(repo.refname_to_id("refs/heads/copy").unwrap(), main);
            assert_eq!(packs(&repo), before);
            assert_eq!(leftovers(&repo), 0);
            // The reflog names the pusher.
            let log = repo.reflog("refs/heads/copy").unwrap();
            assert_eq!(log.get(0).unwrap().committer().email(), Some("pusher@example.com"));
        }
    }

    #[test]
    fn pushes_land_with_their_objects() {
        for intake in intakes() {
            let (src, _d, repo) = server();
            let (old, new, pack) = one_commit_ahead(src.path(), &repo);
            let r = execute(
                &repo,
                &request(vec![cmd(old, new, "refs/heads/main")], false),
                &mut &pack[..],
                &intake,
                &policy(true),
                &sig(),
            );
            assert!(r.all_ok(), "{r:?}");
            assert_eq!(repo.refname_to_id("refs/heads/main").unwrap(), new);
            assert!(repo.find_commit(new).is_ok());
        }
    }

    #[test]
    fn the_protected_branch_rules() {
        for intake in intakes() {
            let (_s, _d, repo) = server();
            let main = oid(&repo, "main");
            let parent = oid(&repo, "main~1");
            let dev = oid(&repo, "dev");
            let empty = empty_pack();
            let run = |c: Command, may: bool| {
                execute(
                    &repo,
                    &request(vec![c], false),
                    &mut &empty[..],
                    &intake,
                    &policy(may),
                    &sig(),
                )
                .refs[0]
                    .1
                    .clone()
            };
            // Deleting the default branch: never.
            assert_eq!(
                run(cmd(main, Oid::zero(), "refs/heads/main"), true),
                Err(DELETE_CURRENT.into())
            );
            // A developer may not push to it; a maintainer may fast-forward only.
            assert_eq!(
                run(cmd(main, dev, "refs/heads/main"), false),
                Err(PROTECTED_PUSH.into())
            );
            assert_eq!(
                run(cmd(main, parent, "refs/heads/main"), true),
                Err(PROTECTED_FORCE_PUSH.into())
            );
            assert_eq!(repo.refname_to_id("refs/heads/main").unwrap(), main);
            // Other branches: anything goes, force included, and deletion.
            assert_eq!(run(cmd(dev, parent, "refs/heads/dev"), false), Ok(()));
            assert_eq!(run(cmd(parent, Oid::zero(), "refs/heads/dev"), false), Ok(()));
            assert!(repo.refname_to_id("refs/heads/dev").is_err());
            // A funny name, a stale old value.
            assert_eq!(run(cmd(Oid::zero(), main, "HEAD"), true), Err("funny refname".into()));
            assert_eq!(
                run(cmd(Oid::zero(), main, "refs/heads/a..b"), true),
                Err("funny refname".into())
            );
            assert_eq!(
                run(cmd(parent, main, "refs/heads/main"), true),
                Err("failed to update ref".into())
            );
        }
    }

    #[test]
    fn a_restricted_token_pushes_only_to_its_refs() {
        for intake in intakes() {
            let (_s, _d, repo) = server();
            let main = oid(&repo, "main");
            let dev = oid(&repo, "dev");
            let limited = Policy {
                push_refs: Some(vec![
                    RefPattern::parse("refs/heads/feature/*").unwrap(),
                    RefPattern::parse("refs/tags/v*").unwrap(),
                ]),
                ..policy(true)
            };
            let empty = empty_pack();
            let run = |cmds: Vec<Command>, atomic: bool| {
                execute(
                    &repo,
                    &request(cmds, atomic),
                    &mut &empty[..],
                    &intake,
                    &limited,
                    &sig(),
                )
                .refs
            };
            let refused = |name: &str| Err(format!("token may not push to {name}"));
            // Creating, moving or deleting a ref outside the patterns: refused.
            for c in [
                cmd(Oid::zero(), main, "refs/heads/other"),
                cmd(main, dev, "refs/heads/main"),
                cmd(dev, Oid::zero(), "refs/heads/dev"),
                cmd(Oid::zero(), main, "refs/tags/x1"),
            ] {
                let name = c.name.clone();
                assert_eq!(run(vec![c], false), vec![(name.clone(), refused(&name))]);
            }
            assert_eq!(repo.refname_to_id("refs/heads/main").unwrap(), main);
            assert_eq!(repo.refname_to_id("refs/heads/dev").unwrap(), dev);
            // Not atomic: the allowed one lands, the other is refused.
            let r = run(
                vec![
                    cmd(Oid::zero(), main, "refs/heads/feature/a/b"),
                    cmd(Oid::zero(), main, "refs/heads/other"),
                ],
                false,
            );
            assert_eq!(r[0].1, Ok(()));
            assert_eq!(r[1].1, refused("refs/heads/other"));
            assert_eq!(repo.refname_to_id("refs/heads/feature/a/b").unwrap(), main);
            // Atomic: the refusal keeps its reason, the rest fail with it.
            let r = run(
                vec![
                    cmd(Oid::zero(), main, "refs/tags/v-new"),
                    cmd(Oid::zero(), main, "refs/heads/other"),
                ],
                true,
            );
            assert_eq!(r[0].1, Err(ATOMIC_PUSH_FAILURE.into()));
            assert_eq!(r[1].1, refused("refs/heads/other"));
            assert!(repo.refname_to_id("refs/tags/v-new").is_err());
            assert!(repo.refname_to_id("refs/heads/other").is_err());
        }
    }

    #[test]
    fn atomic_pushes_land_whole_or_not_at_all() {
        for intake in intakes() {
            let (_s, _d, repo) = server();
            let main = oid(&repo, "main");
            let dev = oid(&repo, "dev");
            let stale = oid(&repo, "main~2");
            let cmds = vec![
                cmd(Oid::zero(), main, "refs/heads/new"),
                cmd(stale, main, "refs/heads/dev"),
            ];
            let empty = empty_pack();
            let r = execute(
                &repo,
                &request(cmds.clone(), true),
                &mut &empty[..],
                &intake,
                &policy(true),
                &sig(),
            );
            // As git: the stale old value fails the one transaction.
            assert_eq!(r.refs[0].1, Err(ATOMIC_TRANSACTION_FAILED.into()));
            assert_eq!(r.refs[1].1, Err(ATOMIC_TRANSACTION_FAILED.into()));
            assert!(repo.refname_to_id("refs/heads/new").is_err());
            assert_eq!(repo.refname_to_id("refs/heads/dev").unwrap(), dev);
            // Without atomic, the good one lands.
            let r = execute(
                &repo,
                &request(cmds, false),
                &mut &empty[..],
                &intake,
                &policy(true),
                &sig(),
            );
            assert_eq!(r.refs[0].1, Ok(()));
            assert!(r.refs[1].1.is_err());
        }
    }

    #[test]
    fn a_cut_or_broken_pack_changes_nothing() {
        for intake in intakes() {
            let (src, _d, repo) = server();
            let (old, new, pack) = one_commit_ahead(src.path(), &repo);
            let before = packs(&repo);
            for bad in [
                &pack[..pack.len() / 2],
                &pack[..pack.len() - 1],
                &b"PACKgarbage"[..],
                &b""[..],
            ] {
                let r = execute(
                    &repo,
                    &request(vec![cmd(old, new, "refs/heads/main")], false),
                    &mut &bad[..],
                    &intake,
                    &policy(true),
                    &sig(),
                );
                assert!(r.unpack.is_err(), "{r:?}");
                assert_eq!(r.refs[0].1, Err("unpacker error".into()));
                assert_eq!(repo.refname_to_id("refs/heads/main").unwrap(), old);
                assert_eq!(packs(&repo), before);
                assert_eq!(leftovers(&repo), 0);
            }
            // A pack whose commit lacks its tree: the indexer's connectivity
            // check refuses it.
            let tree = Repository::open(src.path())
                .unwrap()
                .find_commit(new)
                .unwrap()
                .tree_id();
            let list = format!("{new}\n");
            let (partial, ok) = git_io(src.path(), &["pack-objects", "--stdout", "-q"], &[], list.as_bytes());
            assert!(ok);
            assert!(repo.find_object(tree, None).is_err());
            let r = execute(
                &repo,
                &request(vec![cmd(old, new, "refs/heads/main")], false),
                &mut &partial[..],
                &intake,
                &policy(true),
                &sig(),
            );
            assert!(r.unpack.is_err(), "a pack missing objects was accepted: {r:?}");
            assert_eq!(repo.refname_to_id("refs/heads/main").unwrap(), old);
            assert_eq!(packs(&repo), before);
        }
    }

    /// `git receive-pack --stateless-rpc` of `bin` on a copy of `repo`, fed
    /// `body`: its report.
    fn git_report(bin: &str, repo: &std::path::Path, body: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let copy = tempfile::tempdir().unwrap();
        let (out, ok) = git_io(
            repo,
            &["clone", "-q", "--bare", "--mirror", ".", copy.path().to_str().unwrap()],
            &[],
            b"",
        );
        assert!(ok, "{}", String::from_utf8_lossy(&out));
        let mut child = std::process::Command::new(bin)
            .args(["receive-pack", "--stateless-rpc", "."])
            .current_dir(copy.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(body).unwrap();
        child.wait_with_output().unwrap().stdout
    }

    /// Ours for the same body, on another copy.
    fn our_report(repo: &std::path::Path, body: &[u8], intake: &Intake) -> Vec<u8> {
        let copy = tempfile::tempdir().unwrap();
        git(
            repo,
            &["clone", "-q", "--bare", "--mirror", ".", copy.path().to_str().unwrap()],
        );
        let r = Repository::open_bare(copy.path()).unwrap();
        let mut reader = PktReader::new(body);
        let req = read_request(&mut reader).unwrap();
        let head = r.find_reference("HEAD").unwrap().symbolic_target().unwrap().to_string();
        let policy = Policy {
            protected_ref: Some(head),
            may_push_protected: true,
            push_refs: None,
        };
        let mut pack = reader.into_inner();
        execute(&r, &req, &mut pack, intake, &policy, &sig()).encode(req.has("side-band-64k"))
    }

    #[test]
    fn reports_match_git_receive_pack_byte_for_byte() {
        let (_s, dir, repo) = server();
        let z = Oid::zero();
        let main = oid(&repo, "main");
        let dev = oid(&repo, "dev");
        let old = oid(&repo, "main~2");
        let blob = oid(&repo, "main:f");
        let unknown = Oid::from_str("1111111111111111111111111111111111111111").unwrap();
        let empty = empty_pack();
        let line = |c: (Oid, Oid, &str)| format!("{} {} {}", c.0, c.1, c.2);
        type Case<'a> = (&'a str, &'a str, Vec<(Oid, Oid, &'a str)>);
        let cases: Vec<Case> = vec![
            ("create", "report-status", vec![(z, main, "refs/heads/new")]),
            ("stale old value", "report-status", vec![(old, main, "refs/heads/dev")]),
            (
                "create an existing ref",
                "report-status",
                vec![(z, main, "refs/heads/dev")],
            ),
            ("delete", "report-status", vec![(dev, z, "refs/heads/dev")]),
            (
                "delete a missing ref",
                "report-status delete-refs",
                vec![(main, z, "refs/heads/none")],
            ),
            (
                "delete with a stale old value",
                "report-status delete-refs",
                vec![(old, z, "refs/heads/dev")],
            ),
            (
                "atomic with a funny refname after a good command",
                "report-status atomic",
                vec![
                    (z, main, "refs/heads/ok"),
                    (z, main, "refs/heads/a..b"),
                    (old, main, "refs/heads/dev"),
                ],
            ),
            ("funny refname", "report-status", vec![(z, main, "refs/heads/a..b")]),
            (
                "a blob on a branch",
                "report-status",
                vec![(z, blob, "refs/heads/blob")],
            ),
            ("a tag of a blob", "report-status", vec![(z, blob, "refs/tags/blob")]),
            ("an unknown object", "report-status", vec![(z, unknown, "refs/heads/x")]),
            (
                "delete the current branch",
                "report-status",
                vec![(dev, z, "refs/heads/dev")],
            ),
            (
                "atomic with a stale old value",
                "report-status atomic",
                vec![(z, main, "refs/heads/new"), (old, main, "refs/heads/dev")],
            ),
            (
                "non-atomic with a stale old value",
                "report-status",
                vec![(z, main, "refs/heads/new"), (old, main, "refs/heads/dev")],
            ),
            (
                "side-band",
                "report-status side-band-64k",
                vec![(z, main, "refs/heads/sb")],
            ),
        ];
        for (what, caps, cmds) in cases {
            let lines: Vec<String> = cmds.iter().map(|c| line(*c)).collect();
            let mut body = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                let text = if i == 0 {
                    format!("{l}\0{caps}\n")
                } else {
                    format!("{l}\n")
                };
                crate::git::pktline::write_data(&mut body, text.as_bytes()).unwrap();
            }
            crate::git::pktline::write_flush(&mut body);
            if cmds.iter().any(|c| !c.1.is_zero()) {
                body.extend_from_slice(&empty);
            }
            for bin in ["/usr/bin/git", "/usr/local/bin/git"] {
                if !std::path::Path::new(bin).exists() {
                    continue;
                }
                let theirs = git_report(bin, dir.path(), &body);
                for intake in intakes() {
                    let ours = our_report(dir.path(), &body, &intake);
                    assert_eq!(
                        String::from_utf8_lossy(&ours),
                        String::from_utf8_lossy(&theirs),
                        "{what} ({bin}, engine {})",
                        intake.engine.name()
                    );
                }
            }
        }
    }

    #[test]
    fn report_is_framed_for_side_band() {
        let mut r = Report {
            unpack: Ok(()),
            refs: vec![
                ("refs/heads/a".into(), Ok(())),
                ("refs/heads/b".into(), Err("non-fast-forward".into())),
            ],
            notes: Vec::new(),
        };
        let plain = r.encode(false);
        assert_eq!(
            plain,
            b"000eunpack ok\n0014ok refs/heads/a\n0025ng refs/heads/b non-fast-forward\n0000".to_vec()
        );
        let sb = r.encode(true);
        assert_eq!(&sb[..5], format!("{:04x}\x01", plain.len() + 5).as_bytes());
        assert!(sb.ends_with(b"0000"));
        assert_eq!(&sb[5..sb.len() - 4], &plain[..]);
        // Notes go first, on band 2, one line each; never without side-band.
        r.notes = vec!["a note".into(), "two\nlines".into()];
        assert_eq!(r.encode(false), plain);
        let sb = r.encode(true);
        assert!(
            sb.starts_with(b"000c\x02a note\n000f\x02two lines\n"),
            "{:?}",
            String::from_utf8_lossy(&sb)
        );
        assert!(sb.ends_with(&[&b"\x01"[..], &plain[..], b"0000"].concat()));
    }
}
