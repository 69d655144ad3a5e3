//! A real SMTP server on loopback for the mail tests: aiosmtpd from the
//! test venv (`tests/python/smtp_sink.py`), each message it takes kept as
//! a file, read back here.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::python;

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    _keep: Option<tempfile::TempDir>,
}

/// One message the server took.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub tls: bool,
    /// The raw message.
    pub raw: String,
    /// The raw message with quoted-printable undone (soft breaks joined).
    pub text: String,
}

impl Received {
    /// The Subject header, unfolded.
    pub fn subject(&self) -> String {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

fn unquote(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl SmtpSink {
    /// A server on a free port, plain (`tls` None) or requiring STARTTLS
    /// with the certificate and key given.
    pub fn start(tls: Option<(&Path, &Path)>) -> SmtpSink {
        SmtpSink::start_with(tls, &[])
    }

    /// [`SmtpSink::start`] with more flags of `smtp_sink.py`
    /// (`--implicit-tls`, `--user U --password P`).
    pub fn start_with(tls: Option<(&Path, &Path)>, flags: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().expect("a mail folder");
        let path = dir.path().to_path_buf();
        SmtpSink::spawn(free_port(), path, tls, Some(dir), flags)
    }

    /// A server on `port` writing into `dir` (to start one again where an
    /// earlier one was).
    pub fn start_at(port: u16, dir: PathBuf, tls: Option<(&Path, &Path)>, keep: Option<tempfile::TempDir>) -> SmtpSink {
        SmtpSink::spawn(port, dir, tls, keep, &[])
    }

    fn spawn(
        port: u16,
        dir: PathBuf,
        tls: Option<(&Path, &Path)>,
        keep: Option<tempfile::TempDir>,
        flags: &[&str],
    ) -> SmtpSink {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/smtp_sink.py");
        let mut cmd = Command::new(python());
        cmd.arg(script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(&dir);
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        cmd.args(flags);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // aiosmtpd prints a traceback for each refused TLS handshake
            // (which a test provokes on purpose).
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the SMTP sink with {}: {e}; run the tests with ./test",
                    python()
                )
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("the sink's stdout"))
            .read_line(&mut line)
            .expect("the sink's first line");
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP sink did not start (aiosmtpd missing? run the tests with ./test, whose venv has it)"
        );
        SmtpSink {
            child,
            port,
            dir,
            _keep: keep,
        }
    }

    /// Every message taken so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
            .iter()
            .map(|p| {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(p).expect("a message file")).expect("JSON");
                let raw = v["data"].as_str().unwrap_or_default().to_string();
                Received {
                    from: v["from"].as_str().unwrap_or_default().to_string(),
                    to: v["to"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                    tls: v["tls"].as_bool().unwrap_or(false),
                    text: unquote(&raw),
                    raw,
                }
            })
            .collect()
    }

    /// Stops the server; its messages stay readable from `dir`.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
