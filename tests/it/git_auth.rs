//! The Git-over-HTTP authentication and authorization rules (spec section
//! 3) through their one chain, `service::git_http::grant`, on every
//! backend, without the protocol: scopes, roles, passwords and 2FA, the
//! ban and the account lock.

use chrono::{Duration, Utc};
use gitpat::auth::basic::BasicCredentials;
use gitpat::auth::token::SecretKey;
use gitpat::db::DbConn;
use gitpat::git::store::RepoStore;
use gitpat::service::git_http::{self, Creds, Denied, GitRequest, Grant, Operation};
use gitpat::service::{repos, tokens, users};
use gitpat::settings::Settings;

use crate::support::backends;

fn key() -> SecretKey {
    SecretKey::from_bytes([9; 32])
}

fn creds(user: &str, password: &str) -> BasicCredentials {
    BasicCredentials {
        username: user.into(),
        password: password.into(),
    }
}

struct World {
    _dir: tempfile::TempDir,
    settings: Settings,
}

const PASSWORD: &str = "a good long password";

fn setup(conn: &mut DbConn) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = RepoStore::new(dir.path().join("repositories"));
    for (name, admin) in [
        ("alice", false),
        ("rita", false),
        ("dev", false),
        ("stranger", false),
        ("twofa", false),
    ] {
        let email = format!("{name}@example.com");
        let req = users::NewUserRequest {
            username: name,
            email: &email,
            name: None,
            password: Some(PASSWORD),
            is_admin: admin,
        };
        users::create(conn, &gitpat::service::audit::Actor::cli(), &req, Utc::now()).unwrap();
    }
    users::enable_two_factor(
        conn,
        &key(),
        &gitpat::service::audit::Actor::cli(),
        "twofa",
        chrono::Utc::now(),
    )
    .unwrap();
    let new = |path, visibility| repos::NewRepoRequest {
        path,
        name: None,
        owner: None,
        visibility: Some(visibility),
        default_branch: None,
        description: None,
        import: None,
    };
    repos::create(conn, &store, &new("alice/private", "private"), Utc::now()).unwrap();
    repos::create(conn, &store, &new("alice/public", "public"), Utc::now()).unwrap();
    repos::add_member(conn, "alice/private", "rita", "reporter", Utc::now()).unwrap();
    repos::add_member(conn, "alice/private", "dev", "developer", Utc::now()).unwrap();
    repos::add_member(conn, "alice/private", "twofa", "developer", Utc::now()).unwrap();
    World {
        _dir: dir,
        settings: Settings::default(),
    }
}

fn token(conn: &mut DbConn, w: &World, user: &str, scopes: &[&str], expires_in_days: Option<i64>) -> String {
    let u = users::get(conn, user).unwrap();
    let sc: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let req = tokens::NewTokenRequest {
        user: &u,
        name: "git",
        description: None,
        scopes: &sc,
        expires_at: expires_in_days.map(|d| Utc::now().date_naive() + Duration::days(d)),
        token: None,
        impersonation: false,
        actor: &gitpat::service::audit::Actor::cli(),
    };
    tokens::create(conn, &key(), &w.settings, &req, Utc::now())
        .unwrap()
        .1
        .expose()
        .to_string()
}

fn request(c: Option<&BasicCredentials>, repo: &str, op: Operation, ip: &str) -> GitRequest {
    GitRequest {
        repo: repo.to_string(),
        op,
        creds: match c {
            Some(c) => Creds::Basic(c.clone()),
            None => Creds::None,
        },
        ip: Some(ip.parse().unwrap()),
        now: Utc::now(),
    }
}

/// One Git request from `ip`, through the whole chain.
fn grant_from(
    conn: &mut DbConn,
    w: &World,
    c: Option<&BasicCredentials>,
    repo: &str,
    op: Operation,
    ip: &str,
) -> Result<Grant, Denied> {
    git_http::grant(
        gitpat::service::Conns::Lent(conn),
        &key(),
        &w.settings,
        &request(c, repo, op, ip),
    )
    .unwrap()
}

/// A pull of `alice/private` as `user` with `secret` from `ip`.
fn pull_from(conn: &mut DbConn, w: &World, user: &str, secret: &str, ip: &str) -> Result<Grant, Denied> {
    grant_from(conn, w, Some(&creds(user, secret)), "alice/private", PULL, ip)
}

/// One Git request from 127.0.0.1: allowed or why not.
fn check(conn: &mut DbConn, w: &World, c: Option<&BasicCredentials>, repo: &str, op: Operation) -> Result<(), Denied> {
    grant_from(conn, w, c, repo, op, "127.0.0.1").map(|_| ())
}

fn forbidden(m: &'static str) -> Denied {
    Denied::Forbidden(m.into())
}

fn challenge() -> Denied {
    Denied::Challenge(git_http::ACCESS_DENIED.into())
}

fn token_required() -> Denied {
    Denied::NoChallenge(git_http::TOKEN_REQUIRED.into())
}

const PULL: Operation = Operation::Pull;
const PUSH: Operation = Operation::Push;

#[test]
fn scopes_decide_pull_and_push() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let w = setup(conn);
        let repo = "alice/private";
        type Case<'a> = (&'a [&'a str], Result<(), Denied>, Result<(), Denied>);
        let cases: [Case; 6] = [
            (&["read_repository"], Ok(()), Err(forbidden(git_http::CANNOT_UPLOAD))),
            (&["write_repository"], Ok(()), Ok(())),
            (&["api"], Ok(()), Ok(())),
            (&["read_api"], Ok(()), Err(forbidden(git_http::CANNOT_UPLOAD))),
            (
                &["read_user"],
                Err(forbidden(git_http::CANNOT_DOWNLOAD)),
                Err(forbidden(git_http::CANNOT_UPLOAD)),
            ),
            (
                &["read_registry", "write_registry"],
                Err(forbidden(git_http::CANNOT_DOWNLOAD)),
                Err(forbidden(git_http::CANNOT_UPLOAD)),
            ),
        ];
        for (scopes, pull, push) in cases {
            let t = token(conn, &w, "dev", scopes, None);
            // The username is not compared: anything non-empty will do.
            let c = creds("oauth2", &t);
            assert_eq!(
                check(conn, &w, Some(&c), repo, PULL),
                pull,
                "{}: {scopes:?} pull",
                tdb.backend
            );
            assert_eq!(
                check(conn, &w, Some(&c), repo, PUSH),
                push,
                "{}: {scopes:?} push",
                tdb.backend
            );
        }
        // Any username will do with a token, an empty one too (GitLab
        // ignores it).
        let t = token(conn, &w, "dev", &["api"], None);
        assert_eq!(check(conn, &w, Some(&creds("", &t)), repo, PULL), Ok(()));
        // A token refused for its scope is not recorded as used.
        let t = token(conn, &w, "dev", &["read_user"], None);
        assert!(check(conn, &w, Some(&creds("dev", &t)), repo, PULL).is_err());
        let row = tokens::find_by_secret(conn, &key(), &gitpat::auth::token::PlainToken::new(t)).unwrap();
        assert_eq!(
            row.last_used_at, None,
            "{}: a refused request recorded use",
            tdb.backend
        );
    }
}

#[test]
fn expired_revoked_and_blocked_tokens_fail_with_a_challenge() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let w = setup(conn);
        let denied = Err(challenge());
        let today = token(conn, &w, "dev", &["read_repository"], Some(0));
        assert_eq!(
            check(conn, &w, Some(&creds("dev", &today)), "alice/private", PULL),
            denied,
            "{}",
            tdb.backend
        );
        let tomorrow = token(conn, &w, "dev", &["read_repository"], Some(1));
        assert_eq!(
            check(conn, &w, Some(&creds("dev", &tomorrow)), "alice/private", PULL),
            Ok(())
        );
        let row =
            tokens::find_by_secret(conn, &key(), &gitpat::auth::token::PlainToken::new(tomorrow.clone())).unwrap();
        tokens::revoke(conn, &gitpat::service::audit::Actor::cli(), row.id, chrono::Utc::now()).unwrap();
        assert_eq!(
            check(conn, &w, Some(&creds("dev", &tomorrow)), "alice/private", PULL),
            denied
        );
        let t = token(conn, &w, "dev", &["api"], None);
        users::set_blocked(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "dev",
            true,
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(check(conn, &w, Some(&creds("dev", &t)), "alice/private", PULL), denied);
        assert_eq!(
            check(conn, &w, Some(&creds("dev", PASSWORD)), "alice/private", PULL),
            denied,
            "blocked, password"
        );
        // A successful token use is recorded.
        let t = token(conn, &w, "rita", &["read_repository"], None);
        assert!(check(conn, &w, Some(&creds("rita", &t)), "alice/private", PULL).is_ok());
        let row = tokens::find_by_secret(conn, &key(), &gitpat::auth::token::PlainToken::new(t)).unwrap();
        assert!(row.last_used_at.is_some(), "{}: use not recorded", tdb.backend);
        assert_eq!(row.last_used_ips, r#"["127.0.0.1"]"#);
    }
}

#[test]
fn passwords_work_without_2fa_and_are_refused_with_it() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let mut w = setup(conn);
        assert_eq!(
            check(conn, &w, Some(&creds("dev", PASSWORD)), "alice/private", PUSH),
            Ok(()),
            "{}",
            tdb.backend
        );
        assert_eq!(
            check(conn, &w, Some(&creds("DEV", PASSWORD)), "alice/private", PULL),
            Ok(()),
            "case-insensitive"
        );
        let wrong = check(conn, &w, Some(&creds("dev", "wrong password")), "alice/private", PULL);
        assert_eq!(wrong, Err(challenge()));
        let nobody = check(conn, &w, Some(&creds("nobody", PASSWORD)), "alice/private", PULL);
        assert_eq!(nobody, Err(challenge()));
        // 2FA: the password is refused with a text asking for a token, and
        // no challenge (git would only ask again).
        let r = check(conn, &w, Some(&creds("twofa", PASSWORD)), "alice/private", PULL);
        assert_eq!(r, Err(token_required()));
        assert!(git_http::TOKEN_REQUIRED.contains("'read_repository' or 'write_repository'"));
        // ...and a token works.
        let t = token(conn, &w, "twofa", &["write_repository"], None);
        assert_eq!(
            check(conn, &w, Some(&creds("twofa", &t)), "alice/private", PUSH),
            Ok(())
        );
        // The instance may turn passwords off for Git.
        w.settings.password_authentication_enabled_for_git = false;
        let r = check(conn, &w, Some(&creds("dev", PASSWORD)), "alice/private", PULL);
        assert_eq!(r, Err(token_required()), "{}", tdb.backend);
    }
}

#[test]
fn roles_and_visibility_decide_where() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let w = setup(conn);
        let t = |conn: &mut DbConn, u: &str| creds(u, &token(conn, &w, u, &["api"], None));
        let rita = t(conn, "rita");
        let stranger = t(conn, "stranger");
        let dev = t(conn, "dev");
        assert_eq!(
            check(conn, &w, Some(&rita), "alice/private", PULL),
            Ok(()),
            "{}: reporter pulls",
            tdb.backend
        );
        assert_eq!(
            check(conn, &w, Some(&rita), "alice/private", PUSH),
            Err(forbidden(git_http::CANNOT_UPLOAD))
        );
        assert_eq!(check(conn, &w, Some(&dev), "alice/private", PUSH), Ok(()));
        // A non-member gets the same answer as for a missing repository.
        assert_eq!(
            check(conn, &w, Some(&stranger), "alice/private", PULL),
            Err(Denied::NotFound)
        );
        assert_eq!(
            check(conn, &w, Some(&stranger), "alice/missing", PULL),
            Err(Denied::NotFound)
        );
        assert_eq!(Denied::NotFound.message(), git_http::NOT_FOUND);
        // Public: anyone pulls, even anonymously; pushing needs a role.
        assert_eq!(check(conn, &w, None, "alice/public", PULL), Ok(()));
        assert_eq!(check(conn, &w, Some(&stranger), "alice/public", PULL), Ok(()));
        assert_eq!(
            check(conn, &w, Some(&stranger), "alice/public", PUSH),
            Err(forbidden(git_http::CANNOT_UPLOAD))
        );
        // Anonymous: asked for credentials for everything else.
        let challenge = Err(challenge());
        assert_eq!(check(conn, &w, None, "alice/public", PUSH), challenge);
        assert_eq!(check(conn, &w, None, "alice/private", PULL), challenge);
        assert_eq!(
            check(conn, &w, None, "alice/missing", PULL),
            challenge,
            "{}",
            tdb.backend
        );
    }
}

/// Ten bad credentials from `ip` (the default ban: 10 in a minute).
fn ten_failures(conn: &mut DbConn, w: &World, ip: &str) {
    for i in 0..10 {
        let bad = creds("nobody", &format!("glpat-wrong-{i}"));
        assert_eq!(
            grant_from(conn, w, Some(&bad), "alice/private", PULL, ip).map(|_| ()),
            Err(challenge())
        );
    }
}

fn banned(r: Result<Grant, Denied>) -> bool {
    matches!(r, Err(Denied::Forbidden(m)) if m.starts_with(git_http::BANNED) && m.ends_with(" UTC"))
}

#[test]
fn a_banned_client_keeps_its_valid_tokens_and_its_passwords_are_not_checked() {
    for tdb in backends() {
        let b = tdb.backend;
        let conn = &mut tdb.conn();
        let w = setup(conn);
        let t = token(conn, &w, "dev", &["read_repository"], None);
        ten_failures(conn, &w, "192.0.2.1");
        // A valid token still works: a NAT or CI runner stays usable.
        assert!(
            pull_from(conn, &w, "dev", &t, "192.0.2.1").is_ok(),
            "[{b}] a valid token from a banned client"
        );
        // Passwords, right or wrong, and bad tokens are refused, saying
        // until when, and without the cost of argon2.
        let started = std::time::Instant::now();
        let right = pull_from(conn, &w, "dev", PASSWORD, "192.0.2.1");
        let refused_in = started.elapsed();
        assert!(banned(right), "[{b}] a right password from a banned client");
        let wrong = pull_from(conn, &w, "dev", "nope", "192.0.2.1");
        assert!(banned(wrong), "[{b}] a wrong password from a banned client");
        assert!(banned(pull_from(conn, &w, "x", "glpat-bad", "192.0.2.1")));
        let hash = gitpat::auth::password::hash(PASSWORD).unwrap();
        let started = std::time::Instant::now();
        assert!(gitpat::auth::password::verify(PASSWORD, &hash));
        let argon2 = started.elapsed();
        assert!(
            refused_in * 4 < argon2,
            "[{b}] the banned refusal took {refused_in:?}, one argon2 check {argon2:?}"
        );
        // Another client, and the same user's other account lock, are untouched.
        assert_eq!(pull_from(conn, &w, "dev", PASSWORD, "192.0.2.2").map(|_| ()), Ok(()));
        // IPv6 clients count by their /64.
        ten_failures(conn, &w, "2001:db8:1:2::1");
        assert!(banned(pull_from(conn, &w, "dev", PASSWORD, "2001:db8:1:2:ffff::9")));
    }
}

#[test]
fn successes_do_not_reset_the_clients_count() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let w = setup(conn);
        let t = token(conn, &w, "dev", &["read_repository"], None);
        for i in 0..9 {
            let bad = creds("alice", &format!("guess {i}"));
            assert!(grant_from(conn, &w, Some(&bad), "alice/private", PULL, "192.0.2.9").is_err());
            // The guesser's own valid token between the guesses.
            assert!(pull_from(conn, &w, "dev", &t, "192.0.2.9").is_ok());
            assert!(pull_from(conn, &w, "dev", PASSWORD, "192.0.2.9").is_ok());
        }
        let last = pull_from(conn, &w, "alice", "guess 9", "192.0.2.9");
        assert_eq!(last.map(|_| ()), Err(challenge()));
        assert!(
            banned(pull_from(conn, &w, "alice", PASSWORD, "192.0.2.9")),
            "{}: interleaved successes kept the guesser unbanned",
            tdb.backend
        );
    }
}

#[test]
fn ten_wrong_passwords_lock_the_account_from_every_ip() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let w = setup(conn);
        // From ten different clients, none of them banned.
        for i in 0..10 {
            let ip = format!("198.51.100.{i}");
            let r = pull_from(conn, &w, "dev", "wrong", &ip);
            assert_eq!(r.map(|_| ()), Err(challenge()), "{}", tdb.backend);
        }
        let locked = pull_from(conn, &w, "dev", PASSWORD, "203.0.113.1");
        assert!(
            matches!(&locked, Err(Denied::NoChallenge(m)) if m.contains("locked") && m.contains("UTC")),
            "{}: {locked:?}",
            tdb.backend
        );
        // Tokens are not passwords: they still work.
        let t = token(conn, &w, "dev", &["read_repository"], None);
        assert!(pull_from(conn, &w, "dev", &t, "203.0.113.1").is_ok());
        // Others' accounts are not locked.
        assert!(pull_from(conn, &w, "rita", PASSWORD, "203.0.113.1").is_ok());
        // A right password before the tenth failure clears the account's count.
        for i in 0..9 {
            let ip = format!("198.51.100.{}", 20 + i);
            assert!(pull_from(conn, &w, "rita", "wrong", &ip).is_err());
        }
        assert!(pull_from(conn, &w, "rita", PASSWORD, "203.0.113.2").is_ok());
        assert!(pull_from(conn, &w, "rita", "wrong", "203.0.113.3").is_err());
        assert!(pull_from(conn, &w, "rita", PASSWORD, "203.0.113.4").is_ok());
    }
}

#[test]
fn where_passwords_are_refused_the_answer_does_not_depend_on_the_password() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let mut w = setup(conn);
        let right = check(conn, &w, Some(&creds("twofa", PASSWORD)), "alice/private", PULL);
        let wrong = check(conn, &w, Some(&creds("twofa", "not it")), "alice/private", PULL);
        assert_eq!(right, Err(token_required()), "{}", tdb.backend);
        assert_eq!(wrong, right, "{}: a 2FA user's password is an oracle", tdb.backend);
        w.settings.password_authentication_enabled_for_git = false;
        let right = check(conn, &w, Some(&creds("dev", PASSWORD)), "alice/private", PULL);
        let wrong = check(conn, &w, Some(&creds("dev", "not it")), "alice/private", PULL);
        assert_eq!((right, wrong), (Err(token_required()), Err(token_required())));
    }
}

#[test]
fn two_instances_share_one_ban() {
    for tdb in backends() {
        // Two connections, as two instances on one database would have.
        let conn = &mut tdb.conn();
        let other = &mut tdb.conn();
        let w = setup(conn);
        ten_failures(conn, &w, "192.0.2.50");
        assert!(
            banned(grant_from(
                other,
                &w,
                Some(&creds("dev", PASSWORD)),
                "alice/private",
                PULL,
                "192.0.2.50"
            )),
            "{}: the other instance does not see the ban",
            tdb.backend
        );
    }
}

/// How long each pooled connection was out, as the pool saw it.
#[derive(Debug, Default)]
struct Checkouts(std::sync::Mutex<Vec<std::time::Duration>>);

impl diesel::r2d2::HandleEvent for &'static Checkouts {
    fn handle_checkin(&self, event: diesel::r2d2::event::CheckinEvent) {
        self.0.lock().unwrap().push(event.duration());
    }
}

#[test]
fn no_connection_is_held_while_argon2_checks_a_password() {
    for tdb in backends() {
        let w = setup(&mut tdb.conn());
        let checkouts: &'static Checkouts = Box::leak(Box::default());
        let url = match tdb.url.strip_prefix("sqlite://") {
            Some(path) => path.to_string(),
            None => tdb.url.clone(),
        };
        let pool = diesel::r2d2::Pool::builder()
            .max_size(1)
            .event_handler(Box::new(checkouts))
            .build(diesel::r2d2::ConnectionManager::<DbConn>::new(url))
            .unwrap();
        let started = std::time::Instant::now();
        let granted = git_http::grant(
            gitpat::service::Conns::Pool(&pool),
            &key(),
            &w.settings,
            &request(Some(&creds("dev", PASSWORD)), "alice/private", PULL, "192.0.2.60"),
        )
        .unwrap();
        let elapsed = started.elapsed();
        assert!(granted.is_ok(), "{}: the right password", tdb.backend);
        let out = checkouts.0.lock().unwrap().clone();
        let held: std::time::Duration = out.iter().sum();
        // argon2 (19 MiB, 2 passes) is by far the slowest step: the
        // connection is given back for it and taken again after.
        assert!(out.len() >= 2, "{}: checkouts {out:?}", tdb.backend);
        assert!(
            held * 2 < elapsed,
            "{}: a connection was out for {held:?} of the {elapsed:?} the grant took ({out:?})",
            tdb.backend
        );
    }
}
