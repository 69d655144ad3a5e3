//! The REST API (`/api/v4`), users part, against the contract
//! (`api-contract.md`): `GET /version`, `GET /user`, `GET /users` (filters,
//! what non-admins see, pagination), `GET /users/:id`, `POST /users`,
//! `PUT /users/:id`, block and unblock; and the generic request rules
//! (unknown path, wrong method, bodies that are malformed, of another type
//! or too large). Every test runs on every backend; messages name it. A
//! refused write is shown to have written nothing with a snapshot of every
//! table. The helpers here are shared with `api_projects.rs` and
//! `api_settings.rs`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{json, Value};

use crate::support::api::{
    expect, expect_bad_request, forbidden, is_iso_ms, status, unauthorized, unchanged, ApiReply,
};
use crate::support::server::{basic, RawResponse, TestServer, RAW_TIMEOUT};

pub(crate) const PASSWORD: &str = "a good long password";

// ---------------------------------------------------------------------
// Helpers (also used by the other API test files).

/// Asserts an ISO timestamp with milliseconds within `slack` of `near`.
#[track_caller]
pub(crate) fn assert_time_near(srv: &TestServer, what: &str, got: &Value, near: chrono::NaiveDateTime) {
    let s = got
        .as_str()
        .unwrap_or_else(|| panic!("[{}] {what}: not a string: {got}", srv.backend()));
    assert!(
        is_iso_ms(s),
        "[{}] {what}: {s:?} is not ISO 8601 UTC with milliseconds",
        srv.backend()
    );
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap().naive_utc();
    let diff = (t - near).num_milliseconds().abs();
    assert!(
        diff <= 1000,
        "[{}] {what}: {s} is {diff} ms away from {near}",
        srv.backend()
    );
}

/// Asserts a 400 `{"message":{"<field>":["<reason>"]}}` naming `field`.
#[track_caller]
pub(crate) fn expect_field_error(srv: &TestServer, what: &str, r: &ApiReply, field: &str) {
    status(srv, what, r, 400);
    let ok = r.json.as_object().is_some_and(|o| o.len() == 1)
        && r.json["message"].as_object().is_some_and(|m| {
            m.len() == 1
                && m.get(field)
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.len() == 1 && a[0].as_str().is_some_and(|s| !s.trim().is_empty()))
        });
    assert!(
        ok,
        "[{}] {what}: expected {{\"message\":{{\"{field}\":[\"<reason>\"]}}}}, got {}",
        srv.backend(),
        r.json
    );
}

/// Asserts a 400 `{"error":"a is missing, b is missing"}` naming exactly
/// `params` (in any order: the contract gives none).
#[track_caller]
pub(crate) fn expect_missing(srv: &TestServer, what: &str, r: &ApiReply, params: &[&str]) {
    status(srv, what, r, 400);
    let err = r.json["error"].as_str().unwrap_or_default();
    let mut got: Vec<&str> = err.split(", ").collect();
    got.sort();
    let mut want: Vec<String> = params.iter().map(|p| format!("{p} is missing")).collect();
    want.sort();
    assert!(
        got == want && r.json.as_object().is_some_and(|o| o.len() == 1),
        "[{}] {what}: expected {{\"error\":\"{}\"}} (any order), got {}",
        srv.backend(),
        want.join(", "),
        r.json
    );
}

/// An administrator `root` and a token of it with `api`; root's id.
pub(crate) fn root(srv: &TestServer) -> (i64, String) {
    let u = srv.user("root", true, None);
    let t = srv.token("root", &["api"], None);
    warm(srv, &[&t]);
    (u.id, t)
}

/// A user `name` (not an admin, no password) and a token with `api`.
pub(crate) fn someone(srv: &TestServer, name: &str) -> (i64, String) {
    let u = srv.user(name, false, None);
    let t = srv.token(name, &["api"], None);
    warm(srv, &[&t]);
    (u.id, t)
}

/// Uses each token once, so that its first use is recorded before a
/// snapshot is taken (every authenticated call records use, throttled).
pub(crate) fn warm(srv: &TestServer, tokens: &[&str]) {
    for t in tokens {
        let r = srv.api("GET", "/version", Some(t), None);
        status(srv, "warming a token with GET /version", &r, 200);
    }
}

/// The `Link` header as `rel -> URL`.
pub(crate) fn links(srv: &TestServer, r: &ApiReply) -> BTreeMap<String, String> {
    let h = r
        .header("Link")
        .unwrap_or_else(|| panic!("[{}] no Link header in {:?}", srv.backend(), r.raw.headers));
    let mut m = BTreeMap::new();
    for part in h.split(',') {
        let part = part.trim();
        let parsed = part
            .strip_prefix('<')
            .and_then(|p| p.split_once('>'))
            .and_then(|(url, rest)| {
                let rel = rest
                    .trim()
                    .strip_prefix(';')?
                    .trim()
                    .strip_prefix("rel=\"")?
                    .strip_suffix('"')?;
                Some((url, rel))
            });
        let (url, rel) = parsed.unwrap_or_else(|| panic!("[{}] a bad Link part {part:?} in {h:?}", srv.backend()));
        assert!(
            m.insert(rel.to_string(), url.to_string()).is_none(),
            "[{}] rel {rel} twice in {h:?}",
            srv.backend()
        );
    }
    m
}

/// Asserts the pagination headers of a list reply: `X-Total`,
/// `X-Total-Pages`, `X-Page`, `X-Per-Page`, `X-Next-Page`, `X-Prev-Page`
/// (empty strings at the ends), and the `Link` rels, whose URLs are
/// `http://<host><path>?<others>page=N&per_page=M` (`others` is either
/// empty or ends with `&`) and never carry `private_token`.
#[track_caller]
pub(crate) fn assert_pages(
    srv: &TestServer,
    what: &str,
    r: &ApiReply,
    (path, others): (&str, &str),
    total: usize,
    page: usize,
    per_page: usize,
) {
    let total_pages = total.div_ceil(per_page).max(1);
    let next = if page < total_pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 && page <= total_pages {
        (page - 1).to_string()
    } else if page > total_pages {
        // Past the end: the contract does not say; checked elsewhere.
        r.header("X-Prev-Page").unwrap_or_default().to_string()
    } else {
        String::new()
    };
    let names = [
        "X-Total",
        "X-Total-Pages",
        "X-Page",
        "X-Per-Page",
        "X-Next-Page",
        "X-Prev-Page",
    ];
    let got: Vec<(&str, Option<String>)> = names.iter().map(|n| (*n, r.header(n).map(str::to_string))).collect();
    let want: Vec<(&str, Option<String>)> = names
        .iter()
        .zip([
            total.to_string(),
            total_pages.to_string(),
            page.to_string(),
            per_page.to_string(),
            next.clone(),
            prev.clone(),
        ])
        .map(|(n, v)| (*n, Some(v)))
        .collect();
    assert_eq!(got, want, "[{}] {what}: pagination headers", srv.backend());
    let link = r.header("Link").unwrap_or_default();
    assert!(
        !link.contains("private_token"),
        "[{}] {what}: the Link header leaks private_token: {link}",
        srv.backend()
    );
    let url = |n: usize| srv.url(&format!("{path}?{others}page={n}&per_page={per_page}"));
    let mut want_links = BTreeMap::new();
    want_links.insert("first".to_string(), url(1));
    want_links.insert("last".to_string(), url(total_pages));
    if !next.is_empty() {
        want_links.insert("next".to_string(), url(page + 1));
    }
    if page > 1 && page <= total_pages {
        want_links.insert("prev".to_string(), url(page - 1));
    }
    let mut got_links = links(srv, r);
    if page > total_pages {
        // What `prev` is past the end is not in the contract.
        got_links.remove("prev");
    }
    assert_eq!(got_links, want_links, "[{}] {what}: Link header {link}", srv.backend());
}

/// The full user entity (as the user or an admin sees it).
pub(crate) fn full_user(srv: &TestServer, id: i64, username: &str, name: &str, created_at: &str) -> Value {
    json!({
        "id": id,
        "username": username,
        "name": name,
        "email": format!("{username}@example.com"),
        "state": "active",
        "is_admin": false,
        "two_factor_enabled": false,
        "namespace_id": id,
        "created_at": created_at,
        "avatar_url": null,
        "web_url": srv.url(&format!("/{username}")),
        "locked": false,
        "bot": false,
    })
}

/// Sends a request of `body.len()` bytes, writing in one thread while
/// reading in this one (the server may answer before it read everything).
fn send_big(srv: &TestServer, head: &str, body: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect_timeout(&srv.addr, RAW_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(RAW_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(RAW_TIMEOUT)).unwrap();
    let mut w = s.try_clone().expect("clone the socket");
    let mut req = head.as_bytes().to_vec();
    req.extend_from_slice(body);
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&req);
        let _ = w.flush();
    });
    let mut out = Vec::new();
    let read = s.read_to_end(&mut out);
    let _ = writer.join();
    if let Err(e) = read {
        // A reset after the reply was read is fine; without a reply it is not.
        assert!(!out.is_empty(), "[{}] no reply to a large request: {e}", srv.backend());
    }
    RawResponse::parse(&out).unwrap_or_else(|e| {
        panic!(
            "[{}] unreadable reply ({e}): {:?}",
            srv.backend(),
            String::from_utf8_lossy(&out)
        )
    })
}

// ---------------------------------------------------------------------
// GET /version

#[test]
fn version_returns_version_and_revision_to_any_api_or_user_scope() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        for scopes in [&["api"][..], &["read_api"], &["read_user"]] {
            let tok = srv.token("alice", scopes, None);
            let r = srv.api("GET", "/version", Some(&tok), None);
            let what = format!("GET /version with {scopes:?}");
            status(&srv, &what, &r, 200);
            for k in ["version", "revision"] {
                assert!(
                    r.json[k].as_str().is_some_and(|s| !s.is_empty()),
                    "[{}] {what}: {k} must be a non-empty string: {}",
                    srv.backend(),
                    r.json
                );
            }
            let ct = r.header("Content-Type").unwrap_or_default();
            assert!(
                ct.starts_with("application/json"),
                "[{}] {what}: Content-Type {ct:?}",
                srv.backend()
            );
        }
    }
}

#[test]
fn version_reply_has_a_semver_version_and_a_revision() {
    for srv in TestServer::each() {
        srv.user("alice", false, None);
        let tok = srv.token("alice", &["read_user"], None);
        let r = srv.api("GET", "/version", Some(&tok), None);
        status(&srv, "GET /version", &r, 200);
        // Clients parse `version` as GitLab's MAJOR.MINOR.PATCH[-suffix].
        let v = r.str("version");
        let core = v.split('-').next().unwrap_or_default();
        assert!(
            core.split('.').count() == 3 && core.split('.').all(|n| n.parse::<u32>().is_ok()),
            "[{}] GET /version: version {v:?} is not MAJOR.MINOR.PATCH: {}",
            srv.backend(),
            r.json
        );
        assert!(!r.str("revision").is_empty(), "[{}] {}", srv.backend(), r.json);
    }
}

#[test]
fn version_refuses_anonymous_and_unknown_tokens() {
    for srv in TestServer::each() {
        let r = srv.api("GET", "/version", None, None);
        expect(&srv, "anonymous GET /version", &r, 401, unauthorized());
        let r = srv.api("GET", "/version", Some("glpat-not-a-real-token-at-all"), None);
        expect(&srv, "GET /version with an unknown token", &r, 401, unauthorized());
    }
}

// ---------------------------------------------------------------------
// GET /user

#[test]
fn get_user_returns_the_callers_full_entity() {
    for srv in TestServer::each() {
        let alice = srv.user("alice", false, None);
        srv.user("bob", false, None);
        let tok = srv.token("alice", &["read_user"], None);
        let r = srv.api("GET", "/user", Some(&tok), None);
        status(&srv, "GET /user", &r, 200);
        assert_time_near(&srv, "GET /user created_at", &r.json["created_at"], alice.created_at);
        let created = r.str("created_at").to_string();
        expect(
            &srv,
            "GET /user",
            &r,
            200,
            full_user(&srv, alice.id, "alice", "alice Person", &created),
        );
        // An admin gets its own entity with is_admin true.
        let root = srv.user("root", true, None);
        let rt = srv.token("root", &["api"], None);
        let r = srv.api("GET", "/user", Some(&rt), None);
        status(&srv, "GET /user as root", &r, 200);
        let mut want = full_user(&srv, root.id, "root", "root Person", r.str("created_at"));
        want["is_admin"] = json!(true);
        expect(&srv, "GET /user as root", &r, 200, want);
    }
}

#[test]
fn get_user_accepts_the_token_in_header_param_or_bearer() {
    for srv in TestServer::each() {
        let alice = srv.user("alice", false, None);
        let tok = srv.token("alice", &["read_user"], None);
        let bearer = format!("Bearer {tok}");
        let replies = [
            (
                "PRIVATE-TOKEN header",
                srv.api_raw("GET", "/user", &[("PRIVATE-TOKEN", &tok)], b""),
            ),
            (
                "private_token query parameter",
                srv.api_raw("GET", &format!("/user?private_token={tok}"), &[], b""),
            ),
            (
                "Authorization: Bearer",
                srv.api_raw("GET", "/user", &[("Authorization", &bearer)], b""),
            ),
        ];
        for (how, r) in replies {
            status(&srv, how, &r, 200);
            assert_eq!(r.int("id"), alice.id, "[{}] {how}", srv.backend());
        }
        let r = srv.api("GET", "/user", None, None);
        expect(&srv, "anonymous GET /user", &r, 401, unauthorized());
    }
}

// ---------------------------------------------------------------------
// GET /users

#[test]
fn get_users_lists_everyone_by_id_descending_and_sorts_as_asked() {
    for srv in TestServer::each() {
        let (root_id, rt) = root(&srv);
        let ids: Vec<i64> = ["carol", "alice", "bob"]
            .iter()
            .map(|n| srv.user(n, false, None).id)
            .collect();
        let r = srv.api("GET", "/users", Some(&rt), None);
        status(&srv, "GET /users", &r, 200);
        let mut want = vec![root_id];
        want.extend(ids);
        want.sort();
        want.reverse();
        assert_eq!(
            r.ids(),
            want,
            "[{}] GET /users: id descending, GitLab's default",
            srv.backend()
        );
        let names = |r: &ApiReply| -> Vec<String> {
            r.list()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&r), ["bob", "alice", "carol", "root"], "[{}]", srv.backend());
        let cases = [
            ("sort=asc", ["root", "carol", "alice", "bob"]),
            ("order_by=username&sort=asc", ["alice", "bob", "carol", "root"]),
            ("order_by=username", ["root", "carol", "bob", "alice"]),
            ("order_by=id&sort=desc", ["bob", "alice", "carol", "root"]),
        ];
        for (q, want) in cases {
            let r = srv.api("GET", &format!("/users?{q}"), Some(&rt), None);
            status(&srv, &format!("GET /users?{q}"), &r, 200);
            assert_eq!(names(&r), want, "[{}] GET /users?{q}", srv.backend());
        }
        for (q, bad) in [("order_by=email", "order_by"), ("sort=up", "sort")] {
            let r = srv.api("GET", &format!("/users?{q}"), Some(&rt), None);
            expect(
                &srv,
                &format!("GET /users?{q}"),
                &r,
                400,
                json!({"error": format!("{bad} does not have a valid value")}),
            );
        }
    }
}

#[test]
fn get_users_filters_by_username_exactly_and_case_insensitively() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        srv.user("alice2", false, None);
        srv.user("malice", false, None);
        for q in ["alice", "ALICE", "Alice"] {
            let r = srv.api("GET", &format!("/users?username={q}"), Some(&rt), None);
            status(&srv, &format!("username={q}"), &r, 200);
            assert_eq!(r.ids(), [alice.id], "[{}] GET /users?username={q}", srv.backend());
        }
        for q in ["ali", "lice", "nobody"] {
            let r = srv.api("GET", &format!("/users?username={q}"), Some(&rt), None);
            expect(&srv, &format!("GET /users?username={q}"), &r, 200, json!([]));
        }
    }
}

#[test]
fn get_users_search_matches_username_name_or_email_case_insensitively() {
    for srv in TestServer::each() {
        let (root_id, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        // Found only by the display name / only by the email.
        let carol = gitpat::service::users::create(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            &gitpat::service::users::NewUserRequest {
                username: "carol",
                email: "xylophone@mail.test",
                name: Some("Zebra Keeper"),
                password: None,
                is_admin: false,
            },
            chrono::Utc::now(),
        )
        .expect("create carol");
        let cases: [(&str, Vec<i64>); 6] = [
            ("LIC", vec![alice.id]),
            ("bo", vec![bob.id]),
            ("zebra", vec![carol.id]),
            ("XYLO", vec![carol.id]),
            ("example.com", vec![bob.id, alice.id, root_id]),
            ("person", vec![bob.id, alice.id, root_id]),
        ];
        for (q, want) in cases {
            let r = srv.api("GET", &format!("/users?search={q}"), Some(&rt), None);
            status(&srv, &format!("search={q}"), &r, 200);
            assert_eq!(r.ids(), want, "[{}] GET /users?search={q}", srv.backend());
        }
        // Others' emails are hidden from a non-admin, so searching them
        // finds nothing (no guessing a hidden email letter by letter).
        let at = srv.token("alice", &["read_user"], None);
        for (q, want) in [("XYLO", vec![]), ("zebra", vec![carol.id]), ("example.com", vec![])] {
            let r = srv.api("GET", &format!("/users?search={q}"), Some(&at), None);
            status(&srv, &format!("search={q} as alice"), &r, 200);
            assert_eq!(r.ids(), want, "[{}] GET /users?search={q} as alice", srv.backend());
        }
    }
}

#[test]
fn get_users_filters_active_and_blocked() {
    for srv in TestServer::each() {
        let (root_id, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        gitpat::service::users::set_blocked(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            "bob",
            true,
            chrono::Utc::now(),
        )
        .expect("block bob");
        let r = srv.api("GET", "/users?active=true", Some(&rt), None);
        status(&srv, "active=true", &r, 200);
        assert_eq!(r.ids(), [alice.id, root_id], "[{}] active=true", srv.backend());
        let r = srv.api("GET", "/users?blocked=true", Some(&rt), None);
        status(&srv, "blocked=true", &r, 200);
        assert_eq!(r.ids(), [bob.id], "[{}] blocked=true", srv.backend());
        assert_eq!(r.list()[0]["state"], "blocked", "[{}] blocked=true", srv.backend());
        let r = srv.api("GET", "/users", Some(&rt), None);
        assert_eq!(r.ids(), [bob.id, alice.id, root_id], "[{}] no filter", srv.backend());
        // Only admins see blocked users (GitLab's UsersFinder).
        let at = srv.token("alice", &["read_user"], None);
        let r = srv.api("GET", "/users", Some(&at), None);
        assert_eq!(r.ids(), [alice.id, root_id], "[{}] as alice", srv.backend());
        let r = srv.api("GET", "/users?blocked=true", Some(&at), None);
        expect(&srv, "blocked=true as alice", &r, 200, json!([]));
        let r = srv.api("GET", "/users?blocked=maybe", Some(&rt), None);
        expect(&srv, "blocked=maybe", &r, 400, json!({"error": "blocked is invalid"}));
    }
}

#[test]
fn get_users_shows_email_and_admin_flag_only_to_admins_and_the_user() {
    for srv in TestServer::each() {
        let (root_id, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        let bob = srv.user("bob", false, None);
        let at = srv.token("alice", &["read_user"], None);
        let r = srv.api("GET", "/users", Some(&at), None);
        status(&srv, "GET /users as alice", &r, 200);
        assert_eq!(r.ids(), [bob.id, alice.id, root_id], "[{}]", srv.backend());
        for u in r.list() {
            let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort();
            let mut want = vec![
                "avatar_url",
                "bot",
                "created_at",
                "id",
                "locked",
                "name",
                "state",
                "username",
                "web_url",
            ];
            if u["id"] == json!(alice.id) {
                want.extend(["email", "is_admin", "two_factor_enabled", "namespace_id"]);
            }
            want.sort();
            assert_eq!(keys, want, "[{}] GET /users as alice: {u}", srv.backend());
            let name = u["username"].as_str().unwrap();
            assert_eq!(u["web_url"], json!(srv.url(&format!("/{name}"))), "[{}]", srv.backend());
            assert!(is_iso_ms(u["created_at"].as_str().unwrap()), "[{}] {u}", srv.backend());
        }
        // GET /users/:id of someone else: the same reduced entity.
        let r = srv.api("GET", &format!("/users/{}", bob.id), Some(&at), None);
        status(&srv, "GET /users/bob as alice", &r, 200);
        let mut want = full_user(&srv, bob.id, "bob", "bob Person", r.str("created_at"));
        for k in ["email", "is_admin", "two_factor_enabled", "namespace_id"] {
            want.as_object_mut().unwrap().remove(k);
        }
        expect(&srv, "GET /users/bob as alice", &r, 200, want);
        // An admin sees everything of everyone.
        let r = srv.api("GET", "/users", Some(&rt), None);
        for u in r.list() {
            let name = u["username"].as_str().unwrap();
            assert_eq!(u["email"], json!(format!("{name}@example.com")), "[{}]", srv.backend());
            assert_eq!(u["is_admin"], json!(name == "root"), "[{}]", srv.backend());
            assert_eq!(u["two_factor_enabled"], json!(false), "[{}]", srv.backend());
        }
    }
}

#[test]
fn forwarded_headers_shape_the_links_only_from_a_trusted_proxy() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let forged = [
            ("PRIVATE-TOKEN", rt.as_str()),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "elsewhere.example"),
        ];
        let first = |what: &str| {
            let r = srv.api_raw("GET", "/users?per_page=1", &forged, b"");
            status(&srv, what, &r, 200);
            links(&srv, &r)["first"].clone()
        };
        // Any client could send them: believed from none but a proxy.
        let own = srv.url("/api/v4/users?");
        let got = first("untrusted X-Forwarded-*");
        assert!(got.starts_with(&own), "[{}] {got}, not {own}...", srv.backend());
        srv.setting("trusted_proxies", "127.0.0.0/8");
        let got = first("X-Forwarded-* from a trusted proxy");
        assert!(
            got.starts_with("https://elsewhere.example/api/v4/users?"),
            "[{}] {got}",
            srv.backend()
        );
        srv.setting("trusted_proxies", "");
    }
}

#[test]
fn get_users_paginates_with_headers_and_links() {
    for srv in TestServer::each() {
        let (root_id, rt) = root(&srv);
        let mut all = vec![root_id];
        for n in ["u1", "u2", "u3", "u4"] {
            all.push(srv.user(n, false, None).id);
        }
        // `search` is kept in the links; `private_token` never is.
        let mut seen = Vec::new();
        for page in 1..=3 {
            let path = format!("/users?search=example&per_page=2&page={page}&private_token={rt}");
            let r = srv.api("GET", &path, None, None);
            status(&srv, &format!("page {page}"), &r, 200);
            assert_pages(
                &srv,
                &format!("GET /users page {page}"),
                &r,
                ("/api/v4/users", "search=example&"),
                5,
                page,
                2,
            );
            assert_eq!(r.list().len(), if page < 3 { 2 } else { 1 }, "[{}]", srv.backend());
            seen.extend(r.ids());
        }
        all.reverse();
        assert_eq!(seen, all, "[{}] the pages together, id descending", srv.backend());
        // Defaults: page 1, 20 per page, one page; token in the header.
        let r = srv.api("GET", "/users", Some(&rt), None);
        assert_pages(&srv, "GET /users", &r, ("/api/v4/users", ""), 5, 1, 20);
    }
}

#[test]
fn get_users_per_page_above_100_gives_100() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        for i in 0..101 {
            srv.user(&format!("user{i:03}"), false, None);
        }
        let r = srv.api("GET", "/users?per_page=500", Some(&rt), None);
        status(&srv, "per_page=500", &r, 200);
        assert_eq!(r.list().len(), 100, "[{}] per_page=500", srv.backend());
        assert_pages(&srv, "per_page=500", &r, ("/api/v4/users", ""), 102, 1, 100);
        let r = srv.api("GET", "/users?per_page=500&page=2", Some(&rt), None);
        assert_eq!(r.list().len(), 2, "[{}] per_page=500 page 2", srv.backend());
        assert_pages(&srv, "per_page=500 page 2", &r, ("/api/v4/users", ""), 102, 2, 100);
    }
}

/// The contract does not say what `per_page=0` does (GitLab falls back to
/// the default): it must be either a 400 naming `per_page`, or a page
/// whose headers and length agree with each other.
#[test]
fn get_users_per_page_zero_is_refused_or_consistent() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        for n in ["u1", "u2"] {
            srv.user(n, false, None);
        }
        let r = srv.api("GET", "/users?per_page=0", Some(&rt), None);
        match r.status {
            400 => {
                let e = r.json["error"].as_str().unwrap_or_default();
                assert!(
                    e == "per_page is invalid" || e == "per_page does not have a valid value",
                    "[{}] per_page=0: {}",
                    srv.backend(),
                    r.json
                );
            }
            200 => {
                let pp: usize = r.header("X-Per-Page").and_then(|v| v.parse().ok()).expect("X-Per-Page");
                assert!(
                    (1..=100).contains(&pp),
                    "[{}] per_page=0 gave X-Per-Page {pp}",
                    srv.backend()
                );
                assert_eq!(r.list().len(), 3.min(pp), "[{}] per_page=0", srv.backend());
                assert_pages(&srv, "per_page=0", &r, ("/api/v4/users", ""), 3, 1, pp);
            }
            s => panic!("[{}] per_page=0: {s} {}", srv.backend(), r.raw.text()),
        }
    }
}

#[test]
fn get_users_page_beyond_the_end_is_an_empty_list() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        srv.user("alice", false, None);
        let r = srv.api("GET", "/users?page=5&per_page=1", Some(&rt), None);
        expect(&srv, "page=5", &r, 200, json!([]));
        assert_pages(&srv, "page=5", &r, ("/api/v4/users", ""), 2, 5, 1);
    }
}

#[test]
fn get_users_refuses_a_page_that_is_not_a_number() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let r = srv.api("GET", "/users?page=x", Some(&rt), None);
        expect(&srv, "page=x", &r, 400, json!({"error": "page is invalid"}));
        let r = srv.api("GET", "/users?per_page=many", Some(&rt), None);
        expect(&srv, "per_page=many", &r, 400, json!({"error": "per_page is invalid"}));
    }
}

// ---------------------------------------------------------------------
// GET /users/:id

#[test]
fn get_user_by_id_returns_it_or_404() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        let r = srv.api("GET", &format!("/users/{}", alice.id), Some(&rt), None);
        status(&srv, "GET /users/:id", &r, 200);
        let want = full_user(&srv, alice.id, "alice", "alice Person", r.str("created_at"));
        expect(&srv, "GET /users/:id as root", &r, 200, want);
        // A user token with read_user suffices.
        let at = srv.token("alice", &["read_user"], None);
        let r = srv.api("GET", &format!("/users/{}", alice.id), Some(&at), None);
        status(&srv, "GET /users/:id with read_user", &r, 200);
        let r = srv.api("GET", "/users/999999", Some(&rt), None);
        expect(
            &srv,
            "GET /users/999999",
            &r,
            404,
            json!({"message": "404 User Not Found"}),
        );
    }
}

/// `:id` of `/users/:id` is a number; the contract does not say whether a
/// word there is a wrong-typed parameter (400 `id is invalid`) or a path
/// that leads nowhere (404): either, with its exact body.
#[test]
fn get_user_by_non_numeric_id_is_refused() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        srv.user("abc", false, None);
        let r = srv.api("GET", "/users/abc", Some(&rt), None);
        let ok = (r.status == 400 && r.json == json!({"error": "id is invalid"}))
            || (r.status == 404
                && (r.json == json!({"message": "404 User Not Found"}) || r.json == json!({"error": "404 Not Found"})));
        assert!(ok, "[{}] GET /users/abc: {} {}", srv.backend(), r.status, r.json);
    }
}

// ---------------------------------------------------------------------
// POST /users

#[test]
fn create_user_with_a_json_body() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let body = json!({"username": "newbie", "email": "newbie@example.com", "name": "New Bie", "password": "long enough pw"});
        let r = srv.api("POST", "/users", Some(&rt), Some(&body));
        status(&srv, "POST /users", &r, 201);
        let row = gitpat::db::user::find_by_username(&mut srv.conn(), "newbie")
            .unwrap()
            .expect("the row");
        assert_time_near(&srv, "created_at", &r.json["created_at"], row.created_at);
        let mut want = full_user(&srv, row.id, "newbie", "New Bie", r.str("created_at"));
        expect(&srv, "POST /users", &r, 201, want.clone());
        assert!(
            row.password_hash.is_some(),
            "[{}] the password was not stored",
            srv.backend()
        );
        assert!(!row.is_admin, "[{}]", srv.backend());
        // It is listed and can be read back alike.
        let g = srv.api("GET", &format!("/users/{}", row.id), Some(&rt), None);
        expect(&srv, "GET the new user", &g, 200, want.clone());
        // `application/json; charset=utf-8` is JSON too; no password is fine.
        let body = json!({"username": "second", "email": "second@example.com", "name": "Second", "force_random_password": true, "skip_confirmation": true, "reset_password": false});
        let r = srv.api_raw(
            "POST",
            "/users",
            &[
                ("PRIVATE-TOKEN", &rt),
                ("Content-Type", "application/json; charset=utf-8"),
            ],
            body.to_string().as_bytes(),
        );
        status(&srv, "POST /users with charset", &r, 201);
        let row = gitpat::db::user::find_by_username(&mut srv.conn(), "second")
            .unwrap()
            .expect("the row");
        want = full_user(&srv, row.id, "second", "Second", r.str("created_at"));
        expect(&srv, "POST /users with charset", &r, 201, want);
        assert!(row.password_hash.is_none(), "[{}] a password appeared", srv.backend());
    }
}

#[test]
fn create_user_with_a_form_body_or_no_content_type() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let r = srv.api_form(
            "POST",
            "/users",
            Some(&rt),
            "username=formed&email=formed%40example.com&name=Formed+User&password=long+enough+pw",
        );
        status(&srv, "POST /users (form)", &r, 201);
        let row = gitpat::db::user::find_by_username(&mut srv.conn(), "formed")
            .unwrap()
            .expect("the row");
        let want = full_user(&srv, row.id, "formed", "Formed User", r.str("created_at"));
        expect(&srv, "POST /users (form)", &r, 201, want);
        assert!(row.password_hash.is_some(), "[{}]", srv.backend());
        // A body without Content-Type is a form.
        let r = srv.api_raw(
            "POST",
            "/users",
            &[("PRIVATE-TOKEN", &rt)],
            b"username=bare&email=bare%40example.com&name=Bare",
        );
        status(&srv, "POST /users (no Content-Type)", &r, 201);
        assert_eq!(
            (r.str("username"), r.str("email"), r.str("name")),
            ("bare", "bare@example.com", "Bare"),
            "[{}]",
            srv.backend()
        );
    }
}

#[test]
fn create_user_merges_query_and_body_the_body_winning() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let body = json!({"username": "frombody", "email": "frombody@example.com"});
        let r = srv.api(
            "POST",
            "/users?username=fromquery&name=Query+Name",
            Some(&rt),
            Some(&body),
        );
        status(&srv, "POST /users query + body", &r, 201);
        assert_eq!(
            (r.str("username"), r.str("name")),
            ("frombody", "Query Name"),
            "[{}] {}",
            srv.backend(),
            r.json
        );
        assert!(
            gitpat::db::user::find_by_username(&mut srv.conn(), "fromquery")
                .unwrap()
                .is_none(),
            "[{}]",
            srv.backend()
        );
    }
}

#[test]
fn create_user_reports_missing_parameters() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let before = srv.snapshot();
        let r = srv.api("POST", "/users", Some(&rt), Some(&json!({})));
        expect_missing(&srv, "POST /users {}", &r, &["username", "email", "name"]);
        let r = srv.api(
            "POST",
            "/users",
            Some(&rt),
            Some(&json!({"email": "x@example.com", "name": "X"})),
        );
        expect(
            &srv,
            "POST /users without username",
            &r,
            400,
            json!({"error": "username is missing"}),
        );
        let r = srv.api(
            "POST",
            "/users",
            Some(&rt),
            Some(&json!({"username": "x", "name": "X"})),
        );
        expect(
            &srv,
            "POST /users without email",
            &r,
            400,
            json!({"error": "email is missing"}),
        );
        let r = srv.api_form("POST", "/users", Some(&rt), "username=x&email=x%40example.com");
        expect(
            &srv,
            "POST /users without name (form)",
            &r,
            400,
            json!({"error": "name is missing"}),
        );
        unchanged(&srv, &before, "POST /users with missing parameters");
    }
}

#[test]
fn create_user_refuses_a_taken_username_or_email_case_insensitively() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        srv.user("alice", false, None);
        let before = srv.snapshot();
        for (body, msg) in [
            (
                json!({"username": "alice", "email": "other@example.com", "name": "A"}),
                "Username has already been taken",
            ),
            (
                json!({"username": "ALICE", "email": "other@example.com", "name": "A"}),
                "Username has already been taken",
            ),
            (
                json!({"username": "other", "email": "alice@example.com", "name": "A"}),
                "Email has already been taken",
            ),
            (
                json!({"username": "other", "email": "Alice@EXAMPLE.com", "name": "A"}),
                "Email has already been taken",
            ),
        ] {
            let r = srv.api("POST", "/users", Some(&rt), Some(&body));
            expect(&srv, &format!("POST /users {body}"), &r, 409, json!({"message": msg}));
        }
        unchanged(&srv, &before, "POST /users with a taken username or email");
    }
}

#[test]
fn create_user_refuses_an_invalid_username_email_or_short_password() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let before = srv.snapshot();
        for (body, field) in [
            (
                json!({"username": "-bad", "email": "bad@example.com", "name": "B"}),
                "username",
            ),
            (
                json!({"username": "has space", "email": "bad@example.com", "name": "B"}),
                "username",
            ),
            (
                json!({"username": "repo.git", "email": "bad@example.com", "name": "B"}),
                "username",
            ),
            (
                json!({"username": "good", "email": "not-an-email", "name": "B"}),
                "email",
            ),
            (
                json!({"username": "good", "email": "good@example.com", "name": "B", "password": "short"}),
                "password",
            ),
        ] {
            let r = srv.api("POST", "/users", Some(&rt), Some(&body));
            expect_field_error(&srv, &format!("POST /users {body}"), &r, field);
        }
        unchanged(&srv, &before, "POST /users with invalid values");
    }
}

#[test]
fn create_user_refuses_a_wrongly_typed_admin_flag() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let before = srv.snapshot();
        let r = srv.api(
            "POST",
            "/users",
            Some(&rt),
            Some(&json!({"username": "x", "email": "x@example.com", "name": "X", "admin": "maybe"})),
        );
        expect(&srv, "admin=maybe", &r, 400, json!({"error": "admin is invalid"}));
        unchanged(&srv, &before, "POST /users admin=maybe");
    }
}

#[test]
fn create_user_is_for_admins_only() {
    for srv in TestServer::each() {
        let (_, _) = root(&srv);
        let (_, at) = someone(&srv, "alice");
        let root_read = srv.token("root", &["read_api"], None);
        warm(&srv, &[&root_read]);
        let body = json!({"username": "x", "email": "x@example.com", "name": "X"});
        let before = srv.snapshot();
        let r = srv.api("POST", "/users", Some(&at), Some(&body));
        expect(&srv, "POST /users as a non-admin", &r, 403, forbidden());
        let r = srv.api("POST", "/users", None, Some(&body));
        expect(&srv, "anonymous POST /users", &r, 401, unauthorized());
        let r = srv.api("POST", "/users", Some(&root_read), Some(&body));
        expect(
            &srv,
            "POST /users with read_api",
            &r,
            403,
            json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"}),
        );
        unchanged(&srv, &before, "POST /users refused");
    }
}

#[test]
fn create_user_with_admin_true_makes_an_admin() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let r = srv.api(
            "POST",
            "/users",
            Some(&rt),
            Some(&json!({"username": "boss", "email": "boss@example.com", "name": "Boss", "admin": true})),
        );
        status(&srv, "POST /users admin:true", &r, 201);
        assert_eq!(r.json["is_admin"], json!(true), "[{}] {}", srv.backend(), r.json);
        let row = gitpat::db::user::find_by_username(&mut srv.conn(), "boss")
            .unwrap()
            .unwrap();
        assert!(row.is_admin, "[{}]", srv.backend());
        // The new admin may create users.
        let bt = srv.token("boss", &["api"], None);
        let r = srv.api(
            "POST",
            "/users",
            Some(&bt),
            Some(&json!({"username": "minion", "email": "minion@example.com", "name": "M", "admin": false})),
        );
        status(&srv, "POST /users by the new admin", &r, 201);
        assert_eq!(r.json["is_admin"], json!(false), "[{}] {}", srv.backend(), r.json);
        // Form: admin=true.
        let r = srv.api_form(
            "POST",
            "/users",
            Some(&rt),
            "username=boss2&email=boss2%40example.com&name=B&admin=true",
        );
        status(&srv, "POST /users admin=true (form)", &r, 201);
        assert_eq!(r.json["is_admin"], json!(true), "[{}] {}", srv.backend(), r.json);
    }
}

#[test]
fn created_user_gets_a_token_that_authenticates() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let r = srv.api(
            "POST",
            "/users",
            Some(&rt),
            Some(&json!({"username": "newbie", "email": "newbie@example.com", "name": "New Bie"})),
        );
        status(&srv, "POST /users", &r, 201);
        let id = r.int("id");
        let t = srv.api(
            "POST",
            &format!("/users/{id}/personal_access_tokens"),
            Some(&rt),
            Some(&json!({"name": "first", "scopes": ["api"]})),
        );
        status(&srv, "POST /users/:id/personal_access_tokens", &t, 201);
        assert_eq!(t.int("user_id"), id, "[{}] {}", srv.backend(), t.json);
        let secret = t.str("token").to_string();
        let me = srv.api("GET", "/user", Some(&secret), None);
        status(&srv, "GET /user with the new token", &me, 200);
        assert_eq!(
            (me.int("id"), me.str("username")),
            (id, "newbie"),
            "[{}]",
            srv.backend()
        );
    }
}

// ---------------------------------------------------------------------
// PUT /users/:id

#[test]
fn update_user_changes_name_email_username_and_admin() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        let at = srv.token("alice", &["api"], None);
        let r = srv.api(
            "PUT",
            &format!("/users/{}", alice.id),
            Some(&rt),
            Some(&json!({"name": "Alice Renamed", "email": "alice2@example.com", "username": "alice2"})),
        );
        status(&srv, "PUT /users/:id", &r, 200);
        let want = full_user(&srv, alice.id, "alice2", "Alice Renamed", r.str("created_at"));
        expect(&srv, "PUT /users/:id", &r, 200, want.clone());
        assert_time_near(&srv, "created_at", &r.json["created_at"], alice.created_at);
        let g = srv.api("GET", "/user", Some(&at), None);
        expect(&srv, "GET /user after the update", &g, 200, want);
        // admin (form body).
        let r = srv.api_form("PUT", &format!("/users/{}", alice.id), Some(&rt), "admin=true");
        status(&srv, "PUT admin=true", &r, 200);
        assert_eq!(r.json["is_admin"], json!(true), "[{}] {}", srv.backend(), r.json);
        // Now alice may create users.
        let c = srv.api(
            "POST",
            "/users",
            Some(&at),
            Some(&json!({"username": "x", "email": "x@example.com", "name": "X"})),
        );
        status(&srv, "POST /users by alice made admin", &c, 201);
        let r = srv.api(
            "PUT",
            &format!("/users/{}", alice.id),
            Some(&rt),
            Some(&json!({"admin": false})),
        );
        assert_eq!(r.json["is_admin"], json!(false), "[{}] {}", srv.backend(), r.json);
        let c = srv.api(
            "POST",
            "/users",
            Some(&at),
            Some(&json!({"username": "y", "email": "y@example.com", "name": "Y"})),
        );
        expect(&srv, "POST /users by alice no longer admin", &c, 403, forbidden());
    }
}

#[test]
fn update_user_password_is_the_one_git_accepts() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        srv.repo("alice/p", "alice", "private");
        let refs = "/alice/p.git/info/refs?service=git-upload-pack";
        let auth = basic("alice", PASSWORD);
        let before = srv.raw("GET", refs, &[("Authorization", &auth)], b"");
        assert_eq!(
            before.status,
            401,
            "[{}] git with a password not set yet",
            srv.backend()
        );
        let r = srv.api(
            "PUT",
            &format!("/users/{}", alice.id),
            Some(&rt),
            Some(&json!({"password": PASSWORD})),
        );
        status(&srv, "PUT password", &r, 200);
        let after = srv.raw("GET", refs, &[("Authorization", &auth)], b"");
        assert_eq!(after.status, 200, "[{}] git with the new password", srv.backend());
        // Too short: refused, nothing stored.
        let snap = srv.snapshot();
        let r = srv.api(
            "PUT",
            &format!("/users/{}", alice.id),
            Some(&rt),
            Some(&json!({"password": "short"})),
        );
        expect_field_error(&srv, "PUT a short password", &r, "password");
        unchanged(&srv, &snap, "PUT a short password");
    }
}

#[test]
fn update_user_refusals_write_nothing() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        srv.user("bob", false, None);
        let (_, ct) = someone(&srv, "carol");
        let path = format!("/users/{}", alice.id);
        let before = srv.snapshot();
        let r = srv.api("PUT", &path, Some(&rt), Some(&json!({"username": "BOB"})));
        expect(
            &srv,
            "PUT a taken username",
            &r,
            409,
            json!({"message": "Username has already been taken"}),
        );
        let r = srv.api("PUT", &path, Some(&rt), Some(&json!({"email": "bob@EXAMPLE.com"})));
        expect(
            &srv,
            "PUT a taken email",
            &r,
            409,
            json!({"message": "Email has already been taken"}),
        );
        let r = srv.api("PUT", &path, Some(&rt), Some(&json!({"email": "nope"})));
        expect_field_error(&srv, "PUT an invalid email", &r, "email");
        let r = srv.api("PUT", &path, Some(&rt), Some(&json!({"username": "bad name"})));
        expect_field_error(&srv, "PUT an invalid username", &r, "username");
        let r = srv.api("PUT", &path, Some(&ct), Some(&json!({"name": "Hacked"})));
        expect(&srv, "PUT by a non-admin", &r, 403, forbidden());
        let r = srv.api("PUT", &path, None, Some(&json!({"name": "Hacked"})));
        expect(&srv, "anonymous PUT", &r, 401, unauthorized());
        let r = srv.api("PUT", "/users/999999", Some(&rt), Some(&json!({"name": "Ghost"})));
        expect(
            &srv,
            "PUT an unknown user",
            &r,
            404,
            json!({"message": "404 User Not Found"}),
        );
        unchanged(&srv, &before, "refused PUT /users/:id");
    }
}

// ---------------------------------------------------------------------
// Block, unblock

#[test]
fn block_and_unblock_a_user() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let (alice_id, at) = someone(&srv, "alice");
        let r = srv.api("POST", &format!("/users/{alice_id}/block"), Some(&rt), None);
        expect(&srv, "POST block", &r, 201, json!(true));
        let r = srv.api("GET", "/user", Some(&at), None);
        expect(
            &srv,
            "a blocked user's token",
            &r,
            403,
            json!({"message": "403 Forbidden - Your account has been blocked."}),
        );
        let r = srv.api("GET", &format!("/users/{alice_id}"), Some(&rt), None);
        assert_eq!(r.str("state"), "blocked", "[{}]", srv.backend());
        let r = srv.api("POST", &format!("/users/{alice_id}/unblock"), Some(&rt), None);
        expect(&srv, "POST unblock", &r, 201, json!(true));
        let r = srv.api("GET", "/user", Some(&at), None);
        status(&srv, "the token after unblock", &r, 200);
        assert_eq!(r.str("state"), "active", "[{}]", srv.backend());
    }
}

#[test]
fn block_and_unblock_are_for_admins_and_known_users() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let (alice_id, at) = someone(&srv, "alice");
        let (_, bt) = someone(&srv, "bob");
        let before = srv.snapshot();
        for action in ["block", "unblock"] {
            let r = srv.api("POST", &format!("/users/{alice_id}/{action}"), Some(&bt), None);
            expect(&srv, &format!("{action} by a non-admin"), &r, 403, forbidden());
            let r = srv.api("POST", &format!("/users/{alice_id}/{action}"), None, None);
            expect(&srv, &format!("anonymous {action}"), &r, 401, unauthorized());
            let r = srv.api("POST", &format!("/users/999999/{action}"), Some(&rt), None);
            expect(
                &srv,
                &format!("{action} an unknown user"),
                &r,
                404,
                json!({"message": "404 User Not Found"}),
            );
        }
        unchanged(&srv, &before, "refused block/unblock");
        let r = srv.api("GET", "/user", Some(&at), None);
        status(&srv, "alice still active", &r, 200);
    }
}

// ---------------------------------------------------------------------
// Generic request rules.

#[test]
fn unknown_api_path_is_404() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        for path in ["/nope", "/nope/deeper", "/users/1/nope"] {
            let r = srv.api("GET", path, Some(&rt), None);
            expect(&srv, &format!("GET {path}"), &r, 404, json!({"error": "404 Not Found"}));
        }
    }
}

#[test]
fn known_path_with_a_wrong_method_is_405() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let before = srv.snapshot();
        for (method, path) in [("PATCH", "/user"), ("DELETE", "/version"), ("DELETE", "/users")] {
            let r = srv.api(method, path, Some(&rt), None);
            expect(
                &srv,
                &format!("{method} {path}"),
                &r,
                405,
                json!({"message": "405 Method Not Allowed"}),
            );
        }
        unchanged(&srv, &before, "405s");
    }
}

#[test]
fn malformed_bodies_are_400_and_write_nothing() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let before = srv.snapshot();
        let json_ct = [("PRIVATE-TOKEN", rt.as_str()), ("Content-Type", "application/json")];
        for body in [
            &b"{\"username\": "[..],
            b"[1, 2]",
            b"\"a string\"",
            b"{\"username\": \"x\",}",
        ] {
            let r = srv.api_raw("POST", "/users", &json_ct, body);
            expect_bad_request(&srv, &format!("POST /users {:?}", String::from_utf8_lossy(body)), &r);
        }
        let form_ct = [
            ("PRIVATE-TOKEN", rt.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        let r = srv.api_raw(
            "POST",
            "/users",
            &form_ct,
            b"username=\xff\xfe&email=x%40example.com&name=X",
        );
        expect_bad_request(&srv, "POST /users with a form that is not UTF-8", &r);
        unchanged(&srv, &before, "malformed bodies");
    }
}

#[test]
fn another_content_type_is_415_a_malformed_multipart_400_and_both_write_nothing() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let before = srv.snapshot();
        for ct in ["text/plain", "application/xml", "application/octet-stream"] {
            let r = srv.api_raw(
                "POST",
                "/users",
                &[("PRIVATE-TOKEN", &rt), ("Content-Type", ct)],
                b"username=x&email=x%40example.com&name=X",
            );
            expect(
                &srv,
                &format!("POST /users as {ct}"),
                &r,
                415,
                json!({"message": "415 Unsupported Media Type"}),
            );
        }
        // multipart/form-data is taken (curl --form), but only well formed.
        let r = srv.api_raw(
            "POST",
            "/users",
            &[
                ("PRIVATE-TOKEN", &rt),
                ("Content-Type", "multipart/form-data; boundary=x"),
            ],
            b"username=x&email=x%40example.com&name=X",
        );
        expect(
            &srv,
            "POST /users as a malformed multipart body",
            &r,
            400,
            json!({"message": "400 Bad request - the multipart body is malformed"}),
        );
        unchanged(&srv, &before, "415s and a malformed multipart body");
    }
}

#[test]
fn a_body_over_one_mib_is_413_and_writes_nothing() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let before = srv.snapshot();
        // A valid JSON object just over 1 MiB.
        let pad = "x".repeat(1024 * 1024);
        let body = json!({"username": "big", "email": "big@example.com", "name": "Big", "pad": pad}).to_string();
        assert!(body.len() > 1024 * 1024);
        let head = format!(
            "POST /api/v4/users HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nPRIVATE-TOKEN: {rt}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            srv.addr,
            body.len()
        );
        let r = send_big(&srv, &head, body.as_bytes());
        let json: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert_eq!(
            (r.status, json),
            (413, json!({"message": "413 Request Entity Too Large"})),
            "[{}] a 1 MiB + JSON body: {}",
            srv.backend(),
            r.text()
        );
        // The same as a form.
        let form = format!("username=big&email=big%40example.com&name=Big&pad={pad}");
        let head = format!(
            "POST /api/v4/users HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nPRIVATE-TOKEN: {rt}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            srv.addr,
            form.len()
        );
        let r = send_big(&srv, &head, form.as_bytes());
        let json: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert_eq!(
            (r.status, json),
            (413, json!({"message": "413 Request Entity Too Large"})),
            "[{}] a 1 MiB + form body: {}",
            srv.backend(),
            r.text()
        );
        unchanged(&srv, &before, "413s");
        // Just under the limit is read: unknown keys of PUT
        // /application/settings are ignored, so the padding is harmless.
        let small = json!({"git_auth_ban_max_failures": 7, "pad": "x".repeat(1000 * 1000)});
        let r = srv.api("PUT", "/application/settings", Some(&rt), Some(&small));
        status(&srv, "a body just under 1 MiB", &r, 200);
        assert_eq!(r.json["git_auth_ban_max_failures"], json!(7), "[{}]", srv.backend());
    }
}
