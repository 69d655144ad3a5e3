//! `POST <repo>/git-receive-pack`: a push, in short steps so that nothing
//! scarce is held while the client sends:
//!
//! 1. authorize (a pooled connection, given back), take a push slot (past
//!    the caps: 503 with `Retry-After`);
//! 2. read the commands on the async side;
//! 3. create the repository if the push creates it, and learn the branch
//!    rules (a connection, given back);
//! 4. stream the pack into `git index-pack`, a child process fed through an
//!    async pipe (the libgit2 engine reads it on a blocking thread);
//! 5. on a blocking thread, check and apply the commands (no client I/O);
//! 6. record what changed (a connection, given back), start maintenance.

use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::App;
use crate::db;
use crate::git::advertise::Service;
use crate::git::intake::Intake;
use crate::git::pack::PackEngine;
use crate::git::pkt_reader::AsyncPktReader;
use crate::git::receive_pack::{self, Report};
use crate::service::access;
use crate::service::git_http::Operation;
use crate::service::push_slots::Full;
use crate::service::repos;

use super::body::{body_stream, PaceLimits};
use super::git::{grant, internal, no_cache, text, wrong_content_type, Granted};

/// What a client refused for the push caps is told to wait, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 30;

/// The 503 of a push past a cap.
pub fn busy(full: Full) -> HttpResponse {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, full.message());
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    r
}

pub async fn receive_pack_post(app: web::Data<App>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    if let Some(resp) = wrong_content_type(req.headers(), Service::ReceivePack) {
        return resp;
    }
    let granted = match grant(&app, &req, Operation::Push).await {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let Some(caller) = granted.grant.caller.as_ref() else {
        return internal("a push without a caller");
    };
    let s = &granted.settings;
    let _slot = match app.push_slots.take(
        caller.user.id,
        s.max_concurrent_pushes,
        s.max_concurrent_pushes_per_user,
    ) {
        Ok(slot) => slot,
        Err(full) => {
            tracing::info!("push by {} refused: {full:?} cap reached", caller.user.username);
            return busy(full);
        }
    };
    let limits = PaceLimits {
        idle: app.config.body_idle_timeout,
        deadline: Duration::from_secs(u64::from(s.push_deadline_seconds)),
        min_rate: u64::from(s.push_min_bytes_per_second),
        deadline_note: " (the push_deadline_seconds setting)",
    };
    let body = body_stream(&req, payload, limits);
    let app = app.into_inner();
    match push(&app, granted, body).await {
        Ok(bytes) => {
            let metrics = crate::metrics::get();
            metrics.git_operation(crate::metrics::GitOperation::Push);
            metrics.git_bytes_out(crate::metrics::GitOperation::Push, bytes.len() as u64);
            no_cache(&mut HttpResponse::Ok())
                .content_type("application/x-git-receive-pack-result")
                .body(bytes)
        }
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

/// Runs blocking work on the blocking pool, its panics and errors as
/// [`PushError::Internal`].
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Result<T, PushError> {
    Ok(crate::metrics::block(f).await??)
}

/// Where the push goes and what it may do there (step 3).
struct Target {
    project: db::project::Project,
    created: bool,
    policy: receive_pack::Policy,
}

/// A repository this push is creating: marked on disk (so that a sweep
/// after a crash removes it if the push never landed) and held from this
/// process's sweeps meanwhile.
struct Creating {
    marker: std::path::PathBuf,
    _held: crate::git::sweep::Held,
}

async fn push(app: &std::sync::Arc<App>, g: Granted, body: super::body::BodyStream) -> Result<Vec<u8>, PushError> {
    let caller = g
        .grant
        .caller
        .clone()
        .ok_or_else(|| anyhow::anyhow!("a push without a caller"))?;
    let intake = Intake {
        engine: app.engine.clone(),
        max_input_size: g.settings.receive_max_input_size,
    };
    // Step 2: the commands. The libgit2 engine reads everything on its
    // blocking thread; git's reads the commands here.
    let (request, rest) = match &intake.engine {
        PackEngine::Git { .. } => {
            let mut reader = AsyncPktReader::new(body.into_async_read());
            let request = receive_pack::read_request_async(&mut reader)
                .await
                .map_err(PushError::Protocol)?;
            (request, Pending::Async(reader.into_inner()))
        }
        PackEngine::Libgit2 => {
            let (request, reader) = crate::metrics::block(move || {
                let mut reader = crate::git::pkt_reader::PktReader::new(body.into_read());
                receive_pack::read_request(&mut reader).map(|r| (r, reader.into_inner()))
            })
            .await?
            .map_err(PushError::Protocol)?;
            (request, Pending::Blocking(reader))
        }
    };
    if request.commands.is_empty() {
        // git's probe before a chunked push: nothing to do, nothing to say.
        return Ok(Vec::new());
    }

    // Step 3.
    let target = {
        let (app, caller, path, project) = (
            app.clone(),
            caller.clone(),
            g.grant.path.clone(),
            g.grant.project.clone(),
        );
        blocking(move || {
            let mut conn = app.conn()?;
            let conn: &mut db::DbConn = &mut conn;
            let (project, created) = match project {
                Some(p) => (p, false),
                None => {
                    let req = repos::NewRepoRequest {
                        path: path.as_str(),
                        name: None,
                        owner: Some(&caller.user.username),
                        visibility: None,
                        default_branch: None,
                        description: None,
                        import: None,
                    };
                    let p = repos::create(conn, &app.store, &req, chrono::Utc::now())?;
                    tracing::info!("{} created {} by pushing to it", caller.user.username, p.path);
                    (p, true)
                }
            };
            let access = access::access(conn, Some(&caller.user), &project, chrono::Utc::now().date_naive())?;
            let policy = receive_pack::Policy {
                protected_ref: Some(format!("refs/heads/{}", project.default_branch)),
                may_push_protected: access.push_protected,
                push_refs: caller.restriction().push_refs,
            };
            Ok(Target {
                project,
                created,
                policy,
            })
        })
        .await?
    };

    let repo_dir = app.store.path_of(&g.grant.path);
    let creating = target.created.then(|| {
        let marker = repo_dir.join(crate::git::sweep::PUSH_TO_CREATE);
        if let Err(e) = std::fs::write(&marker, b"") {
            tracing::warn!("cannot mark {} as being created: {e}", repo_dir.display());
        }
        Creating {
            marker,
            _held: crate::git::sweep::hold(&repo_dir),
        }
    });

    // Step 4: the pack (the libgit2 engine takes it in step 5, on its thread).
    let started = Instant::now();
    let pack = match rest {
        _ if !receive_pack::needs_pack(&request) => PackStep::Unpacked(Ok(None)),
        Pending::Async(mut pack) => PackStep::Unpacked(match intake.quarantine(&repo_dir) {
            Ok(mut q) => intake.index(&repo_dir, &mut q, &mut pack).await.map(|()| Some(q)),
            Err(e) => Err(e),
        }),
        Pending::Blocking(pack) => PackStep::OnThread(pack),
    };

    // Step 5.
    let side_band = request.has("side-band-64k");
    let (report, head) = {
        let (app, path, intake) = (app.clone(), g.grant.path.clone(), intake.clone());
        let (policy, user) = (target.policy.clone(), caller.user.clone());
        let (settings, project, ip) = (g.settings.clone(), target.project.clone(), g.ip);
        blocking(move || -> anyhow::Result<(Report, Option<String>)> {
            let sig = signature(&user);
            let repo = app.store.open(&path)?;
            // Leaked-token push protection, once the commands would land.
            let push = crate::service::leaks::PushContext {
                repo: &project.path,
                visibility: &project.visibility,
                pusher: &user,
                ip,
                push_options: &request.push_options,
            };
            let mut screen = |repo: &git2::Repository, q: &crate::git::intake::Quarantine, tips: &[git2::Oid]| {
                let db = crate::service::Conns::Pool(&app.pool);
                crate::service::leaks::screen(db, &app.key, &settings, &push, repo, q, tips, chrono::Utc::now())
            };
            let report = match pack {
                PackStep::Unpacked(unpacked) => {
                    let unpacked = match unpacked {
                        Ok(Some(q)) => intake.attach(&repo, &q).map(|()| Some(q)),
                        other => other,
                    };
                    let elapsed = started.elapsed();
                    receive_pack::conclude_screened(
                        &repo,
                        &request,
                        unpacked,
                        elapsed,
                        &intake,
                        &policy,
                        &sig,
                        &mut screen,
                    )
                }
                PackStep::OnThread(mut pack) => {
                    receive_pack::execute_screened(&repo, &request, &mut pack, &intake, &policy, &sig, &mut screen)
                }
            };
            let head = receive_pack::adopt_pushed_head(&repo, &report);
            app.store.refs.forget(repo.path());
            Ok((report, head))
        })
        .await?
    };

    // Step 6.
    let landed = report.refs.iter().any(|(_, r)| r.is_ok());
    {
        let app2 = app.clone();
        let project = target.project.clone();
        let created = target.created;
        blocking(move || {
            let mut conn = app2.conn()?;
            let conn: &mut db::DbConn = &mut conn;
            if let Some(branch) = head {
                db::project::set_default_branch(conn, project.id, &branch)?;
            }
            if landed {
                db::project::touch(conn, project.id, chrono::Utc::now().naive_utc())?;
            } else if created {
                // Nothing landed: the push that was to create the repository leaves none.
                if let Err(e) = repos::delete(conn, &app2.store, &project.path) {
                    tracing::warn!("cannot remove {} after a failed first push: {e}", project.path);
                }
            }
            Ok(())
        })
        .await?;
    }
    if let (true, Some(c)) = (landed, &creating) {
        let _ = std::fs::remove_file(&c.marker);
    }
    drop(creating);
    if landed {
        app.maintainer
            .after_push(app.store.git(), &repo_dir, g.settings.maintenance_pack_limit as usize);
    }
    Ok(report.encode(side_band))
}

/// The body after the commands: the pack, to be read on the async side
/// (git engine) or on a blocking thread (libgit2).
enum Pending {
    Async(std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>),
    Blocking(Box<dyn std::io::Read + Send>),
}

/// Where the pack stands after step 4.
enum PackStep {
    /// In a quarantine (or not needed: `None`), or refused.
    Unpacked(Result<Option<crate::git::intake::Quarantine>, crate::git::intake::IntakeError>),
    /// To be read and unpacked on the blocking thread (libgit2).
    OnThread(Box<dyn std::io::Read + Send>),
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
