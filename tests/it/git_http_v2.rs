//! Protocol v2 with the real git clients, on their default protocol and
//! forced to `protocol.version=2`: the capability advertisement, ls-refs,
//! fetch (clone, fetch after a push, shallow: see git_http.rs), partial
//! clone with lazy fetches, an empty repository's default branch, and raw
//! v2 requests, well-formed and not. git's own upload-pack over file://
//! (which speaks v2 as well) is the oracle wherever one is needed.

use std::path::{Path, PathBuf};

use chrono::Utc;
use gitpat::service::git_http::NOT_FOUND;
use gitpat::service::repos;

use crate::support::server::{basic, fixtures, gits_speaking, Git, RawResponse, TestServer};

const MAIN: &str = "5fa2e434c6aefedc8d01125a22199c04c2234e67";
const ENGINES: [&str; 2] = ["git", "libgit2"];

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Both binaries on their default protocol, then both forced to v2.
fn v2_gits() -> Vec<Git> {
    let mut v = gits_speaking(None);
    v.extend(gits_speaking(Some("2")));
    v
}

fn pkt(line: &str) -> Vec<u8> {
    match line {
        "<flush>" => b"0000".to_vec(),
        "<delim>" => b"0001".to_vec(),
        _ => {
            let mut out = format!("{:04x}", line.len() + 5).into_bytes();
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            out
        }
    }
}

fn request(lines: &[&str]) -> Vec<u8> {
    lines.iter().flat_map(|l| pkt(l)).collect()
}

/// The pkt-lines of a reply up to the first non-text packet (the pack),
/// as strings; `<flush>` / `<delim>` for the special packets.
fn reply_lines(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let Ok(len) = usize::from_str_radix(std::str::from_utf8(&rest[..4]).unwrap_or("zz"), 16) else {
            out.push(format!("<bad {:?}>", String::from_utf8_lossy(&rest[..4])));
            break;
        };
        match len {
            0 => out.push("<flush>".into()),
            1 => out.push("<delim>".into()),
            2 => out.push("<response-end>".into()),
            _ => {
                let data = &rest[4..len.min(rest.len())];
                if data.first() == Some(&1) {
                    out.push("<band 1>".into());
                    break;
                }
                out.push(String::from_utf8_lossy(data).trim_end_matches('\n').to_string());
            }
        }
        rest = &rest[len.max(4).min(rest.len())..];
    }
    out
}

/// Runs git with curl tracing and returns (GET count, POST count, stderr).
fn count_requests(git: &Git, dir: &Path, args: &[&str]) -> (usize, usize, String) {
    let out = git.run_with(
        dir,
        args,
        &[("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{} git {args:?} failed:\n{err}", git.label());
    let gets = err.lines().filter(|l| l.contains("=> Send header: GET ")).count();
    let posts = err.lines().filter(|l| l.contains("=> Send header: POST ")).count();
    (gets, posts, err)
}

/// Whether the client spoke v2 to the server, from a packet trace.
fn spoke_v2(git: &Git, dir: &Path, args: &[&str]) -> bool {
    let out = git.run_with(dir, args, &[("GIT_TRACE_PACKET", "1")], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} git {args:?} failed:\n{err}", git.label());
    err.lines().any(|l| l.contains("< version 2"))
}

fn refs_of(git: &Git, dir: &Path, pattern: &str) -> String {
    git.ok(dir, &["for-each-ref", "--format=%(objectname) %(refname)", pattern])
}

fn missing_objects(git: &Git, dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = git
        .ok(dir, &["rev-list", "--objects", "--all", "--missing=print"])
        .lines()
        .filter_map(|l| l.strip_prefix('?').map(str::to_string))
        .collect();
    v.sort();
    v
}

fn fsck(git: &Git, dir: &Path) {
    git.ok(dir, &["fsck", "--no-progress"]);
}

#[test]
fn the_v2_advertisement_and_v0_without_the_header() {
    for srv in TestServer::each() {
        let ctx = format!("[{}]", srv.backend());
        srv.user("alice", false, None);
        srv.import("alice/adv", "alice", "public", &fixture("basic"));
        let url = "/alice/adv.git/info/refs?service=git-upload-pack";
        let r = srv.raw("GET", url, &[("Git-Protocol", "version=2")], b"");
        assert_eq!(r.status, 200, "{ctx}");
        assert_eq!(
            r.header("content-type"),
            Some("application/x-git-upload-pack-advertisement"),
            "{ctx}"
        );
        let lines = reply_lines(&r.body);
        assert_eq!(lines[0], "version 2", "{ctx} no `# service=` line in v2: {lines:?}");
        assert!(lines[1].starts_with("agent=gitpat/"), "{ctx} {lines:?}");
        assert_eq!(
            &lines[2..6],
            [
                "ls-refs=unborn",
                "fetch=shallow wait-for-done filter",
                "server-option",
                "object-format=sha1"
            ],
            "{ctx}"
        );
        assert_eq!(lines[6], "object-info", "{ctx}");
        assert!(lines[7].starts_with("session-id="), "{ctx} {lines:?}");
        assert_eq!(lines[8..], ["<flush>"], "{ctx}");
        // Several key=value pairs, as git sends them.
        let r = srv.raw("GET", url, &[("Git-Protocol", "object-format=sha1:version=2")], b"");
        assert_eq!(reply_lines(&r.body)[0], "version 2", "{ctx}");
        // No header, or another version: v0.
        for h in [None, Some("version=1"), Some("version=0")] {
            let headers: Vec<(&str, &str)> = h.map(|v| ("Git-Protocol", v)).into_iter().collect();
            let r = srv.raw("GET", url, &headers, b"");
            assert!(
                r.body.starts_with(b"001e# service=git-upload-pack\n0000"),
                "{ctx} {h:?}"
            );
            assert!(
                String::from_utf8_lossy(&r.body).contains(&format!("{MAIN} HEAD\0")),
                "{ctx}"
            );
        }
        // receive-pack stays v0 whatever the client asks.
        let r = srv.raw(
            "GET",
            "/alice/adv.git/info/refs?service=git-receive-pack",
            &[("Git-Protocol", "version=2")],
            b"",
        );
        assert_eq!(r.status, 401, "{ctx} a push needs credentials");
    }
    // The libgit2 engine cannot filter: it does not say it can.
    for srv in TestServer::each_with_engine("libgit2") {
        srv.user("alice", false, None);
        srv.import("alice/adv", "alice", "public", &fixture("basic"));
        let r = srv.raw(
            "GET",
            "/alice/adv.git/info/refs?service=git-upload-pack",
            &[("Git-Protocol", "version=2")],
            b"",
        );
        assert!(
            reply_lines(&r.body).contains(&"fetch=shallow wait-for-done".to_string()),
            "[{}] {:?}",
            srv.backend(),
            reply_lines(&r.body)
        );
    }
}

#[test]
fn ls_remote_is_one_get_and_one_post_and_matches_git() {
    let basic_dir = fixture("basic");
    let oracle = file_url(&basic_dir);
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        srv.import("alice/pub", "alice", "public", &basic_dir);
        let url = srv.url("/alice/pub.git");
        for git in v2_gits() {
            let ctx = git.context(srv.backend());
            let work = tmp();
            let w = work.path();
            let (gets, posts, _) = count_requests(&git, w, &["ls-remote", &url]);
            assert_eq!((gets, posts), (1, 1), "{ctx} ls-remote: one GET, one POST");
            assert!(spoke_v2(&git, w, &["ls-remote", &url]), "{ctx} not v2");
            for args in [
                vec!["ls-remote"],
                vec!["ls-remote", "--symref"],
                vec!["ls-remote", "--heads"],
                vec!["ls-remote", "--tags"],
                vec!["ls-remote", "--refs"],
            ] {
                let mut ours = args.clone();
                ours.push(&url);
                let mut theirs = args.clone();
                theirs.push(&oracle);
                assert_eq!(git.ok(w, &ours), git.ok(w, &theirs), "{ctx} {args:?}");
            }
            // Patterns become ref-prefix arguments.
            for pats in [vec!["main"], vec!["refs/tags/*"], vec!["feature", "topic", "v0.1"]] {
                let mut ours = vec!["ls-remote", url.as_str()];
                ours.extend(&pats);
                let mut theirs = vec!["ls-remote", oracle.as_str()];
                theirs.extend(&pats);
                let got = git.ok(w, &ours);
                assert!(!got.is_empty(), "{ctx} {pats:?}");
                assert_eq!(got, git.ok(w, &theirs), "{ctx} {pats:?}");
            }
            // A server option is accepted (and ignored).
            let got = git.ok(w, &["ls-remote", "-o", "any=thing", &url, "main"]);
            assert_eq!(got, format!("{MAIN}\trefs/heads/main\n"), "{ctx}");
        }
    }
}

#[test]
fn clone_and_fetch_over_v2_with_both_engines() {
    let basic_dir = fixture("basic");
    for srv in ENGINES.iter().flat_map(|e| TestServer::each_with_engine(e)) {
        let engine = srv.app.engine.name();
        srv.user("alice", false, None);
        let rtok = srv.token("alice", &["read_repository"], None);
        let wtok = srv.token("alice", &["write_repository"], None);
        for (gi, git) in v2_gits().iter().enumerate() {
            let ctx = git.context(&format!("{} {engine}", srv.backend()));
            let path = format!("alice/v2-{gi}");
            srv.import(&path, "alice", "private", &basic_dir);
            let url = srv.url_as("alice", &rtok, &format!("/{path}.git"));
            let work = tmp();
            let w = work.path();
            assert!(spoke_v2(git, w, &["clone", "-q", &url, "c"]), "{ctx} clone not v2");
            let c = w.join("c");
            assert_eq!(
                refs_of(git, &c, "refs/remotes/origin/").replace(&format!("{MAIN} refs/remotes/origin/HEAD\n"), ""),
                refs_of(git, &basic_dir, "refs/heads/").replace(" refs/heads/", " refs/remotes/origin/"),
                "{ctx} every branch"
            );
            assert_eq!(
                refs_of(git, &c, "refs/tags/"),
                refs_of(git, &basic_dir, "refs/tags/"),
                "{ctx}"
            );
            assert_eq!(git.ok(&c, &["rev-parse", "HEAD"]).trim(), MAIN, "{ctx}");
            fsck(git, &c);

            // Another clone pushes (receive-pack: v0); the first fetches
            // with haves (negotiation with acknowledgments) and pulls.
            let wurl = srv.url_as("alice", &wtok, &format!("/{path}.git"));
            git.ok(w, &["clone", "-q", &wurl, "p"]);
            let p = w.join("p");
            std::fs::write(p.join("v2.txt"), "over v2\n").unwrap();
            git.ok(&p, &["add", "v2.txt"]);
            git.ok(&p, &["commit", "-q", "-m", "for a v2 fetch"]);
            git.ok(&p, &["tag", "-a", "-m", "annotated", "v2-tag"]);
            git.ok(&p, &["push", "-q", "origin", "main", "v2-tag"]);
            let new = git.ok(&p, &["rev-parse", "HEAD"]).trim().to_string();
            // Enough local commits for several rounds of haves (and a
            // gzipped request body).
            for i in 0..40 {
                std::fs::write(c.join("local.txt"), format!("{i}\n")).unwrap();
                git.ok(&c, &["add", "local.txt"]);
                git.ok(&c, &["commit", "-q", "-m", &format!("local {i}")]);
            }
            assert!(
                spoke_v2(git, &c, &["fetch", "-q", "--tags", "origin"]),
                "{ctx} fetch not v2"
            );
            assert_eq!(git.ok(&c, &["rev-parse", "origin/main"]).trim(), new, "{ctx}");
            assert_eq!(
                git.ok(&c, &["rev-parse", "v2-tag^{commit}"]).trim(),
                new,
                "{ctx} the pushed tag"
            );
            fsck(git, &c);
            // A fetch with nothing new: no pack, no error.
            let out = git.ok_stderr(&c, &["fetch", "origin"]);
            assert!(!out.contains("fatal"), "{ctx} {out}");
        }
    }
}

#[test]
fn partial_clones_fetch_what_they_lack_with_the_same_token() {
    let basic_dir = fixture("basic");
    let work = tmp();
    // The oracle: git's own upload-pack, allowed to filter.
    let oracle = work.path().join("oracle.git");
    std::fs::create_dir_all(&oracle).unwrap();
    let git0 = &gits_speaking(None)[0];
    git0.ok(
        work.path(),
        &["clone", "-q", "--mirror", &file_url(&basic_dir), "oracle.git"],
    );
    git0.ok(&oracle, &["config", "uploadpack.allowFilter", "true"]);
    git0.ok(&oracle, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["read_repository"], None);
        for (gi, git) in v2_gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let path = format!("alice/partial{gi}");
            srv.import(&path, "alice", "private", &basic_dir);
            let url = srv.url_as("alice", &tok, &format!("/{path}.git"));
            let w = tmp();
            let w = w.path();
            // sparse:oid names a blob of sparse-checkout patterns: any
            // blob of the repository will do for the comparison.
            let sparse = format!(
                "sparse:oid={}",
                git.ok(&basic_dir, &["rev-parse", "main:README"]).trim()
            );
            for filter in [
                "blob:none",
                "tree:0",
                "blob:limit=15",
                "combine:blob:none+tree:1",
                "object:type=commit",
                sparse.as_str(),
            ] {
                let name = filter.replace([':', '+', '='], "-");
                let (ours, theirs) = (format!("{name}-s"), format!("{name}-o"));
                let f = format!("--filter={filter}");
                git.ok(w, &["clone", "-q", "--no-checkout", &f, &url, &ours]);
                git.ok(w, &["clone", "-q", "--no-checkout", &f, &file_url(&oracle), &theirs]);
                let missing = missing_objects(git, &w.join(&ours));
                assert!(!missing.is_empty(), "{ctx} {filter}: nothing was left out");
                assert_eq!(missing, missing_objects(git, &w.join(&theirs)), "{ctx} {filter}");
                // The checkout fetches what it lacks, with the token of the
                // clone's URL.
                git.ok(&w.join(&ours), &["checkout", "-q", "main"]);
                assert_eq!(git.ok(&w.join(&ours), &["status", "--porcelain"]), "", "{ctx} {filter}");
                let head_tree = git.ok(&w.join(&ours), &["rev-parse", "HEAD^{tree}"]);
                assert_eq!(head_tree, git.ok(&basic_dir, &["rev-parse", "main^{tree}"]), "{ctx}");
                assert_eq!(
                    git.ok(&w.join(&ours), &["cat-file", "-p", "HEAD:README"]),
                    git.ok(&basic_dir, &["cat-file", "-p", "main:README"]),
                    "{ctx} {filter}"
                );
                fsck(git, &w.join(&ours));
            }
            // Without the token the lazy fetch fails: the repository is
            // private.
            git.ok(w, &["clone", "-q", "--no-checkout", "--filter=blob:none", &url, "anon"]);
            let anon = w.join("anon");
            git.ok(
                &anon,
                &["remote", "set-url", "origin", &srv.url(&format!("/{path}.git"))],
            );
            let err = git.fails(&anon, &["checkout", "-q", "main"]);
            assert!(err.contains("could not read Username"), "{ctx} {err}");
        }
    }
}

#[test]
fn an_empty_repository_clone_gets_the_default_branch() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["write_repository"], None);
        let req = repos::NewRepoRequest {
            path: "alice/empty",
            name: None,
            owner: Some("alice"),
            visibility: Some("private"),
            default_branch: Some("trunk"),
            description: None,
            import: None,
        };
        repos::create(&mut srv.conn(), &srv.app.store, &req, Utc::now()).expect("create");
        let url = srv.url_as("alice", &tok, "/alice/empty.git");
        for git in v2_gits() {
            let ctx = git.context(srv.backend());
            let work = tmp();
            let err = git.ok_stderr(work.path(), &["clone", &url, "e"]);
            assert!(err.contains("empty repository"), "{ctx} {err}");
            let e = work.path().join("e");
            // The test environment's init.defaultBranch is main: trunk
            // can only come from the server's `unborn HEAD`.
            assert_eq!(
                git.ok(&e, &["symbolic-ref", "HEAD"]).trim(),
                "refs/heads/trunk",
                "{ctx}"
            );
        }
    }
}

/// POSTs a v2 request to upload-pack.
fn v2_post(srv: &TestServer, path: &str, auth: Option<&str>, body: &[u8]) -> RawResponse {
    let mut headers = vec![
        ("Content-Type", "application/x-git-upload-pack-request"),
        ("Git-Protocol", "version=2"),
    ];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    srv.raw("POST", &format!("/{path}.git/git-upload-pack"), &headers, body)
}

#[test]
fn raw_v2_commands_well_formed_and_not() {
    let basic_dir = fixture("basic");
    let git = &gits_speaking(None)[0];
    for srv in TestServer::each() {
        let ctx = format!("[{}]", srv.backend());
        srv.user("alice", false, None);
        srv.user("mallory", false, None);
        srv.import("alice/raw", "alice", "private", &basic_dir);
        let tok = srv.token("alice", &["read_repository"], None);
        let auth = basic("alice", &tok);
        let a = Some(auth.as_str());
        let before = refs_of(git, &srv.repo_dir("alice/raw"), "");

        // object-info: sizes as git reports them; an unknown id gets none.
        let blob = git.ok(&basic_dir, &["rev-parse", "main:README"]).trim().to_string();
        let size = git.ok(&basic_dir, &["cat-file", "-s", &blob]).trim().to_string();
        let absent = "0123456789abcdef0123456789abcdef01234567";
        let r = v2_post(
            &srv,
            "alice/raw",
            a,
            &request(&[
                "command=object-info",
                "object-format=sha1",
                "<delim>",
                "size",
                &format!("oid {blob}"),
                &format!("oid {MAIN}"),
                &format!("oid {absent}"),
                "<flush>",
            ]),
        );
        let commit_size = git.ok(&basic_dir, &["cat-file", "-s", MAIN]).trim().to_string();
        assert_eq!(
            reply_lines(&r.body),
            [
                "size".to_string(),
                format!("{blob} {size}"),
                format!("{MAIN} {commit_size}"),
                format!("{absent} "),
                "<flush>".to_string()
            ],
            "{ctx} object-info"
        );

        // want-ref: the wanted-refs section, then the pack.
        let r = v2_post(
            &srv,
            "alice/raw",
            a,
            &request(&[
                "command=fetch",
                "server-option=ignored",
                "<delim>",
                "want-ref refs/heads/main",
                "no-progress",
                "done",
                "<flush>",
            ]),
        );
        assert_eq!(
            reply_lines(&r.body),
            [
                "wanted-refs",
                &format!("{MAIN} refs/heads/main"),
                "<delim>",
                "packfile",
                "<band 1>"
            ],
            "{ctx} want-ref"
        );
        assert!(r.body.ends_with(b"0000"), "{ctx} the pack ends with a flush");

        // Negotiation: a have the server holds is acknowledged; with
        // everything wanted reachable from it, ready, then the pack...
        let parent = git.ok(&basic_dir, &["rev-parse", "main^"]).trim().to_string();
        let fetch = |extra: &[&str]| {
            let mut lines = vec![
                "command=fetch".to_string(),
                "<delim>".to_string(),
                format!("want {MAIN}"),
                format!("have {parent}"),
                "no-progress".to_string(),
            ];
            lines.extend(extra.iter().map(|s| s.to_string()));
            lines.push("<flush>".into());
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            reply_lines(&v2_post(&srv, "alice/raw", a, &request(&lines)).body)
        };
        assert_eq!(
            fetch(&[]),
            [
                "acknowledgments",
                &format!("ACK {parent}"),
                "ready",
                "<delim>",
                "packfile",
                "<band 1>"
            ],
            "{ctx}"
        );
        // ... unless the client waits for its own done.
        assert_eq!(
            fetch(&["wait-for-done"]),
            ["acknowledgments", &format!("ACK {parent}"), "<flush>"],
            "{ctx} wait-for-done"
        );
        // With done: no acknowledgments section at all.
        assert_eq!(fetch(&["done"]), ["packfile", "<band 1>"], "{ctx} done");
        // Unknown haves only: NAK, and no pack yet.
        let r = v2_post(
            &srv,
            "alice/raw",
            a,
            &request(&[
                "command=fetch",
                "<delim>",
                &format!("want {MAIN}"),
                &format!("have {absent}"),
                "<flush>",
            ]),
        );
        assert_eq!(reply_lines(&r.body), ["acknowledgments", "NAK", "<flush>"], "{ctx}");

        // Malformed requests: an ERR packet (git shows it as "remote
        // error: ...") or a 400, never a hang, a 500 or a pack.
        let not_ours = format!("not our ref {absent}");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "unknown command",
                request(&["command=frobnicate", "<delim>", "<flush>"]),
                "invalid command 'frobnicate'",
            ),
            (
                "no command",
                request(&["agent=x", "<delim>", "<flush>"]),
                "no command requested",
            ),
            (
                "two commands",
                request(&["command=ls-refs", "command=fetch", "<flush>"]),
                "command supplied twice",
            ),
            (
                "bad ls-refs argument",
                request(&["command=ls-refs", "<delim>", "bogus", "<flush>"]),
                "unexpected line: 'bogus'",
            ),
            (
                "bad fetch argument",
                request(&["command=fetch", "<delim>", "frob", "<flush>"]),
                "unexpected 'frob'",
            ),
            (
                "missing delimiter",
                request(&["command=fetch", &format!("want {MAIN}"), "done", "<flush>"]),
                "unexpected capability 'want",
            ),
            (
                "missing flush",
                request(&["command=fetch", "<delim>", &format!("want {MAIN}"), "done"]),
                "expected flush",
            ),
            (
                "bad object id",
                request(&["command=fetch", "<delim>", "want 1234", "done", "<flush>"]),
                "expected to get object ID",
            ),
            (
                "want not ours",
                request(&["command=fetch", "<delim>", &format!("want {absent}"), "done", "<flush>"]),
                &not_ours,
            ),
            (
                "unknown want-ref",
                request(&[
                    "command=fetch",
                    "<delim>",
                    "want-ref refs/heads/nope",
                    "done",
                    "<flush>",
                ]),
                "unknown ref refs/heads/nope",
            ),
            (
                "bad filter",
                request(&[
                    "command=fetch",
                    "<delim>",
                    &format!("want {MAIN}"),
                    "filter blob:lots",
                    "done",
                    "<flush>",
                ]),
                "invalid filter-spec 'blob:lots'",
            ),
            (
                "sha256",
                request(&["command=ls-refs", "object-format=sha256", "<delim>", "<flush>"]),
                "mismatched object format",
            ),
            (
                "deepen and deepen-since",
                request(&[
                    "command=fetch",
                    "<delim>",
                    &format!("want {MAIN}"),
                    "deepen 1",
                    "deepen-since 1700000000",
                    "done",
                    "<flush>",
                ]),
                "cannot be used together",
            ),
        ];
        for (what, body, text) in cases {
            let r = v2_post(&srv, "alice/raw", a, &body);
            assert_eq!(r.status, 200, "{ctx} {what}");
            let lines = reply_lines(&r.body);
            assert_eq!(lines.len(), 1, "{ctx} {what}: {lines:?}");
            assert!(
                lines[0].starts_with("ERR ") && lines[0].contains(text),
                "{ctx} {what}: {lines:?}"
            );
        }
        for (what, body) in [
            ("bad framing", b"zzzz".to_vec()),
            ("truncated packet", b"0032command=ls".to_vec()),
        ] {
            let r = v2_post(&srv, "alice/raw", a, &body);
            assert_eq!(r.status, 400, "{ctx} {what}");
            assert!(
                r.text().contains("protocol error") || r.text().contains("hung up"),
                "{ctx} {what}: {}",
                r.text()
            );
        }
        // A lone flush ends the session quietly.
        let r = v2_post(&srv, "alice/raw", a, b"0000");
        assert_eq!((r.status, r.body.len()), (200, 0), "{ctx}");

        // Every POST is authenticated and authorized, as in v0.
        let ls = request(&["command=ls-refs", "<delim>", "<flush>"]);
        assert_eq!(v2_post(&srv, "alice/raw", None, &ls).status, 401, "{ctx} anonymous");
        let user_only = srv.token("alice", &["read_user"], None);
        let r = v2_post(&srv, "alice/raw", Some(&basic("alice", &user_only)), &ls);
        assert_eq!(r.status, 403, "{ctx} read_user: {}", r.text());
        let mtok = srv.token("mallory", &["read_repository"], None);
        let r = v2_post(&srv, "alice/raw", Some(&basic("mallory", &mtok)), &ls);
        assert_eq!((r.status, r.text().trim_end()), (404, NOT_FOUND), "{ctx} non-member");
        let r = v2_post(&srv, "alice/raw", a, &ls);
        assert!(
            reply_lines(&r.body).contains(&format!("{MAIN} refs/heads/main")),
            "{ctx}"
        );

        // Nothing moved, and the server still serves a clone.
        assert_eq!(refs_of(git, &srv.repo_dir("alice/raw"), ""), before, "{ctx}");
        let work = tmp();
        git.ok(
            work.path(),
            &["clone", "-q", &srv.url_as("alice", &tok, "/alice/raw.git"), "after"],
        );
        fsck(git, &work.path().join("after"));
    }
}
