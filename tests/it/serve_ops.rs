//! Running `gitpat serve` for real: graceful shutdown on SIGTERM (a push
//! in flight finishes, a push cut by the deadline leaves nothing, the
//! process exits 0) and the JSON log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::support::repo::{assert_contains, commit, server_ref, tmp};
use crate::support::serve::{exchange, Server};
use crate::support::server::{basic, gits, pkt, Git};
use crate::support::{Gitpat, TestDb};

/// A server whose `alice/app` holds one commit on main, a clone of it
/// with one more commit, and the pack of that commit.
struct InFlight {
    g: Gitpat,
    server: Server,
    token: String,
    old: String,
    new: String,
    pack: Vec<u8>,
    _work: tempfile::TempDir,
}

fn in_flight(config: &str) -> InFlight {
    let g = Gitpat::new(TestDb::sqlite());
    g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
    let token = g.token("alice", "ops", "write_repository");
    let work = tmp();
    let file = work.path().join("gitpat.toml");
    std::fs::write(&file, config).expect("write the config");
    let file = file.display().to_string();
    let server = Server::start_with(&g, &["--config", &file]);
    let git = &gits()[0];
    git.ok(work.path(), &["init", "-q", "src"]);
    let src = work.path().join("src");
    let old = commit(git, &src, "a.txt", "one", "one");
    let url = format!("http://alice:{token}@{}/alice/app.git", server.addr());
    git.ok(&src, &["push", "-q", &url, "HEAD:refs/heads/main"]);
    // Enough content that the pack is more than a few packets.
    let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let new = commit(git, &src, "b.txt", &big, "two");
    let pack = git.run_with(
        &src,
        &["pack-objects", "--stdout", "--revs", "-q"],
        &[],
        Some(format!("{new}\n^{old}\n").as_bytes()),
    );
    assert!(pack.status.success(), "pack-objects");
    InFlight {
        g,
        server,
        token,
        old,
        new,
        pack: pack.stdout,
        _work: work,
    }
}

impl InFlight {
    /// Opens a receive-pack POST and sends all of it but its last `keep`
    /// bytes.
    fn start_push(&self, keep: usize) -> (TcpStream, Vec<u8>) {
        let mut body = pkt(format!("{} {} refs/heads/main\0report-status\n", self.old, self.new).as_bytes());
        body.extend_from_slice(b"0000");
        body.extend_from_slice(&self.pack);
        let head = format!(
            "POST /alice/app.git/git-receive-pack HTTP/1.1\r\nHost: gitpat\r\nAuthorization: {}\r\n\
             Content-Type: application/x-git-receive-pack-request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            basic("alice", &self.token),
            body.len()
        );
        let mut c = TcpStream::connect(self.server.addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        c.write_all(head.as_bytes()).expect("write the head");
        let split = body.len() - keep;
        c.write_all(&body[..split]).expect("write the body");
        c.flush().expect("flush");
        (c, body[split..].to_vec())
    }

    fn repo(&self) -> std::path::PathBuf {
        self.g.repos_dir().join("alice").join("app.git")
    }
}

/// The quarantine folders a push leaves while it runs.
fn incoming(repo: &Path) -> Vec<String> {
    std::fs::read_dir(repo.join("objects"))
        .expect("objects/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("incoming-"))
        .collect()
}

#[test]
fn sigterm_lets_a_push_in_flight_finish_then_exits_zero() {
    let mut p = in_flight("");
    let (mut c, rest) = p.start_push(100);
    // The server has the push (its quarantine exists) before it is told
    // to stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while incoming(&p.repo()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !incoming(&p.repo()).is_empty(),
        "the push never started: {}",
        p.server.log()
    );
    p.server.signal(libc::SIGTERM);
    assert!(p.server.wait_for_log("SIGTERM: stopping"), "{}", p.server.log());
    // No new connections are taken.
    std::thread::sleep(Duration::from_millis(300));
    let refused = TcpStream::connect_timeout(&p.server.addr(), Duration::from_secs(2));
    assert!(refused.is_err(), "a stopping server accepted a connection");

    c.write_all(&rest).expect("the rest of the pack");
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_contains(&answer, "unpack ok", "the report");
    assert_contains(&answer, "ok refs/heads/main", "the report");

    let status = p.server.wait_exit(Duration::from_secs(30)).expect("the server exits");
    assert!(status.success(), "exit status {status}: {}", p.server.log());
    assert_eq!(
        server_ref(&p.repo(), "refs/heads/main").as_deref(),
        Some(p.new.as_str())
    );
}

#[test]
fn a_push_cut_by_the_shutdown_deadline_leaves_nothing() {
    let mut p = in_flight("shutdown_timeout_seconds = 1\n");
    let (_c, _rest) = p.start_push(100);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while incoming(&p.repo()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!incoming(&p.repo()).is_empty(), "the push never started");
    p.server.signal(libc::SIGTERM);
    // The client never sends the rest: the deadline ends the push.
    let status = p
        .server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits by its deadline");
    assert!(status.success(), "exit status {status}: {}", p.server.log());
    assert_eq!(
        server_ref(&p.repo(), "refs/heads/main").as_deref(),
        Some(p.old.as_str())
    );
    let git = Git::new("/usr/bin/git".into());
    let out = git.run(&p.repo(), &["cat-file", "-e", &p.new]);
    assert!(!out.status.success(), "the cut push's commit is in the repository");
    assert_eq!(incoming(&p.repo()), Vec::<String>::new(), "a quarantine was left");
}

#[test]
fn sighup_without_tls_keeps_the_server_running() {
    // The README's systemd unit reloads with SIGHUP, whose default action
    // would end the process: a server without TLS must catch it too.
    let g = Gitpat::new(TestDb::sqlite());
    let mut server = Server::start(&g);
    server.signal(libc::SIGHUP);
    assert!(server.wait_for_log("SIGHUP: nothing to reload"), "{}", server.log());
    assert!(
        server.wait_exit(Duration::from_millis(300)).is_none(),
        "{}",
        server.log()
    );
    let answer = exchange(
        server.addr(),
        "GET /-/liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let g = Gitpat::new(TestDb::sqlite());
    let server = Server::start_with_env(&g, &[], &[("GITPAT_LOG_FORMAT", "json".to_string())]);
    exchange(
        server.addr(),
        "GET /api/v4/version?private_token=glpat-secretsecretsecret1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(server.wait_for_log("/api/v4/version"), "{}", server.log());
    let log = server.log();
    assert!(!log.contains("secretsecret"), "a credential in the log:\n{log}");
    let mut request = None;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        if v["path"].as_str().is_some_and(|p| p.starts_with("/api/v4/version")) {
            request = Some(v);
        }
    }
    let request = request.expect("the request's line");
    assert_eq!(request["method"], "GET", "{request}");
    assert_eq!(request["status"], 401, "{request}");
    assert_eq!(request["peer"], "127.0.0.1", "{request}");
    assert!(request["duration_ms"].is_number(), "{request}");
    assert_eq!(request["level"], "INFO", "{request}");
}

#[test]
fn json_logs_from_the_config_file_name_the_user_and_token() {
    let g = Gitpat::new(TestDb::sqlite());
    let alice: i64 = g
        .ok(&["user", "create", "alice", "--email", "alice@example.com"])
        .trim()
        .parse()
        .expect("the new user's id");
    let token = g.token("alice", "logs", "read_api");
    let work = tmp();
    let file = work.path().join("gitpat.toml");
    std::fs::write(&file, "log_format = \"json\"\n").expect("write the config");
    let server = Server::start_with(&g, &["--config", &file.display().to_string()]);
    let answer = exchange(
        server.addr(),
        &format!("GET /api/v4/user HTTP/1.1\r\nHost: x\r\nPRIVATE-TOKEN: {token}\r\nConnection: close\r\n\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(server.wait_for_log("/api/v4/user"), "{}", server.log());
    let log = server.log();
    assert!(!log.contains(&token), "the token in the log:\n{log}");
    let request = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .find(|v| v["path"] == "/api/v4/user")
        .expect("the request's line");
    assert_eq!(request["status"], 200, "{request}");
    assert_eq!(request["user_id"], alice, "{request}");
    assert!(request["token_id"].as_i64().is_some_and(|t| t > 0), "{request}");
    assert!(request["sudo_by"].is_null(), "{request}");
}

#[test]
fn a_request_is_logged_and_timed_when_its_body_ends_not_its_head() {
    let g = Gitpat::new(TestDb::sqlite());
    g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
    let token = g.token("alice", "ops", "write_repository");
    let server = Server::start_with_env(&g, &[], &[("GITPAT_LOG_FORMAT", "json".to_string())]);
    let git = &gits()[0];
    let work = tmp();
    git.ok(work.path(), &["init", "-q", "src"]);
    let src = work.path().join("src");
    // 24 MiB that do not compress: more than the sockets buffer, so the
    // pack cannot be sent while the client does not read.
    std::fs::write(src.join("noise.bin"), crate::support::repo::noise(24 << 20)).expect("write the noise");
    git.ok(&src, &["add", "noise.bin"]);
    git.ok(&src, &["commit", "-q", "-m", "noise"]);
    let head = crate::support::repo::rev_parse(git, &src, "HEAD");
    let url = format!("http://alice:{token}@{}/alice/big.git", server.addr());
    git.ok(&src, &["push", "-q", &url, "HEAD:refs/heads/main"]);
    let (_, before) = scrape(server.addr());

    let mut body = pkt(format!("want {head}\n").as_bytes());
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&pkt(b"done\n"));
    let request = format!(
        "POST /alice/big.git/git-upload-pack HTTP/1.1\r\nHost: gitpat\r\nAuthorization: {}\r\n\
         Content-Type: application/x-git-upload-pack-request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        basic("alice", &token),
        body.len()
    );
    let mut c = TcpStream::connect(server.addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    c.write_all(request.as_bytes()).expect("write the head");
    c.write_all(&body).expect("write the body");
    let mut first = vec![0u8; 4096];
    let n = c.read(&mut first).expect("the response starts");
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    // The head is out and the pack is streaming; the client stops reading.
    let pause = Duration::from_millis(2500);
    std::thread::sleep(pause);
    let line = |log: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["path"] == "/alice/big.git/git-upload-pack")
    };
    assert_eq!(
        line(&server.log()),
        None,
        "logged before its body was sent:\n{}",
        server.log()
    );
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("the rest of the pack");
    assert!(
        n + rest.len() > 24 << 20,
        "the whole pack came: {} bytes",
        n + rest.len()
    );
    assert!(
        server.wait_for_log("/alice/big.git/git-upload-pack"),
        "{}",
        server.log()
    );
    let v = line(&server.log()).expect("the request's line");
    assert_eq!(v["status"], 200, "{v}");
    let ms = v["duration_ms"].as_f64().expect("a duration");
    assert!(
        ms >= pause.as_millis() as f64,
        "the line's duration stops at the head: {v}"
    );
    let (_, after) = scrape(server.addr());
    let key = "gitpat_http_request_duration_seconds_sum{group=\"git\"}";
    let timed = value(&after, key) - value(&before, key);
    assert!(
        timed >= pause.as_secs_f64(),
        "the histogram's time stops at the head: {timed}"
    );
}

/// A scrape, as `name{labels}` → value.
fn scrape(addr: std::net::SocketAddr) -> (u16, std::collections::BTreeMap<String, f64>) {
    let answer = exchange(addr, "GET /-/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let values = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect();
    (status, values)
}

fn value(m: &std::collections::BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[test]
fn metrics_count_requests_git_operations_auth_results_and_the_pack_cache() {
    let g = Gitpat::new(TestDb::sqlite());
    g.run_with_stdin(
        &[
            "user",
            "create",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        "a long password for alice\n",
    );
    let token = g.token("alice", "m", "api,write_repository");
    let revoked = g.token("alice", "r", "read_repository");
    g.ok(&["token", "revoke", "--token", &revoked]);
    let server = Server::start(&g);
    let (status, before) = scrape(server.addr());
    assert_eq!(status, 200, "loopback is in the default allowlist");

    let git = &gits()[0];
    let work = tmp();
    git.ok(work.path(), &["init", "-q", "src"]);
    let src = work.path().join("src");
    commit(git, &src, "a.txt", "one", "one");
    let url = |secret: &str| format!("http://alice:{secret}@{}/alice/m.git", server.addr());
    git.ok(&src, &["push", "-q", &url(&token), "HEAD:refs/heads/main"]);
    for name in ["c1", "c2"] {
        git.ok(work.path(), &["clone", "-q", &url(&token), name]);
    }
    assert!(!git.run(work.path(), &["ls-remote", &url(&revoked)]).status.success());
    assert!(!git
        .run(work.path(), &["ls-remote", &url("wrong-password-for-alice")])
        .status
        .success());
    exchange(
        server.addr(),
        "GET /api/v4/user HTTP/1.1\r\nHost: x\r\nPRIVATE-TOKEN: glpat-nosuchtokennosuchtok\r\nConnection: close\r\n\r\n",
    );
    // A page under /-/ (a redirect to the sign-in page, without a session) is the
    // web's, a probe the monitoring's.
    let page = exchange(
        server.addr(),
        "GET /-/user_settings/personal_access_tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 303"), "{page}");
    exchange(
        server.addr(),
        "GET /-/liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );

    let (_, after) = scrape(server.addr());
    let moved = |key: &str| value(&after, key) - value(&before, key);
    assert_eq!(
        moved("gitpat_git_operations_total{operation=\"push\"}"),
        1.0,
        "{after:#?}"
    );
    assert_eq!(
        moved("gitpat_git_operations_total{operation=\"clone\"}"),
        2.0,
        "{after:#?}"
    );
    assert!(moved("gitpat_git_bytes_total{operation=\"push\",direction=\"in\"}") > 100.0);
    assert!(moved("gitpat_git_bytes_total{operation=\"clone\",direction=\"out\"}") > 100.0);
    assert_eq!(
        moved("gitpat_pack_cache_requests_total{result=\"miss\"}"),
        1.0,
        "{after:#?}"
    );
    assert_eq!(
        moved("gitpat_pack_cache_requests_total{result=\"hit\"}"),
        1.0,
        "{after:#?}"
    );
    assert!(
        moved("gitpat_auth_results_total{result=\"token_ok\"}") >= 3.0,
        "{after:#?}"
    );
    assert!(
        moved("gitpat_auth_results_total{result=\"token_revoked\"}") >= 1.0,
        "{after:#?}"
    );
    assert!(
        moved("gitpat_auth_results_total{result=\"password_wrong\"}") >= 1.0,
        "{after:#?}"
    );
    assert_eq!(
        moved("gitpat_auth_results_total{result=\"token_unknown\"}"),
        1.0,
        "{after:#?}"
    );
    assert!(
        moved("gitpat_http_requests_total{group=\"git\",status=\"200\"}") >= 6.0,
        "{after:#?}"
    );
    assert_eq!(
        moved("gitpat_http_requests_total{group=\"api\",status=\"401\"}"),
        1.0,
        "{after:#?}"
    );
    assert!(moved("gitpat_http_request_duration_seconds_count{group=\"git\"}") >= 6.0);
    assert_eq!(
        moved("gitpat_http_requests_total{group=\"web\",status=\"303\"}"),
        1.0,
        "{after:#?}"
    );
    assert!(
        moved("gitpat_http_requests_total{group=\"monitoring\",status=\"200\"}") >= 1.0,
        "{after:#?}"
    );
    assert!(
        after.contains_key("gitpat_db_pool_connections{state=\"idle\"}"),
        "{after:#?}"
    );
    assert!(after.contains_key("gitpat_blocking_threads_busy"), "{after:#?}");
    assert!(after.contains_key("gitpat_active_bans"), "{after:#?}");
}

#[test]
fn metrics_answer_only_the_allowlist_or_their_own_listener() {
    let g = Gitpat::new(TestDb::sqlite());
    let dir = tmp();
    let file = dir.path().join("gitpat.toml");
    std::fs::write(
        &file,
        "metrics_allowlist = [\"10.0.0.0/8\"]\nmetrics_listen = \"127.0.0.1:0\"\n",
    )
    .expect("write the config");
    let server = Server::start_with(&g, &["--config", &file.display().to_string()]);
    let (status, _) = scrape(server.addr());
    assert_eq!(status, 404, "a client outside the allowlist");
    let own = server.logged_addr("metrics on http://");
    let (status, values) = scrape(own);
    assert_eq!(status, 200);
    assert!(values.contains_key("gitpat_active_bans"), "{values:#?}");
    // The metrics listener serves the health checks and nothing else.
    let answer = exchange(
        own,
        "GET /api/v4/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[test]
fn metrics_count_mails_sent_and_failed() {
    // A closed port: bound, then let go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mail_dir = tmp();
    let cases = [
        (
            "sent",
            vec![
                ("GITPAT_MAIL", "file".to_string()),
                ("GITPAT_MAIL_DIR", mail_dir.path().display().to_string()),
            ],
        ),
        (
            "failed",
            vec![
                ("GITPAT_MAIL", "smtp".to_string()),
                ("GITPAT_SMTP_HOST", "127.0.0.1".to_string()),
                ("GITPAT_SMTP_PORT", closed.to_string()),
                ("GITPAT_SMTP_TLS", "none".to_string()),
            ],
        ),
    ];
    for (result, env) in cases {
        let g = Gitpat::new(TestDb::sqlite());
        g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
        // A new token's notice is queued with it; serve's first round of
        // notices goes at once.
        g.ok(&[
            "token", "create", "--user", "alice", "--name", "n", "--scopes", "read_api",
        ]);
        let server = Server::start_with_env(&g, &[], &env);
        assert!(server.wait_for_log("token notices:"), "[{result}] {}", server.log());
        let (_, values) = scrape(server.addr());
        let key = format!("gitpat_mails_total{{result=\"{result}\"}}");
        assert_eq!(value(&values, &key), 1.0, "[{result}] {values:#?}\n{}", server.log());
    }
}

#[test]
fn metrics_count_each_refusal_kind_fetches_and_the_bans() {
    use diesel::prelude::*;
    use gitpat::db::schema::personal_access_tokens as pat;
    let g = Gitpat::new(TestDb::sqlite());
    for name in ["alice", "bob"] {
        let out = g.run_with_stdin(
            &[
                "user",
                "create",
                name,
                "--email",
                &format!("{name}@example.com"),
                "--password-stdin",
            ],
            &format!("correct horse battery staple {name}\n"),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let token = g.token("alice", "m", "write_repository");
    let expired = g.token("alice", "old", "read_repository");
    diesel::update(pat::table.filter(pat::name.eq("old")))
        .set(pat::expires_at.eq(Some(chrono::Utc::now().date_naive())))
        .execute(&mut g.conn())
        .expect("expire the token");
    let key = gitpat::auth::token::SecretKey::load(&g.data_dir.join("secret_key")).expect("the key");
    gitpat::service::users::enable_two_factor(
        &mut g.conn(),
        &key,
        &gitpat::service::audit::Actor::cli(),
        "bob",
        chrono::Utc::now(),
    )
    .expect("2FA for bob");
    g.ok(&["settings", "set", "max_login_attempts", "2"]);
    let server = Server::start(&g);
    let (_, before) = scrape(server.addr());
    assert_eq!(value(&before, "gitpat_active_bans"), 0.0, "{before:#?}");

    // A clone, then a fetch of a commit pushed after it.
    let git = &gits()[0];
    let work = tmp();
    git.ok(work.path(), &["init", "-q", "src"]);
    let src = work.path().join("src");
    let url = format!("http://alice:{token}@{}/alice/m.git", server.addr());
    commit(git, &src, "a.txt", "one", "one");
    git.ok(&src, &["push", "-q", &url, "HEAD:refs/heads/main"]);
    git.ok(work.path(), &["clone", "-q", &url, "copy"]);
    commit(git, &src, "a.txt", "two", "two");
    git.ok(&src, &["push", "-q", &url, "HEAD:refs/heads/main"]);
    git.ok(&work.path().join("copy"), &["fetch", "-q", "origin"]);

    // One request per refusal, each with its credentials sent at once.
    let refs = |user: &str, secret: &str| {
        let answer = exchange(
            server.addr(),
            &format!(
                "GET /alice/m.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
                basic(user, secret)
            ),
        );
        answer.split_whitespace().nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(refs("alice", &expired), "401", "the expired token");
    assert_eq!(
        refs("bob", "correct horse battery staple bob"),
        "401",
        "bob's password, with 2FA on"
    );
    for _ in 0..2 {
        assert_eq!(refs("alice", "not alice's password"), "401");
    }
    assert_eq!(
        refs("alice", "correct horse battery staple alice"),
        "401",
        "alice's account is locked"
    );
    // The rest of the ten failures that ban this client, then a refusal
    // for the ban (of a password that is never checked).
    for _ in 0..5 {
        assert_eq!(refs("nobody", "a guess"), "401");
    }
    assert_eq!(refs("nobody", "a guess"), "403", "the client is banned");

    let (_, after) = scrape(server.addr());
    let moved = |key: &str| value(&after, key) - value(&before, key);
    for (key, want) in [
        ("gitpat_git_operations_total{operation=\"clone\"}", 1.0),
        ("gitpat_git_operations_total{operation=\"fetch\"}", 1.0),
        ("gitpat_git_operations_total{operation=\"push\"}", 2.0),
        ("gitpat_auth_results_total{result=\"token_expired\"}", 1.0),
        (
            "gitpat_auth_results_total{result=\"password_refused_token_required\"}",
            1.0,
        ),
        ("gitpat_auth_results_total{result=\"password_wrong\"}", 7.0),
        ("gitpat_auth_results_total{result=\"account_locked\"}", 1.0),
        ("gitpat_auth_results_total{result=\"banned\"}", 1.0),
    ] {
        assert_eq!(moved(key), want, "{key}: {after:#?}");
    }
    assert!(moved("gitpat_git_bytes_total{operation=\"fetch\",direction=\"out\"}") > 100.0);
    // Alice's account and this client.
    assert_eq!(value(&after, "gitpat_active_bans"), 2.0, "{after:#?}");
    let pool = value(&after, "gitpat_db_pool_connections{state=\"idle\"}")
        + value(&after, "gitpat_db_pool_connections{state=\"in_use\"}");
    assert!(pool >= 1.0, "the pool's connections: {after:#?}");
}

#[test]
fn metrics_show_the_pool_in_use_and_the_blocking_threads_waiting_on_it() {
    use crate::support::server::TestServer;
    let srv = TestServer::start(TestDb::sqlite());
    srv.user("alice", false, None);
    let token = srv.token("alice", &["api"], None);
    // Every connection of the pool (4) taken: an API request waits for
    // one on a blocking thread.
    let held: Vec<_> = (0..4).map(|_| srv.conn()).collect();
    let waiting = std::thread::scope(|s| {
        let request = s.spawn(|| srv.raw("GET", "/api/v4/user", &[("PRIVATE-TOKEN", &token)], b"").status);
        std::thread::sleep(Duration::from_millis(500));
        let (status, values) = scrape(srv.addr);
        drop(held);
        (status, values, request.join().expect("the request"))
    });
    let (status, values, answered) = waiting;
    assert_eq!(status, 200, "a scrape answers with the pool exhausted");
    assert_eq!(answered, 200, "the request went on once a connection came back");
    assert_eq!(
        value(&values, "gitpat_db_pool_connections{state=\"in_use\"}"),
        4.0,
        "{values:#?}"
    );
    assert_eq!(
        value(&values, "gitpat_db_pool_connections{state=\"idle\"}"),
        0.0,
        "{values:#?}"
    );
    assert!(value(&values, "gitpat_blocking_threads_busy") >= 1.0, "{values:#?}");
}

#[test]
fn serve_purges_audit_events_past_their_retention_when_it_starts() {
    use gitpat::service::audit::{self, Actor, Event};
    let g = Gitpat::new(TestDb::sqlite());
    g.ok(&["settings", "set", "audit_events_retention_days", "30"]);
    let now = chrono::Utc::now();
    {
        let mut conn = g.conn();
        for days in [31, 400] {
            let e = Event::on_instance("test_event", format!("{days} days old"));
            audit::record(&mut conn, &Actor::cli(), e, now - chrono::Duration::days(days)).expect("an old event");
        }
    }
    let kept = |g: &Gitpat| -> Vec<String> {
        audit::list(&mut g.conn(), &Default::default(), None)
            .expect("the events")
            .iter()
            .map(|e| e.event_name.clone())
            .collect()
    };
    assert_eq!(
        kept(&g).iter().filter(|n| *n == "test_event").count(),
        2,
        "the two old events"
    );
    let server = Server::start(&g);
    assert!(
        server.wait_for_log("purged 2 audit events past audit_events_retention_days"),
        "{}",
        server.log()
    );
    let left = kept(&g);
    assert!(!left.iter().any(|n| n == "test_event"), "{left:?}");
    assert!(left.iter().any(|n| n == "application_setting_updated"), "{left:?}");
}
