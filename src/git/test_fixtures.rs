//! Test fixtures: repositories built with the git CLI in a hermetic
//! environment, so the same script makes the same object ids everywhere.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A `git` command in `dir` with no system or global config and fixed
/// identities and dates.
///
/// The oracle is the newest git here (`/usr/local/bin/git` when present):
/// git 2.39 answers an empty repository's upload-pack advertisement with a
/// bare flush, which newer git (and gitpat) replace by `capabilities^{}`.
pub fn git_cmd(dir: &Path) -> Command {
    let newest = Path::new("/usr/local/bin/git");
    let mut cmd = Command::new(if newest.exists() { newest } else { Path::new("git") });
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "C O Mitter")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
        .env_remove("GIT_DIR")
        .env_remove("GIT_PROTOCOL");
    cmd
}

/// The git engine on the newest git here.
pub fn git_engine() -> crate::git::pack::PackEngine {
    crate::git::pack::PackEngine::resolve("git", Some(std::ffi::OsStr::new("/usr/local/bin:/usr/bin")))
        .expect("git is installed")
}

/// Run git with `args` in `dir`; panics with stderr if it fails. Returns
/// stdout trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run git with `args`, `stdin` and extra env in `dir`; returns raw stdout
/// and whether it succeeded.
pub fn git_io(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> (Vec<u8>, bool) {
    let mut cmd = git_cmd(dir);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn git");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait git");
    let _ = writer.join();
    (out.stdout, out.status.success())
}

/// Commit a file change with a given date offset (seconds after 2020-01-01)
/// so that commit dates differ; returns the new commit id.
pub fn commit(dir: &Path, file: &str, content: &str, msg: &str, t: u32) -> String {
    std::fs::write(dir.join(file), content).expect("write file");
    git(dir, &["add", file]);
    let date = format!("{} +0000", 1_577_836_800 + t);
    let out = git_cmd(dir)
        .args(["commit", "-q", "-m", msg])
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .expect("git commit");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    git(dir, &["rev-parse", "HEAD"])
}

/// A repository with branches `main` (3 commits) and `dev` (one more),
/// an annotated tag `v1`, a lightweight tag `light`, a tag of a tag
/// `nested`, a tag of a blob `blob-tag` (as git.git's `junio-gpg-pub`), a symbolic ref `refs/heads/alias -> main`, and HEAD pointing
/// at `dev` (not the default branch).
pub fn rich_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    commit(d, "f", "1", "c1", 10);
    commit(d, "f", "2", "c2", 20);
    commit(d, "f", "3", "c3", 30);
    git(d, &["tag", "-a", "v1", "-m", "v1", "HEAD~1"]);
    git(d, &["tag", "light", "HEAD"]);
    git(
        d,
        &["-c", "advice.nestedTag=false", "tag", "-a", "nested", "-m", "n", "v1"],
    );
    git(d, &["tag", "-a", "blob-tag", "-m", "a blob", "HEAD:f"]);
    git(d, &["checkout", "-q", "-b", "dev"]);
    commit(d, "g", "d", "d1", 40);
    git(d, &["symbolic-ref", "refs/heads/alias", "refs/heads/main"]);
    dir
}

/// An empty repository whose HEAD points at unborn `main`.
pub fn empty_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    dir
}

/// A linear history `main`: c1..c8 with increasing dates, plus a branch
/// `side` forked at c4 with two commits and merged back into `main` at c6
/// (so main = c1 c2 c3 c4 s1 s2 c5 m6 c7 c8 roughly). Returns the dir.
pub fn history_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    for i in 1..=4u32 {
        commit(d, "f", &i.to_string(), &format!("c{i}"), i * 100);
    }
    git(d, &["checkout", "-q", "-b", "side"]);
    commit(d, "s", "1", "s1", 450);
    commit(d, "s", "2", "s2", 460);
    git(d, &["checkout", "-q", "main"]);
    commit(d, "f", "5", "c5", 500);
    let out = git_cmd(d)
        .args(["merge", "-q", "--no-ff", "-m", "m6", "side"])
        .env("GIT_AUTHOR_DATE", "1577837400 +0000")
        .env("GIT_COMMITTER_DATE", "1577837400 +0000")
        .output()
        .expect("merge");
    assert!(out.status.success());
    commit(d, "f", "7", "c7", 700);
    commit(d, "f", "8", "c8", 800);
    git(d, &["tag", "-a", "t7", "-m", "t7", "HEAD~1"]);
    dir
}

/// A bare repository with `n` commits on `main`, an annotated tag `a<i>`
/// and a lightweight tag `l<i>` on each, a tag of a tag, a tag of a blob,
/// `refs/heads/alias` -> `alias-of-alias` -> `main` (a chain of symbolic
/// refs), all made by one `git fast-import` and so all loose refs.
pub fn tagged_repo(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q", "--bare", "-b", "main"]);
    let mut script = String::new();
    let who = "A U Thor <author@example.com> 1577836800 +0000";
    for i in 1..=n {
        let body = format!("c{i}\n");
        let from = if i > 1 {
            format!("from :{}\n", i - 1)
        } else {
            String::new()
        };
        script.push_str(&format!(
            "commit refs/heads/main\nmark :{i}\ncommitter {who}\ndata {}\n{body}{from}M 644 inline f\ndata {}\n{body}\n",
            body.len(),
            body.len()
        ));
        let msg = format!("tag a{i}\n");
        script.push_str(&format!(
            "tag a{i:04}\nmark :{}\nfrom :{i}\ntagger {who}\ndata {}\n{msg}\nreset refs/tags/l{i:04}\nfrom :{i}\n\n",
            500_000 + i,
            msg.len()
        ));
    }
    script.push_str(&format!("tag nested\nfrom :500001\ntagger {who}\ndata 2\nn\n\n"));
    script.push_str(&format!(
        "blob\nmark :999999\ndata 5\nblob\n\ntag blob-tag\nfrom :999999\ntagger {who}\ndata 2\nb\n\n"
    ));
    let (_, ok) = git_io(d, &["fast-import", "--quiet"], &[], script.as_bytes());
    assert!(ok, "fast-import failed");
    git(d, &["symbolic-ref", "refs/heads/alias-of-alias", "refs/heads/main"]);
    git(d, &["symbolic-ref", "refs/heads/alias", "refs/heads/alias-of-alias"]);
    dir
}
