//! Token notices through a real SMTP server on loopback (aiosmtpd): the
//! expiry windows at exact instants (`notify run --at`), each notice
//! once across runs and across two instances, nothing for revoked tokens
//! or blocked users, a retry after the server was down, STARTTLS with a
//! test CA, the new-token notice however the token was made, the
//! family-revocation notice, and never the token itself.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::repo::assert_contains;
use crate::support::serve::Server;
use crate::support::smtp::{Received, SmtpSink};
use crate::support::Gitpat;

/// The environment that sends mail to `port` over plain SMTP.
fn mail_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("GITPAT_MAIL", "smtp".into()),
        ("GITPAT_SMTP_HOST", "127.0.0.1".into()),
        ("GITPAT_SMTP_PORT", port.to_string()),
        ("GITPAT_SMTP_TLS", "none".into()),
    ]
}

fn run_env(g: &Gitpat, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    g.command()
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run gitpat")
}

/// `notify run --at AT`: its report line.
fn notify_at(g: &Gitpat, env: &[(&str, String)], at: &str) -> String {
    let out = run_env(g, env, &["notify", "run", "--at", at]);
    assert!(
        out.status.success(),
        "[{}] notify run --at {at}: {}",
        g.db.backend,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn subjects(m: &[Received]) -> Vec<String> {
    let mut v: Vec<String> = m.iter().map(|r| r.subject()).collect();
    v.sort();
    v
}

fn assert_no_token(messages: &[Received], tokens: &[String]) {
    for m in messages {
        for t in tokens {
            assert!(
                !m.raw.contains(t.as_str()) && !m.text.contains(t.as_str()),
                "a token in a mail: {}",
                m.subject()
            );
        }
        assert!(!m.text.contains("glpat-"), "a token-like string in a mail: {}", m.text);
    }
}

/// A user and the tokens of the expiry windows, as of 2027-03-01.
fn expiry_world(g: &Gitpat) -> Vec<String> {
    g.ok(&[
        "user",
        "create",
        "alice",
        "--email",
        "alice@example.com",
        "--name",
        "Alice",
    ]);
    g.ok(&["user", "create", "bob", "--email", "bob@example.com"]);
    let mut secrets = Vec::new();
    for (name, user, date) in [
        ("t60", "alice", "2027-04-30"),
        ("t30", "alice", "2027-03-31"),
        ("t7", "alice", "2027-03-08"),
        ("t5", "alice", "2027-03-06"),
        ("today", "alice", "2027-03-01"),
        ("t90", "alice", "2027-05-30"),
        ("revoked", "alice", "2027-03-08"),
        ("blocked", "bob", "2027-03-08"),
    ] {
        let out = g.ok(&[
            "token",
            "create",
            "--user",
            user,
            "--name",
            name,
            "--scopes",
            "api",
            "--expires-at",
            date,
        ]);
        secrets.push(out.trim().to_string());
    }
    g.ok(&["token", "revoke", "--token", &secrets[6]]);
    g.ok(&["user", "block", "bob"]);
    secrets
}

#[test]
fn expiry_notices_go_once_at_their_windows_and_never_to_revoked_or_blocked() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        let secrets = expiry_world(&g);
        let sink = SmtpSink::start(None);
        let env = mail_env(sink.port);
        let report = notify_at(&g, &env, "2027-03-01T01:00:00Z");
        let got = sink.messages();
        assert_eq!(
            subjects(&got),
            vec![
                "Your personal access token \"t30\" expires in 30 days",
                "Your personal access token \"t5\" expires in 5 days",
                "Your personal access token \"t60\" expires in 60 days",
                "Your personal access token \"t7\" expires in 7 days",
                "Your personal access token \"today\" has expired",
            ],
            "[{b}] {report}"
        );
        for m in &got {
            assert_eq!(m.to, vec!["alice@example.com".to_string()], "[{b}] {}", m.subject());
            assert_eq!(m.from, "gitpat@localhost", "[{b}]");
            assert_contains(
                &m.text,
                "/-/user_settings/personal_access_tokens",
                &format!("[{b}] the link"),
            );
            assert_contains(&m.text, "Scopes: api", &format!("[{b}] the scopes"));
            assert!(
                m.raw.contains("text/html") && m.raw.contains("text/plain"),
                "[{b}] both parts"
            );
        }
        // Again, the same day and the next: nothing new.
        notify_at(&g, &env, "2027-03-01T01:00:00Z");
        notify_at(&g, &env, "2027-03-02T01:00:00Z");
        assert_eq!(sink.messages().len(), 5, "[{b}] a notice went twice");
        // t30 reaches its 7-day window on 2027-03-24.
        notify_at(&g, &env, "2027-03-24T01:00:00Z");
        let later = sink.messages();
        assert_eq!(later.len(), 6, "[{b}] {:?}", subjects(&later));
        assert_eq!(
            later[5].subject(),
            "Your personal access token \"t30\" expires in 7 days",
            "[{b}]"
        );
        assert_no_token(&later, &secrets);
    }
}

#[test]
fn two_instances_racing_the_same_check_send_each_notice_once() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        expiry_world(&g);
        let sink = SmtpSink::start(None);
        let env = mail_env(sink.port);
        let racers: Vec<std::process::Child> = (0..2)
            .map(|_| {
                g.command()
                    .args(["notify", "run", "--at", "2027-03-01T01:00:00Z"])
                    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for r in racers {
            let out = r.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "[{b}] a racer failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let got = subjects(&sink.messages());
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(got.len(), 5, "[{b}] {got:?}");
        assert_eq!(unique, got, "[{b}] a notice went twice");
    }
}

#[test]
fn a_notice_is_retried_once_the_smtp_server_is_back() {
    let g = Gitpat::new(crate::support::TestDb::sqlite());
    expiry_world(&g);
    let port = crate::support::smtp::free_port();
    let env = mail_env(port);
    // The server is down: the first send fails and ends the round.
    let report = notify_at(&g, &env, "2027-03-01T01:00:00Z");
    assert!(report.contains("sent 0") && report.contains("failed 1"), "{report}");
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start_at(port, dir.path().to_path_buf(), None, None);
    // Back up: the others go, the failed one waits for its backoff (a
    // minute)...
    let report = notify_at(&g, &env, "2027-03-01T01:00:30Z");
    assert_eq!(sink.messages().len(), 4, "{report}");
    // ...then goes too, once.
    let report = notify_at(&g, &env, "2027-03-01T01:01:30Z");
    assert_eq!(sink.messages().len(), 5, "{report}");
    notify_at(&g, &env, "2027-03-01T02:00:00Z");
    assert_eq!(sink.messages().len(), 5);
}

#[test]
fn starttls_to_a_server_of_a_trusted_ca_and_not_to_another() {
    let g = Gitpat::new(crate::support::TestDb::sqlite());
    expiry_world(&g);
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::support::tls::test_ca(certs.path());
    let sink = SmtpSink::start(Some((&cert, &key)));
    let mut env = mail_env(sink.port);
    env.retain(|(k, _)| *k != "GITPAT_SMTP_TLS");
    env.push(("GITPAT_SMTP_TLS", "starttls".into()));
    // Without the CA, the certificate is refused: nothing is sent.
    let report = notify_at(&g, &env, "2027-03-01T01:00:00Z");
    assert!(report.contains("sent 0"), "{report}");
    assert_eq!(sink.messages().len(), 0);
    env.push(("GITPAT_SMTP_CA_FILE", ca.display().to_string()));
    let report = notify_at(&g, &env, "2027-03-01T01:05:00Z");
    let got = sink.messages();
    assert_eq!(got.len(), 5, "{report}");
    assert!(got.iter().all(|m| m.tls), "a message outside TLS");
}

#[test]
fn the_owner_hears_of_every_new_token_and_of_a_family_revocation() {
    for g in Gitpat::each() {
        let b = g.db.backend;
        g.ok(&["user", "create", "root", "--email", "root@example.com", "--admin"]);
        g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
        let admin_token = g.ok(&[
            "token", "create", "--user", "root", "--name", "admin", "--scopes", "api",
        ]);
        let admin_token = admin_token.trim().to_string();
        let sink = SmtpSink::start(None);
        let env = mail_env(sink.port);
        let server = Server::start_with_env(&g, &[], &env);
        let base = format!("http://{}", server.addr());
        let alice_id = g
            .json(&["user", "list", "--json"])
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|u| u["username"] == "alice")
                    .map(|u| u["id"].as_i64().unwrap_or(0))
            })
            .unwrap_or(0);
        // By the CLI, by an administrator through the API, and as an
        // impersonation token (by the owner on the page: see web_forms).
        let cli = g.ok(&[
            "token", "create", "--user", "alice", "--name", "from-cli", "--scopes", "read_api",
        ]);
        let api = |path: &str, token: &str, body: &str| {
            let out = Command::new("curl")
                .args([
                    "-sS",
                    "-X",
                    "POST",
                    "-H",
                    &format!("PRIVATE-TOKEN: {token}"),
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    body,
                ])
                .arg(format!("{base}{path}"))
                .output()
                .expect("curl");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v["token"].as_str().unwrap_or_default().to_string()
        };
        let by_admin = api(
            &format!("/api/v4/users/{alice_id}/personal_access_tokens"),
            &admin_token,
            r#"{"name":"by-admin","scopes":["api"]}"#,
        );
        let impersonation = api(
            &format!("/api/v4/users/{alice_id}/impersonation_tokens"),
            &admin_token,
            r#"{"name":"impersonating","scopes":["read_user"]}"#,
        );
        assert!(
            !by_admin.is_empty() && !impersonation.is_empty(),
            "[{b}] a token was not made"
        );
        // The running server sends within a minute.
        let wait_for = |n: usize| {
            let started = Instant::now();
            while sink.messages().len() < n && started.elapsed() < Duration::from_secs(70) {
                std::thread::sleep(Duration::from_millis(500));
            }
            sink.messages()
        };
        // root's own token, and three of alice's.
        let got = wait_for(4);
        let to_alice = |got: &[Received]| -> Vec<Received> {
            got.iter()
                .filter(|m| m.to == vec!["alice@example.com".to_string()])
                .cloned()
                .collect()
        };
        let text_of = |name: &str| -> String {
            to_alice(&got)
                .iter()
                .find(|m| m.text.contains(&format!("\"{name}\"")) && m.subject().contains("created"))
                .map(|m| m.text.clone())
                .unwrap_or_else(|| panic!("[{b}] no new-token mail for {name}: {:?}", subjects(&got)))
        };
        assert_contains(
            &text_of("from-cli"),
            "with the gitpat command line, by an administrator",
            &format!("[{b}]"),
        );
        assert_contains(
            &text_of("by-admin"),
            "through the API, by the administrator root",
            &format!("[{b}]"),
        );
        assert_contains(
            &text_of("impersonating"),
            "as an impersonation token, by the administrator root",
            &format!("[{b}]"),
        );
        // A rotated-away token used again: the family is revoked, and she
        // is told from where.
        let rotated = Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", &format!("PRIVATE-TOKEN: {by_admin}")])
            .arg(format!("{base}/api/v4/personal_access_tokens/self/rotate"))
            .output()
            .expect("curl");
        assert!(
            String::from_utf8_lossy(&rotated.stdout).contains("token"),
            "[{b}] rotation"
        );
        let reuse = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                &format!("PRIVATE-TOKEN: {by_admin}"),
            ])
            .arg(format!("{base}/api/v4/user"))
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&reuse.stdout),
            "401",
            "[{b}] the rotated-away token"
        );
        let got = wait_for(5);
        let revoked = to_alice(&got)
            .into_iter()
            .find(|m| m.subject().contains("rotated-away token was used"))
            .unwrap_or_else(|| panic!("[{b}] no revocation notice: {:?}", subjects(&got)));
        assert_contains(&revoked.text, "from 127.0.0.1", &format!("[{b}] the IP"));
        assert_eq!(got.len(), 5, "[{b}] {:?}", subjects(&got));
        let secrets = vec![admin_token, cli.trim().to_string(), by_admin, impersonation];
        assert_no_token(&got, &secrets);
        drop(server);
    }
}

#[test]
fn notify_preview_prints_a_message_and_mail_off_sends_nothing() {
    let g = Gitpat::new(crate::support::TestDb::sqlite());
    g.ok(&["user", "create", "alice", "--email", "alice@example.com"]);
    let secret = g.ok(&[
        "token",
        "create",
        "--user",
        "alice",
        "--name",
        "laptop",
        "--scopes",
        "api",
        "--expires-at",
        "2027-01-10",
    ]);
    let preview = g.ok(&["notify", "preview", "--token-id", "1", "--kind", "expiring_7d"]);
    assert_contains(&preview, "To: alice <alice@example.com>", "the preview");
    assert_contains(
        &preview,
        "Subject: Your personal access token \"laptop\" expires in",
        "the preview",
    );
    assert!(!preview.contains(secret.trim()));
    let err = g.fails(&["notify", "preview", "--token-id", "1", "--kind", "expiring_soon"]);
    assert_contains(&err, "unknown notice kind", "a bad kind");
    let out = g.ok(&["notify", "run", "--at", "2027-01-05T01:00:00Z"]);
    assert_contains(&out, "mail is off", "no mail configured");
    let err = g.fails(&["notify", "run", "--at", "yesterday"]);
    assert_contains(&err, "RFC 3339", "a bad --at");
}

/// The daily checks run from 01:00 (expiring) and 02:00 UTC (expired),
/// once a day whichever instance gets there first, and catch up after a
/// downtime.
#[test]
fn the_daily_checks_run_once_a_day_from_their_hour() {
    use chrono::{DateTime, Utc};
    use gitpat::service::notify::run_due_checks;
    for tdb in crate::support::backends() {
        let b = tdb.backend;
        let conn = &mut tdb.conn();
        let other = &mut tdb.conn();
        let at = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let req = gitpat::service::users::NewUserRequest {
            username: "alice",
            email: "alice@example.com",
            name: None,
            password: None,
            is_admin: false,
        };
        let alice = gitpat::service::users::create(
            conn,
            &gitpat::service::audit::Actor::cli(),
            &req,
            at("2027-02-01T00:00:00Z"),
        )
        .unwrap();
        let settings = gitpat::settings::Settings::default();
        for (name, date) in [("soon", "2027-03-05"), ("today", "2027-03-01")] {
            let t = gitpat::service::tokens::NewTokenRequest {
                user: &alice,
                name,
                description: None,
                scopes: &["api".to_string()],
                expires_at: Some(date.parse().unwrap()),
                token: None,
                impersonation: false,
                actor: &gitpat::service::audit::Actor::cli(),
            };
            gitpat::service::tokens::create(
                conn,
                &gitpat::auth::token::SecretKey::from_bytes([2; 32]),
                &settings,
                &t,
                at("2027-02-01T00:00:00Z"),
            )
            .unwrap();
        }
        assert_eq!(
            run_due_checks(conn, &settings, at("2027-03-01T00:59:00Z")).unwrap(),
            0,
            "[{b}] before 01:00"
        );
        assert_eq!(
            run_due_checks(conn, &settings, at("2027-03-01T01:00:00Z")).unwrap(),
            1,
            "[{b}] the expiring check"
        );
        assert_eq!(
            run_due_checks(other, &settings, at("2027-03-01T01:30:00Z")).unwrap(),
            0,
            "[{b}] run twice in a day"
        );
        assert_eq!(
            run_due_checks(other, &settings, at("2027-03-01T02:00:00Z")).unwrap(),
            1,
            "[{b}] the expired check"
        );
        assert_eq!(
            run_due_checks(conn, &settings, at("2027-03-01T23:00:00Z")).unwrap(),
            0,
            "[{b}]"
        );
        // Down all of the 2nd: on the 3rd both checks run at start-up, and
        // find nothing new (each notice is queued once).
        let kinds = |c: &mut gitpat::db::DbConn| -> Vec<String> {
            let mut k: Vec<String> = (1..=2)
                .flat_map(|id| gitpat::db::notification::list_for_token(c, id).unwrap())
                .map(|n| n.kind)
                .collect();
            k.sort();
            k
        };
        assert_eq!(
            run_due_checks(conn, &settings, at("2027-03-03T09:00:00Z")).unwrap(),
            0,
            "[{b}]"
        );
        assert_eq!(
            kinds(conn),
            vec!["created", "created", "expired", "expiring_7d"],
            "[{b}]"
        );
    }
}

/// A sender that died between its claim and the send leaves the notice
/// claimed: others leave it alone for an hour, then take it again.
#[test]
fn a_claim_older_than_an_hour_is_taken_again() {
    use chrono::{DateTime, Duration as D, Utc};
    use gitpat::db::notification as n;
    for tdb in crate::support::backends() {
        let b = tdb.backend;
        let conn = &mut tdb.conn();
        let at = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let req = gitpat::service::users::NewUserRequest {
            username: "alice",
            email: "alice@example.com",
            name: None,
            password: None,
            is_admin: false,
        };
        let alice = gitpat::service::users::create(
            conn,
            &gitpat::service::audit::Actor::cli(),
            &req,
            at("2027-02-01T00:00:00Z"),
        )
        .unwrap();
        let t = gitpat::service::tokens::NewTokenRequest {
            user: &alice,
            name: "t",
            description: None,
            scopes: &["api".to_string()],
            expires_at: None,
            token: None,
            impersonation: false,
            actor: &gitpat::service::audit::Actor::cli(),
        };
        let t0 = at("2027-02-01T00:00:00Z");
        gitpat::service::tokens::create(
            conn,
            &gitpat::auth::token::SecretKey::from_bytes([2; 32]),
            &gitpat::settings::Settings::default(),
            &t,
            t0,
        )
        .unwrap();
        let ttl = gitpat::service::notify::CLAIM_TTL;
        let due = |c: &mut gitpat::db::DbConn, now: DateTime<Utc>| {
            n::due(c, now.naive_utc(), (now - ttl).naive_utc(), 10).unwrap()
        };
        let [id] = due(conn, t0)[..] else {
            panic!("[{b}] not one notice due")
        };
        assert!(
            n::claim(conn, id, t0.naive_utc(), (t0 - ttl).naive_utc())
                .unwrap()
                .is_some(),
            "[{b}]"
        );
        // The claimer dies. A minute and 59 minutes later: still its.
        for later in [D::minutes(1), D::minutes(59)] {
            let now = t0 + later;
            assert!(due(conn, now).is_empty(), "[{b}] taken again after {later}");
            assert!(
                n::claim(conn, id, now.naive_utc(), (now - ttl).naive_utc())
                    .unwrap()
                    .is_none(),
                "[{b}]"
            );
        }
        let now = t0 + D::minutes(61);
        assert_eq!(due(conn, now), vec![id], "[{b}] not taken again after an hour");
        assert!(
            n::claim(conn, id, now.naive_utc(), (now - ttl).naive_utc())
                .unwrap()
                .is_some(),
            "[{b}]"
        );
        n::finish(conn, id, "sent", now.naive_utc()).unwrap();
        assert!(
            due(conn, now + D::hours(3)).is_empty(),
            "[{b}] a sent notice is due again"
        );
    }
}

#[test]
fn the_file_and_sendmail_transports_deliver_too() {
    let g = Gitpat::new(crate::support::TestDb::sqlite());
    expiry_world(&g);
    // mail = file: one .eml per message.
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("GITPAT_MAIL", "file".to_string()),
        ("GITPAT_MAIL_DIR", dir.path().display().to_string()),
    ];
    notify_at(&g, &env, "2027-03-01T01:00:00Z");
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(files.len(), 5, "the .eml files");
    assert!(files
        .iter()
        .any(|f| f.contains("Subject: Your personal access token \"t7\" expires in 7 days")));
    // mail = sendmail: /usr/sbin/sendmail (msmtp here) relays to a real
    // SMTP server.
    assert!(
        Path::new("/usr/sbin/sendmail").exists(),
        "/usr/sbin/sendmail is missing: run the tests with ./test, which installs msmtp-mta"
    );
    let g = Gitpat::new(crate::support::TestDb::sqlite());
    expiry_world(&g);
    let sink = SmtpSink::start(None);
    let home = tempfile::tempdir().unwrap();
    let rc = home.path().join(".msmtprc");
    std::fs::write(
        &rc,
        format!(
            "defaults\nauth off\ntls off\naccount default\nhost 127.0.0.1\nport {}\nfrom gitpat@localhost\n",
            sink.port
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = vec![
        ("GITPAT_MAIL", "sendmail".to_string()),
        ("HOME", home.path().display().to_string()),
    ];
    let report = notify_at(&g, &env, "2027-03-01T01:00:00Z");
    assert_eq!(sink.messages().len(), 5, "{report}");
    assert!(sink
        .messages()
        .iter()
        .all(|m| m.to == vec!["alice@example.com".to_string()]));
}

#[test]
fn implicit_tls_and_smtp_auth_with_the_password_from_the_environment_or_a_file() {
    let g = Gitpat::new(crate::support::TestDb::sqlite());
    expiry_world(&g);
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::support::tls::test_ca(certs.path());
    let sink = SmtpSink::start_with(
        Some((&cert, &key)),
        &["--implicit-tls", "--user", "gitpat", "--password", "pa55 word"],
    );
    let base = vec![
        ("GITPAT_MAIL", "smtp".to_string()),
        ("GITPAT_SMTP_HOST", "127.0.0.1".to_string()),
        ("GITPAT_SMTP_PORT", sink.port.to_string()),
        ("GITPAT_SMTP_TLS", "tls".to_string()),
        ("GITPAT_SMTP_CA_FILE", ca.display().to_string()),
        ("GITPAT_SMTP_USERNAME", "gitpat".to_string()),
    ];
    // A wrong password: refused by the server, nothing sent, and the
    // password is not in what gitpat prints.
    let mut env = base.clone();
    env.push(("GITPAT_SMTP_PASSWORD", "not it".to_string()));
    let out = run_env(&g, &env, &["notify", "run", "--at", "2027-03-01T01:00:00Z"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("sent 0"), "{said}");
    assert!(!said.contains("not it"), "the password was printed: {said}");
    assert_eq!(sink.messages().len(), 0);
    // The right one, from a file.
    let pw = certs.path().join("smtp-password");
    std::fs::write(&pw, "pa55 word\n").unwrap();
    let mut env = base;
    env.push(("GITPAT_SMTP_PASSWORD_FILE", pw.display().to_string()));
    let report = notify_at(&g, &env, "2027-03-01T01:05:00Z");
    let got = sink.messages();
    assert_eq!(got.len(), 5, "{report}");
    assert!(got.iter().all(|m| m.tls));
}
