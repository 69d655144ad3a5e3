//! The audit log (issue 17, item 3) on every backend: each change through
//! the API, the pages and the command line records exactly its event
//! (name, entity, author, target, address, details), a refused request
//! records none, `GET /audit_events` filters and pages as GitLab's, and
//! no secret (token, password, TOTP secret or code, session cookie) is
//! ever in an event. The retention purge is tested with explicit instants.

use chrono::{Duration, NaiveDateTime, TimeZone, Utc};
use diesel::prelude::*;
use gitpat::db::schema::audit_events as ae;
use gitpat::service::audit::{self, Actor, Event};
use serde_json::{json, Value};

use crate::api_paging::keyset_walk;
use crate::api_users::{root, someone};
use crate::support::api::{expect, forbidden, status, unauthorized, unchanged};
use crate::support::server::TestServer;
use crate::support::web::WebClient;
use crate::support::Gitpat;

const PASSWORD: &str = "correct-horse-battery-9";
const LOCAL: &str = "127.0.0.1";

/// Every event, oldest first, as the API shows them.
fn all_events(srv: &TestServer) -> Vec<Value> {
    let conn = &mut *srv.conn();
    let mut rows = audit::list(conn, &Default::default(), None).expect("the audit events");
    rows.reverse();
    rows.iter().map(audit::view).collect()
}

/// The id of the newest event (0 for none).
fn mark(srv: &TestServer) -> i64 {
    all_events(srv).last().map_or(0, |e| e["id"].as_i64().unwrap())
}

/// The events after `mark`, oldest first.
fn since(srv: &TestServer, mark: i64) -> Vec<Value> {
    all_events(srv)
        .into_iter()
        .filter(|e| e["id"].as_i64().unwrap() > mark)
        .collect()
}

/// An expected event: its name, entity, author and the details it must
/// have (others may be there too).
struct Want {
    event: &'static str,
    entity: (&'static str, i64),
    author: (Option<i64>, &'static str),
    details: Value,
}

fn want(event: &'static str, entity: (&'static str, i64), author: (Option<i64>, &'static str), details: Value) -> Want {
    Want {
        event,
        entity,
        author,
        details,
    }
}

/// Asserts that exactly `wants` were recorded after `mark`, in order.
#[track_caller]
fn expect_events(srv: &TestServer, mark: i64, what: &str, wants: &[Want]) -> Vec<Value> {
    let got = since(srv, mark);
    let b = srv.backend();
    let names: Vec<&str> = got.iter().map(|e| e["event_name"].as_str().unwrap_or("?")).collect();
    let wanted: Vec<&str> = wants.iter().map(|w| w.event).collect();
    assert_eq!(names, wanted, "[{b}] {what}: the events recorded: {got:#?}");
    for (e, w) in got.iter().zip(wants) {
        let ctx = format!("[{b}] {what}: {}: {e:#}", w.event);
        assert_eq!(
            (&e["entity_type"], &e["entity_id"]),
            (&json!(w.entity.0), &json!(w.entity.1)),
            "{ctx}"
        );
        assert_eq!(e["author_id"], json!(w.author.0), "{ctx}");
        assert_eq!(e["details"]["author_name"], json!(w.author.1), "{ctx}");
        let d = w.details.as_object().expect("details to check");
        for (k, v) in d {
            assert_eq!(&e["details"][k], v, "{ctx}: details.{k}");
        }
        assert!(
            crate::support::api::is_iso_ms(e["created_at"].as_str().unwrap_or_default()),
            "{ctx}"
        );
        assert!(
            e["details"]["custom_message"].as_str().is_some_and(|m| !m.is_empty()),
            "{ctx}"
        );
    }
    got
}

/// Asserts that none of `secrets` appears anywhere in the audit log: in
/// the API's JSON of every event, or in any stored column.
#[track_caller]
fn assert_no_secret(srv: &TestServer, rt: &str, secrets: &[(&str, String)]) {
    let b = srv.backend();
    let mut text = String::new();
    let mut page = 1;
    loop {
        let r = srv.api(
            "GET",
            &format!("/audit_events?per_page=100&page={page}"),
            Some(rt),
            None,
        );
        status(srv, "GET /audit_events for the secret search", &r, 200);
        text.push_str(&r.raw.text());
        if r.header("x-next-page").unwrap_or_default().is_empty() {
            break;
        }
        page += 1;
    }
    let rows = audit::list(&mut srv.conn(), &Default::default(), None).expect("events");
    text.push_str(&format!("{rows:?}"));
    assert!(rows.len() > 5, "[{b}] too few events to search: {rows:?}");
    for (what, s) in secrets {
        assert!(s.len() >= 6, "[{b}] {what} is too short to search for: {s:?}");
        assert!(
            !text.contains(s.as_str()),
            "[{b}] the {what} is in the audit log: {text}"
        );
    }
}

/// The token rows' digests and the users' password hashes: never in an
/// event either.
fn stored_secrets(srv: &TestServer) -> Vec<(&'static str, String)> {
    let conn = &mut *srv.conn();
    let mut v = Vec::new();
    for t in gitpat::db::token::list(conn, None).unwrap() {
        v.push(("token digest", t.token_digest));
    }
    for u in gitpat::db::user::list(conn).unwrap() {
        if let Some(s) = gitpat::service::two_factor::secret_of(&srv.app.key, &u).unwrap() {
            v.push(("TOTP secret", s));
        }
        if let Some(h) = u.password_hash {
            v.push(("password hash", h));
        }
    }
    v
}

#[test]
fn every_api_change_records_exactly_its_event() {
    for srv in TestServer::each() {
        let (root_id, rt) = root(&srv);
        let (alice_id, at) = someone(&srv, "alice");
        let root_by = (Some(root_id), "root");
        let alice = ("User", alice_id);
        let from_here = |mut d: Value| {
            d["ip_address"] = json!(LOCAL);
            d["via"] = json!("api");
            d
        };
        let mut secrets: Vec<(&str, String)> = vec![("root's token", rt.clone()), ("alice's token", at.clone())];

        // A token made by an administrator for alice: by whom, for whom,
        // its scopes and expiry.
        let expires = (Utc::now() + Duration::days(30))
            .date_naive()
            .format("%Y-%m-%d")
            .to_string();
        let m = mark(&srv);
        let r = srv.api(
            "POST",
            &format!("/users/{alice_id}/personal_access_tokens"),
            Some(&rt),
            Some(&json!({"name": "ci", "scopes": ["read_api", "read_repository"], "expires_at": expires})),
        );
        status(&srv, "POST /users/:id/personal_access_tokens", &r, 201);
        let pat = r.int("id");
        secrets.push(("new token", r.str("token").to_string()));
        expect_events(
            &srv,
            m,
            "an administrator creates alice's token",
            &[want(
                "personal_access_token_created",
                alice,
                root_by,
                from_here(json!({
                    "target_type": "PersonalAccessToken", "target_id": pat, "target_details": "ci",
                    "entity_path": "alice", "author_email": "root@example.com",
                    "scopes": ["read_api", "read_repository"], "expires_at": expires, "impersonation": false,
                })),
            )],
        );

        // An impersonation token.
        let m = mark(&srv);
        let r = srv.api(
            "POST",
            &format!("/users/{alice_id}/impersonation_tokens"),
            Some(&rt),
            Some(&json!({"name": "support", "scopes": ["api"]})),
        );
        status(&srv, "POST /users/:id/impersonation_tokens", &r, 201);
        let imp = r.int("id");
        secrets.push(("impersonation token", r.str("token").to_string()));
        expect_events(
            &srv,
            m,
            "an impersonation token",
            &[want(
                "impersonation_token_created",
                alice,
                root_by,
                from_here(json!({"target_id": imp, "scopes": ["api"], "impersonation": true, "expires_at": null})),
            )],
        );
        let m = mark(&srv);
        let r = srv.api(
            "DELETE",
            &format!("/users/{alice_id}/impersonation_tokens/{imp}"),
            Some(&rt),
            None,
        );
        status(&srv, "DELETE an impersonation token", &r, 204);
        expect_events(
            &srv,
            m,
            "an impersonation token revoked",
            &[want(
                "impersonation_token_revoked",
                alice,
                root_by,
                from_here(json!({"target_id": imp})),
            )],
        );

        // Alice rotates her own token: she is the author.
        let old_id = srv.token_row(&at).id;
        let m = mark(&srv);
        let r = srv.api("POST", "/personal_access_tokens/self/rotate", Some(&at), None);
        status(&srv, "POST /personal_access_tokens/self/rotate", &r, 200);
        let new_id = r.int("id");
        let at2 = r.str("token").to_string();
        secrets.push(("rotated token", at2.clone()));
        expect_events(
            &srv,
            m,
            "alice rotates her token",
            &[want(
                "personal_access_token_rotated",
                alice,
                (Some(alice_id), "alice"),
                from_here(json!({"target_id": old_id, "new_token_id": new_id, "author_email": "alice@example.com"})),
            )],
        );

        // The rotated-away token used again: its family is revoked, by no
        // one, from this address.
        let m = mark(&srv);
        let r = srv.api("GET", "/user", Some(&at), None);
        expect(&srv, "a rotated-away token", &r, 401, unauthorized());
        let got = expect_events(
            &srv,
            m,
            "family revocation",
            &[want(
                "personal_access_token_family_revoked",
                alice,
                (None, "gitpat"),
                json!({
                    "target_id": old_id, "ip_address": LOCAL, "via": null,
                    "revoked_token_ids": [new_id], "family_token_ids": [old_id, new_id],
                }),
            )],
        );
        assert_eq!(got[0]["details"]["author_class"], "System", "[{}]", srv.backend());
        // Again: the family is revoked already, nothing more is recorded.
        let m = mark(&srv);
        srv.api("GET", "/user", Some(&at), None);
        expect_events(&srv, m, "a second reuse", &[]);

        // Revoking: once recorded; revoking again is no change.
        let m = mark(&srv);
        let r = srv.api("DELETE", &format!("/personal_access_tokens/{pat}"), Some(&rt), None);
        status(&srv, "DELETE /personal_access_tokens/:id", &r, 204);
        expect_events(
            &srv,
            m,
            "an administrator revokes alice's token",
            &[want(
                "personal_access_token_revoked",
                alice,
                root_by,
                from_here(json!({"target_id": pat})),
            )],
        );
        let m = mark(&srv);
        let r = srv.api("DELETE", &format!("/personal_access_tokens/{pat}"), Some(&rt), None);
        status(&srv, "DELETE a revoked token", &r, 204);
        expect_events(&srv, m, "revoking a revoked token", &[]);

        // Users: created, then each change as a table.
        let m = mark(&srv);
        let r = srv.api(
            "POST",
            "/users",
            Some(&rt),
            Some(&json!({"username": "bob", "email": "bob@example.com", "name": "Bob", "password": PASSWORD})),
        );
        status(&srv, "POST /users", &r, 201);
        let bob_id = r.int("id");
        let bob = ("User", bob_id);
        expect_events(
            &srv,
            m,
            "a user created",
            &[want(
                "user_created",
                bob,
                root_by,
                from_here(json!({"target_type": "User", "target_id": bob_id, "is_admin": false, "password_set": true})),
            )],
        );
        let new_password = "another-horse-battery-7";
        secrets.push(("password", PASSWORD.to_string()));
        secrets.push(("new password", new_password.to_string()));
        let cases: Vec<(&str, &str, String, Value, Vec<Want>)> = vec![
            (
                "admin rights granted",
                "PUT",
                format!("/users/{bob_id}"),
                json!({"admin": true}),
                vec![want(
                    "user_admin_status_changed",
                    bob,
                    root_by,
                    from_here(json!({"from": false, "to": true})),
                )],
            ),
            (
                "admin rights taken",
                "PUT",
                format!("/users/{bob_id}"),
                json!({"admin": false}),
                vec![want(
                    "user_admin_status_changed",
                    bob,
                    root_by,
                    json!({"from": true, "to": false}),
                )],
            ),
            (
                "the same admin flag again",
                "PUT",
                format!("/users/{bob_id}"),
                json!({"admin": false}),
                vec![],
            ),
            (
                "a new password",
                "PUT",
                format!("/users/{bob_id}"),
                json!({"password": new_password}),
                vec![want("user_password_changed", bob, root_by, from_here(json!({})))],
            ),
            (
                "name and e-mail",
                "PUT",
                format!("/users/{bob_id}"),
                json!({"name": "Robert", "email": "robert@example.com"}),
                vec![want(
                    "user_updated",
                    bob,
                    root_by,
                    json!({"changes": {
                        "name": {"from": "Bob", "to": "Robert"},
                        "email": {"from": "bob@example.com", "to": "robert@example.com"},
                    }}),
                )],
            ),
            (
                "blocked",
                "POST",
                format!("/users/{bob_id}/block"),
                json!({}),
                vec![want("user_blocked", bob, root_by, from_here(json!({})))],
            ),
            (
                "blocked again",
                "POST",
                format!("/users/{bob_id}/block"),
                json!({}),
                vec![],
            ),
            (
                "unblocked",
                "POST",
                format!("/users/{bob_id}/unblock"),
                json!({}),
                vec![want("user_unblocked", bob, root_by, from_here(json!({})))],
            ),
            (
                "one setting changed, one the same",
                "PUT",
                "/application/settings".to_string(),
                json!({"max_login_attempts": 5, "git_auth_ban_enabled": true}),
                vec![want(
                    "application_setting_updated",
                    (audit::INSTANCE, 1),
                    root_by,
                    from_here(json!({
                        "setting": "max_login_attempts", "from": "10", "to": "5",
                        "target_type": "ApplicationSetting", "target_details": "max_login_attempts",
                    })),
                )],
            ),
        ];
        for (what, method, path, body, wants) in cases {
            let m = mark(&srv);
            let r = srv.api(method, &path, Some(&rt), Some(&body));
            assert!(
                r.status == 200 || r.status == 201,
                "[{}] {what}: {} {}",
                srv.backend(),
                r.status,
                r.raw.text()
            );
            expect_events(&srv, m, what, &wants);
        }

        // Sudo: its use is recorded, and the events of what is done under
        // it name the administrator.
        let sudo = srv.token("root", &["api", "sudo"], None);
        secrets.push(("sudo token", sudo.clone()));
        let (_, carol_token) = someone(&srv, "carol");
        let carol_id = srv.token_row(&carol_token).user_id;
        let carol_pat = srv.token_row(&carol_token).id;
        let m = mark(&srv);
        let r = srv.api_raw(
            "DELETE",
            &format!("/personal_access_tokens/{carol_pat}?private_token={sudo}"),
            &[("Sudo", "carol")],
            b"",
        );
        status(&srv, "DELETE as carol with Sudo", &r, 204);
        let carol = ("User", carol_id);
        expect_events(
            &srv,
            m,
            "a revocation through Sudo",
            &[
                want(
                    "personal_access_token_revoked",
                    carol,
                    (Some(carol_id), "carol"),
                    from_here(json!({"impersonated_by": "root", "target_id": carol_pat})),
                ),
                want(
                    "user_impersonated_with_sudo",
                    carol,
                    root_by,
                    from_here(json!({
                        "method": "DELETE",
                        "path": format!("/api/v4/personal_access_tokens/{carol_pat}"),
                    })),
                ),
            ],
        );
        // A read through Sudo is recorded too; one refused after Sudo let
        // it in records nothing.
        let m = mark(&srv);
        let r = srv.api_raw("GET", &format!("/user?private_token={sudo}"), &[("Sudo", "carol")], b"");
        status(&srv, "GET /user as carol", &r, 200);
        let r = srv.api_raw(
            "POST",
            &format!("/users/{alice_id}/block?private_token={sudo}"),
            &[("Sudo", "carol")],
            b"",
        );
        status(&srv, "carol may not block alice", &r, 403);
        expect_events(
            &srv,
            m,
            "Sudo: a read, and a refusal",
            &[want(
                "user_impersonated_with_sudo",
                carol,
                root_by,
                from_here(json!({"method": "GET", "path": "/api/v4/user"})),
            )],
        );

        // A ban: its own event, from the banned address.
        srv.setting("git_auth_ban_max_failures", "3");
        let m = mark(&srv);
        for _ in 0..3 {
            let r = srv.api("GET", "/user", Some("glpat-not-a-real-token-x"), None);
            status(&srv, "a bad token", &r, 401);
        }
        expect_events(
            &srv,
            m,
            "three bad tokens",
            &[want(
                "client_banned",
                (audit::INSTANCE, 1),
                (None, "gitpat"),
                json!({"ip_address": LOCAL, "target_type": "Client", "target_details": "ip:127.0.0.1", "failures": 3}),
            )],
        );

        secrets.extend(stored_secrets(&srv));
        assert_no_secret(&srv, &rt, &secrets);
    }
}

/// A refused request: what, method, path, token, JSON body (null: none),
/// more headers, the status.
type Refusal<'a> = (
    &'a str,
    &'a str,
    String,
    Option<&'a str>,
    Value,
    &'a [(&'a str, &'a str)],
    u16,
);

#[test]
fn a_refused_request_records_nothing() {
    for srv in TestServer::each() {
        let (root_id, rt) = root(&srv);
        let (alice_id, at) = someone(&srv, "alice");
        let ro = srv.token("root", &["read_api"], None);
        crate::api_users::warm(&srv, &[&ro]);
        let revoked = srv.token("alice", &["api"], None);
        let revoked_id = srv.token_row(&revoked).id;
        srv.api(
            "DELETE",
            &format!("/personal_access_tokens/{revoked_id}"),
            Some(&rt),
            None,
        );
        let cases: Vec<Refusal> = vec![
            (
                "a user reads the audit log",
                "GET",
                "/audit_events".into(),
                Some(&at),
                json!(null),
                &[],
                403,
            ),
            (
                "anonymous reads the audit log",
                "GET",
                "/audit_events".into(),
                None,
                json!(null),
                &[],
                401,
            ),
            (
                "a user creates a user",
                "POST",
                "/users".into(),
                Some(&at),
                json!({"username": "x", "email": "x@example.com", "name": "X"}),
                &[],
                403,
            ),
            (
                "a taken username",
                "POST",
                "/users".into(),
                Some(&rt),
                json!({"username": "alice", "email": "y@example.com", "name": "Y"}),
                &[],
                409,
            ),
            (
                "a bad setting among good ones",
                "PUT",
                "/application/settings".into(),
                Some(&rt),
                json!({"max_login_attempts": 5, "git_auth_ban_max_failures": 0}),
                &[],
                400,
            ),
            (
                "a user's settings change",
                "PUT",
                "/application/settings".into(),
                Some(&at),
                json!({"max_login_attempts": 5}),
                &[],
                403,
            ),
            (
                "an unknown scope",
                "POST",
                format!("/users/{alice_id}/personal_access_tokens"),
                Some(&rt),
                json!({"name": "x", "scopes": ["nope"]}),
                &[],
                400,
            ),
            (
                "rotating a revoked token",
                "POST",
                format!("/personal_access_tokens/{revoked_id}/rotate"),
                Some(&rt),
                json!(null),
                &[],
                400,
            ),
            (
                "a write with a read_api token",
                "POST",
                format!("/users/{alice_id}/block"),
                Some(&ro),
                json!(null),
                &[],
                403,
            ),
            (
                "blocking oneself",
                "POST",
                format!("/users/{root_id}/block"),
                Some(&rt),
                json!(null),
                &[],
                403,
            ),
            (
                "Sudo by a non-admin",
                "GET",
                "/user".into(),
                Some(&at),
                json!(null),
                &[("Sudo", "root")],
                403,
            ),
            (
                "Sudo without the sudo scope",
                "GET",
                "/user".into(),
                Some(&rt),
                json!(null),
                &[("Sudo", "alice")],
                403,
            ),
            (
                "an unknown entity_type",
                "GET",
                "/audit_events?entity_type=Instance".into(),
                Some(&rt),
                json!(null),
                &[],
                400,
            ),
        ];
        for (what, method, path, token, body, extra, want) in cases {
            let before = srv.snapshot();
            let text = if body.is_null() {
                String::new()
            } else {
                body.to_string()
            };
            let mut headers: Vec<(&str, &str)> = extra.to_vec();
            if let Some(t) = token {
                headers.push(("PRIVATE-TOKEN", t));
            }
            if !body.is_null() {
                headers.push(("Content-Type", "application/json"));
            }
            let r = srv.api_raw(method, &path, &headers, text.as_bytes());
            status(&srv, what, &r, want);
            unchanged(&srv, &before, what);
        }
        let r = srv.api("GET", "/audit_events", Some(&at), None);
        expect(&srv, "a user's GET /audit_events", &r, 403, forbidden());
    }
}

#[test]
fn the_list_filters_and_pages_as_gitlabs() {
    for srv in TestServer::each() {
        let (root_id, rt) = root(&srv);
        let ro = srv.token("root", &["read_api"], None);
        let (alice_id, _) = someone(&srv, "alice");
        let (bob_id, _) = someone(&srv, "bob");
        srv.setting("max_login_attempts", "7");
        srv.setting("max_login_attempts", "8");
        // Spread the events over known days.
        let day =
            |d: u32| NaiveDateTime::parse_from_str(&format!("2026-11-{d:02} 10:00:00"), "%Y-%m-%d %H:%M:%S").unwrap();
        {
            let conn = &mut *srv.conn();
            for (i, e) in all_events(&srv).iter().enumerate() {
                diesel::update(ae::table.find(e["id"].as_i64().unwrap()))
                    .set(ae::created_at.eq(day(1 + i as u32)))
                    .execute(conn)
                    .unwrap();
            }
        }
        let all = all_events(&srv);
        assert_eq!(all.len(), 9, "[{}] the events: {all:#?}", srv.backend());
        let ids = |r: &crate::support::api::ApiReply| r.ids();
        let every: Vec<i64> = all.iter().rev().map(|e| e["id"].as_i64().unwrap()).collect();
        let r = srv.api("GET", "/audit_events?per_page=100", Some(&rt), None);
        status(&srv, "GET /audit_events", &r, 200);
        assert_eq!(ids(&r), every, "[{}] newest first", srv.backend());
        let of = |pred: &dyn Fn(&Value) -> bool| -> Vec<i64> {
            all.iter()
                .rev()
                .filter(|e| pred(e))
                .map(|e| e["id"].as_i64().unwrap())
                .collect()
        };
        let user_events = |id: i64| of(&|e: &Value| e["entity_type"] == "User" && e["entity_id"] == id);
        let created = |e: &Value, lo: u32, hi: u32| {
            let d: u32 = e["created_at"].as_str().unwrap()[8..10].parse().unwrap();
            lo <= d && d <= hi
        };
        let cases: Vec<(String, Vec<i64>)> = vec![
            (format!("entity_type=User&entity_id={alice_id}"), user_events(alice_id)),
            (format!("entity_type=User&entity_id={bob_id}"), user_events(bob_id)),
            (format!("entity_type=User&entity_id={root_id}"), user_events(root_id)),
            (
                "entity_type=Gitlab::Audit::InstanceScope".into(),
                of(&|e: &Value| e["entity_type"] == audit::INSTANCE),
            ),
            (
                "created_after=2026-11-03T10:00:00Z".into(),
                of(&|e: &Value| created(e, 3, 30)),
            ),
            (
                "created_before=2026-11-02T10:00:00Z".into(),
                of(&|e: &Value| created(e, 1, 2)),
            ),
            (
                "created_after=2026-11-02T00:00:00Z&created_before=2026-11-04T23:59:59Z".into(),
                of(&|e: &Value| created(e, 2, 4)),
            ),
            ("created_after=2027-01-01T00:00:00Z".into(), vec![]),
            // GitLab's other entity types are valid filters; gitpat
            // records no group or project events.
            ("entity_type=Project".into(), vec![]),
            ("entity_type=Group&entity_id=1".into(), vec![]),
        ];
        for (q, want) in cases {
            let r = srv.api("GET", &format!("/audit_events?per_page=100&{q}"), Some(&rt), None);
            status(&srv, &q, &r, 200);
            assert_eq!(ids(&r), want, "[{}] ?{q}", srv.backend());
        }
        assert_eq!(
            user_events(alice_id).len(),
            2,
            "[{}] alice: created, her token",
            srv.backend()
        );
        assert_eq!(
            of(&|e: &Value| e["entity_type"] == audit::INSTANCE).len(),
            2,
            "[{}] two settings changes",
            srv.backend()
        );
        // Pages, with GitLab's headers; a read_api token may read.
        let r = srv.api("GET", "/audit_events?per_page=2&page=2", Some(&ro), None);
        status(&srv, "page 2", &r, 200);
        assert_eq!(r.ids(), every[2..4].to_vec(), "[{}] page 2", srv.backend());
        assert_eq!(
            (
                r.header("x-page"),
                r.header("x-per-page"),
                r.header("x-total"),
                r.header("x-next-page")
            ),
            (Some("2"), Some("2"), Some("9"), Some("3")),
            "[{}] page 2's headers",
            srv.backend()
        );
        // Keyset pages, newest first, follow the next links to the end.
        let walked = keyset_walk(&srv, Some(&rt), "/audit_events?pagination=keyset&per_page=4");
        assert_eq!(walked, every, "[{}] keyset pages", srv.backend());
        let walked = keyset_walk(
            &srv,
            Some(&rt),
            &format!("/audit_events?pagination=keyset&per_page=1&entity_type=User&entity_id={alice_id}"),
        );
        assert_eq!(
            walked,
            user_events(alice_id),
            "[{}] filtered keyset pages",
            srv.backend()
        );
        // One event by id, as the list shows it.
        for e in [&all[0], &all[all.len() - 1]] {
            let r = srv.api("GET", &format!("/audit_events/{}", e["id"]), Some(&ro), None);
            expect(&srv, "GET /audit_events/:id", &r, 200, e);
        }
        // Bad values, and what GitLab says of them.
        for (q, want) in [
            (
                "entity_type=Instance",
                json!({"error": "entity_type does not have a valid value"}),
            ),
            ("entity_id=1", json!({"error": "entity_type is missing"})),
            ("entity_type=User&entity_id=x", json!({"error": "entity_id is invalid"})),
            ("created_after=yesterday", json!({"error": "created_after is invalid"})),
        ] {
            let r = srv.api("GET", &format!("/audit_events?{q}"), Some(&rt), None);
            expect(&srv, q, &r, 400, want);
        }
        let last = all[all.len() - 1]["id"].as_i64().unwrap();
        let r = srv.api("GET", &format!("/audit_events/{}", last + 1), Some(&rt), None);
        expect(
            &srv,
            "an event that is not there",
            &r,
            404,
            json!({"message": "404 Audit Event Not Found"}),
        );
        let r = srv.api("GET", "/audit_events/x", Some(&rt), None);
        expect(&srv, "a non-numeric id", &r, 400, json!({"error": "id is invalid"}));
        let (_, at) = someone(&srv, "carol");
        let r = srv.api("GET", &format!("/audit_events/{last}"), Some(&at), None);
        expect(&srv, "a user's GET /audit_events/:id", &r, 403, forbidden());
    }
}

/// The TOTP code of `secret` now.
fn code(secret: &str) -> String {
    gitpat::auth::totp::code_at(secret, Utc::now().timestamp() as u64).unwrap()
}

#[test]
fn the_pages_record_sign_ins_failures_and_changes() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let alice = srv.user("alice", false, Some(PASSWORD));
        let tfa = srv.user("tfa", false, Some(PASSWORD));
        let web_here = |mut d: Value| {
            d["ip_address"] = json!(LOCAL);
            d["via"] = json!("web");
            d
        };
        let mut secrets: Vec<(&str, String)> = vec![("password", PASSWORD.into()), ("root's token", rt.clone())];

        // A sign-in.
        let m = mark(&srv);
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        secrets.push(("session cookie", web.cookies["_gitpat_session"].clone()));
        let a = ("User", alice.id);
        expect_events(
            &srv,
            m,
            "a sign-in",
            &[want(
                "user_signed_in",
                a,
                (Some(alice.id), "alice"),
                web_here(json!({"two_factor": false})),
            )],
        );

        // Failures: a wrong password, an unknown login.
        let wrong = "wrong-password-123";
        secrets.push(("wrong password", wrong.into()));
        let mut other = WebClient::new(&srv);
        other.get("/users/sign_in");
        let m = mark(&srv);
        let r = other.post("/users/sign_in", &[("login", "alice"), ("password", wrong)]);
        assert_eq!(r.status, 422, "[{}] a wrong password", srv.backend());
        let r = other.post("/users/sign_in", &[("login", "nobody"), ("password", wrong)]);
        assert_eq!(r.status, 422, "[{}] an unknown login", srv.backend());
        expect_events(
            &srv,
            m,
            "failed sign-ins",
            &[
                want(
                    "login_failed_with_standard_authentication",
                    a,
                    (None, "alice"),
                    web_here(json!({"reason": "wrong login or password"})),
                ),
                want(
                    "login_failed_with_standard_authentication",
                    (audit::INSTANCE, 1),
                    (None, "nobody"),
                    web_here(json!({"target_type": "User", "target_details": "nobody"})),
                ),
            ],
        );

        // The second factor: on (by an administrator's command), then a
        // wrong code, then the right one.
        let m = mark(&srv);
        let uri =
            gitpat::service::users::enable_two_factor(&mut srv.conn(), &srv.app.key, &Actor::cli(), "tfa", Utc::now())
                .unwrap();
        expect_events(
            &srv,
            m,
            "2FA on",
            &[want(
                "user_two_factor_enabled",
                ("User", tfa.id),
                (None, "cli"),
                json!({"via": "cli", "ip_address": null}),
            )],
        );
        let secret = uri
            .split("secret=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .unwrap()
            .to_string();
        secrets.push(("TOTP secret", secret.clone()));
        let t = ("User", tfa.id);
        let mut two = WebClient::new(&srv);
        two.get("/users/sign_in");
        let m = mark(&srv);
        let r = two.post("/users/sign_in", &[("login", "tfa"), ("password", PASSWORD)]);
        assert_eq!(r.status, 303, "[{}] tfa's password", srv.backend());
        two.get("/users/two_factor");
        let good = code(&secret);
        let bad = if good == "000000" { "111111" } else { "000000" };
        let r = two.post("/users/two_factor", &[("otp_attempt", bad)]);
        assert_eq!(r.status, 422, "[{}] a wrong code", srv.backend());
        let r = two.post("/users/two_factor", &[("otp_attempt", &good)]);
        assert_eq!(r.status, 303, "[{}] the right code: {}", srv.backend(), r.text());
        secrets.push(("TOTP code", good.clone()));
        expect_events(
            &srv,
            m,
            "a 2FA sign-in",
            &[
                want(
                    "login_failed_with_otp_authentication",
                    t,
                    (None, "tfa"),
                    web_here(json!({"reason": "invalid two-factor code"})),
                ),
                want(
                    "user_signed_in",
                    t,
                    (Some(tfa.id), "tfa"),
                    web_here(json!({"two_factor": true})),
                ),
            ],
        );

        // Alice changes her password on its page.
        let new_password = "a-new-password-456";
        secrets.push(("new password", new_password.into()));
        web.get("/-/user_settings/password/edit");
        let m = mark(&srv);
        let r = web.post(
            "/-/user_settings/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
                ("password_confirmation", new_password),
            ],
        );
        assert_eq!(r.status, 303, "[{}] the password page: {}", srv.backend(), r.text());
        expect_events(
            &srv,
            m,
            "a password change",
            &[want(
                "user_password_changed",
                a,
                (Some(alice.id), "alice"),
                web_here(json!({})),
            )],
        );

        // A token made on the tokens page.
        web.sign_in("alice", new_password);
        let m = mark(&srv);
        let r = web.post(
            "/-/user_settings/personal_access_tokens",
            &[("name", "laptop"), ("scopes", "read_repository")],
        );
        assert_eq!(r.status, 303, "[{}] the tokens page: {}", srv.backend(), r.text());
        let made = since(&srv, m);
        let id = made[0]["details"]["target_id"].as_i64().unwrap();
        expect_events(
            &srv,
            m,
            "a token made on the page",
            &[want(
                "personal_access_token_created",
                a,
                (Some(alice.id), "alice"),
                web_here(json!({"target_id": id, "scopes": ["read_repository"]})),
            )],
        );
        let page = web.get("/-/user_settings/personal_access_tokens").text();
        let shown = page
            .split("id=\"new-token\"")
            .nth(1)
            .and_then(|s| s.split("value=\"").nth(1))
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_string();
        assert!(
            shown.starts_with("glpat-"),
            "[{}] no new token on the page: {page}",
            srv.backend()
        );
        secrets.push(("token made on the page", shown));

        // Alice turns 2FA on in its page.
        web.get("/-/user_settings/two_factor_auth");
        let pending = gitpat::db::user::find(&mut srv.conn(), alice.id)
            .unwrap()
            .and_then(|u| gitpat::service::two_factor::secret_of(&srv.app.key, &u).unwrap())
            .expect("a secret being enrolled");
        let m = mark(&srv);
        let r = web.post(
            "/-/user_settings/two_factor_auth",
            &[("pin_code", &code(&pending)), ("current_password", new_password)],
        );
        assert_eq!(r.status, 303, "[{}] 2FA enrolment: {}", srv.backend(), r.text());
        expect_events(
            &srv,
            m,
            "2FA enrolment on the page",
            &[want(
                "user_two_factor_enabled",
                a,
                (Some(alice.id), "alice"),
                web_here(json!({})),
            )],
        );
        let shown = web.get("/-/user_settings/two_factor_auth").text();
        let codes: Vec<String> = shown
            .split(|c: char| !c.is_ascii_hexdigit())
            .filter(|w| w.len() == 16)
            .map(str::to_string)
            .collect();
        assert!(
            codes.len() >= 10,
            "[{}] no recovery codes shown: {shown}",
            srv.backend()
        );
        for c in codes {
            secrets.push(("recovery code", c));
        }

        // An administrator on the admin pages: blocks alice, resets tfa's
        // second factor.
        let boss = srv.user("boss", true, Some(PASSWORD));
        let mut admin = WebClient::new(&srv);
        admin.sign_in("boss", PASSWORD);
        admin.get("/admin/users/alice");
        let by_boss = (Some(boss.id), "boss");
        let cases: Vec<(&str, &str, Vec<Want>)> = vec![
            (
                "block alice",
                "/admin/users/alice/block",
                vec![want(
                    "user_blocked",
                    a,
                    by_boss,
                    web_here(json!({"author_email": "boss@example.com"})),
                )],
            ),
            ("block alice again", "/admin/users/alice/block", vec![]),
            (
                "unblock alice",
                "/admin/users/alice/unblock",
                vec![want("user_unblocked", a, by_boss, web_here(json!({})))],
            ),
            (
                "reset tfa's 2FA",
                "/admin/users/tfa/disable_two_factor",
                vec![want("user_two_factor_disabled", t, by_boss, web_here(json!({})))],
            ),
        ];
        for (what, path, wants) in cases {
            let m = mark(&srv);
            let r = admin.post(path, &[]);
            assert_eq!(r.status, 303, "[{}] {what}: {}", srv.backend(), r.text());
            expect_events(&srv, m, what, &wants);
        }

        // Repeated wrong passwords lock the account: its own event.
        srv.setting("max_login_attempts", "2");
        let locky = srv.user("locky", false, Some(PASSWORD));
        let l = ("User", locky.id);
        let m = mark(&srv);
        for _ in 0..2 {
            let r = other.post("/users/sign_in", &[("login", "locky"), ("password", wrong)]);
            assert_eq!(r.status, 422, "[{}] locky's wrong password", srv.backend());
        }
        let failed = || {
            want(
                "login_failed_with_standard_authentication",
                l,
                (None, "locky"),
                web_here(json!({})),
            )
        };
        expect_events(
            &srv,
            m,
            "an account locked",
            &[
                failed(),
                failed(),
                want(
                    "user_access_locked",
                    l,
                    (None, "gitpat"),
                    json!({"failures": 2, "ip_address": null}),
                ),
            ],
        );

        secrets.extend(stored_secrets(&srv));
        assert_no_secret(&srv, &rt, &secrets);
    }
}

/// Makes every insert into `audit_events` fail, as a full disk or a lost
/// connection would at that moment.
fn refuse_audit_inserts(srv: &TestServer) {
    use diesel::connection::SimpleConnection;
    let sql = if srv.backend() == "postgres" {
        "CREATE FUNCTION no_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no audit'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER no_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION no_audit();"
    } else {
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'no audit'); END;"
    };
    srv.conn().batch_execute(sql).expect("the trigger");
}

type Change<'a> = Box<dyn Fn(&mut gitpat::db::DbConn) -> gitpat::error::Result<()> + 'a>;

#[test]
fn a_change_whose_event_cannot_be_written_is_not_made() {
    use gitpat::service::{tokens, two_factor, users};
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        srv.user("blocked", false, None);
        users::set_blocked(&mut srv.conn(), &Actor::cli(), "blocked", true, Utc::now()).unwrap();
        srv.user("tfa", false, None);
        users::enable_two_factor(&mut srv.conn(), &srv.app.key, &Actor::cli(), "tfa", Utc::now()).unwrap();
        let live = srv.token("alice", &["api"], None);
        let live_id = srv.token_row(&live).id;
        let key = srv.app.key.clone();
        // A rotated-away token, whose use revokes its family.
        let rotated = srv.token("alice", &["api"], None);
        let rotated_id = srv.token_row(&rotated).id;
        tokens::rotate(
            &mut srv.conn(),
            &key,
            &gitpat::settings::Settings::default(),
            &Actor::cli(),
            rotated_id,
            None,
            Utc::now(),
        )
        .unwrap();
        refuse_audit_inserts(&srv);
        let before = srv.snapshot();
        let cli = Actor::cli();
        let now = Utc::now();
        let settings = gitpat::settings::Settings::default();
        let scopes = vec!["api".to_string()];
        let new_token = |c: &mut gitpat::db::DbConn, impersonation: bool| {
            let req = tokens::NewTokenRequest {
                user: &alice,
                name: "n",
                description: None,
                scopes: &scopes,
                expires_at: None,
                token: None,
                impersonation,
                actor: &cli,
            };
            tokens::create(c, &key, &settings, &req, now).map(|_| ())
        };
        let changes: Vec<(&str, Change)> = vec![
            ("a token created", Box::new(|c| new_token(c, false))),
            ("an impersonation token created", Box::new(|c| new_token(c, true))),
            (
                "a token revoked",
                Box::new(|c| tokens::revoke(c, &cli, live_id, now).map(|_| ())),
            ),
            (
                "a token family revoked (a rotated-away token used)",
                Box::new(|c| tokens::verify(c, &key, &settings, &rotated, Some("192.0.2.7"), now).map(|_| ())),
            ),
            (
                "a token rotated",
                Box::new(|c| tokens::rotate(c, &key, &settings, &cli, live_id, None, now).map(|_| ())),
            ),
            (
                "a user created",
                Box::new(|c| {
                    let req = users::NewUserRequest {
                        username: "new",
                        email: "new@example.com",
                        name: None,
                        password: None,
                        is_admin: false,
                    };
                    users::create(c, &cli, &req, now).map(|_| ())
                }),
            ),
            (
                "a user made an admin",
                Box::new(|c| {
                    let req = users::UserUpdate {
                        is_admin: Some(true),
                        ..Default::default()
                    };
                    users::update(c, &cli, alice.id, &req, now).map(|_| ())
                }),
            ),
            (
                "a password changed",
                Box::new(|c| {
                    let req = users::UserUpdate {
                        password: Some("a new password, long enough 42"),
                        ..Default::default()
                    };
                    users::update(c, &cli, alice.id, &req, now).map(|_| ())
                }),
            ),
            (
                "a user blocked",
                Box::new(|c| users::set_blocked(c, &cli, "alice", true, now).map(|_| ())),
            ),
            (
                "a user unblocked",
                Box::new(|c| users::set_blocked(c, &cli, "blocked", false, now).map(|_| ())),
            ),
            (
                "2FA on",
                Box::new(|c| users::enable_two_factor(c, &srv.app.key, &cli, "alice", now).map(|_| ())),
            ),
            (
                "2FA off",
                Box::new(|c| {
                    let u = users::get(c, "tfa")?;
                    two_factor::disable(c, &cli, &u, now)
                }),
            ),
            (
                "settings changed",
                Box::new(|c| {
                    gitpat::settings::Settings::store_many(c, &cli, &[("max_login_attempts", "3".into())], now)
                        .map(|_| ())
                }),
            ),
        ];
        for (what, change) in &changes {
            let r = change(&mut srv.conn());
            assert!(r.is_err(), "[{}] {what}: made without its audit event", srv.backend());
            unchanged(&srv, &before, what);
        }
    }
}

#[test]
fn the_cli_records_its_changes_and_lists_them() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        let id: i64 = g
            .ok(&["user", "create", "alice", "--email", "alice@example.com"])
            .trim()
            .parse()
            .unwrap();
        let token = g
            .ok(&["token", "create", "--user", "alice", "--name", "cli", "--scopes", "api"])
            .trim()
            .to_string();
        g.ok(&["token", "revoke", "--token", &token]);
        g.ok(&["user", "block", "alice"]);
        g.ok(&["settings", "set", "audit_events_retention_days", "30"]);
        let out = g.ok(&["audit", "list", "--json"]);
        assert!(
            !out.contains(&token),
            "[{b}] the token is in `audit list --json`: {out}"
        );
        let list: Vec<Value> = serde_json::from_str(&out).expect("JSON");
        let names: Vec<&str> = list.iter().map(|e| e["event_name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "application_setting_updated",
                "user_blocked",
                "personal_access_token_revoked",
                "personal_access_token_created",
                "user_created",
            ],
            "[{b}] newest first: {out}"
        );
        for e in &list {
            assert_eq!(
                (
                    &e["author_id"],
                    &e["details"]["author_name"],
                    &e["details"]["ip_address"],
                    &e["details"]["via"]
                ),
                (&json!(null), &json!("cli"), &json!(null), &json!("cli")),
                "[{b}] {e}"
            );
        }
        assert_eq!(
            (&list[0]["details"]["from"], &list[0]["details"]["to"]),
            (&json!("365"), &json!("30")),
            "[{b}] {}",
            list[0]
        );
        // Filtered, limited, and as a table.
        let alice = g.json(&[
            "audit",
            "list",
            "--json",
            "--entity-type",
            "User",
            "--entity-id",
            &id.to_string(),
            "--limit",
            "2",
        ]);
        let names: Vec<&str> = alice
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["user_blocked", "personal_access_token_revoked"],
            "[{b}] {alice}"
        );
        let table = g.ok(&["audit", "list"]);
        let mut lines = table.lines();
        assert!(
            lines.next().unwrap_or_default().starts_with("ID  CREATED_AT"),
            "[{b}] {table}"
        );
        assert_eq!(lines.count(), 5, "[{b}] {table}");
        assert!(
            table.contains("user_blocked") && table.contains("Blocked user alice"),
            "[{b}] {table}"
        );
        let instance = g.json(&["audit", "list", "--json", "--entity-type", audit::INSTANCE]);
        let names: Vec<&str> = instance
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["application_setting_updated"], "[{b}] {instance}");
        let none = g.json(&["audit", "list", "--json", "--entity-type", "Project"]);
        assert_eq!(none, json!([]), "[{b}] no project events");
        let err = g.fails(&["audit", "list", "--entity-type", "Instance"]);
        assert!(
            err.contains("--entity-type must be one of User, Group, Project, Gitlab::Audit::InstanceScope"),
            "[{b}] {err}"
        );
    }
}

#[test]
fn the_purge_keeps_the_retention_on_every_backend() {
    for db in crate::support::backends() {
        let mut conn = db.conn();
        let now = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        for days in [400, 366, 365, 364, 1] {
            let e = Event::on_instance("test_event", format!("{days} days old"));
            audit::record(&mut conn, &Actor::cli(), e, now - Duration::days(days)).unwrap();
        }
        let mut settings = gitpat::settings::Settings::default();
        assert_eq!(audit::purge(&mut conn, &settings, now).unwrap(), 2, "[{}]", db.backend);
        let left: Vec<Value> = audit::list(&mut conn, &Default::default(), None)
            .unwrap()
            .iter()
            .map(|e| audit::view(e)["details"]["custom_message"].clone())
            .collect();
        assert_eq!(
            left,
            [json!("1 days old"), json!("364 days old"), json!("365 days old")],
            "[{}]",
            db.backend
        );
        settings.audit_events_retention_days = 100;
        assert_eq!(audit::purge(&mut conn, &settings, now).unwrap(), 2, "[{}]", db.backend);
        assert_eq!(audit::purge(&mut conn, &settings, now).unwrap(), 0, "[{}]", db.backend);
    }
}
