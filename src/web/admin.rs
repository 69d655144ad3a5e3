//! **Admin area** (administrators only; anyone else gets the plain 404):
//! users (list, search, create, block, unblock, reset 2FA), a user's
//! impersonation tokens (create, revoke), and the instance settings. Every
//! change goes through the same `service/` rules as the API and the CLI.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, Utc};
use maud::{html, Markup};

use super::layout::{self, field, Field};
use super::{checked_form, html, see_other, signed_in, with_conn, Current, Form};
use crate::app::App;
use crate::auth::token::{self, Scope};
use crate::db::{token::TokenRow, user::User};
use crate::error::Error;
use crate::service::audit::Actor;
use crate::service::sessions::{self as svc, FlashKind};
use crate::service::{tokens, users};
use crate::settings::Settings;

pub const USERS: &str = "/admin/users";
pub const SETTINGS: &str = "/admin/application_settings";

/// The signed-in administrator, or the answer for anyone else.
async fn admin(app: &web::Data<App>, req: &HttpRequest) -> Result<Current, HttpResponse> {
    let c = signed_in(app, req).await?;
    if !c.user.is_admin {
        return Err(crate::http::not_found().await);
    }
    Ok(c)
}

fn page(current: &Current, app: &App, title: &str, status: StatusCode, body: Markup) -> HttpResponse {
    let csrf = current.csrf(app);
    let body = html! {
        nav.admin aria-label="Admin area" {
            a href=(USERS) { "Users" } " · " a href=(SETTINGS) { "Settings" }
        }
        (body)
    };
    html(status, layout::page(title, Some((current, &csrf)), body))
}

fn user_url(u: &str) -> String {
    format!("{USERS}/{u}")
}

pub async fn index(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    match admin(&app, &req).await {
        Ok(_) => see_other(USERS),
        Err(resp) => resp,
    }
}

pub async fn users_list(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    let current = match admin(&app, &req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let q: String = form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "search")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let q2 = q.clone();
    let found = match with_conn(&app, move |conn, _| users::search(conn, Some(&q2), true)).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let body = html! {
        h1 { "Users" }
        form.search method="get" action=(USERS) role="search" {
            label for="search" { "Search by name, username or e-mail" }
            " " input #search type="text" name="search" value=(q);
            " " button type="submit" { "Search" }
        }
        p { a.button href={ (USERS) "/new" } { "New user" } }
        table {
            thead { tr { th { "Username" } th { "Name" } th { "E-mail" } th { "State" } } }
            tbody {
                @for u in &found {
                    tr {
                        td data-label="Username" { a href=(user_url(&u.username)) { (u.username) } }
                        td data-label="Name" { (u.name) }
                        td data-label="E-mail" { (u.email) }
                        td data-label="State" {
                            (u.state)
                            @if u.is_admin { " · admin" }
                            @if u.two_factor_enabled { " · 2FA" }
                        }
                    }
                }
            }
        }
    };
    page(&current, &app, "Users", StatusCode::OK, body)
}

#[derive(Default)]
struct UserDraft {
    username: String,
    email: String,
    name: String,
    admin: bool,
    errors: Vec<(&'static str, String)>,
}

impl UserDraft {
    fn error(&self, f: &str) -> Option<&str> {
        self.errors.iter().find(|(k, _)| *k == f).map(|(_, m)| m.as_str())
    }
}

fn user_field_of(message: &str) -> &'static str {
    if message.contains("username") {
        "username"
    } else if message.contains("email") {
        "email"
    } else if message.contains("password") {
        "password"
    } else if message.starts_with("the name") {
        "name"
    } else {
        "form"
    }
}

fn new_user_form(current: &Current, app: &App, status: StatusCode, d: &UserDraft) -> HttpResponse {
    let csrf = current.csrf(app);
    let body = html! {
        h1 { "New user" }
        @if let Some(e) = d.error("form") { (layout::alert("error", e)) }
        form.stack method="post" action=(USERS) {
            (layout::csrf_field(&csrf))
            (field(&Field { name: "username", label: "Username", value: &d.username, error: d.error("username"), required: true, ..Field::default() }))
            (field(&Field { name: "email", label: "E-mail", kind: "email", value: &d.email, error: d.error("email"), required: true, ..Field::default() }))
            (field(&Field { name: "name", label: "Name (optional)", value: &d.name, error: d.error("name"), ..Field::default() }))
            (field(&Field { name: "password", label: "Password", kind: "password", error: d.error("password"),
                hint: Some("Optional: without one, the user can only use tokens an administrator makes."),
                autocomplete: "new-password", ..Field::default() }))
            div.field {
                input #field-admin type="checkbox" name="admin" value="true" checked[d.admin];
                " " label for="field-admin" { "Administrator" }
            }
            div { button.primary type="submit" { "Create user" } }
        }
    };
    page(current, app, "New user", status, body)
}

pub async fn new_user(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    match admin(&app, &req).await {
        Ok(c) => new_user_form(&c, &app, StatusCode::OK, &UserDraft::default()),
        Err(resp) => resp,
    }
}

pub async fn create_user(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let current = match admin(&app, &req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let form = match checked_form(&app, &req, &mut payload, Some(current.secret.expose())).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let mut d = UserDraft {
        username: form.get("username").trim().to_string(),
        email: form.get("email").trim().to_string(),
        name: form.get("name").trim().to_string(),
        admin: form.get("admin") == "true",
        errors: Vec::new(),
    };
    let password = form.get("password").to_string();
    let (u, e, n, a) = (d.username.clone(), d.email.clone(), d.name.clone(), d.admin);
    let actor = super::actor_of(&app, &req, &current.user);
    // The password is hashed with no connection held, then one write.
    let pool_app = app.clone().into_inner();
    let made = crate::metrics::block(move || -> crate::error::Result<Result<User, String>> {
        let req = users::NewUserRequest {
            username: &u,
            email: &e,
            name: (!n.is_empty()).then_some(n.as_str()),
            password: None,
            is_admin: a,
        };
        if let Err(Error::Invalid(m)) = users::validate_new(&req) {
            return Ok(Err(m));
        }
        let hashed = if password.is_empty() {
            Ok(None)
        } else {
            users::hashed_password(&password).map(Some)
        };
        let result =
            hashed.and_then(|h| users::create_hashed(&mut *pool_app.conn()?, &actor, &req, h, crate::service::now()));
        match result {
            Ok(user) => Ok(Ok(user)),
            Err(Error::Invalid(m) | Error::Conflict(m)) => Ok(Err(m)),
            Err(other) => Err(other),
        }
    })
    .await;
    match made {
        Ok(Ok(Ok(user))) => see_other(&user_url(&user.username)),
        Ok(Ok(Err(m))) => {
            d.errors.push((user_field_of(&m), m));
            new_user_form(&current, &app, StatusCode::UNPROCESSABLE_ENTITY, &d)
        }
        Ok(Err(e)) => super::service_error(e),
        Err(e) => super::internal(e),
    }
}

fn path_user(req: &HttpRequest) -> String {
    req.match_info().get("username").unwrap_or_default().to_string()
}

struct Shown {
    user: User,
    impersonation: Vec<TokenRow>,
    new_token: Option<String>,
}

#[derive(Default)]
struct TokenDraft {
    name: String,
    expires_at: String,
    scopes: Vec<String>,
    error: Option<String>,
}

async fn show_user(
    app: &web::Data<App>,
    current: Current,
    username: String,
    status: StatusCode,
    draft: TokenDraft,
) -> HttpResponse {
    let (row, secret) = (current.row.clone(), current.secret.clone());
    let loaded = with_conn(app, move |conn, app| {
        let user = users::get(conn, &username)?;
        let impersonation = tokens::impersonation_of(conn, user.id)?;
        let new_token = svc::take_flash(conn, &app.key, &row, &secret, FlashKind::Impersonation(user.id))?;
        Ok(Shown {
            user,
            impersonation,
            new_token,
        })
    })
    .await;
    let s = match loaded {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let csrf = current.csrf(app);
    let settings = app.settings();
    let today = Utc::now().date_naive();
    let u = &s.user;
    let base = user_url(&u.username);
    let body = html! {
        h1 { (u.name) " (" (u.username) ")" }
        p { (u.email) " · " (u.state) @if u.is_admin { " · administrator" } " · two-factor " @if u.two_factor_enabled { "on" } @else { "off" } }
        div.actions {
            @if u.is_blocked() {
                form method="post" action={ (base) "/unblock" } { (layout::csrf_field(&csrf)) button type="submit" { "Unblock user" } }
            } @else {
                form method="post" action={ (base) "/block" } data-confirm={ "Block " (u.username) "? They are signed out and can no longer use their tokens." } {
                    (layout::csrf_field(&csrf)) button.danger type="submit" { "Block user" }
                }
            }
            @if u.two_factor_enabled {
                " "
                form method="post" action={ (base) "/disable_two_factor" } data-confirm={ "Turn off two-factor authentication for " (u.username) "?" } {
                    (layout::csrf_field(&csrf)) button.danger type="submit" { "Reset two-factor authentication" }
                }
            }
        }
        h2 { "Impersonation tokens" }
        @if let Some(t) = &s.new_token {
            section.alert.ok aria-labelledby="new-token-title" {
                h2 #new-token-title { "The new impersonation token" }
                div.new-token {
                    label.visually-hidden for="new-token" { "Token" }
                    input #new-token type="text" readonly value=(t) autocomplete="off";
                    button type="button" data-copy="new-token" { "Copy token" }
                }
                p { strong { "Make sure you save it - you won't be able to access it again." } }
            }
        }
        @if let Some(e) = &draft.error { (layout::alert("error", e)) }
        form.stack method="post" action={ (base) "/impersonation_tokens" } {
            (layout::csrf_field(&csrf))
            (field(&Field { name: "name", label: "Token name", value: &draft.name, required: true, maxlength: Some(255), ..Field::default() }))
            (field(&Field { name: "expires_at", label: "Expiration date", kind: "date", value: &draft.expires_at, ..Field::default() }))
            fieldset {
                legend { "Scopes" }
                @for sc in Scope::ALL {
                    @if sc != Scope::Sudo || u.is_admin {
                        div.scope {
                            input type="checkbox" name="scopes" value=(sc.as_str()) id={ "scope-" (sc.as_str()) }
                                checked[draft.scopes.iter().any(|x| x == sc.as_str())];
                            label for={ "scope-" (sc.as_str()) } { code { (sc.as_str()) } }
                        }
                    }
                }
            }
            div { button.primary type="submit" { "Create impersonation token" } }
        }
        table {
            thead { tr { th { "Name" } th { "Scopes" } th { "Expires" } th { "State" } th { "Action" } } }
            tbody {
                @for t in &s.impersonation {
                    @let active = tokens::is_active(t, today, settings.enforce_personal_access_token_expiration);
                    tr {
                        td data-label="Name" { (t.name) }
                        td data-label="Scopes" { (token::scopes_from_db(&t.scopes).into_iter().map(Scope::as_str).collect::<Vec<_>>().join(", ")) }
                        td data-label="Expires" { (t.expires_at.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "Never".into())) }
                        td data-label="State" { @if t.revoked { "Revoked" } @else if active { "Active" } @else { "Expired" } }
                        td.actions {
                            @if active {
                                form method="post" action={ (base) "/impersonation_tokens/" (t.id) "/revoke" }
                                    data-confirm={ "Revoke " (t.name) "?" } {
                                    (layout::csrf_field(&csrf))
                                    button.danger type="submit" aria-label={ "Revoke " (t.name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&current, app, &u.username, status, body)
}

pub async fn user(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    match admin(&app, &req).await {
        Ok(c) => show_user(&app, c, path_user(&req), StatusCode::OK, TokenDraft::default()).await,
        Err(resp) => resp,
    }
}

/// The checks of an admin POST: the administrator and the form.
async fn admin_post(
    app: &web::Data<App>,
    req: &HttpRequest,
    payload: &mut web::Payload,
) -> Result<(Current, Form), HttpResponse> {
    let (current, form) = super::signed_in_post(app, req, payload).await?;
    if !current.user.is_admin {
        return Err(crate::http::not_found().await);
    }
    Ok((current, form))
}

async fn user_action(
    app: web::Data<App>,
    req: HttpRequest,
    mut payload: web::Payload,
    act: fn(&mut crate::db::DbConn, &Actor, &str) -> crate::error::Result<()>,
) -> HttpResponse {
    let current = match admin_post(&app, &req, &mut payload).await {
        Ok((c, _)) => c,
        Err(resp) => return resp,
    };
    let actor = super::actor_of(&app, &req, &current.user);
    let username = path_user(&req);
    let u = username.clone();
    match with_conn(&app, move |conn, _| act(conn, &actor, &u)).await {
        Ok(()) => see_other(&user_url(&username)),
        Err(resp) => resp,
    }
}

pub async fn block(app: web::Data<App>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    user_action(app, req, payload, |conn, actor, u| {
        users::set_blocked(conn, actor, u, true, crate::service::now()).map(|_| ())
    })
    .await
}

pub async fn unblock(app: web::Data<App>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    user_action(app, req, payload, |conn, actor, u| {
        users::set_blocked(conn, actor, u, false, crate::service::now()).map(|_| ())
    })
    .await
}

pub async fn disable_two_factor(app: web::Data<App>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    user_action(app, req, payload, |conn, actor, u| {
        users::disable_two_factor(conn, actor, u, crate::service::now())
    })
    .await
}

pub async fn create_impersonation_token(
    app: web::Data<App>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> HttpResponse {
    let (current, form) = match admin_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let username = path_user(&req);
    let mut draft = TokenDraft {
        name: form.get("name").to_string(),
        expires_at: form.get("expires_at").trim().to_string(),
        scopes: form.all("scopes"),
        error: None,
    };
    let expires_at = match draft.expires_at.as_str() {
        "" => None,
        s => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                draft.error = Some(format!("Expiration date must be a date as YYYY-MM-DD, not {s:?}"));
                return show_user(&app, current, username, StatusCode::UNPROCESSABLE_ENTITY, draft).await;
            }
        },
    };
    let settings = app.settings();
    let (row, secret) = (current.row.clone(), current.secret.clone());
    let (u, name, scopes) = (username.clone(), draft.name.clone(), draft.scopes.clone());
    let actor = super::actor_of(&app, &req, &current.user);
    let made = with_conn(&app, move |conn, app| {
        let user = users::get(conn, &u)?;
        let req = tokens::NewTokenRequest {
            user: &user,
            name: &name,
            description: None,
            scopes: &scopes,
            expires_at,
            token: None,
            impersonation: true,
            actor: &actor,
        };
        match tokens::create(conn, &app.key, &settings, &req, crate::service::now()) {
            Ok((_, plain)) => {
                svc::set_flash(
                    conn,
                    &app.key,
                    &row,
                    &secret,
                    FlashKind::Impersonation(user.id),
                    plain.expose(),
                )?;
                Ok(Ok(()))
            }
            Err(Error::Invalid(m)) => Ok(Err(m)),
            Err(e) => Err(e),
        }
    })
    .await;
    match made {
        Ok(Ok(())) => see_other(&user_url(&username)),
        Ok(Err(m)) => {
            draft.error = Some(m);
            show_user(&app, current, username, StatusCode::UNPROCESSABLE_ENTITY, draft).await
        }
        Err(resp) => resp,
    }
}

pub async fn revoke_impersonation_token(
    app: web::Data<App>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> HttpResponse {
    let current = match admin_post(&app, &req, &mut payload).await {
        Ok((c, _)) => c,
        Err(resp) => return resp,
    };
    let username = path_user(&req);
    let Some(id) = req.match_info().get("id").and_then(|s| s.parse::<i64>().ok()) else {
        return super::refusal(StatusCode::NOT_FOUND, "No such token.");
    };
    let u = username.clone();
    let actor = super::actor_of(&app, &req, &current.user);
    match with_conn(&app, move |conn, _| {
        let user = users::get(conn, &u)?;
        tokens::get_impersonation(conn, user.id, id)?;
        tokens::revoke(conn, &actor, id, crate::service::now())
    })
    .await
    {
        Ok(_) => see_other(&user_url(&username)),
        Err(resp) => resp,
    }
}

/// The settings the page edits: (key, label, kind).
const EDITABLE: [(&str, &str, &str); 15] = [
    (
        "max_personal_access_token_lifetime",
        "Maximum lifetime of access tokens (days; empty: none)",
        "number",
    ),
    (
        "enforce_personal_access_token_expiration",
        "Expired access tokens stop working",
        "bool",
    ),
    (
        "password_authentication_enabled_for_git",
        "Passwords work for Git over HTTP (users without 2FA)",
        "bool",
    ),
    (
        "git_auth_ban_enabled",
        "Ban clients after repeated failed authentications",
        "bool",
    ),
    ("git_auth_ban_max_failures", "Failures that ban a client", "number"),
    ("git_auth_ban_window_seconds", "…within this many seconds", "number"),
    ("git_auth_ban_duration_seconds", "Ban duration (seconds)", "number"),
    ("max_login_attempts", "Failed passwords that lock an account", "number"),
    (
        "failed_login_attempts_unlock_period_in_minutes",
        "Account lock duration (minutes)",
        "number",
    ),
    (
        "session_expire_delay",
        "Sessions end after this many idle minutes",
        "number",
    ),
    (
        "token_expiry_notifications_enabled",
        "Mail owners about expiring and expired tokens",
        "bool",
    ),
    (
        "token_expiry_notify_days",
        "Days before expiry to mail (such as 60,30,7)",
        "text",
    ),
    (
        "secret_push_protection_enabled",
        "Refuse pushes that hold a live access token",
        "bool",
    ),
    (
        "revoke_leaked_tokens",
        "Revoke a token found in a push, in private repositories too",
        "bool",
    ),
    (
        "audit_events_retention_days",
        "Keep audit events for this many days",
        "number",
    ),
];

fn settings_page(
    current: &Current,
    app: &App,
    s: &Settings,
    status: StatusCode,
    error: Option<(&str, &str)>,
    saved: bool,
) -> HttpResponse {
    let csrf = current.csrf(app);
    let body = html! {
        h1 { "Settings" }
        @if saved { (layout::alert("ok", "The settings were saved.")) }
        @if let Some(("", m)) = error { (layout::alert("error", m)) }
        form.stack method="post" action=(SETTINGS) {
            (layout::csrf_field(&csrf))
            @for (key, label, kind) in EDITABLE {
                @let value = s.get(key).unwrap_or_default();
                @let err = error.filter(|(k, _)| *k == key).map(|(_, m)| m);
                @if kind == "bool" {
                    div.field {
                        input id={ "field-" (key) } type="checkbox" name=(key) value="true" checked[value == "true"];
                        " " label for={ "field-" (key) } { (label) }
                        @if let Some(e) = err { p.error id={ "field-" (key) "-error" } { (e) } }
                    }
                } @else {
                    (field(&Field { name: key, label, value: &value, error: err, inputmode: (kind == "number").then_some("numeric"), ..Field::default() }))
                }
            }
            div { button.primary type="submit" { "Save changes" } }
        }
    };
    page(current, app, "Settings", status, body)
}

pub async fn settings(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    match admin(&app, &req).await {
        Ok(c) => {
            let saved = req.query_string().contains("saved=1");
            settings_page(&c, &app, &app.settings(), StatusCode::OK, None, saved)
        }
        Err(resp) => resp,
    }
}

pub async fn update_settings(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, form) = match admin_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let changes: Vec<(&str, String)> = EDITABLE
        .iter()
        .map(|(key, _, kind)| {
            let v = if *kind == "bool" {
                (form.get(key) == "true").to_string()
            } else {
                form.get(key).trim().to_string()
            };
            (*key, v)
        })
        .collect();
    let c2 = changes.clone();
    let a = app.clone();
    let actor = super::actor_of(&app, &req, &current.user);
    match with_conn(&app, move |conn, _| {
        match Settings::store_many(conn, &actor, &c2, crate::service::now()) {
            Ok(s) => Ok(Ok(s)),
            Err(Error::Invalid(m)) => Ok(Err(m)),
            Err(e) => Err(e),
        }
    })
    .await
    {
        Ok(Ok(s)) => {
            a.settings_cache.put(s);
            see_other(&format!("{SETTINGS}?saved=1"))
        }
        Ok(Err(m)) => {
            // The refusal names its setting first.
            let key = EDITABLE
                .iter()
                .map(|(k, _, _)| *k)
                .find(|k| m.starts_with(k))
                .unwrap_or("");
            let mut shown = app.settings();
            for (k, v) in &changes {
                if *k != key {
                    let _ = shown.set(k, v);
                }
            }
            settings_page(
                &current,
                &app,
                &shown,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some((key, &m)),
                false,
            )
        }
        Err(resp) => resp,
    }
}
