//! Restricted tokens over Git with both real git clients, on every
//! backend: a token limited to repositories clones those and finds every
//! other one missing (git shows the not-found text), push-to-create
//! included; a token limited to refs pushes there and is refused
//! elsewhere with `token may not push to <ref>`, nothing moved, and an
//! `--atomic` push with one refused ref lands nothing.

use chrono::Utc;
use gitpat::service::git_http::NOT_FOUND;
use gitpat::service::tokens;
use gitpat::settings::Settings;

use crate::support::repo::{assert_contains, commit, for_each_ref, rev_parse, server_ref, tmp};
use crate::support::server::{fixtures, gits, gits_speaking, TestServer};

/// A token of `user` with `scopes`, limited to `repos` and `refs`.
pub fn restricted_token(
    srv: &TestServer,
    user: &str,
    scopes: &[&str],
    repos: Option<&[&str]>,
    refs: Option<&[&str]>,
) -> String {
    let conn = &mut srv.conn();
    let u = gitpat::service::users::get(conn, user).expect("the token's user");
    let settings = Settings::load(conn).expect("settings");
    let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect::<Vec<String>>());
    let (sc, repos, refs) = (list(Some(scopes)).unwrap_or_default(), list(repos), list(refs));
    let req = tokens::NewTokenRequest {
        user: &u,
        name: "restricted",
        description: None,
        scopes: &sc,
        expires_at: None,
        token: None,
        impersonation: false,
        actor: &gitpat::service::audit::Actor::cli(),
    };
    let limits = tokens::Limits {
        repositories: repos.as_deref(),
        push_ref_patterns: refs.as_deref(),
    };
    tokens::create_limited(conn, &srv.app.key, &settings, &req, limits, Utc::now())
        .unwrap_or_else(|e| panic!("create a restricted token for {user}: {e}"))
        .1
        .expose()
        .to_string()
}

#[test]
fn a_token_limited_to_repositories_finds_every_other_one_missing() {
    let basic = fixtures().join("basic");
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        for path in ["alice/tools", "alice/other", "team/app", "team/sub/deep"] {
            srv.import(path, "alice", "private", &basic);
        }
        let limited = restricted_token(
            &srv,
            "alice",
            &["write_repository"],
            Some(&["alice/tools", "team/*"]),
            None,
        );
        let deep = restricted_token(&srv, "alice", &["write_repository"], Some(&["team/**"]), None);
        let plain = srv.token("alice", &["write_repository"], None);
        // Protocol v0, and v2 (the clients' default).
        for git in gits().into_iter().chain(gits_speaking(None)) {
            let ctx = git.context(srv.backend());
            let work = tmp();
            let url = |t: &str, path: &str| srv.url_as("alice", t, &format!("/{path}.git"));
            // Where the patterns reach: clones, whatever the URL's case.
            for (t, path) in [
                (&limited, "alice/tools"),
                (&limited, "ALICE/Tools"),
                (&limited, "team/app"),
                (&deep, "team/app"),
                (&deep, "team/sub/deep"),
                (&plain, "alice/other"),
            ] {
                let dir = tmp();
                git.ok(dir.path(), &["clone", "-q", &url(t, path), "c"]);
                assert_eq!(
                    rev_parse(&git, &dir.path().join("c"), "HEAD"),
                    rev_parse(&git, &basic, "HEAD"),
                    "{ctx} {path}"
                );
            }
            // Elsewhere: as if the repository did not exist, pull and push.
            for (t, path) in [
                (&limited, "alice/other"),
                (&limited, "team/sub/deep"),
                (&limited, "alice/missing"),
                (&deep, "alice/tools"),
                (&deep, "team"),
            ] {
                let err = git.fails(work.path(), &["clone", "-q", &url(t, path), "x"]);
                assert_contains(&err, NOT_FOUND, &format!("{ctx} clone {path}"));
                assert!(!work.path().join("x").exists(), "{ctx} {path}");
            }
            let src = tmp();
            git.ok(src.path(), &["clone", "-q", &url(&plain, "alice/other"), "."]);
            commit(&git, src.path(), "f.txt", "x\n", "a change");
            let before = for_each_ref(&git, &srv.repo_dir("alice/other"), "");
            let err = git.fails(src.path(), &["push", "-q", &url(&limited, "alice/other"), "HEAD:main"]);
            assert_contains(&err, NOT_FOUND, &format!("{ctx} push"));
            assert_eq!(for_each_ref(&git, &srv.repo_dir("alice/other"), ""), before, "{ctx}");
            // Push to create outside the patterns: not found, nothing made;
            // inside them it creates.
            let err = git.fails(src.path(), &["push", "-q", &url(&limited, "alice/new"), "HEAD:main"]);
            assert_contains(&err, NOT_FOUND, &format!("{ctx} push to create"));
            assert!(srv.project("alice/new").is_none(), "{ctx} a repository was created");
            let err = git.fails(src.path(), &["ls-remote", &url(&limited, "alice/new")]);
            assert_contains(&err, NOT_FOUND, &format!("{ctx} ls-remote"));
        }
        // A token whose patterns name the new path creates it by a push.
        let creator = restricted_token(&srv, "alice", &["write_repository"], Some(&["alice/made"]), None);
        let git = &gits()[0];
        let src = tmp();
        git.ok(src.path(), &["init", "-q", "."]);
        let head = commit(git, src.path(), "f.txt", "x\n", "first");
        let url = srv.url_as("alice", &creator, "/alice/made.git");
        git.ok(src.path(), &["push", "-q", &url, "HEAD:main"]);
        assert_eq!(server_ref(&srv.repo_dir("alice/made"), "refs/heads/main"), Some(head));
    }
}

#[test]
fn a_token_limited_to_refs_pushes_there_only() {
    let basic = fixtures().join("basic");
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = restricted_token(
            &srv,
            "alice",
            &["write_repository"],
            None,
            Some(&["refs/heads/wip/*", "refs/tags/v*"]),
        );
        for (gi, git) in gits().iter().enumerate() {
            let ctx = git.context(srv.backend());
            let path = format!("alice/tools{gi}");
            srv.import(&path, "alice", "private", &basic);
            let server = srv.repo_dir(&path);
            let url = srv.url_as("alice", &t, &format!("/{path}.git"));
            let work = tmp();
            git.ok(work.path(), &["clone", "-q", &url, "."]);
            let main = rev_parse(git, work.path(), "HEAD");
            let new = commit(git, work.path(), "f.txt", "one\n", "a change");

            // Allowed refs: a branch under wip/ (at any depth), a tag.
            git.ok(work.path(), &["push", "-q", "origin", "HEAD:refs/heads/wip/a/b"]);
            assert_eq!(server_ref(&server, "refs/heads/wip/a/b"), Some(new.clone()), "{ctx}");
            git.ok(work.path(), &["tag", "v1"]);
            git.ok(work.path(), &["push", "-q", "origin", "v1"]);
            assert_eq!(server_ref(&server, "refs/tags/v1"), Some(new.clone()), "{ctx}");

            // Any other: refused with the reason, nothing moved (a
            // deletion, a new branch, a tag, the default branch).
            let before = for_each_ref(git, &server, "");
            for (spec, name) in [
                ("HEAD:main", "refs/heads/main"),
                ("HEAD:refs/heads/other", "refs/heads/other"),
                (":refs/heads/topic", "refs/heads/topic"),
                ("HEAD:refs/tags/x1", "refs/tags/x1"),
                ("HEAD:refs/heads/wipe/x", "refs/heads/wipe/x"),
            ] {
                let out = git.run(work.path(), &["push", "--porcelain", "origin", spec]);
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(!out.status.success(), "{ctx} {spec} was let through: {stdout}");
                assert_contains(
                    &stdout,
                    &format!("[remote rejected] (token may not push to {name})"),
                    &format!("{ctx} {spec}"),
                );
            }
            assert_eq!(
                for_each_ref(git, &server, ""),
                before,
                "{ctx} a refused push moved a ref"
            );
            assert_eq!(server_ref(&server, "refs/heads/main"), Some(main.clone()), "{ctx}");
            // Deleting an allowed ref is allowed.
            git.ok(work.path(), &["push", "-q", "origin", ":refs/heads/wip/a/b"]);
            assert_eq!(server_ref(&server, "refs/heads/wip/a/b"), None, "{ctx}");

            // Not atomic: the allowed ref lands, the other is refused.
            let out = git.run(
                work.path(),
                &[
                    "push",
                    "--porcelain",
                    "origin",
                    "HEAD:refs/heads/wip/x",
                    "HEAD:refs/heads/other",
                ],
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(!out.status.success(), "{ctx} {stdout}");
            assert_eq!(server_ref(&server, "refs/heads/wip/x"), Some(new.clone()), "{ctx}");
            assert_eq!(server_ref(&server, "refs/heads/other"), None, "{ctx}");

            // Atomic: one refused ref and the whole push is refused.
            let out = git.run(
                work.path(),
                &[
                    "push",
                    "--atomic",
                    "--porcelain",
                    "origin",
                    "HEAD:refs/heads/wip/y",
                    "HEAD:refs/heads/other",
                ],
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(!out.status.success(), "{ctx} atomic: {stdout}");
            assert_contains(
                &stdout,
                "[remote rejected] (token may not push to refs/heads/other)",
                &format!("{ctx} atomic"),
            );
            assert_contains(&stdout, "(atomic push failure)", &format!("{ctx} atomic"));
            assert_eq!(server_ref(&server, "refs/heads/wip/y"), None, "{ctx} atomic");
            assert_eq!(server_ref(&server, "refs/heads/other"), None, "{ctx} atomic");
        }
    }
}
