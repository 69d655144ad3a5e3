//! https on `gitpat serve`: real git (both binaries) cloning and pushing
//! over TLS with a test CA, a wrong CA refused, a plain-HTTP request to the
//! https port answered with a sentence, the certificate read again on
//! SIGHUP, the redirecting plain listener, HSTS, and `gitpat tls
//! self-signed`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::repo::{assert_contains, commit, tmp};
use crate::support::serve::{exchange, Server};
use crate::support::server::{gits, gits_speaking, Git};
use crate::support::tls::test_ca;
use crate::support::{Gitpat, TestDb};

/// A server with https on its main port, a user `alice` and a token of hers
/// that may push.
struct Https {
    g: Gitpat,
    server: Server,
    token: String,
}

fn https_server(cert: &Path, key: &Path, extra: &[&str]) -> Https {
    let g = Gitpat::new(TestDb::sqlite());
    g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
    let token = g.token("alice", "tls", "api,write_repository");
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    let server = Server::start_with(&g, &args);
    assert!(server.wait_for_log("gitpat listening on https://"), "{}", server.log());
    Https { g, server, token }
}

impl Https {
    fn url(&self, path: &str) -> String {
        format!("https://alice:{}@{}{path}", self.token, self.server.addr())
    }
}

/// git trusting `ca` (and nothing else: the hermetic runner has no CA
/// bundle variables).
fn git_trusting(git: &Git, dir: &Path, ca: &Path, args: &[&str]) -> std::process::Output {
    let ca = format!("http.sslCAInfo={}", ca.display());
    let mut all = vec!["-c", ca.as_str()];
    all.extend_from_slice(args);
    git.run(dir, &all)
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn certs() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tmp();
    let (ca, cert, key) = test_ca(dir.path());
    (dir, ca, cert, key)
}

#[test]
fn both_gits_clone_and_push_over_https_trusting_the_test_ca() {
    let (_certs, ca, cert, key) = certs();
    let s = https_server(&cert, &key, &[]);
    // git's default (HTTP/2 by ALPN) with protocol v2, and HTTP/1.1 with v0.
    for git in gits_speaking(None).iter().chain(gits().iter()) {
        let label = git.context("sqlite");
        let http_version = match git.protocol {
            None => "http.version=HTTP/2",
            Some(_) => "http.version=HTTP/1.1",
        };
        let work = tmp();
        let branch = format!(
            "refs/heads/{}-v{}",
            git.version.replace(' ', "-"),
            git.protocol.unwrap_or("default")
        );
        git.ok(work.path(), &["init", "-q", "src"]);
        let src = work.path().join("src");
        let tip = commit(git, &src, "a.txt", &git.label(), "over https");
        let push = git_trusting(
            git,
            &src,
            &ca,
            &[
                "-c",
                http_version,
                "push",
                &s.url("/alice/tls.git"),
                &format!("HEAD:{branch}"),
            ],
        );
        ok(&push, &format!("{label} push"));
        let cloned = work.path().join("clone");
        let clone = git_trusting(
            git,
            work.path(),
            &ca,
            &[
                "-c",
                http_version,
                "clone",
                "-q",
                "--branch",
                &branch["refs/heads/".len()..],
                &s.url("/alice/tls.git"),
                "clone",
            ],
        );
        ok(&clone, &format!("{label} clone"));
        assert_eq!(
            ok(&git.run(&cloned, &["rev-parse", "HEAD"]), "rev-parse").trim(),
            tip,
            "{label}"
        );
    }
    // curl (and git, through it) speaks HTTP/2 when ALPN offers it.
    let git = &gits_speaking(None)[0];
    let work = tmp();
    let ca_opt = format!("http.sslCAInfo={}", ca.display());
    let out = git.run_with(
        work.path(),
        &["-c", &ca_opt, "ls-remote", &s.url("/alice/tls.git")],
        &[("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")],
        None,
    );
    ok(&out, "ls-remote");
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        "using HTTP/2",
        "git's curl trace",
    );

    // With TLS on, the API's URLs are https ones.
    let project = curl_json(
        &ca,
        &s.token,
        &format!("https://{}/api/v4/projects/alice%2Ftls", s.server.addr()),
    );
    let http_url = project["http_url_to_repo"].as_str().unwrap_or_default();
    assert!(http_url.starts_with("https://"), "{project}");
}

fn curl_json(ca: &Path, token: &str, url: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--header",
            &format!("PRIVATE-TOKEN: {token}"),
            "--cacert",
        ])
        .arg(ca)
        .arg(url)
        .output()
        .expect("curl");
    serde_json::from_slice(&ok(&out, "curl").into_bytes()).expect("JSON")
}

#[test]
fn git_refuses_a_server_whose_certificate_another_ca_signed() {
    let (_certs, _ca, cert, key) = certs();
    let (_other, other_ca, _, _) = certs();
    let s = https_server(&cert, &key, &[]);
    for git in gits() {
        let label = git.context("sqlite");
        let work = tmp();
        let out = git_trusting(&git, work.path(), &other_ca, &["ls-remote", &s.url("/alice/tls.git")]);
        assert!(
            !out.status.success(),
            "{label} trusted a certificate its CA did not sign"
        );
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains("certificate"), "{label}: {err}");
    }
    assert_eq!(
        s.g.json(&["repo", "list", "--json"]),
        serde_json::json!([]),
        "nothing was created"
    );
}

#[test]
fn plain_http_to_the_https_port_is_told_to_use_https() {
    let (_certs, _ca, cert, key) = certs();
    let s = https_server(&cert, &key, &[]);
    let answer = exchange(
        s.server.addr(),
        "GET /alice/tls.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert_contains(&answer, "this port speaks https only", "the answer");
    // And git names the status rather than an empty reply.
    let git = &gits()[0];
    let url = format!("http://{}/alice/tls.git", s.server.addr());
    let out = git.run(tmp().path(), &["ls-remote", &url]);
    assert!(!out.status.success());
    assert_contains(&String::from_utf8_lossy(&out.stderr), "400", "git's error");
}

#[test]
fn sighup_swaps_the_certificate_without_a_restart() {
    let (_a, ca_a, cert_a, key_a) = certs();
    let (_b, ca_b, cert_b, key_b) = certs();
    let live = tmp();
    let (cert, key) = (live.path().join("cert.pem"), live.path().join("key.pem"));
    std::fs::copy(&cert_a, &cert).expect("copy");
    std::fs::copy(&key_a, &key).expect("copy");
    let s = https_server(&cert, &key, &[]);
    let git = &gits()[0];
    let url = s.url("/alice/tls.git");
    let work = tmp();
    // No such repository yet: git gets as far as an answer only if TLS
    // succeeded, so "not found" means the certificate was trusted.
    let trusted = |ca: &Path| {
        let out = git_trusting(git, work.path(), ca, &["ls-remote", &url]);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        !err.contains("certificate")
    };
    assert!(trusted(&ca_a) && !trusted(&ca_b));

    // A broken pair is refused and the one in use stays.
    std::fs::write(&cert, "garbage\n").expect("write");
    s.server.signal(libc::SIGHUP);
    assert!(
        s.server.wait_for_log("still serving the certificate loaded before"),
        "{}",
        s.server.log()
    );
    assert!(trusted(&ca_a) && !trusted(&ca_b));

    std::fs::copy(&cert_b, &cert).expect("copy");
    std::fs::copy(&key_b, &key).expect("copy");
    s.server.signal(libc::SIGHUP);
    assert!(s.server.wait_for_log("SIGHUP: now serving"), "{}", s.server.log());
    assert!(trusted(&ca_b) && !trusted(&ca_a));
}

#[test]
fn the_plain_listener_redirects_to_https_and_https_answers_carry_hsts() {
    let (_certs, ca, cert, key) = certs();
    let s = https_server(&cert, &key, &["--listen-http", "127.0.0.1:0"]);
    let http = s.server.logged_addr("redirecting http://");
    let answer = exchange(
        http,
        "GET /alice/tls.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 308 "), "{answer}");
    let want = format!(
        "location: https://localhost:{}/alice/tls.git/info/refs?service=git-upload-pack\r\n",
        s.server.addr().port()
    );
    assert_contains(&answer.to_lowercase(), &want, "the redirect");
    assert!(!answer.to_lowercase().contains("strict-transport-security"), "{answer}");

    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&ca)
        .arg(format!("https://localhost:{}/-/liveness", s.server.addr().port()))
        .output()
        .expect("curl");
    let headers = ok(&out, "curl").to_lowercase();
    assert_contains(&headers, "strict-transport-security: max-age=63072000", "https headers");

    // git follows the redirect of its first request and goes on over https.
    s.g.ok(&["repo", "create", "alice/tls", "--visibility", "public"]);
    let git = &gits()[0];
    let work = tmp();
    git.ok(work.path(), &["init", "-q", "src"]);
    let src = work.path().join("src");
    commit(git, &src, "a.txt", "a", "one");
    ok(
        &git_trusting(
            git,
            &src,
            &ca,
            &["push", &s.url("/alice/tls.git"), "HEAD:refs/heads/main"],
        ),
        "push",
    );
    let plain = format!("http://localhost:{}/alice/tls.git", http.port());
    let listed = ok(
        &git_trusting(git, work.path(), &ca, &["ls-remote", &plain]),
        "ls-remote by http://",
    );
    assert_contains(&listed, "refs/heads/main", "ls-remote through the redirect");
}

#[test]
fn tls_self_signed_writes_a_pair_that_serves_and_a_ca_git_trusts() {
    let g = Gitpat::new(TestDb::sqlite());
    let out_dir = tmp();
    let dir = out_dir.path().join("tls");
    let dir_s = dir.display().to_string();
    let printed = g.ok(&[
        "tls",
        "self-signed",
        "--host",
        "127.0.0.1",
        "--host",
        "localhost",
        "--out",
        &dir_s,
    ]);
    assert_contains(&printed, "http.sslCAInfo=", "the instructions");
    assert_contains(&printed, "curl --cacert", "the instructions");
    assert_contains(&printed, "https://127.0.0.1:8080/-/liveness", "the default port");
    // The port gitpat is configured to listen on is the one named; 443
    // goes unnamed.
    for (listen, origin) in [
        ("0.0.0.0:9443", "https://example.test:9443/"),
        ("[::]:443", "https://example.test/"),
    ] {
        let conf = out_dir.path().join(format!("{}.toml", listen.len()));
        std::fs::write(&conf, format!("listen = \"{listen}\"\n")).expect("the config");
        let printed = g.ok(&[
            "--config",
            &conf.display().to_string(),
            "tls",
            "self-signed",
            "--host",
            "example.test",
            "--out",
            &out_dir.path().join(format!("p{}", listen.len())).display().to_string(),
        ]);
        assert_contains(&printed, &format!("clone {origin}<namespace>"), listen);
        assert_contains(&printed, &format!("http.{origin}.sslCAInfo"), listen);
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join("key.pem")).expect("key").permissions());
    assert_eq!(mode & 0o077, 0, "the key is private");
    // Written once: a second run refuses rather than replacing the key.
    let again = g.fails(&["tls", "self-signed", "--host", "localhost", "--out", &dir_s]);
    assert_contains(&again, "exists already", "the second run");
    let bad = g.fails(&[
        "tls",
        "self-signed",
        "--host",
        "not a host",
        "--out",
        &out_dir.path().join("x").display().to_string(),
    ]);
    assert_contains(&bad, "not a host name", "a bad host");

    let s = https_server(&dir.join("cert.pem"), &dir.join("key.pem"), &[]);
    let git = &gits()[0];
    let work = tmp();
    git.ok(work.path(), &["init", "-q", "src"]);
    let src = work.path().join("src");
    commit(git, &src, "a.txt", "a", "one");
    let push = git_trusting(
        git,
        &src,
        &dir.join("ca.pem"),
        &["push", &s.url("/alice/self.git"), "HEAD:refs/heads/main"],
    );
    ok(&push, "push trusting the self-signed CA");
    let refused = git.run(&src, &["push", &s.url("/alice/self.git"), "HEAD:refs/heads/other"]);
    assert!(!refused.status.success(), "git without the CA trusted it");
}

#[test]
fn half_a_tls_configuration_is_refused_at_start() {
    let g = Gitpat::new(TestDb::sqlite());
    let (_certs, _ca, cert, _key) = certs();
    let err = g.fails(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert.display().to_string(),
    ]);
    assert_contains(&err, "tls_key is not", "serve with a certificate and no key");
    let err = g.fails(&["serve", "--listen", "127.0.0.1:0", "--listen-http", "127.0.0.1:0"]);
    assert_contains(&err, "needs tls_cert", "a redirect without https");
}

/// `curl` trusting `ca` with `extra` flags: its exit status and its
/// verbose output.
fn curl_tls(ca: &Path, url: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "-v", "-o", "/dev/null", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn tls_comes_from_the_config_file_or_the_environment_too() {
    let (_certs, ca, cert, key) = certs();
    let dir = tmp();
    let file = dir.path().join("gitpat.toml");
    std::fs::write(
        &file,
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\nlisten_http = \"127.0.0.1:0\"\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .expect("write the config");
    let g = Gitpat::new(TestDb::sqlite());
    let env = [
        ("GITPAT_TLS_CERT", cert.display().to_string()),
        ("GITPAT_TLS_KEY", key.display().to_string()),
        ("GITPAT_LISTEN_HTTP", "127.0.0.1:0".to_string()),
    ];
    let servers = [
        (
            "config file",
            Server::start_with(&g, &["--config", &file.display().to_string()]),
        ),
        ("environment", Server::start_with_env(&g, &[], &env)),
    ];
    for (from, server) in &servers {
        assert!(
            server.wait_for_log("gitpat listening on https://"),
            "{from}: {}",
            server.log()
        );
        let url = format!("https://localhost:{}/-/liveness", server.addr().port());
        let (ok, log) = curl_tls(&ca, &url, &[]);
        assert!(ok, "{from}: {log}");
        let http = server.logged_addr("redirecting http://");
        let answer = exchange(
            http,
            "GET /-/liveness HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 308 "), "{from}: {answer}");
    }
}

#[test]
fn tls_1_2_and_1_3_are_spoken_and_older_versions_refused() {
    let (_certs, ca, cert, key) = certs();
    let s = https_server(&cert, &key, &[]);
    let url = format!("https://localhost:{}/-/liveness", s.server.addr().port());
    for (flags, want) in [
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "SSL connection using TLSv1.2"),
        (&["--tlsv1.3"][..], "SSL connection using TLSv1.3"),
    ] {
        let (ok, log) = curl_tls(&ca, &url, flags);
        assert!(ok, "{flags:?}: {log}");
        assert_contains(&log, want, "curl's handshake");
    }
    // A client that offers TLS 1.1 at most (security level 0, so that the
    // client itself does not rule it out) is refused by the server's alert.
    let out = Command::new("openssl")
        .args(["s_client", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-connect"])
        .arg(s.server.addr().to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a TLS 1.1 handshake succeeded: {log}");
    // rustls answers a ClientHello without 1.2 or 1.3 with a
    // handshake_failure alert (number 40): the refusal comes from the
    // server, not from the client giving up on its own ("no protocols
    // available").
    assert!(
        !log.contains("no protocols available"),
        "the client refused by itself: {log}"
    );
    assert_contains(&log, "alert number 40", "the server's refusal of TLS 1.1");
    assert_contains(&log, "Cipher is (NONE)", "no session was agreed");
}

/// curl over https, HTTP/2 by ALPN, trusting `ca`: the status line, the
/// headers and the body, as one text.
fn curl_h2(ca: &Path, jar: &Path, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--http2", "--cacert"])
        .arg(ca)
        .arg("-b")
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn over_http2_the_api_links_and_the_pages_forms_know_the_host_they_were_sent_to() {
    let (certs, ca, cert, key) = certs();
    let s = https_server(&cert, &key, &[]);
    let origin = format!("https://localhost:{}", s.server.addr().port());
    let jar = certs.path().join("cookies");
    // HTTP/2 has no Host header, only :authority.
    let api = curl_h2(
        &ca,
        &jar,
        &[
            "-H",
            &format!("PRIVATE-TOKEN: {}", s.token),
            &format!("{origin}/api/v4/users?per_page=1"),
        ],
    );
    assert!(api.starts_with("HTTP/2 200"), "{api}");
    assert_contains(&api, &format!("<{origin}/api/v4/users?"), "the Link header over HTTP/2");
    // A form of the pages, posted back from the page: not taken for a
    // forgery (a wrong password is told so instead).
    let page = curl_h2(&ca, &jar, &[&format!("{origin}/users/sign_in")]);
    assert!(page.starts_with("HTTP/2 200"), "{page}");
    let csrf = page
        .split("name=\"authenticity_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no authenticity_token in {page}"));
    let posted = curl_h2(
        &ca,
        &jar,
        &[
            "-H",
            &format!("Origin: {origin}"),
            "--data-urlencode",
            &format!("authenticity_token={csrf}"),
            "--data-urlencode",
            "login=alice",
            "--data-urlencode",
            "password=not her password at all",
            &format!("{origin}/users/sign_in"),
        ],
    );
    assert!(
        !posted.starts_with("HTTP/2 403"),
        "refused as forged over HTTP/2: {posted}"
    );
    assert_contains(&posted, "Invalid login or password", "the sign-in's answer");
}

#[test]
fn chromium_signs_in_and_makes_a_token_over_https_and_http2() {
    use crate::support::browser::Browser;
    let (_certs, _ca, cert, key) = certs();
    let s = https_server(&cert, &key, &[]);
    let pw = "correct horse battery staple bob";
    let made = s.g.run_with_stdin(
        &[
            "user",
            "create",
            "bob",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        &format!("{pw}\n"),
    );
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let origin = format!("https://localhost:{}", s.server.addr().port());
    let b = Browser::open_trusting(&cert);
    b.goto(&format!("{origin}/-/user_settings/personal_access_tokens"));
    b.wait_for_path("/users/sign_in");
    assert_eq!(
        b.eval("return performance.getEntriesByType('navigation')[0].nextHopProtocol;"),
        serde_json::json!("h2"),
        "the page came over HTTP/2"
    );
    b.fill("#field-login", "bob");
    b.fill("#field-password", pw);
    b.click("form.stack button[type=submit]");
    b.wait_for_path("/-/user_settings/personal_access_tokens");
    b.fill("#field-name", "from the browser");
    b.click("#scope-read_repository");
    b.click("form.stack button[type=submit]");
    b.wait_for_path("/-/user_settings/personal_access_tokens");
    let token = b.value("#new-token");
    assert!(token.starts_with("glpat-"), "the new token: {token:?}\n{}", b.source());
    assert!(b.cookie("_gitpat_session").is_some(), "no session cookie over https");
}
