//! Stateless fetch negotiation on a git2 repository: want validation,
//! ACK/NAK computation (v0 multi_ack, multi_ack_detailed, no-done; v2
//! acknowledgments) and the shallow boundary for deepen requests.
//!
//! The rules follow git's `upload-pack.c` (2.47), checked against real
//! `git upload-pack --stateless-rpc` in the tests below.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use git2::{ObjectType, Oid, Repository};

use crate::git::pktline::{self, PktError};
use crate::git::upload_request::{FetchOptions, UploadRequest};

/// `deepen 2147483647` is what `git fetch --unshallow` sends.
pub const INFINITE_DEPTH: u32 = 0x7fff_ffff;

/// A negotiation error; `Display` gives git's message for the client.
#[derive(Debug)]
pub enum NegotiateError {
    /// A want that is neither a visible tip nor reachable from one.
    NotOurRef(Oid),
    /// A `deepen-not` that names no (visible) ref.
    BadDeepenNot(String),
    /// A client `shallow` line naming an object that is not a commit.
    InvalidShallow(Oid),
    /// deepen-since/deepen-not selected no commit at all.
    NoCommitsSelected,
    /// Reading the repository failed.
    Git(git2::Error),
    /// A line did not fit in a pkt-line.
    Pkt(PktError),
}

impl fmt::Display for NegotiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiateError::NotOurRef(oid) => write!(f, "upload-pack: not our ref {oid}"),
            NegotiateError::BadDeepenNot(r) => {
                write!(f, "git upload-pack: ambiguous deepen-not: deepen-not {r}")
            }
            NegotiateError::InvalidShallow(oid) => write!(f, "invalid shallow object {oid}"),
            NegotiateError::NoCommitsSelected => {
                write!(f, "no commits selected for shallow requests")
            }
            NegotiateError::Git(e) => write!(f, "upload-pack: {}", e.message()),
            NegotiateError::Pkt(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NegotiateError {}

impl From<git2::Error> for NegotiateError {
    fn from(e: git2::Error) -> Self {
        NegotiateError::Git(e)
    }
}

impl From<PktError> for NegotiateError {
    fn from(e: PktError) -> Self {
        NegotiateError::Pkt(e)
    }
}

// ---------------------------------------------------------------------
// Commit graph access with a cache.

/// Parents and committer date of commits, read once.
struct Graph<'r> {
    repo: &'r Repository,
    cache: HashMap<Oid, Option<(i64, Vec<Oid>)>>,
}

impl<'r> Graph<'r> {
    fn new(repo: &'r Repository) -> Self {
        Graph {
            repo,
            cache: HashMap::new(),
        }
    }

    /// `(committer date, parents)` when `oid` is a readable commit.
    fn commit(&mut self, oid: Oid) -> Option<(i64, Vec<Oid>)> {
        let repo = self.repo;
        self.cache
            .entry(oid)
            .or_insert_with(|| {
                let c = repo.find_commit(oid).ok()?;
                Some((c.time().seconds(), c.parent_ids().collect()))
            })
            .clone()
    }

    fn parents(&mut self, oid: Oid) -> Vec<Oid> {
        self.commit(oid).map(|(_, p)| p).unwrap_or_default()
    }

    fn date(&mut self, oid: Oid) -> Option<i64> {
        self.commit(oid).map(|(d, _)| d)
    }
}

/// The type of `oid`, or `None` when it is not in the repository.
fn object_type(repo: &Repository, oid: Oid) -> Option<ObjectType> {
    repo.odb().ok()?.read_header(oid).ok().map(|(_, t)| t)
}

/// The commit `oid` names, following tags; `None` for other objects. Types
/// come from object headers, so a tag of a big blob never inflates it.
fn peel_to_commit(repo: &Repository, mut oid: Oid) -> Option<Oid> {
    // Tags of tags: git allows chains; a cycle cannot be made (ids are hashes).
    for _ in 0..64 {
        match object_type(repo, oid)? {
            ObjectType::Commit => return Some(oid),
            ObjectType::Tag => oid = repo.find_tag(oid).ok()?.target_id(),
            _ => return None,
        }
    }
    None
}

// ---------------------------------------------------------------------
// Want validation.

/// Check every want: it must be one of `tips` (the oids and peeled oids of
/// the refs the caller may read), a commit reachable from one of them, or a
/// tree or blob in the repository (what a partial clone fetches lazily;
/// proving a blob reachable would mean walking every tree, and GitLab
/// allows any object id in a want). The first offender gives
/// [`NegotiateError::NotOurRef`]. Walks history only when some commit want
/// is not a tip, and stops once all are found.
pub fn validate_wants(repo: &Repository, wants: &[Oid], tips: &[Oid]) -> Result<(), NegotiateError> {
    let tip_set: HashSet<Oid> = tips.iter().copied().collect();
    let mut pending: Vec<Oid> = wants
        .iter()
        .copied()
        .filter(|w| !tip_set.contains(w))
        .filter(|w| !matches!(object_type(repo, *w), Some(ObjectType::Tree | ObjectType::Blob)))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut walk = repo.revwalk()?;
    for tip in tips {
        if let Some(commit) = peel_to_commit(repo, *tip) {
            walk.push(commit)?;
        }
    }
    let mut missing: HashSet<Oid> = pending.iter().copied().collect();
    for oid in walk {
        missing.remove(&oid?);
        if missing.is_empty() {
            return Ok(());
        }
    }
    pending.retain(|w| missing.contains(w));
    match pending.first() {
        Some(first) => Err(NegotiateError::NotOurRef(*first)),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------
// ACK computation.

/// One acknowledgment line of v0/v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// `ACK <oid> common` (multi_ack_detailed).
    Common(Oid),
    /// `ACK <oid> ready` (multi_ack_detailed).
    Ready(Oid),
    /// `ACK <oid> continue` (multi_ack).
    Continue(Oid),
    /// `ACK <oid>`.
    Ack(Oid),
    /// `NAK`.
    Nak,
}

impl Ack {
    /// The line text, without newline.
    pub fn line(&self) -> String {
        match self {
            Ack::Common(o) => format!("ACK {o} common"),
            Ack::Ready(o) => format!("ACK {o} ready"),
            Ack::Continue(o) => format!("ACK {o} continue"),
            Ack::Ack(o) => format!("ACK {o}"),
            Ack::Nak => "NAK".to_string(),
        }
    }
}

/// The result of a v0 negotiation round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V0Negotiation {
    /// Lines to send, in order, after any shallow section.
    pub acks: Vec<Ack>,
    /// Send the pack now (after `done`, or no-done once ready). When
    /// false, the reply ends after the acks.
    pub send_pack: bool,
    /// Haves found in the repository (git's have list, without the ones
    /// already implied by an earlier have): the `^` side of pack-objects.
    pub common: Vec<Oid>,
}

/// Negotiation state: what the client has told us it has.
struct Haves<'r> {
    graph: Graph<'r>,
    /// Commits the client has: every common have and its parents.
    they_have: HashSet<Oid>,
    /// Oldest committer date among common have commits.
    oldest_have: Option<i64>,
    common: Vec<Oid>,
    /// Cached "every want reaches a have"; false results are recomputed
    /// only after a new have was registered.
    ready: Option<bool>,
}

impl<'r> Haves<'r> {
    fn new(repo: &'r Repository) -> Self {
        Haves {
            graph: Graph::new(repo),
            they_have: HashSet::new(),
            oldest_have: None,
            common: Vec::new(),
            ready: None,
        }
    }

    /// Register `oid` if the repository has it; returns whether it does.
    fn got(&mut self, oid: Oid) -> bool {
        let Some(kind) = object_type(self.graph.repo, oid) else {
            return false;
        };
        let mut knew = false;
        if kind == ObjectType::Commit {
            if let Some((date, parents)) = self.graph.commit(oid) {
                knew = !self.they_have.insert(oid);
                self.oldest_have = Some(self.oldest_have.map_or(date, |d| d.min(date)));
                self.they_have.extend(parents);
            }
        }
        if !knew {
            self.common.push(oid);
            if self.ready == Some(false) {
                self.ready = None;
            }
        }
        true
    }

    /// git's `ok_to_give_up`: some have is common, and every want that is
    /// (or peels to) a commit reaches a commit the client has, not walking
    /// below the oldest have's date.
    fn ok_to_give_up(&mut self, wants: &[Oid]) -> bool {
        if self.common.is_empty() {
            return false;
        }
        if let Some(r) = self.ready {
            return r;
        }
        let repo = self.graph.repo;
        let result = wants.iter().all(|w| match peel_to_commit(repo, *w) {
            Some(c) => self.reaches_have(c),
            None => true,
        });
        self.ready = Some(result);
        result
    }

    /// Depth-first search from `start` for a commit in `they_have`.
    fn reaches_have(&mut self, start: Oid) -> bool {
        let min_date = self.oldest_have.unwrap_or(i64::MIN);
        let mut seen = HashSet::from([start]);
        let mut stack = vec![start];
        while let Some(c) = stack.pop() {
            if self.they_have.contains(&c) {
                return true;
            }
            for p in self.graph.parents(c) {
                if self.they_have.contains(&p) {
                    return true;
                }
                let recent = self.graph.date(p).is_some_and(|d| d >= min_date);
                if recent && seen.insert(p) {
                    stack.push(p);
                }
            }
        }
        false
    }
}

/// One stateless v0/v1 negotiation round, as git's upload-pack answers it.
///
/// For each have the repository holds: `ACK <oid> common` (detailed),
/// `ACK <oid> continue` (multi_ack) or, without multi_ack, `ACK <oid>` for
/// the first one. For a have it lacks, once every want reaches a common
/// commit: `ACK <that oid> ready` (detailed) or `continue`. Then at the end
/// of the haves: with `done`, `ACK <last common>` (multi_ack) or `NAK` when
/// nothing was common, and the pack; at a flush, `ACK <last> ready` if
/// ready, `NAK`, and with no-done once ready `ACK <last>` and the pack.
pub fn negotiate_v0(
    repo: &Repository,
    wants: &[Oid],
    haves: &[Oid],
    done: bool,
    options: &FetchOptions,
) -> V0Negotiation {
    let detailed = options.multi_ack_detailed;
    let multi_ack = detailed || options.multi_ack;
    let mut state = Haves::new(repo);
    let mut acks = Vec::new();
    let (mut got_common, mut got_other, mut sent_ready) = (false, false, false);
    let mut last = None;
    for &have in haves {
        if state.got(have) {
            got_common = true;
            last = Some(have);
            if detailed {
                acks.push(Ack::Common(have));
            } else if multi_ack {
                acks.push(Ack::Continue(have));
            } else if state.common.len() == 1 {
                acks.push(Ack::Ack(have));
            }
        } else {
            got_other = true;
            if multi_ack && state.ok_to_give_up(wants) {
                if detailed {
                    sent_ready = true;
                    acks.push(Ack::Ready(have));
                } else {
                    acks.push(Ack::Continue(have));
                }
            }
        }
    }
    let send_pack = match (done, last) {
        (true, Some(last)) => {
            if multi_ack {
                acks.push(Ack::Ack(last));
            }
            true
        }
        (true, None) => {
            acks.push(Ack::Nak);
            true
        }
        (false, _) => {
            if detailed && got_common && !got_other && state.ok_to_give_up(wants) {
                sent_ready = true;
                acks.extend(last.map(Ack::Ready));
            }
            if state.common.is_empty() || multi_ack {
                acks.push(Ack::Nak);
            }
            match last {
                Some(last) if options.no_done && sent_ready => {
                    acks.push(Ack::Ack(last));
                    true
                }
                _ => false,
            }
        }
    };
    V0Negotiation {
        acks,
        send_pack,
        common: state.common,
    }
}

/// Append the ack lines as pkt-lines.
pub fn write_acks(out: &mut Vec<u8>, acks: &[Ack]) -> Result<(), PktError> {
    for ack in acks {
        pktline::write_line(out, &ack.line())?;
    }
    Ok(())
}

/// The result of v2 negotiation: the `acknowledgments` section content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Negotiation {
    /// Every have the repository holds, in request order: `ACK <oid>`.
    pub acks: Vec<Oid>,
    /// Send `ready` and the pack now.
    pub ready: bool,
    /// Haves for the `^` side of pack-objects.
    pub common: Vec<Oid>,
}

/// Whether a v2 `fetch` reply starts with an `acknowledgments` section:
/// only when the client sent haves and no `done` (git sends the pack
/// straight away otherwise).
pub fn v2_sends_acknowledgments(req: &UploadRequest) -> bool {
    !req.done && !req.haves.is_empty()
}

/// v2 `fetch` negotiation, for when [`v2_sends_acknowledgments`] holds:
/// ACK each have the repository holds; ready when every want reaches one,
/// unless the client asked `wait-for-done`.
pub fn negotiate_v2(repo: &Repository, wants: &[Oid], haves: &[Oid], wait_for_done: bool) -> V2Negotiation {
    let mut state = Haves::new(repo);
    let acks: Vec<Oid> = haves.iter().copied().filter(|h| state.got(*h)).collect();
    let ready = !wait_for_done && state.ok_to_give_up(wants);
    V2Negotiation {
        acks,
        ready,
        common: state.common,
    }
}

/// Append the v2 `acknowledgments` section: the header, `NAK` when no have
/// was common else the `ACK` lines, and `ready` when ready. The caller
/// then writes a delim (ready) or a flush (not ready).
pub fn write_acknowledgments(out: &mut Vec<u8>, n: &V2Negotiation) -> Result<(), PktError> {
    pktline::write_line(out, "acknowledgments")?;
    if n.acks.is_empty() {
        pktline::write_line(out, "NAK")?;
    }
    for oid in &n.acks {
        pktline::write_line(out, &format!("ACK {oid}"))?;
    }
    if n.ready {
        pktline::write_line(out, "ready")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Shallow computation.

/// What a deepen request changes at the client's shallow boundary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShallowUpdate {
    /// `shallow <oid>` lines: new boundary commits.
    pub shallow: Vec<Oid>,
    /// `unshallow <oid>` lines: client boundary commits now filled in.
    pub unshallow: Vec<Oid>,
    /// The boundary pack-objects must respect (`--shallow <oid>`): the new
    /// shallow commits and every client shallow (unshallowed ones included).
    pub boundary: Vec<Oid>,
    /// Extra wants: the parents of unshallowed commits.
    pub extra_wants: Vec<Oid>,
    /// Extra `^` objects: the unshallowed commits (the client has them).
    pub extra_haves: Vec<Oid>,
    /// The served repository is itself shallow (v2 then always sends a
    /// `shallow-info` section, as git does).
    pub repo_is_shallow: bool,
}

/// Compute the shallow boundary for `req` (depth, deepen-since,
/// deepen-not, deepen-relative) given the client's `shallow` lines.
///
/// `visible` filters the full ref names `deepen-not` may name. Client
/// shallows the repository lacks are ignored (as git does). Without any
/// deepen the update has no lines and `boundary` is the client's shallows.
/// In v0 the caller sends the lines and a flush only when
/// `req.is_deepen()`; in v2 a `shallow-info` section also when the client
/// sent shallow lines.
pub fn compute_shallow(
    repo: &Repository,
    req: &UploadRequest,
    visible: &dyn Fn(&str) -> bool,
) -> Result<ShallowUpdate, NegotiateError> {
    let client = client_shallows(repo, &req.shallows)?;
    let roots = repo_shallow_roots(repo);
    let (new_shallow, not_shallow) = if let Some(depth) = req.depth {
        by_depth(repo, req, &client, depth, &roots)
    } else if req.deepen_since.is_some() || !req.deepen_not.is_empty() {
        by_rev_list(repo, req, visible)?
    } else {
        (Vec::new(), HashSet::new())
    };
    let mut up = finish(repo, &client, new_shallow, &not_shallow);
    up.repo_is_shallow = !roots.is_empty();
    if up.repo_is_shallow {
        // A shallow repository: its own boundary bounds every pack, and a
        // fetch without deepen learns the one its wants reach (as git's
        // deepen(INFINITE_DEPTH) in a shallow repository).
        let reached = reachable_roots(repo, &req.wants, &roots);
        if !req.is_deepen() {
            up.shallow = reached.iter().copied().filter(|r| !client.contains(r)).collect();
        }
        for r in reached {
            if !up.boundary.contains(&r) {
                up.boundary.push(r);
            }
        }
    }
    Ok(up)
}

/// The commits a shallow repository's `shallow` file names (its own
/// boundary, whose parents it lacks); empty for a complete repository.
pub fn repo_shallow_roots(repo: &Repository) -> Vec<Oid> {
    shallow_roots_at(repo.path())
}

/// [`repo_shallow_roots`] of the repository at `git_dir`, without opening it.
pub fn shallow_roots_at(git_dir: &std::path::Path) -> Vec<Oid> {
    let mut roots: Vec<Oid> = std::fs::read_to_string(git_dir.join("shallow"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Oid::from_str(l.trim()).ok())
        .collect();
    // In git's order (its graft list is sorted by id).
    roots.sort();
    roots.dedup();
    roots
}

/// The `roots` that `wants` reach.
fn reachable_roots(repo: &Repository, wants: &[Oid], roots: &[Oid]) -> Vec<Oid> {
    let roots: HashSet<Oid> = roots.iter().copied().collect();
    let mut graph = Graph::new(repo);
    let mut seen = HashSet::new();
    let mut stack: Vec<Oid> = wants.iter().filter_map(|w| peel_to_commit(repo, *w)).collect();
    let mut out = Vec::new();
    while let Some(c) = stack.pop() {
        if !seen.insert(c) {
            continue;
        }
        if roots.contains(&c) {
            out.push(c);
            continue;
        }
        stack.extend(graph.parents(c));
    }
    out.sort();
    out
}

/// The client's shallow commits the repository has; non-commits are an
/// error.
fn client_shallows(repo: &Repository, shallows: &[Oid]) -> Result<Vec<Oid>, NegotiateError> {
    let mut out = Vec::new();
    for &oid in shallows {
        match object_type(repo, oid) {
            None => continue,
            Some(ObjectType::Commit) => {
                if !out.contains(&oid) {
                    out.push(oid)
                }
            }
            Some(_) => return Err(NegotiateError::InvalidShallow(oid)),
        }
    }
    Ok(out)
}

/// Turn the new boundary and the not-shallow set into the update.
fn finish(repo: &Repository, client: &[Oid], new_shallow: Vec<Oid>, not_shallow: &HashSet<Oid>) -> ShallowUpdate {
    let mut graph = Graph::new(repo);
    let mut up = ShallowUpdate::default();
    for oid in new_shallow {
        if !client.contains(&oid) && !not_shallow.contains(&oid) && !up.shallow.contains(&oid) {
            up.shallow.push(oid);
        }
    }
    for &oid in client {
        if not_shallow.contains(&oid) {
            up.unshallow.push(oid);
            up.extra_haves.push(oid);
            up.extra_wants.extend(graph.parents(oid));
        }
        // Every client shallow stays a graft for pack-objects, the
        // unshallowed ones too (git's send_unshallow re-registers them):
        // otherwise `^<unshallowed>` among the haves would hide the very
        // parents this fetch must send.
        up.boundary.push(oid);
    }
    up.boundary.extend(up.shallow.iter().copied());
    up
}

/// `deepen N`: breadth-first from the wants (or, with deepen-relative,
/// from the client's shallows with N+1). Commits first reached at depth N
/// (1-based) form the new boundary; commits above it are not shallow.
fn by_depth(
    repo: &Repository,
    req: &UploadRequest,
    client: &[Oid],
    depth: u32,
    repo_roots: &[Oid],
) -> (Vec<Oid>, HashSet<Oid>) {
    let heads: Vec<Oid> = if req.deepen_relative {
        client.to_vec()
    } else {
        req.wants.iter().filter_map(|w| peel_to_commit(repo, *w)).collect()
    };
    if depth >= INFINITE_DEPTH {
        return (Vec::new(), client.iter().copied().collect());
    }
    let depth = if req.deepen_relative {
        depth.saturating_add(1)
    } else {
        depth
    };
    let mut graph = Graph::new(repo);
    let mut level: HashMap<Oid, u32> = HashMap::new();
    let mut queue = VecDeque::new();
    for h in heads {
        if graph.commit(h).is_some() && !level.contains_key(&h) {
            level.insert(h, 1);
            queue.push_back(h);
        }
    }
    let mut boundary = Vec::new();
    let mut not_shallow = HashSet::new();
    while let Some(c) = queue.pop_front() {
        let d = level.get(&c).copied().unwrap_or(1);
        // The repository's own boundary is shallow at any depth (git's
        // get_shallow_commits: a graft without parents).
        if d >= depth || repo_roots.contains(&c) {
            boundary.push(c);
            continue;
        }
        not_shallow.insert(c);
        for p in graph.parents(c) {
            if let Entry::Vacant(slot) = level.entry(p) {
                slot.insert(d + 1);
                queue.push_back(p);
            }
        }
    }
    (boundary, not_shallow)
}

/// Resolve a `deepen-not` name as git does (`v1`, `main`,
/// `refs/heads/x`...) to a commit, honouring `visible`.
fn resolve_deepen_not(repo: &Repository, name: &str, visible: &dyn Fn(&str) -> bool) -> Result<Oid, NegotiateError> {
    let bad = || NegotiateError::BadDeepenNot(name.to_string());
    let reference = repo.resolve_reference_from_short_name(name).map_err(|_| bad())?;
    let full = reference.name().ok_or_else(bad)?;
    if !visible(full) {
        return Err(bad());
    }
    let oid = reference.resolve().ok().and_then(|r| r.target()).ok_or_else(bad)?;
    peel_to_commit(repo, oid).ok_or_else(bad)
}

/// `deepen-since` / `deepen-not`: the commits `git rev-list
/// --max-age=<since> <wants> --not <deepen-not refs>` would list are not
/// shallow; those among them with a parent outside the set are the new
/// boundary.
fn by_rev_list(
    repo: &Repository,
    req: &UploadRequest,
    visible: &dyn Fn(&str) -> bool,
) -> Result<(Vec<Oid>, HashSet<Oid>), NegotiateError> {
    let heads: Vec<Oid> = req.wants.iter().filter_map(|w| peel_to_commit(repo, *w)).collect();
    let mut walk = repo.revwalk()?;
    for h in &heads {
        walk.push(*h)?;
    }
    for name in &req.deepen_not {
        walk.hide(resolve_deepen_not(repo, name, visible)?)?;
    }
    let allowed: HashSet<Oid> = walk.collect::<Result<_, _>>()?;
    let since = req.deepen_since.unwrap_or(i64::MIN);
    let mut graph = Graph::new(repo);
    let mut included = Vec::new();
    let mut seen = HashSet::new();
    let mut queue: VecDeque<Oid> = heads.into_iter().collect();
    while let Some(c) = queue.pop_front() {
        let recent = graph.date(c).is_some_and(|d| d >= since);
        if !allowed.contains(&c) || !recent || !seen.insert(c) {
            continue;
        }
        included.push(c);
        queue.extend(graph.parents(c));
    }
    if included.is_empty() {
        return Err(NegotiateError::NoCommitsSelected);
    }
    let mut not_shallow: HashSet<Oid> = included.iter().copied().collect();
    let boundary: Vec<Oid> = included
        .iter()
        .copied()
        .filter(|c| graph.parents(*c).iter().any(|p| !not_shallow.contains(p)))
        .collect();
    for b in &boundary {
        not_shallow.remove(b);
    }
    Ok((boundary, not_shallow))
}

/// Append the v0 shallow section: `shallow`/`unshallow` lines and a flush.
pub fn write_shallow_v0(out: &mut Vec<u8>, up: &ShallowUpdate) -> Result<(), PktError> {
    write_shallow_lines(out, up)?;
    pktline::write_flush(out);
    Ok(())
}

/// Append `shallow <oid>` then `unshallow <oid>` lines (no header, no
/// terminator; v2 wraps them in a `shallow-info` section). As git writes
/// them: without a trailing LF (`0034shallow <oid>`), which strict client
/// libraries require.
pub fn write_shallow_lines(out: &mut Vec<u8>, up: &ShallowUpdate) -> Result<(), PktError> {
    for oid in &up.shallow {
        pktline::write_data(out, format!("shallow {oid}").as_bytes())?;
    }
    for oid in &up.unshallow {
        pktline::write_data(out, format!("unshallow {oid}").as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::pktline::{decode, Packet};
    use crate::git::test_fixtures::{self, git, git_io};
    use crate::git::upload_request::{parse_fetch_args, parse_v0, parse_v2};
    use std::path::Path;

    /// Map commit subject -> id for the fixture.
    fn ids(dir: &Path) -> HashMap<String, String> {
        git(dir, &["log", "--all", "--format=%s %H"])
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(s, h)| (s.to_string(), h.to_string()))
            .collect()
    }

    fn body(lines: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            match l.as_str() {
                "<flush>" => pktline::write_flush(&mut out),
                "<delim>" => pktline::write_delim(&mut out),
                _ => pktline::write_line(&mut out, l).unwrap(),
            }
        }
        out
    }

    /// The negotiation part of a reply: text lines and flushes until the
    /// pack starts (raw `PACK` or side-band data) or the output ends.
    fn negotiation_part(mut out: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(Some((p, used))) = decode(out) {
            match p {
                Packet::Flush => lines.push("<flush>".to_string()),
                Packet::Delim => lines.push("<delim>".to_string()),
                Packet::Data(d) if matches!(d.first(), Some(1..=3)) => break,
                Packet::Data(d) => {
                    // The whole payload, LF included: the bytes must match.
                    let text = String::from_utf8_lossy(d).into_owned();
                    if text == "packfile\n" {
                        lines.push(text);
                        break;
                    }
                    lines.push(text);
                }
                Packet::ResponseEnd => lines.push("<end>".to_string()),
            }
            out = &out[used..];
        }
        lines
    }

    /// Sort each run of shallow/unshallow lines: git's order depends on
    /// its traversal, and the client does not care.
    fn normalise(mut lines: Vec<String>) -> Vec<String> {
        let is_shallow = |l: &String| l.starts_with("shallow ") || l.starts_with("unshallow ");
        let mut i = 0;
        while i < lines.len() {
            let start = i;
            while i < lines.len() && is_shallow(&lines[i]) {
                i += 1;
            }
            lines[start..i].sort();
            i += 1;
        }
        lines
    }

    fn real_v0(dir: &Path, req: &[u8]) -> Vec<String> {
        let (out, _) = git_io(dir, &["upload-pack", "--stateless-rpc", "."], &[], req);
        normalise(negotiation_part(&out))
    }

    /// What this module answers for the same v0 request.
    fn ours_v0(dir: &Path, req: &[u8]) -> Vec<String> {
        let repo = Repository::open(dir).unwrap();
        let req = parse_v0(req).unwrap();
        let refs = crate::git::refs::read(repo.path()).unwrap();
        let mut out = Vec::new();
        let result = (|| -> Result<(), NegotiateError> {
            validate_wants(&repo, &req.wants, &refs.tips)?;
            if req.is_deepen() {
                let up = compute_shallow(&repo, &req, &|_| true)?;
                write_shallow_v0(&mut out, &up)?;
            }
            let n = negotiate_v0(&repo, &req.wants, &req.haves, req.done, &req.options);
            write_acks(&mut out, &n.acks)?;
            Ok(())
        })();
        if let Err(e) = result {
            pktline::write_err(&mut out, &e.to_string());
        }
        normalise(negotiation_part(&out))
    }

    struct Case {
        first: Vec<String>,
        haves: Vec<String>,
        end: &'static str,
    }

    fn case(wants: &[&str], caps: &str, extra: &[&str], haves: &[&str], end: &'static str) -> Case {
        let mut first: Vec<String> = wants
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    format!("want {w} {caps}").trim_end().to_string()
                } else {
                    format!("want {w}")
                }
            })
            .collect();
        first.extend(extra.iter().map(|s| s.to_string()));
        Case {
            first,
            haves: haves.iter().map(|s| format!("have {s}")).collect(),
            end,
        }
    }

    fn request(c: &Case) -> Vec<u8> {
        let mut lines = c.first.clone();
        lines.push("<flush>".into());
        lines.extend(c.haves.iter().cloned());
        lines.push(c.end.into());
        body(&lines)
    }

    const DETAILED: &str = "multi_ack_detailed no-done";
    const UNKNOWN: &str = "1111111111111111111111111111111111111111";
    const UNKNOWN2: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn v0_acks_match_git() {
        let dir = test_fixtures::history_repo();
        let d = dir.path();
        let id = ids(d);
        let c = |s: &str| id[s].as_str();
        let main = c("c8");
        let side = c("s2");
        let cases = vec![
            case(&[main], DETAILED, &[], &[], "done"),
            case(&[main], DETAILED, &[], &[c("c4")], "<flush>"),
            case(&[main], "multi_ack_detailed", &[], &[c("c4"), c("c3")], "<flush>"),
            case(&[main], DETAILED, &[], &[UNKNOWN, c("c4"), UNKNOWN2], "<flush>"),
            case(&[main], DETAILED, &[], &[UNKNOWN, UNKNOWN2], "<flush>"),
            case(&[main], DETAILED, &[], &[UNKNOWN, UNKNOWN2], "done"),
            case(&[main], DETAILED, &[], &[c("c7"), c("c4")], "done"),
            case(&[main], DETAILED, &[], &[side], "<flush>"),
            case(&[main, side], DETAILED, &[], &[c("s1")], "<flush>"),
            case(&[main, side], DETAILED, &[], &[c("c7"), UNKNOWN], "<flush>"),
            case(&[main], "", &[], &[c("c4"), c("c3")], "<flush>"),
            case(&[main], "", &[], &[c("c4"), c("c3")], "done"),
            case(&[main], "", &[], &[UNKNOWN], "<flush>"),
            case(&[main], "multi_ack", &[], &[c("c4"), UNKNOWN], "<flush>"),
            case(&[main], "multi_ack", &[], &[c("c4"), UNKNOWN], "done"),
            case(&[c("c5")], DETAILED, &[], &[c("c7")], "<flush>"),
            case(&[c("c4")], DETAILED, &[], &[], "done"),
        ];
        for (i, cs) in cases.iter().enumerate() {
            let req = request(cs);
            assert_eq!(ours_v0(d, &req), real_v0(d, &req), "case {i}: {:?}", cs.first);
        }
    }

    #[test]
    fn tag_wants_and_tree_haves_match_git() {
        let dir = test_fixtures::history_repo();
        let d = dir.path();
        let id = ids(d);
        let tag = git(d, &["rev-parse", "t7"]);
        let tree = git(d, &["rev-parse", "HEAD^{tree}"]);
        for cs in [
            case(&[&id["c8"], &tag], DETAILED, &[], &[&id["c7"]], "<flush>"),
            case(&[&tag], DETAILED, &[], &[&tree], "<flush>"),
            case(&[&tag], DETAILED, &[], &[&tree, &id["c5"]], "done"),
        ] {
            let req = request(&cs);
            assert_eq!(ours_v0(d, &req), real_v0(d, &req), "{:?}", cs.first);
        }
    }

    #[test]
    fn not_our_ref_matches_git() {
        let dir = test_fixtures::history_repo();
        let d = dir.path();
        let tree = git(d, &["rev-parse", "HEAD^{tree}"]);
        let dangling = git(d, &["commit-tree", "-m", "dangling", &tree]);
        let req = request(&case(&[&dangling], DETAILED, &[], &[], "done"));
        let ours = ours_v0(d, &req);
        assert_eq!(ours, vec![format!("ERR upload-pack: not our ref {dangling}")]);
        assert_eq!(ours, real_v0(d, &req));
        // A missing object is not ours either.
        let req = request(&case(&[UNKNOWN], DETAILED, &[], &[], "done"));
        assert_eq!(
            ours_v0(d, &req),
            vec![format!("ERR upload-pack: not our ref {UNKNOWN}")]
        );
        // Reachable but not a tip: fine.
        let id = ids(d);
        let req = request(&case(&[&id["c2"]], DETAILED, &[], &[], "done"));
        assert_eq!(ours_v0(d, &req), vec!["NAK\n"]);
        assert_eq!(ours_v0(d, &req), real_v0(d, &req));
    }

    #[test]
    fn validate_wants_respects_the_visible_tips() {
        let dir = test_fixtures::history_repo();
        let d = dir.path();
        let repo = Repository::open(d).unwrap();
        let id = ids(d);
        let oid = |s: &str| Oid::from_str(&id[s]).unwrap();
        // Only `side` visible: c4 (its fork point) is reachable, c5 is not.
        let side_tips = vec![oid("s2")];
        assert!(validate_wants(&repo, &[oid("c4"), oid("s1")], &side_tips).is_ok());
        match validate_wants(&repo, &[oid("c4"), oid("c5")], &side_tips) {
            Err(NegotiateError::NotOurRef(o)) => assert_eq!(o, oid("c5")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(validate_wants(&repo, &[], &[]).is_ok());
        assert!(validate_wants(&repo, &[oid("c1")], &[]).is_err());
        // Trees and blobs in the repository may be wanted (lazy fetches of
        // a partial clone); an object that is not there may not.
        let c1 = repo.find_commit(oid("c1")).unwrap();
        let tree = c1.tree_id();
        let blob = c1.tree().unwrap().iter().next().unwrap().id();
        assert!(validate_wants(&repo, &[tree, blob], &[]).is_ok());
        let absent = Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert!(matches!(
            validate_wants(&repo, &[blob, absent], &side_tips),
            Err(NegotiateError::NotOurRef(o)) if o == absent
        ));
    }

    #[test]
    fn shallow_sections_match_git() {
        let dir = test_fixtures::history_repo();
        let d = dir.path();
        let id = ids(d);
        let c = |s: &str| id[s].clone();
        let main = c("c8");
        let s = |x: &str| format!("shallow {}", c(x));
        let since = |t: u32| format!("deepen-since {}", 1_577_836_800 + t);
        let cases: Vec<Vec<String>> = vec![
            vec!["deepen 1".into()],
            vec!["deepen 2".into()],
            vec!["deepen 3".into()],
            vec!["deepen 4".into()],
            vec!["deepen 5".into()],
            vec!["deepen 50".into()],
            vec![s("c7"), "deepen 3".into()],
            vec![s("c7"), "deepen 1".into()],
            vec![s("c5"), s("s1"), "deepen 4".into()],
            vec![s("c7"), "deepen 1".into(), "deepen-relative".into()],
            vec![s("c7"), "deepen 2147483647".into()],
            vec![since(500)],
            vec![since(455)],
            vec![s("c7"), since(300)],
            vec!["deepen-not side".into()],
            vec!["deepen-not refs/heads/side".into(), since(650)],
            vec![s("c4")],
            vec![since(100_000)],
            vec!["deepen-not nope".into()],
        ];
        for extra in &cases {
            let mut first = vec![format!("want {main} {DETAILED}")];
            let relative = extra.iter().any(|e| e == "deepen-relative");
            if relative {
                first[0].push_str(" deepen-relative");
            }
            first.extend(extra.iter().filter(|e| *e != "deepen-relative").cloned());
            let cs = Case {
                first,
                haves: vec![format!("have {}", c("c7"))],
                end: "done",
            };
            let req = request(&cs);
            let real = real_v0(d, &req);
            let ours = ours_v0(d, &req);
            // git dies without an ERR packet for some of these.
            if real.first().is_none_or(|l| l.starts_with("ERR")) {
                assert!(ours[0].starts_with("ERR"), "{extra:?}: {ours:?} vs {real:?}");
            } else {
                assert_eq!(ours, real, "{extra:?}");
            }
        }
    }

    #[test]
    fn shallow_update_feeds_pack_objects() {
        let dir = test_fixtures::history_repo();
        let d = dir.path();
        let repo = Repository::open(d).unwrap();
        let id = ids(d);
        let oid = |s: &str| Oid::from_str(&id[s]).unwrap();
        let mut req = UploadRequest {
            wants: vec![oid("c8")],
            shallows: vec![oid("c7"), oid("c1")],
            depth: Some(3),
            ..Default::default()
        };
        let up = compute_shallow(&repo, &req, &|_| true).unwrap();
        assert_eq!(up.unshallow, vec![oid("c7")]);
        assert_eq!(up.extra_haves, vec![oid("c7")]);
        assert_eq!(
            up.extra_wants,
            repo.find_commit(oid("c7")).unwrap().parent_ids().collect::<Vec<_>>()
        );
        assert!(up.boundary.contains(&oid("c1")));
        assert!(up.shallow.iter().all(|s| up.boundary.contains(s)));
        // No deepen: nothing to say, the client's boundary is kept.
        req.depth = None;
        let up = compute_shallow(&repo, &req, &|_| true).unwrap();
        assert!(up.shallow.is_empty() && up.unshallow.is_empty());
        assert_eq!(up.boundary, vec![oid("c7"), oid("c1")]);
        // A hidden deepen-not ref is refused like a missing one.
        req.deepen_not = vec!["side".into()];
        assert!(matches!(
            compute_shallow(&repo, &req, &|n| n != "refs/heads/side"),
            Err(NegotiateError::BadDeepenNot(_))
        ));
        // A non-commit shallow is an error.
        req.deepen_not.clear();
        req.shallows = vec![repo.find_commit(oid("c1")).unwrap().tree_id()];
        assert!(matches!(
            compute_shallow(&repo, &req, &|_| true),
            Err(NegotiateError::InvalidShallow(_))
        ));
    }

    fn real_v2(dir: &Path, args: &[String]) -> Vec<String> {
        let mut lines = vec![
            "command=fetch".to_string(),
            "object-format=sha1".into(),
            "<delim>".into(),
        ];
        lines.extend(args.iter().cloned());
        lines.push("<flush>".into());
        let (out, _) = git_io(
            dir,
            &["upload-pack", "--stateless-rpc", "."],
            &[("GIT_PROTOCOL", "version=2")],
            &body(&lines),
        );
        negotiation_part(&out)
    }

    fn ours_v2(dir: &Path, args: &[String]) -> Vec<String> {
        let mut lines = vec!["command=fetch".to_string(), "<delim>".into()];
        lines.extend(args.iter().cloned());
        lines.push("<flush>".into());
        let cmd = parse_v2(&body(&lines)).unwrap().unwrap();
        let req = parse_fetch_args(&cmd.args).unwrap();
        let repo = Repository::open(dir).unwrap();
        let mut out = Vec::new();
        if !v2_sends_acknowledgments(&req) {
            pktline::write_line(&mut out, "packfile").unwrap();
            return negotiation_part(&out);
        }
        let n = negotiate_v2(&repo, &req.wants, &req.haves, req.options.wait_for_done);
        write_acknowledgments(&mut out, &n).unwrap();
        if n.ready {
            pktline::write_delim(&mut out);
            pktline::write_line(&mut out, "packfile").unwrap();
        } else {
            pktline::write_flush(&mut out);
        }
        negotiation_part(&out)
    }

    #[test]
    fn v2_acknowledgments_match_git() {
        let dir = test_fixtures::history_repo();
        let d = dir.path();
        let id = ids(d);
        let want = format!("want {}", id["c8"]);
        let have = |s: &str| format!("have {}", id.get(s).map(String::as_str).unwrap_or(s));
        let cases: Vec<Vec<String>> = vec![
            vec![want.clone()],
            vec![want.clone(), have("c4")],
            vec![want.clone(), have("c4"), "done".into()],
            vec![want.clone(), have(UNKNOWN)],
            vec![want.clone(), have("c7"), have(UNKNOWN), have("c5")],
            vec![want.clone(), have("c7"), "wait-for-done".into()],
            vec![want.clone(), format!("want {}", id["s2"]), have("s1")],
        ];
        for args in &cases {
            assert_eq!(ours_v2(d, args), real_v2(d, args), "{args:?}");
        }
    }
}
