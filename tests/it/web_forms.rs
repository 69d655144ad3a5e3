//! The web pages over plain HTTP, on every backend: each form's bad input
//! gets a sentence next to its field and writes nothing; forged POSTs are
//! refused; sign-in answers the same for unknown users and wrong
//! passwords and is throttled; sessions end when they should; a session
//! cookie never authenticates Git or the API; every page carries its
//! security headers.

use chrono::{Duration, Utc};

use crate::support::repo::assert_contains;
use crate::support::server::TestServer;
use crate::support::web::{form, WebClient};
use gitpat::service::sessions;

const PASSWORD: &str = "a long enough password";
const TOKENS: &str = "/-/user_settings/personal_access_tokens";

/// A field list of a form.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// One bad input of a form: what it is, what is sent, where the error
/// shows and what it says.
struct Bad<'a> {
    what: &'a str,
    fields: Fields<'a>,
    id: &'a str,
    message: &'a str,
}

fn bad<'a>(what: &'a str, fields: Fields<'a>, id: &'a str, message: &'a str) -> Bad<'a> {
    Bad {
        what,
        fields,
        id,
        message,
    }
}

fn token_count(srv: &TestServer) -> usize {
    gitpat::db::token::list(&mut srv.conn(), None).expect("tokens").len()
}

fn session_count(srv: &TestServer, user: &str) -> usize {
    let u = gitpat::service::users::get(&mut srv.conn(), user).expect("the user");
    sessions::list(&mut srv.conn(), u.id, Utc::now())
        .expect("sessions")
        .len()
}

/// The sentence of the alert or field error `id` on a page.
fn error_text(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(rest[start..start + end].to_string())
}

#[test]
fn the_token_form_refuses_bad_input_next_to_the_field_and_writes_nothing() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, Some(PASSWORD));
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        let today = Utc::now().date_naive();
        let day = |n: i64| (today + Duration::days(n)).format("%Y-%m-%d").to_string();
        let (soon, past, far) = (day(10), day(-1), day(400));
        let long = "n".repeat(256);
        let cases: Vec<Bad> = vec![
            bad(
                "no name",
                vec![("name", " "), ("scopes", "api")],
                "field-name-error",
                "Token name is required.",
            ),
            bad(
                "an overlong name",
                vec![("name", &long), ("scopes", "api")],
                "field-name-error",
                "too long",
            ),
            bad(
                "an overlong description",
                vec![("name", "x"), ("description", &long), ("scopes", "api")],
                "field-description-error",
                "too long",
            ),
            bad(
                "a date that is no date",
                vec![("name", "x"), ("expires_at", "2026-13-01"), ("scopes", "api")],
                "field-expires_at-error",
                "must be a date as YYYY-MM-DD",
            ),
            bad(
                "a date in the past",
                vec![("name", "x"), ("expires_at", &past), ("scopes", "api")],
                "field-expires_at-error",
                "in the past",
            ),
            bad(
                "no scope",
                vec![("name", "x"), ("expires_at", &soon)],
                "field-scopes-error",
                "Select at least one scope.",
            ),
            bad(
                "an unknown scope",
                vec![("name", "x"), ("scopes", "write_everything")],
                "field-scopes-error",
                "unknown scope write_everything",
            ),
            bad(
                "sudo for a user who is no administrator",
                vec![("name", "x"), ("scopes", "sudo")],
                "field-scopes-error",
                "only for tokens of administrators",
            ),
            bad(
                "a repository pattern with * inside",
                vec![
                    ("name", "x"),
                    ("scopes", "api"),
                    ("repositories", "alice/tools, team/*/x"),
                ],
                "field-repositories-error",
                "may only be the whole last segment",
            ),
            bad(
                "an empty repository pattern",
                vec![
                    ("name", "x"),
                    ("scopes", "api"),
                    ("repositories", "alice/tools,,team/*"),
                ],
                "field-repositories-error",
                "an entry is empty",
            ),
            bad(
                "a push ref pattern outside refs/",
                vec![("name", "x"), ("scopes", "api"), ("push_ref_patterns", "main")],
                "field-push_ref_patterns-error",
                "does not start with refs/",
            ),
            bad(
                "a push ref pattern with two stars",
                vec![
                    ("name", "x"),
                    ("scopes", "api"),
                    ("push_ref_patterns", "refs/heads/*/*"),
                ],
                "field-push_ref_patterns-error",
                "more than one",
            ),
        ];
        srv.setting("max_personal_access_token_lifetime", "365");
        let mut all = cases;
        all.push(bad(
            "a date past the maximum lifetime",
            vec![("name", "x"), ("expires_at", &far), ("scopes", "api")],
            "field-expires_at-error",
            "at most 365 days",
        ));
        for Bad {
            what,
            fields,
            id,
            message,
        } in &all
        {
            let before = token_count(&srv);
            let r = web.post(TOKENS, fields);
            assert_eq!(r.status, 422, "[{b}] {what}: {}", r.text());
            let html = r.text();
            let text = error_text(&html, id).unwrap_or_else(|| panic!("[{b}] {what}: no #{id} in {html}"));
            assert_contains(&text, message, &format!("[{b}] {what}"));
            assert!(
                html.contains(&format!("aria-describedby=\"{id}\"")) || html.contains(&format!("{id}\"")),
                "[{b}] {what}: the error is not tied to its field"
            );
            assert_eq!(token_count(&srv), before, "[{b}] {what} wrote a token");
            assert!(!html.contains("glpat-"), "[{b}] {what}: a token on the page");
        }
        // And right input makes one, shown on the next page only.
        let r = web.post(
            TOKENS,
            &[("name", "good"), ("expires_at", &soon), ("scopes", "read_api")],
        );
        assert_eq!((r.status, r.header("location")), (303, Some(TOKENS)), "[{b}]");
        assert!(!r.text().contains("glpat-") && !r.header("location").unwrap_or("").contains("glpat-"));
        assert_contains(&web.get(TOKENS).text(), "glpat-", &format!("[{b}] the new token, once"));
        assert!(
            !web.get(TOKENS).text().contains("glpat-"),
            "[{b}] the token shown twice"
        );
    }
}

#[test]
fn the_token_form_makes_a_restricted_token_and_lists_its_patterns() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, Some(PASSWORD));
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        let r = web.post(
            TOKENS,
            &[
                ("name", "limited"),
                ("scopes", "write_repository"),
                ("repositories", " alice/tools , team/** "),
                ("push_ref_patterns", "refs/heads/feature/*,refs/tags/v*"),
            ],
        );
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some(TOKENS)),
            "[{b}] {}",
            r.text()
        );
        // An empty field is no restriction.
        let r = web.post(
            TOKENS,
            &[
                ("name", "plain"),
                ("scopes", "api"),
                ("repositories", " "),
                ("push_ref_patterns", ""),
            ],
        );
        assert_eq!(r.status, 303, "[{b}] {}", r.text());
        let rows = gitpat::db::token::list(&mut srv.conn(), None).expect("tokens");
        let limited = rows.iter().find(|t| t.name == "limited").expect("the limited token");
        assert_eq!(limited.repositories.as_deref(), Some("alice/tools\nteam/**"), "[{b}]");
        assert_eq!(
            limited.push_ref_patterns.as_deref(),
            Some("refs/heads/feature/*\nrefs/tags/v*"),
            "[{b}]"
        );
        let plain = rows.iter().find(|t| t.name == "plain").expect("the plain token");
        assert_eq!(
            (plain.repositories.as_deref(), plain.push_ref_patterns.as_deref()),
            (None, None),
            "[{b}]"
        );
        let page = web.get(TOKENS).text();
        assert_contains(&page, "Repositories: alice/tools, team/**", &format!("[{b}] the page"));
        assert_contains(
            &page,
            "Push refs: refs/heads/feature/*, refs/tags/v*",
            &format!("[{b}] the page"),
        );
    }
}

#[test]
fn forged_posts_are_refused_and_change_nothing() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, Some(PASSWORD));
        srv.user("mallory", false, Some(PASSWORD));
        let victim_token = srv.token("alice", &["api"], None);
        let victim_id = srv.token_row(&victim_token).id;
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        let origin = format!("http://{}", srv.addr);
        let good_csrf = web.csrf.clone();
        let mut mallory = WebClient::new(&srv);
        mallory.sign_in("mallory", PASSWORD);
        let fields = |csrf: &str| form(&[("authenticity_token", csrf), ("name", "x"), ("scopes", "api")]);
        let cases: Vec<(&str, Vec<u8>, Fields)> = vec![
            (
                "no CSRF token",
                form(&[("name", "x"), ("scopes", "api")]),
                vec![("Origin", &origin)],
            ),
            ("a wrong CSRF token", fields(&"0".repeat(64)), vec![("Origin", &origin)]),
            (
                "another session's CSRF token",
                fields(&mallory.csrf),
                vec![("Origin", &origin)],
            ),
            (
                "another origin",
                fields(&good_csrf),
                vec![("Origin", "http://evil.example")],
            ),
            (
                "another site's referer",
                fields(&good_csrf),
                vec![("Referer", "http://evil.example/x")],
            ),
            ("no Origin and no Referer", fields(&good_csrf), vec![]),
        ];
        for (what, body, headers) in cases {
            let before = token_count(&srv);
            let r = web.post_raw(TOKENS, &body, &headers);
            assert_eq!(r.status, 403, "[{b}] {what}: {}", r.text());
            assert_contains(
                &r.text(),
                "was not sent from this site's own page",
                &format!("[{b}] {what}"),
            );
            assert_eq!(token_count(&srv), before, "[{b}] {what} wrote a token");
        }
        // The same page with its own token and origin works.
        let r = web.post_raw(
            TOKENS,
            &fields(&good_csrf),
            &[("Referer", &format!("{origin}{TOKENS}"))],
        );
        assert_eq!(r.status, 303, "[{b}] a right POST with a Referer: {}", r.text());
        // Another user's token can neither be revoked nor rotated.
        for action in ["revoke", "rotate"] {
            let r = mallory.post(&format!("{TOKENS}/{victim_id}/{action}"), &[]);
            assert_eq!(r.status, 404, "[{b}] mallory {action}s alice's token: {}", r.text());
            let r = mallory.post(&format!("{TOKENS}/not-a-number/{action}"), &[]);
            assert_eq!(r.status, 404, "[{b}] {action} of no id");
        }
        assert!(!srv.token_row(&victim_token).revoked, "[{b}]");
        // Signing out needs the token too.
        let r = web.post_raw("/users/sign_out", b"", &[("Origin", &origin)]);
        assert_eq!(r.status, 403, "[{b}] a forged sign-out");
        assert_eq!(session_count(&srv, "alice"), 1, "[{b}]");
    }
}

#[test]
fn sign_in_answers_alike_for_unknown_users_and_wrong_passwords_and_is_throttled() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, Some(PASSWORD));
        srv.user("blocked", false, Some(PASSWORD));
        gitpat::service::users::set_blocked(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            "blocked",
            true,
            chrono::Utc::now(),
        )
        .expect("block");
        let attempt = |login: &str, password: &str| {
            let mut web = WebClient::new(&srv);
            web.get("/users/sign_in");
            let r = web.post("/users/sign_in", &[("login", login), ("password", password)]);
            (r.status, error_alert(&r.text()), web)
        };
        let (s1, unknown, _) = attempt("nobody", "whatever it is");
        let (s2, wrong, _) = attempt("alice", "not the password");
        assert_eq!((s1, s2), (422, 422), "[{b}]");
        assert_eq!(
            unknown, wrong,
            "[{b}] an unknown user and a wrong password answer differently"
        );
        assert_eq!(wrong, "Invalid login or password.");
        let (_, missing, _) = attempt("alice", "");
        assert_contains(&missing, "Enter your username", &format!("[{b}] no password"));
        // A blocked user is told so only with the right password.
        let (_, blocked_wrong, _) = attempt("blocked", "not the password");
        assert_eq!(blocked_wrong, "Invalid login or password.", "[{b}]");
        let (_, blocked, _) = attempt("blocked", PASSWORD);
        assert_contains(&blocked, "Your account has been blocked.", &format!("[{b}]"));
        // No failure left a session.
        assert_eq!(session_count(&srv, "alice"), 0, "[{b}]");
        // alice has failed once; nine more lock her account, even for the
        // right password (and however the login is spelled).
        srv.setting("git_auth_ban_enabled", "false");
        for _ in 0..9 {
            attempt("alice", "not the password");
        }
        let (status, locked, _) = attempt("ALICE@example.com", PASSWORD);
        assert_eq!(status, 422, "[{b}]");
        assert_contains(
            &locked,
            "Your account is locked",
            &format!("[{b}] the right password after ten wrong"),
        );
        assert_eq!(session_count(&srv, "alice"), 0, "[{b}]");
        // An oversized form is refused before it is read.
        let mut web = WebClient::new(&srv);
        web.get("/users/sign_in");
        let big = vec![b'a'; 70 * 1024];
        let r = web.post_raw("/users/sign_in", &big, &[("Origin", &format!("http://{}", srv.addr))]);
        assert_eq!(r.status, 413, "[{b}] a 70 KiB form");
        assert_contains(
            &r.text(),
            "This form is too large",
            &format!("[{b}] the 413's sentence"),
        );
    }
}

fn error_alert(html: &str) -> String {
    let at = html.find("class=\"alert error\"").map(|i| &html[i..]).unwrap_or("");
    at.split_once('>')
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(t, _)| t.to_string())
        .unwrap_or_default()
}

#[test]
fn sessions_end_when_blocked_on_a_new_password_and_when_idle() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let alice = srv.user("alice", false, Some(PASSWORD));
        let mut one = WebClient::new(&srv);
        one.sign_in("alice", PASSWORD);
        let mut two = WebClient::new(&srv);
        two.sign_in("alice", PASSWORD);
        assert_eq!(session_count(&srv, "alice"), 2, "[{b}]");
        let update = gitpat::service::users::UserUpdate {
            password: Some("another long password"),
            ..Default::default()
        };
        gitpat::service::users::update(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            alice.id,
            &update,
            chrono::Utc::now(),
        )
        .expect("a new password");
        assert_eq!(one.get(TOKENS).status, 303, "[{b}] a session survived the new password");
        assert_eq!(two.get(TOKENS).status, 303, "[{b}]");
        one.sign_in("alice", "another long password");
        gitpat::service::users::set_blocked(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            "alice",
            true,
            chrono::Utc::now(),
        )
        .expect("block");
        assert_eq!(one.get(TOKENS).status, 303, "[{b}] a session survived the block");
        assert_eq!(session_count(&srv, "alice"), 0, "[{b}]");
        gitpat::service::users::set_blocked(
            &mut srv.conn(),
            &gitpat::service::audit::Actor::cli(),
            "alice",
            false,
            chrono::Utc::now(),
        )
        .expect("unblock");
        // Idle past session_expire_delay (here a minute), a session is over.
        let mut settings = srv.app.settings();
        settings.session_expire_delay = 1;
        let conn = &mut srv.conn();
        let user = gitpat::service::users::get(conn, "alice").unwrap();
        let then = Utc::now() - Duration::minutes(2);
        let (_, secret) =
            sessions::start(conn, &srv.app.key, &settings, &user, false, &Default::default(), then).unwrap();
        assert!(
            sessions::resolve(conn, &srv.app.key, &settings, &secret, then + Duration::seconds(50))
                .unwrap()
                .is_some(),
            "[{b}] within the minute"
        );
        assert!(
            sessions::resolve(conn, &srv.app.key, &settings, &secret, Utc::now())
                .unwrap()
                .is_none(),
            "[{b}] idle past it"
        );
    }
}

#[test]
fn a_session_cookie_never_authenticates_git_or_the_api() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, Some(PASSWORD));
        srv.repo("alice/private", "alice", "private");
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        let cookie = format!("_gitpat_session={}", web.cookies["_gitpat_session"]);
        let r = srv.raw("GET", "/api/v4/user", &[("Cookie", &cookie)], b"");
        assert_eq!(r.status, 401, "[{b}] the API with a session cookie");
        let r = srv.raw(
            "GET",
            "/alice/private.git/info/refs?service=git-upload-pack",
            &[("Cookie", &cookie)],
            b"",
        );
        assert_eq!(r.status, 401, "[{b}] Git with a session cookie");
    }
}

#[test]
fn every_page_carries_its_security_headers_and_no_inline_script() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    let mut web = WebClient::new(&srv);
    srv.user("root", true, Some(PASSWORD));
    srv.repo("alice/code", "alice", "private");
    let mut pages = vec![("/users/sign_in", web.get("/users/sign_in"))];
    web.sign_in("alice", PASSWORD);
    for p in [
        TOKENS,
        "/-/user_settings/active_sessions",
        "/-/user_settings/two_factor_auth",
        "/-/user_settings/password/edit",
        "/dashboard/projects",
        "/alice/code",
    ] {
        pages.push((p, web.get(p)));
    }
    let forged = web.post_raw(TOKENS, b"name=x", &[("Origin", "http://evil.example")]);
    assert_eq!(forged.status, 403);
    pages.push(("a refusal", forged));
    let mut admin = WebClient::new(&srv);
    admin.sign_in("root", PASSWORD);
    for p in [
        "/admin/users",
        "/admin/users/new",
        "/admin/users/alice",
        "/admin/application_settings",
    ] {
        pages.push((p, admin.get(p)));
    }
    for (path, r) in pages {
        assert!(r.status == 200 || path == "a refusal", "{path}: {}", r.status);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        let html = r.text();
        assert!(
            !html.contains("<script>") && !html.contains(" style=\""),
            "{path}: inline script or style"
        );
        assert!(!html.contains(" onclick="), "{path}: an inline handler");
    }
    let r = web.get("/users/sign_in");
    assert_eq!(r.status, 303, "a signed-in user at the sign-in page goes on");
    for asset in ["/-/assets/gitpat.css", "/-/assets/gitpat.js"] {
        let r = srv.raw("GET", asset, &[], b"");
        assert_eq!(r.status, 200, "{asset}");
    }
}

#[test]
fn the_session_cookie_is_http_only_and_same_site_lax() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    let mut web = WebClient::new(&srv);
    web.get("/users/sign_in");
    let r = web.post("/users/sign_in", &[("login", "alice"), ("password", PASSWORD)]);
    let set = r
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("_gitpat_session="))
        .expect("the session cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    // Plain http here: not Secure.
    assert!(!set.contains("Secure"), "{set}");
    // Behind https (the external URL says so): Secure, and the origin
    // checked is the external one.
    let srv = TestServer::start_with(
        crate::support::TestDb::sqlite(),
        "auto",
        Some("HTTPS://git.example.com"),
    );
    srv.user("alice", false, Some(PASSWORD));
    let mut web = WebClient::new(&srv);
    web.get("/users/sign_in");
    let origin = "https://git.example.com";
    let body = form(&[
        ("authenticity_token", &web.csrf.clone()),
        ("login", "alice"),
        ("password", PASSWORD),
    ]);
    let r = web.post_raw("/users/sign_in", &body, &[("Origin", origin)]);
    assert_eq!(r.status, 303, "{}", r.text());
    let set = r
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("_gitpat_session="))
        .expect("the session cookie")
        .to_string();
    assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
    let mut other = WebClient::new(&srv);
    other.get("/users/sign_in");
    let r = other.post("/users/sign_in", &[("login", "alice"), ("password", PASSWORD)]);
    assert_eq!(r.status, 403, "the server's own host is not the external origin");
}

#[test]
fn expiry_within_a_week_is_highlighted_and_an_admin_resets_2fa() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    srv.user("root", true, Some(PASSWORD));
    srv.user("alice", false, Some(PASSWORD));
    totp_secret(&srv, "alice");
    srv.user("bob", false, Some(PASSWORD));
    let today = Utc::now().date_naive();
    srv.token("bob", &["api"], Some(today + Duration::days(5)));
    srv.token("bob", &["api"], Some(today + Duration::days(20)));
    let mut bob = WebClient::new(&srv);
    bob.sign_in("bob", PASSWORD);
    let page = bob.get(TOKENS).text();
    assert!(page.contains("<span class=\"soon\">(in 5 days)</span>"), "{page}");
    assert!(page.contains("<span>(in 20 days)</span>"), "{page}");
    let mut admin = WebClient::new(&srv);
    admin.sign_in("root", PASSWORD);
    admin.get("/admin/users/alice");
    let r = admin.post("/admin/users/alice/disable_two_factor", &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let alice = gitpat::service::users::get(&mut srv.conn(), "alice").unwrap();
    assert!(!alice.two_factor_enabled && alice.otp_secret.is_none());
    // Her password signs her in again without a code.
    let mut web = WebClient::new(&srv);
    web.sign_in("alice", PASSWORD);
}

#[test]
fn the_admin_area_is_for_administrators_only() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, Some(PASSWORD));
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        for path in [
            "/admin",
            "/admin/users",
            "/admin/users/new",
            "/admin/users/alice",
            "/admin/application_settings",
        ] {
            assert_eq!(web.get(path).status, 404, "[{b}] {path} for a non-admin");
        }
        let r = web.post("/admin/users", &[("username", "made"), ("email", "made@example.com")]);
        assert_eq!(r.status, 404, "[{b}] a non-admin creates a user");
        assert!(gitpat::db::user::find_by_username(&mut srv.conn(), "made")
            .unwrap()
            .is_none());
        let r = web.post("/admin/application_settings", &[("max_login_attempts", "1")]);
        assert_eq!(r.status, 404, "[{b}] a non-admin changes settings");
        assert_eq!(srv.app.settings().max_login_attempts, 10, "[{b}]");
        // Signed out: the sign-in page.
        let r = srv.raw("GET", "/admin/users", &[], b"");
        assert_eq!((r.status, r.header("location")), (303, Some("/users/sign_in")), "[{b}]");
    }
}

#[test]
fn the_other_forms_refuse_bad_input_next_to_the_field_and_write_nothing() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("root", true, Some(PASSWORD));
        srv.user("alice", false, Some(PASSWORD));
        let mut admin = WebClient::new(&srv);
        admin.sign_in("root", PASSWORD);
        admin.get("/admin/users/new");
        let long = "x".repeat(300);
        let users: Vec<Bad> = vec![
            bad(
                "no username",
                vec![("username", ""), ("email", "n@example.com")],
                "field-username-error",
                "invalid username",
            ),
            bad(
                "a bad username",
                vec![("username", "a b"), ("email", "n@example.com")],
                "field-username-error",
                "invalid username",
            ),
            bad(
                "a taken username",
                vec![("username", "ALICE"), ("email", "n@example.com")],
                "field-username-error",
                "already taken",
            ),
            bad(
                "a bad e-mail",
                vec![("username", "new"), ("email", "no-at-sign")],
                "field-email-error",
                "invalid email",
            ),
            bad(
                "a taken e-mail",
                vec![("username", "new"), ("email", "alice@example.com")],
                "field-email-error",
                "already taken",
            ),
            bad(
                "a short password",
                vec![("username", "new"), ("email", "n@example.com"), ("password", "short")],
                "field-password-error",
                "too short",
            ),
            bad(
                "an overlong name",
                vec![("username", "new"), ("email", "n@example.com"), ("name", &long)],
                "field-name-error",
                "1 to 255",
            ),
        ];
        for Bad {
            what,
            fields,
            id,
            message,
        } in &users
        {
            let before = gitpat::db::user::count(&mut srv.conn()).unwrap();
            let r = admin.post("/admin/users", fields);
            assert_eq!(r.status, 422, "[{b}] user: {what}: {}", r.text());
            let text = error_text(&r.text(), id).unwrap_or_else(|| panic!("[{b}] {what}: no #{id}"));
            assert_contains(&text, message, &format!("[{b}] user: {what}"));
            assert_eq!(
                gitpat::db::user::count(&mut srv.conn()).unwrap(),
                before,
                "[{b}] {what} made a user"
            );
        }
        admin.get("/admin/application_settings");
        let settings: Vec<Bad> = vec![
            bad(
                "a word for a number",
                vec![("git_auth_ban_max_failures", "ten")],
                "field-git_auth_ban_max_failures-error",
                "must be a number",
            ),
            bad(
                "a lifetime out of range",
                vec![("max_personal_access_token_lifetime", "9999")],
                "field-max_personal_access_token_lifetime-error",
                "from 1 to 400",
            ),
            bad(
                "no idle time",
                vec![("session_expire_delay", "0")],
                "field-session_expire_delay-error",
                "from 1 to",
            ),
            bad(
                "audit events kept no day",
                vec![("audit_events_retention_days", "0")],
                "field-audit_events_retention_days-error",
                "from 1 to",
            ),
        ];
        for Bad {
            what,
            fields,
            id,
            message,
        } in &settings
        {
            let before = gitpat::settings::Settings::load(&mut srv.conn()).unwrap();
            // The whole form as the page sends it, with one bad field.
            let mut all: Vec<(&str, String)> = gitpat::settings::KEYS
                .iter()
                .map(|k| (*k, before.get(k).unwrap()))
                .filter(|(k, v)| !(v == "false" || *k == "git_auth_ban_allowlist" || *k == "trusted_proxies"))
                .collect();
            all.retain(|(k, _)| !fields.iter().any(|(f, _)| f == k));
            all.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
            all.retain(|(k, _)| *k != "max_login_attempts");
            all.push(("max_login_attempts", "3".into()));
            let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = admin.post("/admin/application_settings", &refs);
            assert_eq!(r.status, 422, "[{b}] settings: {what}: {}", r.text());
            let text = error_text(&r.text(), id).unwrap_or_else(|| panic!("[{b}] {what}: no #{id}"));
            assert_contains(&text, message, &format!("[{b}] settings: {what}"));
            let after = gitpat::settings::Settings::load(&mut srv.conn()).unwrap();
            assert_eq!(after, before, "[{b}] settings: {what} stored a part");
        }
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        web.get("/-/user_settings/password/edit");
        let passwords: Vec<Bad> = vec![
            bad(
                "a wrong current password",
                vec![
                    ("current_password", "nope"),
                    ("new_password", "a new long password"),
                    ("password_confirmation", "a new long password"),
                ],
                "field-current_password-error",
                "wrong",
            ),
            bad(
                "a confirmation that differs",
                vec![
                    ("current_password", PASSWORD),
                    ("new_password", "a new long password"),
                    ("password_confirmation", "another"),
                ],
                "field-password_confirmation-error",
                "doesn't match",
            ),
            bad(
                "a short new password",
                vec![
                    ("current_password", PASSWORD),
                    ("new_password", "short"),
                    ("password_confirmation", "short"),
                ],
                "field-new_password-error",
                "too short",
            ),
        ];
        for Bad {
            what,
            fields,
            id,
            message,
        } in &passwords
        {
            let r = web.post("/-/user_settings/password", fields);
            assert_eq!(r.status, 422, "[{b}] password: {what}: {}", r.text());
            let html = r.text();
            let text = error_text(&html, id).unwrap_or_else(|| panic!("[{b}] {what}: no #{id}"));
            assert_contains(&text, message, &format!("[{b}] password: {what}"));
            assert!(
                !html.contains(PASSWORD) && !html.contains("a new long password"),
                "[{b}] a password echoed back"
            );
        }
        assert_eq!(
            session_count(&srv, "alice"),
            1,
            "[{b}] a refused password change ended sessions"
        );
        // 2FA: a wrong code or password turns nothing on.
        web.get("/-/user_settings/two_factor_auth");
        for (what, fields, id) in [
            (
                "a wrong code",
                vec![("pin_code", "000000"), ("current_password", PASSWORD)],
                "field-pin_code-error",
            ),
            (
                "no code",
                vec![("pin_code", ""), ("current_password", PASSWORD)],
                "field-pin_code-error",
            ),
            (
                "a wrong password",
                vec![("pin_code", "123456"), ("current_password", "nope")],
                "field-current_password-error",
            ),
        ] {
            let r = web.post("/-/user_settings/two_factor_auth", &fields);
            assert_eq!(r.status, 422, "[{b}] 2FA: {what}: {}", r.text());
            assert!(error_text(&r.text(), id).is_some(), "[{b}] 2FA: {what}: no #{id}");
            assert!(
                !gitpat::service::users::get(&mut srv.conn(), "alice")
                    .unwrap()
                    .two_factor_enabled,
                "[{b}] {what}"
            );
        }
    }
}

fn totp_secret(srv: &TestServer, user: &str) -> String {
    let uri = gitpat::service::users::enable_two_factor(
        &mut srv.conn(),
        &srv.app.key,
        &gitpat::service::audit::Actor::cli(),
        user,
        chrono::Utc::now(),
    )
    .expect("2FA on");
    let q = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
        .expect("the secret")
}

/// Signs in with the password to the 2FA step.
fn to_the_code_step(web: &mut WebClient, login: &str) {
    web.get("/users/sign_in");
    let r = web.post("/users/sign_in", &[("login", login), ("password", PASSWORD)]);
    assert_eq!(r.header("location"), Some("/users/two_factor"), "{}", r.text());
    web.get("/users/two_factor");
}

#[test]
fn wrong_codes_lock_the_account_however_often_the_password_is_given_again() {
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("tfa", false, Some(PASSWORD));
        let secret = totp_secret(&srv, "tfa");
        srv.setting("git_auth_ban_enabled", "false");
        let mut web = WebClient::new(&srv);
        to_the_code_step(&mut web, "tfa");
        for _ in 0..9 {
            let r = web.post("/users/two_factor", &[("otp_attempt", "000000")]);
            assert_contains(&r.text(), "Invalid two-factor code.", &format!("[{b}]"));
        }
        // The right password again does not buy more guesses.
        let mut again = WebClient::new(&srv);
        to_the_code_step(&mut again, "tfa");
        let r = again.post("/users/two_factor", &[("otp_attempt", "000000")]);
        assert_contains(&r.text(), "Invalid two-factor code.", &format!("[{b}] the tenth"));
        let code = gitpat::auth::totp::code_at(&secret, Utc::now().timestamp() as u64).unwrap();
        let r = again.post("/users/two_factor", &[("otp_attempt", &code)]);
        assert_eq!(r.status, 422, "[{b}] the right code of a locked account: {}", r.text());
        assert_contains(&r.text(), "Your account is locked", &format!("[{b}]"));
    }
}

#[test]
fn a_banned_client_cannot_sign_in_even_with_the_right_password() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    for i in 0..10 {
        let mut web = WebClient::new(&srv);
        web.get("/users/sign_in");
        web.post(
            "/users/sign_in",
            &[("login", &format!("nobody{i}")), ("password", "guess")],
        );
    }
    let mut web = WebClient::new(&srv);
    web.get("/users/sign_in");
    let r = web.post("/users/sign_in", &[("login", "alice"), ("password", PASSWORD)]);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_contains(
        &r.text(),
        "Too many failed authentication attempts from this IP",
        "the ban",
    );
    assert_eq!(session_count(&srv, "alice"), 0);
}

#[test]
fn impersonation_tokens_are_not_the_owners_to_see_rotate_or_revoke() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let alice = srv.user("alice", false, Some(PASSWORD));
        let req = gitpat::service::tokens::NewTokenRequest {
            user: &alice,
            name: "admin-made",
            description: None,
            scopes: &["api".to_string()],
            expires_at: None,
            token: None,
            impersonation: true,
            actor: &gitpat::service::audit::Actor::cli(),
        };
        let (row, secret) =
            gitpat::service::tokens::create(&mut srv.conn(), &srv.app.key, &srv.app.settings(), &req, Utc::now())
                .unwrap();
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        assert!(
            !web.get(TOKENS).text().contains("admin-made"),
            "[{b}] listed to its owner"
        );
        for action in ["rotate", "revoke"] {
            let r = web.post(&format!("{TOKENS}/{}/{action}", row.id), &[]);
            assert_eq!(r.status, 404, "[{b}] the owner may {action} it: {}", r.text());
        }
        let now = srv.token_row(secret.expose());
        assert!(!now.revoked, "[{b}]");
    }
}

#[test]
fn secrets_never_reach_the_database_in_clear_and_sessions_change_at_sign_in() {
    use diesel::prelude::*;
    for srv in TestServer::each() {
        let b = srv.backend();
        srv.user("alice", false, Some(PASSWORD));
        srv.user("tfa", false, Some(PASSWORD));
        let secret = totp_secret(&srv, "tfa");
        // The TOTP secret is kept sealed with the instance's key.
        let tfa = gitpat::db::user::find_by_username(&mut srv.conn(), "tfa")
            .unwrap()
            .unwrap();
        let stored = tfa.otp_secret.clone().expect("a TOTP secret");
        assert!(
            gitpat::auth::seal::is_sealed(&stored) && !stored.contains(&secret),
            "[{b}] the TOTP secret in clear: {stored}"
        );
        // One an earlier version kept in clear is sealed when the instance
        // opens, and still works.
        gitpat::db::user::replace_otp_secret(&mut srv.conn(), tfa.id, &stored, &secret).unwrap();
        assert_eq!(
            gitpat::service::two_factor::seal_kept_in_clear(&mut srv.conn(), &srv.app.key).unwrap(),
            1,
            "[{b}]"
        );
        let resealed = gitpat::db::user::find(&mut srv.conn(), tfa.id).unwrap().unwrap();
        let again = resealed.otp_secret.clone().unwrap();
        assert!(
            gitpat::auth::seal::is_sealed(&again) && !again.contains(&secret),
            "[{b}] {again}"
        );
        assert_eq!(
            gitpat::service::two_factor::secret_of(&srv.app.key, &resealed)
                .unwrap()
                .as_deref(),
            Some(secret.as_str()),
            "[{b}]"
        );
        let mut web = WebClient::new(&srv);
        web.sign_in("alice", PASSWORD);
        let cookie = web.cookies["_gitpat_session"].clone();
        let rows: Vec<(String, Option<String>)> = gitpat::db::schema::sessions::table
            .select((
                gitpat::db::schema::sessions::digest,
                gitpat::db::schema::sessions::flash,
            ))
            .load(&mut *srv.conn())
            .unwrap();
        assert!(
            rows.iter().all(|(d, _)| d != &cookie && !d.contains(&cookie)),
            "[{b}] a session id in clear"
        );
        web.post(TOKENS, &[("name", "n"), ("scopes", "api")]);
        let flashes: Vec<Option<String>> = gitpat::db::schema::sessions::table
            .select(gitpat::db::schema::sessions::flash)
            .load(&mut *srv.conn())
            .unwrap();
        let flash = flashes.into_iter().flatten().next().expect("the flash");
        let page = web.get(TOKENS).text();
        let token = page
            .split("id=\"new-token\"")
            .nth(1)
            .and_then(|r| r.split("value=\"").nth(1))
            .and_then(|r| r.split('"').next())
            .expect("the token on the page")
            .to_string();
        assert!(
            !flash.contains(&token) && !flash.contains("glpat-"),
            "[{b}] the token in clear in the flash"
        );
        // Signing in from a half-done sign-in ("Sign in as someone else")
        // ends the half-done one.
        let mut half = WebClient::new(&srv);
        to_the_code_step(&mut half, "tfa");
        let pending = half.cookies["_gitpat_session"].clone();
        half.sign_in("alice", PASSWORD);
        let mut old = WebClient::new(&srv);
        old.cookies.insert("_gitpat_session".into(), pending);
        let r = old.get("/users/two_factor");
        assert_eq!(
            r.header("location"),
            Some("/users/sign_in"),
            "[{b}] the half-done sign-in lives on"
        );
        // The pending cookie of a 2FA sign-in is not the signed-in one.
        let mut two = WebClient::new(&srv);
        to_the_code_step(&mut two, "tfa");
        let pending = two.cookies["_gitpat_session"].clone();
        let code = gitpat::auth::totp::code_at(&secret, Utc::now().timestamp() as u64).unwrap();
        let r = two.post("/users/two_factor", &[("otp_attempt", &code)]);
        assert_eq!(r.status, 303, "[{b}] {}", r.text());
        assert_ne!(two.cookies["_gitpat_session"], pending, "[{b}] the pending id kept");
        let mut p = WebClient::new(&srv);
        p.cookies.insert("_gitpat_session".into(), pending);
        assert_eq!(p.get(TOKENS).status, 303, "[{b}] the pending cookie opens the pages");
    }
}

#[test]
fn a_non_admin_can_change_no_user() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    srv.user("bob", false, Some(PASSWORD));
    totp_secret(&srv, "bob");
    let mut web = WebClient::new(&srv);
    web.sign_in("alice", PASSWORD);
    for action in ["block", "unblock", "disable_two_factor", "impersonation_tokens"] {
        let r = web.post(
            &format!("/admin/users/bob/{action}"),
            &[("name", "x"), ("scopes", "api")],
        );
        assert_eq!(r.status, 404, "{action} by a non-admin");
    }
    let bob = gitpat::service::users::get(&mut srv.conn(), "bob").unwrap();
    assert!(!bob.is_blocked() && bob.two_factor_enabled);
    assert_eq!(
        gitpat::service::tokens::impersonation_of(&mut srv.conn(), bob.id)
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_token_made_on_the_page_queues_its_owners_notice() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    let mut web = WebClient::new(&srv);
    web.sign_in("alice", PASSWORD);
    let r = web.post(TOKENS, &[("name", "from the page"), ("scopes", "read_api")]);
    assert_eq!(r.status, 303, "{}", r.text());
    let row = gitpat::service::tokens::personal_of(&mut srv.conn(), 1)
        .unwrap()
        .into_iter()
        .find(|t| t.name == "from the page")
        .expect("the token");
    let queued = gitpat::db::notification::list_for_token(&mut srv.conn(), row.id).unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        (queued[0].kind.as_str(), queued[0].detail.as_deref()),
        ("created", Some("web|"))
    );
    let site = gitpat::service::notify::Site::new(None, "gitpat@localhost".into());
    let user = gitpat::service::users::get(&mut srv.conn(), "alice").unwrap();
    let mail = gitpat::service::notify::render(
        &queued[0],
        &row,
        &user,
        &site,
        &srv.app.settings(),
        Utc::now().date_naive(),
    )
    .unwrap();
    assert_contains(&mail.text, "on the access tokens page, by you", "the notice's words");
}
