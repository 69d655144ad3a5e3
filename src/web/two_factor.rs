//! **Two-factor authentication** (`/-/user_settings/two_factor_auth`):
//! enrol with a QR code (SVG made here from the `otpauth://` URI, with the
//! secret for manual entry), confirm with a code and the current
//! password, then the recovery codes, shown once; disable with password
//! and code; regenerate the recovery codes with the password.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup, PreEscaped};

use super::layout::{self, field, Field};
use super::{html, see_other, signed_in, signed_in_post, with_conn, Current, TWO_FACTOR_AUTH};
use crate::app::App;
use crate::auth::totp;
use crate::service::sessions::{self as svc, FlashKind};
use crate::service::two_factor;

/// The QR code of `uri`, as an inline SVG element.
fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // The renderer writes a whole document: the element alone goes inline.
    svg.find("<svg").map(|at| {
        svg[at..].replacen(
            "<svg",
            "<svg role=\"img\" aria-label=\"QR code of your two-factor secret\"",
            1,
        )
    })
}

/// The secret in groups of four, for typing into an app by hand.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Default)]
struct Errors {
    alert: Option<String>,
    code: Option<String>,
    password: Option<String>,
}

fn enrol_page(current: &Current, csrf: &str, secret: &str, uri: &str, e: &Errors) -> Markup {
    html! {
        h1 { "Two-factor authentication" }
        p { "Increase your account's security: once it is on, signing in asks for a code from an app on your phone, and Git over HTTP takes personal access tokens only." }
        @if let Some(a) = &e.alert { (layout::alert("error", a)) }
        h2 { "1. Scan this QR code with your authenticator app" }
        @if let Some(svg) = qr_svg(uri) { div.qr { (PreEscaped(svg)) } }
        p { "Can't scan it? Enter this key by hand (time-based, 6 digits, 30 seconds):" }
        p { code #otp-secret { (grouped(secret)) } }
        h2 { "2. Confirm with a code from the app and your password" }
        form.stack method="post" action=(TWO_FACTOR_AUTH) {
            (layout::csrf_field(csrf))
            (field(&Field { name: "pin_code", label: "Pin code", error: e.code.as_deref(), required: true,
                autocomplete: "one-time-code", inputmode: Some("numeric"), maxlength: Some(16), ..Field::default() }))
            (field(&Field { name: "current_password", label: "Current password", kind: "password",
                error: e.password.as_deref(), required: true, autocomplete: "current-password", ..Field::default() }))
            div { button.primary type="submit" { "Register with two-factor app" } }
        }
        p.muted { "Signed in as " (current.user.username) "." }
    }
}

fn enabled_page(csrf: &str, codes: Option<&[String]>, left: i64, e: &Errors) -> Markup {
    html! {
        h1 { "Two-factor authentication" }
        @if let Some(a) = &e.alert { (layout::alert("error", a)) }
        @if let Some(codes) = codes {
            section.alert.ok aria-labelledby="codes-title" {
                h2 #codes-title { "Your recovery codes" }
                p { "Each code signs you in once if you lose your device. "
                    strong { "Save them somewhere safe now: they are not shown again." } }
                ol #recovery-codes { @for c in codes { li { code { (c) } } } }
                textarea #recovery-codes-text.visually-hidden readonly { (codes.join("\n")) }
                button type="button" data-copy="recovery-codes-text" { "Copy codes" }
            }
        }
        p.alert.ok #two-factor-status { "Two-factor authentication is on. " (left) " unused recovery codes left." }
        h2 { "Regenerate recovery codes" }
        p { "New codes replace the old ones, which stop working." }
        form.stack method="post" action={ (TWO_FACTOR_AUTH) "/codes" } {
            (layout::csrf_field(csrf))
            (field(&Field { name: "current_password", label: "Current password", kind: "password",
                error: e.password.as_deref(), required: true, autocomplete: "current-password", ..Field::default() }))
            div { button type="submit" { "Regenerate recovery codes" } }
        }
        h2 { "Disable two-factor authentication" }
        form.stack method="post" action={ (TWO_FACTOR_AUTH) "/disable" }
            data-confirm="Disable two-factor authentication? Your account will be less secure." {
            (layout::csrf_field(csrf))
            (field(&Field { name: "pin_code", label: "Pin code (or a recovery code)", error: e.code.as_deref(), required: true,
                autocomplete: "one-time-code", maxlength: Some(32), ..Field::default() }))
            (field(&Field { name: "disable_password", label: "Current password", kind: "password",
                required: true, autocomplete: "current-password", ..Field::default() }))
            div { button.danger type="submit" { "Disable two-factor authentication" } }
        }
    }
}

/// Renders the page as it stands for `current`'s user.
async fn respond(app: &web::Data<App>, current: Current, status: StatusCode, e: Errors) -> HttpResponse {
    // A refused confirmation shows the same secret again; a fresh visit
    // gets a new one.
    let fresh = status == StatusCode::OK;
    let (user, row, secret) = (current.user.clone(), current.row.clone(), current.secret.clone());
    let state = with_conn(app, move |conn, app| {
        if user.two_factor_enabled {
            let codes = svc::take_flash(conn, &app.key, &row, &secret, FlashKind::RecoveryCodes)?;
            Ok(Err((codes, two_factor::recovery_codes_left(conn, &user)?)))
        } else {
            let s = match (two_factor::secret_of(&app.key, &user)?, fresh) {
                (Some(s), false) => s,
                _ => two_factor::begin(conn, &app.key, &user)?,
            };
            let uri = totp::provisioning_uri(&s, &user.username)?;
            Ok(Ok((s, uri)))
        }
    })
    .await;
    let csrf = current.csrf(app);
    let body = match state {
        Ok(Ok((secret, uri))) => enrol_page(&current, &csrf, &secret, &uri, &e),
        Ok(Err((codes, left))) => {
            let codes: Option<Vec<String>> = codes.map(|c| c.lines().map(str::to_string).collect());
            enabled_page(&csrf, codes.as_deref(), left, &e)
        }
        Err(resp) => return resp,
    };
    html(
        status,
        layout::page("Two-factor authentication", Some((&current, &csrf)), body),
    )
}

pub async fn page(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    match signed_in(&app, &req).await {
        Ok(c) => respond(&app, c, StatusCode::OK, Errors::default()).await,
        Err(resp) => resp,
    }
}

/// Keeps `codes` for the next page and sends the browser there.
async fn show_codes(app: &web::Data<App>, current: &Current, codes: Vec<String>) -> HttpResponse {
    let (row, secret) = (current.row.clone(), current.secret.clone());
    match with_conn(app, move |conn, app| {
        svc::set_flash(
            conn,
            &app.key,
            &row,
            &secret,
            FlashKind::RecoveryCodes,
            &codes.join("\n"),
        )
    })
    .await
    {
        Ok(()) => see_other(TWO_FACTOR_AUTH),
        Err(resp) => resp,
    }
}

pub async fn enable(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, form) = match signed_in_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if current.user.two_factor_enabled {
        return see_other(TWO_FACTOR_AUTH);
    }
    match super::reauthenticate(&app, &req, &current, form.get("current_password").to_string()).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            let e = Errors {
                password: Some(why),
                ..Errors::default()
            };
            return respond(&app, current, StatusCode::UNPROCESSABLE_ENTITY, e).await;
        }
        Err(resp) => return resp,
    }
    let (user, code) = (current.user.clone(), form.get("pin_code").to_string());
    let actor = super::actor_of(&app, &req, &current.user);
    match with_conn(&app, move |conn, app| {
        two_factor::confirm(conn, &app.key, &actor, &user, &code, crate::service::now())
    })
    .await
    {
        Ok(Ok(codes)) => show_codes(&app, &current, codes).await,
        Ok(Err(message)) => {
            let e = Errors {
                code: Some(message),
                ..Errors::default()
            };
            respond(&app, current, StatusCode::UNPROCESSABLE_ENTITY, e).await
        }
        Err(resp) => resp,
    }
}

pub async fn regenerate(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, form) = match signed_in_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if !current.user.two_factor_enabled {
        return see_other(TWO_FACTOR_AUTH);
    }
    match super::reauthenticate(&app, &req, &current, form.get("current_password").to_string()).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            let e = Errors {
                password: Some(why),
                ..Errors::default()
            };
            return respond(&app, current, StatusCode::UNPROCESSABLE_ENTITY, e).await;
        }
        Err(resp) => return resp,
    }
    let user = current.user.clone();
    match with_conn(&app, move |conn, app| {
        two_factor::new_recovery_codes(conn, &app.key, &user)
    })
    .await
    {
        Ok(codes) => show_codes(&app, &current, codes).await,
        Err(resp) => resp,
    }
}

pub async fn disable(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, form) = match signed_in_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if !current.user.two_factor_enabled {
        return see_other(TWO_FACTOR_AUTH);
    }
    match super::reauthenticate(&app, &req, &current, form.get("disable_password").to_string()).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            let e = Errors {
                alert: Some(why),
                ..Errors::default()
            };
            return respond(&app, current, StatusCode::UNPROCESSABLE_ENTITY, e).await;
        }
        Err(resp) => return resp,
    }
    let settings = app.settings();
    let ip = crate::http::client_ip(&req, &settings);
    let (user, code) = (current.user.clone(), form.get("pin_code").to_string());
    let actor = super::actor_of(&app, &req, &current.user);
    let done = with_conn(&app, move |conn, app| {
        let now = crate::service::now();
        match crate::service::sign_in::with_code(conn, &app.key, &settings, &user, &code, ip, now)? {
            Ok(()) => two_factor::disable(conn, &actor, &user, now).map(Ok),
            Err(m) => Ok(Err(m)),
        }
    })
    .await;
    match done {
        Ok(Ok(())) => see_other(TWO_FACTOR_AUTH),
        Ok(Err(message)) => {
            let e = Errors {
                code: Some(message),
                ..Errors::default()
            };
            respond(&app, current, StatusCode::UNPROCESSABLE_ENTITY, e).await
        }
        Err(resp) => resp,
    }
}
