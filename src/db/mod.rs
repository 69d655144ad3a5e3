//! Storage: one diesel connection type over SQLite (embedded, the default) and
//! PostgreSQL (for several gitpat instances), a bounded pool, and the embedded
//! migrations of each backend. Queries live in the model modules beside this.

pub mod audit_event;
pub mod auth_failure;
pub mod instance;
pub mod member;
pub mod notification;
pub mod page;
pub mod project;
pub mod schema;
pub mod session;
pub mod setting;
pub mod token;
pub mod user;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend. Every query in gitpat is written once
/// against this type.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConn>>;
pub type PooledConn = PooledConnection<ConnectionManager<DbConn>>;

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `postgres://` or `postgresql://` selects PostgreSQL, `sqlite://` or a
    /// plain file path SQLite; any other scheme is refused.
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres);
        }
        if url.starts_with("sqlite://") || !url.contains("://") {
            return Ok(Backend::Sqlite);
        }
        let scheme = url.split("://").next().unwrap_or_default();
        bail!("unsupported database URL scheme {scheme:?}: use postgres://... or a SQLite file path")
    }
}

/// Opens one connection, choosing the backend from the URL (never by trial:
/// SQLite would accept any string as a file name).
pub fn establish(url: &str) -> anyhow::Result<DbConn> {
    match Backend::from_url(url)? {
        Backend::Postgres => PgConnection::establish(url)
            .map(DbConn::Pg)
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact_url(url))),
        Backend::Sqlite => {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            let mut conn =
                SqliteConnection::establish(path).with_context(|| format!("cannot open SQLite database {path}"))?;
            configure_sqlite(&mut conn)?;
            Ok(DbConn::Sqlite(conn))
        }
    }
}

fn configure_sqlite(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
    )
    .context("cannot configure the SQLite connection")
}

/// Hides the password of a URL like `postgres://user:secret@host/db`, and
/// of `?password=...`.
pub fn redact_url(url: &str) -> String {
    crate::redact::url(url, true)
}

#[derive(Debug)]
struct ConnectionSetup;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        if let DbConn::Sqlite(c) = conn {
            c.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Applies the pending migrations of the backend, then builds the pool.
pub fn open_pool(url: &str, max_size: u32) -> anyhow::Result<DbPool> {
    let mut conn = establish(url)?;
    migrate(&mut conn)?;
    drop(conn);
    let backend = Backend::from_url(url)?;
    let url = match backend {
        Backend::Sqlite => url.strip_prefix("sqlite://").unwrap_or(url).to_string(),
        Backend::Postgres => url.to_string(),
    };
    let manager = ConnectionManager::<DbConn>::new(url.clone());
    Pool::builder()
        .max_size(max_size)
        // A `SELECT 1` before each use finds a PostgreSQL connection the
        // server dropped; an SQLite file cannot drop one.
        .test_on_check_out(backend == Backend::Postgres)
        .connection_timeout(Duration::from_secs(30))
        .connection_customizer(Box::new(ConnectionSetup))
        .build(manager)
        .with_context(|| format!("cannot open a database pool on {}", redact_url(&url)))
}

/// Runs the embedded migrations of the connection's backend. On PostgreSQL an
/// advisory lock keeps several instances starting at once from racing.
pub fn migrate(conn: &mut DbConn) -> anyhow::Result<()> {
    match conn {
        DbConn::Sqlite(c) => {
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("SQLite migration failed: {e}"))?;
        }
        DbConn::Pg(c) => {
            const LOCK: &str = "SELECT pg_advisory_lock(7236410298340129)";
            const UNLOCK: &str = "SELECT pg_advisory_unlock(7236410298340129)";
            c.batch_execute(LOCK).context("cannot take the migration lock")?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("PostgreSQL migration failed: {e}"));
            c.batch_execute(UNLOCK).context("cannot release the migration lock")?;
            result?;
        }
    }
    Ok(())
}

/// The SQLite URL of a data directory's embedded database.
pub fn sqlite_url_for(data_dir: &Path) -> String {
    data_dir.join("gitpat.db").to_string_lossy().into_owned()
}

/// Runs `f` in a transaction that writes. On SQLite it starts with `BEGIN
/// IMMEDIATE`: the write lock is taken first (waiting under the busy
/// timeout), so a transaction that reads and then writes never meets
/// `database is locked` when it upgrades, which a deferred one would, the
/// busy timeout notwithstanding. Inside it, `conn.transaction` nests as a
/// savepoint as usual. On PostgreSQL it is `conn.transaction`.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConn::Sqlite(inner) = conn else {
        return conn.transaction(f);
    };
    if AnsiTransactionManager::transaction_manager_status_mut(inner)
        .transaction_depth()
        .map_err(E::from)?
        .is_some()
    {
        // Already in one (which took the lock if it writes): nest.
        return conn.transaction(f);
    }
    AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            <DbConn as Connection>::TransactionManager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

/// True when a diesel error is a unique-constraint violation.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(Backend::from_url("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::from_url("postgresql://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::from_url("/var/lib/gitpat/gitpat.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("sqlite:///tmp/x.db").unwrap(), Backend::Sqlite);
        let err = Backend::from_url("mysql://u@h/db").unwrap_err().to_string();
        assert!(err.contains("unsupported database URL scheme \"mysql\""), "{err}");
    }

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/gitpat"),
            "postgres://bob:***@db:5432/gitpat"
        );
        assert_eq!(redact_url("postgres://db/gitpat"), "postgres://db/gitpat");
        assert_eq!(redact_url("/tmp/x.db"), "/tmp/x.db");
    }

    #[test]
    fn instance_events_recorded_before_gitlabs_name_take_it() {
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = establish(&sqlite_url_for(dir.path())).unwrap();
        migrate(&mut conn).unwrap();
        let DbConn::Sqlite(c) = &mut conn else { unreachable!() };
        // Back to before the rename, with events of both kinds.
        while c
            .applied_migrations()
            .unwrap()
            .iter()
            .any(|v| v.to_string().starts_with("20261209000001"))
        {
            c.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
        }
        c.batch_execute(
            "INSERT INTO audit_events (author_name, entity_type, entity_id, event_name, details, created_at)
             VALUES ('cli', 'Instance', 1, 'application_setting_updated', '{}', '2026-12-01 00:00:00'),
                    ('cli', 'User', 1, 'user_blocked', '{}', '2026-12-01 00:00:00');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows = audit_event::AuditQuery::default();
        let types: Vec<String> = page::Listing::rows(&rows, &mut conn, 0, None)
            .unwrap()
            .into_iter()
            .map(|e| e.entity_type)
            .collect();
        assert_eq!(types, ["User", "Gitlab::Audit::InstanceScope"]);
    }

    #[test]
    fn migration_folders_match_across_backends() {
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let sqlite = names("migrations/sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, names("migrations/postgres"));
    }
}
