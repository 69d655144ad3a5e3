//! Pushes of real-world shapes with the real git clients (2.39 and 2.47):
//! submodules (gitlinks), long histories with tags, thin packs, big blobs,
//! packs over `receive_max_input_size`, and objects git's fsck refuses.
//! Each runs on every backend; the engine (`pack_engine`) is named per test.

use std::path::Path;

use gitpat::git::maintenance::pack_count;

use crate::support::repo::{commit, for_each_ref, fsck, pack_state, rev_parse, server_ref, tmp, wait_no_incoming};
use crate::support::serve::{peak_rss_kib, Server};
use crate::support::server::{gits, Git, TestServer};
use crate::support::{Gitpat, TestDb};

/// The engines that take pushes in (`pack_engine`).
const ENGINES: [&str; 2] = ["git", "libgit2"];

/// A commit that lives in another repository, for gitlinks.
const SUBMODULE_COMMIT: &str = "1234567890abcdef1234567890abcdef12345678";

fn new_work(git: &Git) -> tempfile::TempDir {
    let work = tmp();
    git.ok(work.path(), &["init", "-q", "."]);
    work
}

/// Adds a submodule `lib` at [`SUBMODULE_COMMIT`] (a gitlink and its
/// `.gitmodules` entry) and commits; returns the commit.
fn commit_submodule(git: &Git, dir: &Path) -> String {
    std::fs::write(
        dir.join(".gitmodules"),
        "[submodule \"lib\"]\n\tpath = lib\n\turl = https://example.com/lib.git\n",
    )
    .unwrap();
    git.ok(dir, &["add", ".gitmodules"]);
    git.ok(
        dir,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{SUBMODULE_COMMIT},lib"),
        ],
    );
    git.ok(dir, &["commit", "-q", "-m", "add a submodule"]);
    rev_parse(git, dir, "HEAD")
}

#[test]
fn a_push_with_a_submodule_lands_and_clones_back_on_both_engines() {
    for srv in ENGINES.iter().flat_map(|e| TestServer::each_with_engine(e)) {
        let engine = srv.app.engine.name();
        srv.user("alice", false, None);
        let t = srv.token("alice", &["write_repository"], None);
        for (i, git) in gits().iter().enumerate() {
            let ctx = format!("{} engine {engine}", git.context(srv.backend()));
            let work = new_work(git);
            commit(git, work.path(), "README", "hello\n", "first");
            let head = commit_submodule(git, work.path());
            // Into a new repository (push to create), then one more commit.
            let path = format!("alice/with-submodule-{i}");
            let url = srv.url_as("alice", &t, &format!("/{path}.git"));
            git.ok(work.path(), &["push", "-q", &url, "main"]);
            assert_eq!(server_ref(&srv.repo_dir(&path), "refs/heads/main"), Some(head), "{ctx}");
            let next = commit(git, work.path(), "README", "hello again\n", "second");
            git.ok(work.path(), &["push", "-q", &url, "main"]);
            assert_eq!(server_ref(&srv.repo_dir(&path), "refs/heads/main"), Some(next), "{ctx}");

            let back = tmp();
            git.ok(back.path(), &["clone", "-q", &url, "."]);
            assert_eq!(
                rev_parse(git, back.path(), "HEAD"),
                rev_parse(git, work.path(), "HEAD"),
                "{ctx}"
            );
            let entry = git.ok(back.path(), &["ls-tree", "HEAD", "lib"]);
            assert_eq!(
                entry.trim_end(),
                format!("160000 commit {SUBMODULE_COMMIT}\tlib"),
                "{ctx}"
            );
            fsck(git, &srv.repo_dir(&path));
            assert!(
                wait_no_incoming(&srv.repo_dir(&path)).1.is_empty(),
                "{ctx} a quarantine was left"
            );
        }
    }
}

/// `count` commits on main, a tag on every tenth (annotated on every
/// twentieth), made with fast-import: quick and reproducible.
fn long_history(git: &Git, dir: &Path, count: usize) {
    let mut script = String::new();
    for n in 1..=count {
        let body = format!("line {n}\n{}", "some text that deltas well\n".repeat(n % 50 + 1));
        let msg = format!("commit {n}");
        script.push_str(&format!(
            "commit refs/heads/main\nmark :{n}\ncommitter C <c@example.com> {} +0000\ndata {}\n{msg}\n",
            1_700_000_000 + n,
            msg.len() + 1
        ));
        if n > 1 {
            script.push_str(&format!("from :{}\n", n - 1));
        }
        script.push_str(&format!(
            "M 100644 inline file-{}.txt\ndata {}\n{body}\n",
            n % 37,
            body.len()
        ));
        if n % 20 == 0 {
            let m = format!("release {n}");
            script.push_str(&format!(
                "tag v{n}\nfrom :{n}\ntagger T <t@example.com> {} +0000\ndata {}\n{m}\n",
                1_700_000_000 + n,
                m.len()
            ));
        } else if n % 10 == 0 {
            script.push_str(&format!("reset refs/tags/light-{n}\nfrom :{n}\n\n"));
        }
    }
    let out = git.run_with(dir, &["fast-import", "--quiet"], &[], Some(script.as_bytes()));
    assert!(
        out.status.success(),
        "{} fast-import: {}",
        git.label(),
        String::from_utf8_lossy(&out.stderr)
    );
    git.ok(dir, &["checkout", "-q", "-f", "main"]);
}

/// The object ids in the pack `name` (`git show-index` over its `.idx`).
fn pack_objects_of(git: &Git, repo: &Path, idx_name: &str) -> Vec<String> {
    let idx = std::fs::read(repo.join("objects/pack").join(idx_name)).unwrap();
    let out = git.run_with(repo, &["show-index"], &[], Some(&idx));
    assert!(out.status.success(), "show-index {idx_name}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

fn idx_files(repo: &Path) -> Vec<String> {
    pack_state(repo).0.into_iter().filter(|n| n.ends_with(".idx")).collect()
}

#[test]
fn a_thousand_commits_with_tags_then_a_thin_pack_on_both_engines() {
    for engine in ENGINES {
        for srv in TestServer::each_with_engine(engine) {
            srv.user("alice", false, None);
            let t = srv.token("alice", &["write_repository"], None);
            for (i, git) in gits().iter().enumerate() {
                let ctx = format!("{} engine {engine}", git.context(srv.backend()));
                let work = new_work(git);
                long_history(git, work.path(), 1000);
                let path = format!("alice/history-{i}");
                let url = srv.url_as("alice", &t, &format!("/{path}.git"));
                git.ok(
                    work.path(),
                    &[
                        "push",
                        "-q",
                        &url,
                        "refs/heads/*:refs/heads/*",
                        "refs/tags/*:refs/tags/*",
                    ],
                );
                let dir = srv.repo_dir(&path);
                let theirs = for_each_ref(git, &dir, "");
                assert_eq!(theirs, for_each_ref(git, &work.path().join(".git"), ""), "{ctx}");
                assert_eq!(theirs.len(), 1 + 100, "{ctx} one branch and a hundred tags");

                // A small change to a file the server has: git sends a thin
                // pack (a delta against the server's blob), which the server
                // completes with that base.
                let mut content = std::fs::read_to_string(work.path().join("file-1.txt")).unwrap();
                content.push_str("one more line\n");
                let head = commit(git, work.path(), "file-1.txt", &content, "thin");
                let old_packs = idx_files(&dir);
                let old_objects: Vec<String> = old_packs.iter().flat_map(|p| pack_objects_of(git, &dir, p)).collect();
                git.ok(work.path(), &["push", "-q", &url, "main"]);
                assert_eq!(server_ref(&dir, "refs/heads/main"), Some(head), "{ctx}");
                let new_packs: Vec<String> = idx_files(&dir).into_iter().filter(|p| !old_packs.contains(p)).collect();
                assert_eq!(new_packs.len(), 1, "{ctx} {new_packs:?}");
                let new_objects = pack_objects_of(git, &dir, &new_packs[0]);
                assert!(
                    new_objects.iter().any(|o| old_objects.contains(o)),
                    "{ctx} the pack was not thin, or its base was not added to it: {new_objects:?}"
                );
                fsck(git, &dir);
                let back = tmp();
                git.ok(back.path(), &["clone", "-q", "--mirror", &url, "."]);
                assert_eq!(for_each_ref(git, back.path(), ""), for_each_ref(git, &dir, ""), "{ctx}");
            }
        }
    }
}

/// Pseudo-random bytes that do not compress.
fn incompressible(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn a_pack_over_receive_max_input_size_is_refused_and_leaves_nothing() {
    for engine in ENGINES {
        for srv in TestServer::each_with_engine(engine) {
            srv.user("alice", false, None);
            let t = srv.token("alice", &["write_repository"], None);
            srv.setting("receive_max_input_size", "1048576");
            for (i, git) in gits().iter().enumerate() {
                let ctx = format!("{} engine {engine}", git.context(srv.backend()));
                let work = new_work(git);
                let small = commit(git, work.path(), "README", "small\n", "small");
                // A new repository with a pack over the limit: refused,
                // and the repository the push would have made is not made.
                std::fs::write(work.path().join("big.bin"), incompressible(3 << 20, i as u64 + 7)).unwrap();
                git.ok(work.path(), &["add", "big.bin"]);
                git.ok(work.path(), &["commit", "-q", "-m", "big"]);
                let path = format!("alice/too-big-{i}");
                let url = srv.url_as("alice", &t, &format!("/{path}.git"));
                let err = git.fails(work.path(), &["push", &url, "main"]);
                assert!(err.contains("exceeds maximum allowed size"), "{ctx} {err}");
                assert!(srv.project(&path).is_none(), "{ctx} the refused push made a project");
                assert!(
                    !srv.repo_dir(&path).exists(),
                    "{ctx} the refused push left a repository"
                );

                // Into an existing repository: nothing changes.
                git.ok(work.path(), &["push", "-q", &url, &format!("{small}:refs/heads/main")]);
                let dir = srv.repo_dir(&path);
                let before = pack_state(&dir);
                let err = git.fails(work.path(), &["push", &url, "main"]);
                assert!(err.contains("exceeds maximum allowed size"), "{ctx} {err}");
                assert_eq!(server_ref(&dir, "refs/heads/main"), Some(small.clone()), "{ctx}");
                assert_eq!(wait_no_incoming(&dir), before, "{ctx} the refused push left something");
                // Under the limit again, it lands.
                srv.setting("receive_max_input_size", "16777216");
                git.ok(work.path(), &["push", "-q", &url, "main"]);
                srv.setting("receive_max_input_size", "1048576");
                fsck(git, &dir);
            }
        }
    }
}

/// Writes a tree object from raw entries (`mode name` and a blob id), as
/// `git mktree` would not: `--literally` keeps what fsck refuses.
fn raw_tree(git: &Git, dir: &Path, entries: &[(&str, &str, &str)]) -> String {
    let mut bytes = Vec::new();
    for (mode, name, id) in entries {
        bytes.extend_from_slice(format!("{mode} {name}\0").as_bytes());
        bytes.extend(hex::decode(id).unwrap());
    }
    let out = git.run_with(
        dir,
        &["hash-object", "-t", "tree", "-w", "--literally", "--stdin"],
        &[],
        Some(&bytes),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn blob(git: &Git, dir: &Path, content: &str) -> String {
    let out = git.run_with(dir, &["hash-object", "-w", "--stdin"], &[], Some(content.as_bytes()));
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn objects_that_gits_fsck_refuses_are_refused_with_its_message_and_old_quirks_pass() {
    for srv in TestServer::each_with_engine("git") {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["write_repository"], None);
        for (i, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let work = new_work(git);
            let good = commit(git, work.path(), "README", "fine\n", "fine");
            let path = format!("alice/fsck-{i}");
            let url = srv.url_as("alice", &t, &format!("/{path}.git"));
            git.ok(work.path(), &["push", "-q", &url, "main"]);
            let dir = srv.repo_dir(&path);
            let before = (pack_state(&dir), for_each_ref(git, &dir, ""));

            let content = blob(git, work.path(), "payload\n");
            let evil_modules = blob(
                git,
                work.path(),
                "[submodule \"../evil\"]\n\tpath = evil\n\turl = https://example.com/evil.git\n",
            );
            for (what, tree, reason) in [
                (
                    "a tree with a .git entry",
                    raw_tree(git, work.path(), &[("100644", ".git", &content)]),
                    "hasDotgit",
                ),
                (
                    "a .gitmodules naming a ../ path",
                    raw_tree(git, work.path(), &[("100644", ".gitmodules", &evil_modules)]),
                    "gitmodulesName",
                ),
            ] {
                let bad = git.ok(work.path(), &["commit-tree", &tree, "-p", &good, "-m", what]);
                let bad = bad.trim();
                let err = git.fails(work.path(), &["push", &url, &format!("{bad}:refs/heads/main")]);
                assert!(
                    err.contains(reason),
                    "{ctx} {what}: git's fsck message is missing:\n{err}"
                );
                assert!(err.contains("unpack"), "{ctx} {what}: not an unpack failure:\n{err}");
                let after = (wait_no_incoming(&dir), for_each_ref(git, &dir, ""));
                assert_eq!(after, before, "{ctx} {what}: the refused push changed the repository");
            }
            // What old histories carry (a zero-padded or group-writable
            // mode, a timezone of another era) is not refused.
            let old_tree = raw_tree(
                git,
                work.path(),
                &[("100664", "group-writable", &content), ("0100644", "padded", &content)],
            );
            let date = "author Old Timer <old@example.com> 1112911993 -07000\ncommitter Old Timer <old@example.com> 1112911993 -07000";
            let old = git.run_with(
                work.path(),
                &["hash-object", "-t", "commit", "-w", "--literally", "--stdin"],
                &[],
                Some(format!("tree {old_tree}\nparent {good}\n{date}\n\nold tools\n").as_bytes()),
            );
            let old = String::from_utf8_lossy(&old.stdout).trim().to_string();
            git.ok(work.path(), &["push", "-q", &url, &format!("{old}:refs/heads/old")]);
            assert_eq!(server_ref(&dir, "refs/heads/old"), Some(old), "{ctx}");
        }
    }
}

#[test]
fn a_blob_of_64_mib_of_zeros_pushes_while_gitpats_memory_stays_small() {
    // The git engine takes it; the libgit2 engine, which would hold it
    // whole, refuses it from its header. Neither grows gitpat's memory.
    for engine in ENGINES {
        let g = Gitpat::new(TestDb::sqlite());
        g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
        let t = g
            .ok(&[
                "token",
                "create",
                "--user",
                "alice",
                "--name",
                "big",
                "--scopes",
                "write_repository",
            ])
            .trim()
            .to_string();
        let server = Server::start_with(&g, &["--pack-engine", engine]);
        let pid = server.child.id();
        for (i, git) in gits().iter().enumerate() {
            let ctx = format!("{} engine {engine}", git.context("sqlite, gitpat serve"));
            let work = new_work(git);
            let f = std::fs::File::create(work.path().join("zeros")).unwrap();
            f.set_len(64 << 20).unwrap();
            drop(f);
            git.ok(work.path(), &["add", "zeros"]);
            git.ok(work.path(), &["commit", "-q", "-m", "64 MiB of zeros"]);
            let url = format!("http://alice:{t}@{}/alice/zeros-{i}.git", server.addr());
            let before = peak_rss_kib(pid);
            if engine == "libgit2" {
                let err = git.fails(work.path(), &["push", &url, "main"]);
                assert!(
                    err.contains("an object of 67108864 bytes is larger than the libgit2 engine takes"),
                    "{ctx} {err}"
                );
            } else {
                git.ok(work.path(), &["push", "-q", &url, "main"]);
                let back = tmp();
                git.ok(back.path(), &["clone", "-q", "--bare", &url, "."]);
                let size = git.ok(back.path(), &["cat-file", "-s", "HEAD:zeros"]);
                assert_eq!(size.trim(), (64u64 << 20).to_string(), "{ctx}");
            }
            let after = peak_rss_kib(pid);
            assert!(
                after < before + 32 * 1024,
                "{ctx} gitpat's peak memory grew from {before} KiB to {after} KiB on a 64 MiB blob"
            );
        }
    }
}

fn has_bitmap(dir: &Path) -> bool {
    pack_state(dir).0.iter().any(|n| n.ends_with(".bitmap"))
}

#[test]
fn fifty_pushes_are_repacked_in_the_background_and_by_hand() {
    for srv in TestServer::each_with_engine("git") {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["write_repository"], None);
        let limit = 16;
        for (i, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let work = new_work(git);
            let path = format!("alice/many-pushes-{i}");
            let url = srv.url_as("alice", &t, &format!("/{path}.git"));
            let dir = srv.repo_dir(&path);
            let wait_idle = || {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while srv.app.maintainer.running() > 0 && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                assert_eq!(srv.app.maintainer.running(), 0, "{ctx} maintenance did not finish");
            };
            for n in 0..50 {
                commit(
                    git,
                    work.path(),
                    &format!("f{}", n % 7),
                    &format!("push {n}\n"),
                    &format!("push {n}"),
                );
                git.ok(work.path(), &["push", "-q", &url, "main"]);
            }
            // Pushes that landed while a repack ran are repacked by the
            // next one: one more, when nothing else runs, settles it.
            wait_idle();
            commit(git, work.path(), "last", "last\n", "last");
            git.ok(work.path(), &["push", "-q", &url, "main"]);
            wait_idle();
            let packs = pack_count(&dir);
            assert!(packs <= limit, "{ctx} 50 pushes left {packs} packs");
            assert!(has_bitmap(&dir), "{ctx} no bitmap after maintenance");
            assert!(!dir.join("gitpat-maintenance.lock").exists(), "{ctx} the lock was left");

            // By hand: one pack (nothing is unreachable), with a bitmap
            // that git can use.
            let o = gitpat::service::repos::gc(&mut srv.conn(), &srv.app.store, &path).expect("repo gc");
            assert_eq!((o.packs_before, o.packs_after), (packs, 1), "{ctx}");
            assert!(has_bitmap(&dir), "{ctx}");
            git.ok(&dir, &["rev-list", "--test-bitmap", "main"]);
            fsck(git, &dir);
            let back = tmp();
            git.ok(back.path(), &["clone", "-q", "--mirror", &url, "."]);
            assert_eq!(for_each_ref(git, back.path(), ""), for_each_ref(git, &dir, ""), "{ctx}");
            assert_eq!(
                rev_parse(git, back.path(), "main"),
                rev_parse(git, work.path(), "HEAD"),
                "{ctx}"
            );
        }
    }
}

/// Sets the modification time of `path` (and what is under it) `age` ago.
fn age(path: &Path, age: &str) {
    let out = std::process::Command::new("find")
        .arg(path)
        .args(["-exec", "touch", "-h", "-d", age, "{}", "+"])
        .output()
        .expect("find -exec touch");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn serve_sweeps_what_dead_pushes_left_at_start() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
        g.ok(&["repo", "create", "alice/kept", "--owner", "alice"]);
        g.ok(&["repo", "create", "alice/unfinished", "--owner", "alice"]);
        let kept = g.repos_dir().join("alice/kept.git");
        let unfinished = g.repos_dir().join("alice/unfinished.git");
        // A push killed mid-pack, an hour and more ago; one that is young.
        let dead = kept.join("objects/incoming-0123abcd");
        let young = kept.join("objects/incoming-4567ef01");
        for q in [&dead, &young] {
            std::fs::create_dir_all(q.join("pack")).unwrap();
            std::fs::write(q.join("pack/tmp_pack_abc"), b"PACK\0\0\0\x02").unwrap();
        }
        std::fs::write(kept.join("packed-refs.lock"), b"").unwrap();
        age(&dead, "2 hours ago");
        age(&kept.join("packed-refs.lock"), "2 hours ago");
        // A push-to-create killed before anything landed: nothing in its
        // repository has changed since.
        std::fs::write(unfinished.join(gitpat::git::sweep::PUSH_TO_CREATE), b"").unwrap();
        age(&unfinished, "2 hours ago");

        let server = Server::start(&g);
        assert!(
            server.wait_for_log("swept leftovers"),
            "[{b}] no sweep at start:\n{}",
            server.log()
        );
        assert!(!dead.exists(), "[{b}] the dead quarantine stayed");
        assert!(young.exists(), "[{b}] a young quarantine was removed");
        assert!(!kept.join("packed-refs.lock").exists(), "[{b}] the stale lock stayed");
        assert!(kept.join("HEAD").exists());
        assert!(!unfinished.exists(), "[{b}] the unfinished repository's folder stayed");
        let list = g.ok(&["repo", "list"]);
        assert!(
            list.contains("alice/kept") && !list.contains("alice/unfinished"),
            "[{b}] {list}"
        );
    }
}
