//! What slow and many pushes may not take from everyone else: a push holds
//! no pooled database connection and no blocking thread while its client
//! sends, and past the push caps the excess get 503 with `Retry-After`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::repo::{assert_contains, commit, server_ref, tmp};
use crate::support::server::{basic, gits, pkt, RawResponse, TestServer, ZERO};

/// A pack of one blob of 64 MiB of zeros: valid bytes for index-pack to
/// take in however slowly they come (its zlib stream is about 64 KiB).
fn big_blob_pack() -> Vec<u8> {
    use std::io::Write as _;
    let size: u64 = 64 << 20;
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
    // The object header: type 3 (blob), the size in 4 + 7n bits.
    let mut byte = (3u8 << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        pack.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    pack.push(byte);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        z.write_all(&zeros).unwrap();
    }
    pack.extend(z.finish().unwrap());
    pack
}

/// A pack of one blob of 1 MiB of noise, stored uncompressed: about 1 MiB
/// on the wire, too long to finish at a few KiB/s.
fn noise_pack() -> Vec<u8> {
    use std::io::Write as _;
    let size: u64 = 1 << 20;
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
    let mut byte = (3u8 << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        pack.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    pack.push(byte);
    let noise = crate::support::repo::noise(size as usize);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
    z.write_all(&noise).unwrap();
    pack.extend(z.finish().unwrap());
    pack
}

/// A push that sends its commands and the start of its pack, then a byte
/// at a time when told to.
struct SlowPush {
    s: TcpStream,
    rest: Vec<u8>,
    sent: usize,
}

impl SlowPush {
    fn start(srv: &TestServer, auth: &str, repo: &str, branch: &str, pack: &[u8]) -> SlowPush {
        let oid = "1".repeat(40);
        let mut body =
            pkt(format!("{ZERO} {oid} refs/heads/{branch}\0report-status side-band-64k agent=test/1\n").as_bytes());
        body.extend_from_slice(b"0000");
        let first = 64;
        body.extend_from_slice(&pack[..first]);
        let head = format!(
            "POST /{repo}.git/git-receive-pack HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/x-git-receive-pack-request\r\nAuthorization: {auth}\r\n\
             Content-Length: {}\r\n\r\n",
            srv.addr,
            body.len() - first + pack.len()
        );
        let mut s = TcpStream::connect(srv.addr).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        SlowPush {
            s,
            rest: pack[first..].to_vec(),
            sent: 0,
        }
    }

    /// One more byte of the pack; false once the server has closed.
    fn drip(&mut self) -> bool {
        if self.sent >= self.rest.len() {
            return true;
        }
        let ok = self.s.write_all(&self.rest[self.sent..self.sent + 1]).is_ok();
        self.sent += 1;
        ok
    }

    /// `n` more bytes of the pack at once; false once the server has closed.
    fn send(&mut self, n: usize) -> bool {
        let end = (self.sent + n).min(self.rest.len());
        let ok = self.s.write_all(&self.rest[self.sent..end]).is_ok();
        self.sent = end;
        ok
    }

    /// What the server answered within `wait`, if anything.
    fn answer(&mut self, wait: Duration) -> Option<RawResponse> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // A timed read is not restarted after a signal (SIGCHLD).
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        RawResponse::parse(&out).ok()
    }
}

/// `GET path` answered within one second: its status.
fn within_a_second(srv: &TestServer, path: &str, auth: Option<&str>, what: &str) -> u16 {
    let started = Instant::now();
    let mut s = TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\r\n",
        srv.addr
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let r =
        RawResponse::parse(&out).unwrap_or_else(|e| panic!("[{}] {what}: no answer within 1 s ({e})", srv.backend()));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "[{}] {what} took {:?}",
        srv.backend(),
        started.elapsed()
    );
    r.status
}

/// Readiness, the API and another user's clone all answer (the first two
/// within a second).
fn others_are_served(srv: &TestServer, bob_token: &str, what: &str) {
    assert_eq!(
        within_a_second(srv, "/-/readiness", None, &format!("readiness {what}")),
        200
    );
    let bearer = format!("Bearer {bob_token}");
    assert_eq!(
        within_a_second(srv, "/api/v4/user", Some(&bearer), &format!("GET /user {what}")),
        200
    );
    let bob = basic("bob", bob_token);
    assert_eq!(
        within_a_second(
            srv,
            "/bob/code.git/info/refs?service=git-upload-pack",
            Some(&bob),
            &format!("bob's advertisement {what}")
        ),
        200
    );
    let dir = tmp();
    let url = srv.url_as("bob", bob_token, "/bob/code.git");
    gits()[0].ok(dir.path(), &["clone", "-q", &url, "c"]);
}

fn setup(srv: &TestServer) -> (String, String) {
    srv.user("alice", false, None);
    srv.user("bob", false, None);
    let alice = srv.token("alice", &["write_repository", "read_api"], None);
    let bob = srv.token("bob", &["write_repository", "read_api"], None);
    srv.repo("alice/slow", "alice", "private");
    srv.repo("bob/code", "bob", "private");
    let work = tmp();
    let git = &gits()[0];
    git.ok(work.path(), &["init", "-q", "-b", "main", "w"]);
    let w = work.path().join("w");
    commit(git, &w, "a.txt", "bob's\n", "first");
    git.ok(&w, &["push", "-q", &srv.url_as("bob", &bob, "/bob/code.git"), "main"]);
    (alice, bob)
}

#[test]
fn slow_pushes_hold_no_connection_or_thread_that_others_need() {
    for srv in TestServer::each() {
        let b = srv.backend();
        let (alice, bob) = setup(&srv);
        srv.setting("max_concurrent_pushes_per_user", "100");
        let pack = big_blob_pack();
        let auth = basic("alice", &alice);
        // The test server's pool has 4 connections: 8, then 20, pushes
        // uploading slowly outnumber it.
        let mut pushes: Vec<SlowPush> = Vec::new();
        for n in [8, 20] {
            while pushes.len() < n {
                let i = pushes.len();
                pushes.push(SlowPush::start(&srv, &auth, "alice/slow", &format!("slow-{i}"), &pack));
            }
            // Let every one of them get past authorization into its pack.
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(300));
                for p in &mut pushes {
                    assert!(p.drip(), "[{b}] a slow push was cut off");
                }
            }
            others_are_served(&srv, &bob, &format!("with {n} slow pushes in flight"));
            for p in &mut pushes {
                assert!(
                    p.answer(Duration::from_millis(10)).is_none(),
                    "[{b}] a slow push was answered"
                );
            }
            assert_eq!(srv.app.push_slots.in_flight(), n as u32, "[{b}] pushes in flight");
        }
        drop(pushes);
        // Cut off, they leave nothing and give their slots back.
        let started = Instant::now();
        while srv.app.push_slots.in_flight() > 0 && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            srv.app.push_slots.in_flight(),
            0,
            "[{b}] slots after the pushes were cut"
        );
        assert_eq!(
            server_ref(&srv.repo_dir("alice/slow"), "refs/heads/slow-0"),
            None,
            "[{b}]"
        );
    }
}

/// Keeps `pushes` trickling (a byte each, twice a second) on a thread of
/// its own until stopped, so that none goes idle meanwhile.
struct Dripper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<SlowPush>>,
}

impl Dripper {
    fn start(mut pushes: Vec<SlowPush>) -> Dripper {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for p in &mut pushes {
                    p.drip();
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            pushes
        });
        Dripper { stop, thread }
    }

    fn stop(self) -> Vec<SlowPush> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the dripping thread")
    }
}

#[test]
fn pushes_past_the_caps_get_503_with_retry_after_and_the_server_recovers() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    let (alice, bob) = setup(&srv);
    srv.setting("max_concurrent_pushes", "64");
    srv.setting("max_concurrent_pushes_per_user", "1000");
    let pack = big_blob_pack();
    let auth = basic("alice", &alice);
    let mut pushes: Vec<SlowPush> = Vec::new();
    for i in 0..600 {
        pushes.push(SlowPush::start(&srv, &auth, "alice/slow", &format!("t-{i}"), &pack));
        if i % 50 == 49 {
            for p in &mut pushes {
                p.drip();
            }
        }
    }
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        for p in &mut pushes {
            p.drip();
        }
    }
    // Every push is authorized or refused by now; the refused are answered.
    let mut refused = 0;
    let mut admitted = Vec::new();
    for mut p in pushes.drain(..) {
        match p.answer(Duration::from_millis(1)) {
            Some(r) => {
                assert_eq!(r.status, 503, "a push past the cap: {}", r.text());
                assert_eq!(r.header("retry-after"), Some("30"));
                assert_contains(&r.text(), "as many pushes as it may", "the 503's message");
                refused += 1;
            }
            None => admitted.push(p),
        }
    }
    assert_eq!((admitted.len(), refused), (64, 536), "admitted and refused of 600");
    assert_eq!(srv.app.push_slots.in_flight(), 64);
    let dripper = Dripper::start(admitted);
    // Trickling on, they take nothing from the others.
    others_are_served(&srv, &bob, "with 64 pushes trickling and 536 refused");
    // git is told why at the advertisement, before it sends anything.
    let dir = tmp();
    let git = &gits()[0];
    git.ok(dir.path(), &["init", "-q", "-b", "main", "w"]);
    let w = dir.path().join("w");
    commit(git, &w, "b.txt", "alice's\n", "first");
    let url = srv.url_as("alice", &alice, "/alice/slow.git");
    let err = git.fails(&w, &["push", "-q", &url, "main"]);
    assert_contains(&err, "as many pushes as it may", "git's push past the cap");
    // The cap per user: bob may push while alice may not.
    srv.setting("max_concurrent_pushes", "1000");
    srv.setting("max_concurrent_pushes_per_user", "64");
    let err = git.fails(&w, &["push", "-q", &url, "main"]);
    assert_contains(&err, "You have as many pushes in flight", "alice past her own cap");
    let bob_url = srv.url_as("bob", &bob, "/bob/code.git");
    git.ok(&w, &["push", "-q", &bob_url, "main:refs/heads/from-alice-dir"]);
    assert_eq!(srv.app.push_slots.in_flight(), 64, "the trickles still in flight");
    // Once the trickles are gone, pushes work again.
    drop(dripper.stop());
    let started = Instant::now();
    while srv.app.push_slots.in_flight() > 0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(srv.app.push_slots.in_flight(), 0, "slots after the trickles were cut");
    git.ok(&w, &["push", "-q", &url, "main"]);
    assert!(server_ref(&srv.repo_dir("alice/slow"), "refs/heads/main").is_some());
}

/// A push slower than `push_min_bytes_per_second` is cut after a minute,
/// one that keeps the rate is cut at `push_deadline_seconds`; each is told
/// why, and neither leaves a ref or a quarantine behind. (This test waits
/// the settings' minimums: about 80 seconds.)
#[test]
fn a_push_too_slow_or_past_its_deadline_is_cut_and_leaves_nothing() {
    let srv = TestServer::start(crate::support::TestDb::sqlite());
    let (alice, _bob) = setup(&srv);
    srv.setting("push_min_bytes_per_second", "1000");
    srv.setting("push_deadline_seconds", "80");
    let pack = noise_pack();
    let auth = basic("alice", &alice);
    let started = Instant::now();
    // Both send every half second: 10 bytes/s (under the minimum) and
    // 3,000 bytes/s (over it).
    let mut slow = SlowPush::start(&srv, &auth, "alice/slow", "too-slow", &pack);
    let mut steady = SlowPush::start(&srv, &auth, "alice/slow", "steady", &pack);
    let mut answers: [Option<(RawResponse, Duration)>; 2] = [None, None];
    while answers.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(120) {
        for (i, (p, n)) in [(&mut slow, 5), (&mut steady, 1500)].into_iter().enumerate() {
            if answers[i].is_some() {
                continue;
            }
            // Once the server has closed, what it said is still to be read.
            p.send(n);
            if let Some(r) = p.answer(Duration::from_millis(250)) {
                answers[i] = Some((r, started.elapsed()));
            }
        }
    }
    let [Some((slow_answer, slow_at)), Some((steady_answer, steady_at))] = answers else {
        panic!(
            "a push was never cut: {answers:?}",
            answers = answers.map(|a| a.map(|(r, t)| (r.status, t)))
        );
    };
    assert_contains(
        &slow_answer.text(),
        "slower than 1000 bytes/s (the push_min_bytes_per_second setting)",
        "the slow push's answer",
    );
    assert!(
        slow_at >= Duration::from_secs(59) && slow_at < Duration::from_secs(79),
        "the slow push was cut after {slow_at:?}, not after a minute of waiting"
    );
    assert_contains(
        &steady_answer.text(),
        "did not arrive within 80 s (the push_deadline_seconds setting)",
        "the steady push's answer",
    );
    assert!(
        steady_at >= Duration::from_secs(79) && steady_at < Duration::from_secs(100),
        "the steady push was cut after {steady_at:?}, not at its deadline"
    );
    assert!(steady.sent > 200_000, "the steady push sent {} bytes", steady.sent);
    let repo = srv.repo_dir("alice/slow");
    for branch in ["too-slow", "steady"] {
        assert_eq!(server_ref(&repo, &format!("refs/heads/{branch}")), None, "{branch}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(repo.join("objects"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("incoming-"))
        .collect();
    assert!(leftovers.is_empty(), "quarantines left behind: {leftovers:?}");
    assert_eq!(srv.app.push_slots.in_flight(), 0, "slots after both were cut");
}
