//! Signing in and out: `/users/sign_in` (username or e-mail, password),
//! `/users/two_factor` (the code, for a 2FA user), `/users/sign_out`.

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::layout::{self, field, Field};
use super::{checked_form, client, html, see_other, session_of, with_conn, Current, PRESESSION_COOKIE, TOKENS};
use crate::app::App;
use crate::service::sessions::{self as svc, SessionSecret};
use crate::service::sign_in::{self, Outcome};
use crate::service::Conns;

/// `/`: the tokens page when signed in, else the sign-in page.
pub async fn root(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    match session_of(&app, &req).await {
        Ok(Some(c)) if !c.row.two_factor_pending => see_other(TOKENS),
        Ok(_) => see_other(super::SIGN_IN),
        Err(resp) => resp,
    }
}

/// The pre-session cookie's value (its CSRF basis), made when missing.
fn presession(req: &HttpRequest) -> (String, bool) {
    match req.cookie(PRESESSION_COOKIE) {
        Some(c) if c.value().len() == 43 => (c.value().to_string(), false),
        _ => match SessionSecret::generate() {
            Ok(s) => (s.expose().to_string(), true),
            Err(_) => (String::new(), true),
        },
    }
}

/// Said on the sign-in page after a password change.
pub const PASSWORD_CHANGED: &str =
    "Your password was changed, and you were signed out everywhere. Sign in with your new password.";

fn sign_in_page(app: &App, basis: &str, login: &str, error: Option<&str>) -> Markup {
    sign_in_page_with(app, basis, login, error, None)
}

fn sign_in_page_with(app: &App, basis: &str, login: &str, error: Option<&str>, notice: Option<&str>) -> Markup {
    let csrf = svc::csrf_token(&app.key, basis);
    layout::page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(n) = notice { (layout::alert("ok", n)) }
            @if let Some(e) = error { (layout::alert("error", e)) }
            form.stack method="post" action=(super::SIGN_IN) {
                (layout::csrf_field(&csrf))
                (field(&Field { name: "login", label: "Username or primary email", value: login,
                    required: true, autocomplete: "username", autofocus: login.is_empty(), ..Field::default() }))
                (field(&Field { name: "password", label: "Password", kind: "password",
                    required: true, autocomplete: "current-password", autofocus: !login.is_empty(), ..Field::default() }))
                div { button.primary type="submit" { "Sign in" } }
            }
        },
    )
}

fn with_presession(app: &App, mut resp: HttpResponse, basis: &str, fresh: bool) -> HttpResponse {
    if fresh {
        let c = actix_web::cookie::Cookie::build(PRESESSION_COOKIE, basis.to_string())
            .path("/users")
            .http_only(true)
            .same_site(actix_web::cookie::SameSite::Lax)
            .secure(super::cookie_secure(app))
            .finish();
        let _ = resp.add_cookie(&c);
    }
    resp
}

pub async fn form(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    if let Ok(Some(c)) = session_of(&app, &req).await {
        if !c.row.two_factor_pending {
            return see_other(TOKENS);
        }
    }
    let (basis, fresh) = presession(&req);
    let notice = form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(k, v)| k == "password_changed" && v == "1")
        .then_some(PASSWORD_CHANGED);
    let resp = html(StatusCode::OK, sign_in_page_with(&app, &basis, "", None, notice));
    with_presession(&app, resp, &basis, fresh)
}

pub async fn submit(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let basis = req.cookie(PRESESSION_COOKIE).map(|c| c.value().to_string());
    let form = match checked_form(&app, &req, &mut payload, basis.as_deref()).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let basis = basis.unwrap_or_default();
    let login = form.get("login").trim().to_string();
    let password = form.get("password").to_string();
    if login.is_empty() || password.is_empty() {
        return html(
            StatusCode::UNPROCESSABLE_ENTITY,
            sign_in_page(
                &app,
                &basis,
                &login,
                Some("Enter your username or e-mail and your password."),
            ),
        );
    }
    let settings = app.settings();
    let ip = crate::http::client_ip(&req, &settings);
    let who = client(&req, &app);
    let a = app.clone().into_inner();
    let l = login.clone();
    // Signing in ends the session the browser had (a pending one too).
    let old = req
        .cookie(super::SESSION_COOKIE)
        .map(|c| SessionSecret::from_cookie(c.value()));
    let outcome = crate::metrics::block(move || -> crate::error::Result<_> {
        let now = crate::service::now();
        if let Some(old) = &old {
            svc::sign_out(&mut *a.conn()?, &a.key, old)?;
        }
        let outcome = sign_in::with_password(Conns::Pool(&a.pool), &settings, &l, &password, ip, now)?;
        let (user, pending) = match outcome {
            Outcome::SignedIn(u) => (u, false),
            Outcome::TwoFactor(u) => (u, true),
            Outcome::Refused(m) => return Ok(Err(m)),
        };
        let mut conn = a.conn()?;
        let (_, secret) = svc::start(&mut conn, &a.key, &settings, &user, pending, &who, now)?;
        Ok(Ok((secret, pending)))
    })
    .await;
    match outcome {
        Ok(Ok(Ok((secret, pending)))) => {
            let mut resp = see_other(if pending { super::TWO_FACTOR } else { TOKENS });
            let _ = resp.add_cookie(&super::session_cookie(&app, &secret));
            let _ = resp.add_removal_cookie(
                &actix_web::cookie::Cookie::build(PRESESSION_COOKIE, "")
                    .path("/users")
                    .finish(),
            );
            resp
        }
        Ok(Ok(Err(message))) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            sign_in_page(&app, &basis, &login, Some(&message)),
        ),
        Ok(Err(e)) => super::service_error(e),
        Err(e) => super::internal(e),
    }
}

fn code_page(app: &App, current: &Current, error: Option<&str>) -> Markup {
    let csrf = current.csrf(app);
    layout::page(
        "Two-factor authentication",
        None,
        html! {
            h1 { "Two-factor authentication" }
            @if let Some(e) = error { (layout::alert("error", e)) }
            form.stack method="post" action=(super::TWO_FACTOR) {
                (layout::csrf_field(&csrf))
                (field(&Field { name: "otp_attempt", label: "Two-factor authentication code",
                    hint: Some("Enter the 6-digit code from your authenticator app, or one of your recovery codes."),
                    error, required: true, autocomplete: "one-time-code", autofocus: true,
                    inputmode: Some("numeric"), maxlength: Some(16), ..Field::default() }))
                div { button.primary type="submit" { "Verify code" } }
            }
            p { a href=(super::SIGN_IN) { "Sign in as someone else" } }
        },
    )
}

/// The pending session of a request, or back to the first step.
async fn pending(app: &web::Data<App>, req: &HttpRequest) -> Result<Current, HttpResponse> {
    match session_of(app, req).await? {
        Some(c) if c.row.two_factor_pending => Ok(c),
        Some(_) => Err(see_other(TOKENS)),
        None => Err(see_other(super::SIGN_IN)),
    }
}

pub async fn code_form(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    match pending(&app, &req).await {
        Ok(c) => html(StatusCode::OK, code_page(&app, &c, None)),
        Err(resp) => resp,
    }
}

pub async fn code_submit(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let current = match pending(&app, &req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let form = match checked_form(&app, &req, &mut payload, Some(current.secret.expose())).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let code = form.get("otp_attempt").to_string();
    let settings = app.settings();
    let ip = crate::http::client_ip(&req, &settings);
    let (row, user) = (current.row.clone(), current.user.clone());
    let result = with_conn(&app, move |conn, app| {
        let now = crate::service::now();
        match sign_in::with_code(conn, &app.key, &settings, &user, &code, ip, now)? {
            Ok(()) => Ok(Ok(svc::complete(conn, &app.key, &settings, &row, now)?)),
            Err(m) => Ok(Err(m)),
        }
    })
    .await;
    match result {
        Ok(Ok(secret)) => {
            let mut resp = see_other(TOKENS);
            let _ = resp.add_cookie(&super::session_cookie(&app, &secret));
            resp
        }
        Ok(Err(message)) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            code_page(&app, &current, Some(&message)),
        ),
        Err(resp) => resp,
    }
}

pub async fn sign_out(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let Some(current) = session_of(&app, &req).await.ok().flatten() else {
        return see_other(super::SIGN_IN);
    };
    if let Err(resp) = checked_form(&app, &req, &mut payload, Some(current.secret.expose())).await {
        return resp;
    }
    let secret = current.secret.clone();
    if let Err(resp) = with_conn(&app, move |conn, app| svc::sign_out(conn, &app.key, &secret)).await {
        return resp;
    }
    let mut resp = see_other(super::SIGN_IN);
    let _ = resp.add_cookie(&super::expired_cookie(&app, super::SESSION_COOKIE));
    resp
}
