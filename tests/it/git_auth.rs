//! The Git-over-HTTP authentication and authorization rules (spec section
//! 3), on every backend, without the protocol.

use chrono::{Duration, Utc};
use gitpat::auth::basic::BasicCredentials;
use gitpat::auth::token::SecretKey;
use gitpat::db::{self, DbConn};
use gitpat::git::store::RepoStore;
use gitpat::service::git_auth::{self, Caller, Denied, Operation};
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
        users::create(conn, &req, Utc::now()).unwrap();
    }
    users::enable_two_factor(conn, "twofa").unwrap();
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
    };
    tokens::create(conn, &key(), &w.settings, &req, Utc::now())
        .unwrap()
        .1
        .expose()
        .to_string()
}

fn login(conn: &mut DbConn, w: &World, c: Option<&BasicCredentials>) -> Result<Option<Caller>, Denied> {
    git_auth::authenticate(conn, &key(), &w.settings, c, Some("127.0.0.1"), Utc::now()).unwrap()
}

/// Authenticate then authorize, as one Git request does.
fn check(conn: &mut DbConn, w: &World, c: Option<&BasicCredentials>, repo: &str, op: Operation) -> Result<(), Denied> {
    let caller = login(conn, w, c)?;
    let project = db::project::find_by_path(conn, repo).unwrap();
    git_auth::authorize(conn, caller.as_ref(), project.as_ref(), op).unwrap()
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
            (
                &["read_repository"],
                Ok(()),
                Err(Denied::Forbidden(git_auth::CANNOT_UPLOAD)),
            ),
            (&["write_repository"], Ok(()), Ok(())),
            (&["api"], Ok(()), Ok(())),
            (&["read_api"], Ok(()), Err(Denied::Forbidden(git_auth::CANNOT_UPLOAD))),
            (
                &["read_user"],
                Err(Denied::Forbidden(git_auth::CANNOT_DOWNLOAD)),
                Err(Denied::Forbidden(git_auth::CANNOT_UPLOAD)),
            ),
            (
                &["read_registry", "write_registry"],
                Err(Denied::Forbidden(git_auth::CANNOT_DOWNLOAD)),
                Err(Denied::Forbidden(git_auth::CANNOT_UPLOAD)),
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
        let t = token(conn, &w, "dev", &["api"], None);
        assert_eq!(
            check(conn, &w, Some(&creds("", &t)), repo, PULL),
            Err(Denied::Challenge(git_auth::ACCESS_DENIED))
        );
    }
}

#[test]
fn expired_revoked_and_blocked_tokens_fail_with_a_challenge() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let w = setup(conn);
        let denied = Err(Denied::Challenge(git_auth::ACCESS_DENIED));
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
        tokens::revoke(conn, row.id).unwrap();
        assert_eq!(
            check(conn, &w, Some(&creds("dev", &tomorrow)), "alice/private", PULL),
            denied
        );
        let t = token(conn, &w, "dev", &["api"], None);
        users::set_blocked(conn, "dev", true).unwrap();
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
        assert_eq!(wrong, Err(Denied::Challenge(git_auth::ACCESS_DENIED)));
        let nobody = check(conn, &w, Some(&creds("nobody", PASSWORD)), "alice/private", PULL);
        assert_eq!(nobody, Err(Denied::Challenge(git_auth::ACCESS_DENIED)));
        // 2FA: the password is refused with a text asking for a token, and
        // no challenge (git would only ask again).
        let r = check(conn, &w, Some(&creds("twofa", PASSWORD)), "alice/private", PULL);
        assert_eq!(r, Err(Denied::NoChallenge(git_auth::TOKEN_REQUIRED)));
        assert!(git_auth::TOKEN_REQUIRED.contains("'read_repository' or 'write_repository'"));
        // ...and a token works.
        let t = token(conn, &w, "twofa", &["write_repository"], None);
        assert_eq!(
            check(conn, &w, Some(&creds("twofa", &t)), "alice/private", PUSH),
            Ok(())
        );
        // The instance may turn passwords off for Git.
        w.settings.password_authentication_enabled_for_git = false;
        let r = check(conn, &w, Some(&creds("dev", PASSWORD)), "alice/private", PULL);
        assert_eq!(r, Err(Denied::NoChallenge(git_auth::TOKEN_REQUIRED)), "{}", tdb.backend);
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
            Err(Denied::Forbidden(git_auth::CANNOT_UPLOAD))
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
        assert_eq!(Denied::NotFound.message(), git_auth::NOT_FOUND);
        // Public: anyone pulls, even anonymously; pushing needs a role.
        assert_eq!(check(conn, &w, None, "alice/public", PULL), Ok(()));
        assert_eq!(check(conn, &w, Some(&stranger), "alice/public", PULL), Ok(()));
        assert_eq!(
            check(conn, &w, Some(&stranger), "alice/public", PUSH),
            Err(Denied::Forbidden(git_auth::CANNOT_UPLOAD))
        );
        // Anonymous: asked for credentials for everything else.
        let challenge = Err(Denied::Challenge(git_auth::ACCESS_DENIED));
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
