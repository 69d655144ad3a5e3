//! Git over HTTP with the real git clients (Debian's 2.39 and 2.47), against
//! the real server in process, on every backend: clone, fetch, pull, push,
//! shallow, the scope and role rules, HTTP details, bad input and the
//! failed-authentication ban. Every test loops over backends and git
//! binaries; messages name both.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use gitpat::git::receive_pack::{DELETE_CURRENT, PROTECTED_FORCE_PUSH, PROTECTED_PUSH};
use gitpat::service::git_http::{ACCESS_DENIED, BANNED, CANNOT_DOWNLOAD, CANNOT_UPLOAD, NOT_FOUND, TOKEN_REQUIRED};
use gitpat::service::{tokens, users};

use crate::support::repo::{
    assert_contains, commit, for_each_ref, fsck, pack_state, remote_lines, rev_parse, server_ref, tmp, wait_no_incoming,
};
use crate::support::server::{
    basic, fixtures, gits, gits_speaking, pkt, Git, RawResponse, TestServer, BODY_IDLE_TIMEOUT, RAW_TIMEOUT, ZERO,
};

const PASSWORD: &str = "a good long password";
/// The fixture's `main` (pinned by `fixtures.rs`).
const BASIC_MAIN: &str = "5fa2e434c6aefedc8d01125a22199c04c2234e67";

// ---------------------------------------------------------------------
// Helpers.

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Splits a reply into pkt-lines (`None` for a flush); stops at the first
/// thing that is not a pkt-line (a raw pack) and returns the rest.
fn pkt_lines(mut buf: &[u8]) -> (Vec<Option<Vec<u8>>>, Vec<u8>) {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let Some(len) = std::str::from_utf8(&buf[..4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            break;
        };
        if len == 0 {
            out.push(None);
            buf = &buf[4..];
            continue;
        }
        if len < 4 || buf.len() < len {
            break;
        }
        out.push(Some(buf[4..len].to_vec()));
        buf = &buf[len..];
    }
    (out, buf.to_vec())
}

/// The report-status lines of a receive-pack reply sent without
/// side-band.
fn report_lines(body: &[u8]) -> Vec<String> {
    pkt_lines(body)
        .0
        .into_iter()
        .flatten()
        .map(|l| String::from_utf8_lossy(&l).trim_end().to_string())
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Deterministic bytes that do not compress.
fn noise(n: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let c = (x >> 33) % 62;
            (match c {
                0..=9 => b'0' + c as u8,
                10..=35 => b'a' + (c - 10) as u8,
                _ => b'A' + (c - 36) as u8,
            }) as char
        })
        .collect()
}

/// `git pack-objects --stdout` fed `input` (object names, or with
/// `--revs`, revisions), run in `dir`.
fn pack_objects(git: &Git, dir: &Path, revs: bool, input: &str) -> Vec<u8> {
    let mut args = vec!["pack-objects", "--stdout", "-q"];
    if revs {
        args.push("--revs");
    }
    let out = git.run_with(dir, &args, &[], Some(input.as_bytes()));
    assert!(
        out.status.success(),
        "{} pack-objects: {}",
        git.label(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"PACK"));
    out.stdout
}

/// A receive-pack request body: commands (capabilities on the first),
/// flush, then `pack`.
fn push_body(commands: &[String], caps: &str, pack: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        let line = if i == 0 {
            format!("{c}\0{caps}\n")
        } else {
            format!("{c}\n")
        };
        body.extend(pkt(line.as_bytes()));
    }
    body.extend_from_slice(b"0000");
    body.extend_from_slice(pack);
    body
}

/// A request with head `head` (request line and headers, each ending
/// CRLF) and `body` sent chunked; without its last chunk unless `complete`.
fn chunked(head: &str, body: &[u8], complete: bool) -> Vec<u8> {
    let mut req = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    for chunk in body.chunks(16 * 1024) {
        req.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    if complete {
        req.extend_from_slice(b"0\r\n\r\n");
    }
    req
}

/// What the server may answer a push cut off mid-pack: nothing (the
/// connection dropped), an error status, or a report whose `unpack` failed;
/// never a ref accepted.
fn cut_reply_ok(reply: std::io::Result<Vec<u8>>, ctx: &str) {
    let Ok(bytes) = reply else { return };
    if bytes.is_empty() {
        return;
    }
    let r = RawResponse::parse(&bytes).unwrap_or_else(|e| panic!("{ctx} a cut-off push: unreadable reply ({e})"));
    let text = r.text();
    assert!(
        !text.contains("unpack ok") && !text.contains("ok refs/heads/cut"),
        "{ctx} a cut-off push was accepted: {text:?}"
    );
    if r.status == 200 {
        assert_contains(&text, "unpack ", &format!("{ctx} a cut-off push"));
    }
}

// ---------------------------------------------------------------------
// Clone, fetch, pull.

/// The pack engines a fetch can be served by.
const ENGINES: [&str; 2] = ["git", "libgit2"];

#[test]
fn clone_fetch_pull_and_anonymous_clone() {
    let basic_dir = fixture("basic");
    for srv in ENGINES.iter().flat_map(|e| TestServer::each_with_engine(e)) {
        let engine = srv.app.engine.name();
        srv.user("alice", false, Some(PASSWORD));
        let tok = srv.token("alice", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(&format!("{} {engine}", srv.backend()));
            let path = format!("alice/basic{gi}");
            srv.import(&path, "alice", "private", &basic_dir);
            let public = format!("alice/public{gi}");
            srv.import(&public, "alice", "public", &basic_dir);
            let url = srv.url_as("alice", &tok, &format!("/{path}.git"));
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", &url, "c1"]);
            let c1 = work.path().join("c1");
            fsck(git, &c1);
            assert_eq!(
                git.ok(&c1, &["symbolic-ref", "HEAD"]).trim(),
                "refs/heads/main",
                "{ctx}"
            );
            assert_eq!(rev_parse(git, &c1, "HEAD"), BASIC_MAIN, "{ctx}");
            // The clone holds exactly the fixture's branches and tags.
            let heads: Vec<String> = for_each_ref(git, &basic_dir.join(".git"), "refs/heads")
                .into_iter()
                .map(|l| l.replacen("refs/heads/", "refs/remotes/origin/", 1))
                .collect();
            let mut remotes = for_each_ref(git, &c1.join(".git"), "refs/remotes/origin");
            remotes.retain(|l| !l.starts_with("refs/remotes/origin/HEAD "));
            assert_eq!(remotes, heads, "{ctx} branches of the clone");
            assert_eq!(
                for_each_ref(git, &c1.join(".git"), "refs/tags"),
                for_each_ref(git, &basic_dir.join(".git"), "refs/tags"),
                "{ctx} tags of the clone"
            );
            // A mirror clone (every ref), and the path without `.git`.
            let bare_url = srv.url_as("alice", &tok, &format!("/{path}"));
            git.ok(work.path(), &["clone", "-q", "--mirror", &bare_url, "mirror.git"]);
            assert_eq!(
                for_each_ref(git, &work.path().join("mirror.git"), ""),
                for_each_ref(git, &basic_dir.join(".git"), ""),
                "{ctx} refs of a mirror clone"
            );
            fsck(git, &work.path().join("mirror.git"));

            // A second clone pushes; the first fetches, then pulls.
            git.ok(work.path(), &["clone", "-q", &url, "c2"]);
            let c2 = work.path().join("c2");
            let n1 = commit(git, &c2, "new.txt", "one\n", "second clone: one");
            git.ok(&c2, &["push", "-q", "origin", "main"]);
            assert_eq!(
                server_ref(&srv.repo_dir(&path), "refs/heads/main").as_deref(),
                Some(n1.as_str())
            );
            git.ok(&c1, &["fetch", "-q", "origin"]);
            assert_eq!(rev_parse(git, &c1, "refs/remotes/origin/main"), n1, "{ctx} fetch");
            assert_eq!(rev_parse(git, &c1, "HEAD"), BASIC_MAIN, "{ctx} fetch moved HEAD");
            let n2 = commit(git, &c2, "new.txt", "two\n", "second clone: two");
            git.ok(&c2, &["push", "-q", "origin", "main"]);
            git.ok(&c1, &["pull", "-q", "--ff-only", "origin", "main"]);
            assert_eq!(rev_parse(git, &c1, "HEAD"), n2, "{ctx} pull");
            assert_eq!(std::fs::read_to_string(c1.join("new.txt")).unwrap(), "two\n");
            fsck(git, &c1);
            fsck(git, &srv.repo_dir(&path));

            // Negotiation with many haves the server does not know (local
            // commits): several rounds of NAKs, then the right pack.
            git.ok(&c1, &["checkout", "-q", "-b", "local"]);
            for i in 0..40 {
                commit(git, &c1, "local.txt", &format!("{i}\n"), &format!("local {i}"));
            }
            let n3 = commit(git, &c2, "new.txt", "three\n", "second clone: three");
            git.ok(&c2, &["push", "-q", "origin", "main"]);
            git.ok(&c1, &["fetch", "-q", "origin"]);
            assert_eq!(
                rev_parse(git, &c1, "refs/remotes/origin/main"),
                n3,
                "{ctx} fetch with unknown haves"
            );
            fsck(git, &c1);

            // With progress: band 2 reaches the user as `remote: ...`.
            let err = git.ok_stderr(work.path(), &["clone", "--progress", &url, "progress"]);
            // (The client's own "Receiving objects" line is not asserted:
            // over HTTP git unpacks a small pack with unpack-objects, which
            // shows no progress that soon, whoever serves it.)
            if engine == "git" {
                assert_contains(&err, "remote: Enumerating objects", &ctx);
                assert_contains(&err, "remote: Total ", &ctx);
            }
            fsck(git, &work.path().join("progress"));

            // A want that is no tip but reachable from one (by object id).
            let f = work.path().join("by-id");
            git.ok(work.path(), &["init", "-q", "by-id"]);
            let old_commit = "0aa1ec591ff628b03c5cbaba6465dce2672f0f0b";
            git.ok(&f, &["fetch", "-q", &url, old_commit]);
            assert_eq!(git.ok(&f, &["cat-file", "-t", old_commit]).trim(), "commit", "{ctx}");
            assert_eq!(git.ok(&f, &["rev-list", "--count", old_commit]).trim(), "2", "{ctx}");

            // A client that asks for protocol v2 is answered in v0 and
            // still clones.
            git.ok(work.path(), &["-c", "protocol.version=2", "clone", "-q", &url, "v2"]);
            assert_eq!(
                rev_parse(git, &work.path().join("v2"), "HEAD"),
                n3,
                "{ctx} clone asking for v2"
            );

            // An empty repository clones, and takes a first push.
            let empty = format!("alice/empty{gi}");
            srv.repo(&empty, "alice", "private");
            let empty_url = srv.url_as("alice", &tok, &format!("/{empty}.git"));
            let err = git.ok_stderr(work.path(), &["clone", &empty_url, "e"]);
            assert_contains(&err, "empty repository", &ctx);
            let e = work.path().join("e");
            let first = commit(git, &e, "first.txt", "first\n", "first commit");
            git.ok(&e, &["push", "-q", "origin", "main"]);
            let server_empty = srv.repo_dir(&empty);
            assert_eq!(
                server_ref(&server_empty, "refs/heads/main"),
                Some(first.clone()),
                "{ctx}"
            );
            assert_eq!(
                git.ok(&e, &["ls-remote", "origin"]),
                format!("{first}\tHEAD\n{first}\trefs/heads/main\n"),
                "{ctx}"
            );

            // Anonymous: a public repository clones, a private one asks
            // for credentials (and git may not prompt).
            git.ok(
                work.path(),
                &["clone", "-q", &srv.url(&format!("/{public}.git")), "anon"],
            );
            let anon = work.path().join("anon");
            assert_eq!(rev_parse(git, &anon, "HEAD"), BASIC_MAIN, "{ctx} anonymous clone");
            fsck(git, &anon);
            let err = git.fails(
                work.path(),
                &["clone", "-q", &srv.url(&format!("/{path}.git")), "anon2"],
            );
            assert_contains(
                &err,
                "terminal prompts disabled",
                &format!("{ctx} anonymous clone of a private repository"),
            );
            assert!(!work.path().join("anon2").exists(), "{ctx}");
        }
    }
}

#[test]
fn partial_clone_fetches_missing_blobs_on_demand() {
    for srv in ENGINES.iter().flat_map(|e| TestServer::each_with_engine(e)) {
        let engine = srv.app.engine.name();
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["read_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(&format!("{} {engine}", srv.backend()));
            let path = format!("alice/partial{gi}");
            srv.import(&path, "alice", "private", &fixture("basic"));
            let url = srv.url_as("alice", &tok, &format!("/{path}.git"));
            let work = tmp();
            // The git engine applies the filter; the libgit2 engine does not
            // advertise `filter`, so git clones everything.
            let out = git.run(
                work.path(),
                &["clone", "-q", "--no-checkout", "--filter=blob:none", &url, "partial"],
            );
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{ctx} partial clone: {err}");
            let part = work.path().join("partial");
            let missing = git
                .ok(&part, &["rev-list", "--objects", "--all", "--missing=print"])
                .lines()
                .filter(|l| l.starts_with('?'))
                .count();
            if engine == "git" {
                assert!(missing > 0, "{ctx} a blob:none clone holds every blob");
            } else {
                assert_eq!(missing, 0, "{ctx}");
                assert_contains(&err, "filtering not recognized by server", &ctx);
            }
            // Checking out fetches the missing blobs (wants of blobs
            // reachable from a ref, as git's own upload-pack serves them
            // with allow-reachable-sha1-in-want).
            git.ok(&part, &["checkout", "-q", "main"]);
            assert_eq!(
                std::fs::read_to_string(part.join("README")).unwrap(),
                "hello, world\n",
                "{ctx}"
            );
            fsck(git, &part);
        }
    }
}

// ---------------------------------------------------------------------
// Push.

#[test]
fn push_branches_tags_force_and_delete_with_reflog() {
    for srv in TestServer::each() {
        srv.user("alice", false, Some(PASSWORD));
        let tok = srv.token("alice", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let path = format!("alice/push{gi}");
            srv.import(&path, "alice", "private", &fixture("basic"));
            let server = srv.repo_dir(&path);
            let url = srv.url_as("alice", &tok, &format!("/{path}.git"));
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", &url, "c"]);
            let c = work.path().join("c");
            let b = "refs/heads/newb";

            // A new branch.
            git.ok(&c, &["checkout", "-q", "-b", "newb"]);
            let a1 = commit(git, &c, "a.txt", "a1\n", "newb: a1");
            git.ok(&c, &["push", "-q", "origin", "newb"]);
            assert_eq!(server_ref(&server, b).as_deref(), Some(a1.as_str()), "{ctx} new branch");
            // An update.
            let a2 = commit(git, &c, "a.txt", "a2\n", "newb: a2");
            git.ok(&c, &["push", "-q", "origin", "newb"]);
            assert_eq!(server_ref(&server, b).as_deref(), Some(a2.as_str()), "{ctx} update");
            // A non-fast-forward without --force is refused by git itself;
            // with --force the server takes it (not the default branch).
            git.ok(&c, &["reset", "-q", "--hard", "HEAD~1"]);
            let r = commit(git, &c, "a.txt", "rewritten\n", "newb: rewritten");
            let err = git.fails(&c, &["push", "origin", "newb"]);
            assert_contains(&err, "rejected", &ctx);
            assert_eq!(server_ref(&server, b).as_deref(), Some(a2.as_str()), "{ctx}");
            git.ok(&c, &["push", "-q", "--force", "origin", "newb"]);
            assert_eq!(server_ref(&server, b).as_deref(), Some(r.as_str()), "{ctx} force push");

            // The server's reflog names the authenticated user for every
            // update of the branch.
            let log = std::fs::read_to_string(server.join("logs/refs/heads/newb"))
                .unwrap_or_else(|e| panic!("{ctx} no reflog for newb on the server: {e}"));
            let lines: Vec<&str> = log.lines().collect();
            assert_eq!(lines.len(), 3, "{ctx} reflog:\n{log}");
            let olds = [ZERO, a1.as_str(), a2.as_str()];
            let news = [a1.as_str(), a2.as_str(), r.as_str()];
            for (i, l) in lines.iter().enumerate() {
                assert!(
                    l.starts_with(&format!("{} {} alice Person <alice@example.com> ", olds[i], news[i])),
                    "{ctx} reflog line {i}: {l}"
                );
            }

            // Tags: lightweight and annotated.
            git.ok(&c, &["tag", "light"]);
            git.ok(&c, &["tag", "-a", "ann", "-m", "an annotated tag"]);
            git.ok(&c, &["push", "-q", "origin", "light", "ann"]);
            assert_eq!(
                server_ref(&server, "refs/tags/light").as_deref(),
                Some(r.as_str()),
                "{ctx}"
            );
            let ann = rev_parse(git, &c, "refs/tags/ann");
            assert_ne!(ann, r);
            assert_eq!(
                server_ref(&server, "refs/tags/ann").as_deref(),
                Some(ann.as_str()),
                "{ctx}"
            );
            {
                let repo = git2::Repository::open_bare(&server).unwrap();
                let tag = repo
                    .find_tag(git2::Oid::from_str(&ann).unwrap())
                    .expect("an annotated tag object");
                assert_eq!(tag.target_id().to_string(), r, "{ctx}");
            }

            // The path without `.git`, with push options.
            let no_suffix = srv.url_as("alice", &tok, &format!("/{path}"));
            git.ok(&c, &["checkout", "-q", "-b", "opts"]);
            let o1 = commit(git, &c, "o.txt", "options\n", "with push options");
            git.ok(
                &c,
                &["push", "-q", "-o", "ci.skip", "-o", "topic=x y", &no_suffix, "opts"],
            );
            assert_eq!(server_ref(&server, "refs/heads/opts"), Some(o1), "{ctx} push options");

            // A push larger than http.postBuffer: git probes with `0000`,
            // then sends the request chunked.
            git.ok(&c, &["checkout", "-q", "-b", "big"]);
            let big = commit(git, &c, "big.txt", &noise(400_000, 7), "a big commit");
            let out = git.run_with(
                &c,
                &["-c", "http.postBuffer=65536", "push", "origin", "big"],
                &[("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")],
                None,
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{ctx} chunked push: {err}");
            assert_contains(&err, "Transfer-Encoding: chunked", &format!("{ctx} chunked push"));
            assert_eq!(err.matches("=> Send header: POST ").count(), 2, "{ctx} probe + push");
            assert_eq!(
                server_ref(&server, "refs/heads/big"),
                Some(big.clone()),
                "{ctx} chunked push"
            );
            git.ok(work.path(), &["clone", "-q", "--branch", "big", &url, "big-back"]);
            assert_eq!(
                std::fs::read_to_string(work.path().join("big-back/big.txt"))
                    .unwrap()
                    .len(),
                400_000,
                "{ctx}"
            );

            // Deletions: the new branch, a fixture branch, a tag.
            git.ok(&c, &["push", "-q", "origin", "--delete", "newb", "topic"]);
            git.ok(&c, &["push", "-q", "origin", ":refs/tags/light"]);
            assert_eq!(server_ref(&server, b), None, "{ctx} delete");
            assert_eq!(server_ref(&server, "refs/heads/topic"), None, "{ctx} delete");
            assert_eq!(server_ref(&server, "refs/tags/light"), None, "{ctx} delete");
            let remote = git.ok(&c, &["ls-remote", "origin"]);
            assert!(
                !remote.contains("refs/heads/newb") && !remote.contains("refs/tags/light"),
                "{ctx}"
            );
            assert!(remote.contains("refs/tags/ann"), "{ctx}");
            fsck(git, &server);
        }
    }
}

#[test]
fn atomic_pushes_update_everything_or_nothing() {
    for srv in TestServer::each() {
        srv.user("alice", false, Some(PASSWORD));
        srv.user("dev", false, None);
        let alice = srv.token("alice", &["write_repository"], None);
        let dev = srv.token("dev", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let path = format!("alice/atomic{gi}");
            srv.import(&path, "alice", "private", &fixture("basic"));
            srv.member(&path, "dev", "developer");
            let server = srv.repo_dir(&path);
            let url = srv.url_as("alice", &alice, &format!("/{path}.git"));
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", &url, "a"]);
            git.ok(work.path(), &["clone", "-q", &url, "b"]);
            let (a, b) = (work.path().join("a"), work.path().join("b"));
            let before = for_each_ref(git, &server, "");

            // (1) The second clone pushes first, so the first one's
            // `feature` is stale: an atomic push of feature + topic changes
            // nothing.
            git.ok(&b, &["checkout", "-q", "feature"]);
            let b1 = commit(git, &b, "f.txt", "from b\n", "b: feature");
            git.ok(&b, &["push", "-q", "origin", "feature"]);
            git.ok(&a, &["checkout", "-q", "feature"]);
            commit(git, &a, "f.txt", "from a\n", "a: feature");
            git.ok(&a, &["checkout", "-q", "topic"]);
            commit(git, &a, "t.txt", "from a\n", "a: topic");
            let err = git.fails(&a, &["push", "--atomic", "origin", "feature", "topic"]);
            assert_contains(&err, "rejected", &ctx);
            let mut expect = before.clone();
            for l in expect.iter_mut() {
                if l.starts_with("refs/heads/feature ") {
                    *l = format!("refs/heads/feature {b1}");
                }
            }
            assert_eq!(
                for_each_ref(git, &server, ""),
                expect,
                "{ctx} a failed atomic push moved a ref"
            );

            // (2) Refused by the server's policy: a developer's atomic push
            // to the protected default branch and a new branch.
            let dev_url = srv.url_as("dev", &dev, &format!("/{path}.git"));
            git.ok(work.path(), &["clone", "-q", &dev_url, "d"]);
            let d = work.path().join("d");
            commit(git, &d, "m.txt", "dev on main\n", "dev: main");
            git.ok(&d, &["branch", "devb"]);
            let err = git.fails(&d, &["push", "--atomic", "origin", "main", "devb"]);
            assert_contains(&err, PROTECTED_PUSH, &ctx);
            assert_eq!(
                for_each_ref(git, &server, ""),
                expect,
                "{ctx} a refused atomic push moved a ref"
            );
            assert_eq!(
                wait_no_incoming(&server).1,
                Vec::<String>::new(),
                "{ctx} quarantine left behind"
            );
            // The same push, not atomic: the branch lands, main does not.
            let err = git.fails(&d, &["push", "origin", "main", "devb"]);
            assert_contains(&err, PROTECTED_PUSH, &ctx);
            assert_eq!(
                server_ref(&server, "refs/heads/devb"),
                Some(rev_parse(git, &d, "devb")),
                "{ctx}"
            );
            assert_eq!(
                server_ref(&server, "refs/heads/main").as_deref(),
                Some(BASIC_MAIN),
                "{ctx}"
            );

            // (3) A truly stale old value, which only the server can see
            // (a push racing another): sent raw, atomic and not.
            let t0 = rev_parse(git, &a, "origin/topic");
            let x = rev_parse(git, &a, "topic");
            git.ok(&b, &["checkout", "-q", "topic"]);
            let t1 = commit(git, &b, "t.txt", "from b\n", "b: topic");
            git.ok(&b, &["push", "-q", "origin", "topic"]);
            git.ok(&a, &["checkout", "-q", "-b", "fresh", "main"]);
            let y = commit(git, &a, "y.txt", "y\n", "a: fresh");
            let pack = pack_objects(git, &a, true, &format!("{x}\n{y}\n^{t0}\n^{BASIC_MAIN}\n"));
            let commands = [
                format!("{t0} {x} refs/heads/topic"),
                format!("{ZERO} {y} refs/heads/fresh"),
            ];
            let (packs_before, _) = pack_state(&server);
            let auth = basic("alice", &alice);
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/x-git-receive-pack-request"),
            ];
            let rp = format!("/{path}.git/git-receive-pack");
            let r = srv.raw(
                "POST",
                &rp,
                &headers,
                &push_body(&commands, "report-status atomic agent=test/1", &pack),
            );
            assert_eq!(r.status, 200, "{ctx} {}", r.text());
            let report = report_lines(&r.body);
            assert_eq!(report[0], "unpack ok", "{ctx} {report:?}");
            assert!(report[1].starts_with("ng refs/heads/topic "), "{ctx} {report:?}");
            assert!(report[2].starts_with("ng refs/heads/fresh "), "{ctx} {report:?}");
            assert_eq!(server_ref(&server, "refs/heads/topic"), Some(t1.clone()), "{ctx}");
            assert_eq!(server_ref(&server, "refs/heads/fresh"), None, "{ctx}");
            assert_eq!(
                wait_no_incoming(&server),
                (packs_before, vec![]),
                "{ctx} objects of a failed push kept"
            );
            // Not atomic: the stale ref is refused, the other one lands.
            let r = srv.raw(
                "POST",
                &rp,
                &headers,
                &push_body(&commands, "report-status agent=test/1", &pack),
            );
            let report = report_lines(&r.body);
            assert_eq!(report[0], "unpack ok", "{ctx} {report:?}");
            assert!(report[1].starts_with("ng refs/heads/topic "), "{ctx} {report:?}");
            assert_eq!(report[2], "ok refs/heads/fresh", "{ctx} {report:?}");
            assert_eq!(server_ref(&server, "refs/heads/topic"), Some(t1), "{ctx}");
            assert_eq!(server_ref(&server, "refs/heads/fresh"), Some(y), "{ctx}");
            fsck(git, &server);
        }
    }
}

#[test]
fn push_of_1600_refs_at_once() {
    let many = fixture("many-refs");
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let path = format!("alice/many{gi}");
            srv.repo(&path, "alice", "private");
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", "--mirror", &file_url(&many), "src.git"]);
            let src = work.path().join("src.git");
            let url = srv.url_as("alice", &tok, &format!("/{path}.git"));
            git.ok(
                &src,
                &[
                    "push",
                    "-q",
                    &url,
                    "refs/heads/*:refs/heads/*",
                    "refs/tags/*:refs/tags/*",
                ],
            );
            let server = srv.repo_dir(&path);
            let want = for_each_ref(git, &many.join(".git"), "");
            assert_eq!(want.len(), 1601);
            assert_eq!(
                for_each_ref(git, &server, ""),
                want,
                "{ctx} refs after a 1,601-ref push"
            );
            assert_eq!(
                git.ok(&server, &["symbolic-ref", "HEAD"]).trim(),
                "refs/heads/main",
                "{ctx}"
            );
            fsck(git, &server);
            // ...and they all come back in one advertisement.
            git.ok(work.path(), &["clone", "-q", "--mirror", &url, "back.git"]);
            assert_eq!(for_each_ref(git, &work.path().join("back.git"), ""), want, "{ctx}");
        }
    }
}

#[test]
fn push_to_create_and_the_protected_default_branch() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        for u in ["dev", "maint"] {
            srv.user(u, false, None);
        }
        let alice_t = srv.token("alice", &["write_repository"], None);
        let bob_t = srv.token("bob", &["write_repository"], None);
        let bob_ro = srv.token("bob", &["read_repository"], None);
        let dev_t = srv.token("dev", &["write_repository"], None);
        let maint_t = srv.token("maint", &["write_repository"], None);
        srv.user("boss", true, None);
        let admin_t = srv.token("boss", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", &file_url(&fixture("basic")), "local"]);
            let local = work.path().join("local");

            // Push to create, in one's own namespace: a private repository
            // owned by the pusher.
            let mine = format!("bob/new{gi}");
            git.ok(
                &local,
                &[
                    "push",
                    "-q",
                    &srv.url_as("bob", &bob_t, &format!("/{mine}.git")),
                    "main",
                    "refs/remotes/origin/feature:refs/heads/feature",
                ],
            );
            let p = srv
                .project(&mine)
                .unwrap_or_else(|| panic!("{ctx} the push created no repository"));
            assert_eq!(p.owner_id, bob.id, "{ctx}");
            assert_eq!(p.visibility, "private", "{ctx}");
            assert_eq!(p.default_branch, "main", "{ctx}");
            let server = srv.repo_dir(&mine);
            assert_eq!(
                server_ref(&server, "refs/heads/main").as_deref(),
                Some(BASIC_MAIN),
                "{ctx}"
            );
            fsck(git, &server);
            git.fails(work.path(), &["ls-remote", &srv.url(&format!("/{mine}.git"))]);
            // Someone else's namespace: the not-found text, nothing made.
            let theirs = format!("alice/new{gi}");
            let err = git.fails(
                &local,
                &["push", &srv.url_as("bob", &bob_t, &format!("/{theirs}.git")), "main"],
            );
            assert_contains(&err, NOT_FOUND, &ctx);
            assert!(srv.project(&theirs).is_none(), "{ctx}");
            assert!(!srv.repo_dir(&theirs).exists(), "{ctx}");
            // A token that may not push creates nothing either.
            let ro = format!("bob/readonly{gi}");
            git.fails(
                &local,
                &["push", &srv.url_as("bob", &bob_ro, &format!("/{ro}.git")), "main"],
            );
            assert!(srv.project(&ro).is_none(), "{ctx}");

            // A first push without `main`: HEAD (and the default branch, so
            // the protected one) follows the branch pushed.
            let only = format!("bob/only{gi}");
            let only_url = srv.url_as("bob", &bob_t, &format!("/{only}.git"));
            git.ok(
                &local,
                &[
                    "push",
                    "-q",
                    &only_url,
                    "refs/remotes/origin/feature:refs/heads/feature",
                ],
            );
            let p = srv
                .project(&only)
                .unwrap_or_else(|| panic!("{ctx} no repository {only}"));
            assert_eq!(p.default_branch, "feature", "{ctx}");
            assert_eq!(
                git.ok(&srv.repo_dir(&only), &["symbolic-ref", "HEAD"]).trim(),
                "refs/heads/feature",
                "{ctx}"
            );
            git.ok(work.path(), &["clone", "-q", &only_url, "only"]);
            assert_eq!(
                git.ok(&work.path().join("only"), &["symbolic-ref", "HEAD"]).trim(),
                "refs/heads/feature",
                "{ctx}"
            );
            let err = git.fails(&local, &["push", &only_url, "--delete", "feature"]);
            assert_contains(&err, DELETE_CURRENT, &ctx);

            // A first push that fails (its pack lacks a blob) leaves no
            // repository behind: no row, no folder.
            git.ok(&local, &["checkout", "-q", "-b", "broken"]);
            std::fs::write(local.join("lost.txt"), format!("lost {gi}\n")).unwrap();
            git.ok(&local, &["add", "lost.txt"]);
            git.ok(&local, &["commit", "-q", "-m", "a blob that will be lost"]);
            let y = rev_parse(git, &local, "HEAD");
            let lost = rev_parse(git, &local, "HEAD:lost.txt");
            let objects: Vec<String> = git
                .ok(&local, &["rev-list", "--objects", &y])
                .lines()
                .filter(|l| !l.starts_with(&lost))
                .map(str::to_string)
                .collect();
            let pack = pack_objects(git, &local, false, &(objects.join("\n") + "\n"));
            let broken = format!("bob/broken{gi}");
            let auth = basic("bob", &bob_t);
            let r = srv.raw(
                "POST",
                &format!("/{broken}.git/git-receive-pack"),
                &[
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/x-git-receive-pack-request"),
                ],
                &push_body(
                    &[format!("{ZERO} {y} refs/heads/main")],
                    "report-status agent=test/1",
                    &pack,
                ),
            );
            let report = report_lines(&r.body);
            assert!(
                report
                    .first()
                    .is_some_and(|l| l.starts_with("unpack ") && l != "unpack ok"),
                "{ctx} {} {report:?}",
                r.status
            );
            assert!(
                srv.project(&broken).is_none(),
                "{ctx} a failed first push left a repository row"
            );
            assert!(
                !srv.repo_dir(&broken).exists(),
                "{ctx} a failed first push left a folder"
            );
            git.ok(&local, &["checkout", "-q", "main"]);

            // The default branch of an existing repository.
            let path = format!("alice/prot{gi}");
            srv.import(&path, "alice", "private", &fixture("basic"));
            srv.member(&path, "dev", "developer");
            srv.member(&path, "maint", "maintainer");
            let server = srv.repo_dir(&path);
            let url = |u: &str, t: &str| srv.url_as(u, t, &format!("/{path}.git"));
            // Nobody deletes it, not even the owner.
            let err = git.fails(&local, &["push", &url("alice", &alice_t), "--delete", "main"]);
            assert_contains(&err, DELETE_CURRENT, &ctx);
            assert_eq!(
                server_ref(&server, "refs/heads/main").as_deref(),
                Some(BASIC_MAIN),
                "{ctx}"
            );
            // A developer may not push to it...
            git.ok(work.path(), &["clone", "-q", &url("dev", &dev_t), "d"]);
            let d = work.path().join("d");
            commit(git, &d, "dev.txt", "dev\n", "dev on main");
            let err = git.fails(&d, &["push", "origin", "main"]);
            assert_contains(&err, PROTECTED_PUSH, &ctx);
            assert_eq!(
                server_ref(&server, "refs/heads/main").as_deref(),
                Some(BASIC_MAIN),
                "{ctx}"
            );
            let err = git.fails(&d, &["push", "origin", "--delete", "main"]);
            assert_contains(&err, DELETE_CURRENT, &ctx);
            // ...but may push, and force-push, another branch.
            git.ok(&d, &["checkout", "-q", "feature"]);
            let f1 = commit(git, &d, "f.txt", "1\n", "dev on feature");
            git.ok(&d, &["push", "-q", "origin", "feature"]);
            assert_eq!(server_ref(&server, "refs/heads/feature"), Some(f1), "{ctx}");
            git.ok(&d, &["reset", "-q", "--hard", "HEAD~1"]);
            let f2 = commit(git, &d, "f.txt", "2\n", "dev on feature, again");
            git.ok(&d, &["push", "-q", "--force", "origin", "feature"]);
            assert_eq!(
                server_ref(&server, "refs/heads/feature"),
                Some(f2),
                "{ctx} developer force push"
            );
            // A maintainer pushes to it, but never forcibly.
            git.ok(work.path(), &["clone", "-q", &url("maint", &maint_t), "m"]);
            let m = work.path().join("m");
            let m1 = commit(git, &m, "maint.txt", "1\n", "maintainer on main");
            git.ok(&m, &["push", "-q", "origin", "main"]);
            assert_eq!(server_ref(&server, "refs/heads/main"), Some(m1.clone()), "{ctx}");
            git.ok(&m, &["reset", "-q", "--hard", "HEAD~1"]);
            commit(git, &m, "maint.txt", "other\n", "maintainer rewrites main");
            let err = git.fails(&m, &["push", "--force", "origin", "main"]);
            assert_contains(&err, PROTECTED_FORCE_PUSH, &ctx);
            assert_eq!(server_ref(&server, "refs/heads/main"), Some(m1), "{ctx}");
            let err = git.fails(&m, &["push", "origin", "--delete", "main"]);
            assert_contains(&err, DELETE_CURRENT, &ctx);
            // An admin, member or not: pushes, but no force either.
            git.ok(work.path(), &["clone", "-q", &url("boss", &admin_t), "a"]);
            let a = work.path().join("a");
            let a1 = commit(git, &a, "admin.txt", "1\n", "admin on main");
            git.ok(&a, &["push", "-q", "origin", "main"]);
            assert_eq!(server_ref(&server, "refs/heads/main"), Some(a1.clone()), "{ctx}");
            git.ok(&a, &["reset", "-q", "--hard", "HEAD~1"]);
            commit(git, &a, "admin.txt", "other\n", "admin rewrites main");
            let err = git.fails(&a, &["push", "--force", "origin", "main"]);
            assert_contains(&err, PROTECTED_FORCE_PUSH, &ctx);
            assert_eq!(server_ref(&server, "refs/heads/main"), Some(a1), "{ctx}");
            fsck(git, &server);
        }
    }
}

#[test]
fn concurrent_pushes_to_one_branch_let_exactly_one_win() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let path = format!("alice/race{gi}");
            srv.import(&path, "alice", "private", &fixture("basic"));
            let server = srv.repo_dir(&path);
            let url = srv.url_as("alice", &tok, &format!("/{path}.git"));
            let work = tmp();
            let mut clones = Vec::new();
            for k in 0..4 {
                let name = format!("c{k}");
                git.ok(work.path(), &["clone", "-q", &url, &name]);
                let c = work.path().join(&name);
                git.ok(&c, &["checkout", "-q", "-b", "race"]);
                let raced = commit(git, &c, "race.txt", &format!("{k}\n"), &format!("racer {k}"));
                git.ok(&c, &["checkout", "-q", "-b", &format!("own-{k}"), "main"]);
                let own = commit(git, &c, "own.txt", &format!("{k}\n"), &format!("own {k}"));
                clones.push((c, raced, own));
            }
            let results: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = clones
                    .iter()
                    .enumerate()
                    .map(|(k, (c, _, _))| {
                        let own = format!("own-{k}");
                        s.spawn(move || git.run(c, &["push", "-q", "origin", "race", &own]).status.success())
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let winner = server_ref(&server, "refs/heads/race").unwrap_or_else(|| panic!("{ctx} nobody won"));
            let winners: Vec<usize> = (0..4).filter(|&k| clones[k].1 == winner).collect();
            assert_eq!(winners.len(), 1, "{ctx} race is {winner}, none of ours");
            assert!(results[winners[0]], "{ctx} the winner's push failed");
            assert_eq!(results.iter().filter(|r| **r).count(), 1, "{ctx} {results:?}");
            for (k, (_, _, own)) in clones.iter().enumerate() {
                assert_eq!(
                    server_ref(&server, &format!("refs/heads/own-{k}")).as_ref(),
                    Some(own),
                    "{ctx} a concurrent push to its own branch was lost"
                );
            }
            assert_eq!(wait_no_incoming(&server).1, Vec::<String>::new(), "{ctx}");
            fsck(git, &server);
        }
    }
}

#[test]
fn repository_paths_are_case_insensitive() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let path = format!("alice/basic{gi}");
            srv.import(&path, "alice", "private", &fixture("basic"));
            let other = format!("/ALICE/Basic{gi}.git");
            // Paths are unique without regard to case, so another casing
            // names the same repository (as on GitLab): never a 500.
            let r = srv.raw(
                "GET",
                &format!("{other}/info/refs?service=git-upload-pack"),
                &[("Authorization", &basic("alice", &tok))],
                b"",
            );
            assert_eq!(r.status, 200, "{ctx} {other}: {}", r.text());
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", &srv.url_as("alice", &tok, &other), "c"]);
            let c = work.path().join("c");
            assert_eq!(rev_parse(git, &c, "HEAD"), BASIC_MAIN, "{ctx}");
            git.ok(&c, &["checkout", "-q", "-b", "cased"]);
            let x = commit(git, &c, "x.txt", "x\n", "pushed through another casing");
            git.ok(&c, &["push", "-q", "origin", "cased"]);
            assert_eq!(server_ref(&srv.repo_dir(&path), "refs/heads/cased"), Some(x), "{ctx}");
        }
    }
}

#[test]
fn push_to_create_with_another_casing_of_ones_namespace() {
    for srv in TestServer::each() {
        let bob = srv.user("bob", false, None);
        let tok = srv.token("bob", &["write_repository"], None);
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", &file_url(&fixture("basic")), "local"]);
            let local = work.path().join("local");
            git.ok(
                &local,
                &[
                    "push",
                    "-q",
                    &srv.url_as("bob", &tok, &format!("/BOB/made{gi}.git")),
                    "main",
                ],
            );
            let p = srv
                .project(&format!("bob/made{gi}"))
                .unwrap_or_else(|| panic!("{ctx} no repository"));
            assert_eq!(p.owner_id, bob.id, "{ctx}");
            // The repository is bob's: it answers under both casings.
            for shown in [format!("/bob/made{gi}.git"), format!("/BOB/made{gi}.git")] {
                let out = git.ok(work.path(), &["ls-remote", &srv.url_as("bob", &tok, &shown)]);
                assert!(
                    out.contains(&format!("{BASIC_MAIN}\trefs/heads/main")),
                    "{ctx} {shown}: {out}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------
// Shallow.

/// Every commit reachable in a clone, and its shallow boundary.
fn shape(git: &Git, dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut commits: Vec<String> = git
        .ok(dir, &["rev-list", "--all"])
        .lines()
        .map(str::to_string)
        .collect();
    commits.sort();
    let mut shallow: Vec<String> = std::fs::read_to_string(dir.join(".git/shallow"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    shallow.sort();
    (commits, shallow)
}

#[test]
fn shallow_clones_and_fetches_match_git_itself() {
    shallow_against_git_itself(&gits());
}

/// The same, on each client's default protocol (v2): the oracle, git's
/// own upload-pack over file://, speaks v2 too.
#[test]
fn shallow_clones_and_fetches_match_git_itself_on_v2() {
    shallow_against_git_itself(&gits_speaking(None));
}

fn shallow_against_git_itself(gits: &[Git]) {
    let basic_dir = fixture("basic");
    let oracle = file_url(&basic_dir);
    for srv in ENGINES.iter().flat_map(|e| TestServer::each_with_engine(e)) {
        let engine = srv.app.engine.name();
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["read_repository"], None);
        let wtok = srv.token("alice", &["write_repository"], None);
        for (gi, git) in gits.iter().enumerate() {
            let ctx = git.context(&format!("{} {engine}", srv.backend()));
            let path = format!("alice/shallow{gi}");
            srv.import(&path, "alice", "private", &basic_dir);
            let url = srv.url_as("alice", &tok, &format!("/{path}.git"));
            let work = tmp();
            let w = work.path();
            // Runs the same git command in the server's clone and in the
            // oracle's, then compares what each holds.
            let both = |dirs: (&str, &str), args: &[&str], what: &str| {
                for d in [dirs.0, dirs.1] {
                    git.ok(&w.join(d), args);
                }
                let (ours, theirs) = (shape(git, &w.join(dirs.0)), shape(git, &w.join(dirs.1)));
                assert_eq!(ours, theirs, "{ctx} {what}: server vs git upload-pack");
                fsck(git, &w.join(dirs.0));
                ours
            };
            let clone_both = |opts: &[&str], name: &str| {
                for (u, d) in [
                    (url.as_str(), format!("{name}-s")),
                    (oracle.as_str(), format!("{name}-o")),
                ] {
                    let mut args = vec!["clone", "-q"];
                    args.extend_from_slice(opts);
                    args.push(u);
                    args.push(&d);
                    git.ok(w, &args);
                }
                let (ours, theirs) = (
                    shape(git, &w.join(format!("{name}-s"))),
                    shape(git, &w.join(format!("{name}-o"))),
                );
                assert_eq!(ours, theirs, "{ctx} clone {opts:?}: server vs git upload-pack");
                fsck(git, &w.join(format!("{name}-s")));
                ours
            };

            let (c, s) = clone_both(&["--depth", "1"], "d1");
            assert_eq!((c.len(), s.len()), (1, 1), "{ctx} --depth 1");
            let (c, s) = both(("d1-s", "d1-o"), &["fetch", "-q", "--deepen", "1"], "fetch --deepen 1");
            assert!(
                c.len() > 1 && !s.is_empty(),
                "{ctx} --deepen 1 gave {} commits",
                c.len()
            );
            let (c, s) = both(("d1-s", "d1-o"), &["fetch", "-q", "--unshallow"], "fetch --unshallow");
            assert!(s.is_empty(), "{ctx} still shallow after --unshallow");
            assert_eq!(
                c.len(),
                git.ok(&basic_dir, &["rev-list", "--count", "main"])
                    .trim()
                    .parse::<usize>()
                    .unwrap(),
                "{ctx}"
            );

            let (c, s) = clone_both(&["--depth", "2", "--no-single-branch"], "d2");
            assert!(c.len() >= 3 && s.len() >= 2, "{ctx} {c:?} {s:?}");
            // 1700000400 = 2023-11-14 22:20:00 UTC, between the fixture's
            // commits (one a minute from 1700000060).
            let (c, s) = clone_both(&["--shallow-since=2023-11-14 22:20:00 +0000"], "since");
            assert!(!c.is_empty() && !s.is_empty(), "{ctx} shallow-since");
            let (c, _) = clone_both(&["--shallow-exclude=feature"], "excl");
            assert!(!c.is_empty(), "{ctx} shallow-exclude");
            let (c, _) = clone_both(&["--shallow-exclude=v0.1", "--no-single-branch"], "excl2");
            assert!(!c.is_empty(), "{ctx} shallow-exclude a tag");
            // After a deepen-since/deepen-not boundary at a merge, git's own
            // upload-pack answers `fetch --unshallow` with an `unshallow`
            // line for a commit the client never received, and git fails
            // ("error in object: unshallow <oid>"): the server must fail the
            // same way, not differently.
            for d in ["excl", "since"] {
                let ours = git.run(&w.join(format!("{d}-s")), &["fetch", "-q", "--unshallow"]);
                let theirs = git.run(&w.join(format!("{d}-o")), &["fetch", "-q", "--unshallow"]);
                assert_eq!(ours.status.code(), theirs.status.code(), "{ctx} unshallow after {d}");
                // (Over HTTP git adds "the remote end hung up unexpectedly".)
                let first = |o: &std::process::Output| {
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string()
                };
                assert_eq!(first(&ours), first(&theirs), "{ctx} unshallow after {d}");
                let (a, b) = (
                    shape(git, &w.join(format!("{d}-s"))),
                    shape(git, &w.join(format!("{d}-o"))),
                );
                assert_eq!(a, b, "{ctx} unshallow after {d}");
            }
            // A boundary on a plain commit: unshallow works.
            let (c, s) = clone_both(&["--shallow-since=2023-11-14 22:15:00 +0000"], "since2");
            assert!(!c.is_empty() && !s.is_empty(), "{ctx} shallow-since");
            let (_, s) = both(
                ("since2-s", "since2-o"),
                &["fetch", "-q", "--unshallow"],
                "unshallow after since",
            );
            assert!(s.is_empty(), "{ctx}");
            let (_, s) = both(
                ("d2-s", "d2-o"),
                &["fetch", "-q", "--deepen", "1"],
                "deepen a multi-branch clone",
            );
            assert!(!s.is_empty(), "{ctx}");

            // Requests git refuses: the server refuses them with git's text.
            for (opt, name) in [
                ("--shallow-exclude=no-such-ref", "bad-excl"),
                ("--shallow-since=2030-01-01", "future"),
            ] {
                let ours = git.fails(w, &["clone", "-q", opt, &url, &format!("{name}-s")]);
                let theirs = git.fails(w, &["clone", "-q", opt, &oracle, &format!("{name}-o")]);
                let reason = theirs.lines().next().unwrap_or_default().trim_start_matches("fatal: ");
                assert!(!reason.is_empty(), "{ctx}");
                assert_contains(&ours, reason, &format!("{ctx} clone {opt}"));
            }

            // A push from a shallow clone (git sends its shallow lines).
            let wurl = srv.url_as("alice", &wtok, &format!("/{path}.git"));
            git.ok(w, &["clone", "-q", "--depth", "1", &wurl, "push-s"]);
            let ps = w.join("push-s");
            git.ok(&ps, &["checkout", "-q", "-b", "from-shallow"]);
            let c = commit(
                git,
                &ps,
                "s.txt",
                "from a shallow clone\n",
                "pushed from a shallow clone",
            );
            git.ok(&ps, &["push", "-q", "origin", "from-shallow"]);
            let server = srv.repo_dir(&path);
            assert_eq!(server_ref(&server, "refs/heads/from-shallow"), Some(c), "{ctx}");
            fsck(git, &server);
        }
    }
}

// ---------------------------------------------------------------------
// Credentials, scopes and roles, through git.

#[test]
fn scopes_credentials_and_roles_through_git() {
    for srv in TestServer::each() {
        // Many failures come next; the ban has its own test.
        srv.setting("git_auth_ban_enabled", "false");
        srv.user("alice", false, Some(PASSWORD));
        for u in ["dev", "rita", "stranger", "twofa", "blocky"] {
            srv.user(u, false, Some(PASSWORD));
        }
        users::enable_two_factor(
            &mut srv.conn(),
            &srv.app.key,
            &gitpat::service::audit::Actor::cli(),
            "twofa",
            chrono::Utc::now(),
        )
        .unwrap();
        let path = "alice/scopes";
        srv.import(path, "alice", "private", &fixture("basic"));
        srv.import("alice/internal", "alice", "internal", &fixture("basic"));
        for (u, role) in [
            ("dev", "developer"),
            ("rita", "reporter"),
            ("twofa", "developer"),
            ("blocky", "developer"),
        ] {
            srv.member(path, u, role);
        }
        let today = Utc::now().date_naive();
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let work = tmp();
            let w = work.path();
            git.ok(w, &["clone", "-q", &file_url(&fixture("basic")), "local"]);
            let local = w.join("local");
            let url = |u: &str, secret: &str| srv.url_as(u, secret, &format!("/{path}.git"));
            let n = std::cell::Cell::new(0);
            // A full fetch (info/refs and upload-pack) into a new folder.
            let pull = |u: &str, secret: &str| -> Result<(), String> {
                n.set(n.get() + 1);
                let dest = format!("pull{}", n.get());
                let out = git.run(w, &["clone", "-q", "--bare", &url(u, secret), &dest]);
                if out.status.success() {
                    fsck(git, &w.join(&dest));
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            };
            // A new commit pushed to a new branch.
            let push = |u: &str, secret: &str, what: &str| -> Result<(), String> {
                n.set(n.get() + 1);
                let branch = format!("p{gi}-{}", n.get());
                git.ok(&local, &["checkout", "-q", "-B", &branch, "main"]);
                let c = commit(git, &local, "p.txt", &format!("{what} {branch}\n"), what);
                let out = git.run(&local, &["push", "-q", &url(u, secret), &branch]);
                let landed = server_ref(&srv.repo_dir(path), &format!("refs/heads/{branch}"));
                if out.status.success() {
                    assert_eq!(landed, Some(c), "{ctx} {what}: git said the push worked");
                    Ok(())
                } else {
                    assert_eq!(landed, None, "{ctx} {what}: a failed push landed");
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            };
            let ok = |r: Result<(), String>, what: &str| {
                if let Err(e) = r {
                    panic!("{ctx} {what} should work:\n{e}");
                }
            };
            let refused = |r: Result<(), String>, text: &str, what: &str| match r {
                Ok(()) => panic!("{ctx} {what} should be refused"),
                Err(e) => assert_contains(&e, text, &format!("{ctx} {what}")),
            };

            // Scopes (dev is a developer: roles allow everything here).
            for (scopes, can_pull, can_push) in [
                (&["read_repository"][..], true, false),
                (&["write_repository"][..], true, true),
                (&["api"][..], true, true),
                (&["read_api"][..], true, false),
                (&["read_user"][..], false, false),
                (&["read_registry", "write_registry"][..], false, false),
            ] {
                let t = srv.token("dev", scopes, None);
                let what = format!("token {scopes:?}");
                // The username is not compared: anything non-empty.
                if can_pull {
                    ok(pull("oauth2", &t), &format!("{what} pull"));
                } else {
                    refused(pull("oauth2", &t), CANNOT_DOWNLOAD, &format!("{what} pull"));
                }
                if can_push {
                    ok(push("dev", &t, &what), &format!("{what} push"));
                } else {
                    refused(push("dev", &t, &what), CANNOT_UPLOAD, &format!("{what} push"));
                }
            }

            // Expiry: valid while today < expires_at.
            let t = srv.token("dev", &["read_repository"], Some(today));
            refused(pull("dev", &t), ACCESS_DENIED, "a token expiring today");
            let t = srv.token("dev", &["read_repository"], Some(today + Duration::days(1)));
            ok(pull("dev", &t), "a token expiring tomorrow");
            // Revoked.
            let t = srv.token("dev", &["write_repository"], None);
            ok(pull("dev", &t), "a token before its revocation");
            tokens::revoke(
                &mut srv.conn(),
                &gitpat::service::audit::Actor::cli(),
                srv.token_row(&t).id,
                chrono::Utc::now(),
            )
            .unwrap();
            refused(pull("dev", &t), ACCESS_DENIED, "a revoked token");
            refused(push("dev", &t, "revoked"), ACCESS_DENIED, "a revoked token");
            // A blocked user: neither token nor password.
            let t = srv.token("blocky", &["write_repository"], None);
            ok(pull("blocky", &t), "blocky before the block");
            users::set_blocked(
                &mut srv.conn(),
                &gitpat::service::audit::Actor::cli(),
                "blocky",
                true,
                chrono::Utc::now(),
            )
            .unwrap();
            refused(pull("blocky", &t), ACCESS_DENIED, "a blocked user's token");
            refused(pull("blocky", PASSWORD), ACCESS_DENIED, "a blocked user's password");
            users::set_blocked(
                &mut srv.conn(),
                &gitpat::service::audit::Actor::cli(),
                "blocky",
                false,
                chrono::Utc::now(),
            )
            .unwrap();

            // Passwords: refused for 2FA users, with a text git shows.
            let err = pull("twofa", PASSWORD).expect_err("a 2FA user's password must be refused");
            assert!(
                remote_lines(&err).iter().any(|l| l.contains(TOKEN_REQUIRED)),
                "{ctx} git must show the token-required text as remote: ...:\n{err}"
            );
            let t = srv.token("twofa", &["write_repository"], None);
            ok(pull("twofa", &t), "a 2FA user's token");
            ok(push("twofa", &t, "twofa"), "a 2FA user's token");
            ok(pull("dev", PASSWORD), "a password");
            ok(push("dev", PASSWORD, "password"), "a password");
            refused(pull("dev", "not the password"), ACCESS_DENIED, "a wrong password");
            srv.setting("password_authentication_enabled_for_git", "false");
            refused(
                pull("dev", PASSWORD),
                TOKEN_REQUIRED,
                "a password when the instance refuses them",
            );
            refused(
                push("dev", PASSWORD, "refused password"),
                TOKEN_REQUIRED,
                "a password when the instance refuses them",
            );
            srv.setting("password_authentication_enabled_for_git", "true");

            // Roles: a non-member gets exactly the answer for a missing
            // repository; a reporter pulls and cannot push.
            let t = srv.token("stranger", &["api"], None);
            let hidden = pull("stranger", &t).expect_err("a non-member must not pull");
            assert_contains(&hidden, NOT_FOUND, &ctx);
            let missing = git.fails(
                w,
                &[
                    "clone",
                    "-q",
                    &srv.url_as("stranger", &t, "/alice/does-not-exist.git"),
                    "missing",
                ],
            );
            assert_eq!(
                remote_lines(&hidden),
                remote_lines(&missing),
                "{ctx} a hidden repository must look missing"
            );
            refused(push("stranger", &t, "stranger"), NOT_FOUND, "a non-member's push");
            let t = srv.token("rita", &["api"], None);
            ok(pull("rita", &t), "a reporter");
            refused(push("rita", &t, "reporter"), CANNOT_UPLOAD, "a reporter's push");

            // Internal: any signed-in user pulls; pushing needs a role;
            // anonymous callers are asked to sign in.
            let t = srv.token("stranger", &["api"], None);
            let internal = srv.url_as("stranger", &t, "/alice/internal.git");
            git.ok(w, &["clone", "-q", "--bare", &internal, "internal"]);
            git.ok(&local, &["checkout", "-q", "main"]);
            let err = git.fails(&local, &["push", &internal, "main:refs/heads/stranger"]);
            assert_contains(&err, CANNOT_UPLOAD, &format!("{ctx} push to an internal repository"));
            let err = git.fails(w, &["ls-remote", &srv.url("/alice/internal.git")]);
            assert_contains(&err, "terminal prompts disabled", &ctx);

            // With expiry not enforced, an expired token still works.
            let t = srv.token("dev", &["read_repository"], Some(today));
            srv.setting("enforce_personal_access_token_expiration", "false");
            ok(pull("dev", &t), "an expired token, expiry not enforced");
            srv.setting("enforce_personal_access_token_expiration", "true");
            refused(pull("dev", &t), ACCESS_DENIED, "an expired token, expiry enforced");

            // A successful use is recorded on the token.
            let t = srv.token("dev", &["read_repository"], None);
            assert!(srv.token_row(&t).last_used_at.is_none());
            ok(pull("dev", &t), "a fresh token");
            let row = srv.token_row(&t);
            assert!(row.last_used_at.is_some(), "{ctx} git use did not set last_used_at");
            assert_eq!(row.last_used_ips, r#"["127.0.0.1"]"#, "{ctx}");
        }
    }
}

// ---------------------------------------------------------------------
// HTTP details, with the raw client.

fn assert_no_cache(r: &RawResponse, ctx: &str) {
    assert_eq!(r.header("Expires"), Some("Fri, 01 Jan 1980 00:00:00 GMT"), "{ctx}");
    assert_eq!(r.header("Pragma"), Some("no-cache"), "{ctx}");
    assert_eq!(
        r.header("Cache-Control"),
        Some("no-cache, max-age=0, must-revalidate"),
        "{ctx}"
    );
}

#[test]
fn http_details_of_the_smart_protocol() {
    for srv in ENGINES.iter().flat_map(|e| TestServer::each_with_engine(e)) {
        srv.setting("git_auth_ban_enabled", "false");
        srv.user("alice", false, None);
        srv.user("twofa", false, Some(PASSWORD));
        srv.user("stranger", false, None);
        users::enable_two_factor(
            &mut srv.conn(),
            &srv.app.key,
            &gitpat::service::audit::Actor::cli(),
            "twofa",
            chrono::Utc::now(),
        )
        .unwrap();
        srv.import("alice/raw", "alice", "private", &fixture("basic"));
        srv.import("alice/pub", "alice", "public", &fixture("basic"));
        srv.member("alice/raw", "twofa", "developer");
        let tok = srv.token("alice", &["write_repository"], None);
        let auth = basic("alice", &tok);
        let b = format!("{} {}", srv.backend(), srv.app.engine.name());
        let b = b.as_str();

        // The advertisements.
        for (svc, path) in [
            ("git-upload-pack", "/alice/raw.git"),
            ("git-upload-pack", "/alice/raw"),
            ("git-receive-pack", "/alice/raw.git"),
        ] {
            let ctx = format!("[{b}] {path} {svc}");
            let r = srv.raw(
                "GET",
                &format!("{path}/info/refs?service={svc}"),
                &[("Authorization", &auth)],
                b"",
            );
            assert_eq!(r.status, 200, "{ctx}: {}", r.text());
            assert_eq!(
                r.header("Content-Type"),
                Some(format!("application/x-{svc}-advertisement").as_str()),
                "{ctx}"
            );
            assert_no_cache(&r, &ctx);
            let head = format!("# service={svc}\n");
            let prefix = format!("{:04x}{head}0000", head.len() + 4);
            assert!(r.body.starts_with(prefix.as_bytes()), "{ctx}: {:?}", r.text());
            let (lines, rest) = pkt_lines(&r.body[prefix.len()..]);
            assert!(rest.is_empty(), "{ctx}: trailing bytes");
            assert_eq!(lines.last(), Some(&None), "{ctx}: no final flush");
            let first = String::from_utf8_lossy(lines[0].as_ref().unwrap()).into_owned();
            let text: Vec<String> = lines
                .iter()
                .flatten()
                .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
                .collect();
            if svc == "git-upload-pack" {
                assert!(first.starts_with(&format!("{BASIC_MAIN} HEAD\0")), "{ctx}: {first:?}");
                assert!(first.contains(" symref=HEAD:refs/heads/main"), "{ctx}: {first:?}");
                assert!(
                    text.iter().any(|l| l.ends_with(" refs/tags/v1.0^{}")),
                    "{ctx}: {text:?}"
                );
            } else {
                assert!(!text.iter().any(|l| l.contains(" HEAD")), "{ctx}: {text:?}");
                assert!(first.contains("report-status"), "{ctx}: {first:?}");
            }
            assert!(
                text.iter()
                    .any(|l| l.starts_with(&format!("{BASIC_MAIN} refs/heads/main"))),
                "{ctx}: {text:?}"
            );
        }

        // No dumb HTTP.
        for (path, headers) in [
            ("/alice/raw.git/info/refs", vec![("Authorization", auth.as_str())]),
            ("/alice/pub.git/info/refs", vec![]),
        ] {
            let r = srv.raw("GET", path, &headers, b"");
            assert!(matches!(r.status, 403 | 404), "[{b}] {path}: {}", r.status);
            assert!(
                !r.body.starts_with(b"001e#") && !r.text().contains(BASIC_MAIN),
                "[{b}] {path}"
            );
        }
        for path in ["/alice/pub.git/HEAD", "/alice/pub.git/objects/info/packs"] {
            let r = srv.raw("GET", path, &[], b"");
            assert!(r.status >= 400, "[{b}] {path} served: {}", r.status);
            assert!(!r.text().contains("refs/heads/main"), "[{b}] {path}");
        }

        // Content types of the POSTs.
        let want = {
            let mut v = pkt(format!("want {BASIC_MAIN} ofs-delta agent=test/1\n").as_bytes());
            v.extend_from_slice(b"0000");
            v.extend(pkt(b"done\n"));
            v
        };
        for (svc, ct) in [
            ("git-upload-pack", Some("text/plain")),
            ("git-upload-pack", None),
            ("git-upload-pack", Some("application/x-git-receive-pack-request")),
            ("git-receive-pack", Some("application/x-git-upload-pack-request")),
            ("git-receive-pack", None),
        ] {
            let mut h = vec![("Authorization", auth.as_str())];
            if let Some(ct) = ct {
                h.push(("Content-Type", ct));
            }
            let r = srv.raw("POST", &format!("/alice/raw.git/{svc}"), &h, &want);
            assert_eq!(r.status, 415, "[{b}] {svc} with {ct:?}: {}", r.text());
        }

        // A fetch request, plain and gzipped: a complete pack of main.
        let up_ct = ("Content-Type", "application/x-git-upload-pack-request");
        for gz in [false, true] {
            let ctx = format!("[{b}] upload-pack, gzip={gz}");
            let r = if gz {
                srv.raw(
                    "POST",
                    "/alice/raw.git/git-upload-pack",
                    &[("Authorization", &auth), up_ct, ("Content-Encoding", "gzip")],
                    &gzip(&want),
                )
            } else {
                srv.raw(
                    "POST",
                    "/alice/raw.git/git-upload-pack",
                    &[("Authorization", &auth), up_ct],
                    &want,
                )
            };
            assert_eq!(r.status, 200, "{ctx}: {}", r.text());
            assert_eq!(
                r.header("Content-Type"),
                Some("application/x-git-upload-pack-result"),
                "{ctx}"
            );
            assert_no_cache(&r, &ctx);
            assert!(
                r.body.starts_with(b"0008NAK\nPACK"),
                "{ctx}: {:?}",
                &r.body[..r.body.len().min(40)]
            );
            for git in gits() {
                git.context(b);
                let dir = tmp();
                git.ok(dir.path(), &["init", "-q", "--bare", "x.git"]);
                let x = dir.path().join("x.git");
                let out = git.run_with(&x, &["index-pack", "--stdin"], &[], Some(&r.body[8..]));
                assert!(
                    out.status.success(),
                    "{ctx} index-pack: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // Every object of main's history is there.
                let n = git.ok(&x, &["rev-list", "--objects", BASIC_MAIN]).lines().count();
                let want_n = git
                    .ok(&fixture("basic"), &["rev-list", "--objects", "main"])
                    .lines()
                    .count();
                assert_eq!(n, want_n, "{ctx} {}", git.label());
            }
        }

        // The probes git sends before a chunked request.
        for svc in ["git-receive-pack", "git-upload-pack"] {
            let ct = format!("application/x-{svc}-request");
            let r = srv.raw(
                "POST",
                &format!("/alice/raw.git/{svc}"),
                &[("Authorization", &auth), ("Content-Type", &ct)],
                b"0000",
            );
            assert_eq!(r.status, 200, "[{b}] {svc} probe: {}", r.text());
        }

        // Refusals: status, text and challenge.
        let up_refs = "/alice/raw.git/info/refs?service=git-upload-pack";
        let check = |headers: &[(&str, &str)], path: &str, status: u16, text: &str, challenge: bool, what: &str| {
            let r = srv.raw("GET", path, headers, b"");
            assert_eq!(r.status, status, "[{b}] {what}: {}", r.text());
            assert_eq!(r.text().trim_end(), text, "[{b}] {what}");
            assert!(
                r.header("Content-Type").is_some_and(|c| c.starts_with("text/plain")),
                "[{b}] {what}"
            );
            let www = r.header("WWW-Authenticate");
            if challenge {
                assert_eq!(www, Some("Basic realm=\"gitpat\""), "[{b}] {what}");
            } else {
                assert_eq!(www, None, "[{b}] {what}");
            }
        };
        check(&[], up_refs, 401, ACCESS_DENIED, true, "anonymous, private");
        check(
            &[],
            "/alice/pub.git/info/refs?service=git-receive-pack",
            401,
            ACCESS_DENIED,
            true,
            "anonymous push",
        );
        check(
            &[("Authorization", &basic("alice", "glpat-not-a-real-token-xx"))],
            up_refs,
            401,
            ACCESS_DENIED,
            true,
            "a wrong token",
        );
        check(
            &[("Authorization", &basic("twofa", PASSWORD))],
            up_refs,
            401,
            TOKEN_REQUIRED,
            false,
            "a 2FA user's password",
        );
        let ru = srv.token("alice", &["read_user"], None);
        check(
            &[("Authorization", &basic("alice", &ru))],
            up_refs,
            403,
            CANNOT_DOWNLOAD,
            false,
            "read_user",
        );
        let st = srv.token("stranger", &["api"], None);
        check(
            &[("Authorization", &basic("stranger", &st))],
            up_refs,
            404,
            NOT_FOUND,
            false,
            "a non-member",
        );
        check(
            &[("Authorization", &basic("stranger", &st))],
            "/alice/nothing.git/info/refs?service=git-upload-pack",
            404,
            NOT_FOUND,
            false,
            "a missing repository",
        );

        // A token works whatever the username, an empty one too (GitLab
        // ignores it).
        let r = srv.raw("GET", up_refs, &[("Authorization", &basic("", &tok))], b"");
        assert_eq!(r.status, 200, "[{b}] a token with an empty username: {}", r.text());

        // receive-pack stays v0 when a client asks for v2 (protocol v2
        // itself is in git_http_v2.rs).
        let r = srv.raw(
            "GET",
            "/alice/raw.git/info/refs?service=git-receive-pack",
            &[("Authorization", &auth), ("Git-Protocol", "version=2")],
            b"",
        );
        assert_eq!(r.status, 200, "[{b}] v2 asked: {}", r.text());
        assert!(
            r.body.starts_with(b"001f# service=git-receive-pack\n0000"),
            "[{b}] v2 asked: {:?}",
            r.text()
        );

        // An empty repository: the `capabilities^{}` line.
        srv.repo("alice/void", "alice", "private");
        for svc in ["git-upload-pack", "git-receive-pack"] {
            let r = srv.raw(
                "GET",
                &format!("/alice/void.git/info/refs?service={svc}"),
                &[("Authorization", &auth)],
                b"",
            );
            assert_eq!(r.status, 200, "[{b}] empty {svc}");
            let head = format!("# service={svc}\n");
            let (lines, _) = pkt_lines(&r.body[head.len() + 8..]);
            assert_eq!(lines.len(), 2, "[{b}] empty {svc}: {:?}", r.text());
            let first = lines[0].as_ref().unwrap();
            assert!(
                first.starts_with(format!("{ZERO} capabilities^{{}}\0").as_bytes()),
                "[{b}] empty {svc}: {:?}",
                r.text()
            );
        }

        // A request over 10 MiB once inflated is refused, not buffered.
        let mut bomb = pkt(format!("want {BASIC_MAIN} ofs-delta\n").as_bytes());
        bomb.extend_from_slice(b"0000");
        let have = pkt(format!("have {}\n", "1".repeat(40)).as_bytes());
        while bomb.len() < 11 * 1024 * 1024 {
            bomb.extend_from_slice(&have);
        }
        bomb.extend(pkt(b"done\n"));
        let r = srv.raw(
            "POST",
            "/alice/raw.git/git-upload-pack",
            &[("Authorization", &auth), up_ct, ("Content-Encoding", "gzip")],
            &gzip(&bomb),
        );
        assert_eq!(r.status, 400, "[{b}] an 11 MiB request: {}", r.text());

        // A v0 clone of a public repository: exactly 1 GET and 1 POST.
        for git in gits() {
            let ctx = git.context(b);
            let dir = tmp();
            let out = git.run_with(
                dir.path(),
                &["clone", "-q", &srv.url("/alice/pub.git"), "c"],
                &[("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")],
                None,
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{ctx}: {err}");
            let gets = err.matches("=> Send header: GET ").count();
            let posts = err.matches("=> Send header: POST ").count();
            assert_eq!((gets, posts), (1, 1), "{ctx} requests of a v0 clone");
            assert_eq!(rev_parse(&git, &dir.path().join("c"), "HEAD"), BASIC_MAIN, "{ctx}");
        }
    }
}

// ---------------------------------------------------------------------
// Bad input.

#[test]
fn bad_input_is_refused_and_leaves_the_repository_intact() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["write_repository"], None);
        let auth = basic("alice", &tok);
        let b = srv.backend();
        let up = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/x-git-upload-pack-request"),
        ];
        let rp = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/x-git-receive-pack-request"),
        ];
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(b);
            let path = format!("alice/bad{gi}");
            srv.import(&path, "alice", "private", &fixture("basic"));
            let server = srv.repo_dir(&path);
            let up_path = format!("/{path}.git/git-upload-pack");
            let rp_path = format!("/{path}.git/git-receive-pack");
            let refs_before = for_each_ref(git, &server, "");
            let (packs_before, _) = pack_state(&server);

            // Malformed pkt-lines to upload-pack: 400 or an ERR packet,
            // promptly (the raw client gives up after 30 s).
            let mut missing_flush = pkt(format!("want {BASIC_MAIN}\n").as_bytes());
            missing_flush.extend(pkt(b"done\n"));
            for body in [
                b"zzzz".to_vec(),
                b"00".to_vec(),
                b"0003".to_vec(),
                b"0009want".to_vec(),
                b"ffff want".to_vec(),
                pkt(b"want not-an-object-id\n"),
                pkt(format!("want {BASIC_MAIN}\n").as_bytes()),
                missing_flush,
                pkt(b"hello there\n"),
            ] {
                let r = srv.raw("POST", &up_path, &up, &body);
                let shown = String::from_utf8_lossy(&body).into_owned();
                assert!(
                    r.status == 400 || (r.status == 200 && r.text().contains("ERR ")),
                    "{ctx} upload-pack {shown:?}: {} {}",
                    r.status,
                    r.text()
                );
            }
            // A want that is not ours.
            let bogus = "0123456789abcdef0123456789abcdef01234567";
            let mut body = pkt(format!("want {bogus} side-band-64k\n").as_bytes());
            body.extend_from_slice(b"0000");
            body.extend(pkt(b"done\n"));
            let r = srv.raw("POST", &up_path, &up, &body);
            assert_contains(&r.text(), &format!("ERR upload-pack: not our ref {bogus}"), &ctx);
            // Ref names git itself would refuse, and a deletion of a ref
            // that does not exist: refused one by one, nothing moves.
            let funny = [
                format!("{ZERO} {BASIC_MAIN} refs/heads/a..b"),
                format!("{ZERO} {BASIC_MAIN} HEAD"),
                format!("{ZERO} {BASIC_MAIN} refs/heads/trailing.lock"),
                format!("{ZERO} {BASIC_MAIN} refs/heads/sp ace"),
            ];
            let empty_pack = pack_objects(git, &server, false, "");
            let r = srv.raw(
                "POST",
                &rp_path,
                &rp,
                &push_body(&funny, "report-status agent=test/1", &empty_pack),
            );
            let report = report_lines(&r.body);
            assert_eq!(
                report.first().map(String::as_str),
                Some("unpack ok"),
                "{ctx} {report:?}"
            );
            assert_eq!(report.len(), 1 + funny.len(), "{ctx} {report:?}");
            for l in &report[1..] {
                assert!(
                    l.starts_with("ng ") && l.ends_with(" funny refname"),
                    "{ctx} {report:?}"
                );
            }
            assert_eq!(
                for_each_ref(git, &server, ""),
                refs_before,
                "{ctx} funny refnames moved refs"
            );
            assert_eq!(wait_no_incoming(&server), (packs_before.clone(), vec![]), "{ctx}");

            // Garbage commands to receive-pack.
            let mut body = pkt(b"garbage\n");
            body.extend_from_slice(b"0000");
            let r = srv.raw("POST", &rp_path, &rp, &body);
            assert_eq!(r.status, 400, "{ctx} garbage push: {}", r.text());

            // A push cut off in the middle of its pack: with a
            // Content-Length, and chunked without its last chunk.
            let work = tmp();
            git.ok(
                work.path(),
                &["clone", "-q", &srv.url_as("alice", &tok, &format!("/{path}.git")), "c"],
            );
            let c = work.path().join("c");
            git.ok(&c, &["checkout", "-q", "-b", "cut"]);
            let x = commit(git, &c, "big.txt", &noise(300_000, gi as u64), "a big commit");
            let pack = pack_objects(git, &c, true, &format!("{x}\n^{BASIC_MAIN}\n"));
            assert!(pack.len() > 200_000, "{ctx} the pack should be big");
            let body = push_body(
                &[format!("{ZERO} {x} refs/heads/cut")],
                "report-status side-band-64k agent=test/1",
                &pack,
            );
            let cut_pack = pack.clone();
            let half = body.len() - pack.len() / 2;
            let head = format!(
                "POST {rp_path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: {auth}\r\n\
                 Content-Type: application/x-git-receive-pack-request\r\n",
                srv.addr
            );
            let mut req = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
            req.extend_from_slice(&body[..half]);
            cut_reply_ok(srv.raw_bytes(&req, true), &ctx);
            let req = chunked(&head, &body[..half], false);
            cut_reply_ok(srv.raw_bytes(&req, true), &ctx);
            let state = wait_no_incoming(&server);
            assert_eq!(
                state,
                (packs_before.clone(), vec![]),
                "{ctx} a cut-off push left objects"
            );
            assert_eq!(
                for_each_ref(git, &server, ""),
                refs_before,
                "{ctx} a cut-off push moved refs"
            );
            let has_x = git.run(&server, &["cat-file", "-e", &x]).status.success();
            assert!(!has_x, "{ctx} the cut-off push's commit is in the repository");
            fsck(git, &server);

            // A pack missing one of its objects: `unpack <error>`.
            git.ok(&c, &["checkout", "-q", "-b", "miss", "main"]);
            std::fs::write(c.join("one.txt"), "one blob\n").unwrap();
            std::fs::write(c.join("two.txt"), "another blob\n").unwrap();
            git.ok(&c, &["add", "one.txt", "two.txt"]);
            git.ok(&c, &["commit", "-q", "-m", "two new blobs"]);
            let y = rev_parse(git, &c, "HEAD");
            let dropped = rev_parse(git, &c, "HEAD:two.txt");
            let objects: Vec<String> = git
                .ok(&c, &["rev-list", "--objects", &y, &format!("^{BASIC_MAIN}")])
                .lines()
                .map(str::to_string)
                .filter(|l| !l.starts_with(&dropped))
                .collect();
            assert!(objects.len() >= 3, "{ctx} {objects:?}");
            let pack = pack_objects(git, &c, false, &(objects.join("\n") + "\n"));
            let r = srv.raw(
                "POST",
                &rp_path,
                &rp,
                &push_body(
                    &[format!("{ZERO} {y} refs/heads/miss")],
                    "report-status agent=test/1",
                    &pack,
                ),
            );
            assert_eq!(r.status, 200, "{ctx} {}", r.text());
            let report = report_lines(&r.body);
            assert!(
                report
                    .first()
                    .is_some_and(|l| l.starts_with("unpack ") && l != "unpack ok"),
                "{ctx} a pack missing a blob: {report:?}"
            );
            assert!(
                report.get(1).is_some_and(|l| l.starts_with("ng refs/heads/miss ")),
                "{ctx} {report:?}"
            );
            assert_eq!(server_ref(&server, "refs/heads/miss"), None, "{ctx}");
            assert_eq!(
                wait_no_incoming(&server),
                (packs_before.clone(), vec![]),
                "{ctx} objects kept"
            );
            assert_eq!(for_each_ref(git, &server, ""), refs_before, "{ctx}");
            fsck(git, &server);

            // A want that exists but is reachable from no ref: not ours.
            git.ok(&c, &["checkout", "-q", "-b", "gone", "main"]);
            let z = commit(git, &c, "gone.txt", "gone\n", "soon unreachable");
            git.ok(&c, &["push", "-q", "origin", "gone"]);
            git.ok(&c, &["push", "-q", "origin", "--delete", "gone"]);
            assert!(git.run(&server, &["cat-file", "-e", &z]).status.success(), "{ctx}");
            let mut body = pkt(format!("want {z} side-band-64k\n").as_bytes());
            body.extend_from_slice(b"0000");
            body.extend(pkt(b"done\n"));
            let r = srv.raw("POST", &up_path, &up, &body);
            assert_contains(&r.text(), &format!("ERR upload-pack: not our ref {z}"), &ctx);
            assert!(
                !r.body.windows(4).any(|w| w == b"PACK"),
                "{ctx} sent a pack of an unreachable commit"
            );

            // Controls: the same push, whole, lands (with a Content-Length,
            // and chunked).
            let body = push_body(
                &[format!("{ZERO} {x} refs/heads/cut")],
                "report-status agent=test/1",
                &cut_pack,
            );
            let r = srv.raw("POST", &rp_path, &rp, &body);
            assert_eq!(
                report_lines(&r.body),
                ["unpack ok", "ok refs/heads/cut"],
                "{ctx} the whole push"
            );
            let body = push_body(
                &[format!("{ZERO} {x} refs/heads/cut2")],
                "report-status agent=test/1",
                &cut_pack,
            );
            let reply = srv
                .raw_bytes(&chunked(&head, &body, true), false)
                .expect("a chunked push");
            let r = RawResponse::parse(&reply).expect("a reply");
            assert_eq!(
                report_lines(&r.body),
                ["unpack ok", "ok refs/heads/cut2"],
                "{ctx} a chunked push"
            );
            assert_eq!(server_ref(&server, "refs/heads/cut2"), Some(x.clone()), "{ctx}");

            // The server still serves a clean clone, big blob and all.
            git.ok(
                work.path(),
                &[
                    "clone",
                    "-q",
                    &srv.url_as("alice", &tok, &format!("/{path}.git")),
                    "after",
                ],
            );
            let after = work.path().join("after");
            assert_eq!(rev_parse(git, &after, "HEAD"), BASIC_MAIN, "{ctx}");
            assert_eq!(rev_parse(git, &after, "origin/cut"), x, "{ctx}");
            git.ok(&after, &["checkout", "-q", "cut"]);
            assert_eq!(
                std::fs::read_to_string(after.join("big.txt")).unwrap().len(),
                300_000,
                "{ctx}"
            );
            fsck(git, &after);
            fsck(git, &server);
        }
    }
}

// ---------------------------------------------------------------------
// The failed-authentication ban.

#[test]
fn ten_failed_authentications_ban_the_ip() {
    for git in gits() {
        // A fresh server (and database) per git and backend.
        for srv in TestServer::each() {
            let ctx = git.context(srv.backend());
            srv.user("alice", false, Some(PASSWORD));
            srv.import("alice/ban", "alice", "private", &fixture("basic"));
            srv.import("alice/open", "alice", "public", &fixture("basic"));
            let tok = srv.token("alice", &["read_repository"], None);
            let refs = "/alice/ban.git/info/refs?service=git-upload-pack";
            let anon_refs = "/alice/open.git/info/refs?service=git-upload-pack";
            // Guesses at an account that does not exist (so that alice's
            // own account lock stays out of this).
            let wrong = basic("mallory", "wrong password");
            let good = basic("alice", &tok);
            let password = basic("alice", PASSWORD);
            // Nine failures, a success between them: the count goes on.
            for i in 0..9 {
                let r = srv.raw("GET", refs, &[("Authorization", &wrong)], b"");
                assert_eq!(r.status, 401, "{ctx} failure {i}: {}", r.text());
            }
            assert_eq!(
                srv.raw("GET", refs, &[("Authorization", &good)], b"").status,
                200,
                "{ctx}"
            );
            // Anonymous requests are neither failures nor successes.
            assert_eq!(srv.raw("GET", anon_refs, &[], b"").status, 200, "{ctx} banned after 9");
            // The tenth failure, through git.
            let dir = tmp();
            let err = git.fails(
                dir.path(),
                &["ls-remote", &srv.url_as("mallory", "wrong password", "/alice/ban.git")],
            );
            assert_contains(&err, ACCESS_DENIED, &ctx);
            // Now a password, even the right one, is refused, 403, with the
            // ban's text and its end...
            let r = srv.raw("GET", refs, &[("Authorization", &password)], b"");
            assert_eq!(r.status, 403, "{ctx} {}", r.text());
            assert!(
                r.text().starts_with(BANNED) && r.text().trim_end().ends_with("UTC"),
                "{ctx} {}",
                r.text()
            );
            let err = git.fails(
                dir.path(),
                &["clone", "-q", &srv.url_as("alice", PASSWORD, "/alice/ban.git"), "c"],
            );
            assert_contains(&err, BANNED, &ctx);
            // ...but a valid token still clones.
            assert_eq!(
                srv.raw("GET", refs, &[("Authorization", &good)], b"").status,
                200,
                "{ctx}"
            );
            git.ok(
                dir.path(),
                &["clone", "-q", &srv.url_as("alice", &tok, "/alice/ban.git"), "c"],
            );
            // Turning the ban off lets passwords in again.
            srv.setting("git_auth_ban_enabled", "false");
            git.ok(
                dir.path(),
                &["clone", "-q", &srv.url_as("alice", PASSWORD, "/alice/ban.git"), "c2"],
            );
        }
    }
}

#[test]
fn bad_api_tokens_and_malformed_headers_count_toward_the_ban() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, Some(PASSWORD));
        srv.import("alice/ban", "alice", "private", &fixture("basic"));
        let refs = "/alice/ban.git/info/refs?service=git-upload-pack";
        for i in 0..5 {
            let r = srv.raw(
                "GET",
                "/api/v4/user",
                &[("PRIVATE-TOKEN", &format!("glpat-nope{i}"))],
                b"",
            );
            assert_eq!(r.status, 401, "[{b}]");
            let r = srv.raw("GET", "/api/v4/user", &[("Authorization", "Token whatever")], b"");
            assert_eq!(r.status, 401, "[{b}]");
        }
        let r = srv.raw("GET", refs, &[("Authorization", &basic("alice", PASSWORD))], b"");
        assert_eq!(r.status, 403, "[{b}] after 10 bad API credentials: {}", r.text());
        assert_contains(&r.text(), BANNED, b);
    }
}

#[test]
fn two_instances_on_one_database_share_a_ban() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let other = srv.another_instance();
        srv.user("alice", false, Some(PASSWORD));
        srv.import("alice/two", "alice", "private", &fixture("basic"));
        let refs = "/alice/two.git/info/refs?service=git-upload-pack";
        let right = basic("alice", PASSWORD);
        // The other instance lets the password through (it has the row,
        // not the folder: its answer is past authentication).
        let before = other.raw("GET", refs, &[("Authorization", &right)], b"").status;
        assert!(before != 401 && before != 403, "[{b}] before the ban: {before}");
        for _ in 0..10 {
            let r = srv.raw("GET", refs, &[("Authorization", &basic("mallory", "guess"))], b"");
            assert_eq!(r.status, 401, "[{b}]");
        }
        let r = other.raw("GET", refs, &[("Authorization", &right)], b"");
        assert_eq!(r.status, 403, "[{b}] the other instance: {}", r.text());
        assert_contains(&r.text(), BANNED, b);
    }
}

#[test]
fn x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    srv.import("alice/xff", "alice", "private", &fixture("basic"));
    let refs = "/alice/xff.git/info/refs?service=git-upload-pack";
    let wrong = basic("mallory", "wrong password");
    let right = basic("alice", PASSWORD);
    // Behind a trusted proxy (the test client, 127.0.0.1): the client it names.
    srv.setting("trusted_proxies", "127.0.0.0/8");
    for _ in 0..10 {
        let r = srv.raw(
            "GET",
            refs,
            &[("Authorization", &wrong), ("X-Forwarded-For", "203.0.113.5")],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    let from = |xff: Option<&str>| {
        let mut h = vec![("Authorization", right.as_str())];
        if let Some(x) = xff {
            h.push(("X-Forwarded-For", x));
        }
        srv.raw("GET", refs, &h, b"").status
    };
    assert_eq!(from(Some("203.0.113.5")), 403, "the named client is banned");
    assert_eq!(
        from(Some("198.51.100.1, 203.0.113.5")),
        403,
        "the right-most untrusted entry counts"
    );
    assert_eq!(from(Some("203.0.113.6")), 200, "another client is not");
    assert_eq!(from(None), 200, "the proxy itself is not");
    // Without trusted proxies the header is ignored: every failure is the peer's.
    srv.setting("trusted_proxies", "");
    for i in 0..10 {
        let xff = format!("198.51.100.{i}");
        let r = srv.raw(
            "GET",
            refs,
            &[("Authorization", &wrong), ("X-Forwarded-For", &xff)],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    assert_eq!(from(Some("198.51.100.77")), 403, "spoofed headers moved the count");
    assert_eq!(from(None), 403);
}

/// Sends `head` (request line and headers, each ending CRLF) announcing
/// `partial.len() + missing` body bytes, then only `partial`, and keeps the
/// connection open: returns what the server answers, and when.
fn stall(srv: &TestServer, head: &str, partial: &[u8], missing: usize) -> (Vec<u8>, std::time::Duration) {
    use std::io::Read;
    let started = std::time::Instant::now();
    let mut s = std::net::TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(RAW_TIMEOUT)).unwrap();
    let mut req = format!("{head}Content-Length: {}\r\n\r\n", partial.len() + missing).into_bytes();
    req.extend_from_slice(partial);
    s.write_all(&req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    // Until the server closes, or the raw client's patience runs out. A
    // socket with a read timeout is not restarted after a signal (the
    // SIGCHLD of some other test's git): EINTR is read again.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (out, started.elapsed())
}

#[test]
fn a_stalled_request_body_is_given_up_and_leaves_nothing() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["write_repository"], None);
        srv.import("alice/stall", "alice", "public", &fixture("basic"));
        let server = srv.repo_dir("alice/stall");
        let git = &gits()[0];
        let refs_before = for_each_ref(git, &server, "");
        let (packs_before, _) = pack_state(&server);
        let head = |service: &str, auth: Option<&str>| {
            let mut h = format!(
                "POST /alice/stall.git/{service} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
                 Content-Type: application/x-{service}-request\r\n",
                srv.addr
            );
            if let Some(a) = auth {
                h.push_str(&format!("Authorization: {a}\r\n"));
            }
            h
        };

        // An anonymous fetch that sends a want line of the 100 kB it announced.
        let partial = pkt(format!("want {BASIC_MAIN} side-band-64k\n").as_bytes());
        let (reply, took) = stall(&srv, &head("git-upload-pack", None), &partial, 100_000);
        let r = RawResponse::parse(&reply)
            .unwrap_or_else(|e| panic!("[{b}] no answer to a stalled fetch after {took:?}: {e}"));
        assert_eq!(r.status, 400, "[{b}] a stalled fetch: {}", r.text());
        assert_contains(&r.text(), "the request body stalled", &format!("[{b}] a stalled fetch"));
        assert!(
            took >= BODY_IDLE_TIMEOUT,
            "[{b}] given up after {took:?}, before the timeout"
        );

        // A push whose pack stops after its first bytes.
        let auth = basic("alice", &tok);
        let mut partial = push_body(
            &[format!("{ZERO} {BASIC_MAIN} refs/heads/stalled")],
            "report-status side-band-64k agent=test/1",
            b"",
        );
        partial.extend_from_slice(b"PACK\0\0\0\x02");
        let (reply, took) = stall(&srv, &head("git-receive-pack", Some(&auth)), &partial, 100_000);
        let r = RawResponse::parse(&reply)
            .unwrap_or_else(|e| panic!("[{b}] no answer to a stalled push after {took:?}: {e}"));
        let text = r.text();
        assert!(
            (r.status == 400 || r.status == 200) && !text.contains("unpack ok") && !text.contains("ok refs/heads"),
            "[{b}] a stalled push was not refused: {} {text:?}",
            r.status
        );
        assert!(
            took >= BODY_IDLE_TIMEOUT,
            "[{b}] given up after {took:?}, before the timeout"
        );
        assert_eq!(server_ref(&server, "refs/heads/stalled"), None, "[{b}]");
        assert_eq!(
            for_each_ref(git, &server, ""),
            refs_before,
            "[{b}] a stalled push moved refs"
        );
        assert_eq!(
            wait_no_incoming(&server),
            (packs_before.clone(), vec![]),
            "[{b}] a stalled push left objects"
        );
    }
}

#[test]
fn fetch_requests_beyond_the_servers_read_budget_get_503_and_then_work() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        srv.import("alice/busy", "alice", "public", &fixture("basic"));
        let mut body = pkt(format!("want {BASIC_MAIN}\n").as_bytes());
        body.extend_from_slice(b"0000");
        body.extend(pkt(b"done\n"));
        let headers = [("Content-Type", "application/x-git-upload-pack-request")];
        let path = "/alice/busy.git/git-upload-pack";
        // Other requests hold the whole budget.
        let all = u32::try_from(gitpat::http::body::UPLOAD_BUDGET_KIB).unwrap();
        let held = srv
            .app
            .upload_budget
            .clone()
            .try_acquire_many_owned(all)
            .expect("the budget");
        let r = srv.raw("POST", path, &headers, &body);
        assert_eq!(r.status, 503, "[{b}] a fetch while the budget is spent: {}", r.text());
        assert_contains(&r.text(), "The server is busy", &format!("[{b}]"));
        drop(held);
        let r = srv.raw("POST", path, &headers, &body);
        assert_eq!(
            r.status,
            200,
            "[{b}] the same fetch once the budget is back: {}",
            r.text()
        );
        assert!(r.body.windows(4).any(|w| w == b"PACK"), "[{b}] no pack in the reply");
        assert_eq!(
            srv.app.upload_budget.available_permits(),
            gitpat::http::body::UPLOAD_BUDGET_KIB,
            "[{b}] the fetch did not give its share back"
        );
        // The budget counts a gzipped request as it is once gunzipped: 8
        // MiB of flush packets fit in a few KiB of gzip, not in 1 MiB left.
        let mut big = body.clone();
        big.extend(b"0000".repeat(2 << 20));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &big).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 64 * 1024, "{}", gz.len());
        let held = srv
            .app
            .upload_budget
            .clone()
            .try_acquire_many_owned(all - 1024)
            .expect("the budget");
        let gz_headers = [
            ("Content-Type", "application/x-git-upload-pack-request"),
            ("Content-Encoding", "gzip"),
        ];
        let r = srv.raw("POST", path, &gz_headers, &gz);
        assert_eq!(r.status, 503, "[{b}] a small gzip of a large request: {}", r.text());
        drop(held);
        let r = srv.raw("POST", path, &gz_headers, &gz);
        assert_eq!(
            r.status,
            200,
            "[{b}] the gzipped fetch with the budget back: {}",
            r.text()
        );
        assert_eq!(
            srv.app.upload_budget.available_permits(),
            gitpat::http::body::UPLOAD_BUDGET_KIB,
            "[{b}] the gzipped fetch did not give its share back"
        );
    }
}
