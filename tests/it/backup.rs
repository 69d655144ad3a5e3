//! Backups through the binary: `backup create` while real git pushes
//! stream into `gitpat serve`, `backup restore` into a fresh data directory
//! (and database), a server on it; and what each refuses, writing nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::repo::{commit, rev_parse, tmp};
use crate::support::serve::Server;
use crate::support::server::{gits, Git};
use crate::support::{files_under, Gitpat, TestDb, PG_ENV};

/// A new instance on a new, empty database of `g`'s backend.
fn fresh_like(g: &Gitpat) -> Gitpat {
    match g.db.backend {
        "postgres" => Gitpat::new(TestDb::postgres(
            &std::env::var(PG_ENV).expect("the PostgreSQL cluster"),
        )),
        _ => Gitpat::new(TestDb::sqlite()),
    }
}

fn token(g: &Gitpat) -> String {
    g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
    g.ok(&[
        "token",
        "create",
        "--user",
        "alice",
        "--name",
        "pushes",
        "--scopes",
        "read_repository,write_repository",
    ])
    .trim()
    .to_string()
}

/// `refname → id` of a remote, as `git ls-remote` sees it.
fn ls_remote(git: &Git, url: &str) -> BTreeMap<String, String> {
    git.ok(Path::new("/"), &["ls-remote", url])
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, name)| (name.to_string(), id.to_string()))
        .collect()
}

fn bare_git(git: &Git, dir: &Path, args: &[&str]) -> String {
    let d = dir.display().to_string();
    let mut all = vec!["--git-dir", d.as_str()];
    all.extend_from_slice(args);
    git.ok(Path::new("/"), &all).trim().to_string()
}

fn fsck_full(git: &Git, dir: &Path, ctx: &str) {
    let out = git.run(
        Path::new("/"),
        &[
            "--git-dir",
            &dir.display().to_string(),
            "fsck",
            "--full",
            "--no-dangling",
            "--no-progress",
        ],
    );
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // An empty repository gets notices (unborn HEAD, no refs), no more.
    let problems: Vec<&str> = se.lines().filter(|l| !l.starts_with("notice:")).collect();
    assert!(
        out.status.success() && so.trim().is_empty() && problems.is_empty(),
        "{ctx} git fsck --full in {} ({}):\n{so}\n{se}",
        dir.display(),
        out.status
    );
}

/// Repositories imported beside the ones the test looks at.
const EXTRA: usize = 12;

#[test]
fn a_backup_taken_during_pushes_restores_every_acknowledged_ref() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        let git = gits().into_iter().next().expect("a git");
        let ctx = git.context(b);
        let tok = token(&g);
        g.ok(&["repo", "create", "alice/stream"]);
        g.ok(&["repo", "create", "alice/empty"]);
        g.ok(&["repo", "create", "alice/dev", "--default-branch", "dev"]);
        g.ok(&["repo", "create", "alice/gone"]);
        // More to bundle, so that pushes land while the backup runs.
        let src = tmp();
        git.ok(src.path(), &["init", "-q", "."]);
        commit(&git, src.path(), "README", "imported\n", "imported");
        for i in 0..EXTRA {
            g.ok(&[
                "repo",
                "create",
                &format!("alice/extra-{i:02}"),
                "--import",
                src.path().to_str().unwrap(),
            ]);
        }
        // A row whose folder is gone, and a folder without a row.
        std::fs::remove_dir_all(g.repos_dir().join("alice/gone.git")).unwrap();
        git2::Repository::init_bare(g.repos_dir().join("alice/orphan.git")).unwrap();
        // A reflog config the backup keeps, one it does not.
        let dev_dir = g.repos_dir().join("alice/dev.git");
        bare_git(&git, &dev_dir, &["config", "gc.auto", "0"]);
        bare_git(&git, &dev_dir, &["config", "core.hooksPath", "/nonexistent"]);

        let server = Server::start(&g);
        let url = |path: &str| format!("http://alice:{tok}@{}/{path}.git", server.addr());

        // alice/dev: its default branch and an annotated tag.
        let work = tmp();
        git.ok(work.path(), &["init", "-q", "-b", "dev", "."]);
        let dev = commit(&git, work.path(), "README", "dev\n", "on dev");
        git.ok(work.path(), &["tag", "-a", "v1", "-m", "version 1"]);
        git.ok(work.path(), &["push", "-q", &url("alice/dev"), "dev", "v1"]);
        let v1 = rev_parse(&git, work.path(), "v1");

        // The stream: each push moves main and makes p<i>, both on the
        // same new commit; what git reported pushed is recorded, and
        // when each push ran.
        let acked: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let ran: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
        let failed: Arc<Mutex<Option<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let pusher = {
            let (acked, ran, failed, stop) = (acked.clone(), ran.clone(), failed.clone(), stop.clone());
            let git = Git::new(git.bin.clone());
            let url = url("alice/stream");
            std::thread::spawn(move || {
                let work = tmp();
                git.ok(work.path(), &["init", "-q", "."]);
                for i in 0..400 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let c = commit(&git, work.path(), "n", &format!("{i}\n"), &format!("push {i}"));
                    let start = Instant::now();
                    let out = git.run(
                        work.path(),
                        &[
                            "push",
                            "-q",
                            &url,
                            "HEAD:refs/heads/main",
                            &format!("HEAD:refs/heads/p{i}"),
                        ],
                    );
                    ran.lock().unwrap().push((start, Instant::now()));
                    if !out.status.success() {
                        *failed.lock().unwrap() = Some(String::from_utf8_lossy(&out.stderr).into_owned());
                        break;
                    }
                    acked.lock().unwrap().push((i, c));
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.lock().unwrap().len() < 5 {
            assert!(
                failed.lock().unwrap().is_none() && Instant::now() < deadline,
                "{ctx} the pushes did not get going: {:?}",
                failed.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }

        // Every push acknowledged by now must be in the backup.
        let before = acked.lock().unwrap().clone();
        let backup = tmp();
        let dir = backup.path().join("b");
        let began = Instant::now();
        let out = g.ok(&["backup", "create", dir.to_str().unwrap()]);
        let ended = Instant::now();
        let during = acked.lock().unwrap().len() - before.len();
        // The server goes on taking pushes after it.
        let n = acked.lock().unwrap().len();
        while acked.lock().unwrap().len() < n + 2 && failed.lock().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
        pusher.join().unwrap();
        assert_eq!(*failed.lock().unwrap(), None, "{ctx} a push failed");
        // The backup did run during the stream: a push was in flight
        // while it did.
        let overlapped = ran
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, e)| *s < ended && *e > began)
            .count();
        assert!(
            overlapped >= 1,
            "{ctx} no push ran during the backup ({:?})",
            ended - began
        );
        eprintln!(
            "{ctx} {} pushes acknowledged before the backup, {during} during it",
            before.len()
        );
        assert!(
            out.starts_with(&format!(
                "backed up the {} database, {} repositories (2 empty) and the secret key into {}\n",
                if b == "sqlite" { "SQLite" } else { "PostgreSQL" },
                4 + EXTRA,
                dir.display()
            )),
            "{ctx} {out}"
        );
        assert!(
            out.contains("alice/gone: its folder was gone") && out.contains("alice/orphan: left out"),
            "{ctx} {out}"
        );
        for f in files_under(&dir) {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{ctx} {} is mode {mode:o}", f.display());
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["format"], 1, "{ctx}");
        assert_eq!(manifest["database"]["kind"], b, "{ctx}");
        drop(server);

        // Restored into a new data directory and database.
        let r = fresh_like(&g);
        let out = r.ok(&["backup", "restore", dir.to_str().unwrap()]);
        assert!(
            out.starts_with(&format!(
                "restored the backup of {}: the ",
                manifest["created_at"].as_str().unwrap()
            )) && out.ends_with(&format!(
                "database, {} repositories and the secret key, into {}\n",
                4 + EXTRA,
                r.data_dir.display()
            )),
            "{ctx} {out}"
        );
        assert_eq!(
            std::fs::metadata(r.data_dir.join("secret_key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "{ctx}"
        );
        let server = Server::start(&r);
        let url = |path: &str| format!("http://alice:{tok}@{}/{path}.git", server.addr());

        // Every acknowledged ref, by the token (it still authenticates).
        let refs = ls_remote(&git, &url("alice/stream"));
        for (i, c) in &before {
            assert_eq!(
                refs.get(&format!("refs/heads/p{i}")),
                Some(c),
                "{ctx} p{i} after the restore"
            );
        }
        let clone = tmp();
        git.ok(clone.path(), &["clone", "-q", "--bare", &url("alice/stream"), "."]);
        let last = &before.last().unwrap().1;
        git.ok(clone.path(), &["merge-base", "--is-ancestor", last, "main"]);
        assert_eq!(
            bare_git(&git, clone.path(), &["symbolic-ref", "HEAD"]),
            "refs/heads/main",
            "{ctx}"
        );
        let refs = ls_remote(&git, &url("alice/dev"));
        assert_eq!(refs.get("refs/heads/dev"), Some(&dev), "{ctx}");
        assert_eq!(refs.get("refs/tags/v1"), Some(&v1), "{ctx}");
        assert_eq!(refs.get("HEAD"), Some(&dev), "{ctx} HEAD names dev");
        // A wrong token is refused: the right one was checked, not waved in.
        let wrong = format!(
            "http://alice:glpat-wrongwrongwrongwrong@{}/alice/stream.git",
            server.addr()
        );
        git.fails(Path::new("/"), &["ls-remote", &wrong]);

        // On disk: every repository with a row, fsck clean; the orphan not.
        let restored = r.repos_dir();
        let with_rows: Vec<String> = ["alice/stream", "alice/dev", "alice/empty", "alice/gone"]
            .into_iter()
            .map(String::from)
            .chain((0..EXTRA).map(|i| format!("alice/extra-{i:02}")))
            .collect();
        for p in &with_rows {
            fsck_full(&git, &restored.join(format!("{p}.git")), &ctx);
        }
        assert!(!restored.join("alice/orphan.git").exists(), "{ctx}");
        let dev_dir = restored.join("alice/dev.git");
        assert_eq!(bare_git(&git, &dev_dir, &["symbolic-ref", "HEAD"]), "refs/heads/dev");
        assert_eq!(bare_git(&git, &dev_dir, &["config", "gc.auto"]), "0", "{ctx}");
        assert_eq!(
            bare_git(&git, &dev_dir, &["config", "core.logAllRefUpdates"]),
            "true",
            "{ctx}"
        );
        assert!(
            !git.run(
                Path::new("/"),
                &["--git-dir", &dev_dir.display().to_string(), "config", "core.hooksPath"]
            )
            .status
            .success(),
            "{ctx} core.hooksPath came back"
        );
        for p in ["alice/empty", "alice/gone"] {
            let d = restored.join(format!("{p}.git"));
            assert_eq!(bare_git(&git, &d, &["for-each-ref"]), "", "{ctx} {p} has refs");
            assert_eq!(
                bare_git(&git, &d, &["symbolic-ref", "HEAD"]),
                "refs/heads/main",
                "{ctx}"
            );
        }
        let list = r.ok(&["repo", "list"]);
        for p in &with_rows {
            assert!(list.contains(p.as_str()), "{ctx} {p} is not listed:\n{list}");
        }
        assert!(
            r.ok(&["token", "list"]).contains("pushes"),
            "{ctx} the token is not listed"
        );
        // The ids go on from where they were (PostgreSQL's sequences too).
        r.ok(&["user", "create", "bob", "--email", "bob@example.com"]);
        r.ok(&["token", "create", "--user", "bob", "--name", "t", "--scopes", "api"]);
        r.ok(&["repo", "create", "bob/new"]);
        // Nothing of the restore's staging stayed.
        let names: Vec<String> = std::fs::read_dir(&r.data_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert_eq!(names, Vec::<String>::new(), "{ctx}");
    }
}

use std::os::unix::fs::PermissionsExt;

fn copy_tree(from: &Path, to: &Path) {
    for f in files_under(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(&p, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// Replaces a file of the backup `dir` and its size and checksum in the
/// manifest: a forged backup, which checksums cannot tell.
fn forge(dir: &Path, file: &str, content: &[u8]) {
    std::fs::write(dir.join(file), content).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(content))
    };
    edit_manifest(dir, |m| {
        for f in m["files"].as_array_mut().unwrap() {
            if f["path"] == file {
                f["sha256"] = sha.clone().into();
                f["size"] = content.len().into();
            }
        }
    });
}

#[test]
fn backups_refuse_what_they_would_overwrite_or_cannot_trust() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        let git = gits().into_iter().next().expect("a git");
        let ctx = git.context(b);
        token(&g);
        let src = tmp();
        git.ok(src.path(), &["init", "-q", "."]);
        let c = commit(&git, src.path(), "README", "hello\n", "first");
        g.ok(&["repo", "create", "alice/r", "--import", src.path().to_str().unwrap()]);
        let root = tmp();
        let s = |p: &Path| p.to_str().unwrap().to_string();

        // create: into a folder that holds something, or a file.
        let busy = root.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("x"), "x").unwrap();
        let err = g.fails(&["backup", "create", &s(&busy)]);
        assert!(err.contains("is not empty"), "{ctx} {err}");
        assert_eq!(files_under(&busy), [busy.join("x")], "{ctx}");
        let err = g.fails(&["backup", "create", &s(&busy.join("x"))]);
        assert!(err.contains("is not a folder"), "{ctx} {err}");

        let good = root.path().join("good");
        g.ok(&["backup", "create", &s(&good)]);
        assert_eq!(
            std::fs::metadata(&good).unwrap().permissions().mode() & 0o777,
            0o700,
            "{ctx}"
        );

        // restore: into the instance's own data directory (not empty).
        let before = files_under(&g.data_dir);
        let err = g.fails(&["backup", "restore", &s(&good)]);
        assert!(
            err.contains("is not empty") && err.contains("nothing was restored"),
            "{ctx} {err}"
        );
        assert_eq!(files_under(&g.data_dir), before, "{ctx}");

        let r = fresh_like(&g);
        let refused = |dir: &Path, needle: &str| {
            let err = r.fails(&["backup", "restore", &s(dir)]);
            assert!(err.contains(needle), "{ctx} expected {needle:?} in: {err}");
            assert!(
                !r.data_dir.exists(),
                "{ctx} a refused restore left {}",
                r.data_dir.display()
            );
        };
        // A changed byte in a bundle.
        let flipped = root.path().join("flipped");
        copy_tree(&good, &flipped);
        let bundle = flipped.join("repositories/alice/r.bundle");
        let mut bytes = std::fs::read(&bundle).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&bundle, bytes).unwrap();
        refused(&flipped, "does not match the manifest");
        // A checksum changed in the manifest.
        let resummed = root.path().join("resummed");
        copy_tree(&good, &resummed);
        edit_manifest(&resummed, |m| m["files"][0]["sha256"] = "0".repeat(64).into());
        refused(&resummed, "does not match the manifest");
        // A path out of the folder.
        let escaping = root.path().join("escaping");
        copy_tree(&good, &escaping);
        edit_manifest(&escaping, |m| m["files"][0]["path"] = "../../etc/passwd".into());
        refused(&escaping, "is not a path inside the backup");
        // A config that would run something.
        let hooked = root.path().join("hooked");
        copy_tree(&good, &hooked);
        edit_manifest(&hooked, |m| {
            m["repositories"][0]["config"] = serde_json::json!([["core.hookspath", "/tmp"]])
        });
        refused(&hooked, "which a backup does not keep");
        // No manifest: an unfinished backup.
        let unfinished = root.path().join("unfinished");
        copy_tree(&good, &unfinished);
        std::fs::remove_file(unfinished.join("manifest.json")).unwrap();
        refused(&unfinished, "no manifest.json");
        // A backup of the other backend.
        if b == "postgres" {
            let other = Gitpat::new(TestDb::sqlite());
            let err = other.fails(&["backup", "restore", &s(&good)]);
            assert!(err.contains("holds a PostgreSQL database"), "{ctx} {err}");
            assert!(!other.data_dir.exists(), "{ctx}");
        }

        // A database file that matches its checksum but is none: refused
        // before anything is written.
        let forged = root.path().join("forged");
        copy_tree(&good, &forged);
        let db_file = if b == "sqlite" {
            "database.sqlite"
        } else {
            "database.pgdump"
        };
        forge(&forged, db_file, b"not a database at all\n");
        refused(&forged, "its database is unreadable");
        // A bundle that matches its checksum but is no bundle: the restore
        // fails halfway, into a data directory that was there, empty, and
        // takes back all it wrote.
        let broken = root.path().join("broken");
        copy_tree(&good, &broken);
        forge(&broken, "repositories/alice/r.bundle", b"# v2 git bundle\nnot really\n");
        std::fs::create_dir_all(&r.data_dir).unwrap();
        let err = r.fails(&["backup", "restore", &s(&broken)]);
        assert!(err.contains("cannot restore the repository alice/r"), "{ctx} {err}");
        assert_eq!(
            std::fs::read_dir(&r.data_dir).unwrap().count(),
            0,
            "{ctx} the failed restore left {:?}",
            files_under(&r.data_dir)
        );

        // After all that, the real one goes through (nothing was left), into
        // the empty data directory.
        r.ok(&["backup", "restore", &s(&good)]);
        let restored = r.repos_dir().join("alice/r.git");
        assert_eq!(bare_git(&git, &restored, &["rev-parse", "refs/heads/main"]), c, "{ctx}");
        // And not twice: the data directory is no longer empty.
        let err = r.fails(&["backup", "restore", &s(&good)]);
        assert!(err.contains("is not empty"), "{ctx} {err}");
        if b == "postgres" {
            // A new data directory on the same, now filled, database.
            let again = Gitpat::new(r.db.same());
            let err = again.fails(&["backup", "restore", &s(&good)]);
            assert!(
                err.contains("PostgreSQL database") && err.contains("is not empty"),
                "{ctx} {err}"
            );
            assert!(!again.data_dir.exists(), "{ctx}");
        }
    }
}

#[test]
fn backups_work_with_relative_paths() {
    // The default data directory (./gitpat-data) is relative, and git runs
    // in each repository's folder.
    let g = Gitpat::new(TestDb::sqlite());
    let git = gits().into_iter().next().expect("a git");
    let cwd = tmp();
    let src = cwd.path().join("src");
    std::fs::create_dir(&src).unwrap();
    git.ok(&src, &["init", "-q", "."]);
    let c = commit(&git, &src, "README", "hello\n", "first");
    let run = |data: &str, args: &[&str]| {
        let out = g
            .command()
            .current_dir(cwd.path())
            .env("GITPAT_DATA_DIR", data)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gitpat {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("data", &["user", "create", "alice", "--email", "alice@example.com"]);
    run("data", &["repo", "create", "alice/r", "--import", "src"]);
    run("data", &["repo", "gc", "alice/r"]);
    run("data", &["backup", "create", "bk"]);
    assert!(cwd.path().join("bk/repositories/alice/r.bundle").is_file());
    run("data2", &["backup", "restore", "bk"]);
    let restored = cwd.path().join("data2/repositories/alice/r.git");
    assert_eq!(bare_git(&git, &restored, &["rev-parse", "refs/heads/main"]), c);
}
