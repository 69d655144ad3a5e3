//! A small client for the REST API (`/api/v4`) of a [`TestServer`], on top
//! of the raw HTTP client, and a snapshot of every table so a test can show
//! that a refused request wrote nothing.

use serde_json::{json, Value};

use super::server::{RawResponse, TestServer};

/// One API reply: status, headers, and the body parsed as JSON
/// (`Value::Null` for an empty body).
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub json: Value,
    pub raw: RawResponse,
}

impl ApiReply {
    /// The value of a response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw.header(name)
    }

    /// `json[key]` as a string (panics, showing the reply, if it is not one).
    pub fn str(&self, key: &str) -> &str {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is not a string in {}", self.json))
    }

    /// `json[key]` as an integer.
    pub fn int(&self, key: &str) -> i64 {
        self.json[key]
            .as_i64()
            .unwrap_or_else(|| panic!("{key} is not an integer in {}", self.json))
    }

    /// The reply as a JSON array (panics if it is not one).
    pub fn list(&self) -> &Vec<Value> {
        self.json
            .as_array()
            .unwrap_or_else(|| panic!("not a JSON array: {}", self.json))
    }

    /// The `id`s of a JSON array reply, in order.
    pub fn ids(&self) -> Vec<i64> {
        self.list()
            .iter()
            .map(|v| v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}")))
            .collect()
    }
}

impl TestServer {
    /// `method /api/v4<path>` with `headers` and a raw `body`.
    pub fn api_raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> ApiReply {
        let full = format!("/api/v4{path}");
        let raw = self.raw(method, &full, headers, body);
        let json = if raw.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw.body).unwrap_or_else(|e| {
                panic!(
                    "[{}] {method} {full}: the body is not JSON ({e}): {:?}",
                    self.backend(),
                    raw.text()
                )
            })
        };
        ApiReply {
            status: raw.status,
            json,
            raw,
        }
    }

    /// `method /api/v4<path>` with the token as `PRIVATE-TOKEN` (if any) and
    /// `body` as JSON (if any).
    pub fn api(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> ApiReply {
        let mut headers = Vec::new();
        if let Some(t) = token {
            headers.push(("PRIVATE-TOKEN", t));
        }
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.api_raw(method, path, &headers, text.as_bytes())
    }

    /// `method /api/v4<path>` with a form-encoded body (`a=1&b%5B%5D=2`).
    pub fn api_form(&self, method: &str, path: &str, token: Option<&str>, form: &str) -> ApiReply {
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(t) = token {
            headers.push(("PRIVATE-TOKEN", t));
        }
        self.api_raw(method, path, &headers, form.as_bytes())
    }

    /// Every row of every table (the audit log too), in a stable order, as text: equal
    /// snapshots before and after a request mean it wrote nothing.
    pub fn snapshot(&self) -> Vec<String> {
        use gitpat::db;
        let conn = &mut self.conn();
        let mut out = Vec::new();
        for u in db::user::list(conn).expect("users") {
            out.push(format!(
                "user {} {} {} {} {} {} {} {:?}",
                u.id, u.username, u.email, u.name, u.is_admin, u.state, u.two_factor_enabled, u.password_hash
            ));
        }
        for t in db::token::list(conn, None).expect("tokens") {
            out.push(format!("token {t:?}"));
        }
        for p in db::project::list(conn).expect("projects") {
            for m in db::member::list(conn, p.id).expect("members") {
                out.push(format!("member {m:?}"));
            }
            out.push(format!("project {p:?}"));
        }
        let events = gitpat::service::audit::list(conn, &Default::default(), None).expect("audit events");
        for e in events {
            out.push(format!("audit {e:?}"));
        }
        let mut settings = db::setting::all(conn).expect("settings");
        settings.sort();
        for (k, v) in settings {
            out.push(format!("setting {k}={v}"));
        }
        out
    }
}

// ---------------------------------------------------------------------
// Assertions shared by the API tests; messages name the backend.

/// An ISO 8601 UTC timestamp with milliseconds: `2026-11-22T10:11:12.345Z`.
pub fn is_iso_ms(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Asserts the status and the exact JSON body of a reply.
#[track_caller]
pub fn expect(srv: &TestServer, what: &str, r: &ApiReply, status: u16, body: impl std::borrow::Borrow<Value>) {
    assert_eq!(
        (r.status, &r.json),
        (status, body.borrow()),
        "[{}] {what}: the reply was {} {}",
        srv.backend(),
        r.status,
        r.raw.text()
    );
}

/// Asserts the status of a reply.
#[track_caller]
pub fn status(srv: &TestServer, what: &str, r: &ApiReply, status: u16) {
    assert_eq!(
        r.status,
        status,
        "[{}] {what}: the reply was {} {}",
        srv.backend(),
        r.status,
        r.raw.text()
    );
}

/// Asserts a 400 whose `message` starts with `400 Bad request - ` and
/// gives a reason.
#[track_caller]
pub fn expect_bad_request(srv: &TestServer, what: &str, r: &ApiReply) {
    status(srv, what, r, 400);
    let msg = r.json["message"].as_str().unwrap_or_default();
    let obj_keys: Vec<&String> = r.json.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert!(
        msg.starts_with("400 Bad request - ") && msg.len() > "400 Bad request - ".len() && obj_keys == ["message"],
        "[{}] {what}: expected {{\"message\":\"400 Bad request - <reason>\"}}, got {}",
        srv.backend(),
        r.json
    );
}

/// The `403 Forbidden` reply.
pub fn forbidden() -> Value {
    json!({"message": "403 Forbidden"})
}

/// The `401 Unauthorized` reply.
pub fn unauthorized() -> Value {
    json!({"message": "401 Unauthorized"})
}

/// Asserts the database is as it was.
#[track_caller]
pub fn unchanged(srv: &TestServer, before: &[String], what: &str) {
    let after = srv.snapshot();
    assert_eq!(
        after,
        before,
        "[{}] {what}: a refused request changed the database",
        srv.backend()
    );
}
