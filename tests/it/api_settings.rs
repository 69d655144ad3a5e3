//! The REST API (`/api/v4`): `GET` and `PUT /application/settings`, against
//! the contract (`api-contract.md`): every key with its JSON type, admins
//! only, JSON and form bodies, clearing the lifetime, all-or-nothing
//! validation, unknown keys ignored, and the effect of the maximum token
//! lifetime on a token created through the API.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::api_users::{root, someone};
use crate::support::api::{expect, expect_bad_request, forbidden, status, unauthorized, unchanged};
use crate::support::server::TestServer;

/// The settings of a new instance, as the API shows them.
fn defaults() -> Value {
    json!({
        "max_personal_access_token_lifetime": null,
        "enforce_personal_access_token_expiration": true,
        "password_authentication_enabled_for_git": true,
        "personal_access_token_prefix": "glpat-",
        "personal_access_token_last_used_throttle_minutes": 10,
        "git_auth_ban_enabled": true,
        "git_auth_ban_max_failures": 10,
        "git_auth_ban_window_seconds": 60,
        "git_auth_ban_duration_seconds": 3600,
        "git_auth_ban_allowlist": [],
        "receive_max_input_size": 2147483648u64,
        "maintenance_pack_limit": 16,
        "push_deadline_seconds": 21600,
        "push_min_bytes_per_second": 1024,
        "max_concurrent_pushes": 64,
        "max_concurrent_pushes_per_user": 16,
        "max_login_attempts": 10,
        "failed_login_attempts_unlock_period_in_minutes": 10,
        "trusted_proxies": [],
        "session_expire_delay": 10080,
        "token_expiry_notifications_enabled": true,
        "token_expiry_notify_days": [60, 30, 7],
        "secret_push_protection_enabled": true,
        "revoke_leaked_tokens": false,
        "audit_events_retention_days": 365,
    })
}

/// The settings as the library reads them from the database.
fn stored(srv: &TestServer) -> gitpat::settings::Settings {
    gitpat::settings::Settings::load(&mut srv.conn()).expect("load the settings")
}

/// A 400 that is either `{"error":"<key> is invalid"}` or
/// `{"message":"400 Bad request - <reason>"}`.
#[track_caller]
fn expect_invalid_bool(srv: &TestServer, what: &str, r: &crate::support::api::ApiReply, key: &str) {
    if r.json.get("error").is_some() {
        expect(srv, what, r, 400, json!({ "error": format!("{key} is invalid") }));
    } else {
        expect_bad_request(srv, what, r);
    }
}

#[test]
fn settings_get_returns_every_key_with_its_json_type() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let r = srv.api("GET", "/application/settings", Some(&rt), None);
        expect(&srv, "GET /application/settings", &r, 200, defaults());
        // Values stored otherwise show with the same types.
        srv.setting("max_personal_access_token_lifetime", "30");
        srv.setting("git_auth_ban_allowlist", "127.0.0.1,::1");
        srv.setting("enforce_personal_access_token_expiration", "false");
        let mut want = defaults();
        want["max_personal_access_token_lifetime"] = json!(30);
        want["git_auth_ban_allowlist"] = json!(["127.0.0.1", "::1"]);
        want["enforce_personal_access_token_expiration"] = json!(false);
        let r = srv.api("GET", "/application/settings", Some(&rt), None);
        expect(&srv, "GET /application/settings after changes", &r, 200, want);
        // A read_api token may read them.
        let ro = srv.token("root", &["read_api"], None);
        let r = srv.api("GET", "/application/settings", Some(&ro), None);
        status(&srv, "GET /application/settings with read_api", &r, 200);
    }
}

#[test]
fn settings_are_for_admins_only() {
    for srv in TestServer::each() {
        root(&srv);
        let (_, at) = someone(&srv, "alice");
        let before = srv.snapshot();
        let r = srv.api("GET", "/application/settings", Some(&at), None);
        expect(&srv, "GET settings as a non-admin", &r, 403, forbidden());
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&at),
            Some(&json!({"git_auth_ban_enabled": false})),
        );
        expect(&srv, "PUT settings as a non-admin", &r, 403, forbidden());
        let r = srv.api("GET", "/application/settings", None, None);
        expect(&srv, "anonymous GET settings", &r, 401, unauthorized());
        let r = srv.api(
            "PUT",
            "/application/settings",
            None,
            Some(&json!({"git_auth_ban_enabled": false})),
        );
        expect(&srv, "anonymous PUT settings", &r, 401, unauthorized());
        unchanged(&srv, &before, "PUT settings by a non-admin");
        assert!(stored(&srv).git_auth_ban_enabled, "[{}]", srv.backend());
    }
}

#[test]
fn settings_put_json_stores_and_returns_every_key() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let body = json!({
            "max_personal_access_token_lifetime": 30,
            "enforce_personal_access_token_expiration": false,
            "password_authentication_enabled_for_git": false,
            "personal_access_token_prefix": "gp-",
            "personal_access_token_last_used_throttle_minutes": 0,
            "git_auth_ban_enabled": false,
            "git_auth_ban_max_failures": 5,
            "git_auth_ban_window_seconds": 120,
            "git_auth_ban_duration_seconds": 600,
            "git_auth_ban_allowlist": ["10.0.0.1", "::1"],
            "receive_max_input_size": 104857600,
            "maintenance_pack_limit": 8,
            "push_deadline_seconds": 3600,
            "push_min_bytes_per_second": 0,
            "max_concurrent_pushes": 10,
            "max_concurrent_pushes_per_user": 2,
            "max_login_attempts": 5,
            "failed_login_attempts_unlock_period_in_minutes": 30,
            "trusted_proxies": ["10.0.0.0/8", "::1/128"],
            "session_expire_delay": 60,
            "token_expiry_notifications_enabled": false,
            "token_expiry_notify_days": [30, 14, 1],
            "secret_push_protection_enabled": false,
            "revoke_leaked_tokens": true,
            "audit_events_retention_days": 90,
        });
        let r = srv.api("PUT", "/application/settings", Some(&rt), Some(&body));
        expect(&srv, "PUT every key", &r, 200, body.clone());
        let g = srv.api("GET", "/application/settings", Some(&rt), None);
        expect(&srv, "GET after PUT", &g, 200, body);
        let s = stored(&srv);
        assert_eq!(
            (
                s.max_personal_access_token_lifetime,
                s.personal_access_token_prefix.as_str(),
                s.git_auth_ban_allowlist.len(),
                s.receive_max_input_size
            ),
            (Some(30), "gp-", 2, 100 << 20),
            "[{}] stored",
            srv.backend()
        );
        // A partial PUT leaves the other keys alone.
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&rt),
            Some(&json!({"git_auth_ban_max_failures": 6})),
        );
        status(&srv, "a partial PUT", &r, 200);
        assert_eq!(
            (
                &r.json["git_auth_ban_max_failures"],
                &r.json["personal_access_token_prefix"]
            ),
            (&json!(6), &json!("gp-")),
            "[{}] {}",
            srv.backend(),
            r.json
        );
    }
}

#[test]
fn settings_put_form_stores_and_returns() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let r = srv.api_form(
            "PUT",
            "/application/settings",
            Some(&rt),
            "max_personal_access_token_lifetime=45&git_auth_ban_enabled=false&personal_access_token_prefix=abc_&git_auth_ban_window_seconds=30&git_auth_ban_allowlist%5B%5D=192.168.1.1&git_auth_ban_allowlist%5B%5D=10.1.2.3",
        );
        let mut want = defaults();
        want["max_personal_access_token_lifetime"] = json!(45);
        want["git_auth_ban_enabled"] = json!(false);
        want["personal_access_token_prefix"] = json!("abc_");
        want["git_auth_ban_window_seconds"] = json!(30);
        want["git_auth_ban_allowlist"] = json!(["192.168.1.1", "10.1.2.3"]);
        expect(&srv, "PUT settings (form)", &r, 200, want.clone());
        let g = srv.api("GET", "/application/settings", Some(&rt), None);
        expect(&srv, "GET after the form PUT", &g, 200, want);
        // A comma-separated string works for the array too.
        let r = srv.api_form(
            "PUT",
            "/application/settings",
            Some(&rt),
            "git_auth_ban_allowlist=127.0.0.1,::1",
        );
        status(&srv, "PUT the allowlist comma-separated", &r, 200);
        assert_eq!(
            r.json["git_auth_ban_allowlist"],
            json!(["127.0.0.1", "::1"]),
            "[{}]",
            srv.backend()
        );
    }
}

#[test]
fn settings_null_or_empty_clears_the_lifetime() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        srv.setting("max_personal_access_token_lifetime", "30");
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&rt),
            Some(&json!({"max_personal_access_token_lifetime": null})),
        );
        expect(&srv, "PUT lifetime null", &r, 200, defaults());
        assert_eq!(
            stored(&srv).max_personal_access_token_lifetime,
            None,
            "[{}]",
            srv.backend()
        );
        srv.setting("max_personal_access_token_lifetime", "30");
        let r = srv.api_form(
            "PUT",
            "/application/settings",
            Some(&rt),
            "max_personal_access_token_lifetime=",
        );
        expect(&srv, "PUT lifetime empty (form)", &r, 200, defaults());
        assert_eq!(
            stored(&srv).max_personal_access_token_lifetime,
            None,
            "[{}]",
            srv.backend()
        );
        srv.setting("max_personal_access_token_lifetime", "30");
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&rt),
            Some(&json!({"max_personal_access_token_lifetime": ""})),
        );
        expect(&srv, "PUT lifetime \"\" (JSON)", &r, 200, defaults());
        assert_eq!(
            stored(&srv).max_personal_access_token_lifetime,
            None,
            "[{}]",
            srv.backend()
        );
    }
}

#[test]
fn settings_an_invalid_value_stores_nothing() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let before = srv.snapshot();
        // Each time a valid key comes along with the invalid one: neither
        // is stored.
        for bad in [
            json!({"git_auth_ban_max_failures": 3, "max_personal_access_token_lifetime": 0}),
            json!({"git_auth_ban_max_failures": 3, "max_personal_access_token_lifetime": 401}),
            json!({"git_auth_ban_max_failures": 3, "personal_access_token_prefix": "has space"}),
            json!({"git_auth_ban_max_failures": 3, "personal_access_token_last_used_throttle_minutes": 1441}),
            json!({"git_auth_ban_max_failures": 0}),
            json!({"git_auth_ban_max_failures": 3, "receive_max_input_size": 1024}),
            json!({"git_auth_ban_max_failures": 3, "git_auth_ban_allowlist": ["127.0.0.1", "not-an-ip"]}),
            json!({"personal_access_token_prefix": "ok-", "git_auth_ban_window_seconds": -5}),
        ] {
            let r = srv.api("PUT", "/application/settings", Some(&rt), Some(&bad));
            expect_bad_request(&srv, &format!("PUT {bad}"), &r);
        }
        // A boolean that is not one is both a wrong type (generic rule:
        // `{"error":"<key> is invalid"}`) and an invalid setting (settings
        // rule: `400 Bad request - <reason>`); the contract does not say
        // which wins, so either, but a 400 that stores nothing.
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&rt),
            Some(&json!({"git_auth_ban_max_failures": 3, "enforce_personal_access_token_expiration": "maybe"})),
        );
        expect_invalid_bool(
            &srv,
            "PUT enforce...=maybe",
            &r,
            "enforce_personal_access_token_expiration",
        );
        let r = srv.api_form(
            "PUT",
            "/application/settings",
            Some(&rt),
            "git_auth_ban_max_failures=3&git_auth_ban_enabled=perhaps",
        );
        expect_invalid_bool(
            &srv,
            "PUT form git_auth_ban_enabled=perhaps",
            &r,
            "git_auth_ban_enabled",
        );
        unchanged(&srv, &before, "invalid settings");
        let g = srv.api("GET", "/application/settings", Some(&rt), None);
        expect(&srv, "GET after the refusals", &g, 200, defaults());
    }
}

#[test]
fn settings_unknown_keys_are_ignored() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&rt),
            Some(&json!({"no_such_setting": 1, "signup_enabled": true, "git_auth_ban_enabled": false})),
        );
        let mut want = defaults();
        want["git_auth_ban_enabled"] = json!(false);
        expect(&srv, "PUT with unknown keys", &r, 200, want);
        let settings_rows: Vec<String> = srv
            .snapshot()
            .into_iter()
            .filter(|l| l.starts_with("setting "))
            .collect();
        assert!(
            settings_rows
                .iter()
                .all(|l| !l.contains("no_such_setting") && !l.contains("signup_enabled")),
            "[{}] an unknown key was stored: {settings_rows:?}",
            srv.backend()
        );
        // Only unknown keys: nothing changes, 200.
        let before = srv.snapshot();
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&rt),
            Some(&json!({"no_such_setting": 1})),
        );
        status(&srv, "PUT only unknown keys", &r, 200);
        unchanged(&srv, &before, "PUT only unknown keys");
    }
}

#[test]
fn settings_max_lifetime_sets_the_expiry_of_a_token_created_without_one() {
    for srv in TestServer::each() {
        let (_, rt) = root(&srv);
        let alice = srv.user("alice", false, None);
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&rt),
            Some(&json!({"max_personal_access_token_lifetime": 30})),
        );
        status(&srv, "PUT lifetime 30", &r, 200);
        let today = Utc::now().date_naive();
        let t = srv.api(
            "POST",
            &format!("/users/{}/personal_access_tokens", alice.id),
            Some(&rt),
            Some(&json!({"name": "no expiry given", "scopes": ["read_api"]})),
        );
        status(&srv, "POST a token without expiry", &t, 201);
        let want = (today + Duration::days(30)).format("%Y-%m-%d").to_string();
        assert_eq!(t.str("expires_at"), want, "[{}] {}", srv.backend(), t.json);
        // Within the lifetime: as given; beyond: 400, nothing stored.
        let ok = (today + Duration::days(10)).format("%Y-%m-%d").to_string();
        let t = srv.api(
            "POST",
            &format!("/users/{}/personal_access_tokens", alice.id),
            Some(&rt),
            Some(&json!({"name": "ten days", "scopes": ["read_api"], "expires_at": ok})),
        );
        status(&srv, "POST a token within the lifetime", &t, 201);
        assert_eq!(t.str("expires_at"), ok, "[{}]", srv.backend());
        let before = srv.snapshot();
        let far = (today + Duration::days(31)).format("%Y-%m-%d").to_string();
        let t = srv.api(
            "POST",
            &format!("/users/{}/personal_access_tokens", alice.id),
            Some(&rt),
            Some(&json!({"name": "too long", "scopes": ["read_api"], "expires_at": far})),
        );
        expect_bad_request(&srv, "POST a token beyond the lifetime", &t);
        unchanged(&srv, &before, "a token beyond the lifetime");
        // Cleared: a token without expiry has none.
        let r = srv.api(
            "PUT",
            "/application/settings",
            Some(&rt),
            Some(&json!({"max_personal_access_token_lifetime": null})),
        );
        status(&srv, "PUT lifetime null", &r, 200);
        let t = srv.api(
            "POST",
            &format!("/users/{}/personal_access_tokens", alice.id),
            Some(&rt),
            Some(&json!({"name": "forever", "scopes": ["read_api"]})),
        );
        status(&srv, "POST a token without expiry, no lifetime", &t, 201);
        assert_eq!(t.json["expires_at"], Value::Null, "[{}] {}", srv.backend(), t.json);
    }
}
