//! The HTTP server: the route table, request logging with secrets redacted,
//! and the health endpoints.

pub mod body;
pub mod git;
pub mod receive;

use std::net::SocketAddr;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::{web, App as ActixApp, HttpResponse, HttpServer};
use anyhow::Context;
use diesel::connection::SimpleConnection;

use crate::app::App;

/// Every route, in one place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/-/liveness", web::get().to(liveness))
        .route("/-/readiness", web::get().to(readiness))
        .configure(crate::api::configure)
        .configure(git::configure);
}

/// Binds the server (use port 0 for a free one) and returns it with the
/// addresses it listens on; await the server to run it.
pub fn bind(app: App, listen: &str) -> anyhow::Result<(Server, Vec<SocketAddr>)> {
    let data = web::Data::new(app);
    let server = HttpServer::new(move || {
        ActixApp::new()
            .app_data(data.clone())
            .wrap_fn(|req, srv| {
                let start = Instant::now();
                // The path and query only: an absolute- or authority-form
                // target's scheme and authority (userinfo included) are
                // never printed.
                let target = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("*");
                let line = format!("{} {}", req.method(), crate::redact::url(target, false));
                let peer = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
                let fut = srv.call(req);
                async move {
                    let res = fut.await;
                    let status = match &res {
                        Ok(r) => r.status().as_u16(),
                        Err(e) => e.as_response_error().status_code().as_u16(),
                    };
                    tracing::info!(target: "gitpat::http", "{peer} \"{line}\" {status} {:.1}ms", start.elapsed().as_secs_f64() * 1e3);
                    res
                }
            })
            .configure(configure)
    })
    .bind(listen)
    .with_context(|| format!("cannot listen on {listen}"))?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

/// 200 while the process serves requests.
async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 once the database is migrated (done before the server binds) and
/// reachable; 503 otherwise.
async fn readiness(app: web::Data<App>) -> HttpResponse {
    let app = app.into_inner();
    let check = web::block(move || -> anyhow::Result<()> {
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
