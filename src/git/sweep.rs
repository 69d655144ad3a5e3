//! What processes that died leave in the repositories folder, found and
//! removed (`serve` runs it at start and hourly): quarantines
//! (`objects/incoming-*`), stale lock files (`HEAD.lock`, `refs/**.lock`,
//! `packed-refs.lock`, `config.lock`), temporary packs, staging folders in
//! `.tmp/`, and repositories that a push was creating when it died (the
//! [`PUSH_TO_CREATE`] marker). Only what has not changed for [`STALE`] is
//! taken, and never what a live request of this process holds
//! ([`hold`]); another process's live push keeps writing its quarantine,
//! so its files stay younger than that (and a repository it is creating
//! with them).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Leftovers untouched for this long are taken to be dead.
pub const STALE: Duration = Duration::from_secs(3600);

/// A repository made by a push that has not landed yet holds this file.
pub const PUSH_TO_CREATE: &str = "gitpat-push-to-create";

static LIVE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn live() -> MutexGuard<'static, Option<HashSet<PathBuf>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks `path` as in use by this process until the guard is dropped.
pub fn hold(path: &Path) -> Held {
    live().get_or_insert_with(HashSet::new).insert(path.to_path_buf());
    Held(path.to_path_buf())
}

/// How many paths this process holds now: none once every request that
/// made one has ended and cleaned up.
pub fn held_count() -> usize {
    live().as_ref().map_or(0, HashSet::len)
}

fn is_held(path: &Path) -> bool {
    live().as_ref().is_some_and(|s| s.contains(path))
}

#[derive(Debug)]
pub struct Held(PathBuf);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(s) = live().as_mut() {
            s.remove(&self.0);
        }
    }
}

/// What one sweep removed, and the repositories whose creating push died
/// (the caller decides: their rows are in the database).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub quarantines: usize,
    pub locks: usize,
    pub temporary: usize,
    pub unfinished_creates: Vec<PathBuf>,
}

/// The newest modification time of `path` and everything under it.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut t = meta.modified().ok()?;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).ok()?.flatten() {
            if let Some(c) = newest(&e.path()) {
                t = t.max(c);
            }
        }
    }
    Some(t)
}

fn stale(path: &Path, now: SystemTime) -> bool {
    !is_held(path) && newest(path).is_some_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE))
}

fn remove(path: &Path) -> bool {
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => {
            tracing::info!("removed the leftover {}", path.display());
            true
        }
        Err(e) => {
            tracing::warn!("cannot remove the leftover {}: {e}", path.display());
            false
        }
    }
}

fn is_repository(dir: &Path) -> bool {
    dir.extension().is_some_and(|e| e == "git") && dir.join("objects").is_dir() && dir.join("HEAD").exists()
}

/// Sweeps the repositories folder `root` as of `now`.
pub fn sweep(root: &Path, now: SystemTime) -> Swept {
    let mut out = Swept::default();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name() == ".tmp" {
            for t in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                if stale(&t.path(), now) && remove(&t.path()) {
                    out.temporary += 1;
                }
            }
        } else if p.is_dir() {
            walk(&p, now, &mut out);
        }
    }
    out
}

fn walk(dir: &Path, now: SystemTime, out: &mut Swept) {
    if is_repository(dir) {
        sweep_repository(dir, now, out);
        return;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), now, out);
        }
    }
}

fn sweep_repository(repo: &Path, now: SystemTime, out: &mut Swept) {
    let objects = repo.join("objects");
    for e in std::fs::read_dir(&objects).into_iter().flatten().flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with("incoming-") && stale(&e.path(), now) && remove(&e.path()) {
            out.quarantines += 1;
        }
    }
    for e in std::fs::read_dir(objects.join("pack")).into_iter().flatten().flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with("tmp_") || name.starts_with(".tmp-")) && stale(&e.path(), now) && remove(&e.path()) {
            out.temporary += 1;
        }
    }
    for name in ["HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock"] {
        let p = repo.join(name);
        if p.exists() && stale(&p, now) && remove(&p) {
            out.locks += 1;
        }
    }
    sweep_ref_locks(&repo.join("refs"), now, out);
    let marker = repo.join(PUSH_TO_CREATE);
    // The whole repository untouched: another process's push may still be
    // writing its quarantine inside (this process's are held).
    if marker.exists() && stale(repo, now) {
        out.unfinished_creates.push(repo.to_path_buf());
    }
}

fn sweep_ref_locks(dir: &Path, now: SystemTime, out: &mut Swept) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            sweep_ref_locks(&p, now, out);
        } else if p.extension().is_some_and(|x| x == "lock") && stale(&p, now) && remove(&p) {
            out.locks += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(root: &Path, path: &str) -> PathBuf {
        let dir = root.join(path);
        git2::Repository::init_bare(&dir).unwrap();
        dir
    }

    #[test]
    fn old_leftovers_go_and_fresh_or_held_ones_stay() {
        let root = tempfile::tempdir().unwrap();
        let a = repo(root.path(), "alice/a.git");
        let b = repo(root.path(), "team/sub/b.git");
        for dir in [
            a.join("objects/incoming-dead/pack"),
            b.join("objects/incoming-live/pack"),
        ] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("tmp_pack_x"), b"PACK").unwrap();
        }
        std::fs::create_dir_all(a.join("refs/heads/feature")).unwrap();
        std::fs::write(a.join("refs/heads/feature/x.lock"), b"").unwrap();
        std::fs::write(a.join("packed-refs.lock"), b"").unwrap();
        std::fs::write(a.join(PUSH_TO_CREATE), b"").unwrap();
        std::fs::create_dir_all(root.path().join(".tmp/stage-1")).unwrap();
        // Another process is still pushing into c, which it is creating:
        // its quarantine keeps changing.
        let c = repo(root.path(), "bob/c.git");
        std::fs::write(c.join(PUSH_TO_CREATE), b"").unwrap();
        std::fs::create_dir_all(c.join("objects/incoming-other/pack")).unwrap();
        let writing = std::fs::File::create(c.join("objects/incoming-other/pack/tmp_pack_y")).unwrap();
        // Nothing is an hour old yet.
        let now = SystemTime::now();
        assert_eq!(sweep(root.path(), now), Swept::default());
        // An hour later: all of it, but what this process holds.
        let _held = hold(&b.join("objects/incoming-live"));
        let later = now + STALE + Duration::from_secs(60);
        writing.set_modified(later).unwrap();
        let swept = sweep(root.path(), later);
        assert_eq!(
            swept,
            Swept {
                quarantines: 1,
                locks: 2,
                temporary: 1,
                unfinished_creates: vec![a.clone()],
            }
        );
        assert!(!a.join("objects/incoming-dead").exists());
        assert!(b.join("objects/incoming-live").exists());
        assert!(!a.join("packed-refs.lock").exists());
        assert!(
            a.join("HEAD").exists() && a.join("objects").is_dir(),
            "the repository itself stays"
        );
        assert!(!root.path().join(".tmp/stage-1").exists());
        assert!(c.join("objects/incoming-other/pack/tmp_pack_y").exists());
    }
}
