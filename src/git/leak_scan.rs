//! Leaked-token push protection, the repository side: finds the strings of
//! this instance's token format in what a push adds, for the service layer
//! to look up by digest (`service::leaks`). Nothing here knows tokens'
//! rows: a [`Candidate`] is only a string of the right shape.
//!
//! What a push adds is the objects of its quarantine (`objects/incoming-*`,
//! one pack with either engine) that the repository does not hold already
//! (a thin pack's bases, which index-pack or libgit2's indexer copied in,
//! and objects a client sent again, are not new). Of those, blobs of at
//! most [`MAX_BLOB_SIZE`] bytes and commit and tag objects (their messages;
//! at most [`MAX_MESSAGE_SIZE`]) are read, one at a time per worker thread,
//! and searched for each prefix with `memchr::memmem`; only a hit is
//! checked further (exactly [`TokenFormat::len`] token characters after
//! the prefix, and no token character on either side). Where a blob was
//! found (its path and the commit that brought it) is worked out only when
//! something was found ([`locate`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Odb, Oid, Repository};
use memchr::memmem;

/// Blobs larger than this are not read (as GitLab's secret push protection).
pub const MAX_BLOB_SIZE: usize = 1 << 20;
/// Commit and tag objects larger than this are not read (git accepts any
/// size; a message this long is not a message).
pub const MAX_MESSAGE_SIZE: usize = 32 << 20;
/// The most distinct candidates one push reports; past it the rest are
/// not looked at (each costs a database lookup).
pub const MAX_CANDIDATES: usize = 1000;

/// Can `b` be part of a token (`[A-Za-z0-9_-]`)?
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The token format searched for: one of the prefixes, then exactly `len`
/// token characters, with no token character just before or just after.
#[derive(Debug, Clone)]
pub struct TokenFormat {
    finders: Vec<memmem::Finder<'static>>,
    len: usize,
}

impl TokenFormat {
    /// The format of `prefixes` (empty ones dropped: a format without a
    /// prefix would match every word of `len` characters) and `len`
    /// characters after them.
    pub fn new<S: AsRef<str>>(prefixes: &[S], len: usize) -> TokenFormat {
        let mut seen: Vec<&str> = Vec::new();
        for p in prefixes.iter().map(AsRef::as_ref) {
            if !p.is_empty() && !seen.contains(&p) {
                seen.push(p);
            }
        }
        TokenFormat {
            finders: seen
                .iter()
                .map(|p| memmem::Finder::new(p.as_bytes()).into_owned())
                .collect(),
            len,
        }
    }

    /// No prefix: nothing can match.
    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The longest prefix's length.
    pub fn max_prefix_len(&self) -> usize {
        self.finders.iter().map(|f| f.needle().len()).max().unwrap_or(0)
    }

    /// Every string of the format in `data`, in order, repeats included.
    pub fn find_all(&self, data: &[u8], out: &mut Vec<Candidate>) {
        self.find_within(data, true, true, out)
    }

    /// [`TokenFormat::find_all`] in a window of an object: a string whose
    /// neighbour lies outside the window counts only where the window
    /// starts (`starts`) or ends (`ends`) the object.
    pub fn find_within(&self, data: &[u8], starts: bool, ends: bool, out: &mut Vec<Candidate>) {
        for f in &self.finders {
            let plen = f.needle().len();
            for at in f.find_iter(data) {
                // A token character just before: the prefix is inside a
                // longer word (a prefix is made of token characters).
                if at == 0 && !starts || at > 0 && is_token_byte(data[at - 1]) {
                    continue;
                }
                let start = at + plen;
                let end = start + self.len;
                if end > data.len() || !data[start..end].iter().all(|&b| is_token_byte(b)) {
                    continue;
                }
                match data.get(end) {
                    Some(&b) if is_token_byte(b) => continue,
                    None if !ends => continue,
                    _ => {}
                }
                // ASCII by construction.
                let s = String::from_utf8_lossy(&data[at..end]).into_owned();
                out.push(Candidate(s));
            }
        }
    }
}

/// A string of the token format: perhaps a token, perhaps not. Its `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Candidate(String);

impl Candidate {
    /// The string, to digest it; never to show it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Candidate(<redacted>)")
    }
}

/// Where a candidate was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file: its path, and the new commit that brought it.
    File { path: String, commit: Oid },
    /// The message (or headers) of a new commit.
    CommitMessage(Oid),
    /// The message of a new annotated tag.
    TagMessage { name: String, tag: Oid },
    /// A new object no pushed commit reaches (a lone blob, a blob a tag
    /// points at).
    Object(Oid),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File { path, commit } => write!(f, "in {path} at commit {commit}"),
            Place::CommitMessage(c) => write!(f, "in the message of commit {c}"),
            Place::TagMessage { name, tag } => write!(f, "in the message of tag {name} ({tag})"),
            Place::Object(o) => write!(f, "in object {o}, which no pushed commit reaches"),
        }
    }
}

/// A candidate and the new object it is in.
#[derive(Debug, Clone)]
pub struct Finding {
    pub candidate: Candidate,
    pub object: Oid,
    pub kind: ObjectType,
}

/// The quarantine's pack indexes.
fn indexes(quarantine: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(quarantine.join("pack"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    v.sort();
    Ok(v)
}

/// The object database of a folder of objects alone (no alternates but
/// its own).
fn odb_of(objects: &Path) -> Result<Odb<'static>, git2::Error> {
    let odb = Odb::new()?;
    let dir = objects
        .to_str()
        .ok_or_else(|| git2::Error::from_str("the objects folder path is not UTF-8"))?;
    odb.add_disk_alternate(dir)?;
    Ok(odb)
}

/// Why a scan could not finish (the push is then refused: unchecked).
#[derive(Debug)]
pub struct ScanError(pub String);

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for ScanError {
    fn from(e: std::io::Error) -> Self {
        ScanError(e.to_string())
    }
}

impl From<git2::Error> for ScanError {
    fn from(e: git2::Error) -> Self {
        ScanError(e.message().to_string())
    }
}

/// Searches what the quarantine at `quarantine` adds to the repository
/// whose objects are at `objects`: each distinct candidate once, with the
/// first new object it was found in (at most [`MAX_CANDIDATES`]).
///
/// The quarantine's pack is read as it is, not object by object: a whole
/// (undeltified) object is inflated and searched; a delta is searched only
/// where it differs from its base, that is in windows around each literal
/// it inserts and each seam between two of its parts, wide enough to hold
/// a token and the characters either side of it. Whatever else a delta
/// holds it copied from its base in runs longer than that, so a token there
/// is in the base too: found when the base is searched (it is new, and read
/// whole or the same way), or there already (the base is an object the
/// repository had, such as a thin pack's base). A delta whose base is not
/// searched (a blob over the size limit) is searched whole. What this
/// saves is resolving deltas: ripgrep's history is 120 MB of blobs but 12
/// MB of pack data.
///
/// `threads` workers each read a stretch of the pack (in pack order, so
/// that bases are near), one object at a time, with a cache of their own.
pub fn scan(
    format: &TokenFormat,
    objects: &Path,
    quarantine: &Path,
    threads: usize,
) -> Result<Vec<Finding>, ScanError> {
    if format.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = Found::default();
    for idx in indexes(quarantine)? {
        let n = PackReader::open(&idx)?.entries.len();
        let threads = if n < PARALLEL_FROM { 1 } else { threads.clamp(1, 8) };
        let per = n.div_ceil(threads).max(1);
        let parts: Vec<Result<Found, ScanError>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..n)
                .step_by(per)
                .map(|from| {
                    let idx = &idx;
                    std::thread::Builder::new()
                        .name("leak-scan".into())
                        .stack_size(STACK_BYTES)
                        .spawn_scoped(s, move || -> Result<Found, ScanError> {
                            let here = if holds_objects(objects) {
                                Some(odb_of(objects)?)
                            } else {
                                None
                            };
                            let mut pack = PackReader::open(idx)?;
                            let mut found = Found::default();
                            pack.scan(format, here.as_ref(), from..(from + per).min(n), &mut found)?;
                            Ok(found)
                        })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| match w {
                    Ok(h) => h.join().unwrap_or_else(|_| Err(bad("a scan thread panicked"))),
                    Err(e) => Err(bad(format!("cannot start a scan thread: {e}"))),
                })
                .collect()
        });
        for part in parts {
            for f in part?.findings {
                if found.seen.len() < MAX_CANDIDATES && found.seen.insert(f.candidate.clone()) {
                    found.findings.push(f);
                }
            }
        }
        // Past the cap the rest went unread: a push cannot hide a live
        // token behind a thousand look-alikes.
        if found.seen.len() >= MAX_CANDIDATES {
            return Err(bad(format!(
                "it holds {MAX_CANDIDATES} or more strings shaped like tokens, too many to check"
            )));
        }
    }
    Ok(found.findings)
}

/// Packs of fewer entries (most pushes) are read on one thread (the tests
/// split small ones too).
const PARALLEL_FROM: usize = if cfg!(test) { 100 } else { 2000 };

#[derive(Default)]
struct Found {
    findings: Vec<Finding>,
    seen: HashSet<Candidate>,
}

impl Found {
    fn add(&mut self, hits: &mut Vec<Candidate>, object: Oid, kind: ObjectType) {
        for c in hits.drain(..) {
            if self.seen.len() >= MAX_CANDIDATES {
                break;
            }
            if self.seen.insert(c.clone()) {
                self.findings.push(Finding {
                    candidate: c,
                    object,
                    kind,
                });
            }
        }
    }
}

/// The bytes of inflated objects and deltas one worker keeps for reuse
/// while a pack is read (as git's delta base cache), or room for two of the
/// largest entry it kept, if more. git writes a delta's family together,
/// so a small cache serves; a larger one is slower (each entry is fresh
/// memory, to be faulted in: with 64 MiB ripgrep's scan took 44 ms, with
/// 8 MiB 39, with 2 MiB 36; 8 leaves room for packs written in another
/// order than git's).
const CACHE_BYTES: usize = 8 << 20;
/// The largest entry a worker inflates (a base of a delta it searches,
/// or a step between: git never deltifies a blob against one 32 times its
/// size): a pack that needs a larger one is not checked, and refused.
/// The cache keeps any entry up to this, with [`CACHE_BYTES`] of room
/// beside the largest.
const MAX_INFLATED: u64 = 64 << 20;
/// The most bytes the entries of one chain being read may hold at once
/// (each level stays in memory while the levels below it are read).
const MAX_PINNED: usize = if cfg!(test) { 8 << 20 } else { 256 << 20 };
/// The most bytes a worker inflates for a pack of `n` bytes: 32 times
/// the pack, at least 1 GiB (ripgrep's 6.1 MB pack inflates 13.6 MB;
/// the unit tests, at least 64 MiB).
/// Past it (a pack whose objects are read again and again) the push is
/// refused as not checked, rather than hold a thread for hours.
fn max_inflated_total(pack_bytes: u64) -> u64 {
    pack_bytes
        .saturating_mul(32)
        .max(if cfg!(test) { 64 << 20 } else { 1 << 30 })
}
/// The longest delta chain followed: git's own limit (`pack-objects
/// --depth` stops at 4095). Reads recurse once per level, so the scan's
/// threads get [`STACK_BYTES`] of stack.
const MAX_DEPTH: usize = 4095;
/// The stack of a scan thread: enough for [`MAX_DEPTH`] levels of
/// `read_range` with room to spare (only what is touched is used).
const STACK_BYTES: usize = 64 << 20;
/// The most delta instructions one worker follows for a pack: past it (a
/// pack made of long chains of tiny copies, which git does not write) the
/// push is refused as not checked, rather than hold a thread for hours.
const MAX_VISITS: u64 = 100_000_000;
/// The most instructions one delta may hold (32 bytes each in memory).
const MAX_OPS: usize = 1 << 20;

/// How an entry of a pack is stored.
#[derive(Debug, Clone, Copy)]
enum Stored {
    Whole(ObjectType),
    /// A delta against the entry at this position.
    Delta(usize),
}

/// A part of a delta's result: bytes it inserts (at this index of its
/// data) or copies from its base (from this offset).
#[derive(Debug, Clone, Copy)]
enum Part {
    Insert(usize),
    Copy(u64),
}

#[derive(Debug, Clone, Copy)]
struct Op {
    /// Where in the result it starts, and how long it is.
    at: u64,
    len: u64,
    part: Part,
}

/// An entry read: a whole object's bytes, or a delta's data and parts.
enum Loaded {
    Whole(Vec<u8>),
    Delta { data: Vec<u8>, ops: Vec<Op>, size: u64 },
}

impl Loaded {
    fn size(&self) -> u64 {
        match self {
            Loaded::Whole(d) => d.len() as u64,
            Loaded::Delta { size, .. } => *size,
        }
    }

    fn cost(&self) -> usize {
        match self {
            Loaded::Whole(d) => d.len(),
            Loaded::Delta { data, ops, .. } => data.len() + ops.len() * std::mem::size_of::<Op>(),
        }
    }
}

/// One pack of a quarantine, read through its index.
struct PackReader {
    file: Window,
    /// (offset, id) of each entry, in pack order; an entry ends where the
    /// next starts (the last, at the trailing checksum).
    entries: Vec<(u64, Oid)>,
    end: u64,
    /// Positions in `entries`, by id.
    by_id: HashMap<Oid, usize>,
    stored: Vec<Option<(Stored, u64, u64)>>,
    kinds: Vec<Option<ObjectType>>,
    cache: Vec<Option<std::rc::Rc<Loaded>>>,
    order: std::collections::VecDeque<usize>,
    cached: usize,
    /// The bytes `cache` may hold ([`CACHE_BYTES`]).
    budget: usize,
    z: flate2::Decompress,
    /// Delta instructions followed so far ([`MAX_VISITS`]).
    visits: u64,
    /// Bytes inflated so far, and the most allowed ([`max_inflated_total`]).
    inflated: u64,
    max_inflated: u64,
    /// Bytes held by the chain being read ([`MAX_PINNED`]).
    pinned: usize,
}

/// A pack file read through a window of it kept in memory: entries are
/// read in pack order, so most reads are inside the window.
struct Window {
    file: std::fs::File,
    buf: Vec<u8>,
    /// Where in the file `buf` starts.
    at: u64,
    len: u64,
    /// A read before the window.
    back: Vec<u8>,
}

/// The window's size.
const WINDOW: usize = 1 << 20;

impl Window {
    /// Up to `want` bytes of the file from `at` (fewer only at its end).
    fn bytes(&mut self, at: u64, want: usize) -> Result<&[u8], ScanError> {
        use std::os::unix::fs::FileExt;
        let want = want.min(WINDOW) as u64;
        let end = (at + want).min(self.len);
        if at >= self.at && end <= self.at + self.buf.len() as u64 {
            let from = (at - self.at) as usize;
            return Ok(&self.buf[from..from + (end - at) as usize]);
        }
        if at < self.at {
            // Back to a base: read just that, and keep the window where
            // the reading goes on.
            self.back.resize((end - at) as usize, 0);
            self.file.read_exact_at(&mut self.back, at)?;
            return Ok(&self.back);
        }
        let n = (self.len.saturating_sub(at)).min(WINDOW as u64) as usize;
        self.buf.resize(n, 0);
        self.file.read_exact_at(&mut self.buf, at)?;
        self.at = at;
        Ok(&self.buf[..(end - at) as usize])
    }
}

fn bad(why: impl Into<String>) -> ScanError {
    ScanError(why.into())
}

impl PackReader {
    fn open(idx: &Path) -> Result<PackReader, ScanError> {
        let entries = read_index(idx)?;
        let pack = idx.with_extension("pack");
        let file = std::fs::File::open(&pack)?;
        let len = file.metadata()?.len();
        let end = len.checked_sub(20).ok_or_else(|| bad("the pack is truncated"))?;
        let by_id = entries.iter().enumerate().map(|(i, (_, id))| (*id, i)).collect();
        let n = entries.len();
        Ok(PackReader {
            file: Window {
                file,
                buf: Vec::new(),
                at: 0,
                len,
                back: Vec::new(),
            },
            entries,
            end,
            by_id,
            stored: vec![None; n],
            kinds: vec![None; n],
            cache: vec![None; n],
            order: std::collections::VecDeque::new(),
            cached: 0,
            budget: CACHE_BYTES,
            visits: 0,
            inflated: 0,
            max_inflated: max_inflated_total(len),
            pinned: 0,
            z: flate2::Decompress::new(true),
        })
    }

    fn span(&self, pos: usize) -> (u64, u64) {
        let start = self.entries[pos].0;
        let end = self.entries.get(pos + 1).map_or(self.end, |e| e.0);
        (start, end)
    }

    /// How entry `pos` is stored, its inflated size, and where its zlib
    /// data starts.
    fn header(&mut self, pos: usize) -> Result<(Stored, u64, u64), ScanError> {
        if let Some(h) = self.stored[pos] {
            return Ok(h);
        }
        let (start, end) = self.span(pos);
        let mut head = [0u8; 32];
        let n = ((end - start) as usize).min(head.len());
        let got = self.file.bytes(start, n)?;
        let n = got.len();
        head[..n].copy_from_slice(got);
        let head = &head[..n];
        let mut i = 0;
        let byte = |i: usize| head.get(i).copied().ok_or_else(|| bad("a pack entry header is cut"));
        let mut c = byte(i)?;
        i += 1;
        let kind = (c >> 4) & 7;
        let mut size = u64::from(c & 15);
        let mut shift = 4;
        while c & 0x80 != 0 {
            c = byte(i)?;
            i += 1;
            if shift > 57 {
                return Err(bad("a pack entry size is too large"));
            }
            size |= u64::from(c & 0x7f) << shift;
            shift += 7;
        }
        let stored = match kind {
            1 => Stored::Whole(ObjectType::Commit),
            2 => Stored::Whole(ObjectType::Tree),
            3 => Stored::Whole(ObjectType::Blob),
            4 => Stored::Whole(ObjectType::Tag),
            6 => {
                let mut c = byte(i)?;
                i += 1;
                let mut back = u64::from(c & 0x7f);
                while c & 0x80 != 0 {
                    c = byte(i)?;
                    i += 1;
                    back = back
                        .checked_add(1)
                        .and_then(|b| b.checked_mul(128))
                        .ok_or_else(|| bad("a delta's base offset overflows"))?
                        | u64::from(c & 0x7f);
                }
                let base_at = start
                    .checked_sub(back)
                    .ok_or_else(|| bad("a delta's base is before the pack"))?;
                let base = self
                    .entries
                    .binary_search_by_key(&base_at, |e| e.0)
                    .map_err(|_| bad("a delta's base is not an entry"))?;
                Stored::Delta(base)
            }
            7 => {
                let raw = head.get(i..i + 20).ok_or_else(|| bad("a delta's base id is cut"))?;
                i += 20;
                let id = Oid::from_bytes(raw)?;
                let base = *self
                    .by_id
                    .get(&id)
                    .ok_or_else(|| bad(format!("the base {id} of a delta is not in the pack")))?;
                Stored::Delta(base)
            }
            k => return Err(bad(format!("unknown pack entry type {k}"))),
        };
        let h = (stored, size, start + i as u64);
        self.stored[pos] = Some(h);
        Ok(h)
    }

    /// The type of the object at `pos` (a delta's is its base's).
    fn kind(&mut self, pos: usize) -> Result<ObjectType, ScanError> {
        let mut chain = Vec::new();
        let mut at = pos;
        let kind = loop {
            if let Some(k) = self.kinds[at] {
                break k;
            }
            match self.header(at)?.0 {
                Stored::Whole(k) => break k,
                Stored::Delta(base) => {
                    chain.push(at);
                    if chain.len() > MAX_DEPTH {
                        return Err(bad("a delta chain is too long"));
                    }
                    at = base;
                }
            }
        };
        self.kinds[at] = Some(kind);
        for p in chain {
            self.kinds[p] = Some(kind);
        }
        Ok(kind)
    }

    /// Inflates the zlib data of entry `pos`, `size` bytes.
    fn inflate(&mut self, pos: usize, data_at: u64, size: u64) -> Result<Vec<u8>, ScanError> {
        let (_, end) = self.span(pos);
        if size > MAX_INFLATED {
            return Err(bad(format!(
                "a searched object's delta base is larger than {} MiB",
                MAX_INFLATED >> 20
            )));
        }
        self.inflated += size;
        if self.inflated > self.max_inflated {
            return Err(bad("its objects take too long to read (read again and again)"));
        }
        let size = usize::try_from(size).map_err(|_| bad("an object is too large"))?;
        let mut out = Vec::with_capacity(size);
        self.z.reset(true);
        let mut at = data_at;
        loop {
            if at >= end {
                return Err(bad("a pack entry is cut"));
            }
            let mut input = self.file.bytes(at, (end - at).min(WINDOW as u64) as usize)?;
            if input.is_empty() {
                return Err(bad("a pack entry is cut"));
            }
            at += input.len() as u64;
            while !input.is_empty() {
                let (was_in, was_out) = (self.z.total_in(), self.z.total_out());
                let status = self
                    .z
                    .decompress_vec(input, &mut out, flate2::FlushDecompress::None)
                    .map_err(|e| bad(format!("cannot inflate a pack entry: {e}")))?;
                input = &input[(self.z.total_in() - was_in) as usize..];
                if status == flate2::Status::StreamEnd {
                    if out.len() != size {
                        return Err(bad("a pack entry inflates to another size than it says"));
                    }
                    return Ok(out);
                }
                if self.z.total_in() == was_in && self.z.total_out() == was_out {
                    return Err(bad("a pack entry inflates to more than it says"));
                }
            }
        }
    }

    /// Entry `pos`, read (from the cache when it is there).
    fn load(&mut self, pos: usize) -> Result<std::rc::Rc<Loaded>, ScanError> {
        if let Some(l) = &self.cache[pos] {
            return Ok(l.clone());
        }
        let (stored, size, data_at) = self.header(pos)?;
        let data = self.inflate(pos, data_at, size)?;
        self.keep(pos, stored, data)
    }

    /// Entry `pos` from its inflated `data`, kept in the cache if it fits.
    fn keep(&mut self, pos: usize, stored: Stored, data: Vec<u8>) -> Result<std::rc::Rc<Loaded>, ScanError> {
        let loaded = match stored {
            Stored::Whole(_) => Loaded::Whole(data),
            Stored::Delta(_) => {
                let (ops, size) = parse_delta(&data)?;
                Loaded::Delta { data, ops, size }
            }
        };
        let loaded = std::rc::Rc::new(loaded);
        let cost = loaded.cost();
        if cost as u64 <= MAX_INFLATED {
            // Room beside the largest entry kept so far: a big base stays
            // while the small deltas on it come and go.
            self.budget = self.budget.max(cost + CACHE_BYTES);
            while self.cached + cost > self.budget {
                let Some(old) = self.order.pop_front() else { break };
                if let Some(l) = self.cache[old].take() {
                    self.cached -= l.cost();
                }
            }
            self.cache[pos] = Some(loaded.clone());
            self.order.push_back(pos);
            self.cached += cost;
        }
        Ok(loaded)
    }

    /// Appends bytes `from..to` of the object at `pos` to `out`.
    fn read_range(&mut self, pos: usize, from: u64, to: u64, out: &mut Vec<u8>, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(bad("a delta chain is too long"));
        }
        let l = self.load(pos)?;
        let cost = l.cost();
        self.pinned += cost;
        if self.pinned > MAX_PINNED {
            return Err(bad(format!(
                "a delta chain needs more than {} MiB to read",
                MAX_PINNED >> 20
            )));
        }
        let read = self.read_loaded(&l, pos, from, to, out, depth);
        self.pinned -= cost;
        read
    }

    /// [`PackReader::read_range`] of the entry at `pos`, loaded as `l`.
    fn read_loaded(
        &mut self,
        l: &Loaded,
        pos: usize,
        from: u64,
        to: u64,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), ScanError> {
        if to > l.size() || from > to {
            return Err(bad("a delta reads past its base"));
        }
        match l {
            Loaded::Whole(d) => out.extend_from_slice(&d[from as usize..to as usize]),
            Loaded::Delta { data, ops, .. } => {
                let Stored::Delta(base) = self.header(pos)?.0 else {
                    return Err(bad("a delta without a base"));
                };
                let first = ops.partition_point(|op| op.at + op.len <= from);
                for op in &ops[first..] {
                    if op.at >= to {
                        break;
                    }
                    self.visits += 1;
                    if self.visits > MAX_VISITS {
                        return Err(bad("its deltas take too long to read"));
                    }
                    let a = from.max(op.at);
                    let b = to.min(op.at + op.len);
                    match op.part {
                        Part::Insert(i) => {
                            let s = i + (a - op.at) as usize;
                            out.extend_from_slice(&data[s..s + (b - a) as usize]);
                        }
                        Part::Copy(src) => {
                            let s = src + (a - op.at);
                            self.read_range(base, s, s + (b - a), out, depth + 1)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Is the size of the object at `pos` within what is searched for its
    /// type (trees never are)?
    fn searched(&mut self, pos: usize, kind: ObjectType) -> Result<bool, ScanError> {
        let limit = match kind {
            ObjectType::Blob => MAX_BLOB_SIZE,
            ObjectType::Commit | ObjectType::Tag => MAX_MESSAGE_SIZE,
            _ => return Ok(false),
        } as u64;
        // A delta's result size is its second varint: its instructions are
        // parsed (and kept) only when it is to be searched, so a huge delta
        // outside the limits costs no more than its inflated bytes.
        let size = match (self.header(pos)?, &self.cache[pos]) {
            ((Stored::Whole(_), size, _), _) => size,
            (_, Some(l)) => l.size(),
            ((stored, size, data_at), None) => {
                let data = self.inflate(pos, data_at, size)?;
                let result = delta_result_size(&data)?;
                if result <= limit {
                    self.keep(pos, stored, data)?;
                }
                result
            }
        };
        Ok(size <= limit)
    }

    /// Searches the new objects among entries `range` (positions in pack
    /// order) into `found`.
    fn scan(
        &mut self,
        format: &TokenFormat,
        here: Option<&Odb<'_>>,
        range: std::ops::Range<usize>,
        found: &mut Found,
    ) -> Result<(), ScanError> {
        let pad = format.max_prefix_len() as u64 + format.len() as u64 + 1;
        let mut hits = Vec::new();
        let mut window = Vec::new();
        for pos in range {
            if found.seen.len() >= MAX_CANDIDATES {
                break;
            }
            let id = self.entries[pos].1;
            let kind = self.kind(pos)?;
            if !matches!(kind, ObjectType::Blob | ObjectType::Commit | ObjectType::Tag) {
                continue;
            }
            // A thin pack's base, or an object sent again: not new.
            if known(here, id) || !self.searched(pos, kind)? {
                continue;
            }
            let l = self.load(pos)?;
            match &*l {
                Loaded::Whole(d) => format.find_all(d, &mut hits),
                Loaded::Delta { ops, size, .. } => {
                    let Stored::Delta(base) = self.header(pos)?.0 else {
                        return Err(bad("a delta without a base"));
                    };
                    let base_kind = self.kind(base)?;
                    let covered = known(here, self.entries[base].1) || self.searched(base, base_kind)?;
                    if !covered {
                        window.clear();
                        self.read_range(pos, 0, *size, &mut window, 0)?;
                        format.find_all(&window, &mut hits);
                    } else {
                        for (from, to) in windows(ops, pad, *size) {
                            window.clear();
                            self.read_range(pos, from, to, &mut window, 0)?;
                            format.find_within(&window, from == 0, to == *size, &mut hits);
                        }
                    }
                }
            }
            found.add(&mut hits, id, kind);
        }
        Ok(())
    }
}

/// Does the repository (`None`: it holds no object) have `id` already?
/// (Without libgit2's rescan of the pack folder on each miss: most objects
/// of a push are misses.)
fn known(here: Option<&Odb<'_>>, id: Oid) -> bool {
    here.is_some_and(|h| h.exists_ext(id, git2::OdbLookupFlags::NO_REFRESH))
}

/// Does the objects folder hold any object (a pack, a loose object's
/// folder, an alternate)? A repository that a push creates holds none,
/// and then every object of the push is new.
fn holds_objects(objects: &Path) -> bool {
    let Ok(dir) = std::fs::read_dir(objects) else {
        return true;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let loose = name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if loose {
            return true;
        }
    }
    if std::fs::metadata(objects.join("info/alternates")).is_ok() {
        return true;
    }
    match std::fs::read_dir(objects.join("pack")) {
        Ok(packs) => packs
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".pack")),
        Err(_) => false,
    }
}

/// The windows of a delta's result to search: `pad` bytes either side of
/// each inserted literal and of each seam between two parts, merged where
/// they meet, within `0..size`.
fn windows(ops: &[Op], pad: u64, size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut push = |from: u64, to: u64| {
        let (from, to) = (from.saturating_sub(pad), (to + pad).min(size));
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    };
    for (i, op) in ops.iter().enumerate() {
        match op.part {
            Part::Insert(_) => push(op.at, op.at + op.len),
            Part::Copy(_) if i > 0 => push(op.at, op.at),
            Part::Copy(_) => {}
        }
    }
    out
}

/// The size of a delta's result: its second varint.
fn delta_result_size(d: &[u8]) -> Result<u64, ScanError> {
    let mut varints = d.split_inclusive(|c| c & 0x80 == 0);
    let _base = varints.next();
    let bytes = varints.next().ok_or_else(|| bad("a delta is cut"))?;
    if bytes.len() > 10 || bytes.last().is_none_or(|c| c & 0x80 != 0) {
        return Err(bad("a delta size overflows"));
    }
    Ok(bytes
        .iter()
        .enumerate()
        .fold(0u64, |v, (k, c)| v | (u64::from(c & 0x7f) << (7 * k))))
}

/// A delta's parts and the size of its result (git's delta format: the
/// base's size and the result's as varints, then copy and insert
/// instructions).
fn parse_delta(d: &[u8]) -> Result<(Vec<Op>, u64), ScanError> {
    let mut i = 0;
    let varint = |i: &mut usize| -> Result<u64, ScanError> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let c = *d.get(*i).ok_or_else(|| bad("a delta is cut"))?;
            *i += 1;
            if shift > 63 {
                return Err(bad("a delta size overflows"));
            }
            v |= u64::from(c & 0x7f) << shift;
            shift += 7;
            if c & 0x80 == 0 {
                return Ok(v);
            }
        }
    };
    let _base_size = varint(&mut i)?;
    let size = varint(&mut i)?;
    let mut ops = Vec::new();
    let mut at = 0u64;
    while i < d.len() {
        let c = d[i];
        i += 1;
        if c & 0x80 != 0 {
            let mut take = |bit: u8, shift: u32, v: &mut u64| -> Result<(), ScanError> {
                if c & bit != 0 {
                    *v |= u64::from(*d.get(i).ok_or_else(|| bad("a delta copy is cut"))?) << shift;
                    i += 1;
                }
                Ok(())
            };
            let (mut off, mut len) = (0u64, 0u64);
            take(0x01, 0, &mut off)?;
            take(0x02, 8, &mut off)?;
            take(0x04, 16, &mut off)?;
            take(0x08, 24, &mut off)?;
            take(0x10, 0, &mut len)?;
            take(0x20, 8, &mut len)?;
            take(0x40, 16, &mut len)?;
            if len == 0 {
                len = 0x10000;
            }
            if ops.len() >= MAX_OPS {
                return Err(bad("a delta has too many instructions"));
            }
            ops.push(Op {
                at,
                len,
                part: Part::Copy(off),
            });
            at += len;
        } else if c != 0 {
            let len = u64::from(c);
            if i + c as usize > d.len() {
                return Err(bad("a delta insert is cut"));
            }
            if ops.len() >= MAX_OPS {
                return Err(bad("a delta has too many instructions"));
            }
            ops.push(Op {
                at,
                len,
                part: Part::Insert(i),
            });
            i += c as usize;
            at += len;
        } else {
            return Err(bad("a delta has a reserved instruction"));
        }
    }
    if at != size {
        return Err(bad("a delta's parts do not make its size"));
    }
    Ok((ops, size))
}

/// (offset, id) of every entry of a version-2 pack index, in pack order.
fn read_index(path: &Path) -> Result<Vec<(u64, Oid)>, ScanError> {
    let b = std::fs::read(path)?;
    let cut = || bad(format!("the pack index {} is cut", path.display()));
    if b.len() < 8 + 256 * 4 || b[..8] != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return Err(bad("not a version 2 pack index"));
    }
    let u32_at = |at: usize| -> Result<u32, ScanError> {
        b.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(cut)
    };
    let n = u32_at(8 + 255 * 4)? as usize;
    let names = 8 + 256 * 4;
    let offsets = names + n * 24;
    let large = offsets + n * 4;
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let raw = b.get(names + i * 20..names + i * 20 + 20).ok_or_else(cut)?;
        let o = u32_at(offsets + i * 4)?;
        let off = if o & 0x8000_0000 == 0 {
            u64::from(o)
        } else {
            let at = large + (o & 0x7fff_ffff) as usize * 8;
            let s = b.get(at..at + 8).ok_or_else(cut)?;
            u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
        };
        v.push((off, Oid::from_bytes(raw)?));
    }
    v.sort_unstable_by_key(|e| e.0);
    Ok(v)
}

/// The reference for [`scan`]: every new object read whole through
/// libgit2 (three times slower than `scan` on ripgrep's history, and blind
/// to nothing: the tests check that both find the same).
#[cfg(test)]
pub(crate) fn scan_by_object(
    format: &TokenFormat,
    objects: &Path,
    quarantine: &Path,
    threads: usize,
) -> Result<Vec<Finding>, git2::Error> {
    if format.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<Oid> = Vec::new();
    for idx in indexes(quarantine).map_err(|e| git2::Error::from_str(&e.to_string()))? {
        ids.extend(super::intake::idx_object_ids(&idx).map_err(|e| git2::Error::from_str(&e.to_string()))?);
    }
    let next = std::sync::Mutex::new(ids.chunks(256));
    let found: std::sync::Mutex<(Vec<Finding>, HashSet<Candidate>)> =
        std::sync::Mutex::new((Vec::new(), HashSet::new()));
    let failed: std::sync::Mutex<Option<git2::Error>> = std::sync::Mutex::new(None);
    let work = || -> Result<(), git2::Error> {
        let here = odb_of(objects)?;
        let incoming = odb_of(quarantine)?;
        let mut hits = Vec::new();
        loop {
            let Some(batch) = next.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                return Ok(());
            };
            for &id in batch {
                // A thin pack's base, or an object sent again: not new.
                if here.exists(id) {
                    continue;
                }
                let (size, kind) = incoming.read_header(id)?;
                let wanted = match kind {
                    ObjectType::Blob => size <= MAX_BLOB_SIZE,
                    ObjectType::Commit | ObjectType::Tag => size <= MAX_MESSAGE_SIZE,
                    _ => false,
                };
                if !wanted {
                    continue;
                }
                let obj = incoming.read(id)?;
                hits.clear();
                format.find_all(obj.data(), &mut hits);
                if hits.is_empty() {
                    continue;
                }
                let mut f = found.lock().unwrap_or_else(|p| p.into_inner());
                for c in hits.drain(..) {
                    if f.1.len() >= MAX_CANDIDATES {
                        break;
                    }
                    if f.1.insert(c.clone()) {
                        f.0.push(Finding {
                            candidate: c,
                            object: id,
                            kind,
                        });
                    }
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                if let Err(e) = work() {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(found.into_inner().unwrap_or_else(|p| p.into_inner()).0)
}

/// The most commits [`locate`] walks to find where a blob came in.
const MAX_LOCATE_COMMITS: usize = 100_000;

/// Where each finding is, for the pusher's message: a blob's path and the
/// first new commit (oldest first, from `tips`, not reachable from a ref
/// of `repo`) whose change against its first parent adds it; a commit or
/// tag itself. `repo` must see the quarantine.
pub fn locate(repo: &Repository, findings: &[Finding], tips: &[Oid]) -> Vec<Place> {
    let mut places: Vec<Option<Place>> = findings
        .iter()
        .map(|f| match f.kind {
            ObjectType::Commit => Some(Place::CommitMessage(f.object)),
            ObjectType::Tag => Some(Place::TagMessage {
                name: repo
                    .find_tag(f.object)
                    .ok()
                    .and_then(|t| t.name().map(str::to_string))
                    .unwrap_or_default(),
                tag: f.object,
            }),
            _ => None,
        })
        .collect();
    let mut wanted: HashMap<Oid, Vec<usize>> = HashMap::new();
    for (i, f) in findings.iter().enumerate() {
        if places[i].is_none() {
            wanted.entry(f.object).or_default().push(i);
        }
    }
    if !wanted.is_empty() {
        if let Err(e) = walk_for_blobs(repo, tips, &mut wanted, &mut places) {
            tracing::warn!("cannot tell where a leaked token is: {e}");
        }
    }
    places
        .into_iter()
        .zip(findings)
        .map(|(p, f)| p.unwrap_or(Place::Object(f.object)))
        .collect()
}

fn walk_for_blobs(
    repo: &Repository,
    tips: &[Oid],
    wanted: &mut HashMap<Oid, Vec<usize>>,
    places: &mut [Option<Place>],
) -> Result<(), git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    let mut pushed = false;
    for t in tips {
        if let Ok(c) = repo.find_object(*t, None).and_then(|o| o.peel_to_commit()) {
            walk.push(c.id())?;
            pushed = true;
        }
    }
    if !pushed {
        return Ok(());
    }
    for r in repo.references()?.flatten() {
        if let Ok(c) = r.peel_to_commit() {
            walk.hide(c.id())?;
        }
    }
    for id in walk.take(MAX_LOCATE_COMMITS) {
        let commit = repo.find_commit(id?)?;
        let tree = commit.tree()?;
        let parent = match commit.parents().next() {
            Some(p) => Some(p.tree()?),
            None => None,
        };
        let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), None)?;
        for d in diff.deltas() {
            let new = d.new_file();
            if let Some(idxs) = wanted.remove(&new.id()) {
                let path = new.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                for i in idxs {
                    places[i] = Some(Place::File {
                        path: path.clone(),
                        commit: commit.id(),
                    });
                }
            }
        }
        if wanted.is_empty() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T20: &str = "abcdefghij_-KLMNOP12";

    fn found(format: &TokenFormat, data: &str) -> Vec<String> {
        let mut out = Vec::new();
        format.find_all(data.as_bytes(), &mut out);
        out.into_iter().map(|c| c.expose().to_string()).collect()
    }

    #[test]
    fn only_the_exact_format_bounded_by_other_characters_matches() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let tok = format!("glpat-{T20}");
        // (text, what is found)
        let cases: Vec<(String, Vec<String>)> = vec![
            (tok.clone(), vec![tok.clone()]),
            (format!("token = \"{tok}\"\n"), vec![tok.clone()]),
            (format!("https://oauth2:{tok}@example.com/x.git"), vec![tok.clone()]),
            (format!("{tok},{tok}"), vec![tok.clone(), tok.clone()]),
            // 19 and 21 characters: not the format.
            (format!("glpat-{}", &T20[..19]), vec![]),
            (format!("glpat-{T20}x"), vec![]),
            (format!("glpat-{T20}-"), vec![]),
            // inside a longer word
            (format!("x{tok}"), vec![]),
            (format!("_{tok}"), vec![]),
            // a character outside the alphabet within the 20
            (format!("glpat-{}.{}", &T20[..10], &T20[11..]), vec![]),
            (format!("glpat-{}\u{e9}", &T20[..18]), vec![]),
            // cut at the end of the object
            (format!("glpat-{}", &T20[..5]), vec![]),
            ("glpat-".into(), vec![]),
            ("".into(), vec![]),
            // prefix case matters
            (format!("GLPAT-{T20}"), vec![]),
            // a hit that fails does not hide the next one
            (format!("glpat-glpat-{T20}"), vec![]),
            (format!("glpat-short {tok}"), vec![tok.clone()]),
            // non-ASCII around it is a boundary
            (format!("\u{e9}{tok}\u{e9}"), vec![tok.clone()]),
        ];
        for (text, want) in cases {
            assert_eq!(found(&f, &text), want, "{text:?}");
        }
    }

    #[test]
    fn the_configured_prefix_and_glpat_both_count() {
        let f = TokenFormat::new(&["mypfx-", "glpat-", "glpat-", ""], 20);
        assert_eq!(
            found(&f, &format!("a mypfx-{T20} b glpat-{T20} c xmypfx-{T20}")),
            vec![format!("mypfx-{T20}"), format!("glpat-{T20}")]
        );
        // Only empty prefixes: nothing can match (every 20-letter word would).
        let none = TokenFormat::new(&[""], 20);
        assert!(none.is_empty());
        assert!(found(&none, T20).is_empty());
    }

    #[test]
    fn prefixes_at_the_edges_of_the_object() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let tok = format!("glpat-{T20}");
        // at the very start and the very end, with nothing around
        assert_eq!(found(&f, &format!("{tok}\nrest")), vec![tok.clone()]);
        assert_eq!(found(&f, &format!("start\n{tok}")), vec![tok.clone()]);
        // binary neighbours
        let mut data = vec![0u8, 0xff];
        data.extend_from_slice(tok.as_bytes());
        data.push(0);
        let mut out = Vec::new();
        f.find_all(&data, &mut out);
        assert_eq!(out.len(), 1);
        // the prefix split by the end of the object is no match
        assert!(found(&f, "xx glpa").is_empty());
    }

    #[test]
    fn candidates_do_not_show_in_debug() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let mut out = Vec::new();
        f.find_all(format!("glpat-{T20}").as_bytes(), &mut out);
        assert_eq!(format!("{out:?}"), "[Candidate(<redacted>)]");
    }

    #[test]
    fn places_say_where_and_never_what() {
        let c = Oid::from_str(&"1".repeat(40)).unwrap();
        assert_eq!(
            Place::File {
                path: "a/b.txt".into(),
                commit: c
            }
            .to_string(),
            format!("in a/b.txt at commit {c}")
        );
        assert_eq!(
            Place::CommitMessage(c).to_string(),
            format!("in the message of commit {c}")
        );
    }

    use crate::git::test_fixtures::{git, git_io};

    /// A repository with one commit, and a quarantine holding a pack of a
    /// second commit that adds `secret.txt` and says `message`.
    fn pushed(secret: &str, message: &str) -> (tempfile::TempDir, tempfile::TempDir, Oid, PathBuf) {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        git(s, &["init", "-q", "-b", "main", "."]);
        std::fs::write(s.join("README"), "hello\n").unwrap();
        git(s, &["add", "README"]);
        git(s, &["commit", "-q", "-m", "first"]);
        let server = tempfile::tempdir().unwrap();
        git(server.path(), &["clone", "-q", "--bare", s.to_str().unwrap(), "."]);
        std::fs::create_dir_all(s.join("dir")).unwrap();
        std::fs::write(s.join("dir/secret.txt"), secret).unwrap();
        std::fs::write(s.join("README"), "hello again\n").unwrap();
        git(s, &["add", "-A"]);
        git(s, &["commit", "-q", "-m", message]);
        let head = Oid::from_str(git(s, &["rev-parse", "HEAD"]).trim()).unwrap();
        let (pack, ok) = git_io(
            s,
            &["pack-objects", "--revs", "--stdout", "-q", "--thin"],
            &[],
            format!("{head}\n^{head}~1\n").as_bytes(),
        );
        assert!(ok);
        let q = index_into(server.path(), &pack);
        (src, server, head, q)
    }

    /// The quarantine `objects/incoming-test` of the bare repository
    /// `server`, holding `pack` as git's index-pack stores it (a thin
    /// pack's bases completed from the repository).
    fn index_into(server: &Path, pack: &[u8]) -> PathBuf {
        let q = server.join("objects/incoming-test");
        std::fs::create_dir_all(q.join("pack")).unwrap();
        let out = std::process::Command::new("git")
            .args(["index-pack", "--stdin", "--fix-thin"])
            .current_dir(server)
            .env("GIT_DIR", server)
            .env("GIT_OBJECT_DIRECTORY", &q)
            .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", server.join("objects"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(pack)?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "index-pack: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        q
    }

    #[test]
    fn a_thousand_look_alikes_make_the_push_unchecked_not_clean() {
        let f = TokenFormat::new(&["glpat-"], 20);
        // 1000 distinct strings of the format, then the one that matters.
        let mut text: String = (0..MAX_CANDIDATES).map(|i| format!("glpat-{i:020}\n")).collect();
        text.push_str(&format!("glpat-{T20}\n"));
        let (_src, server, _head, q) = pushed(&text, "fixtures");
        let err = scan(&f, &server.path().join("objects"), &q, 1).expect_err("not every candidate was checked");
        assert!(err.to_string().contains("too many to check"), "{err}");
        // An empty new file reads as empty.
        let (_src, server, _head, q) = pushed("", "an empty file");
        assert_eq!(scan(&f, &server.path().join("objects"), &q, 1).unwrap().len(), 0);
        // Fewer are all returned.
        let few: String = (0..10).map(|i| format!("glpat-{i:020}\n")).collect();
        let (_src, server, _head, q) = pushed(&few, "ten");
        assert_eq!(scan(&f, &server.path().join("objects"), &q, 1).unwrap().len(), 10);
    }

    #[test]
    fn deltas_are_bounded_in_instructions_and_sized_from_their_header() {
        // base size 1, result size MAX_OPS + 1, then as many 1-byte copies.
        let n = MAX_OPS as u64 + 1;
        let mut d = vec![1u8];
        let mut v = n;
        loop {
            let c = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                d.push(c);
                break;
            }
            d.push(c | 0x80);
        }
        assert_eq!(delta_result_size(&d).unwrap(), n);
        for _ in 0..n {
            d.extend_from_slice(&[0x90, 0x01]);
        }
        let err = parse_delta(&d).map(|_| ()).expect_err("too many instructions");
        assert!(err.to_string().contains("too many instructions"), "{err}");
        assert!(delta_result_size(&[1]).is_err(), "a cut header");
        let small = [1u8, 3, 0x90, 0x01, 0x90, 0x01, 0x90, 0x01];
        assert_eq!(parse_delta(&small).unwrap().1, 3);
        assert_eq!(delta_result_size(&small).unwrap(), 3);
    }

    #[test]
    fn a_quarantine_is_scanned_and_its_findings_located() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let tok = format!("glpat-{T20}");
        let (_src, server, head, q) = pushed(&format!("key: {tok}\n"), &format!("add {tok} again"));
        for threads in [1, 3] {
            let found = scan(&f, &server.path().join("objects"), &q, threads).unwrap();
            // The same string twice: once, in the first object seen.
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].candidate.expose(), tok);
        }
        let repo = Repository::open_bare(server.path()).unwrap();
        repo.odb().unwrap().add_disk_alternate(q.to_str().unwrap()).unwrap();
        let blob = repo.revparse_single(&format!("{head}:dir/secret.txt")).unwrap().id();
        let findings = vec![
            Finding {
                candidate: Candidate(tok.clone()),
                object: blob,
                kind: ObjectType::Blob,
            },
            Finding {
                candidate: Candidate(tok.clone()),
                object: head,
                kind: ObjectType::Commit,
            },
        ];
        assert_eq!(
            locate(&repo, &findings, &[head]),
            vec![
                Place::File {
                    path: "dir/secret.txt".into(),
                    commit: head
                },
                Place::CommitMessage(head)
            ]
        );
    }

    #[test]
    fn objects_the_repository_has_are_not_new() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let tok = format!("glpat-{T20}");
        // The token sits in README in the repository already; the push
        // changes README a little (a thin pack: README's old blob is its
        // base, copied into the quarantine) and adds nothing of the format.
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        git(s, &["init", "-q", "-b", "main", "."]);
        let lines: Vec<String> = (0..400)
            .map(|i| format!("line {i} of some text that stays\n"))
            .collect();
        let big = format!("{}key: {tok}\n{}", lines[..200].concat(), lines[200..].concat());
        std::fs::write(s.join("README"), &big).unwrap();
        git(s, &["add", "README"]);
        git(s, &["commit", "-q", "-m", "first"]);
        let server = tempfile::tempdir().unwrap();
        git(server.path(), &["clone", "-q", "--bare", s.to_str().unwrap(), "."]);
        std::fs::write(s.join("README"), lines.concat()).unwrap();
        git(s, &["commit", "-q", "-am", "second"]);
        let head = git(s, &["rev-parse", "HEAD"]);
        let (pack, ok) = git_io(
            s,
            &["pack-objects", "--revs", "--stdout", "-q", "--thin"],
            &[],
            format!("{}\n^{}~1\n", head.trim(), head.trim()).as_bytes(),
        );
        assert!(ok);
        let q = index_into(server.path(), &pack);
        let q_odb = odb_of(&q).unwrap();
        let mut in_q = 0;
        q_odb
            .foreach(|_| {
                in_q += 1;
                true
            })
            .unwrap();
        assert!(in_q >= 4, "the base was not copied in: {in_q} objects");
        assert!(scan(&f, &server.path().join("objects"), &q, 2).unwrap().is_empty());
    }

    /// A history of `n` commits of one file whose token line changes in
    /// every way a delta could split it: new tokens, tokens changed in a
    /// few characters (the prefix and the unchanged part copied from the
    /// base), a token wrapped over two lines and unwrapped (two copies
    /// meeting inside it), tokens removed, and noise around them.
    fn tricky_history(dir: &Path, n: usize) {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut token: Vec<u8> = (0..20).map(|_| alphabet[(rnd() % 64) as usize]).collect();
        let mut lines: Vec<String> = (0..300).map(|i| format!("setting_{i} = value {i}")).collect();
        let mut script = String::new();
        for c in 1..=n {
            let t = String::from_utf8(token.clone()).unwrap();
            match rnd() % 7 {
                0 => {
                    token = (0..20).map(|_| alphabet[(rnd() % 64) as usize]).collect();
                    lines[100] = format!("token = glpat-{}", String::from_utf8(token.clone()).unwrap());
                }
                1 => {
                    let k = (rnd() % 20) as usize;
                    token[k] = alphabet[(rnd() % 64) as usize];
                    lines[100] = format!("token = glpat-{}", String::from_utf8(token.clone()).unwrap());
                }
                2 => lines[100] = format!("token = glpat-{}", &t[..9]) + "\n" + &t[9..],
                3 => lines[100] = format!("token = glpat-{t}"),
                4 => lines[100] = "token = none".into(),
                5 => {
                    let k = (rnd() % 300) as usize;
                    lines[k] = format!("setting_{k} = changed in {c}");
                }
                _ => lines[(rnd() % 300) as usize].push_str(&format!(" glpat-{}x", &t)),
            }
            let body = lines.join("\n") + "\n";
            let msg = if c % 17 == 0 {
                format!("commit {c} glpat-{t}")
            } else {
                format!("commit {c}")
            };
            script.push_str(&format!(
                "commit refs/heads/main\ncommitter C <c@example.com> {} +0000\ndata {}\n{msg}\n",
                1_700_000_000 + c,
                msg.len() + 1
            ));
            script.push_str(&format!("M 100644 inline conf.txt\ndata {}\n{body}\n", body.len()));
        }
        git(dir, &["init", "-q", "--bare", "."]);
        let (out, ok) = git_io(dir, &["fast-import", "--quiet"], &[], script.as_bytes());
        assert!(ok, "{}", String::from_utf8_lossy(&out));
        git(dir, &["repack", "-adfq", "--window=50", "--depth=50"]);
    }

    fn candidates(found: &[Finding]) -> Vec<String> {
        let mut v: Vec<String> = found.iter().map(|f| f.candidate.expose().to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn reading_the_pack_finds_what_reading_every_object_finds() {
        let f = TokenFormat::new(&["glpat-"], 20);
        let src = tempfile::tempdir().unwrap();
        tricky_history(src.path(), 300);
        let (pack, ok) = git_io(src.path(), &["pack-objects", "--all", "--stdout", "-q"], &[], b"");
        assert!(ok);
        let server = tempfile::tempdir().unwrap();
        git(server.path(), &["init", "-q", "--bare", "."]);
        let q = index_into(server.path(), &pack);
        let objects = server.path().join("objects");
        let whole = candidates(&scan_by_object(&f, &objects, &q, 2).unwrap());
        assert!(whole.len() > 20, "the history holds too few tokens: {}", whole.len());
        for threads in [1, 3] {
            let by_pack = candidates(&scan(&f, &objects, &q, threads).unwrap());
            assert_eq!(by_pack, whole, "{threads} threads");
        }
        // The pack has deltas, or this proved nothing.
        let idx = indexes(&q).unwrap();
        let mut r = PackReader::open(&idx[0]).unwrap();
        let deltas = (0..r.entries.len())
            .filter(|&p| matches!(r.header(p).unwrap().0, Stored::Delta(_)))
            .count();
        assert!(deltas > 200, "{deltas} deltas");
    }

    #[test]
    fn delta_windows_cover_inserts_and_seams() {
        let op = |at, len, part| Op { at, len, part };
        let ops = [
            op(0, 100, Part::Copy(0)),
            op(100, 5, Part::Insert(0)),
            op(105, 200, Part::Copy(10)),
            op(305, 300, Part::Copy(500)),
        ];
        assert_eq!(windows(&ops, 27, 605), vec![(73, 132), (278, 332)]);
        // Close ones merge; the ends are clipped to the object.
        let ops = [
            op(0, 3, Part::Insert(0)),
            op(3, 10, Part::Copy(0)),
            op(13, 2, Part::Insert(3)),
        ];
        assert_eq!(windows(&ops, 27, 15), vec![(0, 15)]);
    }

    /// A pack written by hand (git's version 2 format), for what git's
    /// pack-objects will not write.
    struct HandPack {
        bytes: Vec<u8>,
        offsets: Vec<u64>,
    }

    /// A delta instruction: copy `len` bytes of the base from `offset`, or
    /// insert these bytes.
    #[derive(Clone, Copy)]
    enum Ins<'a> {
        Copy(usize, usize),
        Insert(&'a [u8]),
    }

    fn varint(mut v: usize, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A delta from a base of `base` bytes (git's delta format).
    fn delta(base: usize, ins: &[Ins<'_>]) -> Vec<u8> {
        let result = ins
            .iter()
            .map(|i| match i {
                Ins::Copy(_, len) => *len,
                Ins::Insert(b) => b.len(),
            })
            .sum();
        let mut d = Vec::new();
        varint(base, &mut d);
        varint(result, &mut d);
        for i in ins {
            match i {
                Ins::Copy(offset, len) => {
                    assert!(*len > 0 && *len < 0x10000 && *offset < 1 << 32);
                    let mut op = 0x80u8;
                    let mut args = Vec::new();
                    for (k, byte) in offset.to_le_bytes()[..4].iter().enumerate() {
                        if *byte != 0 {
                            op |= 1 << k;
                            args.push(*byte);
                        }
                    }
                    for (k, byte) in len.to_le_bytes()[..2].iter().enumerate() {
                        if *byte != 0 {
                            op |= 0x10 << k;
                            args.push(*byte);
                        }
                    }
                    d.push(op);
                    d.extend(args);
                }
                Ins::Insert(b) => {
                    assert!(!b.is_empty() && b.len() < 0x80);
                    d.push(b.len() as u8);
                    d.extend_from_slice(b);
                }
            }
        }
        d
    }

    impl HandPack {
        fn new() -> HandPack {
            HandPack {
                bytes: b"PACK\0\0\0\x02\0\0\0\0".to_vec(),
                offsets: Vec::new(),
            }
        }

        /// Adds an entry: a whole blob, or (with `base`, an earlier entry)
        /// a delta against it. Returns its index.
        fn add(&mut self, base: Option<usize>, data: &[u8]) -> usize {
            use std::io::Write;
            let at = self.bytes.len() as u64;
            let kind: u8 = if base.is_some() { 6 } else { 3 };
            let mut size = data.len();
            let mut c = (kind << 4) | (size & 15) as u8;
            size >>= 4;
            while size > 0 {
                self.bytes.push(c | 0x80);
                c = (size & 0x7f) as u8;
                size >>= 7;
            }
            self.bytes.push(c);
            if let Some(b) = base {
                let mut back = at - self.offsets[b];
                let mut enc = vec![(back & 0x7f) as u8];
                back >>= 7;
                while back > 0 {
                    back -= 1;
                    enc.push(0x80 | (back & 0x7f) as u8);
                    back >>= 7;
                }
                enc.reverse();
                self.bytes.extend(enc);
            }
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(data).unwrap();
            self.bytes.extend(z.finish().unwrap());
            self.offsets.push(at);
            self.offsets.len() - 1
        }

        fn finish(mut self) -> Vec<u8> {
            use sha1::Digest;
            let n = u32::try_from(self.offsets.len()).unwrap();
            self.bytes[8..12].copy_from_slice(&n.to_be_bytes());
            let sum = sha1::Sha1::digest(&self.bytes);
            self.bytes.extend_from_slice(&sum);
            self.bytes
        }
    }

    /// Scans `pack` as the quarantine of an empty repository.
    fn scan_hand_pack(pack: HandPack) -> Result<Vec<Finding>, ScanError> {
        let f = TokenFormat::new(&["glpat-"], 20);
        let server = tempfile::tempdir().unwrap();
        git(server.path(), &["init", "-q", "--bare", "."]);
        let q = index_into(server.path(), &pack.finish());
        scan(&f, &server.path().join("objects"), &q, 1)
    }

    #[test]
    fn a_chain_that_holds_too_much_at_once_is_refused() {
        // Ten deltas of about 1.3 MiB each (inserts), each copying the
        // first 200 bytes of the one before; the last, a small blob, is
        // read through all ten (its base is over the size limit, so it is
        // read whole): more than MAX_PINNED (8 MiB in the unit tests).
        let mut pack = HandPack::new();
        let mut prev = pack.add(None, &[b'.'; 200]);
        let mut size = 200;
        let run = [b'y'; 127];
        for _ in 0..10 {
            let mut ins = vec![Ins::Copy(0, 200)];
            ins.extend(std::iter::repeat_n(Ins::Insert(&run), 8300));
            prev = pack.add(Some(prev), &delta(size, &ins));
            size = 200 + 127 * 8300;
        }
        pack.add(Some(prev), &delta(size, &[Ins::Copy(0, 100), Ins::Insert(b"end")]));
        let err = scan_hand_pack(pack).expect_err("read holding every level");
        assert!(err.to_string().contains("a delta chain needs more than 8 MiB"), "{err}");
    }

    #[test]
    fn bases_read_again_and_again_are_refused_not_read_for_hours() {
        // Three bases of 7 MiB (a few KiB in the pack), and small blobs
        // taken from each in turn: the cache keeps two of them, so every
        // small blob inflates its base again, past 64 MiB (the unit tests'
        // floor) for a pack of some 100 KiB.
        let mut pack = HandPack::new();
        let big = 7 << 20;
        let bases: Vec<usize> = (0..3u8)
            .map(|i| {
                let mut b = vec![b'a' + i; big];
                b[0] = b'#';
                pack.add(None, &b)
            })
            .collect();
        for i in 0..15 {
            let base = bases[i % 3];
            pack.add(
                Some(base),
                &delta(big, &[Ins::Copy(0, 1000), Ins::Insert(&[b'0' + i as u8])]),
            );
        }
        let err = scan_hand_pack(pack).expect_err("read again and again");
        assert!(err.to_string().contains("read again and again"), "{err}");
    }

    #[test]
    fn a_delta_chain_as_deep_as_git_allows_is_read_and_a_deeper_one_refused() {
        let f = TokenFormat::new(&["glpat-"], 20);
        // The base holds a prefix and half a token, then a space: no
        // candidate. Each delta of the chain copies its base and appends a
        // byte; the last inserts the token's other half right after the
        // first one (read through every level of the chain).
        let mut base = b"key glpat-abcdefghij and the rest".to_vec();
        base.resize(200, b'.');
        let cut = "key glpat-abcdefghij".len();
        for (deltas, readable) in [(MAX_DEPTH, true), (MAX_DEPTH + 1, false)] {
            let mut pack = HandPack::new();
            let mut prev = pack.add(None, &base);
            let mut content = base.clone();
            for _ in 1..deltas {
                prev = pack.add(
                    Some(prev),
                    &delta(content.len(), &[Ins::Copy(0, content.len()), Ins::Insert(b"x")]),
                );
                content.push(b'x');
            }
            let half = b"_-KLMNOP12";
            let last = delta(
                content.len(),
                &[
                    Ins::Copy(0, cut),
                    Ins::Insert(half),
                    Ins::Copy(cut, content.len() - cut),
                ],
            );
            pack.add(Some(prev), &last);
            let expected = [&content[..cut], half, &content[cut..]].concat();
            let server = tempfile::tempdir().unwrap();
            git(server.path(), &["init", "-q", "--bare", "."]);
            let q = index_into(server.path(), &pack.finish());
            let got = scan(&f, &server.path().join("objects"), &q, 1);
            if readable {
                let found = got.unwrap();
                assert_eq!(candidates(&found), [format!("glpat-abcdefghij{}", "_-KLMNOP12")]);
                assert_eq!(found[0].object, Oid::hash_object(ObjectType::Blob, &expected).unwrap());
            } else {
                let err = got.expect_err("a chain deeper than git's limit was read");
                assert!(err.to_string().contains("a delta chain is too long"), "{err}");
            }
        }
    }
}
