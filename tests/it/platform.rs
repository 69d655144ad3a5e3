//! What the binary needs from the machine, and what a test run needs: the
//! built binary links no system libpq or OpenSSL (both are built from source
//! and linked in), it speaks verified TLS to PostgreSQL, and `./test`
//! provisions the rest or says exactly what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::sql_types::Bool;
use diesel::{QueryableByName, RunQueryDsl};
use gitpat::db::{self, DbConn};

use crate::support::{Gitpat, TestDb, PG_ENV};

/// The test CA of `./test`'s cluster, which serves only TLS.
const PG_ROOT_CERT_ENV: &str = "GITPAT_TEST_PG_ROOT_CERT";

fn env_or_fail(name: &str, what: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set, so {what}. Run the suite with ./test, which starts a throwaway \
             PostgreSQL cluster (TLS only) and sets it, or set it yourself (./test --help)"
        ),
    }
}

/// `url` with its parameters replaced by `params`.
fn with_params(url: &str, params: &str) -> String {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    format!("{base}?{params}")
}

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

fn connection_uses_tls(conn: &mut DbConn) -> bool {
    let DbConn::Pg(pg) = conn else {
        panic!("not a PostgreSQL connection")
    };
    diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(pg)
        .expect("read pg_stat_ssl")
        .ssl
}

#[test]
fn postgres_is_configured_for_the_tests() {
    let url = env_or_fail(PG_ENV, "every per-backend test ran on SQLite only");
    let mut conn = db::establish(&url).expect("connect to the test cluster");
    assert!(matches!(conn, DbConn::Pg(_)), "{PG_ENV} is not a postgres:// URL");
    db::migrate(&mut conn).expect("the cluster's admin database takes gitpat's migrations");
}

#[test]
fn postgres_connections_use_verified_tls() {
    let url = env_or_fail(PG_ENV, "no PostgreSQL test can run");
    let root = env_or_fail(PG_ROOT_CERT_ENV, "TLS to PostgreSQL cannot be verified");

    // verify-full: the server's certificate chains to the test CA and names
    // 127.0.0.1; the connection is encrypted.
    let verified = with_params(&url, &format!("sslmode=verify-full&sslrootcert={root}"));
    let mut conn = db::establish(&verified).expect("verify-full against the test CA");
    assert!(connection_uses_tls(&mut conn), "verify-full connected without TLS");
    let mut conn = db::establish(&with_params(&url, "sslmode=require")).expect("sslmode=require");
    assert!(connection_uses_tls(&mut conn), "sslmode=require connected without TLS");

    // The cluster refuses plain TCP, so every PostgreSQL test of the suite
    // ran over TLS.
    let plain = db::establish(&with_params(&url, "sslmode=disable"));
    let err = format!(
        "{:#}",
        plain
            .err()
            .expect("the test cluster must refuse a connection without TLS")
    );
    assert!(err.contains("no encryption"), "unexpected refusal: {err}");

    // A CA that did not sign the server's certificate: verification fails.
    let other = tempfile::tempdir().expect("tempdir");
    let other_ca = other.path().join("other-ca.crt");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", "/CN=not the test CA", "-keyout"])
        .arg(other.path().join("other-ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .expect("run openssl (./test installs it)");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let wrong = with_params(&url, &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()));
    let err = format!(
        "{:#}",
        db::establish(&wrong)
            .err()
            .expect("a certificate from another CA was accepted")
    );
    assert!(err.contains("certificate verify failed"), "unexpected refusal: {err}");

    // The binary itself, on a database of its own, over verified TLS.
    let gitpat = Gitpat::new(TestDb::postgres(&verified));
    let out = gitpat.ok(&["user", "create", "tls-user", "--email", "tls@example.com"]);
    assert!(!out.trim().is_empty(), "user create printed nothing");
    assert!(gitpat.ok(&["user", "list"]).contains("tls-user"));
}

#[test]
fn the_binary_links_no_system_libpq_or_openssl() {
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_gitpat"))
        .output()
        .expect("run ldd");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ldd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(libs.contains("libc.so"), "ldd listed no libc: {libs}");
    for lib in ["libpq", "libssl", "libcrypto", "libsqlite3", "libgit2"] {
        assert!(!libs.contains(lib), "the binary links the system's {lib}:\n{libs}");
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a copy of `./test` with `args` (as `nobody` when the tests run as
/// root, so it cannot install anything), with `extra` as
/// GITPAT_TEST_EXTRA_DEBS; returns (exit code, stdout, stderr).
fn run_test_script(args: &[&str], extra: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("test");
    std::fs::copy(repo_root().join("test"), &script).expect("copy ./test");
    set_mode(dir.path(), 0o755);
    set_mode(&script, 0o755);
    let root = String::from_utf8_lossy(&Command::new("id").arg("-u").output().expect("id -u").stdout).trim() == "0";
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "bash"]);
        c
    } else {
        Command::new("bash")
    };
    let out = cmd
        .arg(&script)
        .args(args)
        .env("GITPAT_TEST_EXTRA_DEBS", extra)
        .output()
        .expect("run ./test");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn the_test_command_stops_at_once_with_the_apt_get_line_for_what_is_missing() {
    let (code, _, err) = run_test_script(&["--check"], "");
    assert_eq!(code, Some(0), "a package the tests use is missing here: {err}");

    let (code, out, err) = run_test_script(&[], "gitpat-no-such-package");
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains("not installed: gitpat-no-such-package\n"),
        "the missing package is not named: {err}"
    );
    assert!(
        err.contains("    apt-get update && apt-get install -y --no-install-recommends gitpat-no-such-package\n"),
        "no apt-get line to run: {err}"
    );
    assert!(
        !err.contains("venv") && !err.contains("PostgreSQL"),
        "it went on: {err}"
    );

    let (code, out, _) = run_test_script(&["--help"], "");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("Usage: ./test"), "{out}");
}

/// The port of a `postgres://user@127.0.0.1:PORT/db?...` URL.
fn port_of(url: &str) -> u16 {
    let after = url.rsplit_once(':').map(|(_, p)| p).expect("a port");
    after
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a numeric port")
}

/// Nothing of the cluster `./test --exec` printed (`URL CERT`) is left: its
/// folder is gone and nothing listens on its port.
fn assert_cluster_gone(line: &str, how: &str) {
    let (url, cert) = line
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("{how}: printed {line:?}"));
    let dir = Path::new(cert).parent().expect("the cluster's folder");
    assert!(!dir.exists(), "{how}: {} was left", dir.display());
    let port = port_of(url);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "{how}: something still listens on port {port}"
    );
}

/// A shell command for `--exec`: prints `URL CERT`, and `up` once it has
/// connected to the cluster's port.
const SHOW_CLUSTER: &str = r#"echo "$GITPAT_TEST_DATABASE_URL $GITPAT_TEST_PG_ROOT_CERT"
p=${GITPAT_TEST_DATABASE_URL##*:}; p=${p%%/*}
exec 3<>"/dev/tcp/127.0.0.1/$p" && echo up"#;

#[test]
fn the_test_command_stops_its_cluster_however_the_run_ends() {
    use std::io::BufRead;
    let script = repo_root().join("test");
    for (how, exit) in [("a run that passes", 0), ("a run that fails", 3)] {
        let out = Command::new("bash")
            .arg(&script)
            .args(["--exec", "bash", "-c", &format!("{SHOW_CLUSTER}\nexit {exit}")])
            .output()
            .expect("run ./test --exec");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{how}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines = stdout.lines();
        let first = lines.next().unwrap_or_default().to_string();
        assert_eq!(
            lines.next(),
            Some("up"),
            "{how}: the cluster was not reachable: {stdout}"
        );
        assert_cluster_gone(&first, how);
    }

    // Killed (SIGTERM to its process group, as a CI timeout does) while the
    // command runs.
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("bash")
        .arg(&script)
        .args(["--exec", "bash", "-c", &format!("{SHOW_CLUSTER}\nsleep 60")])
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run ./test --exec");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let (mut first, mut up) = (String::new(), String::new());
    out.read_line(&mut first).expect("read");
    out.read_line(&mut up).expect("read");
    assert_eq!(up.trim(), "up", "the cluster was not reachable: {first}");
    let killed = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait for ./test");
    assert!(!status.success(), "a killed run exited 0");
    assert_cluster_gone(&first, "a killed run");
}
