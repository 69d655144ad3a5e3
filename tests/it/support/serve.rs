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
            const MARK: &str = "gitpat listening on http://";
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find(MARK) {
                    let addr = line[i + MARK.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
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

/// A process's peak resident memory (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}
