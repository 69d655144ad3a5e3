//! Test support: a database on each backend (SQLite always, PostgreSQL when
//! `GITPAT_TEST_DATABASE_URL` is set, a fresh database per test; `./test`
//! sets it), and a runner for the built `gitpat` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use gitpat::db::{self, DbConn};

pub mod api;
pub mod browser;
pub mod repo;
pub mod serve;
pub mod server;
pub mod smtp;
pub mod tls;
pub mod web;

pub const PG_ENV: &str = "GITPAT_TEST_DATABASE_URL";

/// The Python of the test tools: `GITPAT_TEST_PYTHON` (`./test` sets it to
/// its venv's), else `python3`.
pub fn python() -> String {
    std::env::var("GITPAT_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// A database for one test; a PostgreSQL one is dropped when this is.
pub struct TestDb {
    pub backend: &'static str,
    pub url: String,
    pg_admin: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = db::sqlite_url_for(dir.path());
        TestDb {
            backend: "sqlite",
            url,
            pg_admin: None,
            _dir: dir,
        }
    }

    /// A new empty database in the cluster of `GITPAT_TEST_DATABASE_URL`.
    pub fn postgres(admin_url: &str) -> TestDb {
        let name = format!("gitpat_test_{}", gitpat::fsutil::random_hex(8).unwrap());
        let mut admin = diesel::PgConnection::establish(admin_url).expect("connect to the test PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        TestDb {
            backend: "postgres",
            url: with_database(admin_url, &name),
            pg_admin: Some((admin_url.to_string(), name)),
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The same database again, for a second instance on it (dropping it
    /// drops nothing; this one must outlive it).
    pub fn same(&self) -> TestDb {
        TestDb {
            backend: self.backend,
            url: self.url.clone(),
            pg_admin: None,
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A migrated connection.
    pub fn conn(&self) -> DbConn {
        let mut c = db::establish(&self.url).expect("connect");
        db::migrate(&mut c).expect("migrate");
        c
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.pg_admin {
            if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// `url` (`postgres://user@host:port/db?params`) naming database `name`
/// instead, its parameters (`sslmode=...`) kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    let base = path.rsplit_once('/').map(|(b, _)| b).expect("URL with a database name");
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// SQLite, and PostgreSQL when the environment names a cluster.
pub fn backends() -> Vec<TestDb> {
    let mut v = vec![TestDb::sqlite()];
    if let Ok(url) = std::env::var(PG_ENV) {
        if !url.is_empty() {
            v.push(TestDb::postgres(&url));
        }
    }
    v
}

/// The built binary, run against one data directory and database.
pub struct Gitpat {
    pub data_dir: PathBuf,
    pub db: TestDb,
    _dir: tempfile::TempDir,
}

impl Gitpat {
    pub fn new(db: TestDb) -> Gitpat {
        let dir = tempfile::tempdir().expect("tempdir");
        Gitpat {
            data_dir: dir.path().join("data"),
            db,
            _dir: dir,
        }
    }

    /// One per backend.
    pub fn each() -> Vec<Gitpat> {
        backends().into_iter().map(Gitpat::new).collect()
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gitpat"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITPAT_DATA_DIR", &self.data_dir)
            .env("GITPAT_LOG", "warn");
        if self.db.backend == "postgres" {
            c.env("GITPAT_DATABASE_URL", &self.db.url);
        }
        c
    }

    /// Runs with `stdin` as standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gitpat");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().expect("wait for gitpat")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    /// Runs, expects success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "[{}] gitpat {args:?} failed: {}",
            self.db.backend,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs, expects failure with nothing on stdout, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "[{}] gitpat {args:?} should fail",
            self.db.backend
        );
        assert!(
            out.stdout.is_empty(),
            "a failure printed to stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// A connection to the database the binary uses: on SQLite the one in
    /// its data directory (`self.db`'s own file is not it).
    pub fn conn(&self) -> DbConn {
        let url = match self.db.backend {
            "sqlite" => db::sqlite_url_for(&self.data_dir),
            _ => self.db.url.clone(),
        };
        db::establish(&url).expect("connect to the binary's database")
    }

    /// `gitpat token create` for `user`: the token.
    pub fn token(&self, user: &str, name: &str, scopes: &str) -> String {
        self.ok(&["token", "create", "--user", user, "--name", name, "--scopes", scopes])
            .trim()
            .to_string()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("JSON output")
    }

    pub fn repos_dir(&self) -> PathBuf {
        self.data_dir.join("repositories")
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
