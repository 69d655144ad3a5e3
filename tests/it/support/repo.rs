//! Helpers over git repositories for the Git tests: refs, commits, fsck,
//! the pack folder and quarantines, git's `remote:` lines.

use std::path::Path;

use super::server::Git;

/// `refname objectname` of every ref of a repository, sorted (git's own
/// view, through `for-each-ref`).
pub fn for_each_ref(git: &Git, git_dir: &Path, pattern: &str) -> Vec<String> {
    let dir = git_dir.display().to_string();
    let mut args = vec!["--git-dir", &dir, "for-each-ref", "--format=%(refname) %(objectname)"];
    if !pattern.is_empty() {
        args.push(pattern);
    }
    let out = git.ok(Path::new("/"), &args);
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// The object id a ref of a bare repository points at, read with git2.
pub fn server_ref(dir: &Path, name: &str) -> Option<String> {
    let r = git2::Repository::open_bare(dir).expect("open the server's repository");
    r.refname_to_id(name).ok().map(|o| o.to_string())
}

pub fn rev_parse(git: &Git, dir: &Path, rev: &str) -> String {
    git.ok(dir, &["rev-parse", rev]).trim().to_string()
}

/// Writes `file` with `content` in the work tree `dir` and commits it;
/// returns the new commit.
pub fn commit(git: &Git, dir: &Path, file: &str, content: &str, msg: &str) -> String {
    let p = dir.join(file);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    git.ok(dir, &["add", file]);
    git.ok(dir, &["commit", "-q", "-m", msg]);
    rev_parse(git, dir, "HEAD")
}

/// `git fsck` of a repository (work tree or bare) must find nothing.
pub fn fsck(git: &Git, dir: &Path) {
    let out = git.run(dir, &["fsck", "--no-dangling", "--no-progress"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim().is_empty() && !err.contains("error") && !err.contains("missing"),
        "{} git fsck in {} found problems ({}):\n{stdout}\n{err}",
        git.label(),
        dir.display(),
        out.status
    );
}

/// The `remote: ...` lines git printed.
pub fn remote_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("remote:"))
        .map(|l| l.trim_end().to_string())
        .collect()
}

pub fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: expected to see {needle:?} in:\n{haystack}"
    );
}

/// The files under `objects/pack`, and any `objects/incoming-*` folder.
pub fn pack_state(repo: &Path) -> (Vec<String>, Vec<String>) {
    let mut packs: Vec<String> = std::fs::read_dir(repo.join("objects/pack"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    packs.sort();
    let incoming: Vec<String> = std::fs::read_dir(repo.join("objects"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("incoming"))
        .collect();
    (packs, incoming)
}

/// Waits (bounded) for the quarantine folders of a push to go away.
pub fn wait_no_incoming(repo: &Path) -> (Vec<String>, Vec<String>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let s = pack_state(repo);
        if s.1.is_empty() || std::time::Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `n` bytes that do not compress (xorshift, the same every run).
pub fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}
