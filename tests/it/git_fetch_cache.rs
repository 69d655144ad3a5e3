//! Fetches at scale, for correctness: the ref advertisement (read without
//! object reads and cached per repository) against git's own, and after
//! pushes and outside ref changes; the pack cache shared by identical
//! clones, after expiry, and never serving a failed run. Git-only
//! behaviour: on SQLite alone.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::repo::{fsck, rev_parse, tmp};
use crate::support::server::{basic, fixtures, gits_speaking, pkt, Git, TestServer, PACK_CACHE_MAX_AGE};
use crate::support::TestDb;

const NEWEST_GIT: &str = "/usr/local/bin/git";

/// Sets the modification times of the refs' files and folders an hour
/// back, so the advertisement cache keeps what it reads from them and any
/// change made afterwards is sure to move a time.
fn settle(repo: &Path) {
    let status = Command::new("sh")
        .arg("-c")
        .arg("touch -c -d '1 hour ago' HEAD packed-refs && find refs -type d -exec touch -d '1 hour ago' {} +")
        .current_dir(repo)
        .status()
        .expect("touch");
    assert!(status.success());
}

/// Runs git directly on the server's repository (an outside change).
fn git_in(repo: &Path, args: &[&str]) -> String {
    let out = Command::new(NEWEST_GIT)
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_COMMITTER_NAME", "Outside")
        .env("GIT_COMMITTER_EMAIL", "outside@example.com")
        .env("GIT_AUTHOR_NAME", "Outside")
        .env("GIT_AUTHOR_EMAIL", "outside@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Pkt-lines of a body as text, the capabilities after a NUL dropped and
/// `agent=` values left out of v2 replies' comparison by the caller.
fn lines(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let len = usize::from_str_radix(std::str::from_utf8(&rest[..4]).unwrap(), 16).unwrap();
        if len < 4 {
            out.push(format!("<{len:04}>"));
            rest = &rest[4..];
            continue;
        }
        let text = String::from_utf8_lossy(&rest[4..len]).to_string();
        out.push(text.split('\0').next().unwrap().to_string());
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    out
}

/// git's own v0 advertisement of `repo`, with the `# service=` header
/// http-backend puts before it.
fn git_v0(repo: &Path) -> Vec<String> {
    let out = Command::new(NEWEST_GIT)
        .args(["upload-pack", "--advertise-refs", "--stateless-rpc", "."])
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git upload-pack");
    let mut v = vec!["# service=git-upload-pack\n".to_string(), "<0000>".to_string()];
    v.extend(lines(&out.stdout));
    v
}

fn ls_refs_request(args: &[&str]) -> Vec<u8> {
    let mut req = Vec::new();
    req.extend(pkt(b"command=ls-refs\n"));
    req.extend(pkt(b"object-format=sha1\n"));
    req.extend_from_slice(b"0001");
    for a in args {
        req.extend(pkt(format!("{a}\n").as_bytes()));
    }
    req.extend_from_slice(b"0000");
    req
}

/// git's own `ls-refs` reply for `repo`.
fn git_ls_refs(repo: &Path, args: &[&str]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(NEWEST_GIT)
        .args(["upload-pack", "--stateless-rpc", "."])
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROTOCOL", "version=2")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git upload-pack");
    child.stdin.take().unwrap().write_all(&ls_refs_request(args)).unwrap();
    child.wait_with_output().unwrap().stdout
}

struct Served {
    srv: TestServer,
    token: String,
    auth: String,
    dir: std::path::PathBuf,
}

impl Served {
    fn new(srv: TestServer, fixture: &str) -> Served {
        srv.user("alice", false, None);
        let token = srv.token("alice", &["api"], None);
        srv.import("alice/repo", "alice", "private", &fixtures().join(fixture));
        let dir = srv.repo_dir("alice/repo");
        Served {
            auth: basic("alice", &token),
            token,
            srv,
            dir,
        }
    }

    fn url(&self) -> String {
        self.srv.url_as("alice", &self.token, "/alice/repo.git")
    }

    fn info_refs(&self) -> Vec<String> {
        let r = self.srv.raw(
            "GET",
            "/alice/repo.git/info/refs?service=git-upload-pack",
            &[("Authorization", &self.auth)],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        lines(&r.body)
    }

    fn ls_refs(&self, args: &[&str]) -> Vec<u8> {
        let r = self.srv.raw(
            "POST",
            "/alice/repo.git/git-upload-pack",
            &[
                ("Authorization", &self.auth),
                ("Git-Protocol", "version=2"),
                ("Content-Type", "application/x-git-upload-pack-request"),
            ],
            &ls_refs_request(args),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.body
    }

    /// The server's answers against git's for the repository as it is.
    fn check_against_git(&self, state: &str) {
        assert_eq!(self.info_refs(), git_v0(&self.dir), "{state}: info/refs v0");
        for args in [
            &["symrefs", "peel", "unborn"][..],
            &["peel", "ref-prefix refs/tags/", "ref-prefix HEAD"],
            &["ref-prefix refs/heads/branch-01"],
        ] {
            assert_eq!(
                String::from_utf8_lossy(&self.ls_refs(args)),
                String::from_utf8_lossy(&git_ls_refs(&self.dir, args)),
                "{state}: ls-refs {args:?}"
            );
        }
    }
}

#[test]
fn the_advertisement_matches_git_and_follows_every_ref_change() {
    let s = Served::new(TestServer::start(TestDb::sqlite()), "many-refs");
    let git = gits_speaking(None).pop().expect("a git");
    settle(&s.dir);
    s.check_against_git("imported (packed refs)");

    // Hundreds of annotated tags made loose, outside the server, over the
    // packed ones; then a branch moved, a tag deleted, refs packed again.
    for i in 0..300 {
        let name = format!("tag-{:03}", i % 100 + 1);
        let target = format!("main~{}", i % 40);
        let tag = if i < 100 { name } else { format!("loose-{i:03}") };
        git_in(
            &s.dir,
            &["tag", "-f", "-a", "-m", &format!("annotated {i}"), &tag, &target],
        );
        if i % 100 == 99 {
            settle(&s.dir);
            s.check_against_git(&format!("{} loose annotated tags", i + 1));
        }
    }
    let changes: &[(&str, &[&str])] = &[
        ("a moved branch", &["update-ref", "refs/heads/main", "main~1"]),
        ("a deleted packed ref", &["update-ref", "-d", "refs/heads/branch-0001"]),
        ("refs packed", &["pack-refs", "--all"]),
        ("a new nested branch", &["branch", "team/x/y", "main~2"]),
        ("HEAD elsewhere", &["symbolic-ref", "HEAD", "refs/heads/team/x/y"]),
    ];
    for (what, args) in changes {
        settle(&s.dir);
        s.info_refs();
        git_in(&s.dir, args);
        s.check_against_git(what);
    }

    // A push through the server is seen at once, by both protocols.
    settle(&s.dir);
    s.info_refs();
    let work = tmp();
    let w = work.path();
    git.ok(w, &["clone", "-q", &s.url(), "."]);
    std::fs::write(w.join("pushed"), "x").unwrap();
    git.ok(w, &["add", "pushed"]);
    git.ok(w, &["commit", "-q", "-m", "pushed"]);
    git.ok(
        w,
        &[
            "push",
            "-q",
            "origin",
            "HEAD:refs/heads/pushed",
            "HEAD:refs/tags/pushed-tag",
        ],
    );
    let pushed = rev_parse(&git, w, "HEAD");
    for version in ["0", "2"] {
        let listed = git.ok(
            w,
            &["-c", &format!("protocol.version={version}"), "ls-remote", "origin"],
        );
        assert!(
            listed.contains(&format!("{pushed}\trefs/heads/pushed")) && listed.contains("refs/tags/pushed-tag"),
            "v{version} sees the push: {listed}"
        );
    }
    s.check_against_git("after a push");
}

/// Clones of `url` into fresh folders by `n` clients at once; each checked.
fn clone_at_once(git: &Git, url: &str, n: usize) {
    let dirs: Vec<_> = (0..n).map(|_| tmp()).collect();
    std::thread::scope(|scope| {
        for d in &dirs {
            scope.spawn(|| git.ok(d.path(), &["clone", "-q", "--bare", url, "c"]));
        }
    });
    for d in &dirs {
        fsck(git, &d.path().join("c"));
    }
}

#[test]
fn identical_clones_share_one_pack_objects_run_until_it_expires() {
    let srv = TestServer::start_configured(TestDb::sqlite(), "git", None, Some(Duration::from_secs(2)), |_| {});
    let s = Served::new(srv, "basic");
    let cache = s.srv.app.pack_cache.clone().expect("the cache is on");
    for git in gits_speaking(None).into_iter().chain(gits_speaking(Some("0"))) {
        let before = (cache.hits.load(Ordering::Relaxed), cache.misses.load(Ordering::Relaxed));
        clone_at_once(&git, &s.url(), 3);
        let after = (cache.hits.load(Ordering::Relaxed), cache.misses.load(Ordering::Relaxed));
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (2, 1),
            "{}: three identical clones, one run",
            git.label()
        );
        std::thread::sleep(Duration::from_millis(2100));
        clone_at_once(&git, &s.url(), 1);
        assert_eq!(
            cache.misses.load(Ordering::Relaxed) - after.1,
            1,
            "{}: an expired entry is made again",
            git.label()
        );
        std::thread::sleep(Duration::from_millis(2100));
    }
    // Expired entries leave no files behind once purged.
    cache.purge();
    let left = std::fs::read_dir(s.srv.app.config.data_dir.join("cache/packs"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "expired packs are removed");
}

#[test]
fn a_failed_pack_objects_run_is_never_served_to_the_next_client() {
    // A git that, while the mark file exists, cuts pack-objects' output
    // short and fails, as a killed or crashed run would.
    let bin = tmp();
    let mark = bin.path().join("fail");
    let wrapper = bin.path().join("git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$1 $2 $3 $4\" in *pack-objects*)\n  if [ -e {mark} ]; then {NEWEST_GIT} \"$@\" | head -c 3000; exit 1; fi;;\nesac\nexec {NEWEST_GIT} \"$@\"\n",
            mark = mark.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&mark, "").unwrap();
    let srv = TestServer::start_configured(TestDb::sqlite(), "git", None, PACK_CACHE_MAX_AGE, |app| {
        app.engine = gitpat::git::pack::PackEngine::Git {
            binary: wrapper.clone(),
        };
    });
    let s = Served::new(srv, "basic");
    let cache = s.srv.app.pack_cache.clone().expect("the cache is on");
    let git = gits_speaking(None).pop().expect("a git");
    let d = tmp();
    let failed = git.run(d.path(), &["clone", "-q", "--bare", &s.url(), "c"]);
    assert!(!failed.status.success(), "the cut pack fails the clone");
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("upload-pack: the pack could not be made"), "{err}");
    let packs = s.srv.app.config.data_dir.join("cache/packs");
    assert_eq!(
        std::fs::read_dir(&packs).unwrap().count(),
        0,
        "the failed run left no file"
    );

    std::fs::remove_file(&mark).unwrap();
    clone_at_once(&git, &s.url(), 2);
    assert_eq!(
        cache.misses.load(Ordering::Relaxed),
        2,
        "the next client started a new run"
    );
    assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
    assert_eq!(std::fs::read_dir(&packs).unwrap().count(), 1);
}

#[test]
fn with_the_cache_off_clones_still_work() {
    let srv = TestServer::start_configured(TestDb::sqlite(), "git", None, None, |_| {});
    let s = Served::new(srv, "basic");
    assert!(s.srv.app.pack_cache.is_none());
    let git = gits_speaking(None).pop().expect("a git");
    clone_at_once(&git, &s.url(), 2);
    assert!(!s.srv.app.config.data_dir.join("cache/packs").exists());
}
