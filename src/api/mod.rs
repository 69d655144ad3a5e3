//! The GitLab v4 REST API under `/api/v4` (spec section 4): the route
//! table, the request extractor every endpoint takes ([`ApiCall`]: body
//! read with a bound, parameters merged, credentials picked), and the one
//! way an endpoint runs ([`ApiCall::run`]: on a blocking thread, with a
//! database connection, the settings, authentication, the scope rule and
//! Sudo applied before the endpoint's own code).
//!
//! Endpoints return a [`Reply`]; a list is paged by the database
//! ([`Ctx::fetch`] over a `db::page::Listing`) and answered here with
//! GitLab's headers. Every refusal is an [`ApiError`] in GitLab's JSON
//! shapes.

mod audit;
pub mod auth;
mod entities;
pub mod error;
pub mod pagination;
pub mod params;
mod projects;
mod settings;
mod tokens;
mod users;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::{Method, StatusCode};
use actix_web::{guard, web, FromRequest, HttpRequest, HttpResponse, Resource};
use chrono::{DateTime, Utc};
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use serde_json::Value;

use crate::app::App;
use crate::db::page::Listing;
use crate::db::DbConn;
use crate::settings::Settings;
pub use auth::Policy;
use auth::{Caller, Credentials};
pub use error::ApiError;
use pagination::{KeysetOrder, PageInfo, Paging, RequestUrl};
use params::{Params, MAX_BODY};

pub type ApiResult = Result<HttpResponse, ApiError>;

/// Every API route. Each path is one resource whose other methods get 405;
/// anything else under `/api/v4` gets GitLab's 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v4")
            .service(resource("/version").route(get().to(settings::version)))
            .service(
                resource("/application/settings")
                    .route(get().to(settings::show))
                    .route(web::put().to(settings::update)),
            )
            .service(resource("/audit_events").route(get().to(audit::list)))
            .service(resource("/audit_events/{id}").route(get().to(audit::show)))
            .service(resource("/user").route(get().to(users::me)))
            .service(
                resource("/users")
                    .route(get().to(users::list))
                    .route(web::post().to(users::create)),
            )
            .service(
                resource("/users/{id}")
                    .route(get().to(users::show))
                    .route(web::put().to(users::update)),
            )
            .service(resource("/users/{id}/block").route(web::post().to(users::block)))
            .service(resource("/users/{id}/unblock").route(web::post().to(users::unblock)))
            .service(resource("/users/{user_id}/personal_access_tokens").route(web::post().to(tokens::create_for_user)))
            .service(
                resource("/users/{user_id}/impersonation_tokens")
                    .route(get().to(tokens::impersonation_list))
                    .route(web::post().to(tokens::impersonation_create)),
            )
            .service(
                resource("/users/{user_id}/impersonation_tokens/{impersonation_token_id}")
                    .route(get().to(tokens::impersonation_show))
                    .route(web::delete().to(tokens::impersonation_revoke)),
            )
            .service(resource("/personal_access_tokens").route(get().to(tokens::list)))
            .service(
                resource("/personal_access_tokens/self")
                    .route(get().to(tokens::show_self))
                    .route(web::delete().to(tokens::revoke_self)),
            )
            .service(resource("/personal_access_tokens/self/rotate").route(web::post().to(tokens::rotate_self)))
            .service(
                resource("/personal_access_tokens/{id}")
                    .route(get().to(tokens::show))
                    .route(web::delete().to(tokens::revoke)),
            )
            .service(resource("/personal_access_tokens/{id}/rotate").route(web::post().to(tokens::rotate)))
            .service(
                resource("/projects")
                    .route(get().to(projects::list))
                    .route(web::post().to(projects::create)),
            )
            .service(
                resource("/projects/{id}")
                    .route(get().to(projects::show))
                    .route(web::put().to(projects::update))
                    .route(web::delete().to(projects::delete)),
            )
            .service(
                resource("/projects/{id}/members")
                    .route(get().to(projects::members))
                    .route(web::post().to(projects::add_member)),
            )
            .service(resource("/projects/{id}/members/all").route(get().to(projects::members)))
            .service(resource("/projects/{id}/members/all/{user_id}").route(get().to(projects::member)))
            .service(
                resource("/projects/{id}/members/{user_id}")
                    .route(get().to(projects::member))
                    .route(web::put().to(projects::update_member))
                    .route(web::delete().to(projects::remove_member)),
            )
            .default_service(web::to(no_route)),
    );
}

fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// GET, and HEAD answered the same way (actix drops the body).
fn get() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

async fn no_route() -> ApiResult {
    Err(ApiError::NoRoute)
}

async fn method_not_allowed() -> ApiResult {
    Err(ApiError::MethodNotAllowed)
}

/// What an endpoint answers.
pub enum Reply {
    Json(StatusCode, Value),
    /// One page of a list, and what its headers say.
    Page {
        items: Vec<Value>,
        info: PageInfo,
    },
    /// No body (204).
    Empty(StatusCode),
}

impl Reply {
    pub fn ok(v: Value) -> Result<Reply, ApiError> {
        Ok(Reply::Json(StatusCode::OK, v))
    }

    pub fn created(v: Value) -> Result<Reply, ApiError> {
        Ok(Reply::Json(StatusCode::CREATED, v))
    }

    pub fn no_content() -> Result<Reply, ApiError> {
        Ok(Reply::Empty(StatusCode::NO_CONTENT))
    }

    /// A page ([`Ctx::fetch`]) of rows made JSON.
    pub fn page(items: Vec<Value>, info: PageInfo) -> Result<Reply, ApiError> {
        Ok(Reply::Page { items, info })
    }
}

/// One API request, read and ready to run: the extractor of every endpoint.
pub struct ApiCall {
    app: App,
    params: Params,
    creds: Credentials,
    url: RequestUrl,
    ip: Option<std::net::IpAddr>,
    read: bool,
    method: String,
    /// The path's `{name}` segments, percent-decoded.
    segments: Vec<(String, String)>,
    /// Who the request turns out to be, for the request log.
    who: crate::http::WhoSlot,
}

/// `%XX` escapes decoded (not `+`: it is a plus in a path). Refuses text
/// that is not UTF-8 once decoded.
fn unescape(s: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::bad_request("the path is not valid UTF-8"))
}

impl FromRequest for ApiCall {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<ApiCall, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let app = req
                .app_data::<web::Data<App>>()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the application state is missing")))?
                .get_ref()
                .clone();
            let declared = req
                .headers()
                .get(actix_web::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_BODY as u64) {
                return Err(ApiError::PayloadTooLarge);
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request(format!("the request body could not be read: {e}")))?;
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(ApiError::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            let mut params = Params::from_query(req.query_string());
            let content_type = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.trim().is_empty());
            params.merge_body(content_type, &body)?;
            let creds = Credentials::read(req.headers(), &params);
            let url = RequestUrl {
                base: match &app.config.external_url {
                    Some(u) => u.clone(),
                    None => crate::http::request_origin(&req, &app.settings()),
                },
                path: req.path().to_string(),
                query: req.query_string().to_string(),
            };
            let mut segments = Vec::new();
            for (name, value) in req.match_info().iter() {
                segments.push((name.to_string(), unescape(value)?));
            }
            let ip = crate::http::client_ip(&req, &app.settings());
            let who = crate::http::WhoSlot::of(&req);
            Ok(ApiCall {
                who,
                app,
                params,
                creds,
                url,
                ip,
                read: matches!(*req.method(), Method::GET | Method::HEAD),
                method: req.method().as_str().to_string(),
                segments,
            })
        })
    }
}

/// What an endpoint's code gets: a connection, the caller, the parameters.
pub struct Ctx<'a> {
    pub conn: &'a mut DbConn,
    pub app: &'a App,
    /// `None` only on endpoints open to anonymous callers.
    pub caller: Option<Caller>,
    pub params: &'a Params,
    pub settings: Settings,
    pub now: DateTime<Utc>,
    /// `scheme://host[:port]` as the client addressed us.
    pub base: &'a str,
    /// The client's address.
    pub ip: Option<std::net::IpAddr>,
    segments: &'a [(String, String)],
}

impl Ctx<'_> {
    /// The authenticated caller (401 for an anonymous one).
    pub fn me(&self) -> Result<&Caller, ApiError> {
        self.caller.as_ref().ok_or(ApiError::Unauthorized)
    }

    /// A `{name}` segment of the path, decoded.
    pub fn segment(&self, name: &str) -> &str {
        self.segments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// A numeric `{name}` segment: `{"error":"id is invalid"}` otherwise,
    /// as GitLab's typed parameters answer (a number too large to be an id
    /// is simply not found).
    pub fn id(&self, name: &str, not_found: &str) -> Result<i64, ApiError> {
        let s = self.segment(name);
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::InvalidParam(name.to_string()));
        }
        s.parse().map_err(|_| ApiError::not_found(not_found))
    }

    pub fn today(&self) -> chrono::NaiveDate {
        self.now.date_naive()
    }

    /// Who makes this request's changes, for their audit events: the
    /// acting user (the Sudo administrator named), from the client's
    /// address.
    pub fn actor(&self) -> Result<crate::service::audit::Actor, ApiError> {
        let me = self.me()?;
        let mut a = crate::service::audit::Actor::user(
            &me.user,
            crate::service::audit::Via::Api,
            self.ip.map(|i| i.to_string()),
        );
        a.sudo_by = me.sudo_by.as_ref().map(|u| u.username.clone());
        Ok(a)
    }

    /// The page of `list` the request asks for (`page`/`per_page`, or
    /// `pagination=keyset` where `keyset` allows it), paged by the
    /// database, and what its headers say.
    pub fn fetch<L: Listing>(&mut self, list: &L, keyset: KeysetOrder) -> Result<(Vec<L::Row>, PageInfo), ApiError> {
        match Paging::from_params(self.params, keyset)? {
            Paging::Offset(pagination) => {
                let page = list.page(self.conn, pagination.offset(), pagination.limit())?;
                Ok((
                    page.rows,
                    PageInfo::Offset {
                        pagination,
                        total: page.total,
                        more: page.more,
                    },
                ))
            }
            Paging::Keyset(keyset) => {
                let mut rows = list.rows(self.conn, 0, Some(keyset.per_page + 1))?;
                let more = rows.len() > usize::try_from(keyset.per_page).unwrap_or(usize::MAX);
                rows.truncate(usize::try_from(keyset.per_page).unwrap_or(usize::MAX));
                let next_after = if more { rows.last().map(L::row_id) } else { None };
                Ok((rows, PageInfo::Keyset { keyset, next_after }))
            }
        }
    }
}

impl ApiCall {
    /// Runs `f` as an authenticated caller under `policy`.
    pub async fn run<F>(self, policy: Policy, f: F) -> ApiResult
    where
        F: FnOnce(&mut Ctx) -> Result<Reply, ApiError> + Send + 'static,
    {
        self.run_as(policy, false, f).await
    }

    /// Runs `f`; a request without a token runs as anonymous.
    pub async fn run_public<F>(self, policy: Policy, f: F) -> ApiResult
    where
        F: FnOnce(&mut Ctx) -> Result<Reply, ApiError> + Send + 'static,
    {
        self.run_as(policy, true, f).await
    }

    async fn run_as<F>(self, policy: Policy, anonymous: bool, f: F) -> ApiResult
    where
        F: FnOnce(&mut Ctx) -> Result<Reply, ApiError> + Send + 'static,
    {
        let ApiCall {
            app,
            params,
            creds,
            url,
            ip,
            read,
            method,
            segments,
            who,
        } = self;
        let base = url.base.clone();
        let path = url.path.clone();
        let reply = crate::metrics::block(move || -> Result<Reply, ApiError> {
            let mut conn = app.conn()?;
            let conn: &mut DbConn = &mut conn;
            let settings = app.settings();
            let now = crate::service::now();
            let caller = if anonymous && !creds.has_token() && !creds.malformed && creds.sudo.is_none() {
                None
            } else {
                Some(auth::authenticate(
                    conn,
                    &app.key,
                    &settings,
                    &creds,
                    ip,
                    policy.accepted(read),
                    now,
                )?)
            };
            if let Some(c) = &caller {
                who.set(crate::http::Who {
                    user_id: Some(c.user.id),
                    token_id: Some(c.token.id),
                    sudo_by: c.sudo_by.as_ref().map(|u| u.id),
                });
            }
            let sudo = caller
                .as_ref()
                .and_then(|c| c.sudo_by.clone().map(|admin| (admin, c.user.clone(), c.token.id)));
            let mut ctx = Ctx {
                conn,
                app: &app,
                caller,
                params: &params,
                settings,
                now,
                base: &base,
                ip,
                segments: &segments,
            };
            let reply = f(&mut ctx)?;
            // Sudo's use is recorded once the request succeeded (a refused
            // request writes nothing); what it changed carries
            // `impersonated_by` in its own events already.
            if let Some((admin, user, token_id)) = sudo {
                if let Err(e) = auth::record_sudo(ctx.conn, &admin, &user, token_id, &method, &path, ip, now) {
                    tracing::warn!(user_id = user.id, "cannot record the use of Sudo: {e}");
                }
            }
            Ok(reply)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the API worker failed: {e}")))??;
        Ok(match reply {
            Reply::Json(status, v) => HttpResponse::build(status).json(v),
            Reply::Empty(status) => HttpResponse::build(status).finish(),
            Reply::Page { items, info } => {
                let mut r = HttpResponse::Ok();
                for (k, v) in info.headers(&url) {
                    r.insert_header((k, v));
                }
                r.json(Value::Array(items))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded_but_plus_stays() {
        assert_eq!(unescape("alice%2Frepo").unwrap(), "alice/repo");
        assert_eq!(unescape("a+b%2b").unwrap(), "a+b+");
        assert_eq!(unescape("100%").unwrap(), "100%");
        assert!(unescape("%ff").is_err());
    }
}
