//! Leaked-token push protection (issue 18, item 2) with the real git
//! clients (2.39 and 2.47), on both engines and both backends: a push that
//! holds a live token of the instance (in a file, a commit message, a tag
//! message, a thin pack's new blob) is refused with `ng` for every ref and
//! nothing written, its `remote:` lines name the token's id and name and
//! where it is, never the token; a revoked or expired token's string is no
//! leak; public and internal repositories revoke the token; the push option
//! `secret_push_protection.skip_all` lets a private push land; the
//! settings `revoke_leaked_tokens` and `secret_push_protection_enabled`.

use std::path::Path;

use chrono::Utc;
use diesel::prelude::*;

use gitpat::db::schema::personal_access_tokens as pat;
use gitpat::service::tokens;
use gitpat::settings::Settings;

use crate::support::repo::{assert_contains, commit, for_each_ref, remote_lines, rev_parse, tmp, wait_no_incoming};
use crate::support::server::{gits, Git, TestServer};
use crate::support::Gitpat;

const ENGINES: [&str; 2] = ["git", "libgit2"];
const REFUSED: &str = "secret push protection: a live access token is in this push";

/// A token of `user` named `name`: its secret and id.
fn token_named(srv: &TestServer, user: &str, name: &str) -> (String, i64) {
    let conn = &mut srv.conn();
    let u = gitpat::service::users::get(conn, user).expect("the token's user");
    let settings = Settings::load(conn).expect("settings");
    let scopes = vec!["api".to_string()];
    let req = tokens::NewTokenRequest {
        user: &u,
        name,
        description: None,
        scopes: &scopes,
        expires_at: None,
        token: None,
        impersonation: false,
        actor: &gitpat::service::audit::Actor::cli(),
    };
    let (row, secret) = tokens::create(conn, &srv.app.key, &settings, &req, Utc::now()).expect("create a token");
    (secret.expose().to_string(), row.id)
}

/// The audit events of a leak of token `id`: (author, revoked, skipped).
/// Each must name the pusher's address (the tests push from loopback).
fn leak_events(srv: &TestServer, id: i64) -> Vec<(String, bool, bool)> {
    use gitpat::db::schema::audit_events as ae;
    let rows: Vec<(String, Option<String>, String)> = ae::table
        .filter(ae::event_name.eq(gitpat::service::leaks::LEAK_EVENT))
        .filter(ae::target_id.eq(Some(id)))
        .select((ae::author_name, ae::ip_address, ae::details))
        .load(&mut *srv.conn())
        .unwrap();
    rows.into_iter()
        .map(|(author, ip, details)| {
            assert_eq!(ip.as_deref(), Some("127.0.0.1"), "the leak event's client address");
            let d: serde_json::Value = serde_json::from_str(&details).unwrap();
            (author, d["revoked"] == true, d["skipped"] == true)
        })
        .collect()
}

fn revoked(srv: &TestServer, id: i64) -> bool {
    gitpat::db::token::find(&mut srv.conn(), id).unwrap().unwrap().revoked
}

/// The `leaked` notices queued for token `id` (it has its `created` one too).
fn notices(srv: &TestServer, id: i64) -> Vec<String> {
    gitpat::db::notification::list_for_token(&mut srv.conn(), id)
        .unwrap()
        .into_iter()
        .map(|n| n.kind)
        .filter(|k| k == "leaked")
        .collect()
}

/// The server's people: alice pushes (her own token), bob's token is the
/// one that leaks.
struct People {
    pusher: String,
    leaked: String,
    leaked_id: i64,
}

fn people(srv: &TestServer) -> People {
    srv.user("alice", false, None);
    srv.user("bob", false, None);
    let pusher = srv.token("alice", &["write_repository"], None);
    let (leaked, leaked_id) = token_named(srv, "bob", "bob's deploy key");
    People {
        pusher,
        leaked,
        leaked_id,
    }
}

/// A repository of alice at `path` with `visibility`, holding one commit
/// (`notes.txt`, long enough that a change to it goes as a delta), and a
/// clone of it to work in: its URL and the clone.
fn seeded(srv: &TestServer, git: &Git, p: &People, path: &str, visibility: &str) -> (String, tempfile::TempDir) {
    srv.repo(path, "alice", visibility);
    let url = srv.url_as("alice", &p.pusher, &format!("/{path}.git"));
    let work = tmp();
    git.ok(work.path(), &["init", "-q", "."]);
    let notes: String = (0..300).map(|i| format!("line {i}: nothing secret here\n")).collect();
    commit(git, work.path(), "notes.txt", &notes, "first");
    git.ok(work.path(), &["push", "-q", &url, "main"]);
    // As a developer would have it: fetched from the server.
    git.ok(work.path(), &["fetch", "-q", &url, "main"]);
    (url, work)
}

/// Where a case puts the token.
#[derive(Debug, Clone, Copy)]
enum Case {
    NewFile,
    CommitMessage,
    TagMessage,
    ThinPackBlob,
}

const CASES: [Case; 4] = [Case::NewFile, Case::CommitMessage, Case::TagMessage, Case::ThinPackBlob];

/// Makes the case's commits in `work` with `tok`: the refspecs to push,
/// the refs they name on the server, and where the pusher is told the
/// token is.
fn make_case(case: Case, git: &Git, work: &Path, tok: &str) -> (Vec<String>, Vec<String>, String) {
    let both = |head: &str| {
        (
            vec!["main".to_string(), "HEAD:refs/heads/side".to_string()],
            vec!["refs/heads/main".to_string(), "refs/heads/side".to_string()],
            head.to_string(),
        )
    };
    match case {
        Case::NewFile => {
            let head = commit(git, work, "config/ci.yml", &format!("deploy:\n  token: {tok}\n"), "ci");
            let (s, r, _) = both(&head);
            (s, r, format!("in config/ci.yml at commit {head}"))
        }
        Case::CommitMessage => {
            let head = commit(
                git,
                work,
                "README",
                "hello\n",
                &format!("deploy with {tok} from now on"),
            );
            let (s, r, _) = both(&head);
            (s, r, format!("in the message of commit {head}"))
        }
        Case::TagMessage => {
            commit(git, work, "README", "release\n", "a clean commit");
            git.ok(
                work,
                &["tag", "-a", "v1", "-m", &format!("v1\n\nthe deploy token is {tok}\n")],
            );
            let tag = rev_parse(git, work, "v1");
            (
                vec!["main".to_string(), "refs/tags/v1".to_string()],
                vec!["refs/heads/main".to_string(), "refs/tags/v1".to_string()],
                format!("in the message of tag v1 ({tag})"),
            )
        }
        Case::ThinPackBlob => {
            let mut notes = std::fs::read_to_string(work.join("notes.txt")).unwrap();
            notes.push_str(&format!("and the token: {tok}\n"));
            let head = commit(git, work, "notes.txt", &notes, "more notes");
            let (s, r, _) = both(&head);
            (s, r, format!("in notes.txt at commit {head}"))
        }
    }
}

/// The server's refs and pack folder, to compare before and after.
fn state(git: &Git, dir: &Path) -> (Vec<String>, Vec<String>) {
    let (packs, incoming) = wait_no_incoming(dir);
    assert!(incoming.is_empty(), "a quarantine was left: {incoming:?}");
    (for_each_ref(git, dir, ""), packs)
}

/// Pushes `refspecs` (with push options `opts`), expecting git to fail:
/// its stderr.
fn push_fails(git: &Git, work: &Path, url: &str, refspecs: &[String], opts: &[&str]) -> String {
    let mut args = vec!["push".to_string(), "--porcelain".to_string()];
    for o in opts {
        args.push("-o".into());
        args.push(o.to_string());
    }
    args.push(url.to_string());
    args.extend(refspecs.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = git.run_with(work, &args, &[("GIT_TRACE", "1")], None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{} the push should have failed:\n{stdout}\n{stderr}",
        git.label()
    );
    format!("{stdout}\n{stderr}")
}

fn push_ok(git: &Git, work: &Path, url: &str, refspecs: &[String], opts: &[&str]) -> String {
    let mut args = vec!["push".to_string()];
    for o in opts {
        args.push("-o".into());
        args.push(o.to_string());
    }
    args.push(url.to_string());
    args.extend(refspecs.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    git.ok_stderr(work, &args)
}

/// Every ref was refused for the leak (`--porcelain`: `!\t<src>:<dst>\t[remote rejected] (<reason>)`).
#[track_caller]
fn every_ref_refused(out: &str, refs: &[String], ctx: &str) {
    for r in refs {
        let line = out
            .lines()
            .find(|l| l.starts_with('!') && l.contains(&format!(":{r}\t")))
            .unwrap_or_else(|| panic!("{ctx}: no refusal of {r} in:\n{out}"));
        assert_contains(line, &format!("[remote rejected] ({REFUSED})"), ctx);
    }
}

#[test]
fn a_live_token_anywhere_in_a_push_refuses_it_and_writes_nothing() {
    for engine in ENGINES {
        for srv in TestServer::each_with_engine(engine) {
            let p = people(&srv);
            for (gi, git) in gits().iter().enumerate() {
                for case in CASES {
                    let ctx = format!("{} engine {engine}, {case:?}", git.context(srv.backend()));
                    let path = format!("alice/leak-{gi}-{}", format!("{case:?}").to_lowercase());
                    let (url, work) = seeded(&srv, git, &p, &path, "private");
                    let dir = srv.repo_dir(&path);
                    let before = state(git, &dir);
                    let (refspecs, refs, place) = make_case(case, git, work.path(), &p.leaked);
                    let out = push_fails(git, work.path(), &url, &refspecs, &[]);
                    every_ref_refused(&out, &refs, &ctx);
                    if let Case::ThinPackBlob = case {
                        // git was asked for a thin pack: the blob went as a
                        // delta against the server's notes.txt.
                        assert_contains(&out, "--thin", &ctx);
                    }
                    let remote = remote_lines(&out).join("\n");
                    assert_contains(
                        &remote,
                        &format!("token {} \"bob's deploy key\" {place}", p.leaked_id),
                        &ctx,
                    );
                    assert_contains(&remote, "git push -o secret_push_protection.skip_all", &ctx);
                    assert!(!out.contains(&p.leaked), "{ctx}: the token was shown:\n{out}");
                    assert_eq!(state(git, &dir), before, "{ctx}: something was written");
                    // Private, revoke_leaked_tokens off: told, not revoked.
                    assert!(!revoked(&srv, p.leaked_id), "{ctx}");
                    assert_eq!(notices(&srv, p.leaked_id), ["leaked"], "{ctx}");
                    assert_eq!(
                        leak_events(&srv, p.leaked_id).last(),
                        Some(&("alice".to_string(), false, false)),
                        "{ctx}: the audit event"
                    );
                }
            }
        }
    }
}

#[test]
fn a_revoked_or_expired_tokens_string_is_no_leak() {
    for engine in ENGINES {
        for srv in TestServer::each_with_engine(engine) {
            let p = people(&srv);
            let (expired, expired_id) = token_named(&srv, "bob", "old");
            diesel::update(pat::table.find(expired_id))
                .set(pat::expires_at.eq(Some(Utc::now().date_naive())))
                .execute(&mut *srv.conn())
                .unwrap();
            let (gone, gone_id) = token_named(&srv, "bob", "gone");
            tokens::revoke(
                &mut srv.conn(),
                &gitpat::service::audit::Actor::cli(),
                gone_id,
                Utc::now(),
            )
            .unwrap();
            for (gi, git) in gits().iter().enumerate() {
                for (what, tok, id) in [("expired", &expired, expired_id), ("revoked", &gone, gone_id)] {
                    let ctx = format!("{} engine {engine}, {what}", git.context(srv.backend()));
                    let path = format!("alice/dead-{gi}-{what}");
                    let (url, work) = seeded(&srv, git, &p, &path, "public");
                    let (refspecs, refs, _) = make_case(Case::NewFile, git, work.path(), tok);
                    let err = push_ok(git, work.path(), &url, &refspecs, &[]);
                    assert!(!err.contains("secret push protection"), "{ctx}: {err}");
                    let head = rev_parse(git, work.path(), "HEAD");
                    for r in &refs {
                        assert_eq!(
                            crate::support::repo::server_ref(&srv.repo_dir(&path), r),
                            Some(head.clone()),
                            "{ctx} {r}"
                        );
                    }
                    assert!(notices(&srv, id).is_empty(), "{ctx}");
                }
            }
            // With expiry not enforced, the expired token works, so it leaks.
            srv.setting("enforce_personal_access_token_expiration", "false");
            let git = &gits()[0];
            let (url, work) = seeded(&srv, git, &p, "alice/dead-unenforced", "private");
            let (refspecs, refs, _) = make_case(Case::NewFile, git, work.path(), &expired);
            let out = push_fails(git, work.path(), &url, &refspecs, &[]);
            every_ref_refused(
                &out,
                &refs,
                &format!("[{}] engine {engine}, unenforced expiry", srv.backend()),
            );
        }
    }
}

#[test]
fn public_and_internal_repositories_revoke_the_token_even_when_skipped() {
    for engine in ENGINES {
        for srv in TestServer::each_with_engine(engine) {
            // One git per backend: the older on SQLite, the newer on PostgreSQL.
            let all = gits();
            let git = if srv.backend() == "sqlite" {
                &all[0]
            } else {
                &all[all.len() - 1]
            };
            srv.user("alice", false, None);
            srv.user("bob", false, None);
            let pusher = srv.token("alice", &["write_repository"], None);
            for (visibility, opts) in [
                ("public", &[][..]),
                ("internal", &[][..]),
                ("public", &["secret_push_protection.skip_all"][..]),
            ] {
                let ctx = format!("{} engine {engine}, {visibility} {opts:?}", git.context(srv.backend()));
                let (leaked, leaked_id) = token_named(&srv, "bob", "ci");
                let p = People {
                    pusher: pusher.clone(),
                    leaked: leaked.clone(),
                    leaked_id,
                };
                let path = format!("alice/open-{visibility}-{}", opts.len());
                let (url, work) = seeded(&srv, git, &p, &path, visibility);
                let dir = srv.repo_dir(&path);
                let before = state(git, &dir);
                let (refspecs, refs, place) = make_case(Case::NewFile, git, work.path(), &leaked);
                let out = push_fails(git, work.path(), &url, &refspecs, opts);
                every_ref_refused(&out, &refs, &ctx);
                let remote = remote_lines(&out).join("\n");
                assert_contains(
                    &remote,
                    &format!("token {leaked_id} \"ci\" {place} (revoked now)"),
                    &ctx,
                );
                assert!(!remote.contains("skip_all"), "{ctx}: no skip offered:\n{remote}");
                assert!(!out.contains(&leaked), "{ctx}");
                assert_eq!(state(git, &dir), before, "{ctx}");
                assert!(revoked(&srv, leaked_id), "{ctx}: the token was not revoked");
                assert_eq!(notices(&srv, leaked_id), ["leaked"], "{ctx}");
                assert_eq!(
                    leak_events(&srv, leaked_id),
                    [("alice".to_string(), true, false)],
                    "{ctx}"
                );
                // Revoked, the same string passes now.
                push_ok(git, work.path(), &url, &refspecs, &[]);
            }
        }
    }
}

#[test]
fn skip_all_lets_a_private_push_land_and_the_owner_is_told() {
    for engine in ENGINES {
        for srv in TestServer::each_with_engine(engine) {
            let p = people(&srv);
            for (gi, git) in gits().iter().enumerate() {
                let ctx = format!("{} engine {engine}", git.context(srv.backend()));
                let path = format!("alice/skip-{gi}");
                let (url, work) = seeded(&srv, git, &p, &path, "private");
                let (refspecs, refs, place) = make_case(Case::NewFile, git, work.path(), &p.leaked);
                let err = push_ok(git, work.path(), &url, &refspecs, &["secret_push_protection.skip_all"]);
                let remote = remote_lines(&err).join("\n");
                assert_contains(&remote, "secret push protection skipped", &ctx);
                assert_contains(
                    &remote,
                    &format!("token {} \"bob's deploy key\" {place}", p.leaked_id),
                    &ctx,
                );
                assert!(!err.contains(&p.leaked), "{ctx}");
                let head = rev_parse(git, work.path(), "HEAD");
                for r in &refs {
                    assert_eq!(
                        crate::support::repo::server_ref(&srv.repo_dir(&path), r),
                        Some(head.clone()),
                        "{ctx} {r}"
                    );
                }
                assert!(!revoked(&srv, p.leaked_id), "{ctx}");
                assert_eq!(notices(&srv, p.leaked_id), ["leaked"], "{ctx}");
                assert_eq!(
                    leak_events(&srv, p.leaked_id).last(),
                    Some(&("alice".to_string(), false, true)),
                    "{ctx}: the audit event"
                );
            }
        }
    }
}

#[test]
fn revoke_leaked_tokens_revokes_in_private_repositories_too() {
    for engine in ENGINES {
        for srv in TestServer::each_with_engine(engine) {
            let p = people(&srv);
            srv.setting("revoke_leaked_tokens", "true");
            let git = &gits()[0];
            let ctx = format!("{} engine {engine}", git.context(srv.backend()));
            let (url, work) = seeded(&srv, git, &p, "alice/strict", "private");
            let (refspecs, refs, _) = make_case(Case::CommitMessage, git, work.path(), &p.leaked);
            let out = push_fails(git, work.path(), &url, &refspecs, &[]);
            every_ref_refused(&out, &refs, &ctx);
            assert_contains(&remote_lines(&out).join("\n"), "(revoked now)", &ctx);
            assert!(revoked(&srv, p.leaked_id), "{ctx}");
        }
    }
}

#[test]
fn the_scan_can_be_switched_off() {
    for engine in ENGINES {
        let srv = TestServer::start_with_engine(crate::support::TestDb::sqlite(), engine);
        let p = people(&srv);
        srv.setting("secret_push_protection_enabled", "false");
        let git = &gits()[0];
        let (url, work) = seeded(&srv, git, &p, "alice/unscanned", "public");
        let (refspecs, _, _) = make_case(Case::NewFile, git, work.path(), &p.leaked);
        let err = push_ok(git, work.path(), &url, &refspecs, &[]);
        assert!(!err.contains("secret push protection"), "engine {engine}: {err}");
        assert!(!revoked(&srv, p.leaked_id));
        assert!(notices(&srv, p.leaked_id).is_empty());
        assert!(leak_events(&srv, p.leaked_id).is_empty());
    }
}

#[test]
fn a_token_of_another_prefix_is_found_and_a_longer_string_is_not() {
    let srv = TestServer::start_with_engine(crate::support::TestDb::sqlite(), "git");
    srv.setting("personal_access_token_prefix", "corp-");
    let p = people(&srv);
    assert!(p.leaked.starts_with("corp-"));
    let git = &gits()[0];
    // One character more is another string: it lands.
    let (url, work) = seeded(&srv, git, &p, "alice/prefix", "private");
    let (refspecs, _, _) = make_case(Case::NewFile, git, work.path(), &format!("{}x", p.leaked));
    push_ok(git, work.path(), &url, &refspecs, &[]);
    let (refspecs, refs, _) = make_case(Case::NewFile, git, work.path(), &p.leaked);
    let out = push_fails(git, work.path(), &url, &refspecs, &[]);
    every_ref_refused(&out, &refs, "the configured prefix");
}

#[test]
fn notify_preview_shows_the_leaked_notice() {
    let g = Gitpat::new(crate::support::TestDb::sqlite());
    g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
    let secret = g.ok(&["token", "create", "--user", "alice", "--name", "ci", "--scopes", "api"]);
    let preview = g.ok(&["notify", "preview", "--token-id", "1", "--kind", "leaked"]);
    assert_contains(
        &preview,
        "Subject: Your personal access token \"ci\" was found in a push",
        "the preview",
    );
    assert_contains(&preview, "The push was refused", "the preview");
    assert!(!preview.contains(secret.trim()));
}

#[test]
fn a_push_that_would_create_a_repository_with_a_token_creates_none() {
    for engine in ENGINES {
        for srv in TestServer::each_with_engine(engine) {
            let p = people(&srv);
            for (gi, git) in gits().iter().enumerate() {
                let ctx = format!("{} engine {engine}", git.context(srv.backend()));
                let work = tmp();
                git.ok(work.path(), &["init", "-q", "."]);
                commit(git, work.path(), "README", "hello\n", "first");
                let (refspecs, refs, place) = make_case(Case::NewFile, git, work.path(), &p.leaked);
                let path = format!("alice/new-{gi}");
                let url = srv.url_as("alice", &p.pusher, &format!("/{path}.git"));
                let out = push_fails(git, work.path(), &url, &refspecs, &[]);
                every_ref_refused(&out, &refs, &ctx);
                assert_contains(&remote_lines(&out).join("\n"), &place, &ctx);
                assert!(srv.project(&path).is_none(), "{ctx}: the repository was created");
                assert!(!srv.repo_dir(&path).exists(), "{ctx}: its folder is left");
            }
        }
    }
}
