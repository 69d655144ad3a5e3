//! The pack cache, as Gitaly's: identical fetches share one `git
//! pack-objects` run.
//!
//! A request's key is a SHA-256 of what decides the pack: the repository,
//! the state of its refs (which `--include-tag` reads) and its shallow
//! boundary, and the `pack-objects` arguments and input. The first request
//! with a key starts the run, which writes the pack to
//! `<data-dir>/cache/packs/<key>.pack`; that request and every identical
//! one after it, concurrent or later, stream the file as it grows (no
//! waiting for the end): every client is a reader, so one that goes away
//! does not cut the run short for the others.
//!
//! An entry is served as complete only once `pack-objects` has exited
//! successfully and its output is written out. A run that fails, or whose
//! last reader left, is dropped from the index and its file removed; its
//! readers get an error, never a short pack. Entries expire after
//! `max_age`, and the oldest complete ones are dropped while the cache holds
//! more than `max_bytes`. The index lives in memory, one per process; each
//! process names its files with a tag of its own (instances may share the
//! data folder), and files no process uses any more are removed at start
//! and by [`PackCache::purge`] once an hour old.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git2::Oid;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{broadcast, watch, Notify};

use crate::git::pack_objects::PackObjectsCommand;
use crate::git::refs::Refs;

/// What decides a pack: see the module text.
pub type Key = [u8; 32];

/// How far a run has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Producing,
    /// `pack-objects` succeeded and all of its output is in the file.
    Complete,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes in the file so far.
    pub len: u64,
    pub status: Status,
}

#[derive(Debug)]
struct Entry {
    key: Key,
    path: PathBuf,
    created: Instant,
    progress: watch::Sender<Progress>,
    /// `pack-objects`' progress, for readers that join while it runs.
    messages: broadcast::Sender<Arc<Vec<u8>>>,
    readers: AtomicUsize,
    /// Told when the last reader leaves a run still producing.
    abandoned: Notify,
}

impl Entry {
    fn progress(&self) -> Progress {
        *self.progress.borrow()
    }
}

/// The cache's limits.
#[derive(Debug, Clone)]
pub struct PackCacheConfig {
    pub dir: PathBuf,
    pub max_age: Duration,
    pub max_bytes: u64,
}

#[derive(Debug)]
pub struct PackCache {
    config: PackCacheConfig,
    entries: Mutex<HashMap<Key, Arc<Entry>>>,
    /// This process's part of each file name.
    tag: String,
    serial: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// One client's follower of an entry: [`Reader::stream`] hands it the pack.
#[derive(Debug)]
pub struct Reader {
    entry: Arc<Entry>,
    file: std::fs::File,
    messages: broadcast::Receiver<Arc<Vec<u8>>>,
}

/// What a reader hands on.
#[derive(Debug)]
pub enum Piece {
    Data(Vec<u8>),
    /// Progress from the run, from when the reader joined.
    Progress(Arc<Vec<u8>>),
}

/// What [`PackCache::join`] gives: a reader, and when the caller started
/// the entry, the run it must drive.
pub struct Joined {
    pub reader: Reader,
    pub producer: Option<Producer>,
}

/// The writing side of a new entry.
#[derive(Debug)]
pub struct Producer {
    entry: Arc<Entry>,
    file: tokio::fs::File,
    cache: Arc<PackCache>,
    finished: bool,
}

impl Drop for Producer {
    /// A run dropped unfinished (its task gone) fails, so that its readers
    /// and later clients do not wait for it for ever.
    fn drop(&mut self) {
        if !self.finished {
            self.cache.fail(&self.entry);
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if self.entry.readers.fetch_sub(1, Ordering::AcqRel) == 1 && self.entry.progress().status == Status::Producing {
            self.entry.abandoned.notify_one();
        }
    }
}

/// Why a cached pack could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the pack could not be made")]
    Failed,
    #[error("reading the cached pack: {0}")]
    Io(#[from] io::Error),
}

impl PackCache {
    /// Makes the cache folder, emptied of what an earlier process left.
    pub fn open(config: PackCacheConfig) -> io::Result<Arc<PackCache>> {
        std::fs::create_dir_all(&config.dir)?;
        let mut tag = [0u8; 6];
        getrandom::fill(&mut tag).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
        let cache = Arc::new(PackCache {
            // Files of this process carry its own tag: instances sharing a
            // data folder never write each other's files.
            tag: format!("{}-{}", std::process::id(), hex::encode(tag)),
            config,
            entries: Mutex::new(HashMap::new()),
            serial: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        });
        cache.sweep_leftovers();
        Ok(cache)
    }

    /// Removes files no process still uses: older than an hour (or twice
    /// the entries' lifetime) and not in this process's index. Another
    /// live instance's files are younger: its entries expire first.
    fn sweep_leftovers(&self) {
        let keep = self.config.max_age.saturating_mul(2).max(Duration::from_secs(3600));
        let ours: std::collections::HashSet<PathBuf> = self.lock().values().map(|e| e.path.clone()).collect();
        let Ok(dir) = std::fs::read_dir(&self.config.dir) else {
            return;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > keep);
            if old && !ours.contains(&path) {
                remove_file(&path);
            }
        }
    }

    /// 10% of the space free where `dir` is (or would be), for the default
    /// size cap; 1 GiB when that cannot be told.
    pub fn default_max_bytes(dir: &Path) -> u64 {
        let probe = dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
        free_bytes(probe).map_or(1 << 30, |free| free / 10)
    }

    /// The key of one `pack-objects` run for the repository at `git_dir`.
    /// `--progress`/`-q` are left out: they do not change the pack.
    pub fn key(git_dir: &Path, refs: &Refs, shallow: &[Oid], cmd: &PackObjectsCommand) -> Key {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(git_dir.as_os_str().as_encoded_bytes());
        for r in &refs.list {
            field(r.name().as_bytes());
            field(r.oid().as_ref().map_or(&[][..], Oid::as_bytes));
            field(r.peeled().as_ref().map_or(&[][..], Oid::as_bytes));
        }
        field(b"shallow");
        for s in shallow {
            field(s.as_bytes());
        }
        field(b"args");
        for a in cmd.args.iter().filter(|a| *a != "--progress" && *a != "-q") {
            field(a.as_bytes());
        }
        field(cmd.stdin.as_bytes());
        h.finalize().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reader of the entry for `key`: an existing one (a hit) unless it
    /// failed or expired, else a new one whose [`Producer`] the caller runs.
    pub fn join(self: &Arc<Self>, key: Key) -> io::Result<Joined> {
        let mut entries = self.lock();
        self.drop_expired(&mut entries);
        if let Some(entry) = entries.get(&key) {
            if entry.progress().status != Status::Failed {
                // Opened under the lock: the file cannot be removed first.
                if let Ok(file) = std::fs::File::open(&entry.path) {
                    entry.readers.fetch_add(1, Ordering::AcqRel);
                    let hits = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::info!(hits, misses = self.misses.load(Ordering::Relaxed), "pack cache hit");
                    return Ok(Joined {
                        reader: Reader {
                            messages: entry.messages.subscribe(),
                            entry: entry.clone(),
                            file,
                        },
                        producer: None,
                    });
                }
            }
        }
        // A name of its own: a failed run's file is removed without
        // touching its successor's.
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let path = self
            .config
            .dir
            .join(format!("{}-{}-{n}.pack", hex::encode(key), self.tag));
        // Full even after the old entries went (runs still being made):
        // this request packs without the cache.
        let held: u64 = entries.values().map(|e| e.progress().len).sum();
        if held >= self.config.max_bytes {
            return Err(io::Error::other("the pack cache is full"));
        }
        let out = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        let file = std::fs::File::open(&path)?;
        let (progress, _) = watch::channel(Progress {
            len: 0,
            status: Status::Producing,
        });
        let entry = Arc::new(Entry {
            key,
            path,
            created: Instant::now(),
            progress,
            messages: broadcast::channel(64).0,
            readers: AtomicUsize::new(1),
            abandoned: Notify::new(),
        });
        if let Some(old) = entries.insert(key, entry.clone()) {
            remove_file(&old.path);
        }
        let misses = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(hits = self.hits.load(Ordering::Relaxed), misses, "pack cache miss");
        Ok(Joined {
            reader: Reader {
                messages: entry.messages.subscribe(),
                entry: entry.clone(),
                file,
            },
            producer: Some(Producer {
                entry,
                file: tokio::fs::File::from_std(out),
                cache: self.clone(),
                finished: false,
            }),
        })
    }

    /// Drops expired entries that are done, and the oldest complete ones
    /// while the cache holds more than its cap.
    fn drop_expired(&self, entries: &mut HashMap<Key, Arc<Entry>>) {
        let max_age = self.config.max_age;
        let expired: Vec<Key> = entries
            .values()
            .filter(|e| e.progress().status != Status::Producing && e.created.elapsed() >= max_age)
            .map(|e| e.key)
            .collect();
        for key in expired {
            if let Some(e) = entries.remove(&key) {
                remove_file(&e.path);
            }
        }
        let mut total: u64 = entries.values().map(|e| e.progress().len).sum();
        while total > self.config.max_bytes {
            let Some(oldest) = entries
                .values()
                .filter(|e| e.progress().status == Status::Complete)
                .min_by_key(|e| e.created)
                .cloned()
            else {
                break;
            };
            entries.remove(&oldest.key);
            remove_file(&oldest.path);
            total -= oldest.progress().len;
        }
    }

    /// Drops what has expired: called now and then by the server.
    pub fn purge(&self) {
        {
            let mut entries = self.lock();
            self.drop_expired(&mut entries);
        }
        self.sweep_leftovers();
    }

    /// Ends a run that did not complete: out of the index, file removed.
    fn fail(&self, entry: &Entry) {
        let mut entries = self.lock();
        if entries
            .get(&entry.key)
            .is_some_and(|e| std::ptr::eq(Arc::as_ptr(e), entry))
        {
            entries.remove(&entry.key);
        }
        entry.progress.send_modify(|p| p.status = Status::Failed);
        remove_file(&entry.path);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Readers that have the file open keep reading it.
fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!("cannot remove the cached pack {}: {e}", path.display());
        }
    }
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` a place for the result.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

impl Producer {
    /// Appends pack bytes. `false` when the run should stop: the file could
    /// not be written (the entry has failed) or nobody reads it any more.
    pub async fn write(&mut self, data: &[u8]) -> bool {
        // Flushed before it is announced: tokio's file hands writes to a
        // blocking thread, so a written-to future is not yet in the file.
        let written = match self.file.write_all(data).await {
            Ok(()) => self.file.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!("cannot write the cached pack {}: {e}", self.entry.path.display());
            self.cache.fail(&self.entry);
            return false;
        }
        self.entry.progress.send_modify(|p| p.len += data.len() as u64);
        true
    }

    /// Passes progress on to the readers there are (a slow one skips).
    pub fn message(&self, text: &[u8]) {
        let _ = self.entry.messages.send(Arc::new(text.to_vec()));
    }

    /// What resolves when the last reader has left (then the run should
    /// stop, and [`Producer::finish`] be called with `false`).
    pub fn abandoned(&self) -> Abandoned {
        Abandoned {
            entry: self.entry.clone(),
            cache: self.cache.clone(),
        }
    }

    /// Ends the run: `ok` when `pack-objects` succeeded. The entry is
    /// complete only once the file is flushed; then it stays for later
    /// clients even if nobody reads it now.
    pub async fn finish(mut self, ok: bool) {
        self.finished = true;
        let flushed = ok && self.file.flush().await.is_ok();
        if !flushed {
            self.cache.fail(&self.entry);
            return;
        }
        let mut entries = self.cache.lock();
        self.entry.progress.send_modify(|p| p.status = Status::Complete);
        self.cache.drop_expired(&mut entries);
    }
}

/// See [`Producer::abandoned`].
pub struct Abandoned {
    entry: Arc<Entry>,
    cache: Arc<PackCache>,
}

impl Abandoned {
    pub async fn wait(&self) {
        loop {
            self.entry.abandoned.notified().await;
            // A reader may have joined since (joining holds the lock); if
            // none has, the entry leaves the index before the lock is let
            // go, so no one joins a run about to stop.
            let mut entries = self.cache.lock();
            if self.entry.readers.load(Ordering::Acquire) == 0 {
                if entries
                    .get(&self.entry.key)
                    .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
                {
                    entries.remove(&self.entry.key);
                }
                return;
            }
        }
    }
}

impl Reader {
    /// Streams the pack to `send`, as it grows, with the run's progress
    /// from when this reader joined, until the pack is complete (`Ok`) or
    /// the run failed; `send` returns `false` when the client is gone.
    pub async fn stream<F, Fut>(mut self, mut send: F) -> Result<(), CacheError>
    where
        F: FnMut(Piece) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut rx = self.entry.progress.subscribe();
        let mut file = tokio::fs::File::from_std(self.file.try_clone()?);
        file.seek(io::SeekFrom::Start(0)).await?;
        let mut pos: u64 = 0;
        // One side-band packet's worth at a time.
        let mut buf = vec![0u8; crate::git::pktline::MAX_SIDEBAND_DATA];
        loop {
            if !self.drain_messages(&mut send).await {
                return Ok(());
            }
            let p = *rx.borrow_and_update();
            if pos < p.len {
                let want = usize::try_from((p.len - pos).min(buf.len() as u64)).unwrap_or(buf.len());
                let n = file.read(&mut buf[..want]).await?;
                if n == 0 {
                    return Err(CacheError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the cached pack is shorter than written",
                    )));
                }
                pos += n as u64;
                if !send(Piece::Data(buf[..n].to_vec())).await {
                    return Ok(());
                }
                continue;
            }
            match p.status {
                // The last progress was sent before the run was marked done.
                Status::Complete => {
                    self.drain_messages(&mut send).await;
                    return Ok(());
                }
                Status::Failed => return Err(CacheError::Failed),
                Status::Producing => {
                    tokio::select! {
                        changed = rx.changed() => if changed.is_err() {
                            return Err(CacheError::Failed);
                        },
                        message = self.messages.recv() => if let Ok(m) = message {
                            if !send(Piece::Progress(m)).await {
                                return Ok(());
                            }
                        },
                    }
                }
            }
        }
    }

    /// Hands on the progress waiting; `false` when the client is gone.
    async fn drain_messages<F, Fut>(&mut self, send: &mut F) -> bool
    where
        F: FnMut(Piece) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        loop {
            match self.messages.try_recv() {
                Ok(m) => {
                    if !send(Piece::Progress(m)).await {
                        return false;
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_age: Duration, max_bytes: u64) -> (tempfile::TempDir, Arc<PackCache>) {
        let dir = tempfile::tempdir().unwrap();
        let cache = PackCache::open(PackCacheConfig {
            dir: dir.path().join("packs"),
            max_age,
            max_bytes,
        })
        .unwrap();
        (dir, cache)
    }

    async fn read_all(reader: Reader) -> Result<Vec<u8>, CacheError> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        reader
            .stream(move |piece| {
                if let Piece::Data(chunk) = piece {
                    sink.lock().unwrap().extend_from_slice(&chunk);
                }
                async { true }
            })
            .await?;
        let bytes = out.lock().unwrap().clone();
        Ok(bytes)
    }

    fn files(cache: &PackCache) -> usize {
        std::fs::read_dir(&cache.config.dir).unwrap().count()
    }

    #[tokio::test]
    async fn readers_follow_the_run_as_it_grows_and_after_it_ends() {
        let (_d, cache) = cache(Duration::from_secs(60), 1 << 30);
        let first = cache.join([1; 32]).unwrap();
        let mut producer = first.producer.expect("a miss starts the run");
        let early = tokio::spawn(read_all(first.reader));
        assert!(producer.write(b"PACK").await);
        let second = cache.join([1; 32]).unwrap();
        assert!(second.producer.is_none(), "a hit while producing");
        let joined = tokio::spawn(read_all(second.reader));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!early.is_finished(), "a reader waits for more, not for the end");
        assert!(producer.write(b" and the rest").await);
        producer.finish(true).await;
        assert_eq!(early.await.unwrap().unwrap(), b"PACK and the rest");
        assert_eq!(joined.await.unwrap().unwrap(), b"PACK and the rest");
        let later = cache.join([1; 32]).unwrap();
        assert!(later.producer.is_none());
        assert_eq!(read_all(later.reader).await.unwrap(), b"PACK and the rest");
        assert_eq!(
            (cache.hits.load(Ordering::Relaxed), cache.misses.load(Ordering::Relaxed)),
            (2, 1)
        );
    }

    #[tokio::test]
    async fn a_failed_run_is_never_served_as_complete() {
        let (_d, cache) = cache(Duration::from_secs(60), 1 << 30);
        let first = cache.join([2; 32]).unwrap();
        let mut producer = first.producer.unwrap();
        let reader = tokio::spawn(read_all(first.reader));
        assert!(producer.write(b"PACK half").await);
        producer.finish(false).await;
        assert!(matches!(reader.await.unwrap(), Err(CacheError::Failed)));
        assert_eq!((cache.len(), files(&cache)), (0, 0), "out of the index, file removed");
        let next = cache.join([2; 32]).unwrap();
        assert!(next.producer.is_some(), "the next client starts a new run");
    }

    #[tokio::test]
    async fn a_run_whose_last_reader_left_is_stopped_and_dropped() {
        let (_d, cache) = cache(Duration::from_secs(60), 1 << 30);
        let first = cache.join([3; 32]).unwrap();
        let producer = first.producer.unwrap();
        let abandoned = producer.abandoned();
        let second = cache.join([3; 32]).unwrap();
        drop(first.reader);
        let waited = tokio::time::timeout(Duration::from_millis(50), abandoned.wait()).await;
        assert!(waited.is_err(), "one reader is left");
        drop(second.reader);
        tokio::time::timeout(Duration::from_secs(5), abandoned.wait())
            .await
            .expect("told when the last reader leaves");
        assert_eq!(cache.len(), 0);
        producer.finish(false).await;
        assert!(cache.join([3; 32]).unwrap().producer.is_some());
    }

    #[tokio::test]
    async fn a_producer_dropped_unfinished_fails_its_readers() {
        let (_d, cache) = cache(Duration::from_secs(60), 1 << 30);
        let j = cache.join([7; 32]).unwrap();
        let mut producer = j.producer.unwrap();
        assert!(producer.write(b"PACK").await);
        let reader = tokio::spawn(read_all(j.reader));
        drop(producer);
        let read = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("not left waiting");
        assert!(matches!(read.unwrap(), Err(CacheError::Failed)));
        assert!(cache.join([7; 32]).unwrap().producer.is_some());
    }

    #[test]
    fn leftovers_of_dead_processes_go_and_live_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let packs = dir.path().join("packs");
        std::fs::create_dir_all(&packs).unwrap();
        let old = packs.join("aa-1-0.pack");
        let young = packs.join("bb-2-0.pack");
        std::fs::write(&old, "x").unwrap();
        std::fs::write(&young, "y").unwrap();
        let past = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        let config = PackCacheConfig {
            dir: packs.clone(),
            max_age: Duration::from_secs(60),
            max_bytes: 1 << 30,
        };
        let _cache = PackCache::open(config).unwrap();
        assert!(!old.exists(), "a dead process's file is removed");
        assert!(young.exists(), "another instance's recent file is left alone");
    }

    #[tokio::test]
    async fn a_full_cache_is_passed_by() {
        let (_d, cache) = cache(Duration::from_secs(60), 4);
        let j = cache.join([8; 32]).unwrap();
        let mut producer = j.producer.unwrap();
        assert!(producer.write(b"PACK and more").await);
        assert!(
            cache.join([9; 32]).is_err(),
            "a run still being made fills it: pack without the cache"
        );
        producer.finish(true).await;
    }

    #[tokio::test]
    async fn entries_expire_and_the_oldest_go_past_the_cap() {
        let (_d, cache) = self::cache(Duration::ZERO, 1 << 30);
        let j = cache.join([4; 32]).unwrap();
        let mut p = j.producer.unwrap();
        assert!(p.write(b"x").await);
        p.finish(true).await;
        drop(j.reader);
        assert!(cache.join([4; 32]).unwrap().producer.is_some(), "expired: a miss");

        let (_d2, cache) = self::cache(Duration::from_secs(60), 10);
        for key in [[5; 32], [6; 32]] {
            let j = cache.join(key).unwrap();
            let mut p = j.producer.unwrap();
            assert!(p.write(b"12345678").await);
            p.finish(true).await;
        }
        assert_eq!(cache.len(), 1, "the older entry made room");
        assert!(cache.join([6; 32]).unwrap().producer.is_none());
        assert_eq!(files(&cache), 1);
    }
}
