//! What the process does, in Prometheus text format at `/-/metrics`: HTTP
//! requests by route group and status with their durations, Git
//! operations and their bytes, authentication results by kind, the pack
//! cache, mail, and (read when scraped) active bans, the database pool and
//! busy blocking threads.
//!
//! One set per process, as Prometheus clients keep them ([`get`]): the
//! counters are bumped where things happen, in whichever layer that is.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    group: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    operation: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type Histograms = Family<GroupLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Histograms,
    git_operations: Family<OperationLabels, Counter>,
    git_bytes: Family<BytesLabels, Counter>,
    auth: Family<ResultLabels, Counter>,
    pack_cache: Family<ResultLabels, Counter>,
    mail: Family<ResultLabels, Counter>,
    bans: Gauge,
    pool: Family<StateLabels, Gauge>,
    blocking_busy: Gauge,
    blocking_count: AtomicI64,
}

/// The route group of a request path, a label of few values: `api`,
/// `monitoring` (the probes and the metrics), `git`, `git_lfs`, `web` (the
/// pages, under `/-/` too, and their assets).
pub fn route_group(path: &str) -> &'static str {
    if path.starts_with("/api/") {
        "api"
    } else if matches!(path, "/-/liveness" | "/-/readiness" | "/-/metrics") {
        "monitoring"
    } else if path.contains(".git/info/lfs") || path.contains("/info/lfs/") {
        "git_lfs"
    } else if path.ends_with("/info/refs") || path.ends_with("/git-upload-pack") || path.ends_with("/git-receive-pack")
    {
        "git"
    } else {
        "web"
    }
}

/// What a Git request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitOperation {
    /// An upload-pack with no `have`: everything.
    Clone,
    /// An upload-pack with `have`s.
    Fetch,
    Push,
}

impl GitOperation {
    fn label(self) -> &'static str {
        match self {
            GitOperation::Clone => "clone",
            GitOperation::Fetch => "fetch",
            GitOperation::Push => "push",
        }
    }
}

/// How an authentication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    TokenOk,
    TokenUnknown,
    TokenExpired,
    TokenRevoked,
    /// A rotated-away token: its family is revoked.
    TokenReused,
    /// A valid token of a blocked user.
    UserBlocked,
    PasswordOk,
    PasswordWrong,
    /// A password where only a token may be used (2FA, or passwords off
    /// for Git).
    PasswordRefused,
    /// A wrong two-factor code.
    TwoFactorWrong,
    /// The client is banned: nothing was checked.
    Banned,
    /// The account is locked after failed passwords.
    AccountLocked,
}

impl AuthResult {
    fn label(self) -> &'static str {
        match self {
            AuthResult::TokenOk => "token_ok",
            AuthResult::TokenUnknown => "token_unknown",
            AuthResult::TokenExpired => "token_expired",
            AuthResult::TokenRevoked => "token_revoked",
            AuthResult::TokenReused => "token_reused_after_rotation",
            AuthResult::UserBlocked => "user_blocked",
            AuthResult::PasswordOk => "password_ok",
            AuthResult::PasswordWrong => "password_wrong",
            AuthResult::PasswordRefused => "password_refused_token_required",
            AuthResult::TwoFactorWrong => "two_factor_wrong",
            AuthResult::Banned => "banned",
            AuthResult::AccountLocked => "account_locked",
        }
    }
}

/// What the pack cache did with a fetch's pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Followed a pack another request made or is making.
    Hit,
    /// Made the pack (and kept it for the next).
    Miss,
    /// Made without the cache (it is full or failed).
    Bypass,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gitpat");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route group and status",
            requests.clone(),
        );
        let durations: Histograms =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 17)));
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's head to its answer's head (a streamed body goes on after), by route group",
            durations.clone(),
        );
        let git_operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "git_operations",
            "Git clones, fetches and pushes served (a push counted once its refs are reported)",
            git_operations.clone(),
        );
        let git_bytes = Family::<BytesLabels, Counter>::default();
        registry.register(
            "git_bytes",
            "Bytes of Git requests (in) and answers (out), by operation",
            git_bytes.clone(),
        );
        let auth = Family::<ResultLabels, Counter>::default();
        registry.register(
            "auth_results",
            "Authentications by how they ended (tokens, passwords, two-factor codes, bans)",
            auth.clone(),
        );
        let pack_cache = Family::<ResultLabels, Counter>::default();
        registry.register(
            "pack_cache_requests",
            "Fetch packs by what the pack cache did: hit, miss (made and kept) or bypass",
            pack_cache.clone(),
        );
        let mail = Family::<ResultLabels, Counter>::default();
        registry.register("mails", "Mails by outcome: sent or failed", mail.clone());
        let bans = Gauge::default();
        registry.register(
            "active_bans",
            "Clients and accounts locked out now (read when scraped)",
            bans.clone(),
        );
        let pool = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "This process's database connections: in_use or idle",
            pool.clone(),
        );
        let blocking_busy = Gauge::default();
        registry.register(
            "blocking_threads_busy",
            "Blocking threads running work now (database, libgit2, argon2)",
            blocking_busy.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            git_operations,
            git_bytes,
            auth,
            pack_cache,
            mail,
            bans,
            pool,
            blocking_busy,
            blocking_count: AtomicI64::new(0),
        }
    }

    pub fn request(&self, path: &str, status: u16, seconds: f64) {
        let group = route_group(path);
        self.requests.get_or_create(&RequestLabels { group, status }).inc();
        self.durations.get_or_create(&GroupLabels { group }).observe(seconds);
    }

    pub fn git_operation(&self, op: GitOperation) {
        self.git_operations
            .get_or_create(&OperationLabels { operation: op.label() })
            .inc();
    }

    pub fn git_bytes_in(&self, op: GitOperation, bytes: u64) {
        self.git_bytes
            .get_or_create(&BytesLabels {
                operation: op.label(),
                direction: "in",
            })
            .inc_by(bytes);
    }

    pub fn git_bytes_out(&self, op: GitOperation, bytes: u64) {
        self.git_bytes
            .get_or_create(&BytesLabels {
                operation: op.label(),
                direction: "out",
            })
            .inc_by(bytes);
    }

    pub fn auth(&self, result: AuthResult) {
        self.auth.get_or_create(&ResultLabels { result: result.label() }).inc();
    }

    pub fn pack_cache(&self, result: CacheResult) {
        let result = match result {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Bypass => "bypass",
        };
        self.pack_cache.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn mail(&self, sent: bool) {
        let result = if sent { "sent" } else { "failed" };
        self.mail.get_or_create(&ResultLabels { result }).inc();
    }

    /// The text of a scrape, with the values read at scrape time
    /// (`active_bans` unchanged when `None`: it could not be read).
    pub fn render(&self, active_bans: Option<i64>, pool_in_use: i64, pool_idle: i64) -> String {
        if let Some(n) = active_bans {
            self.bans.set(n);
        }
        self.pool
            .get_or_create(&StateLabels { state: "in_use" })
            .set(pool_in_use);
        self.pool.get_or_create(&StateLabels { state: "idle" }).set(pool_idle);
        self.blocking_busy.set(self.blocking_count.load(Ordering::Relaxed));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Counts a blocking thread busy while it lives.
struct Busy;

impl Busy {
    fn enter() -> Busy {
        get().blocking_count.fetch_add(1, Ordering::Relaxed);
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        get().blocking_count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `web::block` (started at once, as it is), counted in
/// `blocking_threads_busy` while `f` runs: every piece of blocking work of
/// the server goes through here.
pub fn block<F, R>(f: F) -> impl std::future::Future<Output = Result<R, actix_web::error::BlockingError>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    actix_web::web::block(move || {
        let _busy = Busy::enter();
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_groups() {
        for (path, group) in [
            ("/api/v4/projects", "api"),
            ("/-/metrics", "monitoring"),
            ("/-/liveness", "monitoring"),
            ("/-/readiness", "monitoring"),
            ("/alice/tools.git/info/refs", "git"),
            ("/alice/tools.git/git-upload-pack", "git"),
            ("/alice/tools/git-receive-pack", "git"),
            ("/alice/tools.git/info/lfs/objects/batch", "git_lfs"),
            ("/-/user_settings/personal_access_tokens", "web"),
            ("/-/user_settings/two_factor_auth", "web"),
            ("/-/assets/gitpat.css", "web"),
            ("/users/sign_in", "web"),
            ("/alice/tools", "web"),
        ] {
            assert_eq!(route_group(path), group, "{path}");
        }
    }

    #[test]
    fn a_scrape_shows_what_was_counted() {
        let m = Metrics::new();
        m.request("/api/v4/version", 200, 0.003);
        m.request("/api/v4/version", 200, 0.003);
        m.git_operation(GitOperation::Clone);
        m.git_bytes_out(GitOperation::Clone, 1234);
        m.auth(AuthResult::TokenExpired);
        m.pack_cache(CacheResult::Hit);
        m.mail(false);
        let text = m.render(Some(3), 1, 2);
        for line in [
            "gitpat_http_requests_total{group=\"api\",status=\"200\"} 2",
            "gitpat_http_request_duration_seconds_count{group=\"api\"} 2",
            "gitpat_git_operations_total{operation=\"clone\"} 1",
            "gitpat_git_bytes_total{operation=\"clone\",direction=\"out\"} 1234",
            "gitpat_auth_results_total{result=\"token_expired\"} 1",
            "gitpat_pack_cache_requests_total{result=\"hit\"} 1",
            "gitpat_mails_total{result=\"failed\"} 1",
            "gitpat_active_bans 3",
            "gitpat_db_pool_connections{state=\"idle\"} 2",
            "gitpat_blocking_threads_busy 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }
}
