//! An in-process gitpat server for the Git tests (one per backend), the
//! helpers that set up users, tokens and repositories through the library,
//! a hermetic runner for the real git clients, and a tiny raw HTTP client
//! for exact status/header/body checks.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use base64::Engine;
use chrono::{NaiveDate, Utc};
use gitpat::app::App;
use gitpat::config::Config;
use gitpat::db::project::Project;
use gitpat::db::user::User;
use gitpat::db::PooledConn;
use gitpat::git::store::RepoPath;
use gitpat::service::{repos, tokens, users};
use gitpat::settings::Settings;

use super::{backends, TestDb};

/// Every socket read or write of the raw client gives up after this.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(30);
/// The test servers give up a request body silent this long (production:
/// `DEFAULT_BODY_IDLE_TIMEOUT_SECONDS`), so the test of it waits seconds.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Every git command is killed (and the test fails) after this.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(180);

/// The real server, in this process, on a free port of 127.0.0.1.
/// The pack cache is on in tests, as by default, entries kept this long.
pub const PACK_CACHE_MAX_AGE: Option<Duration> = Some(Duration::from_secs(300));

pub struct TestServer {
    pub db: TestDb,
    pub app: App,
    pub addr: SocketAddr,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start(db: TestDb) -> TestServer {
        TestServer::start_with_engine(db, "auto")
    }

    /// With the pack engine `engine` (`auto`, `git` or `libgit2`).
    pub fn start_with_engine(db: TestDb, engine: &str) -> TestServer {
        TestServer::start_with(db, engine, None)
    }

    /// With the pack engine `engine` and `external_url`.
    pub fn start_with(db: TestDb, engine: &str, external_url: Option<&str>) -> TestServer {
        TestServer::start_configured(db, engine, external_url, PACK_CACHE_MAX_AGE, |_| {})
    }

    /// With the pack cache's entries kept `max_age` (`None`: no cache), and
    /// `adjust` given the app before it serves.
    pub fn start_configured(
        db: TestDb,
        engine: &str,
        external_url: Option<&str>,
        max_age: Option<Duration>,
        adjust: impl FnOnce(&mut App),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        TestServer::start_in(dir, db, engine, external_url, max_age, adjust)
    }

    /// A second instance on this one's database, with a data directory
    /// of its own and the same secret key (as instances sharing a
    /// database must have: the database records which key it was set up
    /// with).
    pub fn another_instance(&self) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("the data dir");
        std::fs::copy(&self.app.config.secret_key_file, data_dir.join("secret_key")).expect("copy the secret key");
        TestServer::start_in(
            dir,
            self.db.same(),
            self.app.engine.name(),
            None,
            PACK_CACHE_MAX_AGE,
            |_| {},
        )
    }

    fn start_in(
        dir: tempfile::TempDir,
        db: TestDb,
        engine: &str,
        external_url: Option<&str>,
        max_age: Option<Duration>,
        adjust: impl FnOnce(&mut App),
    ) -> TestServer {
        let data_dir = dir.path().join("data");
        let config = Config {
            data_dir: data_dir.clone(),
            database_url: db.url.clone(),
            listen: "127.0.0.1:0".into(),
            secret_key_file: data_dir.join("secret_key"),
            db_pool_size: 4,
            pack_engine: engine.to_string(),
            body_idle_timeout: BODY_IDLE_TIMEOUT,
            external_url: external_url.map(str::to_string),
            mail: Default::default(),
            pack_cache: max_age.map(|max_age| gitpat::git::pack_cache::PackCacheConfig {
                dir: data_dir.join("cache").join("packs"),
                max_age,
                max_bytes: 1 << 30,
            }),
            tls: None,
            listen_http: None,
            hsts_max_age_seconds: 0,
            shutdown_timeout: Duration::from_secs(5),
            log_format: Default::default(),
            metrics_allowlist: vec![gitpat::net::Cidr::parse("127.0.0.0/8").expect("a CIDR block")],
            metrics_listen: None,
        };
        let mut app = App::open(config)
            .and_then(App::with_pack_cache)
            .unwrap_or_else(|e| panic!("[{}] App::open: {e:#}", db.backend));
        adjust(&mut app);
        let (tx, rx) = std::sync::mpsc::channel();
        let server_app = app.clone();
        let thread = std::thread::Builder::new()
            .name("gitpat-test-server".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match gitpat::http::bind(server_app, "127.0.0.1:0") {
                        Ok((server, addrs)) => {
                            let _ = tx.send(Ok((server.handle(), addrs)));
                            let _ = server.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("{e:#}")));
                        }
                    }
                })
            })
            .expect("spawn the server thread");
        let (handle, addrs) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not start")
            .unwrap_or_else(|e| panic!("[{}] bind: {e}", db.backend));
        let addr = *addrs.first().expect("the server listens somewhere");
        TestServer {
            db,
            app,
            addr,
            handle: Some(handle),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// One server per backend.
    pub fn each() -> Vec<TestServer> {
        backends().into_iter().map(TestServer::start).collect()
    }

    /// One server per backend, with the pack engine `engine`.
    pub fn each_with_engine(engine: &str) -> Vec<TestServer> {
        backends()
            .into_iter()
            .map(|db| TestServer::start_with_engine(db, engine))
            .collect()
    }

    pub fn backend(&self) -> &'static str {
        self.db.backend
    }

    /// `http://127.0.0.1:<port><path>`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL with `user:secret@` as userinfo, percent-encoded.
    pub fn url_as(&self, user: &str, secret: &str, path: &str) -> String {
        format!("http://{}:{}@{}{path}", pct(user), pct(secret), self.addr)
    }

    /// A connection from the server's own pool.
    pub fn conn(&self) -> PooledConn {
        self.app.conn().expect("a database connection")
    }

    pub fn setting(&self, key: &str, value: &str) {
        Settings::store(
            &mut self.conn(),
            &gitpat::service::audit::Actor::cli(),
            key,
            value,
            chrono::Utc::now(),
        )
        .unwrap_or_else(|e| panic!("setting {key}={value}: {e}"));
        // As the settings API would: this instance applies it at once.
        self.app.reload_settings();
    }

    /// A user `<name>@example.com`.
    pub fn user(&self, name: &str, admin: bool, password: Option<&str>) -> User {
        let email = format!("{name}@example.com");
        let display = format!("{name} Person");
        let req = users::NewUserRequest {
            username: name,
            email: &email,
            name: Some(&display),
            password,
            is_admin: admin,
        };
        users::create(
            &mut self.conn(),
            &gitpat::service::audit::Actor::cli(),
            &req,
            Utc::now(),
        )
        .unwrap_or_else(|e| panic!("create user {name}: {e}"))
    }

    /// A new token of `user`; its secret.
    pub fn token(&self, user: &str, scopes: &[&str], expires: Option<NaiveDate>) -> String {
        let conn = &mut self.conn();
        let u = users::get(conn, user).expect("the token's user");
        let settings = Settings::load(conn).expect("settings");
        let sc: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let req = tokens::NewTokenRequest {
            user: &u,
            name: "git tests",
            description: None,
            scopes: &sc,
            expires_at: expires,
            token: None,
            impersonation: false,
            actor: &gitpat::service::audit::Actor::cli(),
        };
        tokens::create(conn, &self.app.key, &settings, &req, Utc::now())
            .unwrap_or_else(|e| panic!("create a token for {user}: {e}"))
            .1
            .expose()
            .to_string()
    }

    /// The stored row of a token, by its secret.
    pub fn token_row(&self, secret: &str) -> gitpat::db::token::TokenRow {
        tokens::find_by_secret(
            &mut self.conn(),
            &self.app.key,
            &gitpat::auth::token::PlainToken::new(secret.to_string()),
        )
        .expect("the token exists")
    }

    /// An empty repository.
    pub fn repo(&self, path: &str, owner: &str, visibility: &str) -> Project {
        self.create_repo(path, owner, visibility, None)
    }

    /// A repository imported from `src` (a fixture).
    pub fn import(&self, path: &str, owner: &str, visibility: &str, src: &Path) -> Project {
        self.create_repo(path, owner, visibility, Some(src))
    }

    fn create_repo(&self, path: &str, owner: &str, visibility: &str, import: Option<&Path>) -> Project {
        let req = repos::NewRepoRequest {
            path,
            name: None,
            owner: Some(owner),
            visibility: Some(visibility),
            default_branch: None,
            description: None,
            import,
        };
        repos::create(&mut self.conn(), &self.app.store, &req, Utc::now())
            .unwrap_or_else(|e| panic!("create the repository {path}: {e}"))
    }

    pub fn member(&self, path: &str, user: &str, role: &str) {
        repos::add_member(&mut self.conn(), path, user, role, Utc::now())
            .unwrap_or_else(|e| panic!("add {user} to {path} as {role}: {e}"));
    }

    /// The repository's row, if any.
    pub fn project(&self, path: &str) -> Option<Project> {
        gitpat::db::project::find_by_path(&mut self.conn(), path).expect("query projects")
    }

    /// The bare repository of `path` (`namespace/name`) on disk.
    pub fn repo_dir(&self, path: &str) -> PathBuf {
        self.app
            .store
            .path_of(&RepoPath::parse(path).expect("a valid repository path"))
    }

    /// Sends `method path` with `headers` and `body` (HTTP/1.1,
    /// `Connection: close`, `Content-Length` added) and reads the reply.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let reply = self
            .raw_bytes(&bytes, false)
            .unwrap_or_else(|e| panic!("[{}] {method} {path}: {e}", self.backend()));
        RawResponse::parse(&reply).unwrap_or_else(|e| {
            panic!(
                "[{}] {method} {path}: unreadable reply ({e}): {:?}",
                self.backend(),
                String::from_utf8_lossy(&reply)
            )
        })
    }

    /// Writes `request` exactly as given, closes the writing half if
    /// `half_close` (to cut a request off), and reads everything the server
    /// sends until it closes (bounded by [`RAW_TIMEOUT`] per read).
    ///
    /// Do not half-close a complete request: actix-http then fails a
    /// request body it has not handed over yet ("payload reached EOF before
    /// completing"), which git never provokes.
    pub fn raw_bytes(&self, request: &[u8], half_close: bool) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&self.addr, RAW_TIMEOUT)?;
        s.set_read_timeout(Some(RAW_TIMEOUT))?;
        s.set_write_timeout(Some(RAW_TIMEOUT))?;
        s.write_all(request)?;
        s.flush()?;
        if half_close {
            let _ = s.shutdown(Shutdown::Write);
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            futures::executor::block_on(h.stop(false));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The null object id of a create or delete command.
pub const ZERO: &str = "0000000000000000000000000000000000000000";

/// A pkt-line holding `data`.
pub fn pkt(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{:04x}", data.len() + 4).into_bytes();
    v.extend_from_slice(data);
    v
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `Basic <base64(user:secret)>`.
pub fn basic(user: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// A reply read by the raw client, its body already de-chunked.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Parses a whole HTTP/1.1 reply (the connection was closed after it).
    pub fn parse(raw: &[u8]) -> Result<RawResponse, String> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no end of the headers")?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or("no status line")?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(format!("not HTTP/1.x: {status_line:?}"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        for l in lines {
            let (k, v) = l.split_once(':').ok_or_else(|| format!("bad header line {l:?}"))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let rest = &raw[end + 4..];
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body = if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            dechunk(rest)?
        } else if let Some(len) = find("content-length") {
            let len: usize = len.parse().map_err(|_| format!("bad Content-Length {len:?}"))?;
            if rest.len() < len {
                return Err(format!("the body has {} of {len} bytes", rest.len()));
            }
            rest[..len].to_vec()
        } else {
            rest.to_vec()
        };
        Ok(RawResponse { status, headers, body })
    }

    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of header `name`; panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "header {name} appears {} times: {all:?}", all.len());
        all.first().copied()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line without its end")?;
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
            .map_err(|_| format!("bad chunk size {line:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("the body ends inside a chunk (no final chunk)".into());
        }
        out.extend_from_slice(&rest[..size]);
        if &rest[size..size + 2] != b"\r\n" {
            return Err("a chunk does not end with CRLF".into());
        }
        rest = &rest[size + 2..];
    }
}

/// One git client, run hermetically: no system or global config, no
/// credential helper, no prompt, fixed identities and dates; protocol v0
/// unless made with [`gits_speaking`].
pub struct Git {
    pub bin: PathBuf,
    /// `protocol.version` to force, or `None` for the client's default.
    pub protocol: Option<&'static str>,
    /// `git version 2.47.3`.
    pub version: String,
    /// Named in every assertion message: the backend under test.
    ctx: std::sync::Mutex<String>,
    home: tempfile::TempDir,
}

/// The git binaries of this machine (`/usr/bin/git`, `/usr/local/bin/git`),
/// forced to protocol v0.
pub fn gits() -> Vec<Git> {
    gits_speaking(Some("0"))
}

/// The git binaries of this machine with `protocol.version` forced to
/// `protocol`, or left at the client's default (v2) for `None`.
pub fn gits_speaking(protocol: Option<&'static str>) -> Vec<Git> {
    let v: Vec<Git> = ["/usr/bin/git", "/usr/local/bin/git"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .map(|bin| Git {
            protocol,
            ..Git::new(bin)
        })
        .collect();
    assert!(!v.is_empty(), "no git binary on this machine");
    v
}

impl Git {
    pub fn new(bin: PathBuf) -> Git {
        let out = Command::new(&bin).arg("--version").output().expect("git --version");
        Git {
            version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            protocol: Some("0"),
            bin,
            ctx: std::sync::Mutex::new(String::new()),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Sets what assertion messages name besides the git version (the
    /// backend), and returns `[<backend> / git version x.y.z]`.
    pub fn context(&self, backend: &str) -> String {
        *self.ctx.lock().unwrap_or_else(|p| p.into_inner()) = backend.to_string();
        self.label()
    }

    /// `[<backend> / git version x.y.z]`.
    pub fn label(&self) -> String {
        let ctx = self.ctx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let protocol = match self.protocol {
            Some(v) => format!("protocol.version={v}"),
            None => "default protocol".to_string(),
        };
        format!("[{ctx} / {} / {protocol}]", self.version)
    }

    /// A command in `dir` with the hermetic environment and the options
    /// every run gets (the forced protocol version, no credential helper).
    pub fn cmd(&self, dir: &Path) -> Command {
        let mut c = Command::new(&self.bin);
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            self.bin.parent().expect("git lives in a folder").display()
        );
        c.current_dir(dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("GIT_AUTHOR_DATE", "@1710000000 +0000")
            .env("GIT_COMMITTER_DATE", "@1710000000 +0000")
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .args(
                self.protocol
                    .map(|v| vec!["-c".to_string(), format!("protocol.version={v}")])
                    .unwrap_or_default(),
            )
            .args([
                "-c",
                "credential.helper=",
                "-c",
                "core.askPass=",
                "-c",
                "init.defaultBranch=main",
                "-c",
                "advice.detachedHead=false",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
                "-c",
                "protocol.file.allow=always",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs with extra environment and standard input, killed after
    /// [`GIT_TIMEOUT`].
    pub fn run_with(&self, dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
        let mut c = self.cmd(dir);
        c.args(args).envs(env.iter().copied());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let feeder = stdin.map(|data| {
            let data = data.to_vec();
            let mut w = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                let _ = w.write_all(&data);
            })
        });
        let mut out_pipe = child.stdout.take().expect("stdout");
        let mut err_pipe = child.stderr.take().expect("stderr");
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out_pipe.read_to_end(&mut v);
            v
        });
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err_pipe.read_to_end(&mut v);
            v
        });
        let deadline = Instant::now() + GIT_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for git") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} git {args:?} did not finish in {GIT_TIMEOUT:?}", self.label());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(f) = feeder {
            let _ = f.join();
        }
        Output {
            status,
            stdout: out_t.join().unwrap_or_default(),
            stderr: err_t.join().unwrap_or_default(),
        }
    }

    pub fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.run_with(dir, args, &[], None)
    }

    /// Runs, asserts success, returns stdout.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "{} git {args:?} failed ({}):\n{}",
            self.label(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs, asserts success, returns stderr (for git's messages).
    pub fn ok_stderr(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "{} git {args:?} failed ({}):\n{}",
            self.label(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs, asserts failure, returns stderr.
    pub fn fails(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            !out.status.success(),
            "{} git {args:?} should have failed; stdout:\n{}\nstderr:\n{}",
            self.label(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The fixture repositories (`basic`, `empty`, `many-refs`), built once per
/// test process under the cargo target's temporary folder.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Remove what earlier, finished test processes left.
        if let Ok(rd) = std::fs::read_dir(base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("git-http-fixtures-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("git-http-fixtures-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the fixtures folder");
        let git = crate::fixtures::git_binaries()
            .into_iter()
            .next()
            .expect("a git binary");
        crate::fixtures::make_fixtures(&dir, &git);
        dir
    })
}
