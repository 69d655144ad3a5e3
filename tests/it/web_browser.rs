//! The web pages in a real Chromium (WebDriver): sign in, with and without
//! two-factor authentication; make a token and clone and push with it
//! through the real git clients; revoke and rotate it; the field errors;
//! sign out; revoke another session.

use chrono::{Duration, Utc};

use crate::support::browser::Browser;
use crate::support::repo::{assert_contains, commit, server_ref, tmp};
use crate::support::server::{gits, TestServer};
use crate::support::web::WebClient;
use crate::support::TestDb;

const PASSWORD: &str = "a long enough password";
const TOKENS: &str = "/-/user_settings/personal_access_tokens";

fn sign_in(b: &Browser, srv: &TestServer, login: &str, password: &str) {
    b.goto(&srv.url("/"));
    b.wait_for_path("/users/sign_in");
    b.fill("#field-login", login);
    b.fill("#field-password", password);
    b.click("form.stack button[type=submit]");
}

/// Creates a token in the page; the secret it shows once.
fn create_token(b: &Browser, name: &str, scopes: &[&str], expires: &str) -> String {
    b.fill("#field-name", name);
    b.set_date("#field-expires_at", expires);
    for s in scopes {
        b.click(&format!("#scope-{s}"));
    }
    b.click("form.stack button[type=submit]");
    b.wait_for_path(TOKENS);
    let token = b.value("#new-token");
    assert!(token.starts_with("glpat-"), "the new token: {token:?}");
    assert_contains(
        &b.text("section.alert.ok"),
        "you won't be able to access it again",
        "the warning",
    );
    token
}

#[test]
fn a_user_signs_in_makes_a_token_clones_and_pushes_with_it_and_revokes_it() {
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    srv.repo("alice/code", "alice", "private");
    let b = Browser::open();

    // Signed out, the tokens page sends to sign-in; a wrong password is
    // refused as an unknown user is.
    b.goto(&srv.url(TOKENS));
    b.wait_for_path("/users/sign_in");
    sign_in(&b, &srv, "alice", "not the password");
    assert_contains(
        &b.text("p.alert.error"),
        "Invalid login or password.",
        "a wrong password",
    );
    sign_in(&b, &srv, "alice@example.com", PASSWORD);
    b.wait_for_path(TOKENS);
    let cookie = b.cookie("_gitpat_session").expect("the session cookie");
    assert!(!b.source().contains(&cookie), "the session id is on the page");

    let expires = (Utc::now().date_naive() + Duration::days(20))
        .format("%Y-%m-%d")
        .to_string();
    let token = create_token(&b, "laptop", &["read_repository", "write_repository"], &expires);
    let row = srv.token_row(&token);
    assert_eq!(row.scopes, "read_repository write_repository");
    assert_eq!(
        row.expires_at.map(|d| d.format("%Y-%m-%d").to_string()),
        Some(expires.clone())
    );
    // Shown once: a reload does not show it again.
    b.goto(&srv.url(TOKENS));
    assert!(!b.exists("#new-token"), "the token is shown again after a reload");
    assert!(!b.source().contains(&token), "the token is on the page again");
    assert_contains(&b.text("table"), "laptop", "the active tokens");
    assert_contains(&b.text("table"), "read_repository, write_repository", "its scopes");
    assert_contains(&b.text("table"), "in 20 days", "its expiry");

    // The token clones and pushes with both git clients.
    for git in &gits() {
        let dir = tmp();
        let url = srv.url_as("alice", &token, "/alice/code.git");
        git.ok(dir.path(), &["clone", "-q", &url, "c"]);
        let w = dir.path().join("c");
        commit(
            git,
            &w,
            "a.txt",
            &format!("from {}\n", git.version),
            "from the browser's token",
        );
        git.ok(&w, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    }
    assert!(server_ref(&srv.repo_dir("alice/code"), "refs/heads/main").is_some());
    // Its use shows on the page.
    b.goto(&srv.url(TOKENS));
    assert_contains(&b.text("table"), "just now", "last used");
    assert_contains(&b.text("table"), "127.0.0.1", "the last IPs");

    // Revoked in the page (after the confirmation), it clones no more.
    let asked = b.click_and_confirm("button[aria-label='Revoke laptop']");
    assert_contains(&asked, "Revoke laptop?", "the confirmation");
    b.wait_for_path(TOKENS);
    assert_contains(&b.source(), "Inactive personal access tokens (1)", "the revoked token");
    assert!(srv.token_row(&token).revoked);
    let dir = tmp();
    let err = gits()[0].fails(
        dir.path(),
        &["clone", "-q", &srv.url_as("alice", &token, "/alice/code.git"), "c"],
    );
    assert_contains(&err, "Authentication failed", "a clone with the revoked token");

    // Rotated in the page: the old token fails, the new one clones.
    let old = create_token(&b, "ci", &["read_repository"], &expires);
    b.click_and_confirm("button[aria-label='Rotate ci']");
    b.wait_for_path(TOKENS);
    let new = b.value("#new-token");
    assert!(new.starts_with("glpat-") && new != old, "the rotated token: {new:?}");
    assert!(srv.token_row(&old).revoked);
    let dir = tmp();
    gits()[0].ok(
        dir.path(),
        &["clone", "-q", &srv.url_as("alice", &new, "/alice/code.git"), "c"],
    );

    // The field errors: a date past the maximum lifetime, no scope, and
    // no sudo box for a user who is not an administrator.
    srv.setting("max_personal_access_token_lifetime", "30");
    b.goto(&srv.url(TOKENS));
    assert!(!b.exists("#scope-sudo"), "sudo offered to a non-admin");
    assert_contains(
        &b.text("#field-expires_at-hint"),
        "At most 30 days",
        "the maximum shown",
    );
    b.fill("#field-name", "too long-lived");
    let far = (Utc::now().date_naive() + Duration::days(90))
        .format("%Y-%m-%d")
        .to_string();
    b.set_date("#field-expires_at", &far);
    b.click("#scope-read_api");
    b.click("form.stack button[type=submit]");
    assert_contains(&b.text("#field-expires_at-error"), "too far away", "the lifetime error");
    assert_eq!(
        b.value("#field-name"),
        "too long-lived",
        "the form keeps what was typed"
    );
    b.set_date("#field-expires_at", &expires);
    b.click("#scope-read_api");
    b.click("form.stack button[type=submit]");
    assert_contains(
        &b.text("#field-scopes-error"),
        "Select at least one scope",
        "the scope error",
    );

    // Sign out: the pages send to sign-in again, and the old cookie is dead.
    b.click("header nav button");
    b.wait_for_path("/users/sign_in");
    b.goto(&srv.url(TOKENS));
    b.wait_for_path("/users/sign_in");
    let mut stale = WebClient::new(&srv);
    stale.cookies.insert("_gitpat_session".into(), cookie);
    assert_eq!(stale.get(TOKENS).status, 303, "the signed-out cookie still works");
}

/// The secret of an `otpauth://` URI.
fn secret_of(uri: &str) -> String {
    let q = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
        .expect("the URI's secret")
}

fn code(secret: &str, at: chrono::DateTime<Utc>) -> String {
    gitpat::auth::totp::code_at(secret, at.timestamp() as u64).expect("a code")
}

#[test]
fn a_2fa_user_signs_in_with_a_code_that_works_once() {
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("tfa", false, Some(PASSWORD));
    let uri = gitpat::service::users::enable_two_factor(
        &mut srv.conn(),
        &srv.app.key,
        &gitpat::service::audit::Actor::cli(),
        "tfa",
        chrono::Utc::now(),
    )
    .expect("2FA on");
    let secret = secret_of(&uri);
    let b = Browser::open();
    sign_in(&b, &srv, "tfa", PASSWORD);
    b.wait_for_path("/users/two_factor");
    // The pending session opens nothing else.
    b.goto(&srv.url(TOKENS));
    b.wait_for_path("/users/sign_in");
    b.goto(&srv.url("/users/two_factor"));
    b.wait_for_path("/users/two_factor");
    b.fill("#field-otp_attempt", "000000");
    b.click("form.stack button[type=submit]");
    assert_contains(
        &b.text("#field-otp_attempt-error"),
        "Invalid two-factor code.",
        "a wrong code",
    );
    let now = Utc::now();
    let good = code(&secret, now);
    b.fill("#field-otp_attempt", &good);
    b.click("form.stack button[type=submit]");
    b.wait_for_path(TOKENS);
    // Signed out and in again, the same code is refused: it was used.
    b.click("header nav button");
    b.wait_for_path("/users/sign_in");
    sign_in(&b, &srv, "tfa", PASSWORD);
    b.wait_for_path("/users/two_factor");
    b.fill("#field-otp_attempt", &good);
    b.click("form.stack button[type=submit]");
    assert_contains(
        &b.text("#field-otp_attempt-error"),
        "Invalid two-factor code.",
        "a replayed code",
    );
    // The next step's code (within the skew allowed) is a new one.
    b.fill("#field-otp_attempt", &code(&secret, now + Duration::seconds(30)));
    b.click("form.stack button[type=submit]");
    b.wait_for_path(TOKENS);
    // Git still refuses the password of a 2FA user, as before.
    let dir = tmp();
    srv.repo("tfa/r", "tfa", "private");
    let err = gits()[0].fails(
        dir.path(),
        &["clone", "-q", &srv.url_as("tfa", PASSWORD, "/tfa/r.git"), "c"],
    );
    assert_contains(&err, "personal access token", "git with a 2FA user's password");
}

#[test]
fn another_session_is_listed_and_revoked_from_the_page() {
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    let mut other = WebClient::new(&srv);
    other.sign_in("alice", PASSWORD);
    let b = Browser::open();
    sign_in(&b, &srv, "alice", PASSWORD);
    b.wait_for_path(TOKENS);
    b.goto(&srv.url("/-/user_settings/active_sessions"));
    let table = b.text("table");
    assert_contains(&table, "This is your current session", "the browser's own session");
    assert_contains(&table, "HeadlessChrome", "its user agent");
    assert_eq!(b.source().matches(">Revoke<").count(), 1, "one other session to revoke");
    b.click_and_confirm("button.danger");
    b.wait_for_path("/-/user_settings/active_sessions");
    assert_eq!(
        b.source().matches(">Revoke<").count(),
        0,
        "the other session is still listed"
    );
    assert_eq!(
        other.get(TOKENS).status,
        303,
        "the revoked session still opens the page"
    );
}

#[test]
fn a_user_enrols_2fa_in_the_page_and_its_recovery_codes_work_once() {
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    srv.repo("alice/r", "alice", "private");
    let b = Browser::open();
    sign_in(&b, &srv, "alice", PASSWORD);
    b.wait_for_path(TOKENS);
    b.goto(&srv.url("/-/user_settings/two_factor_auth"));
    assert!(b.exists("div.qr svg"), "no QR code:\n{}", b.source());
    let first: String = b.text("#otp-secret").split_whitespace().collect();
    // Each visit enrols a new secret: one seen before is not the one
    // that will be turned on.
    b.goto(&srv.url("/-/user_settings/two_factor_auth"));
    let secret: String = b.text("#otp-secret").split_whitespace().collect();
    assert_ne!(secret, first, "the enrolment secret was shown again");
    let now = Utc::now();
    // A wrong password: refused next to its field, nothing turned on.
    b.fill("#field-pin_code", &code(&secret, now));
    b.fill("#field-current_password", "not the password");
    b.click("form.stack button[type=submit]");
    assert_contains(&b.text("#field-current_password-error"), "wrong", "a wrong password");
    b.fill("#field-pin_code", &code(&secret, now));
    b.fill("#field-current_password", PASSWORD);
    b.click("form.stack button[type=submit]");
    b.wait_for_path("/-/user_settings/two_factor_auth");
    let codes: Vec<String> = b
        .text("#recovery-codes")
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "recovery codes: {codes:?}");
    assert_contains(&b.text("#two-factor-status"), "10 unused recovery codes", "the status");
    b.goto(&srv.url("/-/user_settings/two_factor_auth"));
    assert!(!b.exists("#recovery-codes"), "the recovery codes are shown again");
    // Git takes the password no more.
    let dir = tmp();
    let err = gits()[0].fails(
        dir.path(),
        &["clone", "-q", &srv.url_as("alice", PASSWORD, "/alice/r.git"), "c"],
    );
    assert_contains(&err, "personal access token", "git with the password of a 2FA user");
    // A recovery code signs in once.
    for (attempt, works) in [(&codes[0], true), (&codes[0], false)] {
        b.click("header nav button");
        b.wait_for_path("/users/sign_in");
        sign_in(&b, &srv, "alice", PASSWORD);
        b.wait_for_path("/users/two_factor");
        b.fill("#field-otp_attempt", attempt);
        b.click("form.stack button[type=submit]");
        if works {
            b.wait_for_path(TOKENS);
        } else {
            assert_contains(
                &b.text("#field-otp_attempt-error"),
                "Invalid two-factor code.",
                "a used recovery code",
            );
        }
    }
    b.fill("#field-otp_attempt", &code(&secret, now + Duration::seconds(30)));
    b.click("form.stack button[type=submit]");
    b.wait_for_path(TOKENS);
    // Disabled with the password and another recovery code, the password
    // works for Git again.
    b.goto(&srv.url("/-/user_settings/two_factor_auth"));
    assert_contains(
        &b.text("#two-factor-status"),
        "9 unused recovery codes",
        "after one was used",
    );
    b.fill("#field-pin_code", &codes[1]);
    b.fill("#field-disable_password", PASSWORD);
    b.click_and_confirm("button.danger");
    b.wait_for_path("/-/user_settings/two_factor_auth");
    // The same path as before the click: wait for the new page's QR code.
    b.wait_for("div.qr svg");
    let dir = tmp();
    gits()[0].ok(
        dir.path(),
        &["clone", "-q", &srv.url_as("alice", PASSWORD, "/alice/r.git"), "c"],
    );
}

#[test]
fn a_user_changes_their_password_and_signs_in_again_with_it() {
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    let b = Browser::open();
    sign_in(&b, &srv, "alice", PASSWORD);
    b.wait_for_path(TOKENS);
    b.goto(&srv.url("/-/user_settings/password/edit"));
    b.fill("#field-current_password", "not the password");
    b.fill("#field-new_password", "a brand new password");
    b.fill("#field-password_confirmation", "a brand new password");
    b.click("form.stack button[type=submit]");
    assert_contains(
        &b.text("#field-current_password-error"),
        "wrong",
        "a wrong current password",
    );
    b.fill("#field-current_password", PASSWORD);
    b.fill("#field-new_password", "a brand new password");
    b.fill("#field-password_confirmation", "not the same");
    b.click("form.stack button[type=submit]");
    assert_contains(
        &b.text("#field-password_confirmation-error"),
        "doesn't match",
        "a confirmation",
    );
    b.fill("#field-current_password", PASSWORD);
    b.fill("#field-new_password", "short");
    b.fill("#field-password_confirmation", "short");
    b.click("form.stack button[type=submit]");
    // `text` waits for the answer's page; `exists` would look at the old one.
    assert_contains(&b.text("#field-new_password-error"), "too short", "a short password");
    b.fill("#field-current_password", PASSWORD);
    b.fill("#field-new_password", "a brand new password");
    b.fill("#field-password_confirmation", "a brand new password");
    b.click("form.stack button[type=submit]");
    b.wait_for_path("/users/sign_in");
    assert_contains(&b.text("p.alert.ok"), "Your password was changed", "the notice");
    sign_in(&b, &srv, "alice", PASSWORD);
    assert_contains(
        &b.text("p.alert.error"),
        "Invalid login or password.",
        "the old password",
    );
    sign_in(&b, &srv, "alice", "a brand new password");
    b.wait_for_path(TOKENS);
}

#[test]
fn an_administrator_manages_users_impersonation_tokens_and_settings() {
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("root", true, Some(PASSWORD));
    let b = Browser::open();
    sign_in(&b, &srv, "root", PASSWORD);
    b.wait_for_path(TOKENS);
    b.click("header nav a[href='/admin']");
    b.wait_for_path("/admin/users");
    b.click("a[href='/admin/users/new']");
    // Bad input is refused next to its field, and nothing is made.
    b.fill("#field-username", "bad name");
    b.fill("#field-email", "bob@example.com");
    b.click("form.stack button[type=submit]");
    assert_contains(&b.text("#field-username-error"), "invalid username", "a bad username");
    assert!(gitpat::db::user::find_by_username(&mut srv.conn(), "bad name")
        .unwrap()
        .is_none());
    b.fill("#field-username", "bob");
    b.fill("#field-password", PASSWORD);
    b.click("form.stack button[type=submit]");
    b.wait_for_path("/admin/users/bob");
    srv.repo("bob/r", "bob", "private");
    b.goto(&srv.url("/admin/users?search=BOB"));
    let listed = b.text("table");
    assert!(
        listed.contains("bob@example.com") && !listed.contains("root@example.com"),
        "{listed}"
    );

    // An impersonation token for bob clones bob's repository, until revoked.
    b.goto(&srv.url("/admin/users/bob"));
    b.fill("#field-name", "support");
    b.click("#scope-read_repository");
    b.click("form.stack button[type=submit]");
    b.wait_for_path("/admin/users/bob");
    let token = b.value("#new-token");
    assert!(srv.token_row(&token).impersonation, "not an impersonation token");
    let dir = tmp();
    gits()[0].ok(
        dir.path(),
        &["clone", "-q", &srv.url_as("bob", &token, "/bob/r.git"), "c"],
    );
    b.click_and_confirm("button[aria-label='Revoke support']");
    b.wait_for_path("/admin/users/bob");
    assert!(srv.token_row(&token).revoked);
    assert_contains(&b.text("table"), "Revoked", "the revoked impersonation token");

    // Blocked, bob can sign in no more; unblocked, he can.
    b.click_and_confirm("form[action='/admin/users/bob/block'] button");
    b.wait_for_path("/admin/users/bob");
    assert!(gitpat::service::users::get(&mut srv.conn(), "bob")
        .unwrap()
        .is_blocked());
    let mut bob = WebClient::new(&srv);
    bob.get("/users/sign_in");
    let r = bob.post("/users/sign_in", &[("login", "bob"), ("password", PASSWORD)]);
    assert_contains(&r.text(), "Your account has been blocked.", "a blocked user's sign-in");
    b.click("form[action='/admin/users/bob/unblock'] button");
    b.wait_for_path("/admin/users/bob");
    bob.sign_in("bob", PASSWORD);

    // The settings: a bad value is refused next to its field and changes
    // nothing; good ones apply at once.
    b.goto(&srv.url("/admin/application_settings"));
    b.fill("#field-git_auth_ban_max_failures", "lots");
    b.fill("#field-max_personal_access_token_lifetime", "30");
    b.click("form.stack button[type=submit]");
    assert_contains(
        &b.text("#field-git_auth_ban_max_failures-error"),
        "git_auth_ban_max_failures must be a number",
        "a bad setting",
    );
    assert_eq!(
        srv.app.settings().max_personal_access_token_lifetime,
        None,
        "half a change was stored"
    );
    b.fill("#field-git_auth_ban_max_failures", "20");
    b.click("#field-password_authentication_enabled_for_git");
    b.click("#field-revoke_leaked_tokens");
    b.fill("#field-audit_events_retention_days", "90");
    b.click("form.stack button[type=submit]");
    assert_contains(&b.text("p.alert.ok"), "The settings were saved.", "the notice");
    let s = gitpat::settings::Settings::load(&mut srv.conn()).unwrap();
    assert_eq!(
        (
            s.max_personal_access_token_lifetime,
            s.git_auth_ban_max_failures,
            s.password_authentication_enabled_for_git,
            s.revoke_leaked_tokens,
            s.audit_events_retention_days,
            s.secret_push_protection_enabled
        ),
        (Some(30), 20, false, true, 90, true)
    );
    let dir = tmp();
    let err = gits()[0].fails(
        dir.path(),
        &["clone", "-q", &srv.url_as("bob", PASSWORD, "/bob/r.git"), "c"],
    );
    assert_contains(&err, "personal access token", "a password for Git with passwords off");
}

#[test]
fn a_project_page_shows_its_clone_url_and_the_token_hint() {
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    srv.user("eve", false, Some(PASSWORD));
    srv.repo("alice/code", "alice", "private");
    srv.repo("alice/open", "alice", "public");
    let b = Browser::open();
    sign_in(&b, &srv, "alice", PASSWORD);
    b.wait_for_path(TOKENS);
    b.click("header nav a[href='/dashboard/projects']");
    b.wait_for_path("/dashboard/projects");
    b.click("a[href='/alice/code']");
    b.wait_for_path("/alice/code");
    assert_eq!(b.value("#clone-url"), srv.url("/alice/code.git"));
    assert_contains(
        &b.text("p.alert.warn"),
        "personal access token as the password",
        "the hint",
    );
    b.click("p.alert.warn a");
    b.wait_for_path(TOKENS);
    // Another user sees the public project only; the private one is the
    // plain 404 of any unknown path.
    let mut eve = WebClient::new(&srv);
    eve.sign_in("eve", PASSWORD);
    assert_eq!(eve.get("/alice/code").status, 404);
    assert_eq!(eve.get("/alice/nothing-here").text(), eve.get("/alice/code").text());
    assert_eq!(eve.get("/alice/open").status, 200);
    let list = eve.get("/dashboard/projects").text();
    assert!(list.contains("alice/open") && !list.contains("alice/code"), "{list}");
    // Anonymous: the public page, not the private one.
    assert_eq!(srv.raw("GET", "/alice/open", &[], b"").status, 200);
    assert_eq!(srv.raw("GET", "/alice/code", &[], b"").status, 404);
    assert_eq!(srv.raw("POST", "/alice/code", &[], b"").status, 404);
}

/// The page's width and the window's, in CSS pixels.
fn widths(b: &Browser) -> (u64, u64) {
    let w = b.eval("return [document.documentElement.scrollWidth, window.innerWidth];");
    (w[0].as_u64().unwrap_or(0), w[1].as_u64().unwrap_or(0))
}

#[test]
fn the_pages_fit_a_phone_screen() {
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("alice", false, Some(PASSWORD));
    srv.token("alice", &["read_repository", "write_repository", "read_api"], None);
    let b = Browser::open();
    b.set_size(390, 844);
    b.goto(&srv.url("/users/sign_in"));
    let mut seen = vec![("/users/sign_in", widths(&b))];
    sign_in(&b, &srv, "alice", PASSWORD);
    b.wait_for_path(TOKENS);
    for path in [
        TOKENS,
        "/-/user_settings/active_sessions",
        "/-/user_settings/two_factor_auth",
    ] {
        b.goto(&srv.url(path));
        seen.push((path, widths(&b)));
    }
    for (path, (page, window)) in seen {
        assert!(window > 0 && window <= 500, "{path}: the window is {window} px wide");
        assert!(page <= window, "{path}: {page} px of page in a {window} px window");
    }
}
