//! The built binary as a server: `gitpat serve` in a process of its own,
//! on a free port, its log kept, killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::Gitpat;

/// A running `gitpat serve`, killed when dropped (also on a panic).
pub struct Server {
    pub child: Child,
    log: Arc<Mutex<String>>,
    addr: Option<SocketAddr>,
    backend: &'static str,
}

impl Server {
    pub fn start(g: &Gitpat) -> Server {
        Server::start_with(g, &[])
    }

    /// `serve` with `extra` flags.
    pub fn start_with(g: &Gitpat, extra: &[&str]) -> Server {
        Server::start_with_env(g, extra, &[])
    }

    /// `serve` with `extra` flags and environment variables `env`.
    pub fn start_with_env(g: &Gitpat, extra: &[&str], env: &[(&str, String)]) -> Server {
        let mut child = g
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("GITPAT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gitpat serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let mut server = Server {
            child,
            log: log.clone(),
            addr: None,
            backend: g.db.backend,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            const MARK: &str = "gitpat listening on ";
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find(MARK) {
                    let rest = &line[i + MARK.len()..];
                    let addr = address_at(&rest[rest.find("://").map_or(0, |i| i + 3)..]);
                    let _ = tx.send(addr);
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => {
                server.addr = Some(
                    a.parse()
                        .unwrap_or_else(|_| panic!("[{}] bad listening address {a:?}", server.backend)),
                )
            }
            Err(e) => panic!(
                "[{}] the server did not say where it listens ({e}); its log:\n{}",
                server.backend,
                server.log()
            ),
        }
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("started")
    }

    /// The address of the log's line that holds `before` then `ADDR` (as
    /// `redirecting http://` or `metrics on http://`).
    pub fn logged_addr(&self, before: &str) -> SocketAddr {
        assert!(
            self.wait_for_log(before),
            "[{}] no {before:?} in the log:\n{}",
            self.backend,
            self.log()
        );
        let log = self.log();
        let i = log.find(before).expect("found") + before.len();
        let addr = address_at(&log[i..]);
        addr.parse()
            .unwrap_or_else(|_| panic!("[{}] bad address {addr:?} after {before:?}", self.backend))
    }

    /// Sends `signal` (`libc::SIGTERM`, ...) to the server.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) with our own child's pid and a signal number.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
    }

    /// Waits up to `limit` for the server to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `request` (a whole HTTP/1.1 request) to `addr` and reads what
/// comes back until the server closes.
pub fn exchange(addr: SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    c.write_all(request.as_bytes()).expect("write");
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// The `host:port` that `text` starts with (the log may be JSON, so the
/// address ends at the first character no address has).
fn address_at(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect()
}

/// A process's peak resident memory (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}
