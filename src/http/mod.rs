//! The HTTP server: the route table, request logging with secrets redacted,
//! and the health endpoints.

pub mod body;
pub mod git;
pub mod pack_out;
pub mod receive;
pub mod request_log;
pub mod server;

use std::net::SocketAddr;

use actix_web::dev::Server;
use actix_web::{web, HttpMessage, HttpResponse};
use anyhow::Context;
use diesel::connection::SimpleConnection;

use crate::app::App;

/// Every route, in one place; anything else is a plain-text 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(configure_monitoring)
        .configure(crate::api::configure)
        .configure(git::configure)
        .configure(crate::web::configure)
        .default_service(web::to(not_found));
}

/// The health checks (and the metrics), also served alone on
/// `metrics_listen`.
pub fn configure_monitoring(cfg: &mut web::ServiceConfig) {
    cfg.route("/-/liveness", web::get().to(liveness))
        .route("/-/readiness", web::get().to(readiness))
        .route("/-/metrics", web::get().to(metrics));
}

/// Marks the app of the `metrics_listen` listener, whose `/-/metrics`
/// answers anyone who reaches it.
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener;

/// `/-/metrics`: on the main listener only to `metrics_allowlist`
/// (others get the 404 of a path that is not there, as GitLab's
/// monitoring allowlist answers); on `metrics_listen`, to anyone.
async fn metrics(app: web::Data<App>, req: actix_web::HttpRequest) -> HttpResponse {
    if req.app_data::<web::Data<MetricsListener>>().is_none() {
        let ip = client_ip(&req, &app.settings());
        if !ip.is_some_and(|ip| app.config.metrics_allowlist.iter().any(|c| c.contains(ip))) {
            return not_found().await;
        }
    }
    let app = app.into_inner();
    // The pool's state always; the bans when a connection comes within a
    // second (a scrape still answers, with the last count, when the pool
    // is exhausted: that is when it matters).
    let read = crate::metrics::block(move || {
        let state = app.pool.state();
        let bans = app
            .pool
            .get_timeout(std::time::Duration::from_secs(1))
            .map_err(anyhow::Error::from)
            .and_then(|mut conn| {
                crate::db::auth_failure::locked_count(&mut conn, crate::service::now().naive_utc())
                    .map_err(anyhow::Error::from)
            });
        let bans = match bans {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("metrics: the bans were not counted: {e:#}");
                None
            }
        };
        (bans, state.connections - state.idle_connections, state.idle_connections)
    })
    .await;
    let (bans, in_use, idle) = match read {
        Ok(r) => r,
        Err(_) => return HttpResponse::ServiceUnavailable().finish(),
    };
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(crate::metrics::get().render(bans, i64::from(in_use), i64::from(idle)))
}

/// Who made a request, for its log line: filled in by the Git routes and
/// the API once they have authenticated the caller (never a secret).
#[derive(Debug, Clone, Copy, Default)]
pub struct Who {
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    /// With Sudo: the administrator acting as `user_id`.
    pub sudo_by: Option<i64>,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = self.user_id {
            write!(f, " user={u}")?;
        }
        if let Some(t) = self.token_id {
            write!(f, " token={t}")?;
        }
        if let Some(s) = self.sudo_by {
            write!(f, " sudo_by={s}")?;
        }
        Ok(())
    }
}

/// The slot a request's [`Who`] goes in (a request extension), shared with
/// the blocking work that authenticates.
#[derive(Clone, Default)]
pub struct WhoSlot(std::sync::Arc<std::sync::Mutex<Who>>);

impl WhoSlot {
    pub fn of(req: &actix_web::HttpRequest) -> WhoSlot {
        req.extensions().get::<WhoSlot>().cloned().unwrap_or_default()
    }

    pub fn set(&self, who: Who) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = who;
    }

    pub(crate) fn get(&self) -> Who {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The client of `req`: behind a trusted proxy, the one it names.
pub fn client_ip(req: &actix_web::HttpRequest, settings: &crate::settings::Settings) -> Option<std::net::IpAddr> {
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    crate::net::client_ip(req.peer_addr().map(|a| a.ip()), forwarded, &settings.trusted_proxies)
}

/// Is the request's peer one of the `trusted_proxies`?
fn from_trusted_proxy(req: &actix_web::HttpRequest, settings: &crate::settings::Settings) -> bool {
    req.peer_addr()
        .map(|a| crate::net::canonical(a.ip()))
        .is_some_and(|ip| settings.trusted_proxies.iter().any(|c| c.contains(ip)))
}

/// The host (and port) the client addressed: the `Host` header, or
/// HTTP/2's `:authority` (which has no `Host` header).
pub fn request_host(req: &actix_web::HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
        .filter(|h| !h.is_empty())
}

/// `scheme://host[:port]` as the client addressed us. `Forwarded`,
/// `X-Forwarded-Proto` and `X-Forwarded-Host` are believed from a trusted
/// proxy only: anyone else could make our links point elsewhere.
pub fn request_origin(req: &actix_web::HttpRequest, settings: &crate::settings::Settings) -> String {
    if from_trusted_proxy(req, settings) {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    let scheme = if req.app_config().secure() { "https" } else { "http" };
    let host = request_host(req).unwrap_or_else(|| req.app_config().host().to_string());
    format!("{scheme}://{host}")
}

/// A path that is no route: a sentence, as every refusal has.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("404 Not Found: there is nothing at this address\n")
}

/// Binds a plain-HTTP server on `listen` (port 0 for a free one) and
/// returns it with the addresses it listens on; await the server to run it.
pub fn bind(app: App, listen: &str) -> anyhow::Result<(Server, Vec<SocketAddr>)> {
    let l = server::start(
        app,
        server::Listen {
            main: listen,
            ..Default::default()
        },
    )?;
    Ok((l.server, l.main))
}

/// 200 while the process serves requests.
async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 once the database is migrated (done before the server binds) and
/// reachable; 503 otherwise.
async fn readiness(app: web::Data<App>) -> HttpResponse {
    let app = app.into_inner();
    let check = crate::metrics::block(move || -> anyhow::Result<()> {
        let mut conn = app.pool.get().context("no database connection")?;
        conn.batch_execute("SELECT 1").context("database query failed")?;
        Ok(())
    })
    .await;
    match check {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })),
        Ok(Err(e)) => {
            tracing::warn!("readiness check failed: {e:#}");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "failed" }))
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "failed" })),
    }
}
