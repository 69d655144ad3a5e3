//! The unmodified standard client: python-gitlab, as installed from PyPI,
//! drives the GitLab v4 API of a real server (one per backend) through
//! `tests/python/python_gitlab_conformance.py`. What each call sends and
//! needs back is written down in `tests/python/CONTRACT.md`.
//!
//! The interpreter is `GITPAT_TEST_PYTHON` (`./test` exports it), else
//! `python3`. Without python-gitlab the test fails, saying how to install it:
//! it is never skipped.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::server::TestServer;

/// The whole script is killed (and the test fails) after this.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// The major version the script and CONTRACT.md were written against.
const PYTHON_GITLAB_MAJOR: &str = "8.";

use crate::support::python;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/python_gitlab_conformance.py")
}

/// Panics, saying how to install it, unless `python` imports python-gitlab 8.x.
fn require_python_gitlab(python: &str) {
    let hint = format!(
        "this test needs python-gitlab 8.6.0 for {python}: run the suite with ./test, which \
         makes a venv with tests/python/requirements.txt and sets GITPAT_TEST_PYTHON to its \
         interpreter (or do that yourself: ./test --help)"
    );
    let out = Command::new(python)
        .args(["-c", "import sys, gitlab; sys.stdout.write(gitlab.__version__)"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; {hint}"));
    assert!(
        out.status.success(),
        "{python} cannot import gitlab:\n{}\n{hint}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        version.starts_with(PYTHON_GITLAB_MAJOR),
        "{python} has python-gitlab {version}, but the script is written for {PYTHON_GITLAB_MAJOR}x; {hint}"
    );
}

/// Runs the script against `srv` as an admin; returns (success, stdout, stderr).
fn run_script(python: &str, srv: &TestServer, admin_token: &str) -> (bool, String, String) {
    let mut child = Command::new(python)
        .arg(script())
        .env("GITPAT_URL", srv.url(""))
        .env("GITPAT_ADMIN_TOKEN", admin_token)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {python}: {e}"));
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
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the script") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let mut stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed: the script ran longer than {SCRIPT_TIMEOUT:?})"));
    }
    (status.is_some_and(|s| s.success()), stdout, stderr)
}

#[test]
fn python_gitlab_manages_users_tokens_projects_members_and_settings() {
    let python = python();
    require_python_gitlab(&python);
    for srv in TestServer::each() {
        srv.user("pygl-admin", true, None);
        let token = srv.token("pygl-admin", &["api"], None);
        let (ok, stdout, stderr) = run_script(&python, &srv, &token);
        assert!(
            ok,
            "[{}] python-gitlab conformance failed (script: {}):\n{stdout}\n--- stderr ---\n{stderr}",
            srv.backend(),
            script().display()
        );
        assert!(
            stdout.trim_end().ends_with("PASS every check"),
            "[{}] the script exited 0 without finishing:\n{stdout}",
            srv.backend()
        );
        // Shown with --nocapture: which checks ran, on which backend.
        println!("[{}] python-gitlab conformance:\n{stdout}", srv.backend());
    }
}
