//! Request bodies of the Git routes, read on the async side so that a slow
//! client holds no blocking thread and no database connection.
//!
//! - A push body goes through [`body_stream`]: a task reads the payload
//!   under a [`Pace`] (idle timeout, overall deadline, minimum rate, all
//!   measured on the time spent waiting for the client, not on the time our
//!   side takes) into a bounded channel, which is read as an `AsyncRead`
//!   (gunzipped as it streams, so a gzip bomb costs one buffer) or, for the
//!   libgit2 engine, as a blocking `Read`.
//! - An upload-pack request is small and read whole by [`read_capped`],
//!   charged to a shared budget, under the same [`Pace`] (its idle timeout
//!   and a 5-minute deadline, no minimum rate).

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpRequest;
use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub fn gzipped(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip") || v.trim().eq_ignore_ascii_case("x-gzip"))
}

/// The limits on how a push body arrives.
#[derive(Debug, Clone, Copy)]
pub struct PaceLimits {
    /// No byte for this long: the client is gone.
    pub idle: Duration,
    /// The whole body within this.
    pub deadline: Duration,
    /// At least this many bytes per second over each [`RATE_WINDOW`] of
    /// waiting (0: no minimum).
    pub min_rate: u64,
    /// Said after the deadline's refusal (which setting it comes from).
    pub deadline_note: &'static str,
}

/// The span over which the minimum rate is measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Keeps the time and bytes of one body against its [`PaceLimits`]
/// (sans I/O: told how long each wait took and what it brought).
#[derive(Debug)]
pub struct Pace {
    limits: PaceLimits,
    started: Instant,
    window_waited: Duration,
    window_bytes: u64,
}

impl Pace {
    pub fn new(limits: PaceLimits, started: Instant) -> Pace {
        Pace {
            limits,
            started,
            window_waited: Duration::ZERO,
            window_bytes: 0,
        }
    }

    /// How long the next wait for the client may last, at `now`; an error
    /// once the deadline has passed.
    pub fn next_wait(&self, now: Instant) -> Result<Duration, String> {
        let left = self
            .limits
            .deadline
            .saturating_sub(now.saturating_duration_since(self.started));
        if left.is_zero() {
            return Err(format!(
                "the request did not arrive within {} s{}",
                self.limits.deadline.as_secs(),
                self.limits.deadline_note
            ));
        }
        let mut wait = self.limits.idle.min(left);
        if self.limits.min_rate > 0 {
            wait = wait.min(
                RATE_WINDOW
                    .saturating_sub(self.window_waited)
                    .max(Duration::from_millis(1)),
            );
        }
        Ok(wait)
    }

    /// A wait of `waited` brought `bytes` (0: it timed out). An error when
    /// the client has been silent for the idle timeout or too slow over a
    /// window.
    pub fn waited(&mut self, waited: Duration, bytes: u64) -> Result<(), String> {
        if bytes == 0 && waited >= self.limits.idle {
            return Err(format!("the request body stalled for {} s", self.limits.idle.as_secs()));
        }
        if self.limits.min_rate == 0 {
            return Ok(());
        }
        self.window_waited += waited;
        self.window_bytes += bytes;
        if self.window_waited >= RATE_WINDOW {
            let needed = self.limits.min_rate * self.window_waited.as_secs();
            if self.window_bytes < needed {
                return Err(format!(
                    "the push is arriving slower than {} bytes/s (the push_min_bytes_per_second setting)",
                    self.limits.min_rate
                ));
            }
            self.window_waited = Duration::ZERO;
            self.window_bytes = 0;
        }
        Ok(())
    }
}

/// The next non-empty chunk of `payload` under `pace`: `None` at the end;
/// `TimedOut` when the pace is broken, `UnexpectedEof` when the body is.
async fn next_paced(payload: &mut web::Payload, pace: &mut Pace) -> io::Result<Option<Bytes>> {
    loop {
        let wait = pace
            .next_wait(Instant::now())
            .map_err(|msg| io::Error::new(io::ErrorKind::TimedOut, msg))?;
        let t0 = Instant::now();
        let chunk = match tokio::time::timeout(wait, payload.next()).await {
            Ok(Some(Ok(b))) => b,
            Ok(Some(Err(e))) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string())),
            Ok(None) => return Ok(None),
            Err(_) => Bytes::new(),
        };
        pace.waited(t0.elapsed(), chunk.len() as u64)
            .map_err(|msg| io::Error::new(io::ErrorKind::TimedOut, msg))?;
        if !chunk.is_empty() {
            return Ok(Some(chunk));
        }
    }
}

/// A push body: chunks from the payload task, at most a few in memory.
pub struct BodyStream {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    gzip: bool,
}

/// Starts reading `payload` (a push's body, counted in the metrics as it
/// arrives) under `limits`.
pub fn body_stream(req: &HttpRequest, mut payload: web::Payload, limits: PaceLimits) -> BodyStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    actix_web::rt::spawn(async move {
        let mut pace = Pace::new(limits, Instant::now());
        while let Some(item) = next_paced(&mut payload, &mut pace).await.transpose() {
            let failed = item.is_err();
            if let Ok(bytes) = &item {
                crate::metrics::get().git_bytes_in(crate::metrics::GitOperation::Push, bytes.len() as u64);
            }
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    BodyStream { rx, gzip: gzipped(req) }
}

impl BodyStream {
    /// The body as an `AsyncRead`, gunzipped when the client compressed it.
    pub fn into_async_read(self) -> Pin<Box<dyn AsyncRead + Send>> {
        let stream = tokio_util::io::StreamReader::new(tokio_stream_of(self.rx));
        if self.gzip {
            Box::pin(async_compression::tokio::bufread::GzipDecoder::new(stream))
        } else {
            Box::pin(stream)
        }
    }

    /// The body as a blocking `Read` (call on a blocking thread: the
    /// libgit2 engine).
    pub fn into_read(self) -> Box<dyn Read + Send> {
        let reader = ChannelReader {
            rx: self.rx,
            current: Bytes::new(),
        };
        if self.gzip {
            Box::new(flate2::read::GzDecoder::new(reader))
        } else {
            Box::new(reader)
        }
    }
}

/// The channel as a `Stream` of chunks.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
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

/// What all upload-pack requests being read at once may hold, in KiB (the
/// permits of `App::upload_budget`): 256 MiB, against thousands of
/// connections each sending 10 MiB. Real requests are a few KiB.
pub const UPLOAD_BUDGET_KIB: usize = 256 * 1024;

/// A whole upload-pack request must arrive within this, however it trickles.
const UPLOAD_REQUEST_DEADLINE: Duration = Duration::from_secs(300);

/// Why a request body was not read.
pub enum ReadError {
    /// 400, with the reason.
    Bad(String),
    /// Larger than the cap, which the sentence names.
    TooLarge(String),
    /// 503: the budget is spent by other requests.
    Busy,
}

/// Reads a whole body of at most `limit` bytes on the async side, so a slow
/// client holds no blocking thread. What it holds is charged to `budget`
/// (KiB permits, returned with the body and given back when dropped), and
/// it must arrive within [`UPLOAD_REQUEST_DEADLINE`].
pub async fn read_capped(
    payload: &mut web::Payload,
    limit: u64,
    idle: Duration,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), ReadError> {
    let mut pace = Pace::new(
        PaceLimits {
            idle,
            deadline: UPLOAD_REQUEST_DEADLINE,
            min_rate: 0,
            deadline_note: "",
        },
        Instant::now(),
    );
    let mut buf = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(chunk) = next_paced(payload, &mut pace)
        .await
        .map_err(|e| ReadError::Bad(format!("cannot read the request: {e}")))?
    {
        if (buf.len() + chunk.len()) as u64 > limit {
            let cap = if limit >= 1 << 20 {
                format!("{} MiB", limit >> 20)
            } else {
                format!("{} KiB", limit >> 10)
            };
            return Err(ReadError::TooLarge(format!("the request is larger than {cap}")));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(min_rate: u64) -> PaceLimits {
        PaceLimits {
            idle: Duration::from_secs(120),
            deadline: Duration::from_secs(3600),
            min_rate,
            deadline_note: " (the push_deadline_seconds setting)",
        }
    }

    #[test]
    fn a_steady_push_passes_and_a_trickle_is_cut_after_a_window() {
        let t0 = Instant::now();
        let mut steady = Pace::new(limits(1024), t0);
        for _ in 0..600 {
            steady.waited(Duration::from_secs(1), 2048).unwrap();
        }
        let mut trickle = Pace::new(limits(1024), t0);
        let mut cut = None;
        for s in 1..=120 {
            if let Err(e) = trickle.waited(Duration::from_secs(1), 1) {
                cut = Some((s, e));
                break;
            }
        }
        let (at, why) = cut.expect("a 1 byte/s push is cut");
        assert_eq!(at, 60);
        assert!(why.contains("slower than 1024 bytes/s"), "{why}");
        // No minimum: only the idle timeout and the deadline.
        let mut any = Pace::new(limits(0), t0);
        for _ in 0..1000 {
            any.waited(Duration::from_secs(1), 1).unwrap();
        }
    }

    #[test]
    fn waits_stop_at_the_idle_timeout_the_window_and_the_deadline() {
        let t0 = Instant::now();
        let pace = Pace::new(limits(1024), t0);
        assert_eq!(pace.next_wait(t0).unwrap(), RATE_WINDOW);
        let pace = Pace::new(limits(0), t0);
        assert_eq!(pace.next_wait(t0).unwrap(), Duration::from_secs(120));
        assert_eq!(
            pace.next_wait(t0 + Duration::from_secs(3590)).unwrap(),
            Duration::from_secs(10)
        );
        let late = pace.next_wait(t0 + Duration::from_secs(3600)).unwrap_err();
        assert!(late.contains("push_deadline_seconds"), "{late}");
        let mut silent = Pace::new(limits(0), t0);
        let stalled = silent.waited(Duration::from_secs(120), 0).unwrap_err();
        assert!(stalled.contains("stalled for 120 s"), "{stalled}");
    }
}
