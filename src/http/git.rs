//! Git smart HTTP: `info/refs`, `git-upload-pack`, `git-receive-pack`.
//! Authentication and authorization come first on every request (spec
//! section 3); the protocol work runs on blocking threads, fed the request
//! body through a bounded channel so nothing is held whole.

use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::auth::basic;
use crate::db::{self, project::Project};
use crate::error::Error;
use crate::git::advertise::{self, Service};
use crate::git::intake::Intake;
use crate::git::negotiate;
use crate::git::pack::PackEngine;
use crate::git::pkt_reader::PktReader;
use crate::git::pktline::{self, Band};
use crate::git::receive_pack;
use crate::git::store::RepoPath;
use crate::git::upload_pack::{self, Plan, SideBand};
use crate::git::upload_pack_v2;
use crate::service::access;
use crate::service::git_auth::{self, Caller, Denied, Operation};
use crate::service::repos;
use crate::settings::Settings;

/// `agent=` of our advertisements.
pub const AGENT: &str = concat!("gitpat/", env!("CARGO_PKG_VERSION"));

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/{repo:.+}/info/lfs/{rest:.*}", web::route().to(lfs_not_enabled))
        .route("/{repo:.+}/info/refs", web::get().to(info_refs))
        .route("/{repo:.+}/git-upload-pack", web::post().to(upload_pack_post))
        .route("/{repo:.+}/git-receive-pack", web::post().to(receive_pack_post));
}

/// The headers every smart-HTTP answer carries, so no proxy caches it.
fn no_cache(b: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    b.insert_header((header::EXPIRES, "Fri, 01 Jan 1980 00:00:00 GMT"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::CACHE_CONTROL, "no-cache, max-age=0, must-revalidate"))
}

/// A text/plain answer; git shows its body to the user as `remote: ...`.
fn text(status: StatusCode, msg: &str) -> HttpResponse {
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
        Denied::NotFound => text(StatusCode::NOT_FOUND, git_auth::NOT_FOUND),
    }
}

fn internal(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!("git request failed: {e}");
    text(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

/// What a Git request may go on with.
struct Granted {
    caller: Option<Caller>,
    /// `None` only for a push that will create the repository.
    project: Option<Project>,
    path: RepoPath,
    settings: Settings,
}

fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

/// Authenticates and authorizes `op` on the repository of the URL, with the
/// failed-authentication ban around it.
async fn grant(app: &App, req: &HttpRequest, op: Operation) -> Result<Granted, HttpResponse> {
    let raw = req.match_info().get("repo").unwrap_or_default().to_string();
    let creds = match req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic::parse)
    {
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return Err(denied(&Denied::Challenge(git_auth::ACCESS_DENIED))),
        None => None,
    };
    let has_creds = creds.is_some();
    let ip = client_ip(req);
    let app2 = app.clone();
    let outcome = web::block(move || -> Result<Result<Granted, Denied>, Error> {
        let mut conn = app2.conn()?;
        let conn: &mut db::DbConn = &mut conn;
        let settings = Settings::load(conn)?;
        if let Some(ip) = ip {
            if app2.bans.is_banned(&settings, ip, chrono::Utc::now()) {
                return Ok(Err(Denied::Forbidden(git_auth::BANNED)));
            }
        }
        let ip_text = ip.map(|i| i.to_string());
        let caller = match git_auth::authenticate(
            conn,
            &app2.key,
            &settings,
            creds.as_ref(),
            ip_text.as_deref(),
            chrono::Utc::now(),
        )? {
            Ok(c) => c,
            Err(d) => return Ok(Err(d)),
        };
        let Ok(path) = RepoPath::parse(&raw) else {
            return Ok(Err(if caller.is_some() {
                Denied::NotFound
            } else {
                Denied::Challenge(git_auth::ACCESS_DENIED)
            }));
        };
        let project = db::project::find_by_path(conn, path.as_str())?;
        if project.is_none() && op == Operation::Push {
            if let Some(c) = &caller {
                // Push to create, inside the pusher's own namespace only.
                let own = path.namespace().eq_ignore_ascii_case(&c.user.username);
                if own && c.scope_allows(Operation::Push) {
                    // The namespace as the user spells it, whatever the URL's casing.
                    let canonical = RepoPath::parse(&format!("{}/{}", c.user.username, path.name()))
                        .map_err(|e| Error::Internal(anyhow::anyhow!("username as a namespace: {e}")))?;
                    return Ok(Ok(Granted {
                        caller,
                        project: None,
                        path: canonical,
                        settings,
                    }));
                }
            }
        }
        // Paths are unique without regard to case: serve the repository
        // under the path it was created with, whatever the URL's casing.
        let path = match &project {
            Some(p) => RepoPath::parse(&p.path)
                .map_err(|e| Error::Internal(anyhow::anyhow!("stored project path {:?}: {e}", p.path)))?,
            None => path,
        };
        match git_auth::authorize(conn, caller.as_ref(), project.as_ref(), op)? {
            Ok(()) => Ok(Ok(Granted {
                caller,
                project,
                path,
                settings,
            })),
            Err(d) => Ok(Err(d)),
        }
    })
    .await;
    let outcome = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(internal(e)),
        Err(e) => return Err(internal(e)),
    };
    if let (Some(ip), true) = (ip, has_creds) {
        let settings = outcome.as_ref().map(|g| g.settings.clone()).ok();
        match &outcome {
            Err(Denied::Challenge(_)) | Err(Denied::NoChallenge(_)) => {
                if let Some(s) = settings.or_else(|| load_settings(app)) {
                    app.bans.record_failure(&s, ip, chrono::Utc::now());
                }
            }
            Ok(_) => app.bans.record_success(ip),
            _ => {}
        }
    }
    outcome.map_err(|d| denied(&d))
}

fn load_settings(app: &App) -> Option<Settings> {
    let mut conn = app.conn().ok()?;
    Settings::load(&mut conn).ok()
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
        let (refs, shallow) = match &granted.project {
            Some(_) => {
                let repo = app.store.open(&granted.path)?;
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
fn wrong_content_type(headers: &HeaderMap, service: Service) -> Option<HttpResponse> {
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

/// The request body, to be read on a blocking thread: fed by the async side
/// through a bounded channel (so at most a few chunks are in memory), and
/// gunzipped there when the client compressed it.
pub struct Body {
    reader: ChannelReader,
    gzip: bool,
}

impl Body {
    /// The body as a `Read`. Call on the blocking thread: even building the
    /// gzip decoder reads.
    pub fn into_read(self) -> Box<dyn Read + Send> {
        if self.gzip {
            Box::new(flate2::read::GzDecoder::new(self.reader))
        } else {
            Box::new(self.reader)
        }
    }
}

/// The next chunk of the body: `None` at its end, an error when it breaks
/// or stays silent for `idle` (the config's `body_idle_timeout`), so a
/// client that stalls mid-body, or sends less than its `Content-Length`,
/// holds its connection no longer than that.
async fn next_chunk(payload: &mut web::Payload, idle: Duration) -> Option<io::Result<Bytes>> {
    match tokio::time::timeout(idle, payload.next()).await {
        Ok(Some(Ok(b))) => Some(Ok(b)),
        Ok(Some(Err(e))) => Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))),
        Ok(None) => None,
        Err(_) => Some(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the request body stalled for {} s", idle.as_secs()),
        ))),
    }
}

fn gzipped(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip") || v.trim().eq_ignore_ascii_case("x-gzip"))
}

pub fn body_reader(req: &HttpRequest, mut payload: web::Payload, idle: Duration) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    actix_web::rt::spawn(async move {
        while let Some(item) = next_chunk(&mut payload, idle).await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
    };
    Body {
        reader,
        gzip: gzipped(req),
    }
}

/// What all upload-pack requests being read at once may hold, in KiB (the
/// permits of `App::upload_budget`): 256 MiB, against thousands of
/// connections each sending 10 MiB. Real requests are a few KiB.
pub const UPLOAD_BUDGET_KIB: usize = 256 * 1024;

/// A whole upload-pack request must arrive within this, however it trickles.
const UPLOAD_REQUEST_DEADLINE: Duration = Duration::from_secs(300);

/// Why a request body was not read.
enum ReadError {
    /// 400, with the reason.
    Bad(String),
    /// 503: the budget is spent by other requests.
    Busy,
}

/// Reads a whole body of at most `limit` bytes on the async side, so a slow
/// client holds no blocking thread. What it holds is charged to `budget`
/// (KiB permits, returned with the body and given back when dropped), and
/// it must arrive within [`UPLOAD_REQUEST_DEADLINE`].
async fn read_capped(
    payload: &mut web::Payload,
    limit: u64,
    idle: Duration,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), ReadError> {
    let read = async {
        let mut buf = Vec::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        while let Some(chunk) = next_chunk(payload, idle).await {
            let chunk = chunk.map_err(|e| ReadError::Bad(format!("cannot read the request: {e}")))?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(ReadError::Bad(format!(
                    "the request is larger than {} MiB",
                    limit >> 20
                )));
            }
            let kib = u32::try_from(chunk.len().div_ceil(1024)).map_err(|_| ReadError::Busy)?;
            let permit = budget
                .clone()
                .try_acquire_many_owned(kib)
                .map_err(|_| ReadError::Busy)?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((buf, held))
    };
    tokio::time::timeout(UPLOAD_REQUEST_DEADLINE, read)
        .await
        .unwrap_or_else(|_| {
            Err(ReadError::Bad(format!(
                "the request did not arrive within {} s",
                UPLOAD_REQUEST_DEADLINE.as_secs()
            )))
        })
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// `POST <repo>/git-receive-pack`: a push.
async fn receive_pack_post(app: web::Data<App>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    if let Some(resp) = wrong_content_type(req.headers(), Service::ReceivePack) {
        return resp;
    }
    let granted = match grant(&app, &req, Operation::Push).await {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let body = body_reader(&req, payload, app.config.body_idle_timeout);
    let app = app.into_inner();
    let result = web::block(move || push(&app, granted, body)).await;
    let result = match result {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    match result {
        Ok(bytes) => no_cache(&mut HttpResponse::Ok())
            .content_type("application/x-git-receive-pack-result")
            .body(bytes),
        Err(PushError::Protocol(e)) => text(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(PushError::Internal(e)) => internal(format!("{e:#}")),
    }
}

enum PushError {
    Protocol(receive_pack::ProtocolError),
    Internal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for PushError {
    fn from(e: E) -> Self {
        PushError::Internal(e.into())
    }
}

/// The blocking part of a push: read the commands, create the repository
/// if this push creates it, run receive-pack, record what changed.
fn push(app: &App, g: Granted, body: Body) -> Result<Vec<u8>, PushError> {
    let mut reader = PktReader::new(body.into_read());
    let request = receive_pack::read_request(&mut reader).map_err(PushError::Protocol)?;
    if request.commands.is_empty() {
        // git's probe before a chunked push: nothing to do, nothing to say.
        return Ok(Vec::new());
    }
    let caller = g
        .caller
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("a push without a caller"))?;
    let mut conn = app.conn().map_err(|e| anyhow::anyhow!("{e}"))?;
    let conn: &mut db::DbConn = &mut conn;
    let (project, created) = match g.project {
        Some(p) => (p, false),
        None => {
            let req = repos::NewRepoRequest {
                path: g.path.as_str(),
                name: None,
                owner: Some(&caller.user.username),
                visibility: None,
                default_branch: None,
                description: None,
                import: None,
            };
            let p = repos::create(conn, &app.store, &req, chrono::Utc::now()).map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!("{} created {} by pushing to it", caller.user.username, p.path);
            (p, true)
        }
    };
    let access = access::access(conn, Some(&caller.user), &project).map_err(|e| anyhow::anyhow!("{e}"))?;
    let policy = receive_pack::Policy {
        protected_ref: Some(format!("refs/heads/{}", project.default_branch)),
        may_push_protected: access.push_protected,
    };
    let repo = app.store.open(&g.path)?;
    let sig = signature(&caller.user);
    let mut pack = reader.into_inner();
    let intake = Intake {
        engine: app.engine.clone(),
        max_input_size: g.settings.receive_max_input_size,
    };
    let report = receive_pack::execute(&repo, &request, &mut pack, &intake, &policy, &sig);
    if let Some(branch) = receive_pack::adopt_pushed_head(&repo, &report) {
        db::project::set_default_branch(conn, project.id, &branch)?;
    }
    if report.refs.iter().any(|(_, r)| r.is_ok()) {
        db::project::touch(conn, project.id, chrono::Utc::now().naive_utc())?;
        app.maintainer
            .after_push(app.store.git(), repo.path(), g.settings.maintenance_pack_limit as usize);
    } else if created {
        // Nothing landed: the push that was to create the repository leaves none.
        drop(repo);
        if let Err(e) = repos::delete(conn, &app.store, &project.path) {
            tracing::warn!("cannot remove {} after a failed first push: {e}", project.path);
        }
    }
    Ok(report.encode(request.has("side-band-64k")))
}

/// The reflog identity of a push: the authenticated user.
fn signature(user: &crate::db::user::User) -> git2::Signature<'static> {
    let clean = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, '<' | '>' | '\n' | '\0'))
            .collect::<String>()
    };
    let name = clean(&user.name);
    let email = clean(&user.email);
    git2::Signature::now(if name.trim().is_empty() { &user.username } else { &name }, &email)
        .or_else(|_| git2::Signature::now(&user.username, "unknown@gitpat"))
        .unwrap_or_else(|_| git2::Signature::now("gitpat", "gitpat@localhost").expect("a constant signature is valid"))
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
    let Some(_) = granted.project else {
        return denied(&Denied::NotFound);
    };
    // The request is small (at most 10 MiB, as git caps it) and read here,
    // whole, before a blocking thread is taken for it.
    let (raw, held) = match read_capped(
        &mut payload,
        upload_pack::MAX_REQUEST_BYTES,
        app.config.body_idle_timeout,
        &app.upload_budget,
    )
    .await
    {
        Ok(read) => read,
        Err(ReadError::Bad(msg)) => return text(StatusCode::BAD_REQUEST, &msg),
        Err(ReadError::Busy) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy reading other fetch requests; try again in a moment",
            )
        }
    };
    let gzip = gzipped(&req);
    let git_dir = app.store.path_of(&granted.path);
    let engine = app.engine.clone();
    let filter = matches!(engine, PackEngine::Git { .. });
    let v2 = upload_pack_v2::wants_v2(git_protocol(&req));
    let app = app.into_inner();
    let path = granted.path.clone();
    let plan = web::block(move || -> anyhow::Result<Result<Plan, upload_pack::BadRequest>> {
        // The request's share of the budget is given back once it is planned.
        let _held = held;
        let buf = if gzip {
            let mut buf = Vec::new();
            if let Err(e) = flate2::read::GzDecoder::new(raw.as_slice())
                .take(upload_pack::MAX_REQUEST_BYTES + 1)
                .read_to_end(&mut buf)
            {
                return Ok(Err(upload_pack::BadRequest(format!("cannot read the request: {e}"))));
            }
            if buf.len() as u64 > upload_pack::MAX_REQUEST_BYTES {
                return Ok(Err(upload_pack::BadRequest("the request is larger than 10 MiB".into())));
            }
            buf
        } else {
            raw
        };
        let repo = app.store.open(&path)?;
        if v2 {
            Ok(upload_pack_v2::plan_v2(&repo, &buf, filter))
        } else {
            Ok(upload_pack::plan_v0(&repo, &buf))
        }
    })
    .await;
    let plan = match plan {
        Ok(Ok(Ok(p))) => p,
        Ok(Ok(Err(bad))) => return text(StatusCode::BAD_REQUEST, &bad.0),
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
