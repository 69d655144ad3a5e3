//! Git smart HTTP: `info/refs`, `git-upload-pack`, `git-receive-pack`.
//! Authentication and authorization come first on every request (spec
//! section 3); the protocol work runs on blocking threads, fed the request
//! body through a bounded channel so nothing is held whole.

use std::io::Read;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use super::body;
use super::pack_out;
use crate::app::App;
use crate::auth::basic;
use crate::error::Error;
use crate::git::advertise::{self, Service};
use crate::git::negotiate;
use crate::git::pack::PackEngine;
use crate::git::pack_cache::Key as PackKey;
use crate::git::receive_pack;
use crate::git::upload_pack::{self, Plan};
use crate::git::upload_pack_v2;
use crate::metrics::GitOperation;
use crate::service::git_http::{self, Creds, Denied, GitRequest, Grant, Operation};
use crate::settings::Settings;

/// `agent=` of our advertisements.
pub const AGENT: &str = concat!("gitpat/", env!("CARGO_PKG_VERSION"));

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/{repo:.+}/info/lfs/{rest:.*}", web::route().to(lfs_not_enabled))
        .route("/{repo:.+}/info/refs", web::get().to(info_refs))
        .route("/{repo:.+}/git-upload-pack", web::post().to(upload_pack_post))
        .route(
            "/{repo:.+}/git-receive-pack",
            web::post().to(super::receive::receive_pack_post),
        );
}

/// The headers every smart-HTTP answer carries, so no proxy caches it.
pub(super) fn no_cache(b: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    b.insert_header((header::EXPIRES, "Fri, 01 Jan 1980 00:00:00 GMT"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::CACHE_CONTROL, "no-cache, max-age=0, must-revalidate"))
}

/// A text/plain answer; git shows its body to the user as `remote: ...`.
pub(super) fn text(status: StatusCode, msg: &str) -> HttpResponse {
    no_cache(&mut HttpResponse::build(status))
        .content_type("text/plain; charset=utf-8")
        .body(format!("{msg}\n"))
}

fn denied(d: &Denied) -> HttpResponse {
    match d {
        Denied::Challenge(m) => {
            let mut r = text(StatusCode::UNAUTHORIZED, m);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gitpat\""),
            );
            r
        }
        Denied::NoChallenge(m) => text(StatusCode::UNAUTHORIZED, m),
        Denied::Forbidden(m) => text(StatusCode::FORBIDDEN, m),
        Denied::NotFound => text(StatusCode::NOT_FOUND, git_http::NOT_FOUND),
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!("git request failed: {e}");
    text(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

/// What a Git request may go on with: the service's grant, and the
/// settings it was decided under.
pub(super) struct Granted {
    pub grant: Grant,
    pub settings: Settings,
    /// The client (behind trusted proxies, the one they name).
    pub ip: Option<std::net::IpAddr>,
}

/// Authenticates and authorizes `op` on the repository of the URL
/// (`service::git_http::grant`, on the blocking pool).
pub(super) async fn grant(app: &App, req: &HttpRequest, op: Operation) -> Result<Granted, HttpResponse> {
    let settings = app.settings();
    let creds = match req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().ok().and_then(basic::parse))
    {
        None => Creds::None,
        Some(Some(Ok(c))) => Creds::Basic(c),
        Some(_) => Creds::Malformed,
    };
    let ip = super::client_ip(req, &settings);
    let request = GitRequest {
        repo: req.match_info().get("repo").unwrap_or_default().to_string(),
        op,
        creds,
        ip,
        now: chrono::Utc::now(),
    };
    let app2 = app.clone();
    let s = settings.clone();
    let outcome = crate::metrics::block(move || -> Result<Result<Grant, Denied>, Error> {
        git_http::grant(crate::service::Conns::Pool(&app2.pool), &app2.key, &s, &request)
    })
    .await;
    match outcome {
        Ok(Ok(Ok(g))) => {
            if let Some(c) = &g.caller {
                super::WhoSlot::of(req).set(super::Who {
                    user_id: Some(c.user.id),
                    token_id: c.token.as_ref().map(|t| t.id),
                    sudo_by: None,
                });
            }
            Ok(Granted { grant: g, settings, ip })
        }
        Ok(Ok(Err(d))) => Err(denied(&d)),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(e)),
    }
}

#[derive(serde::Deserialize)]
struct InfoRefsQuery {
    service: Option<String>,
}

/// What GitLab answers on every Git LFS path when LFS is off, which git-lfs
/// shows to the user.
pub const LFS_NOT_ENABLED: &str = "Git LFS is not enabled on this server, contact your admin.";

/// `<repo>/info/lfs/...`, any method: gitpat serves no LFS objects (yet).
async fn lfs_not_enabled() -> HttpResponse {
    HttpResponse::NotImplemented()
        .content_type("application/vnd.git-lfs+json")
        .body(serde_json::json!({ "message": LFS_NOT_ENABLED }).to_string())
}

/// `GET <repo>/info/refs?service=...`: the ref advertisement.
async fn info_refs(app: web::Data<App>, req: HttpRequest, q: web::Query<InfoRefsQuery>) -> HttpResponse {
    let service = match q.service.as_deref() {
        Some("git-upload-pack") => Service::UploadPack,
        Some("git-receive-pack") => Service::ReceivePack,
        Some(_) => return text(StatusCode::FORBIDDEN, "Unsupported service"),
        None => {
            return text(
                StatusCode::FORBIDDEN,
                "Dumb HTTP is not supported: use git's smart HTTP protocol",
            )
        }
    };
    let op = if service == Service::ReceivePack {
        Operation::Push
    } else {
        Operation::Pull
    };
    let granted = match grant(&app, &req, op).await {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    if let (Service::ReceivePack, Some(c)) = (service, &granted.grant.caller) {
        // Refused here, before the push, git shows the reason.
        let s = &granted.settings;
        if let Err(full) =
            app.push_slots
                .would_admit(c.user.id, s.max_concurrent_pushes, s.max_concurrent_pushes_per_user)
        {
            return super::receive::busy(full);
        }
    }
    let app = app.into_inner();
    let v2 = service == Service::UploadPack && upload_pack_v2::wants_v2(git_protocol(&req));
    if v2 {
        // Protocol v2: capabilities only, no refs and no `# service=` line.
        let filter = matches!(app.engine, PackEngine::Git { .. });
        return match upload_pack_v2::advertisement(filter, &session_id(), AGENT) {
            Ok(body) => no_cache(&mut HttpResponse::Ok())
                .content_type("application/x-git-upload-pack-advertisement")
                .body(body),
            Err(e) => internal(e),
        };
    }
    let body = crate::metrics::block(move || -> anyhow::Result<Vec<u8>> {
        let (refs, shallow) = match &granted.grant.project {
            Some(_) => {
                let dir = app.store.path_of(&granted.grant.path);
                (app.store.refs.get(&dir)?, negotiate::shallow_roots_at(&dir))
            }
            None => (Default::default(), Vec::new()),
        };
        let refs = &refs.list;
        let mut body = advertise::service_header(service);
        body.extend(match service {
            Service::UploadPack => {
                let filter = matches!(app.engine, PackEngine::Git { .. });
                advertise::upload_pack_v0(refs, &upload_pack::capabilities(filter), AGENT, &shallow)?
            }
            Service::ReceivePack => advertise::receive_pack_v0(refs, receive_pack::CAPABILITIES, AGENT, &shallow)?,
        });
        Ok(body)
    })
    .await;
    match body {
        Ok(Ok(body)) => no_cache(&mut HttpResponse::Ok())
            .content_type(format!("application/x-{}-advertisement", service.as_str()))
            .body(body),
        Ok(Err(e)) => internal(format!("{e:#}")),
        Err(e) => internal(e),
    }
}

/// The `Git-Protocol` header, if any.
fn git_protocol(req: &HttpRequest) -> Option<&str> {
    req.headers().get("git-protocol").and_then(|v| v.to_str().ok())
}

/// This server's side of a v2 session, as advertised in `session-id=`.
fn session_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return "gitpat".into();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("gitpat-{hex}")
}

/// The 415 answer for a POST without the service's content type.
pub(super) fn wrong_content_type(headers: &HeaderMap, service: Service) -> Option<HttpResponse> {
    let want = format!("application/x-{}-request", service.as_str());
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if got.split(';').next().map(str::trim) == Some(want.as_str()) {
        None
    } else {
        Some(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Expected a {want} request body"),
        ))
    }
}

/// The 503 of a fetch request past the shared read budget.
const BUSY: &str = "The server is busy reading other fetch requests; try again in a moment";

/// Why a fetch request was not planned.
enum Refused {
    /// 400, with the reason.
    Bad(String),
    /// 503: the read budget is spent.
    Busy,
}

/// `POST <repo>/git-upload-pack`: a fetch (one stateless round).
async fn upload_pack_post(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    if let Some(resp) = wrong_content_type(req.headers(), Service::UploadPack) {
        return resp;
    }
    let granted = match grant(&app, &req, Operation::Pull).await {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let Some(_) = granted.grant.project else {
        return denied(&Denied::NotFound);
    };
    // The request is small (at most 10 MiB, as git caps it) and read here,
    // whole, before a blocking thread is taken for it.
    let (raw, held) = match body::read_capped(
        &mut payload,
        upload_pack::MAX_REQUEST_BYTES,
        app.config.body_idle_timeout,
        &app.upload_budget,
    )
    .await
    {
        Ok(read) => read,
        Err(body::ReadError::Bad(msg) | body::ReadError::TooLarge(msg)) => return text(StatusCode::BAD_REQUEST, &msg),
        Err(body::ReadError::Busy) => return text(StatusCode::SERVICE_UNAVAILABLE, BUSY),
    };
    let gzip = body::gzipped(&req);
    let request_bytes = raw.len() as u64;
    let git_dir = app.store.path_of(&granted.grant.path);
    let filter = matches!(app.engine, PackEngine::Git { .. });
    let v2 = upload_pack_v2::wants_v2(git_protocol(&req));
    let app = app.into_inner();
    let path = granted.grant.path.clone();
    let budget = app.upload_budget.clone();
    let planner = app.clone();
    let plan = crate::metrics::block(move || -> anyhow::Result<Result<(Plan, Option<PackKey>), Refused>> {
        // The request's share of the budget is given back once it is planned.
        let mut held = held;
        let buf = if gzip {
            let mut buf = Vec::new();
            if let Err(e) = flate2::read::GzDecoder::new(raw.as_slice())
                .take(upload_pack::MAX_REQUEST_BYTES + 1)
                .read_to_end(&mut buf)
            {
                return Ok(Err(Refused::Bad(format!("cannot read the request: {e}"))));
            }
            if buf.len() as u64 > upload_pack::MAX_REQUEST_BYTES {
                return Ok(Err(Refused::Bad("the request is larger than 10 MiB".into())));
            }
            // What it holds once gunzipped is charged too.
            let kib = u32::try_from(buf.len().div_ceil(1024)).unwrap_or(u32::MAX);
            match budget.try_acquire_many_owned(kib) {
                Ok(more) => match &mut held {
                    Some(h) => h.merge(more),
                    None => held = Some(more),
                },
                Err(_) => return Ok(Err(Refused::Busy)),
            }
            buf
        } else {
            raw
        };
        let repo = planner.store.open(&path)?;
        let _held = held;
        let plan = if v2 {
            upload_pack_v2::plan_v2(&repo, &planner.store.refs, &buf, filter)
        } else {
            upload_pack::plan_v0(&repo, &planner.store.refs, &buf)
        };
        let plan = match plan {
            Ok(p) => p,
            Err(bad) => return Ok(Err(Refused::Bad(bad.0))),
        };
        let key = pack_out::cache_key(&planner, &repo, &plan);
        Ok(Ok((plan, key)))
    })
    .await;
    let (plan, key) = match plan {
        Ok(Ok(Ok(p))) => p,
        Ok(Ok(Err(Refused::Busy))) => return text(StatusCode::SERVICE_UNAVAILABLE, BUSY),
        Ok(Ok(Err(Refused::Bad(why)))) => return text(StatusCode::BAD_REQUEST, &why),
        Ok(Err(e)) => return internal(format!("{e:#}")),
        Err(e) => return internal(e),
    };
    let mut builder = HttpResponse::Ok();
    let resp = no_cache(&mut builder).content_type("application/x-git-upload-pack-result");
    match plan {
        Plan::Reply(bytes) => resp.body(bytes),
        Plan::Pack {
            preamble,
            spec,
            side_band,
            progress,
        } => {
            use futures::StreamExt;
            let op = if spec.req.haves.is_empty() {
                GitOperation::Clone
            } else {
                GitOperation::Fetch
            };
            let metrics = crate::metrics::get();
            metrics.git_operation(op);
            metrics.git_bytes_in(op, request_bytes);
            let stream = pack_out::stream(&app, git_dir, *spec, key, preamble, side_band, progress);
            resp.streaming(stream.inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    metrics.git_bytes_out(op, bytes.len() as u64);
                }
            }))
        }
    }
}
