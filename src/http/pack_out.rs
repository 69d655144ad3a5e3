//! The outgoing pack of a fetch: the engine that makes it (`git
//! pack-objects`, through the pack cache when it is on, or libgit2), and
//! the pump that frames it for the client (side-band bands, keep-alives,
//! errors on band 3).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures::Stream;
use git2::Repository;
use tokio::sync::mpsc;

use crate::app::App;
use crate::git::negotiate;
use crate::git::pack::PackEngine;
use crate::git::pack_cache::{Abandoned, Key, PackCache, Piece, Producer};
use crate::git::pack_objects::PackObjectsCommand;
use crate::git::pktline::{self, Band};
use crate::git::upload_pack::{self, PackSpec, Plan, SideBand};

/// The pack cache key of `plan`, when it sends a pack the cache can make.
/// On a blocking thread: it may read the refs.
pub fn cache_key(app: &App, repo: &Repository, plan: &Plan) -> Option<Key> {
    let Plan::Pack { spec, progress, .. } = plan else {
        return None;
    };
    app.pack_cache.as_ref()?;
    if !matches!(app.engine, PackEngine::Git { .. }) {
        return None;
    }
    let refs = app.store.refs.get(repo.path()).ok()?;
    let shallow = negotiate::repo_shallow_roots(repo);
    Some(PackCache::key(
        repo.path(),
        &refs,
        &shallow,
        &spec.git_command(*progress),
    ))
}

/// The response body of a fetch that sends a pack: `preamble`, then the
/// pack of `spec` made by the server's engine (shared through the cache
/// when `key` is given), framed for the client.
pub fn stream(
    app: &App,
    git_dir: PathBuf,
    spec: PackSpec,
    key: Option<Key>,
    preamble: Vec<u8>,
    side_band: SideBand,
    progress: bool,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let (events_tx, events) = mpsc::channel::<PackEvent>(16);
    match (&app.engine, key, &app.pack_cache) {
        (PackEngine::Git { binary }, Some(key), Some(cache)) => {
            // Progress as the client that starts the run asked; readers that
            // join later get what is left of it.
            let command = spec.git_command(progress);
            actix_web::rt::spawn(run_cached(
                cache.clone(),
                key,
                binary.clone(),
                git_dir,
                command,
                events_tx,
            ));
        }
        (PackEngine::Git { binary }, _, _) => {
            let sink = Sink::Client(events_tx);
            actix_web::rt::spawn(run_pack_objects(
                binary.clone(),
                git_dir,
                spec.git_command(progress),
                sink,
            ));
        }
        (PackEngine::Libgit2, _, _) => {
            actix_web::rt::spawn(crate::metrics::block(move || {
                run_packbuilder(&git_dir, &spec, events_tx)
            }));
        }
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    actix_web::rt::spawn(pump(events, side_band, progress, preamble, tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    })
}

/// Joins (or starts) the cache entry of `key` and streams it to the
/// client's pump. If the cache cannot be used (its folder unwritable), the
/// pack is made for this client alone.
async fn run_cached(
    cache: Arc<PackCache>,
    key: Key,
    binary: PathBuf,
    git_dir: PathBuf,
    command: PackObjectsCommand,
    events: mpsc::Sender<PackEvent>,
) {
    let joined = match cache.join(key) {
        Ok(j) => j,
        Err(e) => {
            crate::metrics::get().pack_cache(crate::metrics::CacheResult::Bypass);
            tracing::warn!("pack cache unusable, packing without it: {e}");
            run_pack_objects(binary, git_dir, command, Sink::Client(events)).await;
            return;
        }
    };
    crate::metrics::get().pack_cache(match joined.producer {
        Some(_) => crate::metrics::CacheResult::Miss,
        None => crate::metrics::CacheResult::Hit,
    });
    if let Some(producer) = joined.producer {
        let abandoned = producer.abandoned();
        actix_web::rt::spawn(run_pack_objects(
            binary,
            git_dir,
            command,
            Sink::Cache(producer, abandoned),
        ));
    }
    let result = joined
        .reader
        .stream(|piece| {
            let events = events.clone();
            let event = match piece {
                Piece::Data(d) => PackEvent::Data(d),
                Piece::Progress(p) => PackEvent::Progress(p.to_vec()),
            };
            async move { events.send(event).await.is_ok() }
        })
        .await;
    let result = result.map_err(|e| {
        tracing::error!("cached pack: {e}");
        format!("upload-pack: {e}")
    });
    let _ = events.send(PackEvent::Done(result)).await;
}

/// What a pack engine produces.
enum PackEvent {
    Data(Vec<u8>),
    Progress(Vec<u8>),
    /// The end: `Err` carries the message for the client.
    Done(Result<(), String>),
}

/// Where `git pack-objects`' output goes.
enum Sink {
    /// Straight to one client's pump.
    Client(mpsc::Sender<PackEvent>),
    /// Into the pack cache, which readers follow; stopped when none is left.
    Cache(Producer, Abandoned),
}

impl Sink {
    /// `false`: stop the run.
    async fn data(&mut self, d: &[u8]) -> bool {
        match self {
            Sink::Client(events) => events.send(PackEvent::Data(d.to_vec())).await.is_ok(),
            Sink::Cache(producer, _) => producer.write(d).await,
        }
    }

    async fn progress(&mut self, p: &[u8]) -> bool {
        match self {
            Sink::Client(events) => events.send(PackEvent::Progress(p.to_vec())).await.is_ok(),
            Sink::Cache(producer, _) => {
                producer.message(p);
                true
            }
        }
    }

    async fn done(self, result: Result<(), String>) {
        match self {
            Sink::Client(events) => {
                let _ = events.send(PackEvent::Done(result)).await;
            }
            Sink::Cache(producer, _) => producer.finish(result.is_ok()).await,
        }
    }

    /// Resolves when nobody wants the pack any more.
    async fn stopped(&self) {
        match self {
            Sink::Client(events) => events.closed().await,
            Sink::Cache(_, abandoned) => abandoned.wait().await,
        }
    }
}

/// How long pack-objects may stay silent before a keep-alive packet.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Frames what the engine produces for the client: the preamble, then the
/// pack on band 1 and progress on band 2 (side-band), a keep-alive whenever
/// the engine is silent, and a final flush; a failure goes out on band 3.
/// When the client goes away the engine's channel closes, which stops it.
async fn pump(
    mut events: mpsc::Receiver<PackEvent>,
    side_band: SideBand,
    progress: bool,
    preamble: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
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

/// Runs `git pack-objects` (the default engine) into `sink`: stdout is the
/// pack, stderr its progress. Dropping the child (on any return, and when
/// the sink is no longer wanted) kills it.
async fn run_pack_objects(binary: PathBuf, git_dir: PathBuf, command: PackObjectsCommand, mut sink: Sink) {
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
            sink.done(Err("upload-pack: cannot run git pack-objects".into())).await;
            return;
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        sink.done(Err("upload-pack: cannot talk to git pack-objects".into()))
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
        let n = tokio::select! {
            n = stdout.read(&mut buf), if stdout_open => n,
            n = stderr.read(&mut ebuf), if stderr_open => {
                match n {
                    Ok(0) | Err(_) => stderr_open = false,
                    Ok(n) => {
                        if errors.len() < 64 * 1024 {
                            errors.extend_from_slice(&ebuf[..n]);
                        }
                        if !sink.progress(&ebuf[..n]).await {
                            return;
                        }
                    }
                }
                continue;
            }
            () = sink.stopped() => {
                sink.done(Err("upload-pack: nobody wants the pack any more".into())).await;
                return;
            }
        };
        match n {
            Ok(0) => stdout_open = false,
            Ok(n) => {
                if !sink.data(&buf[..n]).await {
                    return;
                }
            }
            Err(e) => {
                tracing::error!("reading git pack-objects: {e}");
                sink.done(Err("upload-pack: reading the pack failed".into())).await;
                return;
            }
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
    sink.done(result).await;
}

/// Builds the pack with libgit2 (the fallback engine), on a blocking thread.
fn run_packbuilder(git_dir: &std::path::Path, spec: &PackSpec, events: mpsc::Sender<PackEvent>) {
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
