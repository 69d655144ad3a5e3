//! The REST API's authentication, scopes, sudo, personal access token and
//! impersonation token endpoints, and pagination, against the real server
//! on every backend. Each test asserts one rule of `/work/api-contract.md`
//! exactly; every refused write also shows that nothing was stored.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use diesel::prelude::*;
use gitpat::db::schema::personal_access_tokens as pat;
use gitpat::service::{tokens, users};
use gitpat::settings::Settings;
use serde_json::{json, Value};

use crate::api_users::links;
use crate::support::api::{
    expect, expect_bad_request, forbidden, is_iso_ms, status, unauthorized, unchanged, ApiReply,
};
use crate::support::server::TestServer;

/// Every member of a token's JSON (`token` comes on top in create and
/// rotate replies).
const TOKEN_KEYS: [&str; 14] = [
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
    // gitpat's restricted tokens: null when unrestricted.
    "repositories",
    "push_ref_patterns",
];

const SCOPE_DESCRIPTION: &str = "The request requires higher privileges than provided by the access token.";

// ---------------------------------------------------------------------
// Helpers.

/// The 403 of a token without the scope the endpoint needs; `scope` lists
/// the scopes that would have sufficed.
fn insufficient(scope: &str) -> Value {
    json!({"error": "insufficient_scope", "error_description": SCOPE_DESCRIPTION, "scope": scope})
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn in_days(n: i64) -> NaiveDate {
    today() + Duration::days(n)
}

fn parse_timestamp(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3fZ").unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// Uses a token once, so that its use is recorded and the next requests
/// within the throttle window write nothing (then snapshots compare).
fn warm(srv: &TestServer, secret: &str) {
    let r = srv.api("GET", "/personal_access_tokens/self", Some(secret), None);
    status(srv, "warming a token up with GET /personal_access_tokens/self", &r, 200);
}

/// A token made through the library, with the given name, description,
/// scopes and expiry; its id and secret.
fn make(
    srv: &TestServer,
    user: &str,
    name: &str,
    description: Option<&str>,
    scopes: &[&str],
    expires: Option<NaiveDate>,
    impersonation: bool,
) -> (i64, String) {
    let conn = &mut srv.conn();
    let u = users::get(conn, user).expect("the token's user");
    let settings = Settings::load(conn).expect("settings");
    let sc: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let req = tokens::NewTokenRequest {
        user: &u,
        name,
        description,
        scopes: &sc,
        expires_at: expires,
        token: None,
        impersonation,
        actor: &gitpat::service::audit::Actor::cli(),
    };
    let (row, plain) = tokens::create(conn, &srv.app.key, &settings, &req, Utc::now())
        .unwrap_or_else(|e| panic!("create the token {name} of {user}: {e}"));
    (row.id, plain.expose().to_string())
}

/// A plain `api` token named `name`; its id.
fn named(srv: &TestServer, user: &str, name: &str) -> i64 {
    make(srv, user, name, None, &["api"], None, false).0
}

fn id_of(srv: &TestServer, secret: &str) -> i64 {
    srv.token_row(secret).id
}

fn set_created(srv: &TestServer, id: i64, at: NaiveDateTime) {
    let conn = &mut *srv.conn();
    diesel::update(pat::table.find(id))
        .set(pat::created_at.eq(at))
        .execute(conn)
        .expect("set created_at");
}

fn set_last_used(srv: &TestServer, id: i64, at: NaiveDateTime) {
    let conn = &mut *srv.conn();
    diesel::update(pat::table.find(id))
        .set(pat::last_used_at.eq(Some(at)))
        .execute(conn)
        .expect("set last_used_at");
}

fn set_expires(srv: &TestServer, id: i64, on: Option<NaiveDate>) {
    let conn = &mut *srv.conn();
    diesel::update(pat::table.find(id))
        .set(pat::expires_at.eq(on))
        .execute(conn)
        .expect("set expires_at");
}

fn revoke(srv: &TestServer, id: i64) {
    tokens::revoke(
        &mut srv.conn(),
        &gitpat::service::audit::Actor::cli(),
        id,
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("revoke token {id}: {e}"));
}

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// `now - minutes`, to the second (every backend stores that exactly).
fn minutes_ago(minutes: i64) -> NaiveDateTime {
    (Utc::now() - Duration::minutes(minutes))
        .naive_utc()
        .with_nanosecond(0)
        .expect("a valid time")
}

/// The scopes of a token's JSON, sorted.
fn scopes(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v["scopes"]
        .as_array()
        .unwrap_or_else(|| panic!("scopes is not an array in {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("a scope is not a string in {v}"))
                .to_string()
        })
        .collect();
    s.sort();
    s
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut s: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    s.sort();
    s
}

/// Checks a token's JSON against the contract: exactly its members, with
/// their types and formats; `token` (the secret) only if `with_secret`.
fn check_token_json(srv: &TestServer, what: &str, v: &Value, with_secret: bool) {
    let b = srv.backend();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("[{b}] {what}: not a JSON object: {v}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want: Vec<&str> = TOKEN_KEYS.to_vec();
    if with_secret {
        want.push("token");
    }
    want.sort_unstable();
    assert_eq!(keys, want, "[{b}] {what}: the members of {v}");
    assert!(v["id"].is_i64(), "[{b}] {what}: id in {v}");
    assert!(v["user_id"].is_i64(), "[{b}] {what}: user_id in {v}");
    assert!(v["name"].is_string(), "[{b}] {what}: name in {v}");
    assert!(
        v["description"].is_string() || v["description"].is_null(),
        "[{b}] {what}: description in {v}"
    );
    for k in ["revoked", "active", "impersonation"] {
        assert!(v[k].is_boolean(), "[{b}] {what}: {k} in {v}");
    }
    scopes(v);
    assert!(
        v["created_at"].as_str().is_some_and(is_iso_ms),
        "[{b}] {what}: created_at is not ISO 8601 UTC with milliseconds: {v}"
    );
    assert!(
        v["last_used_at"].is_null() || v["last_used_at"].as_str().is_some_and(is_iso_ms),
        "[{b}] {what}: last_used_at is neither null nor ISO 8601 UTC with milliseconds: {v}"
    );
    assert!(
        v["expires_at"].is_null() || v["expires_at"].as_str().is_some_and(is_date),
        "[{b}] {what}: expires_at is neither null nor YYYY-MM-DD: {v}"
    );
    assert!(
        v["last_used_ips"]
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string)),
        "[{b}] {what}: last_used_ips is not an array of strings: {v}"
    );
    if with_secret {
        let t = v["token"].as_str().unwrap_or_default();
        let random = t.strip_prefix("glpat-").unwrap_or_default();
        assert!(
            random.len() == 20
                && random
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'),
            "[{b}] {what}: token is not glpat- and 20 characters of [A-Za-z0-9_-]: {v}"
        );
    }
}

/// The `id`s of a list reply, sorted.
fn id_set(r: &ApiReply) -> Vec<i64> {
    let mut ids = r.ids();
    ids.sort_unstable();
    ids
}

/// `GET /personal_access_tokens?<query>` as the holder of `secret`; must be 200.
fn list(srv: &TestServer, secret: &str, query: &str) -> ApiReply {
    let path = format!("/personal_access_tokens?{query}");
    let r = srv.api("GET", &path, Some(secret), None);
    status(srv, &format!("GET {path}"), &r, 200);
    r
}

fn header<'a>(srv: &TestServer, r: &'a ApiReply, name: &str) -> &'a str {
    r.header(name)
        .unwrap_or_else(|| panic!("[{}] no {name} header in {:?}", srv.backend(), r.raw.headers))
}

// ---------------------------------------------------------------------
// Authentication.

#[test]
fn auth_private_token_header_authenticates() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let r = srv.api("GET", "/user", Some(&t), None);
        status(&srv, "GET /user with PRIVATE-TOKEN", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{}] GET /user", srv.backend());
    }
}

#[test]
fn auth_private_token_query_param_authenticates() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let r = srv.api("GET", &format!("/user?private_token={t}"), None, None);
        status(&srv, "GET /user?private_token=", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{}] GET /user", srv.backend());
    }
}

#[test]
fn auth_private_token_in_a_form_body_authenticates() {
    for srv in TestServer::each() {
        let alice = srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let r = srv.api_form(
            "POST",
            "/personal_access_tokens/self/rotate",
            None,
            &format!("private_token={t}"),
        );
        status(
            &srv,
            "POST /personal_access_tokens/self/rotate, form private_token",
            &r,
            200,
        );
        assert_eq!(
            r.int("user_id"),
            alice.id,
            "[{}] the rotated token's owner",
            srv.backend()
        );
        assert!(
            srv.token_row(&t).revoked,
            "[{}] the token of the form body was rotated away",
            srv.backend()
        );
    }
}

#[test]
fn auth_private_token_in_a_json_body_authenticates() {
    for srv in TestServer::each() {
        let alice = srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let r = srv.api(
            "POST",
            "/personal_access_tokens/self/rotate",
            None,
            Some(&json!({"private_token": t})),
        );
        status(
            &srv,
            "POST /personal_access_tokens/self/rotate, JSON private_token",
            &r,
            200,
        );
        assert_eq!(
            r.int("user_id"),
            alice.id,
            "[{}] the rotated token's owner",
            srv.backend()
        );
        assert!(
            srv.token_row(&t).revoked,
            "[{}] the token of the JSON body was rotated away",
            srv.backend()
        );
    }
}

#[test]
fn auth_private_token_in_the_body_wins_over_the_query() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let good = srv.token("alice", &["api"], None);
        let bad = "glpat-notarealtoken00000";
        let path = format!("/personal_access_tokens/self/rotate?private_token={bad}");
        let r = srv.api_form("POST", &path, None, &format!("private_token={good}"));
        status(&srv, "bad private_token in the query, good one in the body", &r, 200);
        assert!(srv.token_row(&good).revoked, "[{b}] the body's token was rotated");
        let other = srv.token("alice", &["api"], None);
        warm(&srv, &other);
        let before = srv.snapshot();
        let path = format!("/personal_access_tokens/self/rotate?private_token={other}");
        let r = srv.api_form("POST", &path, None, &format!("private_token={bad}"));
        let what = "good private_token in the query, bad one in the body";
        expect(&srv, what, &r, 401, unauthorized());
        unchanged(&srv, &before, what);
    }
}

#[test]
fn auth_bearer_header_authenticates() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let bearer = format!("Bearer {t}");
        let r = srv.api_raw("GET", "/user", &[("Authorization", &bearer)], b"");
        status(&srv, "GET /user with Authorization: Bearer", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{}] GET /user", srv.backend());
    }
}

#[test]
fn auth_token_sources_are_taken_header_then_param_then_bearer() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let good = srv.token("alice", &["api"], None);
        let bad = "glpat-notarealtoken00000";
        let b = srv.backend();
        // The header wins over the parameter.
        let r = srv.api("GET", &format!("/user?private_token={bad}"), Some(&good), None);
        status(&srv, "good PRIVATE-TOKEN, bad private_token", &r, 200);
        let r = srv.api("GET", &format!("/user?private_token={good}"), Some(bad), None);
        expect(&srv, "bad PRIVATE-TOKEN, good private_token", &r, 401, unauthorized());
        // The parameter wins over Bearer.
        let bearer_bad = format!("Bearer {bad}");
        let r = srv.api_raw(
            "GET",
            &format!("/user?private_token={good}"),
            &[("Authorization", &bearer_bad)],
            b"",
        );
        status(&srv, "good private_token, bad Bearer", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{b}] GET /user");
        let bearer_good = format!("Bearer {good}");
        let r = srv.api_raw(
            "GET",
            &format!("/user?private_token={bad}"),
            &[("Authorization", &bearer_good)],
            b"",
        );
        expect(&srv, "bad private_token, good Bearer", &r, 401, unauthorized());
        // The OAuth-style access_token parameter comes last.
        let r = srv.api("GET", &format!("/user?access_token={good}"), None, None);
        status(&srv, "good access_token", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{b}] GET /user?access_token=");
        let r = srv.api("GET", &format!("/user?access_token={good}"), Some(bad), None);
        expect(&srv, "bad PRIVATE-TOKEN, good access_token", &r, 401, unauthorized());
    }
}

#[test]
fn auth_no_token_is_401() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        for path in ["/user", "/personal_access_tokens", "/personal_access_tokens/self"] {
            let r = srv.api("GET", path, None, None);
            expect(&srv, &format!("GET {path} without a token"), &r, 401, unauthorized());
        }
    }
}

#[test]
fn auth_unknown_token_is_401() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        srv.token("alice", &["api"], None);
        for t in ["glpat-AAAAAAAAAAAAAAAAAAAA", "not-a-token", "x"] {
            let r = srv.api("GET", "/user", Some(t), None);
            expect(
                &srv,
                &format!("GET /user with unknown token {t:?}"),
                &r,
                401,
                unauthorized(),
            );
            let bearer = format!("Bearer {t}");
            let r = srv.api_raw("GET", "/user", &[("Authorization", &bearer)], b"");
            expect(
                &srv,
                &format!("GET /user with unknown Bearer {t:?}"),
                &r,
                401,
                unauthorized(),
            );
        }
    }
}

#[test]
fn auth_revoked_token_is_401() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        status(
            &srv,
            "GET /user before revoking",
            &srv.api("GET", "/user", Some(&t), None),
            200,
        );
        revoke(&srv, id_of(&srv, &t));
        let r = srv.api("GET", "/user", Some(&t), None);
        expect(&srv, "GET /user with a revoked token", &r, 401, unauthorized());
    }
}

#[test]
fn auth_expired_token_is_401() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], Some(in_days(1)));
        status(
            &srv,
            "GET /user before expiry",
            &srv.api("GET", "/user", Some(&t), None),
            200,
        );
        let id = id_of(&srv, &t);
        // A token expires at 00:00 UTC of its expiry date.
        for (label, on) in [("today", today()), ("yesterday", in_days(-1))] {
            set_expires(&srv, id, Some(on));
            let r = srv.api("GET", "/user", Some(&t), None);
            expect(
                &srv,
                &format!("GET /user with a token that expired {label}"),
                &r,
                401,
                unauthorized(),
            );
        }
    }
}

#[test]
fn auth_expired_token_works_when_expiry_is_not_enforced() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], Some(in_days(1)));
        set_expires(&srv, id_of(&srv, &t), Some(in_days(-3)));
        status(
            &srv,
            "GET /user, expired, enforced",
            &srv.api("GET", "/user", Some(&t), None),
            401,
        );
        srv.setting("enforce_personal_access_token_expiration", "false");
        let r = srv.api("GET", "/user", Some(&t), None);
        status(&srv, "GET /user with an expired token, expiry not enforced", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{}] GET /user", srv.backend());
    }
}

#[test]
fn auth_token_of_a_blocked_user_is_403_account_blocked() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        users::set_blocked(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            "alice",
            true,
            chrono::Utc::now(),
        )
        .expect("block alice");
        let r = srv.api("GET", "/user", Some(&t), None);
        expect(
            &srv,
            "GET /user as a blocked user",
            &r,
            403,
            json!({"message": "403 Forbidden - Your account has been blocked."}),
        );
        let r = srv.api("GET", "/user", Some("glpat-notarealtoken00000"), None);
        expect(&srv, "GET /user with an unknown token", &r, 401, unauthorized());
        users::set_blocked(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            "alice",
            false,
            chrono::Utc::now(),
        )
        .expect("unblock alice");
        let r = srv.api("GET", "/user", Some(&t), None);
        status(&srv, "GET /user once unblocked", &r, 200);
    }
}

#[test]
fn auth_reusing_a_rotated_away_token_revokes_its_whole_family() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let bystander = srv.token("alice", &["api"], None);
        let old = srv.token("alice", &["api"], None);
        let r = srv.api("POST", "/personal_access_tokens/self/rotate", Some(&old), None);
        status(&srv, "POST /personal_access_tokens/self/rotate", &r, 200);
        let new = r.str("token").to_string();
        status(
            &srv,
            "GET /user with the successor",
            &srv.api("GET", "/user", Some(&new), None),
            200,
        );
        let r = srv.api("GET", "/user", Some(&old), None);
        expect(&srv, "GET /user with the rotated-away token", &r, 401, unauthorized());
        assert!(
            srv.token_row(&new).revoked,
            "[{b}] the successor is revoked once the old token was reused"
        );
        let r = srv.api("GET", "/user", Some(&new), None);
        expect(&srv, "GET /user with the burnt successor", &r, 401, unauthorized());
        assert!(
            !srv.token_row(&bystander).revoked,
            "[{b}] a token of another family revoked"
        );
    }
}

#[test]
fn auth_reusing_the_first_of_two_rotations_revokes_the_latest() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let first = srv.token("alice", &["api"], None);
        let r = srv.api("POST", "/personal_access_tokens/self/rotate", Some(&first), None);
        status(&srv, "first rotation", &r, 200);
        let second = r.str("token").to_string();
        let r = srv.api("POST", "/personal_access_tokens/self/rotate", Some(&second), None);
        status(&srv, "second rotation", &r, 200);
        let third = r.str("token").to_string();
        status(
            &srv,
            "GET /user with the third",
            &srv.api("GET", "/user", Some(&third), None),
            200,
        );
        let r = srv.api("GET", "/user", Some(&first), None);
        expect(&srv, "GET /user with the first", &r, 401, unauthorized());
        assert!(
            srv.token_row(&third).revoked,
            "[{b}] the latest of the family is revoked"
        );
        let r = srv.api("GET", "/user", Some(&third), None);
        expect(&srv, "GET /user with the burnt third", &r, 401, unauthorized());
    }
}

#[test]
fn auth_records_last_used_at_and_the_client_ip() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let t = srv.token("alice", &["read_user"], None);
        let id = id_of(&srv, &t);
        let path = format!("/personal_access_tokens/{id}");
        let r = srv.api("GET", &path, Some(&admin), None);
        status(&srv, &format!("GET {path} before use"), &r, 200);
        assert!(r.json["last_used_at"].is_null(), "[{b}] never used: {}", r.json);
        assert_eq!(r.json["last_used_ips"], json!([]), "[{b}] never used");

        // a call its scope does not allow records nothing
        let r = srv.api("GET", "/projects", Some(&t), None);
        status(&srv, "GET /projects with read_user", &r, 403);
        let row = srv.token_row(&t);
        assert!(
            row.last_used_at.is_none() && row.last_used_ips == "[]",
            "[{b}] a call refused for its scope recorded use: {:?} {}",
            row.last_used_at,
            row.last_used_ips
        );

        let before = Utc::now().naive_utc() - Duration::seconds(1);
        status(&srv, "GET /user", &srv.api("GET", "/user", Some(&t), None), 200);
        let after = Utc::now().naive_utc() + Duration::seconds(1);

        let r = srv.api("GET", &path, Some(&admin), None);
        status(&srv, &format!("GET {path} after use"), &r, 200);
        check_token_json(&srv, &format!("GET {path}"), &r.json, false);
        let used = r.json["last_used_at"]
            .as_str()
            .unwrap_or_else(|| panic!("[{b}] last_used_at not set after a call: {}", r.json));
        let used = parse_timestamp(used);
        assert!(
            before <= used && used <= after,
            "[{b}] last_used_at {used} not between {before} and {after}"
        );
        let ips = r.json["last_used_ips"].as_array().expect("last_used_ips");
        assert!(
            ips.contains(&json!("127.0.0.1")),
            "[{b}] last_used_ips lacks 127.0.0.1: {}",
            r.json
        );
        let row = srv.token_row(&t);
        assert!(row.last_used_at.is_some(), "[{b}] the stored last_used_at");
    }
}

#[test]
fn auth_last_used_at_is_written_at_most_once_per_throttle_window() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let id = id_of(&srv, &t);
        warm(&srv, &t);
        // Within the default 10 minutes: not written again.
        let recent = minutes_ago(5);
        set_last_used(&srv, id, recent);
        status(&srv, "GET /user", &srv.api("GET", "/user", Some(&t), None), 200);
        assert_eq!(
            srv.token_row(&t).last_used_at,
            Some(recent),
            "[{b}] last_used_at rewritten within the throttle window"
        );
        // Past it: written.
        set_last_used(&srv, id, minutes_ago(11));
        let before = Utc::now().naive_utc() - Duration::seconds(1);
        status(&srv, "GET /user", &srv.api("GET", "/user", Some(&t), None), 200);
        let stored = srv.token_row(&t).last_used_at.expect("last_used_at");
        assert!(
            stored >= before,
            "[{b}] last_used_at {stored} not refreshed after the throttle window"
        );
        // The window is the instance setting.
        srv.setting("personal_access_token_last_used_throttle_minutes", "60");
        let recent = minutes_ago(30);
        set_last_used(&srv, id, recent);
        status(&srv, "GET /user", &srv.api("GET", "/user", Some(&t), None), 200);
        assert_eq!(
            srv.token_row(&t).last_used_at,
            Some(recent),
            "[{b}] last_used_at rewritten within a 60-minute window"
        );
        srv.setting("personal_access_token_last_used_throttle_minutes", "1");
        status(&srv, "GET /user", &srv.api("GET", "/user", Some(&t), None), 200);
        let stored = srv.token_row(&t).last_used_at.expect("last_used_at");
        assert!(
            stored >= before,
            "[{b}] last_used_at {stored} not refreshed past a 1-minute window"
        );
    }
}

// ---------------------------------------------------------------------
// Scopes.

#[test]
fn scope_read_api_reads_but_cannot_write() {
    for srv in TestServer::each() {
        let root = srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let t = srv.token("root", &["read_api"], None);
        let (victim, _) = make(&srv, "alice", "victim", None, &["api"], None, false);
        for path in ["/user", "/personal_access_tokens", "/personal_access_tokens/self"] {
            let r = srv.api("GET", path, Some(&t), None);
            status(&srv, &format!("GET {path} with read_api"), &r, 200);
        }
        warm(&srv, &t);
        let writes: Vec<(&str, String, Option<Value>)> = vec![
            ("POST", format!("/personal_access_tokens/{victim}/rotate"), None),
            ("DELETE", format!("/personal_access_tokens/{victim}"), None),
            (
                "POST",
                format!("/users/{}/personal_access_tokens", alice.id),
                Some(json!({"name": "n", "scopes": ["api"]})),
            ),
            ("PUT", format!("/users/{}", root.id), Some(json!({"name": "New Name"}))),
        ];
        for (method, path, body) in writes {
            let before = srv.snapshot();
            let r = srv.api(method, &path, Some(&t), body.as_ref());
            let what = format!("{method} {path} with read_api");
            expect(&srv, &what, &r, 403, insufficient("api"));
            unchanged(&srv, &before, &what);
        }
    }
}

/// The status of `HEAD /api/v4<path>` with the token as `PRIVATE-TOKEN`
/// (read by hand: a HEAD reply announces a body it does not send).
fn head_status(srv: &TestServer, path: &str, secret: &str) -> u16 {
    let req = format!(
        "HEAD /api/v4{path} HTTP/1.1\r\nHost: {}\r\nPRIVATE-TOKEN: {secret}\r\nConnection: close\r\n\r\n",
        srv.addr
    );
    let reply = srv
        .raw_bytes(req.as_bytes(), false)
        .unwrap_or_else(|e| panic!("[{}] HEAD {path}: {e}", srv.backend()));
    let text = String::from_utf8_lossy(&reply);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
    status.unwrap_or_else(|| panic!("[{}] HEAD {path}: no status line in {text:?}", srv.backend()))
}

#[test]
fn scope_head_requests_follow_the_get_rules() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let read_api = srv.token("alice", &["read_api"], None);
        let read_user = srv.token("alice", &["read_user"], None);
        let read_repo = srv.token("alice", &["read_repository"], None);
        let cases = [
            ("/personal_access_tokens", &read_api, 200),
            ("/user", &read_api, 200),
            ("/user", &read_user, 200),
            ("/personal_access_tokens", &read_user, 403),
            ("/user", &read_repo, 403),
        ];
        for (path, secret, want) in cases {
            let scope = scopes(&srv.api("GET", "/personal_access_tokens/self", Some(secret), None).json);
            assert_eq!(
                head_status(&srv, path, secret),
                want,
                "[{b}] HEAD {path} with {scope:?}"
            );
        }
    }
}

#[test]
fn scope_read_user_reads_users_only() {
    for srv in TestServer::each() {
        let alice = srv.user("alice", false, None);
        let t = srv.token("alice", &["read_user"], None);
        for path in [
            "/user".to_string(),
            "/users".to_string(),
            format!("/users/{}", alice.id),
            "/version".into(),
        ] {
            let r = srv.api("GET", &path, Some(&t), None);
            status(&srv, &format!("GET {path} with read_user"), &r, 200);
        }
        for path in ["/projects", "/personal_access_tokens"] {
            let r = srv.api("GET", path, Some(&t), None);
            expect(
                &srv,
                &format!("GET {path} with read_user"),
                &r,
                403,
                insufficient("api read_api"),
            );
        }
    }
}

#[test]
fn scope_read_repository_cannot_read_the_user() {
    for srv in TestServer::each() {
        let alice = srv.user("alice", false, None);
        let t = srv.token("alice", &["read_repository"], None);
        for path in [
            "/user".to_string(),
            "/users".to_string(),
            format!("/users/{}", alice.id),
        ] {
            let r = srv.api("GET", &path, Some(&t), None);
            expect(
                &srv,
                &format!("GET {path} with read_repository"),
                &r,
                403,
                insufficient("api read_api read_user"),
            );
        }
        let r = srv.api("GET", "/personal_access_tokens", Some(&t), None);
        expect(
            &srv,
            "GET /personal_access_tokens with read_repository",
            &r,
            403,
            insufficient("api read_api"),
        );
    }
}

#[test]
fn scope_self_get_and_delete_work_with_any_scope() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        for scope in ["read_repository", "write_repository", "read_registry", "read_user"] {
            let t = srv.token("alice", &[scope], None);
            let id = id_of(&srv, &t);
            let r = srv.api("GET", "/personal_access_tokens/self", Some(&t), None);
            status(&srv, &format!("GET /personal_access_tokens/self with {scope}"), &r, 200);
            assert_eq!(r.int("id"), id, "[{b}] self with {scope}");
            let r = srv.api("DELETE", "/personal_access_tokens/self", Some(&t), None);
            status(
                &srv,
                &format!("DELETE /personal_access_tokens/self with {scope}"),
                &r,
                204,
            );
            assert!(srv.token_row(&t).revoked, "[{b}] DELETE self with {scope} revokes");
        }
    }
}

#[test]
fn scope_self_rotate_needs_api() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        for scope in ["read_api", "read_user", "read_repository", "write_repository"] {
            let t = srv.token("alice", &[scope], None);
            warm(&srv, &t);
            let before = srv.snapshot();
            let r = srv.api("POST", "/personal_access_tokens/self/rotate", Some(&t), None);
            let what = format!("POST /personal_access_tokens/self/rotate with {scope}");
            expect(&srv, &what, &r, 403, insufficient("api"));
            unchanged(&srv, &before, &what);
        }
        let t = srv.token("alice", &["api"], None);
        let r = srv.api("POST", "/personal_access_tokens/self/rotate", Some(&t), None);
        status(&srv, "POST /personal_access_tokens/self/rotate with api", &r, 200);
        assert!(srv.token_row(&t).revoked, "[{b}] rotated away");
    }
}

#[test]
fn scope_is_checked_before_the_endpoints_own_rules() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        let t = srv.token("alice", &["read_api"], None);
        warm(&srv, &t);
        // A non-admin would get 403 Forbidden here; the scope comes first.
        let path = format!("/users/{}/personal_access_tokens", bob.id);
        let before = srv.snapshot();
        let r = srv.api("POST", &path, Some(&t), Some(&json!({"name": "n", "scopes": ["api"]})));
        expect(
            &srv,
            &format!("POST {path} with read_api"),
            &r,
            403,
            insufficient("api"),
        );
        unchanged(&srv, &before, &format!("POST {path} with read_api"));
    }
}

// ---------------------------------------------------------------------
// Sudo.

#[test]
fn sudo_header_by_username_and_by_id_acts_as_the_user() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let bob = srv.user("bob", false, None);
        let t = srv.token("root", &["api", "sudo"], None);
        let id = bob.id.to_string();
        for who in ["bob", id.as_str()] {
            let r = srv.api_raw("GET", "/user", &[("PRIVATE-TOKEN", &t), ("Sudo", who)], b"");
            status(&srv, &format!("GET /user with Sudo: {who}"), &r, 200);
            assert_eq!(r.str("username"), "bob", "[{b}] Sudo: {who}");
            assert_eq!(r.int("id"), bob.id, "[{b}] Sudo: {who}");
        }
    }
}

#[test]
fn sudo_param_by_username_and_by_id_acts_as_the_user() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let bob = srv.user("bob", false, None);
        let t = srv.token("root", &["api", "sudo"], None);
        for who in ["bob".to_string(), bob.id.to_string()] {
            let r = srv.api("GET", &format!("/user?sudo={who}"), Some(&t), None);
            status(&srv, &format!("GET /user?sudo={who}"), &r, 200);
            assert_eq!(r.str("username"), "bob", "[{b}] sudo={who}");
        }
        let r = srv.api("GET", "/user", Some(&t), None);
        status(&srv, "GET /user without sudo", &r, 200);
        assert_eq!(r.str("username"), "root", "[{b}] no sudo: the caller");
    }
}

#[test]
fn sudo_acts_as_the_user_on_token_endpoints() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        let t = srv.token("root", &["api", "sudo"], None);
        named(&srv, "alice", "a1");
        let b1 = named(&srv, "bob", "b1");
        let b2 = named(&srv, "bob", "b2");
        let r = srv.api_raw(
            "GET",
            "/personal_access_tokens",
            &[("PRIVATE-TOKEN", &t), ("Sudo", "bob")],
            b"",
        );
        status(&srv, "GET /personal_access_tokens as bob", &r, 200);
        assert_eq!(r.ids(), vec![b1, b2], "[{b}] as bob: bob's tokens only");
        // Bob is no admin: creating a token for alice is refused.
        warm(&srv, &t);
        let before = srv.snapshot();
        let path = format!("/users/{}/personal_access_tokens?sudo={}", alice.id, bob.id);
        let r = srv.api("POST", &path, Some(&t), Some(&json!({"name": "n", "scopes": ["api"]})));
        expect(&srv, &format!("POST {path}"), &r, 403, forbidden());
        unchanged(&srv, &before, &format!("POST {path}"));
    }
}

#[test]
fn sudo_by_a_non_admin_is_403() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        srv.user("bob", false, None);
        let t = srv.token("alice", &["api"], None);
        let want = json!({"message": "403 Forbidden - Must be admin to use sudo"});
        let r = srv.api_raw("GET", "/user", &[("PRIVATE-TOKEN", &t), ("Sudo", "bob")], b"");
        expect(&srv, "GET /user with Sudo by a non-admin", &r, 403, &want);
        let r = srv.api("GET", "/user?sudo=bob", Some(&t), None);
        expect(&srv, "GET /user?sudo= by a non-admin", &r, 403, &want);
    }
}

#[test]
fn sudo_without_the_sudo_scope_is_403_insufficient_scope() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        srv.user("bob", false, None);
        let t = srv.token("root", &["api"], None);
        let r = srv.api_raw("GET", "/user", &[("PRIVATE-TOKEN", &t), ("Sudo", "bob")], b"");
        expect(
            &srv,
            "GET /user with Sudo, no sudo scope",
            &r,
            403,
            insufficient("sudo"),
        );
        let r = srv.api("GET", "/user?sudo=bob", Some(&t), None);
        expect(&srv, "GET /user?sudo=, no sudo scope", &r, 403, insufficient("sudo"));
        // refused, so not recorded as a use
        let row = srv.token_row(&t);
        assert!(
            row.last_used_at.is_none() && row.last_used_ips == "[]",
            "[{}] a refused Sudo recorded use: {:?}",
            srv.backend(),
            row.last_used_at
        );
    }
}

#[test]
fn sudo_scope_check_of_the_endpoint_comes_first() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        srv.user("bob", false, None);
        let t = srv.token("root", &["read_user", "sudo"], None);
        let r = srv.api_raw("GET", "/projects", &[("PRIVATE-TOKEN", &t), ("Sudo", "bob")], b"");
        expect(
            &srv,
            "GET /projects with read_user+sudo and Sudo",
            &r,
            403,
            insufficient("api read_api"),
        );
    }
}

#[test]
fn sudo_unknown_user_is_404() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let t = srv.token("root", &["api", "sudo"], None);
        for who in ["nobody", "987654"] {
            let want = json!({"message": format!("404 User with ID or username '{who}' Not Found")});
            let r = srv.api_raw("GET", "/user", &[("PRIVATE-TOKEN", &t), ("Sudo", who)], b"");
            expect(&srv, &format!("GET /user with Sudo: {who}"), &r, 404, &want);
            let r = srv.api("GET", &format!("/user?sudo={who}"), Some(&t), None);
            expect(&srv, &format!("GET /user?sudo={who}"), &r, 404, &want);
        }
    }
}

#[test]
fn sudo_to_a_blocked_user_is_refused_as_the_blocked_user_would_be() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        srv.user("bob", false, None);
        users::set_blocked(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            "bob",
            true,
            chrono::Utc::now(),
        )
        .unwrap();
        let t = srv.token("root", &["api", "sudo"], None);
        let before = srv.snapshot();
        let r = srv.api_raw("GET", "/user", &[("PRIVATE-TOKEN", &t), ("Sudo", "bob")], b"");
        expect(
            &srv,
            "GET /user with Sudo: a blocked user",
            &r,
            403,
            json!({"message": "403 Forbidden - Your account has been blocked."}),
        );
        let r = srv.api_raw(
            "POST",
            "/personal_access_tokens/self/rotate",
            &[("PRIVATE-TOKEN", &t), ("Sudo", "bob")],
            b"",
        );
        assert_eq!(r.status, 403, "[{}] rotate as a blocked user", srv.backend());
        unchanged(&srv, &before, "Sudo to a blocked user");
    }
}

// ---------------------------------------------------------------------
// GET /personal_access_tokens.

#[test]
fn list_tokens_non_admin_sees_only_their_own_by_id() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let alice = srv.user("alice", false, None);
        srv.user("bob", false, None);
        srv.user("root", true, None);
        let t = srv.token("alice", &["read_api"], None);
        named(&srv, "bob", "b1");
        let a2 = named(&srv, "alice", "a2");
        named(&srv, "root", "r1");
        let a3 = named(&srv, "alice", "a3");
        let r = list(&srv, &t, "");
        assert_eq!(
            r.ids(),
            vec![id_of(&srv, &t), a2, a3],
            "[{b}] alice's tokens, id ascending"
        );
        for v in r.list() {
            check_token_json(&srv, "a listed token", v, false);
            assert_eq!(v["user_id"], json!(alice.id), "[{b}] only alice's: {v}");
        }
    }
}

#[test]
fn list_tokens_admin_sees_everyones_and_impersonation_tokens_users_only_their_pats() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        let admin = srv.token("root", &["api"], None);
        let a1 = named(&srv, "alice", "a1");
        let b1 = named(&srv, "bob", "b1");
        let (imp, _) = make(&srv, "alice", "imp", None, &["api"], None, true);
        let b2 = named(&srv, "bob", "b2");
        let r = list(&srv, &admin, "");
        assert_eq!(
            r.ids(),
            vec![id_of(&srv, &admin), a1, b1, imp, b2],
            "[{b}] every token, impersonation ones too (as GitLab's finder for admins), id ascending"
        );
        let r = list(&srv, &admin, &format!("user_id={}", bob.id));
        assert_eq!(r.ids(), vec![b1, b2], "[{b}] user_id=bob");
        let r = list(&srv, &admin, &format!("user_id={}", alice.id));
        assert_eq!(r.ids(), vec![a1, imp], "[{b}] user_id=alice");
        // alice's own list has her PATs, not the impersonation token
        let at = srv.token("alice", &["read_api"], None);
        let r = list(&srv, &at, "");
        assert_eq!(r.ids(), vec![a1, id_of(&srv, &at)], "[{b}] alice's own list");
        // an admin's user_id of nobody
        let r = srv.api("GET", "/personal_access_tokens?user_id=999999", Some(&admin), None);
        expect(
            &srv,
            "GET ?user_id=<nobody> as admin",
            &r,
            404,
            json!({"message": "404 User Not Found"}),
        );
    }
}

#[test]
fn list_tokens_non_admin_with_another_users_id_is_401() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let alice = srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        let t = srv.token("alice", &["api"], None);
        named(&srv, "bob", "b1");
        let path = format!("/personal_access_tokens?user_id={}", bob.id);
        let r = srv.api("GET", &path, Some(&t), None);
        expect(&srv, &format!("GET {path} by alice"), &r, 401, unauthorized());
        let r = list(&srv, &t, &format!("user_id={}", alice.id));
        assert_eq!(r.ids(), vec![id_of(&srv, &t)], "[{b}] alice's own user_id");
    }
}

#[test]
fn list_tokens_filter_revoked() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let live = named(&srv, "alice", "live");
        let gone = named(&srv, "alice", "gone");
        let (old, _) = make(&srv, "alice", "old", None, &["api"], Some(in_days(2)), false);
        revoke(&srv, gone);
        set_expires(&srv, old, Some(in_days(-1)));
        let u = alice.id;
        let r = list(&srv, &admin, &format!("user_id={u}&revoked=true"));
        assert_eq!(r.ids(), vec![gone], "[{b}] revoked=true");
        let r = list(&srv, &admin, &format!("user_id={u}&revoked=false"));
        assert_eq!(r.ids(), vec![live, old], "[{b}] revoked=false");
    }
}

#[test]
fn list_tokens_filter_state() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let live = named(&srv, "alice", "live");
        let gone = named(&srv, "alice", "gone");
        let (old, _) = make(&srv, "alice", "old", None, &["api"], Some(in_days(2)), false);
        let (later, _) = make(&srv, "alice", "later", None, &["api"], Some(in_days(2)), false);
        revoke(&srv, gone);
        set_expires(&srv, old, Some(in_days(-1)));
        let u = alice.id;
        let r = list(&srv, &admin, &format!("user_id={u}&state=active"));
        assert_eq!(r.ids(), vec![live, later], "[{b}] state=active");
        for v in r.list() {
            assert_eq!(v["active"], json!(true), "[{b}] state=active: {v}");
        }
        let r = list(&srv, &admin, &format!("user_id={u}&state=inactive"));
        assert_eq!(r.ids(), vec![gone, old], "[{b}] state=inactive (revoked or expired)");
        for v in r.list() {
            assert_eq!(v["active"], json!(false), "[{b}] state=inactive: {v}");
        }
    }
}

#[test]
fn list_tokens_filter_created_before_and_after() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let t1 = named(&srv, "alice", "t1");
        let t2 = named(&srv, "alice", "t2");
        let t3 = named(&srv, "alice", "t3");
        set_created(&srv, t1, at("2024-01-10 12:00:00"));
        set_created(&srv, t2, at("2024-02-10 12:00:00"));
        set_created(&srv, t3, at("2024-03-10 12:00:00"));
        let u = alice.id;
        let cases: [(&str, Vec<i64>); 7] = [
            ("created_before=2024-02-01", vec![t1]),
            ("created_after=2024-02-01", vec![t2, t3]),
            // Datetimes; the bounds are inclusive, as GitLab's.
            ("created_before=2024-02-10T12:00:00Z", vec![t1, t2]),
            ("created_after=2024-02-10T12:00:00Z", vec![t2, t3]),
            ("created_before=2024-02-10T11:59:59Z", vec![t1]),
            ("created_after=2024-02-10T12:00:01Z", vec![t3]),
            ("created_after=2024-01-15&created_before=2024-03-01", vec![t2]),
        ];
        for (q, want) in cases {
            let r = list(&srv, &admin, &format!("user_id={u}&{q}"));
            assert_eq!(r.ids(), want, "[{b}] {q}");
        }
    }
}

#[test]
fn list_tokens_filter_last_used_before_and_after() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let t1 = named(&srv, "alice", "t1");
        let t2 = named(&srv, "alice", "t2");
        let t3 = named(&srv, "alice", "t3");
        set_last_used(&srv, t1, at("2024-05-05 08:00:00"));
        set_last_used(&srv, t2, at("2024-05-01 08:00:00"));
        set_last_used(&srv, t3, at("2024-05-03 08:00:00"));
        let u = alice.id;
        let cases: [(&str, Vec<i64>); 6] = [
            ("last_used_before=2024-05-02", vec![t2]),
            ("last_used_after=2024-05-02", vec![t1, t3]),
            // Datetimes; the bounds are inclusive, as GitLab's.
            ("last_used_before=2024-05-03T08:00:00Z", vec![t2, t3]),
            ("last_used_after=2024-05-03T08:00:00Z", vec![t1, t3]),
            ("last_used_after=2024-05-03T08:00:01Z", vec![t1]),
            (
                "last_used_after=2024-05-01T09:00:00Z&last_used_before=2024-05-04",
                vec![t3],
            ),
        ];
        for (q, want) in cases {
            let r = list(&srv, &admin, &format!("user_id={u}&{q}"));
            assert_eq!(r.ids(), want, "[{b}] {q}");
        }
    }
}

#[test]
fn list_tokens_filter_expires_before_and_after() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let (t1, _) = make(&srv, "alice", "t1", None, &["api"], Some(in_days(30)), false);
        let (t2, _) = make(&srv, "alice", "t2", None, &["api"], Some(in_days(10)), false);
        let (t3, _) = make(&srv, "alice", "t3", None, &["api"], Some(in_days(20)), false);
        let u = alice.id;
        let d20 = day(in_days(20));
        let d15 = day(in_days(15));
        let cases: [(String, Vec<i64>); 4] = [
            // before is strict, after inclusive, as GitLab's scopes
            (format!("expires_before={d20}"), vec![t2]),
            (format!("expires_after={d20}"), vec![t1, t3]),
            (format!("expires_after={d15}"), vec![t1, t3]),
            (
                format!("expires_after={d15}&expires_before={}", day(in_days(25))),
                vec![t3],
            ),
        ];
        for (q, want) in cases {
            let r = list(&srv, &admin, &format!("user_id={u}&{q}"));
            assert_eq!(r.ids(), want, "[{b}] {q}");
        }
    }
}

#[test]
fn list_tokens_filter_search_is_a_case_insensitive_substring_of_the_name() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let t1 = named(&srv, "alice", "Deploy Key");
        let t2 = named(&srv, "alice", "ci runner");
        let t3 = named(&srv, "alice", "my-deploy-bot");
        let u = alice.id;
        let cases: [(&str, Vec<i64>); 4] = [
            ("search=DEPLOY", vec![t1, t3]),
            ("search=runner", vec![t2]),
            ("search=y-D", vec![t3]),
            ("search=nothing", vec![]),
        ];
        for (q, want) in cases {
            let r = list(&srv, &admin, &format!("user_id={u}&{q}"));
            assert_eq!(r.ids(), want, "[{b}] {q}");
        }
    }
}

#[test]
fn list_tokens_sorts() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        // Every sort key distinct, none in id order.
        let spec = [
            ("charlie", "2024-03-03 10:00:00", 20, "2024-06-02 10:00:00"),
            ("alpha", "2024-03-01 10:00:00", 40, "2024-06-04 10:00:00"),
            ("delta", "2024-03-04 10:00:00", 10, "2024-06-01 10:00:00"),
            ("bravo", "2024-03-02 10:00:00", 30, "2024-06-03 10:00:00"),
        ];
        let mut ids = Vec::new();
        for (name, created, expires, used) in spec {
            let (id, _) = make(&srv, "alice", name, None, &["api"], Some(in_days(expires)), false);
            set_created(&srv, id, at(created));
            set_last_used(&srv, id, at(used));
            ids.push(id);
        }
        let [charlie, alpha, delta, bravo] = [ids[0], ids[1], ids[2], ids[3]];
        let cases = [
            ("created_asc", vec![alpha, bravo, charlie, delta]),
            ("created_desc", vec![delta, charlie, bravo, alpha]),
            ("expires_asc", vec![delta, charlie, bravo, alpha]),
            ("expires_desc", vec![alpha, bravo, charlie, delta]),
            ("last_used_asc", vec![delta, charlie, bravo, alpha]),
            ("last_used_desc", vec![alpha, bravo, charlie, delta]),
            ("name_asc", vec![alpha, bravo, charlie, delta]),
            ("name_desc", vec![delta, charlie, bravo, alpha]),
            ("id_asc", vec![charlie, alpha, delta, bravo]),
            ("id_desc", vec![bravo, delta, alpha, charlie]),
        ];
        for (sort, want) in cases {
            let r = list(&srv, &admin, &format!("user_id={}&sort={sort}", alice.id));
            assert_eq!(r.ids(), want, "[{b}] sort={sort}");
        }
        let r = list(&srv, &admin, &format!("user_id={}", alice.id));
        assert_eq!(r.ids(), ids, "[{b}] no sort: id ascending");
    }
}

#[test]
fn list_tokens_bad_filter_values_are_400() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let cases = [
            ("state=foo", json!({"error": "state does not have a valid value"})),
            ("sort=foo", json!({"error": "sort does not have a valid value"})),
            ("user_id=abc", json!({"error": "user_id is invalid"})),
            ("revoked=maybe", json!({"error": "revoked is invalid"})),
            (
                "created_before=yesterday",
                json!({"error": "created_before is invalid"}),
            ),
            ("expires_after=2024-13-01", json!({"error": "expires_after is invalid"})),
        ];
        for (q, want) in cases {
            let path = format!("/personal_access_tokens?{q}");
            let r = srv.api("GET", &path, Some(&t), None);
            expect(&srv, &format!("GET {path}"), &r, 400, &want);
        }
    }
}

// ---------------------------------------------------------------------
// GET /personal_access_tokens/:id and /self.

#[test]
fn get_token_by_id_owner_sees_every_field() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let alice = srv.user("alice", false, None);
        let t = srv.token("alice", &["read_api"], None);
        let expires = in_days(30);
        let (id, _) = make(
            &srv,
            "alice",
            "laptop",
            Some("my laptop"),
            &["read_user", "api"],
            Some(expires),
            false,
        );
        let path = format!("/personal_access_tokens/{id}");
        let r = srv.api("GET", &path, Some(&t), None);
        status(&srv, &format!("GET {path} by the owner"), &r, 200);
        check_token_json(&srv, &format!("GET {path}"), &r.json, false);
        let v = &r.json;
        assert_eq!(v["id"], json!(id), "[{b}] {v}");
        assert_eq!(v["name"], json!("laptop"), "[{b}] {v}");
        assert_eq!(v["description"], json!("my laptop"), "[{b}] {v}");
        assert_eq!(scopes(v), sorted(&["api", "read_user"]), "[{b}] {v}");
        assert_eq!(v["user_id"], json!(alice.id), "[{b}] {v}");
        assert_eq!(v["revoked"], json!(false), "[{b}] {v}");
        assert_eq!(v["active"], json!(true), "[{b}] {v}");
        assert_eq!(v["impersonation"], json!(false), "[{b}] {v}");
        assert_eq!(v["expires_at"], json!(day(expires)), "[{b}] {v}");
        assert_eq!(v["last_used_at"], Value::Null, "[{b}] {v}");
        assert_eq!(v["last_used_ips"], json!([]), "[{b}] {v}");
        let created = parse_timestamp(r.str("created_at"));
        let age = Utc::now().naive_utc() - created;
        assert!(
            age >= Duration::seconds(-2) && age < Duration::minutes(2),
            "[{b}] created_at {created} is not now"
        );
    }
}

#[test]
fn get_token_by_id_admin_sees_anyones() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let id = named(&srv, "alice", "a1");
        let path = format!("/personal_access_tokens/{id}");
        let r = srv.api("GET", &path, Some(&admin), None);
        status(&srv, &format!("GET {path} by an admin"), &r, 200);
        check_token_json(&srv, &format!("GET {path}"), &r.json, false);
        assert_eq!(r.int("id"), id, "[{b}] {}", r.json);
        assert_eq!(r.int("user_id"), alice.id, "[{b}] {}", r.json);
    }
}

#[test]
fn get_token_by_id_of_another_or_missing_is_401_for_non_admins() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        srv.user("bob", false, None);
        let t = srv.token("alice", &["api"], None);
        let bobs = named(&srv, "bob", "b1");
        for id in [bobs, 987_654] {
            let path = format!("/personal_access_tokens/{id}");
            let r = srv.api("GET", &path, Some(&t), None);
            expect(&srv, &format!("GET {path} by alice"), &r, 401, unauthorized());
        }
    }
}

#[test]
fn get_token_by_id_missing_is_404_for_admins() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let admin = srv.token("root", &["api"], None);
        let r = srv.api("GET", "/personal_access_tokens/987654", Some(&admin), None);
        expect(
            &srv,
            "GET /personal_access_tokens/987654 by an admin",
            &r,
            404,
            json!({"message": "404 Personal Access Token Not Found"}),
        );
    }
}

#[test]
fn get_self_returns_the_calling_token() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let alice = srv.user("alice", false, None);
        named(&srv, "alice", "other");
        let t = srv.token("alice", &["read_repository"], None);
        named(&srv, "alice", "another");
        let r = srv.api("GET", "/personal_access_tokens/self", Some(&t), None);
        status(&srv, "GET /personal_access_tokens/self", &r, 200);
        check_token_json(&srv, "GET /personal_access_tokens/self", &r.json, false);
        assert_eq!(r.int("id"), id_of(&srv, &t), "[{b}] {}", r.json);
        assert_eq!(r.int("user_id"), alice.id, "[{b}] {}", r.json);
        assert_eq!(r.str("name"), "git tests", "[{b}] {}", r.json);
        assert_eq!(scopes(&r.json), sorted(&["read_repository"]), "[{b}] {}", r.json);
    }
}

// ---------------------------------------------------------------------
// DELETE /personal_access_tokens/:id and /self.

#[test]
fn delete_token_by_id_revokes_it() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let (id, other) = make(&srv, "alice", "other", None, &["api"], None, false);
        status(
            &srv,
            "GET /user with it",
            &srv.api("GET", "/user", Some(&other), None),
            200,
        );
        let path = format!("/personal_access_tokens/{id}");
        let r = srv.api("DELETE", &path, Some(&t), None);
        status(&srv, &format!("DELETE {path} by the owner"), &r, 204);
        assert!(r.raw.body.is_empty(), "[{b}] a 204 with a body: {:?}", r.raw.text());
        assert!(srv.token_row(&other).revoked, "[{b}] revoked in the database");
        let r = srv.api("GET", "/user", Some(&other), None);
        expect(&srv, "GET /user with the deleted token", &r, 401, unauthorized());
        status(
            &srv,
            "the caller's token",
            &srv.api("GET", "/user", Some(&t), None),
            200,
        );
    }
}

#[test]
fn delete_token_already_revoked_is_204() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let id = named(&srv, "alice", "other");
        revoke(&srv, id);
        warm(&srv, &t);
        let before = srv.snapshot();
        let path = format!("/personal_access_tokens/{id}");
        let r = srv.api("DELETE", &path, Some(&t), None);
        status(&srv, &format!("DELETE {path} (already revoked)"), &r, 204);
        unchanged(&srv, &before, "revoking a revoked token");
    }
}

#[test]
fn delete_token_by_id_admin_revokes_anyones() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let (id, secret) = make(&srv, "alice", "a1", None, &["api"], None, false);
        let path = format!("/personal_access_tokens/{id}");
        let r = srv.api("DELETE", &path, Some(&admin), None);
        status(&srv, &format!("DELETE {path} by an admin"), &r, 204);
        assert!(srv.token_row(&secret).revoked, "[{b}] revoked");
    }
}

#[test]
fn delete_token_of_another_is_400_for_non_admins_and_missing_is_404_for_all() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        srv.user("alice", false, None);
        srv.user("bob", false, None);
        let t = srv.token("alice", &["api"], None);
        let admin = srv.token("root", &["api"], None);
        let bobs = named(&srv, "bob", "b1");
        warm(&srv, &t);
        warm(&srv, &admin);
        // GitLab's revoke service refuses another's token: a bare 400.
        let path = format!("/personal_access_tokens/{bobs}");
        let before = srv.snapshot();
        let r = srv.api("DELETE", &path, Some(&t), None);
        expect(
            &srv,
            &format!("DELETE {path} by alice"),
            &r,
            400,
            json!({"message": "400 Bad request"}),
        );
        unchanged(&srv, &before, &format!("DELETE {path} by alice"));
        for who in [&t, &admin] {
            let before = srv.snapshot();
            let r = srv.api("DELETE", "/personal_access_tokens/987654", Some(who), None);
            expect(
                &srv,
                "DELETE /personal_access_tokens/987654",
                &r,
                404,
                json!({"message": "404 Personal Access Token Not Found"}),
            );
            unchanged(&srv, &before, "DELETE of a missing token");
        }
    }
}

#[test]
fn delete_self_revokes_the_calling_token() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let keep = srv.token("alice", &["api"], None);
        let r = srv.api("DELETE", "/personal_access_tokens/self", Some(&t), None);
        status(&srv, "DELETE /personal_access_tokens/self", &r, 204);
        assert!(r.raw.body.is_empty(), "[{b}] a 204 with a body: {:?}", r.raw.text());
        assert!(srv.token_row(&t).revoked, "[{b}] revoked");
        assert!(!srv.token_row(&keep).revoked, "[{b}] another token of hers revoked");
        let r = srv.api("GET", "/user", Some(&t), None);
        expect(&srv, "GET /user after DELETE self", &r, 401, unauthorized());
    }
}

// ---------------------------------------------------------------------
// Rotation.

#[test]
fn rotate_token_by_id_keeps_name_description_scopes_and_expires_in_7_days() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let alice = srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let (id, old) = make(
            &srv,
            "alice",
            "laptop",
            Some("my laptop"),
            &["api", "read_user"],
            Some(in_days(90)),
            false,
        );
        let path = format!("/personal_access_tokens/{id}/rotate");
        let r = srv.api("POST", &path, Some(&t), None);
        status(&srv, &format!("POST {path}"), &r, 200);
        check_token_json(&srv, &format!("POST {path}"), &r.json, true);
        let v = &r.json;
        assert_ne!(v["id"], json!(id), "[{b}] a new token: {v}");
        assert_eq!(v["name"], json!("laptop"), "[{b}] {v}");
        assert_eq!(v["description"], json!("my laptop"), "[{b}] {v}");
        assert_eq!(scopes(v), sorted(&["api", "read_user"]), "[{b}] {v}");
        assert_eq!(v["user_id"], json!(alice.id), "[{b}] {v}");
        assert_eq!(v["expires_at"], json!(day(in_days(7))), "[{b}] {v}");
        assert_eq!(v["revoked"], json!(false), "[{b}] {v}");
        assert_eq!(v["active"], json!(true), "[{b}] {v}");
        assert_eq!(v["impersonation"], json!(false), "[{b}] {v}");
        assert!(srv.token_row(&old).revoked, "[{b}] the old token is revoked");
        let new = r.str("token").to_string();
        assert_eq!(
            srv.token_row(&new).id,
            r.int("id"),
            "[{b}] the secret is the new token's"
        );
        let r = srv.api("GET", "/user", Some(&new), None);
        status(&srv, "GET /user with the new token", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{b}]");
        let r = srv.api("GET", &format!("/personal_access_tokens/{id}"), Some(&t), None);
        status(&srv, "GET the old token", &r, 200);
        assert_eq!(r.json["revoked"], json!(true), "[{b}] the old token: {}", r.json);
        assert_eq!(r.json["active"], json!(false), "[{b}] the old token: {}", r.json);
    }
}

#[test]
fn rotate_token_under_a_max_lifetime_shorter_than_a_week_expires_at_the_limit() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let (id, _) = make(&srv, "alice", "short", None, &["api"], Some(in_days(2)), false);
        srv.setting("max_personal_access_token_lifetime", "3");
        let path = format!("/personal_access_tokens/{id}/rotate");
        let r = srv.api("POST", &path, Some(&t), None);
        status(&srv, &format!("POST {path} under a 3-day limit"), &r, 200);
        assert_eq!(r.json["expires_at"], json!(day(in_days(3))), "[{b}] {}", r.json);
        // a date past the limit is still refused, and changes nothing
        let (id, old) = make(&srv, "alice", "short2", None, &["api"], Some(in_days(2)), false);
        let path = format!("/personal_access_tokens/{id}/rotate");
        let before = srv.snapshot();
        let r = srv.api("POST", &path, Some(&t), Some(&json!({"expires_at": day(in_days(4))})));
        status(&srv, &format!("POST {path} past the limit"), &r, 400);
        unchanged(&srv, &before, "a refused rotation");
        assert!(
            !srv.token_row(&old).revoked,
            "[{b}] a refused rotation revoked the token"
        );
    }
}

#[test]
fn rotate_token_with_expires_at_uses_it() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let id = named(&srv, "alice", "laptop");
        let want = day(in_days(20));
        let path = format!("/personal_access_tokens/{id}/rotate");
        let r = srv.api("POST", &path, Some(&t), Some(&json!({"expires_at": want})));
        status(&srv, &format!("POST {path} with expires_at"), &r, 200);
        assert_eq!(r.json["expires_at"], json!(want), "[{b}] {}", r.json);
        // As a query parameter too.
        let id2 = named(&srv, "alice", "desktop");
        let want = day(in_days(12));
        let path = format!("/personal_access_tokens/{id2}/rotate?expires_at={want}");
        let r = srv.api("POST", &path, Some(&t), None);
        status(&srv, &format!("POST {path}"), &r, 200);
        assert_eq!(r.json["expires_at"], json!(want), "[{b}] {}", r.json);
    }
}

#[test]
fn rotate_token_with_an_invalid_expires_at_is_400() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let id = named(&srv, "alice", "laptop");
        warm(&srv, &t);
        let before = srv.snapshot();
        let path = format!("/personal_access_tokens/{id}/rotate");
        let r = srv.api("POST", &path, Some(&t), Some(&json!({"expires_at": "next week"})));
        expect(
            &srv,
            &format!("POST {path} expires_at=next week"),
            &r,
            400,
            json!({"error": "expires_at is invalid"}),
        );
        unchanged(&srv, &before, "a rotation with a bad date");
    }
}

#[test]
fn rotate_self_replaces_the_calling_token() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        let (id, t) = make(&srv, "alice", "cli", Some("for the cli"), &["api"], None, false);
        let r = srv.api("POST", "/personal_access_tokens/self/rotate", Some(&t), None);
        status(&srv, "POST /personal_access_tokens/self/rotate", &r, 200);
        check_token_json(&srv, "POST /personal_access_tokens/self/rotate", &r.json, true);
        assert_ne!(r.int("id"), id, "[{b}] {}", r.json);
        assert_eq!(r.str("name"), "cli", "[{b}] {}", r.json);
        assert_eq!(r.str("description"), "for the cli", "[{b}] {}", r.json);
        assert_eq!(scopes(&r.json), sorted(&["api"]), "[{b}] {}", r.json);
        assert_eq!(r.json["expires_at"], json!(day(in_days(7))), "[{b}] {}", r.json);
        assert!(srv.token_row(&t).revoked, "[{b}] the calling token is revoked");
        let new = r.str("token").to_string();
        let r = srv.api("GET", "/personal_access_tokens/self", Some(&new), None);
        status(&srv, "GET self with the new token", &r, 200);
        assert_eq!(r.int("id"), srv.token_row(&new).id, "[{b}]");
    }
}

#[test]
fn rotate_a_revoked_token_is_400() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        let id = named(&srv, "alice", "laptop");
        revoke(&srv, id);
        warm(&srv, &t);
        let before = srv.snapshot();
        let path = format!("/personal_access_tokens/{id}/rotate");
        let r = srv.api("POST", &path, Some(&t), None);
        expect(
            &srv,
            &format!("POST {path} (revoked)"),
            &r,
            400,
            json!({"message": "400 Bad request - Token already revoked"}),
        );
        unchanged(&srv, &before, "rotating a revoked token");
    }
}

#[test]
fn rotate_token_of_another_is_401_for_non_admins_and_missing_is_404_for_admins() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        srv.user("bob", false, None);
        let t = srv.token("bob", &["api"], None);
        let admin = srv.token("root", &["api"], None);
        let (alices, secret) = make(&srv, "alice", "a1", None, &["api"], None, false);
        warm(&srv, &t);
        warm(&srv, &admin);
        for id in [alices, 987_654] {
            let path = format!("/personal_access_tokens/{id}/rotate");
            let before = srv.snapshot();
            let r = srv.api("POST", &path, Some(&t), None);
            expect(&srv, &format!("POST {path} by bob"), &r, 401, unauthorized());
            unchanged(&srv, &before, &format!("POST {path} by bob"));
        }
        let before = srv.snapshot();
        let r = srv.api("POST", "/personal_access_tokens/987654/rotate", Some(&admin), None);
        expect(
            &srv,
            "POST /personal_access_tokens/987654/rotate by an admin",
            &r,
            404,
            json!({"message": "404 Personal Access Token Not Found"}),
        );
        unchanged(&srv, &before, "rotating a missing token");
        let path = format!("/personal_access_tokens/{alices}/rotate");
        let r = srv.api("POST", &path, Some(&admin), None);
        status(&srv, &format!("POST {path} by an admin"), &r, 200);
        assert_eq!(r.int("user_id"), alice.id, "[{b}] still alice's: {}", r.json);
        assert!(srv.token_row(&secret).revoked, "[{b}] rotated away");
    }
}

// ---------------------------------------------------------------------
// POST /users/:user_id/personal_access_tokens.

#[test]
fn create_token_for_a_user_by_an_admin() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        let expires = day(in_days(30));
        let body =
            json!({"name": "ci", "scopes": ["api", "read_user"], "expires_at": expires, "description": "for CI"});
        let r = srv.api("POST", &path, Some(&admin), Some(&body));
        status(&srv, &format!("POST {path}"), &r, 201);
        check_token_json(&srv, &format!("POST {path}"), &r.json, true);
        let v = &r.json;
        assert_eq!(v["name"], json!("ci"), "[{b}] {v}");
        assert_eq!(v["description"], json!("for CI"), "[{b}] {v}");
        assert_eq!(scopes(v), sorted(&["api", "read_user"]), "[{b}] {v}");
        assert_eq!(v["user_id"], json!(alice.id), "[{b}] {v}");
        assert_eq!(v["expires_at"], json!(expires), "[{b}] {v}");
        assert_eq!(v["revoked"], json!(false), "[{b}] {v}");
        assert_eq!(v["active"], json!(true), "[{b}] {v}");
        assert_eq!(v["impersonation"], json!(false), "[{b}] {v}");
        assert_eq!(v["last_used_at"], Value::Null, "[{b}] {v}");
        assert_eq!(v["last_used_ips"], json!([]), "[{b}] {v}");
        let secret = r.str("token").to_string();
        assert_eq!(
            srv.token_row(&secret).id,
            r.int("id"),
            "[{b}] the secret is the token's"
        );
        let r = srv.api("GET", "/user", Some(&secret), None);
        status(&srv, "GET /user with the created token", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{b}]");

        // Without an expiry (and no maximum lifetime): none.
        let r = srv.api(
            "POST",
            &path,
            Some(&admin),
            Some(&json!({"name": "forever", "scopes": ["read_api"]})),
        );
        status(&srv, &format!("POST {path} without expires_at"), &r, 201);
        assert_eq!(r.json["expires_at"], Value::Null, "[{b}] {}", r.json);
        assert_eq!(r.json["description"], Value::Null, "[{b}] {}", r.json);
    }
}

#[test]
fn create_token_by_a_non_admin_is_403() {
    for srv in TestServer::each() {
        let alice = srv.user("alice", false, None);
        let t = srv.token("alice", &["api"], None);
        warm(&srv, &t);
        let before = srv.snapshot();
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        let r = srv.api("POST", &path, Some(&t), Some(&json!({"name": "n", "scopes": ["api"]})));
        expect(&srv, &format!("POST {path} by alice"), &r, 403, forbidden());
        unchanged(&srv, &before, "a non-admin's token creation");
    }
}

#[test]
fn create_token_for_an_unknown_user_is_404() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let admin = srv.token("root", &["api"], None);
        warm(&srv, &admin);
        let before = srv.snapshot();
        let r = srv.api(
            "POST",
            "/users/987654/personal_access_tokens",
            Some(&admin),
            Some(&json!({"name": "n", "scopes": ["api"]})),
        );
        expect(
            &srv,
            "POST /users/987654/personal_access_tokens",
            &r,
            404,
            json!({"message": "404 User Not Found"}),
        );
        unchanged(&srv, &before, "a token for nobody");
    }
}

#[test]
fn create_token_without_name_or_scopes_is_400() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        warm(&srv, &admin);
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        let cases = [
            (json!({}), "name is missing, scopes is missing"),
            (json!({"name": "n"}), "scopes is missing"),
            (json!({"scopes": ["api"]}), "name is missing"),
        ];
        for (body, error) in cases {
            let before = srv.snapshot();
            let r = srv.api("POST", &path, Some(&admin), Some(&body));
            let what = format!("POST {path} {body}");
            expect(&srv, &what, &r, 400, json!({ "error": error }));
            unchanged(&srv, &before, &what);
        }
    }
}

#[test]
fn create_token_with_an_unknown_scope_is_400() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        warm(&srv, &admin);
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        for scopes in [json!(["api", "bogus"]), json!(["write_everything"])] {
            let before = srv.snapshot();
            let body = json!({"name": "n", "scopes": scopes});
            let r = srv.api("POST", &path, Some(&admin), Some(&body));
            let what = format!("POST {path} {body}");
            expect(
                &srv,
                &what,
                &r,
                400,
                json!({"error": "scopes does not have a valid value"}),
            );
            unchanged(&srv, &before, &what);
        }
    }
}

#[test]
fn create_token_with_a_name_or_description_over_255_characters_is_422() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        warm(&srv, &admin);
        let long = "x".repeat(256);
        for kind in ["personal_access_tokens", "impersonation_tokens"] {
            let path = format!("/users/{}/{kind}", alice.id);
            for (body, message) in [
                (
                    json!({"name": long, "scopes": ["api"]}),
                    "Name is too long (maximum is 255 characters)",
                ),
                (
                    json!({"name": "n", "description": long, "scopes": ["api"]}),
                    "Description is too long (maximum is 255 characters)",
                ),
            ] {
                let before = srv.snapshot();
                let r = srv.api("POST", &path, Some(&admin), Some(&body));
                let what = format!("POST {path} with a long field");
                expect(&srv, &what, &r, 422, json!({ "message": message }));
                unchanged(&srv, &before, &what);
            }
            // 255 characters are fine.
            let body = json!({"name": "y".repeat(255), "scopes": ["api"]});
            let r = srv.api("POST", &path, Some(&admin), Some(&body));
            status(&srv, &format!("POST {path} with a 255-character name"), &r, 201);
        }
    }
}

#[test]
fn create_token_with_admin_only_scopes_for_a_non_admin_is_400() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let root = srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        warm(&srv, &admin);
        for scopes in [json!(["sudo"]), json!(["api", "sudo"]), json!(["admin_mode"])] {
            let path = format!("/users/{}/personal_access_tokens", alice.id);
            let before = srv.snapshot();
            let body = json!({"name": "n", "scopes": scopes});
            let r = srv.api("POST", &path, Some(&admin), Some(&body));
            let what = format!("POST {path} {body}");
            expect(
                &srv,
                &what,
                &r,
                400,
                json!({"error": "scopes does not have a valid value"}),
            );
            unchanged(&srv, &before, &what);
        }
        // An admin owner may have sudo.
        let path = format!("/users/{}/personal_access_tokens", root.id);
        let r = srv.api(
            "POST",
            &path,
            Some(&admin),
            Some(&json!({"name": "n", "scopes": ["api", "sudo"]})),
        );
        status(&srv, &format!("POST {path} sudo for an admin"), &r, 201);
        assert_eq!(scopes(&r.json), sorted(&["api", "sudo"]), "[{b}] {}", r.json);
    }
}

#[test]
fn create_token_with_a_past_expiry_is_400() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        warm(&srv, &admin);
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        let before = srv.snapshot();
        let body = json!({"name": "n", "scopes": ["api"], "expires_at": day(in_days(-1))});
        let r = srv.api("POST", &path, Some(&admin), Some(&body));
        let what = format!("POST {path} {body}");
        expect_bad_request(&srv, &what, &r);
        unchanged(&srv, &before, &what);
    }
}

#[test]
fn create_token_with_an_expires_at_that_is_not_a_date_is_400() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        warm(&srv, &admin);
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        for bad in ["tomorrow", "2030-02-30", "30/01/2030"] {
            let before = srv.snapshot();
            let body = json!({"name": "n", "scopes": ["api"], "expires_at": bad});
            let r = srv.api("POST", &path, Some(&admin), Some(&body));
            let what = format!("POST {path} {body}");
            expect(&srv, &what, &r, 400, json!({"error": "expires_at is invalid"}));
            unchanged(&srv, &before, &what);
        }
    }
}

#[test]
fn create_token_beyond_the_max_lifetime_is_400() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        srv.setting("max_personal_access_token_lifetime", "30");
        warm(&srv, &admin);
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        let before = srv.snapshot();
        let body = json!({"name": "n", "scopes": ["api"], "expires_at": day(in_days(31))});
        let r = srv.api("POST", &path, Some(&admin), Some(&body));
        let what = format!("POST {path} {body} with a 30-day maximum");
        expect_bad_request(&srv, &what, &r);
        unchanged(&srv, &before, &what);
        // The last day allowed.
        let last = day(in_days(30));
        let r = srv.api(
            "POST",
            &path,
            Some(&admin),
            Some(&json!({"name": "n", "scopes": ["api"], "expires_at": last})),
        );
        status(&srv, &format!("POST {path} expiring on the last day allowed"), &r, 201);
        assert_eq!(r.json["expires_at"], json!(last), "[{b}] {}", r.json);
    }
}

#[test]
fn create_token_without_expiry_under_a_max_lifetime_expires_after_it() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        srv.setting("max_personal_access_token_lifetime", "45");
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        let r = srv.api(
            "POST",
            &path,
            Some(&admin),
            Some(&json!({"name": "n", "scopes": ["api"]})),
        );
        status(
            &srv,
            &format!("POST {path} without expires_at, 45-day maximum"),
            &r,
            201,
        );
        assert_eq!(r.json["expires_at"], json!(day(in_days(45))), "[{b}] {}", r.json);
    }
}

#[test]
fn create_token_scopes_as_json_array_form_array_or_comma_string() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        let want = sorted(&["api", "read_user"]);

        let r = srv.api(
            "POST",
            &path,
            Some(&admin),
            Some(&json!({"name": "json array", "scopes": ["api", "read_user"]})),
        );
        status(&srv, "scopes as a JSON array", &r, 201);
        assert_eq!(scopes(&r.json), want, "[{b}] JSON array: {}", r.json);

        let r = srv.api(
            "POST",
            &path,
            Some(&admin),
            Some(&json!({"name": "json string", "scopes": "api,read_user"})),
        );
        status(&srv, "scopes as a comma-separated JSON string", &r, 201);
        assert_eq!(scopes(&r.json), want, "[{b}] JSON string: {}", r.json);

        for form in [
            "name=form+array&scopes[]=api&scopes[]=read_user",
            "name=form+array&scopes%5B%5D=api&scopes%5B%5D=read_user",
            "name=form+string&scopes=api,read_user",
            "name=form+string&scopes=api%2Cread_user",
        ] {
            let r = srv.api_form("POST", &path, Some(&admin), form);
            status(&srv, &format!("form {form}"), &r, 201);
            assert_eq!(scopes(&r.json), want, "[{b}] form {form}: {}", r.json);
        }

        // A body without Content-Type is a form.
        let r = srv.api_raw(
            "POST",
            &path,
            &[("PRIVATE-TOKEN", &admin)],
            b"name=no+type&scopes[]=api&scopes[]=read_user",
        );
        status(&srv, "a form without Content-Type", &r, 201);
        assert_eq!(r.str("name"), "no type", "[{b}] {}", r.json);
        assert_eq!(scopes(&r.json), want, "[{b}] no Content-Type: {}", r.json);
    }
}

// ---------------------------------------------------------------------
// Impersonation tokens.

#[test]
fn impersonation_token_create_is_201_and_authenticates_as_the_user() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let path = format!("/users/{}/impersonation_tokens", alice.id);
        let expires = day(in_days(10));
        let body = json!({"name": "support", "scopes": ["api"], "expires_at": expires, "description": "ticket 1"});
        let r = srv.api("POST", &path, Some(&admin), Some(&body));
        status(&srv, &format!("POST {path}"), &r, 201);
        check_token_json(&srv, &format!("POST {path}"), &r.json, true);
        let v = &r.json;
        assert_eq!(v["impersonation"], json!(true), "[{b}] {v}");
        assert_eq!(v["user_id"], json!(alice.id), "[{b}] {v}");
        assert_eq!(v["name"], json!("support"), "[{b}] {v}");
        assert_eq!(v["description"], json!("ticket 1"), "[{b}] {v}");
        assert_eq!(v["expires_at"], json!(expires), "[{b}] {v}");
        assert_eq!(scopes(v), sorted(&["api"]), "[{b}] {v}");
        let secret = r.str("token").to_string();
        let row = srv.token_row(&secret);
        assert!(row.impersonation, "[{b}] stored as an impersonation token");
        let r = srv.api("GET", "/user", Some(&secret), None);
        status(&srv, "GET /user with the impersonation token", &r, 200);
        assert_eq!(r.str("username"), "alice", "[{b}]");
        // Missing params: the same rule as for PATs.
        let before = srv.snapshot();
        let r = srv.api("POST", &path, Some(&admin), Some(&json!({"name": "n"})));
        expect(
            &srv,
            &format!("POST {path} without scopes"),
            &r,
            400,
            json!({"error": "scopes is missing"}),
        );
        unchanged(&srv, &before, "an impersonation token without scopes");
    }
}

#[test]
fn impersonation_token_list_has_only_impersonation_tokens_and_filters_state() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        srv.user("bob", false, None);
        let admin = srv.token("root", &["api"], None);
        named(&srv, "alice", "a pat");
        let (live, _) = make(&srv, "alice", "live", None, &["api"], None, true);
        let (gone, _) = make(&srv, "alice", "gone", None, &["api"], None, true);
        let (old, _) = make(&srv, "alice", "old", None, &["api"], Some(in_days(2)), true);
        make(&srv, "bob", "bob's", None, &["api"], None, true);
        revoke(&srv, gone);
        set_expires(&srv, old, Some(in_days(-1)));
        let base = format!("/users/{}/impersonation_tokens", alice.id);
        let cases = [
            ("", vec![live, gone, old]),
            ("?state=all", vec![live, gone, old]),
            ("?state=active", vec![live]),
            ("?state=inactive", vec![gone, old]),
        ];
        for (q, want) in cases {
            let path = format!("{base}{q}");
            let r = srv.api("GET", &path, Some(&admin), None);
            status(&srv, &format!("GET {path}"), &r, 200);
            assert_eq!(id_set(&r), want, "[{b}] GET {path}");
            let total = want.len().to_string();
            assert_headers(
                &srv,
                &format!("GET {path}"),
                &r,
                &[("X-Total", &total), ("X-Page", "1")],
            );
            for v in r.list() {
                check_token_json(&srv, &format!("GET {path}"), v, false);
                assert_eq!(v["impersonation"], json!(true), "[{b}] {v}");
            }
        }
        let path = format!("{base}?state=foo");
        let r = srv.api("GET", &path, Some(&admin), None);
        expect(
            &srv,
            &format!("GET {path}"),
            &r,
            400,
            json!({"error": "state does not have a valid value"}),
        );
    }
}

#[test]
fn impersonation_token_get_by_id() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        srv.user("bob", false, None);
        let admin = srv.token("root", &["api"], None);
        let (imp, _) = make(&srv, "alice", "support", None, &["read_api"], None, true);
        let pat_id = named(&srv, "alice", "a pat");
        let (bobs, _) = make(&srv, "bob", "bob's", None, &["api"], None, true);
        let base = format!("/users/{}/impersonation_tokens", alice.id);
        let r = srv.api("GET", &format!("{base}/{imp}"), Some(&admin), None);
        status(&srv, &format!("GET {base}/{imp}"), &r, 200);
        check_token_json(&srv, &format!("GET {base}/{imp}"), &r.json, false);
        assert_eq!(r.int("id"), imp, "[{b}] {}", r.json);
        assert_eq!(r.json["impersonation"], json!(true), "[{b}] {}", r.json);
        assert_eq!(r.str("name"), "support", "[{b}] {}", r.json);
        let not_found = json!({"message": "404 Impersonation Token Not Found"});
        // Missing, a personal access token, another user's.
        for id in [987_654, pat_id, bobs] {
            let path = format!("{base}/{id}");
            let r = srv.api("GET", &path, Some(&admin), None);
            expect(&srv, &format!("GET {path}"), &r, 404, &not_found);
        }
    }
}

#[test]
fn impersonation_token_delete_revokes_it() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let (imp, secret) = make(&srv, "alice", "support", None, &["api"], None, true);
        status(
            &srv,
            "GET /user before",
            &srv.api("GET", "/user", Some(&secret), None),
            200,
        );
        let path = format!("/users/{}/impersonation_tokens/{imp}", alice.id);
        let r = srv.api("DELETE", &path, Some(&admin), None);
        status(&srv, &format!("DELETE {path}"), &r, 204);
        assert!(r.raw.body.is_empty(), "[{b}] a 204 with a body: {:?}", r.raw.text());
        assert!(srv.token_row(&secret).revoked, "[{b}] revoked");
        let r = srv.api("GET", "/user", Some(&secret), None);
        expect(
            &srv,
            "GET /user with the deleted impersonation token",
            &r,
            401,
            unauthorized(),
        );
        let r = srv.api("GET", &path, Some(&admin), None);
        status(&srv, &format!("GET {path} after DELETE"), &r, 200);
        assert_eq!(r.json["revoked"], json!(true), "[{b}] {}", r.json);

        warm(&srv, &admin);
        let before = srv.snapshot();
        let path = format!("/users/{}/impersonation_tokens/987654", alice.id);
        let r = srv.api("DELETE", &path, Some(&admin), None);
        expect(
            &srv,
            &format!("DELETE {path}"),
            &r,
            404,
            json!({"message": "404 Impersonation Token Not Found"}),
        );
        unchanged(&srv, &before, "DELETE of a missing impersonation token");
    }
}

#[test]
fn impersonation_tokens_by_a_non_admin_are_403() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        let t = srv.token("alice", &["api"], None);
        let (imp, _) = make(&srv, "bob", "support", None, &["api"], None, true);
        warm(&srv, &t);
        let base = format!("/users/{}/impersonation_tokens", bob.id);
        let body = json!({"name": "n", "scopes": ["api"]});
        let cases = [
            ("GET", base.clone(), None),
            ("POST", base.clone(), Some(body)),
            ("GET", format!("{base}/{imp}"), None),
            ("DELETE", format!("{base}/{imp}"), None),
        ];
        for (method, path, body) in cases {
            let before = srv.snapshot();
            let r = srv.api(method, &path, Some(&t), body.as_ref());
            let what = format!("{method} {path} by a non-admin");
            expect(&srv, &what, &r, 403, forbidden());
            unchanged(&srv, &before, &what);
        }
    }
}

// ---------------------------------------------------------------------
// Pagination of /personal_access_tokens.

/// Alice with five tokens; the first one's secret and all five ids.
fn five_tokens(srv: &TestServer) -> (String, Vec<i64>) {
    srv.user("alice", false, None);
    let t = srv.token("alice", &["api"], None);
    let mut ids = vec![id_of(srv, &t)];
    for i in 2..=5 {
        ids.push(named(srv, "alice", &format!("token {i}")));
    }
    (t, ids)
}

fn assert_headers(srv: &TestServer, what: &str, r: &ApiReply, want: &[(&str, &str)]) {
    for (name, value) in want {
        assert_eq!(
            r.header(name),
            Some(*value),
            "[{}] {what}: header {name} in {:?}",
            srv.backend(),
            r.raw.headers
        );
    }
}

#[test]
fn pagination_headers_and_links_over_three_pages() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let (t, ids) = five_tokens(&srv);
        let link = |page: u32| srv.url(&format!("/api/v4/personal_access_tokens?page={page}&per_page=2"));
        let mut seen = Vec::new();
        let pages = [
            (1, "", "2", vec![("next", 2), ("first", 1), ("last", 3)]),
            (2, "1", "3", vec![("prev", 1), ("next", 3), ("first", 1), ("last", 3)]),
            (3, "2", "", vec![("prev", 2), ("first", 1), ("last", 3)]),
        ];
        for (page, prev, next, rels) in pages {
            let q = format!("page={page}&per_page=2");
            let r = list(&srv, &t, &q);
            let page_s = page.to_string();
            assert_headers(
                &srv,
                &q,
                &r,
                &[
                    ("X-Total", "5"),
                    ("X-Total-Pages", "3"),
                    ("X-Page", &page_s),
                    ("X-Per-Page", "2"),
                    ("X-Prev-Page", prev),
                    ("X-Next-Page", next),
                ],
            );
            let want: BTreeMap<String, String> = rels.iter().map(|(rel, p)| (rel.to_string(), link(*p))).collect();
            assert_eq!(links(&srv, &r), want, "[{b}] Link of {q}");
            assert_eq!(r.list().len(), if page == 3 { 1 } else { 2 }, "[{b}] items of {q}");
            seen.extend(r.ids());
        }
        assert_eq!(seen, ids, "[{b}] the pages together, id ascending");
    }
}

#[test]
fn pagination_links_keep_other_params_but_never_private_token() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let (t, _) = five_tokens(&srv);
        let path = format!("/personal_access_tokens?private_token={t}&search=token&per_page=2");
        let r = srv.api("GET", &path, None, None);
        status(&srv, "GET /personal_access_tokens?private_token=...", &r, 200);
        assert_headers(&srv, "search=token", &r, &[("X-Total", "4"), ("X-Total-Pages", "2")]);
        let l = header(&srv, &r, "Link").to_string();
        assert!(
            !l.contains("private_token") && !l.contains(&t),
            "[{b}] the Link header leaks the token: {l}"
        );
        let url = |page: u32| {
            srv.url(&format!(
                "/api/v4/personal_access_tokens?search=token&page={page}&per_page=2"
            ))
        };
        let want: BTreeMap<String, String> = [("next", url(2)), ("first", url(1)), ("last", url(2))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(links(&srv, &r), want, "[{b}] Link");
    }
}

#[test]
fn pagination_defaults_to_page_1_of_20() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let (t, ids) = five_tokens(&srv);
        let r = list(&srv, &t, "");
        assert_headers(
            &srv,
            "no paging params",
            &r,
            &[
                ("X-Total", "5"),
                ("X-Total-Pages", "1"),
                ("X-Page", "1"),
                ("X-Per-Page", "20"),
                ("X-Prev-Page", ""),
                ("X-Next-Page", ""),
            ],
        );
        assert_eq!(r.ids(), ids, "[{b}] everything on one page");
        let url = srv.url("/api/v4/personal_access_tokens?page=1&per_page=20");
        let want: BTreeMap<String, String> = [("first", url.clone()), ("last", url)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(links(&srv, &r), want, "[{b}] Link");
    }
}

#[test]
fn pagination_per_page_above_100_gives_100() {
    for srv in TestServer::each() {
        let (t, _) = five_tokens(&srv);
        let r = list(&srv, &t, "per_page=500");
        assert_headers(
            &srv,
            "per_page=500",
            &r,
            &[
                ("X-Per-Page", "100"),
                ("X-Total", "5"),
                ("X-Total-Pages", "1"),
                ("X-Page", "1"),
            ],
        );
    }
}

#[test]
fn pagination_of_an_empty_list_has_one_page() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let bob = srv.user("bob", false, None);
        let admin = srv.token("root", &["api"], None);
        let r = list(&srv, &admin, &format!("user_id={}", bob.id));
        assert_eq!(r.ids(), Vec::<i64>::new(), "[{b}] bob has no tokens");
        assert_headers(
            &srv,
            "an empty list",
            &r,
            &[
                ("X-Total", "0"),
                ("X-Total-Pages", "1"),
                ("X-Page", "1"),
                ("X-Prev-Page", ""),
                ("X-Next-Page", ""),
            ],
        );
    }
}

#[test]
fn pagination_page_or_per_page_not_a_number_is_400() {
    for srv in TestServer::each() {
        let (t, _) = five_tokens(&srv);
        for (q, param) in [("page=x", "page"), ("per_page=x", "per_page")] {
            let path = format!("/personal_access_tokens?{q}");
            let r = srv.api("GET", &path, Some(&t), None);
            expect(
                &srv,
                &format!("GET {path}"),
                &r,
                400,
                json!({"error": format!("{param} is invalid")}),
            );
        }
    }
}

/// Runs the real `curl` (as GitLab's documentation does) with `args`
/// against `srv`; answers the status and the JSON body.
fn curl(srv: &TestServer, args: &[&str]) -> (u16, Value) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl (Debian: apt-get install curl): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "[{}] curl {args:?}: {}{text}",
        srv.backend(),
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let json = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("[{}] curl {args:?}: {body:?} is not JSON: {e}", srv.backend()));
    (code.trim().parse().expect("an HTTP status"), json)
}

#[test]
fn create_token_and_project_with_curl_form_fields() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let auth = format!("PRIVATE-TOKEN: {admin}");
        let url = srv.url(&format!("/api/v4/users/{}/personal_access_tokens", alice.id));
        let expires = day(in_days(30));
        let expires_field = format!("expires_at={expires}");
        // multipart/form-data, as `curl --form` sends it
        let (code, v) = curl(
            &srv,
            &[
                "-H",
                &auth,
                "-F",
                "name=from curl",
                "-F",
                "scopes[]=api",
                "-F",
                "scopes[]=read_user",
                "-F",
                &expires_field,
                &url,
            ],
        );
        assert_eq!(code, 201, "[{b}] curl --form: {v}");
        assert_eq!(v["name"], json!("from curl"), "[{b}] {v}");
        assert_eq!(scopes(&v), sorted(&["api", "read_user"]), "[{b}] {v}");
        assert_eq!(v["expires_at"], json!(expires), "[{b}] {v}");
        let secret = v["token"].as_str().expect("the new token").to_string();
        assert_eq!(srv.token_row(&secret).user_id, alice.id, "[{b}] the token is alice's");
        // and urlencoded, as `curl --data`
        let (code, v) = curl(
            &srv,
            &["-H", &auth, "--data", "name=from data", "--data", "scopes[]=api", &url],
        );
        assert_eq!(code, 201, "[{b}] curl --data: {v}");
        // a refused multipart request writes nothing
        let before = srv.snapshot();
        let (code, v) = curl(&srv, &["-H", &auth, "-F", "name=bad", "-F", "scopes[]=nonsense", &url]);
        assert_eq!(
            (code, v),
            (400, json!({"error": "scopes does not have a valid value"})),
            "[{b}]"
        );
        unchanged(&srv, &before, "a refused multipart create");
        // a project with --form
        let (code, v) = curl(
            &srv,
            &[
                "-H",
                &format!("PRIVATE-TOKEN: {secret}"),
                "-F",
                "name=Curl Made",
                "-F",
                "visibility=internal",
                &srv.url("/api/v4/projects"),
            ],
        );
        assert_eq!(code, 201, "[{b}] POST /projects --form: {v}");
        assert_eq!(
            (v["path_with_namespace"].as_str(), v["visibility"].as_str()),
            (Some("alice/curl-made"), Some("internal")),
            "[{b}] {v}"
        );
    }
}

#[test]
fn a_user_cannot_manage_impersonation_tokens_made_for_them() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let own = srv.token("alice", &["api"], None);
        let (imp, imp_secret) = make(&srv, "alice", "imp", None, &["api"], None, true);
        warm(&srv, &own);
        warm(&srv, &admin);
        let before = srv.snapshot();
        let path = format!("/personal_access_tokens/{imp}");
        let r = srv.api("GET", &path, Some(&own), None);
        expect(&srv, &format!("GET {path} by alice"), &r, 401, unauthorized());
        let r = srv.api("POST", &format!("{path}/rotate"), Some(&own), None);
        expect(&srv, &format!("POST {path}/rotate by alice"), &r, 401, unauthorized());
        let r = srv.api("DELETE", &path, Some(&own), None);
        expect(
            &srv,
            &format!("DELETE {path} by alice"),
            &r,
            400,
            json!({"message": "400 Bad request"}),
        );
        unchanged(&srv, &before, "alice's refused calls on her impersonation token");
        assert!(!srv.token_row(&imp_secret).revoked, "[{b}] revoked by its user");
        // an admin may
        let r = srv.api("GET", &path, Some(&admin), None);
        status(&srv, &format!("GET {path} by an admin"), &r, 200);
        assert_eq!(r.json["impersonation"], json!(true), "[{b}] {}", r.json);
    }
}

/// SQLite takes one writer at a time; a transaction that read first and
/// then writes cannot wait for the lock, so writes start `IMMEDIATE`.
#[test]
fn two_hundred_concurrent_token_creations_on_sqlite_all_land() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    srv.user("root", true, None);
    let admin = srv.token("root", &["api"], None);
    let alice = srv.user("alice", false, None);
    let path = format!("/users/{}/personal_access_tokens", alice.id);
    let statuses: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let (srv, admin, path) = (&srv, &admin, &path);
                s.spawn(move || {
                    let body = json!({"name": format!("t{i}"), "scopes": ["read_api"], "expires_at": day(in_days(30))});
                    let r = srv.api("POST", path, Some(admin), Some(&body));
                    (r.status, r.json.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a request thread"))
            .collect()
    });
    let failed: Vec<&(u16, String)> = statuses.iter().filter(|(st, _)| *st != 201).collect();
    assert!(
        failed.is_empty(),
        "{} of 200 not created: {:?}",
        failed.len(),
        failed.first()
    );
    let rows: i64 = pat::table
        .filter(pat::user_id.eq(alice.id))
        .count()
        .get_result(&mut srv.conn())
        .unwrap();
    assert_eq!(rows, 200);
}
