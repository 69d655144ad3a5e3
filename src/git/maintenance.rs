//! Repository maintenance: every push adds a pack, and reads slow down as
//! packs pile up. When a repository holds more than the instance's
//! `maintenance_pack_limit` packs, `git repack -d -l --cruft
//! --write-bitmap-index` packs everything reachable into one pack with a
//! bitmap (so full clones are served from it) and anything unreachable into
//! a cruft pack: nothing is pruned, so a push running at the same time never
//! loses an object it relies on. Then `git pack-refs --all` packs the refs
//! pushes left loose, with their peeled ids, so advertisements read them
//! without opening a tag.
//!
//! After a push it runs in the background, at most one run per repository
//! (a lock file in the repository, so other instances on the same disk
//! agree) and at most [`MAX_RUNNING`] in this process; it never blocks or
//! fails a push. `gitpat repo gc` runs it by hand.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Runs at once in one process; a push past that leaves the work to a later
/// push.
pub const MAX_RUNNING: usize = 2;

/// The lock file, in the repository folder.
const LOCK: &str = "gitpat-maintenance.lock";

/// A lock older than this is taken to be left by a process that died.
const STALE_LOCK: Duration = Duration::from_secs(6 * 3600);

/// The packs of a repository (`objects/pack/*.pack`), cruft packs included.
pub fn pack_count(repo_dir: &Path) -> usize {
    std::fs::read_dir(repo_dir.join("objects/pack"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
                .count()
        })
        .unwrap_or(0)
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub packs_before: usize,
    pub packs_after: usize,
}

/// Why a run did not happen or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaintenanceError {
    /// Another run holds the repository's lock.
    Busy,
    /// The git engine is not available (`pack_engine = libgit2`, or no git).
    NoGit,
    Failed(String),
}

impl std::fmt::Display for MaintenanceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaintenanceError::Busy => f.write_str("maintenance of this repository is already running"),
            MaintenanceError::NoGit => f.write_str("maintenance needs git (pack_engine = libgit2 has none)"),
            MaintenanceError::Failed(why) => write!(f, "git repack failed: {why}"),
        }
    }
}

impl std::error::Error for MaintenanceError {}

/// The repository's lock, removed when dropped.
struct Lock(PathBuf);

impl Lock {
    fn take(repo_dir: &Path) -> Result<Lock, MaintenanceError> {
        let path = repo_dir.join(LOCK);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(Lock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if !stale {
                        return Err(MaintenanceError::Busy);
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(MaintenanceError::Failed(format!("cannot take {}: {e}", path.display()))),
            }
        }
        Err(MaintenanceError::Busy)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Repacks `repo_dir` now with `git` (none: the libgit2 engine), with its
/// lock held.
pub fn run(git: Option<&Path>, repo_dir: &Path) -> Result<Outcome, MaintenanceError> {
    let git = git.ok_or(MaintenanceError::NoGit)?;
    let _lock = Lock::take(repo_dir)?;
    let packs_before = pack_count(repo_dir);
    git_step(
        git,
        repo_dir,
        &["repack", "-d", "-l", "--cruft", "--write-bitmap-index", "-q"],
    )?;
    git_step(git, repo_dir, &["pack-refs", "--all"])?;
    Ok(Outcome {
        packs_before,
        packs_after: pack_count(repo_dir),
    })
}

/// Runs one git command of the maintenance; its stderr is the error.
fn git_step(git: &Path, repo_dir: &Path, args: &[&str]) -> Result<(), MaintenanceError> {
    let out = super::git_command(git, repo_dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| MaintenanceError::Failed(format!("cannot run {}: {e}", git.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(MaintenanceError::Failed(err.trim().chars().take(1000).collect()));
    }
    Ok(())
}

/// Background maintenance for one process: which repositories are being
/// maintained now.
#[derive(Debug, Default)]
pub struct Maintainer {
    running: Mutex<HashSet<PathBuf>>,
}

impl Maintainer {
    /// Starts a background run for `repo_dir` when it holds more than
    /// `pack_limit` packs and neither it nor too many others are being
    /// maintained; returns whether one started. Never blocks.
    pub fn after_push(self: &Arc<Self>, git: Option<&Path>, repo_dir: &Path, pack_limit: usize) -> bool {
        let Some(git) = git else { return false };
        if pack_count(repo_dir) <= pack_limit {
            return false;
        }
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.len() >= MAX_RUNNING || !running.insert(repo_dir.to_path_buf()) {
                return false;
            }
        }
        let me = Arc::clone(self);
        let (git, dir) = (git.to_path_buf(), repo_dir.to_path_buf());
        let started = std::thread::Builder::new()
            .name("gitpat-maintenance".into())
            .spawn(move || {
                match run(Some(&git), &dir) {
                    Ok(o) => tracing::info!(
                        "maintenance of {}: {} packs, now {}",
                        dir.display(),
                        o.packs_before,
                        o.packs_after
                    ),
                    Err(MaintenanceError::Busy) => {}
                    Err(e) => tracing::warn!("maintenance of {}: {e}", dir.display()),
                }
                me.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&dir);
            });
        if started.is_err() {
            self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(repo_dir);
            return false;
        }
        true
    }

    /// How many runs are going on now.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::pktline;
    use crate::git::refs::RefCache;
    use crate::git::test_fixtures::{self, git};
    use crate::git::upload_pack::{self, Plan};

    #[test]
    fn a_repack_writes_a_bitmap_full_clones_use_and_packs_the_refs() {
        let repo = test_fixtures::tagged_repo(30);
        let d = repo.path();
        for i in 0..3 {
            git(d, &["tag", "-a", "-m", "late", &format!("late-{i}"), "main"]);
        }
        let binary = Path::new("/usr/local/bin/git");
        let binary = if binary.exists() { binary } else { Path::new("git") };
        run(Some(binary), d).expect("maintenance runs");
        let packed = std::fs::read_to_string(d.join("packed-refs")).unwrap();
        assert!(packed.starts_with("# pack-refs with: peeled fully-peeled sorted"));
        assert!(packed.contains("refs/tags/late-2\n^"), "peeled ids stored");
        assert!(!d.join("refs/tags/late-2").exists(), "no loose ref left");
        let bitmaps = std::fs::read_dir(d.join("objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "bitmap"))
            .count();
        assert_eq!(bitmaps, 1);

        // The pack-objects run of a full clone, as gitpat makes it, takes
        // the bitmap.
        let main = git(d, &["rev-parse", "main"]);
        let mut body = Vec::new();
        pktline::write_line(
            &mut body,
            &format!("want {main} ofs-delta side-band-64k thin-pack include-tag"),
        )
        .unwrap();
        pktline::write_flush(&mut body);
        pktline::write_line(&mut body, "done").unwrap();
        let repo = git2::Repository::open_bare(d).unwrap();
        let Ok(Plan::Pack { spec, .. }) = upload_pack::plan_v0(&repo, &RefCache::default(), &body) else {
            panic!("a full clone sends a pack");
        };
        let cmd = spec.git_command(false);
        let trace = d.join("trace2.json");
        let mut child = crate::git::git_command(binary, d)
            .args(&cmd.args)
            .env("GIT_TRACE2_EVENT", &trace)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(cmd.stdin.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        let trace = std::fs::read_to_string(trace).unwrap();
        assert!(trace.contains("opened bitmap file"), "the bitmap is used");
    }
}
