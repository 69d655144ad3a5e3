//! A browser-like client of the web pages over the raw HTTP client: it
//! keeps cookies, sends `Origin` on POSTs as a browser does, and reads the
//! CSRF token of the page it last loaded.

use std::collections::BTreeMap;

use super::server::{RawResponse, TestServer};

pub struct WebClient<'a> {
    pub srv: &'a TestServer,
    pub cookies: BTreeMap<String, String>,
    /// The `authenticity_token` of the last page loaded.
    pub csrf: String,
}

/// `application/x-www-form-urlencoded` of `fields`.
pub fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// The value of the first `name="authenticity_token"` field of a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"authenticity_token\" value=\"")?;
    let rest = &html[at + "name=\"authenticity_token\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

impl<'a> WebClient<'a> {
    pub fn new(srv: &'a TestServer) -> WebClient<'a> {
        WebClient {
            srv,
            cookies: BTreeMap::new(),
            csrf: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &RawResponse) {
        for (k, v) in &r.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let first = v.split(';').next().unwrap_or_default();
            if let Some((name, value)) = first.split_once('=') {
                let removal = v.to_ascii_lowercase().contains("max-age=0");
                if removal || value.is_empty() {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies.insert(name.trim().to_string(), value.trim().to_string());
                }
            }
        }
    }

    pub fn get(&mut self, path: &str) -> RawResponse {
        let cookie = self.cookie_header();
        let r = self.srv.raw("GET", path, &[("Cookie", &cookie)], b"");
        self.keep_cookies(&r);
        if let Some(t) = csrf_of(&r.text()) {
            self.csrf = t;
        }
        r
    }

    /// POSTs `fields` with the page's CSRF token added, from this origin.
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> RawResponse {
        let mut all: Vec<(&str, &str)> = vec![("authenticity_token", &self.csrf)];
        all.extend_from_slice(fields);
        let body = form(&all);
        let origin = format!("http://{}", self.srv.addr);
        self.post_raw(path, &body, &[("Origin", &origin)])
    }

    /// POSTs `body` as a form with `headers` and the cookies, nothing else.
    pub fn post_raw(&mut self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> RawResponse {
        let cookie = self.cookie_header();
        let mut h: Vec<(&str, &str)> = vec![
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        h.extend_from_slice(headers);
        let r = self.srv.raw("POST", path, &h, body);
        self.keep_cookies(&r);
        if let Some(t) = csrf_of(&r.text()) {
            self.csrf = t;
        }
        r
    }

    /// Signs in with a password (no second factor): panics otherwise.
    pub fn sign_in(&mut self, login: &str, password: &str) {
        self.get("/users/sign_in");
        let r = self.post("/users/sign_in", &[("login", login), ("password", password)]);
        assert_eq!(r.status, 303, "sign in as {login}: {}", r.text());
        assert_eq!(r.header("location"), Some("/-/user_settings/personal_access_tokens"));
        self.get("/-/user_settings/personal_access_tokens");
    }
}
