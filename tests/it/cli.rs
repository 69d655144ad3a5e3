//! The command line, through the built binary, on every backend: users,
//! tokens, repositories, settings, the error convention (stderr, non-zero
//! exit, empty stdout), the server's health endpoints and first start, and
//! the config file.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use diesel::RunQueryDsl;
use serde_json::Value;

use crate::support::serve::Server;
use crate::support::{self, Gitpat};

// ---------------------------------------------------------------- helpers

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

/// `gitpat <what> list --json` as an array.
fn list(g: &Gitpat, what: &str) -> Vec<Value> {
    match g.json(&[what, "list", "--json"]) {
        Value::Array(v) => v,
        other => panic!("[{}] `{what} list --json` is not an array: {other}", g.db.backend),
    }
}

fn user(g: &Gitpat, username: &str) -> Value {
    list(g, "user")
        .into_iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("[{}] no user {username:?} in `user list --json`", g.db.backend))
}

fn token_by_id(g: &Gitpat, id: i64) -> Value {
    list(g, "token")
        .into_iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("[{}] no token {id} in `token list --json`", g.db.backend))
}

fn repo(g: &Gitpat, path: &str) -> Value {
    list(g, "repo")
        .into_iter()
        .find(|r| r["path_with_namespace"] == path)
        .unwrap_or_else(|| panic!("[{}] no repository {path:?} in `repo list --json`", g.db.backend))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Checks that `out` is exactly one line and returns it.
fn one_line(g: &Gitpat, args: &[&str], out: &str) -> String {
    assert!(
        out.ends_with('\n') && out.lines().count() == 1,
        "[{}] gitpat {args:?} should print exactly one line, printed {out:?}",
        g.db.backend
    );
    out.trim_end_matches('\n').to_string()
}

/// Creates a user (email NAME@example.com) and returns the printed id.
fn add_user(g: &Gitpat, name: &str, extra: &[&str]) -> i64 {
    let email = format!("{name}@example.com");
    let mut args = vec!["user", "create", name, "--email", &email];
    args.extend_from_slice(extra);
    let out = g.ok(&args);
    let line = one_line(g, &args, &out);
    line.parse()
        .unwrap_or_else(|_| panic!("[{}] user create printed {line:?}, not an id", g.db.backend))
}

fn ids(tokens: &[Value]) -> BTreeSet<i64> {
    tokens
        .iter()
        .map(|t| t["id"].as_i64().expect("numeric token id"))
        .collect()
}

/// The single token that is in `after` and not in `before`.
fn the_new_token(g: &Gitpat, before: &[Value], after: Vec<Value>, what: &str) -> Value {
    let old = ids(before);
    let mut new: Vec<Value> = after
        .into_iter()
        .filter(|t| !old.contains(&t["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        new.len(),
        1,
        "[{}] {what} should add exactly one token: {new:?}",
        g.db.backend
    );
    new.pop().unwrap()
}

/// Runs `token create ARGS`; checks it printed one line and added one token;
/// returns the printed token and its `token list --json` entry.
fn create_token(g: &Gitpat, args: &[&str]) -> (String, Value) {
    create_token_stdin(g, args, "")
}

fn create_token_stdin(g: &Gitpat, args: &[&str], stdin: &str) -> (String, Value) {
    let before = list(g, "token");
    let mut full = vec!["token", "create"];
    full.extend_from_slice(args);
    let out = g.run_with_stdin(&full, stdin);
    assert!(
        out.status.success(),
        "[{}] gitpat {full:?} failed: {}",
        g.db.backend,
        String::from_utf8_lossy(&out.stderr)
    );
    let tok = one_line(g, &full, &String::from_utf8(out.stdout).expect("utf-8 stdout"));
    let entry = the_new_token(g, &before, list(g, "token"), "token create");
    (tok, entry)
}

/// Runs `token rotate ARGS`; returns the printed token and the new entry.
fn rotate_token(g: &Gitpat, args: &[&str]) -> (String, Value) {
    let before = list(g, "token");
    let mut full = vec!["token", "rotate"];
    full.extend_from_slice(args);
    let out = g.ok(&full);
    let tok = one_line(g, &full, &out);
    let entry = the_new_token(g, &before, list(g, "token"), "token rotate");
    (tok, entry)
}

/// A generated token: `prefix` then 20 characters of `[A-Za-z0-9_-]`.
fn assert_generated(g: &Gitpat, tok: &str, prefix: &str) {
    let rest = tok
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("[{}] token {tok:?} does not start with {prefix:?}", g.db.backend));
    assert_eq!(
        rest.len(),
        20,
        "[{}] token {tok:?}: 20 characters after the prefix",
        g.db.backend
    );
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "[{}] token {tok:?} has characters outside [A-Za-z0-9_-]",
        g.db.backend
    );
}

/// Runs a command that must fail and checks that stderr holds `needle`.
fn refused(g: &Gitpat, args: &[&str], needle: &str) -> String {
    let err = g.fails(args);
    assert!(
        err.contains(needle),
        "[{}] gitpat {args:?}: expected {needle:?} in stderr, got: {err}",
        g.db.backend
    );
    err
}

/// Like [`refused`], with `stdin` as standard input.
fn refused_stdin(g: &Gitpat, args: &[&str], stdin: &str, needle: &str) -> String {
    let out = g.run_with_stdin(args, stdin);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "[{}] gitpat {args:?} should fail", g.db.backend);
    assert!(
        out.stdout.is_empty(),
        "[{}] gitpat {args:?} failed but printed to stdout: {}",
        g.db.backend,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(needle),
        "[{}] gitpat {args:?}: expected {needle:?} in stderr, got: {err}",
        g.db.backend
    );
    err
}

/// SQLite's `-wal`, `-shm` and `-journal` files come and go with its
/// connections (one is left when a process exits without closing the last
/// connection); they are not something a command made.
fn is_sqlite_sidecar(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".db-wal") || n.ends_with(".db-shm") || n.ends_with(".db-journal"))
}

/// Every file and folder under `dir`, recursively, but SQLite's sidecar files.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            if !is_sqlite_sidecar(&p) {
                out.insert(p);
            }
        }
    }
    out
}

/// The temporary folder that holds the data directory (and nothing else of
/// the test's).
fn test_root(g: &Gitpat) -> PathBuf {
    g.data_dir.parent().expect("data dir has a parent").to_path_buf()
}

/// Asserts that nothing appeared or disappeared on disk, except possibly an
/// empty `<repos>/.tmp` folder.
fn assert_disk_unchanged(g: &Gitpat, before: &BTreeSet<PathBuf>, what: &str) {
    let after = tree(&test_root(g));
    let tmp = g.repos_dir().join(".tmp");
    let appeared: Vec<&PathBuf> = after.difference(before).filter(|p| **p != tmp).collect();
    let vanished: Vec<&PathBuf> = before.difference(&after).collect();
    assert!(
        appeared.is_empty() && vanished.is_empty(),
        "[{}] {what} changed the disk: appeared {appeared:?}, vanished {vanished:?}",
        g.db.backend
    );
    if tmp.exists() {
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
        assert!(
            left.is_empty(),
            "[{}] {what} left {left:?} in {}",
            g.db.backend,
            tmp.display()
        );
    }
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every string anywhere inside a JSON value.
fn strings_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings_in(x, out)),
        _ => {}
    }
}

/// Runs git with no system or global configuration and a fixed identity.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .output()
        .expect("run git (is it installed?)");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 git output")
        .trim()
        .to_string()
}

fn head_file(g: &Gitpat, path: &str) -> String {
    let p = g.repos_dir().join(format!("{path}.git")).join("HEAD");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("[{}] cannot read {}: {e}", g.db.backend, p.display()))
}

// ------------------------------------------------------------------ users

#[test]
fn user_create_validates_and_lists() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        let alice = add_user(&g, "alice", &[]);
        let bob = add_user(&g, "bob", &["--name", "Bob Builder", "--admin"]);
        assert_ne!(alice, bob, "[{b}] two users got the same id");

        // a username differing only in case is taken
        refused(
            &g,
            &["user", "create", "Alice", "--email", "other@example.com"],
            "already taken",
        );
        // so is an email differing only in case
        refused(
            &g,
            &["user", "create", "alice2", "--email", "ALICE@example.com"],
            "already taken",
        );
        for bad in ["bad name", "x.git", "-x", ".x", "a/b", ""] {
            refused(
                &g,
                // after `--`, so that "-x" is a username and not a flag
                &["user", "create", "--email", "bad@example.com", "--", bad],
                "invalid username",
            );
        }
        refused(
            &g,
            &["user", "create", "carol", "--email", "not-an-email"],
            "invalid email",
        );
        let args = [
            "user",
            "create",
            "carol",
            "--email",
            "carol@example.com",
            "--password-stdin",
        ];
        refused_stdin(&g, &args, "short\n", "too short");
        refused_stdin(&g, &args, "", "no password");

        let users = list(&g, "user");
        let names: Vec<&str> = users.iter().map(|u| u["username"].as_str().unwrap()).collect();
        assert_eq!(names, ["alice", "bob"], "[{b}] the refused users must not exist");

        // a long enough password is accepted
        let out = g.run_with_stdin(&args, "a-long-enough-password\n");
        assert!(
            out.status.success(),
            "[{b}] --password-stdin with a good password: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let carol: i64 = String::from_utf8(out.stdout).unwrap().trim().parse().expect("an id");

        let users = list(&g, "user");
        assert_eq!(users.len(), 3, "[{b}] {users:?}");
        let want = set_of(&[
            "id",
            "username",
            "name",
            "email",
            "state",
            "is_admin",
            "two_factor_enabled",
            "created_at",
        ]);
        for u in &users {
            assert_eq!(keys(u), want, "[{b}] keys of {u}");
        }
        let a = user(&g, "alice");
        assert_eq!(a["id"], alice, "[{b}] {a}");
        assert_eq!(a["name"], "alice", "[{b}] the name defaults to the username: {a}");
        assert_eq!(a["email"], "alice@example.com", "[{b}] {a}");
        assert_eq!(a["state"], "active", "[{b}] {a}");
        assert_eq!(a["is_admin"], false, "[{b}] {a}");
        assert_eq!(a["two_factor_enabled"], false, "[{b}] {a}");
        let created = a["created_at"].as_str().expect("created_at is a string");
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "[{b}] created_at {created:?} is not a timestamp"
        );
        let bb = user(&g, "bob");
        assert_eq!(bb["id"], bob, "[{b}] {bb}");
        assert_eq!(bb["name"], "Bob Builder", "[{b}] {bb}");
        assert_eq!(bb["is_admin"], true, "[{b}] {bb}");
        assert_eq!(user(&g, "carol")["id"], carol, "[{b}]");

        // the table form lists them too
        let table = g.ok(&["user", "list"]);
        for name in ["alice", "bob", "carol"] {
            assert!(table.contains(name), "[{b}] `user list` lacks {name}: {table}");
        }
    }
}

#[test]
fn block_and_unblock_change_the_state() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        add_user(&g, "bob", &[]);
        assert_eq!(g.ok(&["user", "block", "alice"]), "", "[{b}] block prints nothing");
        assert_eq!(user(&g, "alice")["state"], "blocked", "[{b}]");
        assert_eq!(user(&g, "bob")["state"], "active", "[{b}] only alice is blocked");
        assert_eq!(g.ok(&["user", "unblock", "alice"]), "", "[{b}] unblock prints nothing");
        assert_eq!(user(&g, "alice")["state"], "active", "[{b}]");
        // usernames are case-insensitive, as in GitLab
        g.ok(&["user", "block", "ALICE"]);
        assert_eq!(user(&g, "alice")["state"], "blocked", "[{b}] block ALICE blocks alice");
        g.ok(&["user", "unblock", "Alice"]);
        assert_eq!(
            user(&g, "alice")["state"],
            "active",
            "[{b}] unblock Alice unblocks alice"
        );
        refused(&g, &["user", "block", "ghost"], "no user named \"ghost\"");
        refused(&g, &["user", "unblock", "ghost"], "no user named \"ghost\"");
        assert_eq!(
            list(&g, "user").len(),
            2,
            "[{b}] blocking an unknown user created nobody"
        );
    }
}

#[test]
fn two_factor_enable_and_disable() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        add_user(&g, "bob", &[]);
        let args = ["user", "two-factor", "enable", "alice"];
        let out = g.ok(&args);
        let uri = one_line(&g, &args, &out);
        assert!(uri.starts_with("otpauth://totp/gitpat:alice?"), "[{b}] {uri}");
        assert!(uri.contains("secret="), "[{b}] {uri}");
        assert_eq!(user(&g, "alice")["two_factor_enabled"], true, "[{b}]");
        assert_eq!(user(&g, "bob")["two_factor_enabled"], false, "[{b}]");

        refused(&g, &args, "already enabled");
        assert_eq!(user(&g, "alice")["two_factor_enabled"], true, "[{b}] still enabled");

        assert_eq!(g.ok(&["user", "two-factor", "disable", "alice"]), "", "[{b}]");
        assert_eq!(user(&g, "alice")["two_factor_enabled"], false, "[{b}]");

        // enabling again makes a new secret
        let again = one_line(&g, &args, &g.ok(&args));
        let secret = |u: &str| {
            u.split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("secret="))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("[{b}] no secret in {u}"))
        };
        assert!(!secret(&uri).is_empty(), "[{b}] empty secret in {uri}");
        assert_ne!(secret(&uri), secret(&again), "[{b}] re-enabling reused the old secret");

        refused(&g, &["user", "two-factor", "enable", "ghost"], "no user named");
        refused(&g, &["user", "two-factor", "disable", "ghost"], "no user named");
    }
}

// ----------------------------------------------------------------- tokens

#[test]
fn token_create_prints_only_the_token_and_list_never_shows_it() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        let alice = add_user(&g, "alice", &[]);
        let bob = add_user(&g, "bob", &[]);
        let (tok, entry) = create_token(
            &g,
            &[
                "--user",
                "alice",
                "--name",
                "ci",
                "--scopes",
                "read_repository,api,api",
                "--description",
                "for CI",
            ],
        );
        assert_generated(&g, &tok, "glpat-");
        let want = set_of(&[
            "id",
            "name",
            "revoked",
            "created_at",
            "description",
            "scopes",
            "user_id",
            "last_used_at",
            "active",
            "expires_at",
            "impersonation",
            "last_used_ips",
            "repositories",
            "push_ref_patterns",
        ]);
        assert_eq!(keys(&entry), want, "[{b}] keys of {entry}");
        assert_eq!(entry["repositories"], Value::Null, "[{b}] unrestricted: {entry}");
        assert_eq!(entry["push_ref_patterns"], Value::Null, "[{b}] unrestricted: {entry}");
        assert_eq!(entry["name"], "ci", "[{b}] {entry}");
        assert_eq!(entry["description"], "for CI", "[{b}] {entry}");
        assert_eq!(entry["user_id"], alice, "[{b}] {entry}");
        assert_eq!(entry["revoked"], false, "[{b}] {entry}");
        assert_eq!(entry["active"], true, "[{b}] {entry}");
        assert_eq!(entry["impersonation"], false, "[{b}] {entry}");
        assert_eq!(
            entry["expires_at"],
            Value::Null,
            "[{b}] no expiry without a maximum: {entry}"
        );
        assert_eq!(entry["last_used_at"], Value::Null, "[{b}] {entry}");
        assert_eq!(entry["last_used_ips"], serde_json::json!([]), "[{b}] {entry}");
        let mut scopes: Vec<&str> = entry["scopes"]
            .as_array()
            .expect("scopes is an array")
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        scopes.sort();
        assert_eq!(
            scopes,
            ["api", "read_repository"],
            "[{b}] scopes, deduplicated: {entry}"
        );

        let (tok2, entry2) = create_token(
            &g,
            &[
                "--user",
                "bob",
                "--name",
                "imp",
                "--scopes",
                "read_api",
                "--impersonation",
            ],
        );
        assert_generated(&g, &tok2, "glpat-");
        assert_ne!(tok, tok2, "[{b}] two generated tokens are equal");
        assert_eq!(entry2["impersonation"], true, "[{b}] {entry2}");
        assert_eq!(entry2["user_id"], bob, "[{b}] {entry2}");

        // --user filters the list
        let only_alice = g.json(&["token", "list", "--user", "alice", "--json"]);
        let only_alice = only_alice.as_array().expect("array");
        assert_eq!(only_alice.len(), 1, "[{b}] {only_alice:?}");
        assert_eq!(only_alice[0]["user_id"], alice, "[{b}] {only_alice:?}");
        refused(&g, &["token", "list", "--user", "ghost"], "no user named");

        // neither list form shows a token or its random part
        let raw_json = g.ok(&["token", "list", "--json"]);
        let raw_table = g.ok(&["token", "list"]);
        let parsed: Value = serde_json::from_str(&raw_json).unwrap();
        let mut strings = Vec::new();
        strings_in(&parsed, &mut strings);
        for t in [&tok, &tok2] {
            let random = &t["glpat-".len()..];
            for s in &strings {
                assert!(
                    s != t.as_str() && !s.contains(random),
                    "[{b}] token list --json shows a secret: {s:?}"
                );
            }
            assert!(!raw_json.contains(random), "[{b}] token list --json shows a secret");
            assert!(
                !raw_table.contains(random),
                "[{b}] token list shows a secret: {raw_table}"
            );
        }
        assert!(
            raw_table.contains("ci") && raw_table.contains("imp"),
            "[{b}] {raw_table}"
        );
    }
}

#[test]
fn the_prefix_setting_changes_new_tokens() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        let (old, _) = create_token(&g, &["--user", "alice", "--name", "a", "--scopes", "api"]);
        assert_generated(&g, &old, "glpat-");
        assert_eq!(
            g.ok(&["settings", "set", "personal_access_token_prefix", "mypfx-"]),
            "",
            "[{b}]"
        );
        let (new, _) = create_token(&g, &["--user", "alice", "--name", "b", "--scopes", "api"]);
        assert_generated(&g, &new, "mypfx-");
        // a bad prefix is refused and the prefix kept
        refused(
            &g,
            &["settings", "set", "personal_access_token_prefix", "has space"],
            "personal_access_token_prefix",
        );
        let (newer, _) = create_token(&g, &["--user", "alice", "--name", "c", "--scopes", "api"]);
        assert_generated(&g, &newer, "mypfx-");
        // the old token is still known under its old prefix
        g.ok(&["token", "revoke", "--token", &old]);
    }
}

#[test]
fn token_create_refusals_create_nothing() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        add_user(&g, "boss", &["--admin"]);
        create_token(&g, &["--user", "alice", "--name", "existing", "--scopes", "api"]);
        let yesterday = ymd(today() - days(1));
        let base = |rest: &[&str]| {
            let mut v: Vec<String> = ["token", "create", "--user", "alice"].map(String::from).to_vec();
            v.extend(rest.iter().map(|s| s.to_string()));
            v
        };
        let cases: Vec<(Vec<String>, &str)> = vec![
            (base(&["--name", "t", "--scopes", "bogus"]), "unknown scope bogus"),
            (base(&["--name", "t", "--scopes", "api,bogus"]), "unknown scope bogus"),
            (base(&["--name", "t", "--scopes", ""]), "at least one scope"),
            (base(&["--name", "t", "--scopes", ","]), "at least one scope"),
            (base(&["--name", "t", "--scopes", "api,sudo"]), "administrators"),
            (base(&["--scopes", "api"]), "--name"),
            (base(&["--name", "", "--scopes", "api"]), "name is required"),
            (base(&["--name", "   ", "--scopes", "api"]), "name is required"),
            (
                base(&["--name", "t", "--scopes", "api", "--expires-at", &yesterday]),
                "in the past",
            ),
            (
                base(&["--name", "t", "--scopes", "api", "--expires-at", "2030-13-01"]),
                "YYYY-MM-DD",
            ),
            (
                base(&["--name", "t", "--scopes", "api", "--expires-at", "tomorrow"]),
                "YYYY-MM-DD",
            ),
            (
                base(&["--name", "t", "--scopes", "api", "--token", "token-string-here12"]),
                "at least 20",
            ),
            (
                base(&["--name", "t", "--scopes", "api", "--token", "token string with spaces"]),
                "printable",
            ),
            (
                vec!["token", "create", "--user", "ghost", "--name", "t", "--scopes", "api"]
                    .into_iter()
                    .map(String::from)
                    .collect(),
                "no user named",
            ),
        ];
        for (args, needle) in &cases {
            let before = list(&g, "token");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            refused(&g, &args, needle);
            assert_eq!(list(&g, "token"), before, "[{b}] refused {args:?} changed the tokens");
        }
        // `--token -` with nothing on standard input
        let before = list(&g, "token");
        refused_stdin(
            &g,
            &[
                "token", "create", "--user", "alice", "--name", "t", "--scopes", "api", "--token", "-",
            ],
            "",
            "no token on standard input",
        );
        assert_eq!(
            list(&g, "token"),
            before,
            "[{b}] an empty stdin token created something"
        );

        // sudo is accepted for an administrator
        let (_, entry) = create_token(&g, &["--user", "boss", "--name", "s", "--scopes", "api,sudo"]);
        let scopes = entry["scopes"].as_array().expect("array");
        assert!(scopes.contains(&Value::from("sudo")), "[{b}] {entry}");
        assert!(scopes.contains(&Value::from("api")), "[{b}] {entry}");
    }
}

#[test]
fn predetermined_tokens() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        add_user(&g, "bob", &[]);
        let fixed = "token-string-here123";
        let (tok, entry) = create_token(
            &g,
            &[
                "--user", "alice", "--name", "fixed", "--scopes", "api", "--token", fixed,
            ],
        );
        assert_eq!(tok, fixed, "[{b}] a predetermined token is printed back");
        assert_eq!(entry["active"], true, "[{b}] {entry}");

        // the same string again, for anyone, is refused
        for who in ["alice", "bob"] {
            let before = list(&g, "token");
            refused(
                &g,
                &[
                    "token", "create", "--user", who, "--name", "dup", "--scopes", "api", "--token", fixed,
                ],
                "already in use",
            );
            assert_eq!(
                list(&g, "token"),
                before,
                "[{b}] a duplicate token string created something"
            );
        }

        // `--token -` reads it from standard input
        let from_stdin = "stdin-token-string-0001";
        let (tok2, entry2) = create_token_stdin(
            &g,
            &[
                "--user", "bob", "--name", "piped", "--scopes", "read_api", "--token", "-",
            ],
            &format!("{from_stdin}\n"),
        );
        assert_eq!(tok2, from_stdin, "[{b}] the token read from stdin is printed back");

        // both work for revocation by string
        assert_eq!(
            g.ok(&["token", "revoke", "--token", fixed]),
            "",
            "[{b}] revoke prints nothing"
        );
        let e = token_by_id(&g, entry["id"].as_i64().unwrap());
        assert_eq!(e["revoked"], true, "[{b}] {e}");
        assert_eq!(
            token_by_id(&g, entry2["id"].as_i64().unwrap())["revoked"],
            false,
            "[{b}]"
        );
        let out = g.run_with_stdin(&["token", "revoke", "--token", "-"], &format!("{from_stdin}\n"));
        assert!(
            out.status.success(),
            "[{b}] revoke --token -: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e2 = token_by_id(&g, entry2["id"].as_i64().unwrap());
        assert_eq!(e2["revoked"], true, "[{b}] {e2}");
    }
}

#[test]
fn max_lifetime_caps_and_fills_in_the_expiry() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        g.ok(&["settings", "set", "max_personal_access_token_lifetime", "30"]);
        assert_eq!(
            g.ok(&["settings", "get", "max_personal_access_token_lifetime"]),
            "30\n",
            "[{b}]"
        );

        let t0 = today();
        let (_, entry) = create_token(&g, &["--user", "alice", "--name", "default", "--scopes", "api"]);
        let t1 = today();
        let got = entry["expires_at"].as_str().unwrap_or_default().to_string();
        assert!(
            got == ymd(t0 + days(30)) || got == ymd(t1 + days(30)),
            "[{b}] without --expires-at the token should expire today+30 ({}), got {got:?}",
            ymd(t0 + days(30))
        );

        let before = list(&g, "token");
        let too_far = ymd(today() + days(31));
        refused(
            &g,
            &[
                "token",
                "create",
                "--user",
                "alice",
                "--name",
                "far",
                "--scopes",
                "api",
                "--expires-at",
                &too_far,
            ],
            "at most 30 days",
        );
        assert_eq!(list(&g, "token"), before, "[{b}] the refused token was created");

        let limit = ymd(today() + days(30));
        let (_, entry) = create_token(
            &g,
            &[
                "--user",
                "alice",
                "--name",
                "limit",
                "--scopes",
                "api",
                "--expires-at",
                &limit,
            ],
        );
        assert_eq!(entry["expires_at"], limit.as_str(), "[{b}] {entry}");

        let sooner = ymd(today() + days(3));
        let (_, entry) = create_token(
            &g,
            &[
                "--user",
                "alice",
                "--name",
                "soon",
                "--scopes",
                "api",
                "--expires-at",
                &sooner,
            ],
        );
        assert_eq!(entry["expires_at"], sooner.as_str(), "[{b}] {entry}");

        // without a maximum, no expiry is filled in and far dates are fine
        g.ok(&["settings", "set", "max_personal_access_token_lifetime", "none"]);
        let (_, entry) = create_token(&g, &["--user", "alice", "--name", "free", "--scopes", "api"]);
        assert_eq!(entry["expires_at"], Value::Null, "[{b}] {entry}");
        let (_, entry) = create_token(
            &g,
            &[
                "--user",
                "alice",
                "--name",
                "far",
                "--scopes",
                "api",
                "--expires-at",
                &too_far,
            ],
        );
        assert_eq!(entry["expires_at"], too_far.as_str(), "[{b}] {entry}");
    }
}

#[test]
fn revoke_by_id_and_by_token() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        let (_, t1) = create_token(&g, &["--user", "alice", "--name", "one", "--scopes", "api"]);
        let (s2, t2) = create_token(&g, &["--user", "alice", "--name", "two", "--scopes", "api"]);
        let (_, t3) = create_token(&g, &["--user", "alice", "--name", "three", "--scopes", "api"]);
        let id = |t: &Value| t["id"].as_i64().unwrap();

        assert_eq!(g.ok(&["token", "revoke", "--id", &id(&t1).to_string()]), "", "[{b}]");
        let e = token_by_id(&g, id(&t1));
        assert_eq!(
            (e["revoked"].clone(), e["active"].clone()),
            (true.into(), false.into()),
            "[{b}] {e}"
        );
        let e = token_by_id(&g, id(&t2));
        assert_eq!(
            (e["revoked"].clone(), e["active"].clone()),
            (false.into(), true.into()),
            "[{b}] {e}"
        );

        g.ok(&["token", "revoke", "--token", &s2]);
        let e = token_by_id(&g, id(&t2));
        assert_eq!(
            (e["revoked"].clone(), e["active"].clone()),
            (true.into(), false.into()),
            "[{b}] {e}"
        );
        assert_eq!(
            token_by_id(&g, id(&t3))["active"],
            true,
            "[{b}] only the named tokens are revoked"
        );

        refused(
            &g,
            &["token", "revoke", "--id", &id(&t1).to_string()],
            "already revoked",
        );
        refused(&g, &["token", "revoke", "--token", &s2], "already revoked");
        refused(
            &g,
            &["token", "revoke", "--token", "glpat-unknownunknownunkn"],
            "no such token",
        );
        refused(&g, &["token", "revoke", "--id", "999999"], "no token with id 999999");
        // --token and --id together, or neither, are usage errors
        g.fails(&["token", "revoke", "--id", &id(&t3).to_string(), "--token", &s2]);
        g.fails(&["token", "revoke"]);
        assert_eq!(
            token_by_id(&g, id(&t3))["active"],
            true,
            "[{b}] the usage errors revoked t3"
        );
    }
}

#[test]
fn rotate_replaces_a_token() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        let far = ymd(today() + days(100));
        let (old, t_old) = create_token(
            &g,
            &[
                "--user",
                "alice",
                "--name",
                "deploy",
                "--scopes",
                "read_repository,write_repository",
                "--description",
                "the deploy key",
                "--expires-at",
                &far,
            ],
        );
        let old_id = t_old["id"].as_i64().unwrap();

        let t0 = today();
        let (new, t_new) = rotate_token(&g, &["--id", &old_id.to_string()]);
        let t1 = today();
        assert_generated(&g, &new, "glpat-");
        assert_ne!(new, old, "[{b}] rotation printed the old token");
        let e_old = token_by_id(&g, old_id);
        assert_eq!(e_old["revoked"], true, "[{b}] {e_old}");
        assert_eq!(e_old["active"], false, "[{b}] {e_old}");
        for k in ["name", "scopes", "description", "user_id", "impersonation"] {
            assert_eq!(t_new[k], t_old[k], "[{b}] rotation changed {k}: {t_old} -> {t_new}");
        }
        assert_eq!(t_new["active"], true, "[{b}] {t_new}");
        let exp = t_new["expires_at"].as_str().unwrap_or_default().to_string();
        assert!(
            exp == ymd(t0 + days(7)) || exp == ymd(t1 + days(7)),
            "[{b}] a rotation without --expires-at should give today+7, got {exp:?}"
        );

        // the old string is now a revoked token
        refused(&g, &["token", "revoke", "--token", &old], "already revoked");
        refused(
            &g,
            &["token", "rotate", "--id", &old_id.to_string()],
            "Token already revoked",
        );

        // a given date is used
        let new_id = t_new["id"].as_i64().unwrap();
        let when = ymd(today() + days(20));
        let (newer, t_newer) = rotate_token(&g, &["--id", &new_id.to_string(), "--expires-at", &when]);
        assert_ne!(newer, new, "[{b}]");
        assert_eq!(t_newer["expires_at"], when.as_str(), "[{b}] {t_newer}");
        assert_eq!(t_newer["name"], "deploy", "[{b}] {t_newer}");
        assert_eq!(token_by_id(&g, new_id)["revoked"], true, "[{b}]");

        // refused rotations change nothing
        let newer_id = t_newer["id"].as_i64().unwrap().to_string();
        let yesterday = ymd(today() - days(1));
        for (args, needle) in [
            (
                vec!["token", "rotate", "--id", &newer_id, "--expires-at", &yesterday],
                "in the past",
            ),
            (
                vec!["token", "rotate", "--id", &newer_id, "--expires-at", "2030-02-30"],
                "YYYY-MM-DD",
            ),
            (vec!["token", "rotate", "--id", "999999"], "no token with id 999999"),
        ] {
            let before = list(&g, "token");
            refused(&g, &args, needle);
            assert_eq!(list(&g, "token"), before, "[{b}] refused {args:?} changed the tokens");
        }

        // an impersonation token stays one
        let (_, imp) = create_token(
            &g,
            &["--user", "alice", "--name", "imp", "--scopes", "api", "--impersonation"],
        );
        let (_, imp2) = rotate_token(&g, &["--id", &imp["id"].as_i64().unwrap().to_string()]);
        assert_eq!(imp2["impersonation"], true, "[{b}] {imp2}");
    }
}

#[test]
fn plaintext_secrets_never_reach_the_data_directory() {
    // SQLite only: the database is a file in the data directory. (The
    // PostgreSQL side is covered in models.rs.)
    let g = Gitpat::new(support::TestDb::sqlite());
    let password = "correct-horse-battery-staple";
    let out = g.run_with_stdin(
        &[
            "user",
            "create",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut secrets = Vec::new();
    let (t1, _) = create_token(
        &g,
        &["--user", "alice", "--name", "zebra-token-name", "--scopes", "api"],
    );
    let (t2, e2) = create_token(&g, &["--user", "alice", "--name", "two", "--scopes", "api"]);
    let (t3, _) = rotate_token(&g, &["--id", &e2["id"].as_i64().unwrap().to_string()]);
    let fixed = "predetermined-secret-0123456789";
    let (t4, _) = create_token(
        &g,
        &[
            "--user", "alice", "--name", "fixed", "--scopes", "api", "--token", fixed,
        ],
    );
    for t in [&t1, &t2, &t3] {
        secrets.push(t.clone());
        secrets.push(t["glpat-".len()..].to_string());
    }
    secrets.push(t4);
    secrets.push(password.to_string());

    let files = support::files_under(&g.data_dir);
    assert!(
        files.iter().any(|f| f.file_name().is_some_and(|n| n == "gitpat.db")),
        "the SQLite database is not in the data directory: {files:?}"
    );
    let mut all = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        for s in &secrets {
            assert!(
                !contains_bytes(&bytes, s.as_bytes()),
                "{} holds the plaintext secret {s:?}",
                f.display()
            );
        }
        all.extend(bytes);
    }
    // the scan does see the stored rows
    assert!(
        contains_bytes(&all, b"zebra-token-name"),
        "the token's name is nowhere in {files:?}: the scan read nothing"
    );
}

#[test]
fn data_dir_and_secret_key_are_private_and_digests_keyed() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        assert_eq!(mode(&g.data_dir), 0o700, "[{b}] mode of the data directory");
        let key = g.data_dir.join("secret_key");
        assert_eq!(mode(&key), 0o600, "[{b}] mode of {}", key.display());
        let key_text = std::fs::read_to_string(&key).unwrap();
        assert!(
            key_text.trim().len() == 64 && key_text.trim().bytes().all(|c| c.is_ascii_hexdigit()),
            "[{b}] the secret key file holds {} characters, not 64 hex digits",
            key_text.trim().len()
        );
        let (tok, entry) = create_token(&g, &["--user", "alice", "--name", "t", "--scopes", "api"]);
        assert_eq!(
            std::fs::read_to_string(&key).unwrap(),
            key_text,
            "[{b}] the key file changed"
        );

        // Another key, or none, is refused before anything is read or made:
        // under it the token would be unknown (and sessions and 2FA secrets
        // unreadable).
        let other = test_root(&g).join("other_key");
        let other_s = other.to_str().unwrap();
        let revoke_under = |key: &str, needle: &str| {
            refused(
                &g,
                &["--secret-key-file", key, "token", "revoke", "--token", &tok],
                needle,
            )
        };
        let err = revoke_under(other_s, "is missing, and this database was set up with a key");
        assert!(!err.contains(&key_text.trim()[..16]), "[{b}] the key shows in {err}");
        assert!(!other.exists(), "[{b}] a new key was made for a database that had one");
        std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
        revoke_under(other_s, "is not the one this database was set up with");
        // A database of an earlier version, with no fingerprint, takes the
        // key it is next opened with: here the other one first, which the
        // instance's own key is then refused for.
        let forget = || {
            diesel::sql_query("DELETE FROM instance_facts")
                .execute(&mut g.conn())
                .unwrap()
        };
        assert_eq!(forget(), 1, "[{b}] the fingerprint's row");
        g.ok(&["--secret-key-file", other_s, "user", "list"]);
        refused(&g, &["user", "list"], "is not the one this database was set up with");
        forget();
        g.ok(&["user", "list"]);
        revoke_under(other_s, "is not the one this database was set up with");
        let id = entry["id"].as_i64().unwrap();
        assert_eq!(token_by_id(&g, id)["active"], true, "[{b}]");
        // under the instance key it is found
        g.ok(&["token", "revoke", "--token", &tok]);
        assert_eq!(token_by_id(&g, id)["revoked"], true, "[{b}]");
    }
}

// ----------------------------------------------------------- repositories

#[test]
fn repo_create_makes_a_bare_repository() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        add_user(&g, "bob", &[]);
        let args = ["repo", "create", "alice/tools"];
        let id: i64 = one_line(&g, &args, &g.ok(&args))
            .parse()
            .unwrap_or_else(|_| panic!("[{b}] repo create did not print an id"));
        let bare = g.repos_dir().join("alice/tools.git");
        assert!(bare.is_dir(), "[{b}] {} is missing", bare.display());
        assert_eq!(head_file(&g, "alice/tools"), "ref: refs/heads/main\n", "[{b}]");
        assert_eq!(
            git(&bare, &["rev-parse", "--is-bare-repository"]),
            "true",
            "[{b}] {} is not bare",
            bare.display()
        );
        let r = repo(&g, "alice/tools");
        assert_eq!(r["id"], id, "[{b}] {r}");
        assert_eq!(r["name"], "tools", "[{b}] {r}");
        assert_eq!(r["namespace"], "alice", "[{b}] {r}");
        assert_eq!(
            r["owner"], "alice",
            "[{b}] the owner defaults to the first segment: {r}"
        );
        assert_eq!(r["visibility"], "private", "[{b}] {r}");
        assert_eq!(r["default_branch"], "main", "[{b}] {r}");

        // options are honoured
        g.ok(&[
            "repo",
            "create",
            "alice/lib",
            "--default-branch",
            "trunk",
            "--visibility",
            "public",
            "--description",
            "A library",
        ]);
        assert_eq!(head_file(&g, "alice/lib"), "ref: refs/heads/trunk\n", "[{b}]");
        let r = repo(&g, "alice/lib");
        assert_eq!(r["default_branch"], "trunk", "[{b}] {r}");
        assert_eq!(r["visibility"], "public", "[{b}] {r}");
        assert_eq!(r["description"], "A library", "[{b}] {r}");

        // an explicit owner, in a namespace that is no user; nested groups
        g.ok(&[
            "repo",
            "create",
            "team/app",
            "--owner",
            "bob",
            "--visibility",
            "internal",
        ]);
        assert!(g.repos_dir().join("team/app.git/HEAD").is_file(), "[{b}]");
        assert_eq!(repo(&g, "team/app")["owner"], "bob", "[{b}]");
        g.ok(&["repo", "create", "team/sub/deep", "--owner", "bob"]);
        assert!(g.repos_dir().join("team/sub/deep.git/HEAD").is_file(), "[{b}]");
        let r = repo(&g, "team/sub/deep");
        assert_eq!(r["namespace"], "team/sub", "[{b}] {r}");
        assert_eq!(r["name"], "deep", "[{b}] {r}");
        // a `.git` suffix is dropped
        g.ok(&["repo", "create", "bob/site.git"]);
        assert!(g.repos_dir().join("bob/site.git/HEAD").is_file(), "[{b}]");
        assert_eq!(repo(&g, "bob/site")["owner"], "bob", "[{b}]");

        // an unknown first segment needs --owner
        let before = tree(&test_root(&g));
        let repos_before = list(&g, "repo");
        refused(&g, &["repo", "create", "nobody/x"], "--owner");
        refused(&g, &["repo", "create", "alice/x", "--owner", "ghost"], "no user named");
        refused(
            &g,
            &["repo", "create", "alice/x", "--visibility", "secret"],
            "unknown visibility",
        );
        refused(&g, &["repo", "create", "alice/x", "--default-branch", "a..b"], "branch");
        assert_disk_unchanged(&g, &before, "refused repo creations");
        assert_eq!(
            list(&g, "repo"),
            repos_before,
            "[{b}] refused creations changed the list"
        );
        assert_eq!(list(&g, "repo").len(), 5, "[{b}]");
    }
}

#[test]
fn repo_create_refuses_bad_paths_and_duplicates_changing_nothing() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        // before any repository: nothing may appear, not even `.tmp`
        let before = tree(&test_root(&g));
        for bad in [
            "../x",
            "/abs/x",
            "alice/x/../../y",
            "alice/.hidden",
            "alice/x.git/y",
            "noslash",
            "alice/a b",
            "alice//x",
            "alice/x/",
            "alice/-x",
            "alice/x.atom",
        ] {
            // with --owner, so only the path can be what is refused
            refused(&g, &["repo", "create", bad, "--owner", "alice"], &format!("{bad:?}"));
        }
        assert_eq!(tree(&test_root(&g)), before, "[{b}] a refused path changed the disk");
        assert_eq!(list(&g, "repo"), Vec::<Value>::new(), "[{b}]");

        g.ok(&["repo", "create", "alice/tools"]);
        let before = tree(&test_root(&g));
        let repos_before = list(&g, "repo");
        let head_before = head_file(&g, "alice/tools");
        for dup in ["alice/tools", "Alice/Tools", "alice/tools.git", "ALICE/TOOLS"] {
            refused(&g, &["repo", "create", dup, "--owner", "alice"], "already exists");
        }
        refused(
            &g,
            &["repo", "create", "alice/tools", "--default-branch", "other"],
            "already exists",
        );
        assert_disk_unchanged(&g, &before, "duplicate repo creations");
        assert_eq!(list(&g, "repo"), repos_before, "[{b}] duplicates changed the list");
        assert_eq!(
            head_file(&g, "alice/tools"),
            head_before,
            "[{b}] a duplicate touched HEAD"
        );
    }
}

#[test]
fn repo_create_imports_an_existing_repository() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        let src_dir = tempfile::tempdir().unwrap();
        let src = src_dir.path().join("src");
        git(
            src_dir.path(),
            &["-c", "init.defaultBranch=develop", "init", "-q", src.to_str().unwrap()],
        );
        std::fs::write(src.join("README"), "hello\n").unwrap();
        git(&src, &["add", "README"]);
        git(&src, &["commit", "-q", "-m", "first"]);
        git(&src, &["tag", "-a", "v1.0", "-m", "release 1.0"]);
        git(&src, &["tag", "light"]);
        git(&src, &["checkout", "-q", "-b", "feature"]);
        std::fs::write(src.join("README"), "hello again\n").unwrap();
        git(&src, &["commit", "-q", "-am", "second"]);
        git(&src, &["checkout", "-q", "develop"]);

        g.ok(&["repo", "create", "alice/imported", "--import", src.to_str().unwrap()]);
        let bare = g.repos_dir().join("alice/imported.git");
        for r in [
            "refs/heads/develop",
            "refs/heads/feature",
            "refs/tags/v1.0",
            "refs/tags/light",
        ] {
            assert_eq!(
                git(&bare, &["rev-parse", "--verify", r]),
                git(&src, &["rev-parse", "--verify", r]),
                "[{b}] {r} differs after the import"
            );
        }
        assert_eq!(head_file(&g, "alice/imported"), "ref: refs/heads/develop\n", "[{b}]");
        assert_eq!(repo(&g, "alice/imported")["default_branch"], "develop", "[{b}]");
        assert_eq!(
            git(&bare, &["log", "-1", "--format=%s", "feature"]),
            "second",
            "[{b}] the imported objects are readable"
        );
        // git fetched them as one pack; repo gc repacks it with a bitmap.
        assert_eq!(
            g.ok(&["repo", "gc", "alice/imported"]),
            "alice/imported: 1 packs, now 1\n",
            "[{b}]"
        );
        let packs: Vec<String> = std::fs::read_dir(bare.join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            packs.iter().any(|p| p.ends_with(".bitmap")),
            "[{b}] no bitmap: {packs:?}"
        );
        let err = g.fails(&["repo", "gc", "alice/nothing-here"]);
        assert_eq!(err, "error: no repository alice/nothing-here\n", "[{b}]");

        // --default-branch picks the imported branch HEAD names...
        g.ok(&[
            "repo",
            "create",
            "alice/imp2",
            "--import",
            src.to_str().unwrap(),
            "--default-branch",
            "feature",
        ]);
        assert_eq!(head_file(&g, "alice/imp2"), "ref: refs/heads/feature\n", "[{b}]");
        assert_eq!(repo(&g, "alice/imp2")["default_branch"], "feature", "[{b}]");
        // ...and must exist there.
        let before = tree(&test_root(&g));
        refused(
            &g,
            &[
                "repo",
                "create",
                "alice/imp3",
                "--import",
                src.to_str().unwrap(),
                "--default-branch",
                "nope",
            ],
            "no branch \"nope\"",
        );
        assert_disk_unchanged(&g, &before, "an import with a missing default branch");

        // importing something that is not a repository leaves nothing
        let not_repo = src_dir.path().join("plain");
        std::fs::create_dir(&not_repo).unwrap();
        std::fs::write(not_repo.join("file"), "x").unwrap();
        let missing = src_dir.path().join("missing");
        let repos_before = list(&g, "repo");
        let before = tree(&test_root(&g));
        for p in [&not_repo, &missing] {
            refused(
                &g,
                &["repo", "create", "alice/broken", "--import", p.to_str().unwrap()],
                &p.display().to_string(),
            );
        }
        assert_disk_unchanged(&g, &before, "a failed import");
        assert!(!g.repos_dir().join("alice/broken.git").exists(), "[{b}]");
        assert_eq!(list(&g, "repo"), repos_before, "[{b}] a failed import changed the list");
        // and the path is still free
        g.ok(&["repo", "create", "alice/broken"]);
        assert_eq!(head_file(&g, "alice/broken"), "ref: refs/heads/main\n", "[{b}]");
    }
}

#[test]
fn repo_delete_removes_folder_and_row() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        add_user(&g, "bob", &[]);
        g.ok(&["repo", "create", "alice/tools"]);
        g.ok(&["repo", "create", "alice/other"]);
        g.ok(&["repo", "member", "add", "alice/tools", "bob", "--role", "developer"]);
        let folder = g.repos_dir().join("alice/tools.git");
        assert!(folder.is_dir(), "[{b}]");

        assert_eq!(
            g.ok(&["repo", "delete", "alice/tools"]),
            "",
            "[{b}] delete prints nothing"
        );
        assert!(!folder.exists(), "[{b}] {} is still there", folder.display());
        let paths: Vec<Value> = list(&g, "repo")
            .into_iter()
            .map(|r| r["path_with_namespace"].clone())
            .collect();
        assert_eq!(paths, ["alice/other"], "[{b}]");
        assert!(
            g.repos_dir().join("alice/other.git/HEAD").is_file(),
            "[{b}] the other repo is untouched"
        );
        let tmp = g.repos_dir().join(".tmp");
        if tmp.exists() {
            let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
            assert!(left.is_empty(), "[{b}] delete left {left:?} behind");
        }

        refused(&g, &["repo", "delete", "alice/tools"], "no repository");
        refused(&g, &["repo", "delete", "nobody/nothing"], "no repository");
        refused(&g, &["repo", "delete", "../escape"], "\"../escape\"");
        assert!(g.repos_dir().join("alice/other.git").is_dir(), "[{b}]");

        // the path can be used again, and the old membership is gone
        g.ok(&["repo", "create", "alice/tools"]);
        assert_eq!(head_file(&g, "alice/tools"), "ref: refs/heads/main\n", "[{b}]");
        g.ok(&["repo", "member", "add", "alice/tools", "bob", "--role", "guest"]);
        // delete by its `.git` name
        g.ok(&["repo", "delete", "alice/other.git"]);
        assert!(!g.repos_dir().join("alice/other.git").exists(), "[{b}]");
        assert_eq!(list(&g, "repo").len(), 1, "[{b}]");
    }
}

#[test]
fn repo_members() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        g.ok(&["repo", "create", "alice/tools"]);
        let roles = ["guest", "reporter", "developer", "maintainer", "owner"];
        for role in roles {
            let who = format!("m-{role}");
            add_user(&g, &who, &[]);
            assert_eq!(
                g.ok(&["repo", "member", "add", "alice/tools", &who, "--role", role]),
                "",
                "[{b}] member add prints nothing"
            );
            // adding twice, with any role, is refused
            refused(
                &g,
                &["repo", "member", "add", "alice/tools", &who, "--role", "guest"],
                "already a member",
            );
        }
        add_user(&g, "outsider", &[]);
        refused(
            &g,
            &["repo", "member", "add", "alice/tools", "outsider", "--role", "admin"],
            "unknown role",
        );
        refused(
            &g,
            &["repo", "member", "add", "alice/tools", "outsider", "--role", ""],
            "unknown role",
        );
        // a refused role added nobody: removing finds no membership
        refused(
            &g,
            &["repo", "member", "remove", "alice/tools", "outsider"],
            "is not a member",
        );
        refused(
            &g,
            &["repo", "member", "add", "alice/tools", "ghost", "--role", "guest"],
            "no user named",
        );
        refused(
            &g,
            &["repo", "member", "add", "alice/none", "outsider", "--role", "guest"],
            "no repository",
        );

        for role in roles {
            let who = format!("m-{role}");
            assert_eq!(g.ok(&["repo", "member", "remove", "alice/tools", &who]), "", "[{b}]");
            refused(
                &g,
                &["repo", "member", "remove", "alice/tools", &who],
                "is not a member",
            );
        }
        // removed members can be added again
        g.ok(&[
            "repo",
            "member",
            "add",
            "alice/tools",
            "m-guest",
            "--role",
            "maintainer",
        ]);
        refused(
            &g,
            &["repo", "member", "remove", "alice/tools", "ghost"],
            "no user named",
        );
        refused(
            &g,
            &["repo", "member", "remove", "alice/none", "m-guest"],
            "no repository",
        );
    }
}

// --------------------------------------------------------------- settings

/// The `key=value` lines of `settings get`, checking that each key is there
/// once.
fn settings_pairs(g: &Gitpat, out: &str) -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("[{}] `settings get` line {l:?} is not key=value", g.db.backend));
            (k.to_string(), v.to_string())
        })
        .collect();
    let distinct: BTreeSet<&String> = pairs.iter().map(|(k, _)| k).collect();
    assert_eq!(
        distinct.len(),
        pairs.len(),
        "[{}] a key is listed twice: {out}",
        g.db.backend
    );
    pairs
}

#[test]
fn settings_get_and_set() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        // every setting as `key=value`, each key once, the five known ones
        // with their defaults
        let defaults = [
            ("max_personal_access_token_lifetime", "none"),
            ("enforce_personal_access_token_expiration", "true"),
            ("password_authentication_enabled_for_git", "true"),
            ("personal_access_token_prefix", "glpat-"),
            ("personal_access_token_last_used_throttle_minutes", "10"),
        ];
        let all = g.ok(&["settings", "get"]);
        let pairs = settings_pairs(&g, &all);
        for (k, v) in defaults {
            let got: Vec<&String> = pairs.iter().filter(|(pk, _)| pk == k).map(|(_, pv)| pv).collect();
            assert_eq!(got, [v], "[{b}] `settings get` should list {k}={v} once: {all}");
            assert_eq!(
                g.ok(&["settings", "get", k]),
                format!("{v}\n"),
                "[{b}] settings get {k}"
            );
        }
        for (k, v) in &pairs {
            assert_eq!(
                g.ok(&["settings", "get", k]),
                format!("{v}\n"),
                "[{b}] settings get {k}"
            );
        }

        let sets = [
            ("max_personal_access_token_lifetime", "90"),
            ("enforce_personal_access_token_expiration", "false"),
            ("password_authentication_enabled_for_git", "false"),
            ("personal_access_token_prefix", "xyz_"),
            ("personal_access_token_last_used_throttle_minutes", "0"),
        ];
        for (k, v) in sets {
            assert_eq!(
                g.ok(&["settings", "set", k, v]),
                "",
                "[{b}] settings set prints nothing"
            );
            assert_eq!(g.ok(&["settings", "get", k]), format!("{v}\n"), "[{b}] {k}");
        }
        let changed = g.ok(&["settings", "get"]);
        assert_eq!(settings_pairs(&g, &changed).len(), pairs.len(), "[{b}] {changed}");
        for (k, v) in sets {
            assert!(
                changed.contains(&format!("{k}={v}\n")),
                "[{b}] {k}={v} missing in {changed}"
            );
        }

        for (k, v, needle) in [
            (
                "max_personal_access_token_lifetime",
                "0",
                "max_personal_access_token_lifetime",
            ),
            (
                "max_personal_access_token_lifetime",
                "401",
                "max_personal_access_token_lifetime",
            ),
            (
                "max_personal_access_token_lifetime",
                "-1",
                "max_personal_access_token_lifetime",
            ),
            (
                "max_personal_access_token_lifetime",
                "ten",
                "max_personal_access_token_lifetime",
            ),
            ("enforce_personal_access_token_expiration", "maybe", "true or false"),
            ("password_authentication_enabled_for_git", "2", "true or false"),
            (
                "personal_access_token_prefix",
                "has space",
                "personal_access_token_prefix",
            ),
            (
                "personal_access_token_prefix",
                "a-prefix-much-too-long-x",
                "personal_access_token_prefix",
            ),
            ("personal_access_token_last_used_throttle_minutes", "1441", "throttle"),
            ("personal_access_token_last_used_throttle_minutes", "x", "throttle"),
            ("no_such_setting", "1", "unknown setting"),
        ] {
            refused(&g, &["settings", "set", "--", k, v], needle);
            assert_eq!(
                g.ok(&["settings", "get"]),
                changed,
                "[{b}] a refused set of {k}={v:?} changed the settings"
            );
        }
        refused(&g, &["settings", "get", "no_such_setting"], "unknown setting");

        // back to no maximum
        g.ok(&["settings", "set", "max_personal_access_token_lifetime", "none"]);
        assert_eq!(
            g.ok(&["settings", "get", "max_personal_access_token_lifetime"]),
            "none\n",
            "[{b}]"
        );
    }
}

// ------------------------------------------------------- error convention

#[test]
fn errors_go_to_stderr_with_a_failing_exit() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        for args in [
            vec!["user", "block", "ghost"],
            vec!["user", "create", "alice", "--email", "a2@example.com"],
            vec!["token", "revoke", "--id", "42"],
            vec!["repo", "delete", "alice/none"],
            vec!["settings", "get", "nope"],
        ] {
            let out = g.run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "[{b}] gitpat {args:?}: exit status {:?}",
                out.status
            );
            assert!(out.stdout.is_empty(), "[{b}] gitpat {args:?} printed to stdout");
            assert!(err.starts_with("error: "), "[{b}] gitpat {args:?}: stderr {err:?}");
            assert_eq!(
                err.lines().count(),
                1,
                "[{b}] gitpat {args:?}: one error line, got {err:?}"
            );
        }
        // usage errors fail too, with nothing on stdout
        for args in [
            vec!["token", "create", "--user", "alice"],
            vec!["user", "frobnicate"],
            vec!["repo", "member", "add", "alice/x", "bob"],
        ] {
            let out = g.run(&args);
            assert!(!out.status.success(), "[{b}] gitpat {args:?} should fail");
            assert!(out.stdout.is_empty(), "[{b}] gitpat {args:?} printed to stdout");
            assert!(!out.stderr.is_empty(), "[{b}] gitpat {args:?} said nothing on stderr");
        }
    }
}

// ------------------------------------------------------------------ serve

/// A raw HTTP/1.0 GET: the status code and the body.
fn http_get(addr: SocketAddr, target: &str) -> (u16, String) {
    http_get_with(addr, target, &[])
}

#[test]
fn serve_health_endpoints_and_first_start() {
    use std::os::unix::fs::PermissionsExt;
    for g in Gitpat::each() {
        let b = g.db.backend;
        let pw_file = g.data_dir.join("initial_root_password");
        let first_password;
        {
            let server = Server::start(&g);
            for path in ["/-/liveness", "/-/readiness"] {
                let (status, body) = http_get(server.addr(), path);
                assert_eq!(status, 200, "[{b}] GET {path}: {body}");
                let json: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("[{b}] GET {path}: body {body:?} is not JSON: {e}"));
                assert_eq!(json, serde_json::json!({"status": "ok"}), "[{b}] GET {path}");
            }
            let (status, _) = http_get(server.addr(), "/no/such/page");
            assert_eq!(status, 404, "[{b}] an unknown route");

            // the first start made root, with its password in a private file
            let meta = std::fs::metadata(&pw_file)
                .unwrap_or_else(|e| panic!("[{b}] {}: {e}; log:\n{}", pw_file.display(), server.log()));
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "[{b}] mode of {}",
                pw_file.display()
            );
            first_password = std::fs::read_to_string(&pw_file).unwrap();
            let pw = first_password.trim();
            assert!(
                pw.len() >= 8 && first_password.lines().count() == 1,
                "[{b}] the initial password file holds {first_password:?}"
            );
            // the CLI works beside the running server
            let users = list(&g, "user");
            let roots: Vec<&Value> = users.iter().filter(|u| u["username"] == "root").collect();
            assert_eq!(roots.len(), 1, "[{b}] {users:?}");
            assert_eq!(roots[0]["is_admin"], true, "[{b}] {users:?}");
            assert!(!server.log().contains(pw), "[{b}] the root password is in the log");

            // a token in the query string is not logged
            let secret = "glpat-SECRETSECRETSECRET12";
            let (status, _) = http_get(server.addr(), &format!("/-/liveness?private_token={secret}&page=2"));
            assert_eq!(status, 200, "[{b}]");
            assert!(
                server.wait_for_log("/-/liveness?private_token=[REDACTED]&page=2"),
                "[{b}] the request was not logged; log:\n{}",
                server.log()
            );
            // nor one in an absolute-form target's userinfo, nor one under
            // a misspelled key
            let userinfo = "oauth2:glpat-USERINFOUSERINFO123";
            let target = format!(
                "http://{userinfo}@{}/-/liveness?private_token[]=glpat-ARRAYKEYARRAYKEY1",
                server.addr()
            );
            let (status, _) = http_get(server.addr(), &target);
            assert_eq!(status, 200, "[{b}] GET {target}");
            assert!(
                server.wait_for_log("/-/liveness?private_token[]=[REDACTED]"),
                "[{b}] the absolute-form request was not logged; log:\n{}",
                server.log()
            );
            // nor an authority-form target's (`GET user:token@host:port`)
            let (status, _) = http_get(server.addr(), "alice:glpat-AUTHFORMAUTHFORM12@127.0.0.1:80");
            assert!(status >= 400, "[{b}] an authority-form GET answered {status}");
            let (status, _) = http_get(server.addr(), "/-/liveness?marker=after-authority-form");
            assert_eq!(status, 200, "[{b}]");
            assert!(
                server.wait_for_log("/-/liveness?marker=after-authority-form"),
                "[{b}] the marker request was not logged; log:\n{}",
                server.log()
            );
            let log = server.log();
            for leaked in [
                "SECRETSECRETSECRET12",
                "USERINFOUSERINFO123",
                "ARRAYKEYARRAYKEY1",
                "AUTHFORMAUTHFORM12",
            ] {
                assert!(!log.contains(leaked), "[{b}] {leaked} reached the log:\n{log}");
            }
        }

        // a second start keeps the password file and makes no second root
        let server = Server::start(&g);
        let (status, _) = http_get(server.addr(), "/-/readiness");
        assert_eq!(status, 200, "[{b}] readiness after a restart");
        assert_eq!(
            std::fs::read_to_string(&pw_file).unwrap(),
            first_password,
            "[{b}] the second start rewrote the password file"
        );
        let roots = list(&g, "user").into_iter().filter(|u| u["username"] == "root").count();
        assert_eq!(roots, 1, "[{b}]");
        drop(server);
    }
}

#[test]
fn serve_does_not_create_root_when_users_exist() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &["--admin"]);
        let server = Server::start(&g);
        assert_eq!(http_get(server.addr(), "/-/liveness").0, 200, "[{b}]");
        assert!(
            !g.data_dir.join("initial_root_password").exists(),
            "[{b}] a root password was written though users exist"
        );
        let names: Vec<Value> = list(&g, "user").into_iter().map(|u| u["username"].clone()).collect();
        assert_eq!(names, ["alice"], "[{b}]");
    }
}

// ----------------------------------------------------------------- config

#[test]
fn config_file_unknown_keys_are_refused() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        let dir = test_root(&g);
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "listen = \"127.0.0.1:0\"\nlisten_port = 8080\n").unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "listen = \"127.0.0.1:0\"\n").unwrap();

        let bad_s = bad.to_str().unwrap();
        let err = refused(&g, &["--config", bad_s, "user", "list"], "unknown field `listen_port`");
        assert!(err.contains("bad.toml"), "[{b}] the error should name the file: {err}");

        // through the environment too
        let out = g
            .command()
            .env("GITPAT_CONFIG", &bad)
            .args(["settings", "get"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "[{b}] GITPAT_CONFIG with an unknown key should fail"
        );
        assert!(out.stdout.is_empty(), "[{b}]");
        assert!(err.contains("unknown field `listen_port`"), "[{b}] {err}");

        // the same file without the unknown key is fine
        g.ok(&["--config", good.to_str().unwrap(), "user", "list"]);
        refused(
            &g,
            &["--config", dir.join("missing.toml").to_str().unwrap(), "user", "list"],
            "cannot read the config file",
        );
    }
}

#[test]
fn serve_external_url_is_the_base_of_api_urls() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        let (tok, _) = create_token(&g, &["--user", "alice", "--name", "t", "--scopes", "api"]);
        let server = Server::start_with(&g, &["--external-url", "https://git.example.com/"]);
        let (status, body) = http_get(server.addr(), &format!("/api/v4/user?private_token={tok}"));
        assert_eq!(status, 200, "[{b}] GET /api/v4/user: {body}");
        let user: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(user["web_url"], "https://git.example.com/alice", "[{b}] {user}");
        let (status, body) = http_get(server.addr(), &format!("/api/v4/users?per_page=1&private_token={tok}"));
        assert_eq!(status, 200, "[{b}] GET /api/v4/users: {body}");
        let users: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(users[0]["web_url"], "https://git.example.com/alice", "[{b}] {users}");
        drop(server);
        // a malformed one is refused at start, saying why
        let out = g.run(&["serve", "--listen", "127.0.0.1:0", "--external-url", "git.example.com"]);
        assert!(!out.status.success(), "[{b}] serve took a bad external URL");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("external_url \"git.example.com\" must start with http:// or https://"),
            "[{b}] {err}"
        );
    }
}

/// `GET target` with `headers`, HTTP/1.0: the status and body.
fn http_get_with(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .unwrap_or_else(|e| panic!("read the response to {target}: {e}"));
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in the response to {target}: {text:?}"));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in the response to {target}: {text:?}"));
    (status, body.to_string())
}

#[test]
fn the_request_log_names_who_and_no_secret() {
    use base64::Engine;
    for g in Gitpat::each() {
        let b = g.db.backend;
        let alice = add_user(&g, "alice", &[]);
        let boss = add_user(&g, "boss", &["--admin"]);
        g.ok(&["repo", "create", "alice/logged", "--owner", "alice"]);
        let (tok, entry) = create_token(&g, &["--user", "alice", "--name", "t", "--scopes", "api"]);
        let (sudo, sudo_entry) = create_token(&g, &["--user", "boss", "--name", "s", "--scopes", "api,sudo"]);
        let (alice_id, boss_id) = (alice, boss);
        let (tok_id, sudo_id) = (entry["id"].as_i64().unwrap(), sudo_entry["id"].as_i64().unwrap());
        let server = Server::start(&g);
        let addr = server.addr();

        let (status, _) = http_get_with(addr, "/api/v4/user", &[("PRIVATE-TOKEN", &tok)]);
        assert_eq!(status, 200, "[{b}]");
        let line = "\"GET /api/v4/user\" 200".to_string();
        assert!(
            server.wait_for_log(&format!("user={alice_id} token={tok_id}")),
            "[{b}] the API request's line does not name alice and her token:\n{}",
            server.log()
        );
        let (status, _) = http_get_with(addr, "/api/v4/user", &[("PRIVATE-TOKEN", &sudo), ("Sudo", "alice")]);
        assert_eq!(status, 200, "[{b}]");
        assert!(
            server.wait_for_log(&format!("user={alice_id} token={sudo_id} sudo_by={boss_id}")),
            "[{b}] the Sudo request's line:\n{}",
            server.log()
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{tok}"));
        let (status, _) = http_get_with(
            addr,
            "/alice/logged.git/info/refs?service=git-upload-pack",
            &[("Authorization", &format!("Basic {basic}"))],
        );
        assert_eq!(status, 200, "[{b}]");
        assert!(server.wait_for_log("info/refs?service=git-upload-pack\" 200"), "[{b}]");
        // An unknown path has a body that says so.
        let (status, body) = http_get_with(addr, "/no/such/page", &[]);
        assert_eq!(
            (status, body.trim_end()),
            (404, "404 Not Found: there is nothing at this address"),
            "[{b}]"
        );
        let log = server.log();
        let git_line = log
            .lines()
            .find(|l| l.contains("info/refs?service=git-upload-pack"))
            .unwrap_or_default();
        assert!(
            git_line.ends_with(&format!("user={alice_id} token={tok_id}")),
            "[{b}] {git_line}"
        );
        assert!(log.contains(&line), "[{b}]");
        assert!(
            !log.contains(&tok) && !log.contains(&sudo) && !log.contains(&basic),
            "[{b}] a secret in the log"
        );
    }
}

#[test]
fn token_create_limits_a_token_and_refuses_bad_patterns() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        add_user(&g, "alice", &[]);
        let (_, entry) = create_token(
            &g,
            &[
                "--user",
                "alice",
                "--name",
                "ci",
                "--scopes",
                "write_repository",
                "--repositories",
                "alice/tools,team/*",
                "--push-ref-patterns",
                "refs/heads/feature/*,refs/tags/v*",
            ],
        );
        assert_eq!(
            entry["repositories"],
            serde_json::json!(["alice/tools", "team/*"]),
            "[{b}] {entry}"
        );
        assert_eq!(
            entry["push_ref_patterns"],
            serde_json::json!(["refs/heads/feature/*", "refs/tags/v*"]),
            "[{b}] {entry}"
        );
        // Rotation keeps both.
        let id = entry["id"].as_i64().expect("an id").to_string();
        let (_, rotated) = rotate_token(&g, &["--id", &id]);
        assert_eq!(rotated["repositories"], entry["repositories"], "[{b}] {rotated}");
        assert_eq!(
            rotated["push_ref_patterns"], entry["push_ref_patterns"],
            "[{b}] {rotated}"
        );
        let cases: [(&str, &str, &str); 5] = [
            ("--repositories", "team/*/x", "may only be the whole last segment"),
            ("--repositories", "alice/tools,", "an entry is empty"),
            ("--repositories", "tools", "no namespace"),
            ("--push-ref-patterns", "main", "does not start with refs/"),
            ("--push-ref-patterns", "refs/heads/*/*", "more than one '*'"),
        ];
        for (flag, value, needle) in cases {
            let before = list(&g, "token");
            refused(
                &g,
                &[
                    "token", "create", "--user", "alice", "--name", "x", "--scopes", "api", flag, value,
                ],
                needle,
            );
            assert_eq!(list(&g, "token"), before, "[{b}] {flag} {value} wrote a token");
        }
    }
}
