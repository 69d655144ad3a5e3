//! Restricted tokens over the REST API, on every backend: made with
//! `repositories[]` and `push_ref_patterns[]` (JSON and form), shown in
//! the token's JSON, kept by rotation, bad patterns refused with nothing
//! written; a token limited to repositories lists only those projects and
//! finds every other one missing.

use serde_json::{json, Value};

use crate::git_restricted::restricted_token;
use crate::support::api::{expect, expect_bad_request, forbidden, status, unchanged};
use crate::support::server::TestServer;

fn not_found() -> Value {
    json!({"message": "404 Project Not Found"})
}

/// The paths of a project list, sorted.
fn paths(v: &Value) -> Vec<String> {
    let mut p: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|p| p["path_with_namespace"].as_str().unwrap_or_default().to_string())
        .collect();
    p.sort();
    p
}

#[test]
fn tokens_are_made_with_restrictions_and_keep_them_when_rotated() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let path = format!("/users/{}/personal_access_tokens", alice.id);
        let r = srv.api(
            "POST",
            &path,
            Some(&admin),
            Some(&json!({
                "name": "ci",
                "scopes": ["api"],
                "repositories": ["alice/tools", "team/*"],
                "push_ref_patterns": ["refs/heads/feature/*", "refs/tags/v*"],
            })),
        );
        status(&srv, "create a restricted token", &r, 201);
        assert_eq!(
            r.json["repositories"],
            json!(["alice/tools", "team/*"]),
            "[{b}] {}",
            r.json
        );
        assert_eq!(
            r.json["push_ref_patterns"],
            json!(["refs/heads/feature/*", "refs/tags/v*"]),
            "[{b}] {}",
            r.json
        );
        let id = r.json["id"].as_i64().expect("an id");
        let secret = r.json["token"].as_str().expect("the token").to_string();
        let shown = srv.api("GET", &format!("/personal_access_tokens/{id}"), Some(&admin), None);
        assert_eq!(
            shown.json["repositories"], r.json["repositories"],
            "[{b}] {}",
            shown.json
        );
        let own = srv.api("GET", "/personal_access_tokens/self", Some(&secret), None);
        assert_eq!(own.json["push_ref_patterns"], r.json["push_ref_patterns"], "[{b}]");

        // A form with `k[]=` arrays, and one comma-separated string.
        let r = srv.api_form(
            "POST",
            &path,
            Some(&admin),
            "name=f&scopes%5B%5D=api&repositories%5B%5D=alice%2Ftools&repositories%5B%5D=team%2F**&push_ref_patterns=refs%2Fheads%2Fa,refs%2Fheads%2Fb",
        );
        status(&srv, "create by form", &r, 201);
        assert_eq!(
            r.json["repositories"],
            json!(["alice/tools", "team/**"]),
            "[{b}] {}",
            r.json
        );
        assert_eq!(
            r.json["push_ref_patterns"],
            json!(["refs/heads/a", "refs/heads/b"]),
            "[{b}]"
        );
        // Impersonation tokens take them too.
        let r = srv.api(
            "POST",
            &format!("/users/{}/impersonation_tokens", alice.id),
            Some(&admin),
            Some(&json!({"name": "imp", "scopes": ["api"], "repositories": ["alice/x"]})),
        );
        status(&srv, "an impersonation token", &r, 201);
        assert_eq!(r.json["repositories"], json!(["alice/x"]), "[{b}]");
        assert_eq!(r.json["push_ref_patterns"], Value::Null, "[{b}]");
        // Unrestricted: both null.
        let r = srv.api("GET", "/personal_access_tokens/self", Some(&admin), None);
        assert_eq!(
            (&r.json["repositories"], &r.json["push_ref_patterns"]),
            (&Value::Null, &Value::Null),
            "[{b}]"
        );

        // Rotation keeps the restriction, by id and as self.
        let r = srv.api(
            "POST",
            &format!("/personal_access_tokens/{id}/rotate"),
            Some(&admin),
            None,
        );
        status(&srv, "rotate", &r, 200);
        assert_eq!(
            r.json["repositories"],
            json!(["alice/tools", "team/*"]),
            "[{b}] {}",
            r.json
        );
        assert_eq!(
            r.json["push_ref_patterns"],
            json!(["refs/heads/feature/*", "refs/tags/v*"]),
            "[{b}]"
        );
        let rotated = r.json["token"].as_str().expect("the new token").to_string();
        let r = srv.api("POST", "/personal_access_tokens/self/rotate", Some(&rotated), None);
        status(&srv, "rotate self", &r, 200);
        assert_eq!(r.json["repositories"], json!(["alice/tools", "team/*"]), "[{b}]");
        let newest = r.json["token"].as_str().expect("the new token").to_string();
        srv.repo("alice/other", "alice", "private");
        let r = srv.api("GET", "/projects/alice%2Fother", Some(&newest), None);
        expect(&srv, "the rotated token, outside its patterns", &r, 404, not_found());

        // The audit log's created and rotated events name the restriction.
        let events = srv.api("GET", "/audit_events?per_page=100", Some(&admin), None);
        let list = events.json.as_array().expect("events").clone();
        for name in ["personal_access_token_created", "personal_access_token_rotated"] {
            let e = list
                .iter()
                .find(|e| e["event_name"] == name && e["details"]["token_id"] == id)
                .unwrap_or_else(|| panic!("[{b}] no {name} event of token {id}: {list:?}"));
            assert_eq!(
                e["details"]["repositories"],
                json!(["alice/tools", "team/*"]),
                "[{b}] {e}"
            );
            assert_eq!(
                e["details"]["push_ref_patterns"],
                json!(["refs/heads/feature/*", "refs/tags/v*"]),
                "[{b}] {e}"
            );
        }
    }
}

#[test]
fn bad_patterns_are_refused_and_write_nothing() {
    for srv in TestServer::each() {
        srv.user("root", true, None);
        let alice = srv.user("alice", false, None);
        let admin = srv.token("root", &["api"], None);
        let r = srv.api("GET", "/personal_access_tokens/self", Some(&admin), None);
        status(&srv, "warm the token up", &r, 200);
        let many: Vec<String> = (0..101).map(|i| format!("alice/r{i}")).collect();
        let cases: Vec<(&str, Value)> = vec![
            ("* inside a repository pattern", json!({"repositories": ["team/*/x"]})),
            ("** inside", json!({"repositories": ["team/**/x"]})),
            ("a partial star", json!({"repositories": ["team/a*"]})),
            ("no namespace", json!({"repositories": ["tools"]})),
            ("a bad segment", json!({"repositories": ["alice/.hidden"]})),
            ("an empty entry", json!({"repositories": ["alice/tools", ""]})),
            ("an empty list", json!({"repositories": []})),
            ("101 patterns", json!({"repositories": many})),
            ("a ref outside refs/", json!({"push_ref_patterns": ["heads/main"]})),
            ("two stars", json!({"push_ref_patterns": ["refs/heads/*/*"]})),
            ("an invalid ref name", json!({"push_ref_patterns": ["refs/heads/a..b"]})),
            ("an empty ref list", json!({"push_ref_patterns": []})),
        ];
        for endpoint in ["personal_access_tokens", "impersonation_tokens"] {
            for (what, extra) in &cases {
                let mut body = json!({"name": "x", "scopes": ["api"]});
                for (k, v) in extra.as_object().unwrap() {
                    body[k] = v.clone();
                }
                let before = srv.snapshot();
                let r = srv.api(
                    "POST",
                    &format!("/users/{}/{endpoint}", alice.id),
                    Some(&admin),
                    Some(&body),
                );
                let what = format!("{endpoint}: {what}");
                expect_bad_request(&srv, &what, &r);
                unchanged(&srv, &before, &what);
            }
        }
    }
}

#[test]
fn a_token_limited_to_repositories_sees_only_those_projects() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, None);
        srv.user("bob", false, None);
        for path in [
            "alice/tools",
            "alice/other",
            "team/app",
            "team/a_b",
            "team/sub/deep",
            "teamx/app",
        ] {
            srv.repo(path, "alice", "private");
        }
        srv.repo("bob/public", "bob", "public");
        // `_` in a pattern is no LIKE wildcard.
        srv.repo("team/aXb", "alice", "private");
        srv.repo("te_m/app", "alice", "private");
        let plain = srv.token("alice", &["api"], None);
        let all = srv.api("GET", "/projects?per_page=100", Some(&plain), None);
        assert_eq!(paths(&all.json).len(), 9, "[{b}] {}", all.json);
        let cases: [(&[&str], &[&str]); 7] = [
            (&["alice/tools"], &["alice/tools"]),
            (
                &["ALICE/Tools", "team/*"],
                &["alice/tools", "team/a_b", "team/aXb", "team/app"],
            ),
            (&["team/**"], &["team/a_b", "team/aXb", "team/app", "team/sub/deep"]),
            (&["team/sub/*", "bob/public"], &["bob/public", "team/sub/deep"]),
            (&["team/a_b"], &["team/a_b"]),
            (&["te_m/*"], &["te_m/app"]),
            (&["TE_M/**", "nobody/*"], &["te_m/app"]),
        ];
        for (patterns, listed) in cases {
            let t = restricted_token(&srv, "alice", &["api"], Some(patterns), None);
            let what = format!("[{b}] {patterns:?}");
            let mut listed: Vec<&str> = listed.to_vec();
            listed.sort_unstable();
            let r = srv.api("GET", "/projects?per_page=100&order_by=path&sort=asc", Some(&t), None);
            status(&srv, &what, &r, 200);
            assert_eq!(paths(&r.json), listed, "{what}");
            assert_eq!(r.header("x-total"), Some(listed.len().to_string().as_str()), "{what}");
            // Keyset pages are filtered alike.
            let r = srv.api(
                "GET",
                "/projects?pagination=keyset&order_by=id&per_page=100",
                Some(&t),
                None,
            );
            assert_eq!(paths(&r.json), listed, "{what} keyset");
            // Each project outside: 404, by id and by path, and its members.
            for p in paths(&all.json) {
                let id = srv.project(&p).expect("the project").id;
                let inside = listed.contains(&p.as_str());
                for url in [
                    format!("/projects/{id}"),
                    format!("/projects/{}", p.replace('/', "%2F")),
                ] {
                    let r = srv.api("GET", &url, Some(&t), None);
                    if inside {
                        status(&srv, &format!("{what} {url}"), &r, 200);
                    } else {
                        expect(&srv, &format!("{what} {url}"), &r, 404, not_found());
                    }
                }
                if !inside {
                    let r = srv.api("GET", &format!("/projects/{id}/members"), Some(&t), None);
                    expect(&srv, &format!("{what} members of {p}"), &r, 404, not_found());
                    let before = srv.snapshot();
                    let r = srv.api(
                        "PUT",
                        &format!("/projects/{id}"),
                        Some(&t),
                        Some(&json!({"description": "x"})),
                    );
                    expect(&srv, &format!("{what} update {p}"), &r, 404, not_found());
                    unchanged(&srv, &before, &format!("{what} update {p}"));
                }
            }
        }
        // Creating a project: only where the patterns reach.
        let t = restricted_token(&srv, "alice", &["api"], Some(&["alice/made"]), None);
        let r = srv.api("GET", "/personal_access_tokens/self", Some(&t), None);
        status(&srv, "warm the token up", &r, 200);
        let before = srv.snapshot();
        let r = srv.api("POST", "/projects", Some(&t), Some(&json!({"path": "elsewhere"})));
        expect(&srv, "create outside the patterns", &r, 403, forbidden());
        unchanged(&srv, &before, "create outside the patterns");
        let r = srv.api("POST", "/projects", Some(&t), Some(&json!({"path": "made"})));
        status(&srv, "create inside the patterns", &r, 201);
    }
}
