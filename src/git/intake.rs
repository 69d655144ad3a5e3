//! Incoming packs: a push's pack is indexed into a quarantine folder
//! (`objects/incoming-*`), invisible to readers until it is moved in, and its
//! objects are checked before any ref may point at them.
//!
//! Two engines, chosen like the fetch engine (`pack_engine`):
//! - **git** (the default when git is on PATH), as `git receive-pack` does
//!   it: `git index-pack --stdin --fix-thin --strict --max-input-size=N` (with the
//!   fsck warnings old histories carry allowed)
//!   writes the pack into the quarantine (bases of a thin pack from the
//!   repository, every object fsck'ed, every link it makes checked), then
//!   `git rev-list --objects --stdin --not --all --quiet` over the new tips
//!   proves them connected. Gitlinks (submodule commits) are never followed.
//!   As `git fetch` does, index-pack also says
//!   (`--check-self-contained-and-connected`) whether every link of the pack
//!   stays inside it; tips inside such a pack need no rev-list (a full push
//!   into an empty repository is proved connected by index-pack alone).
//! - **libgit2**: its `Indexer` (which holds each object whole in memory, so
//!   a [`PackStream`] in front of it refuses objects over
//!   [`LIBGIT2_MAX_OBJECT_SIZE`] before they are inflated), then our own
//!   check that every link of the pack's objects is present, gitlinks
//!   excepted.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use git2::{Oid, Repository};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::pack::PackEngine;
use super::pack_stream::{PackStream, PackStreamError};

/// How incoming packs are taken in.
#[derive(Debug, Clone)]
pub struct Intake {
    pub engine: PackEngine,
    /// A pack larger than this many bytes (as sent) is refused.
    pub max_input_size: u64,
}

/// Why a pack was not taken in: its text is the `unpack <reason>` of the
/// report (git's or libgit2's own words where they have them).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("pack exceeds maximum allowed size ({0} bytes: the receive_max_input_size setting)")]
    TooLarge(u64),
    #[error("the pack is missing")]
    Missing,
    #[error("cannot read the pack: {0}")]
    Read(std::io::Error),
    #[error("cannot make a quarantine: {0}")]
    Quarantine(std::io::Error),
    #[error("cannot run git index-pack: {0}")]
    Spawn(std::io::Error),
    #[error("cannot talk to git index-pack")]
    NoPipes,
    #[error("index-pack needs the git engine")]
    NotGit,
    /// What index-pack said when it refused the pack (its fsck message).
    #[error("{0}")]
    Refused(String),
    /// What the libgit2 pack reader refused.
    #[error("{0}")]
    Stream(#[from] PackStreamError),
    #[error("{}", .0.message())]
    Libgit2(#[from] git2::Error),
    #[error("cannot read the pack index {path}: {why}")]
    Index { path: PathBuf, why: String },
    #[error("missing {missing}, which {kind} {from} points to")]
    MissingLink {
        missing: Oid,
        kind: &'static str,
        from: Oid,
    },
}

/// A pack indexed into `objects/incoming-*/pack`, not yet visible. Dropping
/// it removes the folder and whatever is left in it.
pub struct Quarantine {
    dir: PathBuf,
    /// Kept from the sweep of leftovers while this push lives.
    _held: super::sweep::Held,
    /// index-pack found every link of the pack's objects inside the pack.
    self_contained: bool,
}

impl Quarantine {
    fn new(objects: &Path) -> Result<Quarantine, IntakeError> {
        let name = format!(
            "incoming-{}",
            crate::fsutil::random_hex(8).map_err(|e| IntakeError::Quarantine(std::io::Error::other(e)))?
        );
        let dir = objects.join(name);
        let q = Quarantine {
            _held: super::sweep::hold(&dir),
            dir,
            self_contained: false,
        };
        std::fs::create_dir_all(q.pack_dir()).map_err(IntakeError::Quarantine)?;
        Ok(q)
    }

    /// The quarantine folder (`objects/incoming-*`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pack_dir(&self) -> PathBuf {
        self.dir.join("pack")
    }

    /// Moves the pack (its index last, which is what makes a pack visible
    /// to readers) into `objects/pack`. A pack with no object (the 12-byte
    /// header and 20-byte checksum git sends when every object is already
    /// here) is not kept.
    pub fn install(&self, objects: &Path) -> std::io::Result<()> {
        let dest = objects.join("pack");
        std::fs::create_dir_all(&dest)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.pack_dir())?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.retain(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pack-"))
        });
        let empty = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "pack"))
            .all(|f| std::fs::metadata(f).is_ok_and(|m| m.len() <= 32));
        if empty {
            return Ok(());
        }
        files.sort_by_key(|p| p.extension().is_some_and(|e| e == "idx"));
        for f in files {
            if let Some(name) = f.file_name() {
                std::fs::rename(&f, dest.join(name))?;
            }
        }
        Ok(())
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        // A push dropped midway (its client gone, or the server's stop
        // deadline) kills its index-pack without waiting: the dying child
        // may still add a file while the folder is removed, so try again.
        for _ in 0..5 {
            match std::fs::remove_dir_all(&self.dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => return,
            }
        }
    }
}

impl Intake {
    /// Streams `pack` into a quarantine and indexes it, then lets `repo`
    /// see it ([`Intake::attach`]). Blocking: the libgit2 engine, the
    /// deletion-free paths of tests and tools. An error is the text of
    /// `unpack <error>`.
    pub fn unpack(&self, repo: &Repository, pack: &mut dyn Read) -> Result<Quarantine, IntakeError> {
        let mut q = Quarantine::new(&repo.path().join("objects"))?;
        let libgit2_pack = match &self.engine {
            PackEngine::Git { .. } => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(IntakeError::Spawn)?;
                let mut pack =
                    tokio_util::compat::FuturesAsyncReadCompatExt::compat(futures::io::AllowStdIo::new(pack));
                runtime.block_on(self.index(repo.path(), &mut q, &mut pack))?;
                None
            }
            PackEngine::Libgit2 => {
                let mut pack = Capped {
                    inner: pack,
                    max: self.max_input_size,
                    read: 0,
                };
                Some(index_with_libgit2(repo, &q, &mut pack)?)
            }
        };
        self.attach(repo, &q)?;
        if let Some(name) = libgit2_pack {
            let idx = q.pack_dir().join(format!("pack-{name}.idx"));
            check_links(repo, &idx)?;
        }
        Ok(q)
    }

    /// A quarantine in the repository at `repo_dir`, for [`Intake::index`].
    pub fn quarantine(&self, repo_dir: &Path) -> Result<Quarantine, IntakeError> {
        Quarantine::new(&repo_dir.join("objects"))
    }

    /// The git engine: streams `pack` into `git index-pack` (a child
    /// process fed through an async pipe, so a slow client holds no
    /// thread), into the quarantine `q`.
    pub async fn index<R: AsyncRead + Unpin + ?Sized>(
        &self,
        repo_dir: &Path,
        q: &mut Quarantine,
        pack: &mut R,
    ) -> Result<(), IntakeError> {
        let PackEngine::Git { binary } = &self.engine else {
            return Err(IntakeError::NotGit);
        };
        q.self_contained = index_pack(binary, repo_dir, q, pack, self.max_input_size).await?;
        Ok(())
    }

    /// Lets `repo` see the quarantine's objects (as an alternate), for the
    /// checks before any ref moves.
    pub fn attach(&self, repo: &Repository, q: &Quarantine) -> Result<(), IntakeError> {
        let odb = repo.odb()?;
        let dir = q
            .dir
            .to_str()
            .ok_or_else(|| IntakeError::Quarantine(std::io::Error::other("the quarantine path is not UTF-8")))?;
        Ok(odb.add_disk_alternate(dir)?)
    }

    /// Which of `tips` (the new values of the commands, objects already in
    /// the repository or the quarantine) are not connected: some object they
    /// reach is missing. Gitlinks are not followed.
    pub fn disconnected(&self, repo: &Repository, q: &Quarantine, tips: &[Oid]) -> Vec<Oid> {
        if tips.is_empty() {
            return Vec::new();
        }
        match &self.engine {
            PackEngine::Git { binary } => {
                let tips = outside_the_pack(q, tips);
                let tips = tips.as_slice();
                if tips.is_empty() || rev_list_connected(binary, repo.path(), q, tips) {
                    return Vec::new();
                }
                // As receive-pack does: find the culprits one by one.
                tips.iter()
                    .copied()
                    .filter(|t| !rev_list_connected(binary, repo.path(), q, &[*t]))
                    .collect()
            }
            // check_links proved every link of the pack's objects present.
            PackEngine::Libgit2 => Vec::new(),
        }
    }
}

/// The tips that a self-contained pack does not prove connected: all of
/// them, unless the pack is self-contained; then those not in it.
fn outside_the_pack(q: &Quarantine, tips: &[Oid]) -> Vec<Oid> {
    if !q.self_contained {
        return tips.to_vec();
    }
    let in_pack = git2::Odb::new().and_then(|odb| {
        odb.add_disk_alternate(&q.dir.to_string_lossy())?;
        Ok(odb)
    });
    match in_pack {
        Ok(odb) => tips.iter().copied().filter(|t| !odb.exists(*t)).collect(),
        Err(_) => tips.to_vec(),
    }
}

/// A reader that fails once more than `max` bytes have come through, and
/// counts what did.
struct Capped<'a> {
    inner: &'a mut dyn Read,
    max: u64,
    read: u64,
}

#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the pack is too large")
    }
}

impl std::error::Error for TooLarge {}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.read + n as u64 > self.max {
            return Err(std::io::Error::other(TooLarge));
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn is_too_large(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

/// A git command on `repo_dir` whose new objects go to the quarantine and
/// whose reads see both (as receive-pack runs index-pack and rev-list).
fn quarantined_git(binary: &Path, repo_dir: &Path, q: &Quarantine) -> Command {
    let mut cmd = super::git_command(binary, repo_dir);
    cmd.env("GIT_OBJECT_DIRECTORY", &q.dir)
        .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", repo_dir.join("objects"))
        .env("GIT_QUARANTINE_PATH", &q.dir);
    cmd
}

/// What git printed on stderr, as one line for the report: its lines
/// joined with "; ", at most 1000 characters.
fn stderr_reason(stderr: &[u8], fallback: &str) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines: Vec<&str> = Vec::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !lines.contains(&l) {
            lines.push(l);
        }
    }
    if lines.is_empty() {
        return fallback.to_string();
    }
    lines.join("; ").chars().take(1000).collect()
}

/// Reads a child's pipe to the end on a thread of its own, keeping at most
/// `cap` bytes.
fn drain(mut r: impl Read + Send + 'static, cap: usize) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        kept
    })
}

/// `--strict` makes git's fsck warnings errors; these, which real
/// histories carry from old tools (git.git's own first commits have 100664
/// modes), stay allowed, as GitLab allows them.
const STRICT: &str =
    "--strict=badFilemode=ignore,zeroPaddedFilemode=ignore,badTimezone=ignore,missingSpaceBeforeDate=ignore";

/// Runs index-pack on `pack` into the quarantine; true when the pack is
/// self-contained and connected (every object its objects link to is in
/// it, gitlinks apart). A pack over `max` bytes is cut off and refused.
async fn index_pack<R: AsyncRead + Unpin + ?Sized>(
    binary: &Path,
    repo_dir: &Path,
    q: &Quarantine,
    pack: &mut R,
    max: u64,
) -> Result<bool, IntakeError> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = quarantined_git(binary, repo_dir, q);
    cmd.args([
        "index-pack",
        "--stdin",
        "--fix-thin",
        STRICT,
        "--check-self-contained-and-connected",
    ])
    .arg(format!("--max-input-size={max}"))
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(IntakeError::Spawn)?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(IntakeError::NoPipes);
    };
    let mut read = 0u64;
    let feed = async {
        let mut buf = vec![0u8; 64 * 1024];
        let outcome = loop {
            let n = match pack.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(Some(IntakeError::Read(e))),
            };
            if read + n as u64 > max {
                break Err(Some(IntakeError::TooLarge(max)));
            }
            read += n as u64;
            // A write that fails: index-pack stopped reading (it died, and
            // says why on stderr).
            if stdin.write_all(&buf[..n]).await.is_err() {
                break Err(None);
            }
        };
        drop(stdin);
        outcome
    };
    let (fed, stdout, stderr) = tokio::join!(feed, read_some(stdout, 4096), read_some(stderr, 64 * 1024));
    if let Err(Some(why)) = fed {
        let _ = child.kill().await;
        return Err(why);
    }
    let status = child.wait().await.map_err(IntakeError::Spawn)?;
    if read == 0 {
        return Err(IntakeError::Missing);
    }
    // Exit 1 with the pack written: links point outside the pack (a thin
    // pack, or one building on history the repository has).
    let self_contained = match status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => return Err(IntakeError::Refused(stderr_reason(&stderr, "index-pack abnormal exit"))),
    };
    // "pack\t<hash>\n" (or "keep\t..."): the pack is in the quarantine.
    if !stdout.starts_with(b"pack\t") && !stdout.starts_with(b"keep\t") {
        return Err(IntakeError::Refused(stderr_reason(&stderr, "index-pack abnormal exit")));
    }
    Ok(self_contained)
}

/// Reads a child's pipe to its end, keeping at most `cap` bytes.
async fn read_some(mut r: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// `git rev-list --objects --stdin --not --all --quiet` over `tips`: true
/// when everything they reach is present (as receive-pack's
/// check_connected).
fn rev_list_connected(binary: &Path, repo_dir: &Path, q: &Quarantine, tips: &[Oid]) -> bool {
    let child = quarantined_git(binary, repo_dir, q)
        .args(["rev-list", "--objects", "--stdin", "--not", "--all", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else { return false };
    let err = child.stderr.take().map(|e| drain(e, 64 * 1024));
    if let Some(mut stdin) = child.stdin.take() {
        let list: String = tips.iter().map(|t| format!("{t}\n")).collect();
        let _ = stdin.write_all(list.as_bytes());
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    if let Some(err) = err {
        let text = err.join().unwrap_or_default();
        if !ok {
            tracing::info!("connectivity check failed: {}", stderr_reason(&text, "rev-list failed"));
        }
    }
    ok
}

/// Indexes the pack with libgit2 (thin packs completed from the object
/// database) without its connectivity check, which follows gitlinks and
/// probes the object database for each missing object; [`check_links`]
/// does that instead. Returns the pack's name (its hash).
fn index_with_libgit2(repo: &Repository, q: &Quarantine, pack: &mut Capped) -> Result<String, IntakeError> {
    let odb = repo.odb()?;
    let indexer = git2::Indexer::new(Some(&odb), &q.pack_dir(), 0o444, false)?;
    let mut guarded = Guarded {
        stream: PackStream::new(LIBGIT2_MAX_OBJECT_SIZE),
        indexer,
    };
    match std::io::copy(pack, &mut guarded) {
        Ok(0) => return Err(IntakeError::Missing),
        Ok(_) => {}
        Err(e) if is_too_large(&e) => return Err(IntakeError::TooLarge(pack.max)),
        Err(e) => match e.get_ref().and_then(|inner| inner.downcast_ref::<PackStreamError>()) {
            Some(why) => return Err(IntakeError::Stream(why.clone())),
            None => return Err(IntakeError::Read(e)),
        },
    }
    Ok(guarded.indexer.commit()?)
}

/// The libgit2 indexer holds each object whole in memory: objects larger
/// than this are refused, from their pack header, before it sees them.
pub const LIBGIT2_MAX_OBJECT_SIZE: u64 = 32 << 20;

/// The indexer behind a [`PackStream`] that refuses objects over the limit.
struct Guarded<'a> {
    stream: PackStream,
    indexer: git2::Indexer<'a>,
}

impl Write for Guarded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.feed(buf).map_err(std::io::Error::other)?;
        self.indexer.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.indexer.flush()
    }
}

/// The object ids of a version-2 pack index, read from the file as they
/// are used.
pub(crate) fn idx_object_ids(path: &Path) -> Result<impl Iterator<Item = Oid>, IntakeError> {
    use std::io::{BufReader, Seek, SeekFrom};
    let bad = |why: String| IntakeError::Index {
        path: path.to_path_buf(),
        why,
    };
    let mut f = BufReader::new(std::fs::File::open(path).map_err(|e| bad(e.to_string()))?);
    let mut head = [0u8; 8 + 256 * 4];
    f.read_exact(&mut head).map_err(|e| bad(e.to_string()))?;
    if head[..8] != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return Err(bad("not a version 2 index".into()));
    }
    let mut count = [0u8; 4];
    count.copy_from_slice(&head[8 + 255 * 4..]);
    let count = u32::from_be_bytes(count);
    f.seek(SeekFrom::Start(head.len() as u64))
        .map_err(|e| bad(e.to_string()))?;
    Ok((0..count).map_while(move |_| {
        let mut raw = [0u8; 20];
        f.read_exact(&mut raw).ok()?;
        Oid::from_bytes(&raw).ok()
    }))
}

/// Every object that an object of the pack links to must be present (in
/// the pack or the repository), as `index-pack --strict` checks: a
/// commit's tree and parents, a tree's entries but gitlinks (commits of
/// another repository), a tag's target. With the repository connected
/// before, the new tips then are too.
fn check_links(repo: &Repository, idx: &Path) -> Result<(), IntakeError> {
    let odb = repo.odb()?;
    let present = |o: Oid| odb.exists_ext(o, git2::OdbLookupFlags::NO_REFRESH);
    let missing = |missing: Oid, kind: &'static str, from: Oid| IntakeError::MissingLink { missing, kind, from };
    for id in idx_object_ids(idx)? {
        let (_, kind) = odb.read_header(id)?;
        match kind {
            git2::ObjectType::Commit => {
                let c = repo.find_commit(id)?;
                if !present(c.tree_id()) {
                    return Err(missing(c.tree_id(), "commit", id));
                }
                if let Some(p) = c.parent_ids().find(|p| !present(*p)) {
                    return Err(missing(p, "commit", id));
                }
            }
            git2::ObjectType::Tree => {
                let t = repo.find_tree(id)?;
                let gone = t
                    .iter()
                    .filter(|e| e.filemode() != 0o160000)
                    .map(|e| e.id())
                    .find(|o| !present(*o));
                if let Some(o) = gone {
                    return Err(missing(o, "tree", id));
                }
            }
            git2::ObjectType::Tag => {
                let t = repo.find_tag(id)?;
                if !present(t.target_id()) {
                    return Err(missing(t.target_id(), "tag", id));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_fixtures::{git, git_engine, git_io, rich_repo};

    #[test]
    fn the_connectivity_check_finds_tips_that_reach_a_missing_object() {
        let src = rich_repo();
        let dir = tempfile::tempdir().unwrap();
        git(
            dir.path(),
            &["clone", "-q", "--bare", src.path().to_str().unwrap(), "."],
        );
        let repo = Repository::open_bare(dir.path()).unwrap();
        let main = repo.revparse_single("main").unwrap().id();
        // A commit whose tree is nowhere: written as is, unchecked.
        let body = format!(
            "tree {}\nparent {main}\nauthor A <a@example.com> 1 +0000\ncommitter A <a@example.com> 1 +0000\n\nbroken\n",
            "1".repeat(40)
        );
        let (out, ok) = git_io(
            dir.path(),
            &["hash-object", "-t", "commit", "-w", "--literally", "--stdin"],
            &[],
            body.as_bytes(),
        );
        assert!(ok);
        let broken = Oid::from_str(String::from_utf8_lossy(&out).trim()).unwrap();
        let intake = Intake {
            engine: git_engine(),
            max_input_size: 1 << 30,
        };
        let q = Quarantine::new(&repo.path().join("objects")).unwrap();
        assert_eq!(intake.disconnected(&repo, &q, &[main]), Vec::<Oid>::new());
        assert_eq!(intake.disconnected(&repo, &q, &[main, broken]), vec![broken]);
    }

    #[test]
    fn a_self_contained_pack_proves_only_its_own_tips() {
        let src = rich_repo();
        let main = git(src.path(), &["rev-parse", "main"]);
        let first = git(src.path(), &["rev-list", "--max-parents=0", "main"]);
        let pack = |revs: &str| {
            let args = ["pack-objects", "--revs", "--stdout", "-q"];
            let (out, ok) = git_io(src.path(), &args, &[], revs.as_bytes());
            assert!(ok);
            out
        };
        let intake = Intake {
            engine: git_engine(),
            max_input_size: 1 << 30,
        };
        let empty = tempfile::tempdir().unwrap();
        git(empty.path(), &["init", "-q", "--bare", "."]);
        let repo = Repository::open_bare(empty.path()).unwrap();
        let main = Oid::from_str(main.trim()).unwrap();
        let first = Oid::from_str(first.trim()).unwrap();

        // The whole history into an empty repository: index-pack proves it.
        let q = intake
            .unpack(&repo, &mut pack(&format!("{main}\n")).as_slice())
            .unwrap();
        assert!(q.self_contained);
        assert_eq!(outside_the_pack(&q, &[main, first]), Vec::<Oid>::new());
        assert_eq!(intake.disconnected(&repo, &q, &[main]), Vec::<Oid>::new());
        // A tip the pack does not hold still goes through rev-list.
        let nowhere = Oid::from_str(&"2".repeat(40)).unwrap();
        assert_eq!(outside_the_pack(&q, &[main, nowhere]), vec![nowhere]);
        assert_eq!(intake.disconnected(&repo, &q, &[main, nowhere]), vec![nowhere]);
        q.install(&repo.path().join("objects")).unwrap();
        drop(q);

        // Only the last commit, on history the repository has: its links
        // leave the pack, so its tip goes through rev-list.
        let q = intake
            .unpack(&repo, &mut pack(&format!("{main}\n^{main}~1\n")).as_slice())
            .unwrap();
        assert!(!q.self_contained);
        assert_eq!(outside_the_pack(&q, &[main]), vec![main]);
        assert_eq!(intake.disconnected(&repo, &q, &[main]), Vec::<Oid>::new());
    }

    #[test]
    fn git_says_why_in_one_line() {
        let err = b"error: object 1: hasDotgit: contains '.git'\nerror: object 1: hasDotgit: contains '.git'\n\nfatal: fsck error in packed object\n";
        assert_eq!(
            stderr_reason(err, "x"),
            "error: object 1: hasDotgit: contains '.git'; fatal: fsck error in packed object"
        );
        assert_eq!(
            stderr_reason(b"\n", "index-pack abnormal exit"),
            "index-pack abnormal exit"
        );
    }

    #[test]
    fn capped_reads_fail_past_the_limit() {
        let data = [7u8; 100];
        let mut src = &data[..];
        let mut c = Capped {
            inner: &mut src,
            max: 99,
            read: 0,
        };
        let err = std::io::copy(&mut c, &mut std::io::sink()).unwrap_err();
        assert!(is_too_large(&err));
        let mut src = &data[..];
        let mut c = Capped {
            inner: &mut src,
            max: 100,
            read: 0,
        };
        assert_eq!(std::io::copy(&mut c, &mut std::io::sink()).unwrap(), 100);
        assert_eq!(c.read, 100);
    }
}
