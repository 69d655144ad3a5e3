//! The HTTP server: the route table, request logging with secrets redacted,
//! and the health endpoints.

pub mod git;

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
                let line = format!("{} {}", req.method(), redact_uri(&req.uri().to_string()));
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

/// The request target with the values of credential-bearing query
/// parameters replaced, for logs.
pub fn redact_uri(uri: &str) -> String {
    const SECRET_KEYS: [&str; 5] = ["private_token", "access_token", "token", "password", "job_token"];
    let Some((path, query)) = uri.split_once('?') else {
        return uri.to_string();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_KEYS.iter().any(|s| percent_decode(k).eq_ignore_ascii_case(s)) => {
                format!("{k}=[REDACTED]")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", redacted.join("&"))
}

/// Decodes `%XX` escapes and `+` in a query key, as a framework would
/// before matching it, so `private%5Ftoken` is redacted too.
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => Some(hi * 16 + lo),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens_in_query_strings() {
        assert_eq!(
            redact_uri("/api/v4/user?private_token=glpat-secret&page=2"),
            "/api/v4/user?private_token=[REDACTED]&page=2"
        );
        assert_eq!(redact_uri("/x?a=1&Access_Token=s"), "/x?a=1&Access_Token=[REDACTED]");
        assert_eq!(
            redact_uri("/x/info/refs?service=git-upload-pack"),
            "/x/info/refs?service=git-upload-pack"
        );
        assert_eq!(redact_uri("/plain"), "/plain");
        assert_eq!(
            redact_uri("/x?private%5Ftoken=s&private%5ftoken=t"),
            "/x?private%5Ftoken=[REDACTED]&private%5ftoken=[REDACTED]"
        );
        assert_eq!(redact_uri("/x?a%=1&b=%zz&%"), "/x?a%=1&b=%zz&%");
    }
}
