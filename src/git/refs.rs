//! The refs of a repository as advertisements need them, read the way git
//! reads them, and a cache of them per repository.
//!
//! [`read`] reads the files backend directly: `HEAD`, the loose refs under
//! `refs/`, and `packed-refs`, whose `^` lines give the peeled id of each
//! annotated tag (and, with the `fully-peeled` trait, say that a ref without
//! one is no tag). Only a loose ref's object is looked at: its header, and
//! when it is a tag, the tag's own small object for its target. No commit
//! is inflated and nothing is hashed again. As git's upload-pack and
//! receive-pack do, a ref whose object is missing is shown with its id, and
//! a broken one (a loose file that is no id, a name git refuses) with the
//! zero id.
//!
//! [`RefCache`] keeps the result per repository, keyed on the state of the
//! files it came from: the inode, modification time and size of `HEAD`,
//! `packed-refs` and every directory under `refs/`. Git changes a loose ref
//! by writing `<ref>.lock` and renaming it, which changes its directory's
//! modification time, and rewrites `packed-refs` by rename, so an outside
//! `git update-ref` or `git pack-refs` is seen at the next request; a
//! stamp is taken before the file or directory it describes is read. A
//! state younger than [`RefCache::RACY`] is not kept (a second change in
//! the same clock tick could leave the times as they were), and this
//! server's own pushes drop their repository's entry at once.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::{ObjectType, Odb, Oid, Repository};

use crate::git::advertise::{AdvertiseError, AdvertisedRef};

/// git's limit on a chain of symbolic refs.
const SYMREF_MAX_DEPTH: usize = 5;
/// A chain of tags longer than this is not peeled.
const TAG_MAX_DEPTH: usize = 64;
/// A loose ref file is an id or `ref: <name>`: more than this is broken.
const MAX_LOOSE_REF: u64 = 4096;

/// A repository's refs: the list advertisements are made from (HEAD first,
/// then by name bytes) and the ids a want may name directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    pub list: Vec<AdvertisedRef>,
    /// Every born ref's id and peeled id, sorted, without repeats.
    pub tips: Vec<Oid>,
}

impl Refs {
    fn new(list: Vec<AdvertisedRef>) -> Refs {
        let mut tips: Vec<Oid> = list
            .iter()
            .flat_map(|r| r.oid().into_iter().chain(r.peeled()))
            .filter(|oid| !oid.is_zero())
            .collect();
        tips.sort();
        tips.dedup();
        Refs { list, tips }
    }

    /// The ref named `name`: a binary search, the list being sorted by name
    /// after HEAD.
    pub fn find(&self, name: &str) -> Option<&AdvertisedRef> {
        if name == "HEAD" {
            return self.list.first().filter(|r| r.name() == "HEAD");
        }
        let rest = match self.list.first() {
            Some(r) if r.name() == "HEAD" => &self.list[1..],
            _ => &self.list[..],
        };
        rest.binary_search_by(|r| r.name().as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| &rest[i])
    }

    /// Memory held, roughly: what the cache counts against its cap.
    fn weight(&self) -> usize {
        let names: usize = self
            .list
            .iter()
            .map(|r| r.name().len() + r.symref_target().map_or(0, str::len))
            .sum();
        names + self.list.len() * std::mem::size_of::<AdvertisedRef>() + self.tips.len() * 20
    }
}

/// What a file or directory was when it was read: inode, modification time
/// (seconds and nanoseconds) and size; `None` when it did not exist.
type FileState = Option<(u64, i64, i64, u64)>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    state: FileState,
}

fn state_of(meta: &std::fs::Metadata) -> FileState {
    Some((meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.size()))
}

fn stat(path: &Path) -> io::Result<FileState> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(state_of(&m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The newest modification time among the stamps.
fn newest(stamps: &[Stamp]) -> Option<SystemTime> {
    stamps
        .iter()
        .filter_map(|s| s.state)
        .map(|(_, secs, nanos, _)| {
            let secs = u64::try_from(secs).unwrap_or(0);
            let nanos = u32::try_from(nanos).unwrap_or(0);
            UNIX_EPOCH + Duration::new(secs, nanos)
        })
        .max()
}

/// A ref's value as stored.
#[derive(Debug, Clone)]
enum Value {
    Direct {
        oid: Oid,
        peel: Peel,
    },
    Symbolic(String),
    /// A loose ref git cannot read: advertised with the zero id.
    Broken,
}

/// What is known of a direct ref's peeled id before any object is read.
#[derive(Debug, Clone, Copy)]
enum Peel {
    /// From `packed-refs`: the tag's peeled id, or `None` for no tag.
    Known(Option<Oid>),
    /// A loose ref, or a packed one without the trait that would say.
    Unknown,
}

/// Reads one file after taking its stamp (of the open file, so the two
/// agree even when the file is replaced in between). `None` when missing.
fn read_stamped(path: &Path, stamps: &mut Vec<Stamp>) -> io::Result<Option<Vec<u8>>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            stamps.push(Stamp {
                path: path.to_path_buf(),
                state: None,
            });
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    stamps.push(Stamp {
        path: path.to_path_buf(),
        state: state_of(&file.metadata()?),
    });
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// A loose ref file's value, as git's `parse_loose_ref_contents` reads it:
/// `ref: <name>` or a hex id followed by nothing or whitespace. `None` for
/// anything else (a broken ref, which git leaves out).
fn parse_loose(content: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(content).ok()?;
    if let Some(target) = text.strip_prefix("ref:") {
        let target = target.trim_start_matches([' ', '\t']).trim_end();
        return (!target.is_empty()).then(|| Value::Symbolic(target.to_string()));
    }
    let hex = text.get(..40)?;
    let rest = &text[40..];
    if !rest.is_empty() && !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let oid = parse_hex(hex)?;
    Some(Value::Direct {
        oid,
        peel: Peel::Unknown,
    })
}

fn parse_hex(hex: &str) -> Option<Oid> {
    if hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Oid::from_str(hex).ok()
    } else {
        None
    }
}

/// Parses `packed-refs` into `refs`. Git dies on a line it cannot read;
/// so does this.
fn parse_packed(content: &[u8], refs: &mut BTreeMap<String, Value>) -> Result<(), AdvertiseError> {
    let text = std::str::from_utf8(content).map_err(|_| corrupt("packed-refs is not UTF-8"))?;
    let mut lines = text.lines().peekable();
    let mut fully_peeled = false;
    let mut tags_peeled = false;
    if let Some(traits) = lines.peek().and_then(|l| l.strip_prefix("# pack-refs with:")) {
        let traits: Vec<&str> = traits.split_whitespace().collect();
        fully_peeled = traits.contains(&"fully-peeled");
        tags_peeled = fully_peeled || traits.contains(&"peeled");
        lines.next();
    }
    let mut last: Option<String> = None;
    for line in lines {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(hex) = line.strip_prefix('^') {
            let peeled = parse_hex(hex).ok_or_else(|| corrupt(&format!("unexpected line in packed-refs: {line}")))?;
            match last.as_ref().and_then(|n| refs.get_mut(n)) {
                Some(Value::Direct { peel, .. }) => *peel = Peel::Known(Some(peeled)),
                _ => return Err(corrupt("packed-refs has a peeled line without a ref")),
            }
            continue;
        }
        let (hex, name) = line
            .split_once(' ')
            .ok_or_else(|| corrupt(&format!("unexpected line in packed-refs: {line}")))?;
        let oid = parse_hex(hex).ok_or_else(|| corrupt(&format!("unexpected line in packed-refs: {line}")))?;
        let peel = if fully_peeled || (tags_peeled && name.starts_with("refs/tags/")) {
            Peel::Known(None)
        } else {
            Peel::Unknown
        };
        refs.insert(name.to_string(), Value::Direct { oid, peel });
        last = Some(name.to_string());
    }
    Ok(())
}

fn corrupt(msg: &str) -> AdvertiseError {
    AdvertiseError::Git(git2::Error::from_str(msg))
}

/// Reads the loose refs under `<dir>/refs` into `refs`, stamping each
/// directory before listing it.
fn read_loose(dir: &Path, refs: &mut BTreeMap<String, Value>, stamps: &mut Vec<Stamp>) -> io::Result<()> {
    let mut pending = vec![String::from("refs")];
    while let Some(rel) = pending.pop() {
        let path = dir.join(&rel);
        let state = stat(&path)?;
        stamps.push(Stamp {
            path: path.clone(),
            state,
        });
        if state.is_none() {
            continue;
        }
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // As git's loose_fill_ref_dir: hidden files and lock files
            // (a ref being written) are not refs.
            if file.starts_with('.') || file.ends_with(".lock") {
                continue;
            }
            let name = format!("{rel}/{file}");
            // The entry itself, never what a symbolic link points at: a
            // link is not followed out of the repository or round a loop.
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                pending.push(name);
                continue;
            }
            if !git2::Reference::is_valid_name(&name) {
                refs.insert(name, Value::Broken);
                continue;
            }
            let value = if kind.is_symlink() {
                // git reads a link to `refs/...` as a symbolic ref.
                match std::fs::read_link(entry.path()) {
                    Ok(t) => match t.to_str() {
                        Some(t) if t.starts_with("refs/") => Value::Symbolic(t.to_string()),
                        _ => Value::Broken,
                    },
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            } else if kind.is_file() {
                match read_small(&entry.path()) {
                    // A broken loose ref hides the packed one, as in git.
                    Ok(c) => parse_loose(&c).unwrap_or(Value::Broken),
                    // Deleted since the listing: it is gone.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            } else {
                // A FIFO or device under refs/ is no ref.
                Value::Broken
            };
            refs.insert(name, value);
        }
    }
    Ok(())
}

/// The peeled id of the tag `oid`: the first object that is not a tag,
/// as each tag's own `type` line says (as git peels: that object is not
/// read). `None` when the chain cannot be followed.
fn peel_tag(odb: &Odb<'_>, oid: Oid) -> Option<Oid> {
    let mut tag = oid;
    for _ in 0..TAG_MAX_DEPTH {
        let (target, is_tag) = tag_target(odb, tag)?;
        if !is_tag {
            return Some(target);
        }
        tag = target;
    }
    None
}

/// The `object` line of a tag object, and whether its `type` is a tag.
fn tag_target(odb: &Odb<'_>, tag: Oid) -> Option<(Oid, bool)> {
    let obj = odb.read(tag).ok()?;
    let mut lines = obj.data().split(|&b| b == b'\n');
    let target = parse_hex(std::str::from_utf8(lines.next()?).ok()?.strip_prefix("object ")?)?;
    let kind = std::str::from_utf8(lines.next()?).ok()?.strip_prefix("type ")?;
    Some((target, kind == "tag"))
}

/// A loose ref file, read no further than any ref could need.
fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(MAX_LOOSE_REF).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A direct ref's peeled id: from `packed-refs` when it says, else from
/// the object (none when the object is missing or no tag).
fn peeled_of(odb: &Odb<'_>, oid: Oid, peel: Peel) -> Option<Oid> {
    match peel {
        Peel::Known(p) => p,
        Peel::Unknown => match odb.read_header(oid) {
            Ok((_, ObjectType::Tag)) => peel_tag(odb, oid),
            _ => None,
        },
    }
}

/// Follows a symbolic ref: the final target's name and, when born, its
/// direct value.
fn follow<'a>(refs: &'a BTreeMap<String, Value>, first: &'a str) -> Option<(&'a str, Option<(Oid, Peel)>)> {
    let mut target = first;
    // The symbolic ref itself was git's first read of its five.
    for _ in 1..SYMREF_MAX_DEPTH {
        match refs.get(target) {
            None => return Some((target, None)),
            Some(Value::Direct { oid, peel }) => return Some((target, Some((*oid, *peel)))),
            Some(Value::Symbolic(next)) => target = next,
            Some(Value::Broken) => return None,
        }
    }
    None
}

fn to_advertised(
    odb: &Odb<'_>,
    refs: &BTreeMap<String, Value>,
    name: &str,
    value: &Value,
    keep: &dyn Fn(&str) -> bool,
) -> Option<AdvertisedRef> {
    match value {
        Value::Direct { oid, peel } => {
            if !keep(name) {
                return None;
            }
            let oid = *oid;
            Some(match peeled_of(odb, oid, *peel) {
                Some(peeled) => AdvertisedRef::Peeled {
                    name: name.to_string(),
                    tag: oid,
                    peeled,
                },
                None => AdvertisedRef::Direct {
                    name: name.to_string(),
                    oid,
                },
            })
        }
        Value::Broken => keep(name).then(|| AdvertisedRef::Direct {
            name: name.to_string(),
            oid: Oid::zero(),
        }),
        Value::Symbolic(first) => {
            let (target, value) = follow(refs, first)?;
            if !keep(name) {
                return None;
            }
            match value {
                Some((oid, peel)) => Some(AdvertisedRef::Symbolic {
                    name: name.to_string(),
                    target: target.to_string(),
                    oid,
                    peeled: peeled_of(odb, oid, peel),
                }),
                None if name == "HEAD" => Some(AdvertisedRef::Unborn {
                    name: name.to_string(),
                    target: target.to_string(),
                }),
                None => None,
            }
        }
    }
}

/// A repository's refs as stored, before any object is read.
struct Raw {
    head: Option<Value>,
    refs: BTreeMap<String, Value>,
    stamps: Vec<Stamp>,
}

impl Raw {
    /// Reads `HEAD`, `packed-refs` and the loose refs of the bare
    /// repository at `dir`, stamping each before it is read.
    fn read(dir: &Path) -> Result<Raw, AdvertiseError> {
        let io_err = |what: &str, e: io::Error| corrupt(&format!("cannot read {what}: {e}"));
        let mut stamps = Vec::new();
        let head = read_stamped(&dir.join("HEAD"), &mut stamps).map_err(|e| io_err("HEAD", e))?;
        // Loose refs first, as git reads them: `pack-refs` writes the new
        // packed-refs before it deletes the loose files, so a ref is in one
        // or the other whenever each is read.
        let mut refs = BTreeMap::new();
        read_loose(dir, &mut refs, &mut stamps).map_err(|e| io_err("the loose refs", e))?;
        if let Some(packed) =
            read_stamped(&dir.join("packed-refs"), &mut stamps).map_err(|e| io_err("packed-refs", e))?
        {
            let mut packed_refs = BTreeMap::new();
            parse_packed(&packed, &mut packed_refs)?;
            for (name, value) in packed_refs {
                refs.entry(name).or_insert(value);
            }
        }
        Ok(Raw {
            head: head.as_deref().and_then(parse_loose),
            refs,
            stamps,
        })
    }

    /// What [`Refs::weight`] will be, about.
    fn weight(&self) -> usize {
        let names: usize = self.refs.keys().map(String::len).sum();
        names + (self.refs.len() + 1) * (std::mem::size_of::<AdvertisedRef>() + 40)
    }

    /// The advertised refs whose names `keep` accepts (asked before any
    /// object of the ref is read).
    fn resolve(&self, dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Refs, AdvertiseError> {
        let repo = Repository::open_bare(dir)?;
        let odb = repo.odb()?;
        let mut list = Vec::with_capacity(self.refs.len() + 1);
        if let Some(head) = &self.head {
            list.extend(to_advertised(&odb, &self.refs, "HEAD", head, keep));
        }
        for (name, value) in &self.refs {
            list.extend(to_advertised(&odb, &self.refs, name, value, keep));
        }
        Ok(Refs::new(list))
    }
}

/// Every advertised ref of the bare repository at `dir`, read afresh.
pub fn read(dir: &Path) -> Result<Refs, AdvertiseError> {
    Raw::read(dir)?.resolve(dir, &|_| true)
}

/// The refs of each repository lately asked for, up to a memory cap.
#[derive(Debug)]
pub struct RefCache {
    inner: Mutex<Inner>,
    max_weight: usize,
    racy: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<PathBuf, Entry>,
    weight: usize,
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    refs: Arc<Refs>,
    stamps: Arc<[Stamp]>,
    weight: usize,
    used: u64,
}

impl Default for RefCache {
    fn default() -> Self {
        RefCache::new(RefCache::MAX_WEIGHT)
    }
}

impl RefCache {
    /// The default cap: 64 MiB of refs, about 500,000 of them.
    pub const MAX_WEIGHT: usize = 64 << 20;
    /// A state younger than this is read but not kept.
    pub const RACY: Duration = Duration::from_secs(1);

    pub fn new(max_weight: usize) -> RefCache {
        RefCache {
            inner: Mutex::new(Inner::default()),
            max_weight,
            racy: Self::RACY,
        }
    }

    #[cfg(test)]
    fn with_racy(mut self, racy: Duration) -> RefCache {
        self.racy = racy;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the map half-changed: recover it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The refs of the bare repository at `dir`: from the cache when its
    /// files are as they were, else read and (when settled) kept.
    pub fn get(&self, dir: &Path) -> Result<Arc<Refs>, AdvertiseError> {
        self.get_matching(dir, &|_| true)
    }

    /// As [`RefCache::get`], for a caller that needs only the refs `keep`
    /// accepts: a repository too large to keep is read with `keep` applied
    /// before any object is looked at. The answer may hold other refs too.
    pub fn get_matching(&self, dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Arc<Refs>, AdvertiseError> {
        let found = {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            inner.entries.get_mut(dir).map(|e| {
                e.used = now;
                (e.refs.clone(), e.stamps.clone())
            })
        };
        if let Some((refs, stamps)) = found {
            if stamps.iter().all(|s| stat(&s.path).ok() == Some(s.state)) {
                return Ok(refs);
            }
        }
        let raw = Raw::read(dir)?;
        if raw.weight() > self.max_weight {
            // Never kept: only what the caller needs is looked at.
            return Ok(Arc::new(raw.resolve(dir, keep)?));
        }
        let refs = Arc::new(raw.resolve(dir, &|_| true)?);
        let weight = refs.weight();
        let stamps = raw.stamps;
        let settled = newest(&stamps).is_some_and(|t| t + self.racy < SystemTime::now());
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(dir) {
            inner.weight -= old.weight;
        }
        if settled {
            while inner.weight + weight > self.max_weight {
                let Some(oldest) = inner.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else {
                    break;
                };
                if let Some(e) = inner.entries.remove(&oldest) {
                    inner.weight -= e.weight;
                }
            }
            inner.clock += 1;
            let used = inner.clock;
            inner.weight += weight;
            inner.entries.insert(
                dir.to_path_buf(),
                Entry {
                    refs: refs.clone(),
                    stamps: stamps.into(),
                    weight,
                    used,
                },
            );
        }
        Ok(refs)
    }

    /// Drops the entry of the repository at `dir` (after this server moved
    /// its refs).
    pub fn forget(&self, dir: &Path) {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(dir) {
            inner.weight -= old.weight;
        }
    }

    #[cfg(test)]
    fn cached(&self, dir: &Path) -> bool {
        self.lock().entries.contains_key(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_fixtures::{self, git};
    use std::fs::File;

    /// Sets the modification time of `HEAD`, `packed-refs` and every
    /// directory under `refs/` an hour back, so the state counts as settled
    /// and a change made now is sure to move the times.
    fn settle(dir: &Path) {
        let past = SystemTime::now() - Duration::from_secs(3600);
        let mut paths = vec![dir.join("HEAD"), dir.join("packed-refs"), dir.join("refs")];
        let mut i = 2;
        while i < paths.len() {
            if let Ok(rd) = std::fs::read_dir(&paths[i]) {
                paths.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
            i += 1;
        }
        for p in paths {
            if let Ok(f) = File::open(&p) {
                f.set_modified(past).unwrap();
            }
        }
    }

    fn names(refs: &Refs) -> Vec<&str> {
        refs.list.iter().map(|r| r.name()).collect()
    }

    #[test]
    fn tips_hold_each_tag_and_its_peeled_object() {
        let dir = test_fixtures::rich_repo();
        let repo = Repository::open(dir.path()).unwrap();
        let refs = read(repo.path()).unwrap();
        let v1 = repo.revparse_single("v1").unwrap().id();
        let v1_commit = repo.revparse_single("v1^{}").unwrap().id();
        assert!(refs.tips.contains(&v1) && refs.tips.contains(&v1_commit));
        assert!(refs.tips.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    }

    #[test]
    fn find_looks_each_ref_up_by_name() {
        let repo = test_fixtures::tagged_repo(12);
        let refs = read(repo.path()).unwrap();
        for r in &refs.list {
            assert_eq!(refs.find(r.name()), Some(r), "{}", r.name());
        }
        assert_eq!(refs.find("refs/tags/a0013"), None);
        assert_eq!(refs.find("refs/heads"), None);
    }

    #[test]
    fn lock_files_hidden_files_and_links_out_are_not_refs() {
        let repo = test_fixtures::tagged_repo(2);
        let d = repo.path();
        let main = git(d, &["rev-parse", "main"]);
        std::fs::write(d.join("refs/heads/main.lock"), format!("{main}\n")).unwrap();
        std::fs::write(d.join("refs/heads/.hidden"), format!("{main}\n")).unwrap();
        std::os::unix::fs::symlink("..", d.join("refs/heads/loop")).unwrap();
        std::os::unix::fs::symlink("refs/heads/main", d.join("refs/heads/linked")).unwrap();
        let refs = read(d).unwrap();
        let names = names(&refs);
        assert!(
            !names.iter().any(|n| n.ends_with(".lock") || n.contains("/.")),
            "{names:?}"
        );
        assert!(matches!(refs.find("refs/heads/loop"), Some(AdvertisedRef::Direct { oid, .. }) if oid.is_zero()));
        assert!(
            matches!(refs.find("refs/heads/linked"), Some(AdvertisedRef::Symbolic { target, .. }) if target == "refs/heads/main"),
            "a link to refs/ is a symbolic ref, as git reads it"
        );
    }

    #[test]
    fn a_settled_state_is_served_from_the_cache_until_a_ref_moves() {
        let repo = test_fixtures::tagged_repo(20);
        let d = repo.path();
        let cache = RefCache::default();
        settle(d);
        let first = cache.get(d).unwrap();
        assert!(cache.cached(d));
        assert!(Arc::ptr_eq(&first, &cache.get(d).unwrap()), "a hit");

        // Each outside change is seen at the next request.
        let main = git(d, &["rev-parse", "main"]);
        let changes: &[(&str, &[&str])] = &[
            ("a new tag", &["update-ref", "refs/tags/new", &main]),
            ("a moved branch", &["update-ref", "refs/heads/main", "main~1"]),
            ("a new nested branch", &["update-ref", "refs/heads/team/x/y", &main]),
            ("packed refs", &["pack-refs", "--all"]),
            ("a deleted packed tag", &["update-ref", "-d", "refs/tags/a0003"]),
            ("a deleted nested branch", &["update-ref", "-d", "refs/heads/team/x/y"]),
            ("HEAD elsewhere", &["symbolic-ref", "HEAD", "refs/heads/unborn"]),
        ];
        for (what, args) in changes {
            settle(d);
            let before = cache.get(d).unwrap();
            git(d, args);
            let after = cache.get(d).unwrap();
            assert!(*after == read(d).unwrap(), "{what}: the cache answers what is on disk");
            if *what != "packed refs" {
                assert!(*before != *after, "{what}: the change is seen");
            }
        }
        let last = cache.get(d).unwrap();
        assert!(names(&last).contains(&"refs/tags/new"));
        assert!(!names(&last).contains(&"refs/tags/a0003"));
    }

    #[test]
    fn a_state_younger_than_the_racy_window_is_not_kept() {
        let repo = test_fixtures::tagged_repo(3);
        let d = repo.path();
        let cache = RefCache::default();
        cache.get(d).unwrap();
        assert!(!cache.cached(d), "refs written just now are read again next time");
        let cache = RefCache::default().with_racy(Duration::ZERO);
        cache.get(d).unwrap();
        assert!(cache.cached(d));
        cache.forget(d);
        assert!(!cache.cached(d));
    }

    #[test]
    fn the_cache_keeps_within_its_cap_and_drops_the_least_used() {
        let (a, b) = (test_fixtures::tagged_repo(5), test_fixtures::tagged_repo(6));
        settle(a.path());
        settle(b.path());
        let one = read(a.path()).unwrap().weight();
        let cache = RefCache::new(one + one / 2);
        cache.get(a.path()).unwrap();
        cache.get(b.path()).unwrap();
        assert!(!cache.cached(a.path()) && cache.cached(b.path()));

        // A repository larger than the cap is never kept, and a caller
        // asking for some refs gets those.
        let small = RefCache::new(16);
        let tags = small.get_matching(a.path(), &|n| n.starts_with("refs/tags/l")).unwrap();
        assert!(!small.cached(a.path()));
        assert!(names(&tags).iter().all(|n| n.starts_with("refs/tags/l")));
        assert_eq!(tags.list.len(), 5);
    }

    #[test]
    fn a_corrupt_packed_refs_is_an_error() {
        let repo = test_fixtures::tagged_repo(2);
        std::fs::write(
            repo.path().join("packed-refs"),
            "# pack-refs with: peeled \nnot a line\n",
        )
        .unwrap();
        assert!(read(repo.path()).is_err());
    }
}
