//! The web pages (issue 14): server-rendered HTML (maud), working without
//! JavaScript, one embedded stylesheet and script. Handlers stay thin: the
//! rules are `service::sign_in`, `service::sessions`, `service::tokens`.
//!
//! Every page answer carries `Content-Security-Policy` (no inline script),
//! `X-Frame-Options: DENY` and `Referrer-Policy: same-origin`, and is never
//! cached. Every POST passes an `Origin`/`Referer` check and carries the
//! CSRF token of its session (before sign-in, of the pre-session cookie).
//! A session cookie never authenticates Git or the API: those read only
//! `Authorization` and tokens.

mod admin;
mod layout;
mod password;
mod projects;
mod sessions;
mod sign_in;
mod tokens;
mod two_factor;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::Markup;

use crate::app::App;
use crate::db::{session::SessionRow, user::User};
use crate::service::sessions::{self as svc, SessionSecret};

pub const SESSION_COOKIE: &str = "_gitpat_session";
pub const PRESESSION_COOKIE: &str = "_gitpat_csrf";
/// The CSRF field of every form (Rails' name).
pub const CSRF_FIELD: &str = "authenticity_token";
/// A form body larger than this is refused (413).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

pub const SIGN_IN: &str = "/users/sign_in";
pub const TWO_FACTOR: &str = "/users/two_factor";
pub const SIGN_OUT: &str = "/users/sign_out";
pub const TOKENS: &str = "/-/user_settings/personal_access_tokens";
pub const SESSIONS: &str = "/-/user_settings/active_sessions";
pub const TWO_FACTOR_AUTH: &str = "/-/user_settings/two_factor_auth";
pub const PASSWORD: &str = "/-/user_settings/password";
pub const PASSWORD_EDIT: &str = "/-/user_settings/password/edit";
pub const PROJECTS: &str = "/dashboard/projects";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(sign_in::root))
        .route(SIGN_IN, web::get().to(sign_in::form))
        .route(SIGN_IN, web::post().to(sign_in::submit))
        .route(TWO_FACTOR, web::get().to(sign_in::code_form))
        .route(TWO_FACTOR, web::post().to(sign_in::code_submit))
        .route(SIGN_OUT, web::post().to(sign_in::sign_out))
        .route(TOKENS, web::get().to(tokens::page))
        .route(TOKENS, web::post().to(tokens::create))
        .route(&format!("{TOKENS}/{{id}}/revoke"), web::post().to(tokens::revoke))
        .route(&format!("{TOKENS}/{{id}}/rotate"), web::post().to(tokens::rotate))
        .route(TWO_FACTOR_AUTH, web::get().to(two_factor::page))
        .route(TWO_FACTOR_AUTH, web::post().to(two_factor::enable))
        .route(
            &format!("{TWO_FACTOR_AUTH}/codes"),
            web::post().to(two_factor::regenerate),
        )
        .route(
            &format!("{TWO_FACTOR_AUTH}/disable"),
            web::post().to(two_factor::disable),
        )
        .route(PASSWORD_EDIT, web::get().to(password::page))
        .route(PASSWORD, web::post().to(password::update))
        .route(SESSIONS, web::get().to(sessions::page))
        .route(&format!("{SESSIONS}/{{id}}/revoke"), web::post().to(sessions::revoke))
        .route(layout::CSS_PATH, web::get().to(layout::css))
        .route(layout::JS_PATH, web::get().to(layout::js))
        .route(PROJECTS, web::get().to(projects::list))
        .route("/admin", web::get().to(admin::index))
        .route(admin::USERS, web::get().to(admin::users_list))
        .route(admin::USERS, web::post().to(admin::create_user))
        .route(&format!("{}/new", admin::USERS), web::get().to(admin::new_user))
        .route(&format!("{}/{{username}}", admin::USERS), web::get().to(admin::user))
        .route(
            &format!("{}/{{username}}/block", admin::USERS),
            web::post().to(admin::block),
        )
        .route(
            &format!("{}/{{username}}/unblock", admin::USERS),
            web::post().to(admin::unblock),
        )
        .route(
            &format!("{}/{{username}}/disable_two_factor", admin::USERS),
            web::post().to(admin::disable_two_factor),
        )
        .route(
            &format!("{}/{{username}}/impersonation_tokens", admin::USERS),
            web::post().to(admin::create_impersonation_token),
        )
        .route(
            &format!("{}/{{username}}/impersonation_tokens/{{id}}/revoke", admin::USERS),
            web::post().to(admin::revoke_impersonation_token),
        )
        .route(admin::SETTINGS, web::get().to(admin::settings))
        .route(admin::SETTINGS, web::post().to(admin::update_settings))
        // Last: a project's page at its own path (anything else there is
        // the plain 404).
        .service(
            web::resource("/{path:.+}")
                .route(web::get().to(projects::show))
                .default_service(web::to(crate::http::not_found)),
        );
}

/// The headers of every page.
fn secure(b: &mut actix_web::HttpResponseBuilder) -> &mut actix_web::HttpResponseBuilder {
    b.insert_header((
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ))
    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
    .insert_header((header::REFERRER_POLICY, "same-origin"))
    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
    .insert_header((header::CACHE_CONTROL, "no-store"))
}

/// A page.
fn html(status: StatusCode, page: Markup) -> HttpResponse {
    secure(&mut HttpResponse::build(status))
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

/// 303 to `to` (after a POST, or to the sign-in page).
fn see_other(to: &str) -> HttpResponse {
    secure(&mut HttpResponse::SeeOther())
        .insert_header((header::LOCATION, to))
        .finish()
}

/// A refusal that is not a form error: a page with one sentence.
fn refusal(status: StatusCode, message: &str) -> HttpResponse {
    html(status, layout::message_page(status, message))
}

fn internal(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!("web page failed: {e}");
    refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side; the error is in the server's log.",
    )
}

/// A service error on a page: its status and sentence.
fn service_error(e: crate::error::Error) -> HttpResponse {
    use crate::error::Error;
    match e {
        Error::Invalid(m) => refusal(StatusCode::UNPROCESSABLE_ENTITY, &m),
        Error::Unauthorized(m) => refusal(StatusCode::UNAUTHORIZED, &m),
        Error::Forbidden(m) => refusal(StatusCode::FORBIDDEN, &m),
        Error::NotFound(m) => refusal(StatusCode::NOT_FOUND, &m),
        Error::Conflict(m) => refusal(StatusCode::CONFLICT, &m),
        Error::Internal(e) => internal(format!("{e:#}")),
    }
}

/// Runs blocking service work on the blocking pool with a connection.
async fn with_conn<T: Send + 'static>(
    app: &web::Data<App>,
    f: impl FnOnce(&mut crate::db::DbConn, &App) -> crate::error::Result<T> + Send + 'static,
) -> Result<T, HttpResponse> {
    let app = app.clone().into_inner();
    match crate::metrics::block(move || {
        let mut conn = app.conn()?;
        f(&mut conn, &app)
    })
    .await
    {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(service_error(e)),
        Err(e) => Err(internal(e)),
    }
}

fn cookie_secure(app: &App) -> bool {
    app.config.tls.is_some()
        || app
            .config
            .external_url
            .as_deref()
            .is_some_and(|u| u.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")))
}

/// The session cookie: `HttpOnly`, `SameSite=Lax`, `Secure` behind https.
fn session_cookie(app: &App, secret: &SessionSecret) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, secret.expose().to_string())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(cookie_secure(app))
        .finish()
}

fn expired_cookie(app: &App, name: &'static str) -> Cookie<'static> {
    let mut c = Cookie::build(name, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(cookie_secure(app))
        .finish();
    c.make_removal();
    c
}

/// The signed-in (or, for the second step, pending) session of a request.
pub struct Current {
    pub row: SessionRow,
    pub user: User,
    pub secret: SessionSecret,
}

impl Current {
    pub fn csrf(&self, app: &App) -> String {
        svc::csrf_token(&app.key, self.secret.expose())
    }
}

/// The session the request's cookie names, pending or not.
async fn session_of(app: &web::Data<App>, req: &HttpRequest) -> Result<Option<Current>, HttpResponse> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let secret = SessionSecret::from_cookie(cookie.value());
    let settings = app.settings();
    let s = secret.clone();
    let found = with_conn(app, move |conn, app| {
        svc::resolve(conn, &app.key, &settings, &s, crate::service::now())
    })
    .await?;
    Ok(found.map(|(row, user)| {
        let slot = crate::http::WhoSlot::of(req);
        slot.set(crate::http::Who {
            user_id: Some(user.id),
            ..Default::default()
        });
        Current { row, user, secret }
    }))
}

/// The signed-in session, or the answer that sends the browser to sign in.
async fn signed_in(app: &web::Data<App>, req: &HttpRequest) -> Result<Current, HttpResponse> {
    match session_of(app, req).await? {
        Some(c) if !c.row.two_factor_pending => Ok(c),
        _ => Err(see_other(SIGN_IN)),
    }
}

/// A form's body, read on the async side under the same pace and shared
/// budget as other small request bodies, at most [`MAX_FORM_BYTES`].
async fn read_form(app: &App, payload: &mut web::Payload) -> Result<Vec<u8>, HttpResponse> {
    use crate::http::body::{read_capped, ReadError};
    match read_capped(
        payload,
        MAX_FORM_BYTES as u64,
        app.config.body_idle_timeout,
        &app.upload_budget,
    )
    .await
    {
        Ok((body, _permit)) => Ok(body),
        Err(ReadError::TooLarge(m)) => Err(refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("This form is too large: {m}."),
        )),
        Err(ReadError::Bad(m)) => Err(refusal(
            StatusCode::BAD_REQUEST,
            &format!("The form did not arrive whole: {m}."),
        )),
        Err(ReadError::Busy) => {
            let mut r = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy; try again in a moment.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            Err(r)
        }
    }
}

/// The signed-in session and the checked form of a POST, or the answer
/// that refuses it (sign in first; forged).
async fn signed_in_post(
    app: &web::Data<App>,
    req: &HttpRequest,
    payload: &mut web::Payload,
) -> Result<(Current, Form), HttpResponse> {
    let current = signed_in(app, req).await?;
    let form = checked_form(app, req, payload, Some(current.secret.expose())).await?;
    Ok((current, form))
}

/// A decoded `application/x-www-form-urlencoded` body.
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name` (checkboxes).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Is the POST from one of our own pages? Its `Origin` (or, without one,
/// its `Referer`) must be this server: the external URL's origin when set,
/// else the host the request was sent to (`Host`, or HTTP/2's
/// `:authority`).
fn same_origin(app: &App, req: &HttpRequest) -> bool {
    let origin_of = |url: &str| -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split('/').next()?;
        Some(format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            authority.to_ascii_lowercase()
        ))
    };
    let claimed = match req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) if o != "null" => origin_of(o),
        Some(_) => None,
        None => req
            .headers()
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(origin_of),
    };
    let Some(claimed) = claimed else { return false };
    match app.config.external_url.as_deref().and_then(origin_of) {
        Some(ours) => claimed == ours,
        None => {
            let host = crate::http::request_host(req);
            host.is_some_and(|h| {
                let h = h.to_ascii_lowercase();
                claimed == format!("http://{h}") || claimed == format!("https://{h}")
            })
        }
    }
}

pub const FORGED: &str =
    "This form was not sent from this site's own page, or it has expired. Go back, reload the page and try again.";

/// The checks of every POST: the origin (before the body is read), the
/// body within its cap, and the CSRF token of `basis`. The form, or the
/// refusal (nothing done).
async fn checked_form(
    app: &App,
    req: &HttpRequest,
    payload: &mut web::Payload,
    basis: Option<&str>,
) -> Result<Form, HttpResponse> {
    if !same_origin(app, req) {
        return Err(refusal(StatusCode::FORBIDDEN, FORGED));
    }
    let form = Form::parse(&read_form(app, payload).await?);
    match basis {
        Some(b) if svc::csrf_ok(&app.key, b, form.get(CSRF_FIELD)) => Ok(form),
        _ => Err(refusal(StatusCode::FORBIDDEN, FORGED)),
    }
}

/// The current password asked again by a settings page: `Ok(Err(why))`
/// when it is refused (wrong, or the account locked or client banned).
async fn reauthenticate(
    app: &web::Data<App>,
    req: &HttpRequest,
    current: &Current,
    password: String,
) -> Result<Result<(), String>, HttpResponse> {
    let settings = app.settings();
    let ip = crate::http::client_ip(req, &settings);
    let user = current.user.clone();
    let a = app.clone().into_inner();
    match crate::metrics::block(move || {
        crate::service::sign_in::reauthenticate(
            crate::service::Conns::Pool(&a.pool),
            &settings,
            &user,
            &password,
            ip,
            crate::service::now(),
        )
    })
    .await
    {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(service_error(e)),
        Err(e) => Err(internal(e)),
    }
}

/// Who makes a page's change, for its audit event: the signed-in `user`,
/// from the request's client address.
fn actor_of(app: &App, req: &HttpRequest, user: &User) -> crate::service::audit::Actor {
    let ip = crate::http::client_ip(req, &app.settings()).map(|i| i.to_string());
    crate::service::audit::Actor::user(user, crate::service::audit::Via::Web, ip)
}

/// The client of a request, for its session's record.
fn client(req: &HttpRequest, app: &App) -> svc::Client {
    svc::Client {
        ip: crate::http::client_ip(req, &app.settings()).map(|i| i.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}
