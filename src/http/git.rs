//! Git smart HTTP: `info/refs`, `git-upload-pack`, `git-receive-pack`.
//! Authentication and authorization come first on every request (spec
//! section 3); the protocol work runs on blocking threads, fed the request
//! body through a bounded channel so nothing is held whole.

use std::io::Read;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use super::body;
use crate::app::App;
use crate::auth::basic;
use crate::error::Error;
use crate::git::advertise::{self, Service};
use crate::git::negotiate;
use crate::git::pack::PackEngine;
use crate::git::pktline::{self, Band};
use crate::git::receive_pack;
use crate::git::upload_pack::{self, Plan, SideBand};
use crate::git::upload_pack_v2;
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
    let request = GitRequest {
        repo: req.match_info().get("repo").unwrap_or_default().to_string(),
        op,
        creds,
        ip: super::client_ip(req, &settings),
        now: chrono::Utc::now(),
    };
    let app2 = app.clone();
    let s = settings.clone();
    let outcome = web::block(move || -> Result<Result<Grant, Denied>, Error> {
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
            Ok(Granted { grant: g, settings })
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
    let body = web::block(move || -> anyhow::Result<Vec<u8>> {
        let (refs, shallow) = match &granted.grant.project {
            Some(_) => {
                let repo = app.store.open(&granted.grant.path)?;
                (advertise::list_all_refs(&repo)?, negotiate::repo_shallow_roots(&repo))
            }
            None => (Vec::new(), Vec::new()),
        };
        let mut body = advertise::service_header(service);
        body.extend(match service {
            Service::UploadPack => {
                let filter = matches!(app.engine, PackEngine::Git { .. });
                advertise::upload_pack_v0(&refs, &upload_pack::capabilities(filter), AGENT, &shallow)?
            }
            Service::ReceivePack => advertise::receive_pack_v0(&refs, receive_pack::CAPABILITIES, AGENT, &shallow)?,
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
    let git_dir = app.store.path_of(&granted.grant.path);
    let engine = app.engine.clone();
    let filter = matches!(engine, PackEngine::Git { .. });
    let v2 = upload_pack_v2::wants_v2(git_protocol(&req));
    let app = app.into_inner();
    let path = granted.grant.path.clone();
    let budget = app.upload_budget.clone();
    let plan = web::block(move || -> anyhow::Result<Result<Plan, Refused>> {
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
        let repo = app.store.open(&path)?;
        let _held = held;
        let plan = if v2 {
            upload_pack_v2::plan_v2(&repo, &buf, filter)
        } else {
            upload_pack::plan_v0(&repo, &buf)
        };
        Ok(plan.map_err(|bad| Refused::Bad(bad.0)))
    })
    .await;
    let plan = match plan {
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
            let (events_tx, events) = tokio::sync::mpsc::channel::<PackEvent>(16);
            match engine {
                PackEngine::Git { binary } => {
                    actix_web::rt::spawn(run_pack_objects(binary, git_dir, spec.git_command(progress), events_tx));
                }
                PackEngine::Libgit2 => {
                    actix_web::rt::task::spawn_blocking(move || run_packbuilder(&git_dir, &spec, events_tx));
                }
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            actix_web::rt::spawn(pump(events, side_band, progress, preamble, tx));
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
            });
            resp.streaming(stream)
        }
    }
}

/// What a pack engine produces.
enum PackEvent {
    Data(Vec<u8>),
    Progress(Vec<u8>),
    /// The end: `Err` carries the message for the client.
    Done(Result<(), String>),
}

/// How long pack-objects may stay silent before a keep-alive packet.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Frames what the engine produces for the client: the preamble, then the
/// pack on band 1 and progress on band 2 (side-band), a keep-alive whenever
/// the engine is silent, and a final flush; a failure goes out on band 3.
/// When the client goes away the engine's channel closes, which stops it.
async fn pump(
    mut events: tokio::sync::mpsc::Receiver<PackEvent>,
    side_band: SideBand,
    progress: bool,
    preamble: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    if tx.send(Bytes::from(preamble)).await.is_err() {
        return;
    }
    loop {
        let out = tokio::select! {
            ev = events.recv() => match ev {
                Some(PackEvent::Data(d)) => upload_pack::frame(side_band, Band::Data, &d),
                Some(PackEvent::Progress(p)) if progress => upload_pack::frame(side_band, Band::Progress, &p),
                Some(PackEvent::Progress(_)) => continue,
                Some(PackEvent::Done(result)) => {
                    let mut end = Vec::new();
                    if side_band != SideBand::None {
                        if let Err(msg) = result {
                            pktline::write_sideband(&mut end, Band::Error, format!("{msg}\n").as_bytes());
                        } else {
                            pktline::write_flush(&mut end);
                        }
                    }
                    let _ = tx.send(Bytes::from(end)).await;
                    return;
                }
                None => {
                    let mut end = Vec::new();
                    if side_band != SideBand::None {
                        pktline::write_sideband(&mut end, Band::Error, b"upload-pack: the pack engine stopped\n");
                    }
                    let _ = tx.send(Bytes::from(end)).await;
                    return;
                }
            },
            _ = tokio::time::sleep(KEEPALIVE), if side_band != SideBand::None => {
                let mut k = Vec::new();
                pktline::write_keepalive(&mut k);
                k
            }
        };
        if tx.send(Bytes::from(out)).await.is_err() {
            return;
        }
    }
}

/// Runs `git pack-objects` (the default engine): stdout is the pack,
/// stderr its progress. Dropping the child (on any return) kills it.
async fn run_pack_objects(
    binary: std::path::PathBuf,
    git_dir: std::path::PathBuf,
    command: crate::git::pack_objects::PackObjectsCommand,
    events: tokio::sync::mpsc::Sender<PackEvent>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cmd = tokio::process::Command::from(crate::git::git_command(&binary, &git_dir));
    cmd.args(&command.args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot run {} pack-objects: {e}", binary.display());
            let _ = events
                .send(PackEvent::Done(Err("upload-pack: cannot run git pack-objects".into())))
                .await;
            return;
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = events
            .send(PackEvent::Done(Err(
                "upload-pack: cannot talk to git pack-objects".into()
            )))
            .await;
        return;
    };
    let input = command.stdin;
    actix_web::rt::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    let mut buf = vec![0u8; pktline::MAX_SIDEBAND_DATA];
    let mut ebuf = vec![0u8; 4096];
    let mut stdout_open = true;
    let mut stderr_open = true;
    let mut errors = Vec::new();
    // Both pipes to their end: the last progress ("Total ...") often comes
    // after the last pack byte, as with git's own upload-pack.
    while stdout_open || stderr_open {
        tokio::select! {
            n = stdout.read(&mut buf), if stdout_open => match n {
                Ok(0) => stdout_open = false,
                Ok(n) => {
                    if events.send(PackEvent::Data(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!("reading git pack-objects: {e}");
                    let _ = events.send(PackEvent::Done(Err("upload-pack: reading the pack failed".into()))).await;
                    return;
                }
            },
            n = stderr.read(&mut ebuf), if stderr_open => match n {
                Ok(0) | Err(_) => stderr_open = false,
                Ok(n) => {
                    if errors.len() < 64 * 1024 {
                        errors.extend_from_slice(&ebuf[..n]);
                    }
                    if events.send(PackEvent::Progress(ebuf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
    let result = match child.wait().await {
        Ok(status) if status.success() => Ok(()),
        other => {
            tracing::error!(
                "git pack-objects failed ({other:?}): {}",
                String::from_utf8_lossy(&errors)
            );
            Err("upload-pack: git pack-objects failed".to_string())
        }
    };
    let _ = events.send(PackEvent::Done(result)).await;
}

/// Builds the pack with libgit2 (the fallback engine), on a blocking thread.
fn run_packbuilder(
    git_dir: &std::path::Path,
    spec: &upload_pack::PackSpec,
    events: tokio::sync::mpsc::Sender<PackEvent>,
) {
    let result = crate::git::pack::build_with_libgit2(git_dir, spec, &mut |chunk| {
        chunk
            .chunks(pktline::MAX_SIDEBAND_DATA)
            .all(|c| events.blocking_send(PackEvent::Data(c.to_vec())).is_ok())
    });
    if let Err(e) = &result {
        tracing::error!("libgit2 pack engine failed: {e}");
    }
    let _ = events.blocking_send(PackEvent::Done(result.map_err(|e| format!("upload-pack: {e}"))));
}
