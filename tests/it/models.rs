//! The data-model rules, run on every backend through the library.

use std::os::unix::fs::PermissionsExt;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use gitpat::auth::token::{PlainToken, SecretKey};
use gitpat::db::{self, user::User, DbConn};
use gitpat::error::Error;
use gitpat::git::store::RepoStore;
use gitpat::service::access::{self, Access};
use gitpat::service::tokens::{self, AuthOutcome, NewTokenRequest, Rejection};
use gitpat::service::{repos, users};
use gitpat::settings::Settings;

use crate::support::{backends, files_under};

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn key() -> SecretKey {
    SecretKey::from_bytes([42; 32])
}

fn user(conn: &mut DbConn, name: &str, admin: bool) -> User {
    let email = format!("{name}@example.com");
    let req = users::NewUserRequest {
        username: name,
        email: &email,
        name: None,
        password: None,
        is_admin: admin,
    };
    users::create(conn, &gitpat::service::audit::Actor::cli(), &req, Utc::now()).unwrap()
}

/// The command line's actor, for requests that outlive a statement.
static CLI: std::sync::LazyLock<gitpat::service::audit::Actor> =
    std::sync::LazyLock::new(gitpat::service::audit::Actor::cli);

fn token_req<'a>(u: &'a User, scopes: &'a [String]) -> NewTokenRequest<'a> {
    NewTokenRequest {
        user: u,
        name: "t",
        description: Some("for tests"),
        scopes,
        expires_at: None,
        token: None,
        impersonation: false,
        actor: &CLI,
    }
}

fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn auth(conn: &mut DbConn, s: &Settings, secret: &str, ip: Option<&str>, now: DateTime<Utc>) -> Result<i64, Rejection> {
    match tokens::authenticate(conn, &key(), s, secret, ip, now).unwrap() {
        AuthOutcome::Ok(b) => Ok(b.0.id),
        AuthOutcome::Rejected(r) => Err(r),
    }
}

fn token_count(conn: &mut DbConn) -> usize {
    db::token::list(conn, None).unwrap().len()
}

#[test]
fn expiry_is_at_midnight_utc_of_the_expiry_date() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let sc = scopes(&["read_repository"]);
        let mut req = token_req(&alice, &sc);
        req.expires_at = Some(date(2026, 12, 1));
        let mut s = Settings::default();
        let (row, plain) = tokens::create(conn, &key(), &s, &req, at(2026, 11, 20, 12, 0, 0)).unwrap();
        let t = plain.expose();
        assert_eq!(
            auth(conn, &s, t, None, at(2026, 11, 30, 23, 59, 59)),
            Ok(row.id),
            "{}",
            tdb.backend
        );
        assert_eq!(
            auth(conn, &s, t, None, at(2026, 12, 1, 0, 0, 0)),
            Err(Rejection::Expired),
            "{}",
            tdb.backend
        );
        assert_eq!(
            auth(conn, &s, t, None, at(2027, 1, 1, 0, 0, 0)),
            Err(Rejection::Expired)
        );
        let row = tokens::get(conn, row.id).unwrap();
        assert!(tokens::is_active(&row, date(2026, 11, 30), true));
        assert!(!tokens::is_active(&row, date(2026, 12, 1), true));
        // With enforcement off, an expired token still authenticates.
        s.enforce_personal_access_token_expiration = false;
        assert_eq!(
            auth(conn, &s, t, None, at(2026, 12, 1, 0, 0, 0)),
            Ok(row.id),
            "{}",
            tdb.backend
        );
        assert!(tokens::is_active(&row, date(2026, 12, 1), false));
    }
}

#[test]
fn expiry_dates_in_the_past_or_beyond_the_lifetime_are_refused() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let sc = scopes(&["api"]);
        let now = at(2026, 11, 22, 10, 0, 0);
        let mut s = Settings::default();
        let mut req = token_req(&alice, &sc);
        req.expires_at = Some(date(2026, 11, 21));
        assert!(matches!(tokens::create(conn, &key(), &s, &req, now), Err(Error::Invalid(m)) if m.contains("past")));
        s.max_personal_access_token_lifetime = Some(30);
        req.expires_at = Some(date(2026, 12, 23));
        let err = tokens::create(conn, &key(), &s, &req, now).err().unwrap().to_string();
        assert!(err.contains("at most 30 days"), "{err}");
        assert_eq!(token_count(conn), 0, "{}: a refused token was stored", tdb.backend);
        req.expires_at = Some(date(2026, 12, 22));
        assert_eq!(
            tokens::create(conn, &key(), &s, &req, now).unwrap().0.expires_at,
            Some(date(2026, 12, 22))
        );
        req.expires_at = None;
        assert_eq!(
            tokens::create(conn, &key(), &s, &req, now).unwrap().0.expires_at,
            Some(date(2026, 12, 22))
        );
        s.max_personal_access_token_lifetime = None;
        assert_eq!(tokens::create(conn, &key(), &s, &req, now).unwrap().0.expires_at, None);
    }
}

#[test]
fn scopes_are_validated_and_nothing_is_stored_on_error() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let root = user(conn, "root", true);
        let s = Settings::default();
        let now = Utc::now();
        for bad in [scopes(&["api", "write_everything"]), scopes(&[]), scopes(&["sudo"])] {
            let err = tokens::create(conn, &key(), &s, &token_req(&alice, &bad), now).err();
            assert!(
                matches!(err, Some(Error::Invalid(_))),
                "{}: {bad:?} accepted",
                tdb.backend
            );
        }
        assert_eq!(token_count(conn), 0);
        let sc = scopes(&["sudo", "api", "api"]);
        let (row, _) = tokens::create(conn, &key(), &s, &token_req(&root, &sc), now).unwrap();
        assert_eq!(row.scopes, "api sudo");
        let sc = scopes(&["read_registry", "write_registry", "read_user"]);
        let (row, _) = tokens::create(conn, &key(), &s, &token_req(&alice, &sc), now).unwrap();
        let view = tokens::TokenView::new(&row, &s, now.date_naive());
        assert_eq!(view.scopes, vec!["read_user", "read_registry", "write_registry"]);
    }
}

#[derive(QueryableByName)]
struct Dump {
    #[diesel(sql_type = diesel::sql_types::Text)]
    j: String,
}

#[test]
fn only_a_keyed_digest_of_the_token_is_stored() {
    for tdb in backends() {
        let mut conn = tdb.conn();
        let alice = user(&mut conn, "alice", false);
        let s = Settings::default();
        let sc = scopes(&["api"]);
        let (row, generated) = tokens::create(&mut conn, &key(), &s, &token_req(&alice, &sc), Utc::now()).unwrap();
        assert_eq!(row.token_digest, key().digest(&generated).as_str());
        let mut req = token_req(&alice, &sc);
        req.token = Some("token-string-here123");
        tokens::create(&mut conn, &key(), &s, &req, Utc::now()).unwrap();
        let secrets = [
            generated.expose().to_string(),
            generated.expose()[6..].to_string(),
            "token-string-here123".into(),
        ];
        match tdb.backend {
            "sqlite" => {
                drop(conn);
                let dir = std::path::Path::new(&tdb.url).parent().unwrap().to_path_buf();
                let files = files_under(&dir);
                assert!(!files.is_empty());
                for f in files {
                    let bytes = std::fs::read(&f).unwrap();
                    for secret in &secrets {
                        assert!(
                            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                            "{} holds a token in clear",
                            f.display()
                        );
                    }
                }
            }
            _ => {
                let rows: Vec<Dump> =
                    diesel::sql_query("SELECT CAST(row_to_json(t) AS TEXT) AS j FROM personal_access_tokens t")
                        .load(&mut conn)
                        .unwrap();
                assert_eq!(rows.len(), 2);
                for r in rows {
                    for secret in &secrets {
                        assert!(!r.j.contains(secret.as_str()), "a token is stored in clear: {}", r.j);
                    }
                }
            }
        }
    }
}

#[test]
fn predetermined_tokens_authenticate_and_must_be_unique() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let s = Settings::default();
        let sc = scopes(&["read_repository"]);
        let mut req = token_req(&alice, &sc);
        req.token = Some("token-string-here123");
        let (row, plain) = tokens::create(conn, &key(), &s, &req, Utc::now()).unwrap();
        assert_eq!(plain.expose(), "token-string-here123");
        assert_eq!(auth(conn, &s, "token-string-here123", None, Utc::now()), Ok(row.id));
        assert!(matches!(
            tokens::create(conn, &key(), &s, &req, Utc::now()),
            Err(Error::Conflict(_))
        ));
        req.token = Some("token-string-here12");
        assert!(
            matches!(tokens::create(conn, &key(), &s, &req, Utc::now()), Err(Error::Invalid(m)) if m.contains("at least 20"))
        );
        assert_eq!(token_count(conn), 1, "{}", tdb.backend);
        // Revoking by the string.
        let found = tokens::find_by_secret(conn, &key(), &PlainToken::new("token-string-here123")).unwrap();
        tokens::revoke(
            conn,
            &gitpat::service::audit::Actor::cli(),
            found.id,
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(
            auth(conn, &s, "token-string-here123", None, Utc::now()),
            Err(Rejection::Revoked)
        );
        assert!(matches!(
            tokens::revoke(
                conn,
                &gitpat::service::audit::Actor::cli(),
                found.id,
                chrono::Utc::now()
            ),
            Err(Error::Conflict(_))
        ));
    }
}

#[test]
fn rotation_replaces_the_token_and_reuse_revokes_the_family() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let s = Settings::default();
        let sc = scopes(&["read_repository", "write_repository"]);
        let mut req = token_req(&alice, &sc);
        req.impersonation = true;
        let now = at(2026, 11, 22, 8, 0, 0);
        let (t1, p1) = tokens::create(conn, &key(), &s, &req, now).unwrap();
        let (t2, p2) = tokens::rotate(
            conn,
            &key(),
            &s,
            &gitpat::service::audit::Actor::cli(),
            t1.id,
            None,
            now,
        )
        .unwrap();
        assert_ne!(p1.expose(), p2.expose());
        assert_eq!((t2.name.as_str(), t2.description.as_deref()), ("t", Some("for tests")));
        assert_eq!(t2.scopes, t1.scopes);
        assert!(t2.impersonation);
        assert_eq!(t2.previous_token_id, Some(t1.id));
        assert_eq!(
            t2.expires_at,
            Some(date(2026, 11, 29)),
            "{}: default rotation expiry",
            tdb.backend
        );
        assert!(tokens::get(conn, t1.id).unwrap().revoked);
        let err = tokens::rotate(
            conn,
            &key(),
            &s,
            &gitpat::service::audit::Actor::cli(),
            t1.id,
            None,
            now,
        )
        .err()
        .unwrap();
        assert!(
            matches!(&err, Error::Invalid(m) if m == "Token already revoked"),
            "{err}"
        );
        let (t3, p3) = tokens::rotate(
            conn,
            &key(),
            &s,
            &gitpat::service::audit::Actor::cli(),
            t2.id,
            Some(date(2027, 1, 1)),
            now,
        )
        .unwrap();
        assert_eq!(t3.expires_at, Some(date(2027, 1, 1)));
        assert_eq!(auth(conn, &s, p3.expose(), None, now), Ok(t3.id));
        // An unrelated token of the same user is not part of the family.
        let (other, po) = tokens::create(conn, &key(), &s, &token_req(&alice, &sc), now).unwrap();
        // The stolen, rotated-away first token is used: the live one burns.
        assert_eq!(
            auth(conn, &s, p1.expose(), None, now),
            Err(Rejection::ReusedAfterRotation)
        );
        for id in [t1.id, t2.id, t3.id] {
            assert!(
                tokens::get(conn, id).unwrap().revoked,
                "{}: token {id} survived",
                tdb.backend
            );
        }
        assert_eq!(auth(conn, &s, p3.expose(), None, now), Err(Rejection::Revoked));
        assert_eq!(auth(conn, &s, po.expose(), None, now), Ok(other.id));
        // A plainly revoked token (no successor) is only rejected.
        tokens::revoke(
            conn,
            &gitpat::service::audit::Actor::cli(),
            other.id,
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(auth(conn, &s, po.expose(), None, now), Err(Rejection::Revoked));
    }
}

#[test]
fn rotation_from_the_middle_of_a_family_revokes_all_of_it() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let s = Settings::default();
        let sc = scopes(&["api"]);
        let now = Utc::now();
        let (t1, _) = tokens::create(conn, &key(), &s, &token_req(&alice, &sc), now).unwrap();
        let (t2, p2) = tokens::rotate(
            conn,
            &key(),
            &s,
            &gitpat::service::audit::Actor::cli(),
            t1.id,
            None,
            now,
        )
        .unwrap();
        let (t3, p3) = tokens::rotate(
            conn,
            &key(),
            &s,
            &gitpat::service::audit::Actor::cli(),
            t2.id,
            None,
            now,
        )
        .unwrap();
        assert_eq!(
            auth(conn, &s, p2.expose(), None, now),
            Err(Rejection::ReusedAfterRotation)
        );
        assert_eq!(
            auth(conn, &s, p3.expose(), None, now),
            Err(Rejection::Revoked),
            "{}",
            tdb.backend
        );
        assert!(tokens::get(conn, t3.id).unwrap().revoked);
    }
}

#[test]
fn blocked_users_and_unknown_tokens_do_not_authenticate() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let s = Settings::default();
        let sc = scopes(&["api"]);
        let (row, p) = tokens::create(conn, &key(), &s, &token_req(&alice, &sc), Utc::now()).unwrap();
        assert_eq!(
            auth(conn, &s, "glpat-nonexistentnonexist", None, Utc::now()),
            Err(Rejection::Unknown)
        );
        assert_eq!(auth(conn, &s, "", None, Utc::now()), Err(Rejection::Unknown));
        assert_eq!(
            auth(conn, &s, &"x".repeat(10_000), None, Utc::now()),
            Err(Rejection::Unknown)
        );
        users::set_blocked(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "alice",
            true,
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(
            auth(conn, &s, p.expose(), None, Utc::now()),
            Err(Rejection::UserBlocked)
        );
        users::set_blocked(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "alice",
            false,
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(
            auth(conn, &s, p.expose(), None, Utc::now()),
            Ok(row.id),
            "{}",
            tdb.backend
        );
        // A token made under another key does not authenticate.
        let other = tokens::authenticate(conn, &SecretKey::from_bytes([1; 32]), &s, p.expose(), None, Utc::now());
        assert!(matches!(other.unwrap(), AuthOutcome::Rejected(Rejection::Unknown)));
    }
}

#[test]
fn last_used_is_throttled_and_the_last_five_ips_are_kept() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let s = Settings::default(); // 10 minutes
        let sc = scopes(&["api"]);
        let t0 = at(2026, 11, 22, 9, 0, 0);
        let (row, p) = tokens::create(conn, &key(), &s, &token_req(&alice, &sc), t0).unwrap();
        let p = p.expose();
        let get = |conn: &mut DbConn| {
            let r = tokens::get(conn, row.id).unwrap();
            let ips: Vec<String> = serde_json::from_str(&r.last_used_ips).unwrap();
            (r.last_used_at.map(|t| t.and_utc()), ips)
        };
        assert_eq!(get(conn), (None, vec![]));
        auth(conn, &s, p, Some("10.0.0.1"), t0).unwrap();
        assert_eq!(get(conn), (Some(t0), vec!["10.0.0.1".to_string()]), "{}", tdb.backend);
        // Within the window: no new timestamp.
        auth(conn, &s, p, Some("10.0.0.1"), t0 + Duration::minutes(9)).unwrap();
        assert_eq!(get(conn).0, Some(t0));
        // After the window: written.
        let t1 = t0 + Duration::minutes(10);
        auth(conn, &s, p, Some("10.0.0.1"), t1).unwrap();
        assert_eq!(get(conn).0, Some(t1));
        // A new IP is added even while the timestamp is throttled...
        auth(conn, &s, p, Some("10.0.0.2"), t1 + Duration::seconds(70)).unwrap();
        assert_eq!(get(conn), (Some(t1), vec!["10.0.0.1".into(), "10.0.0.2".into()]));
        // ...but at most once a minute.
        auth(conn, &s, p, Some("10.0.0.3"), t1 + Duration::seconds(90)).unwrap();
        assert_eq!(
            get(conn).1.len(),
            2,
            "{}: IP recorded twice within a minute",
            tdb.backend
        );
        let mut t = t1 + Duration::seconds(90);
        for i in 3..=7 {
            t += Duration::minutes(2);
            auth(conn, &s, p, Some(&format!("10.0.0.{i}")), t).unwrap();
        }
        let ips = get(conn).1;
        assert_eq!(
            ips,
            vec!["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"],
            "{}",
            tdb.backend
        );
        // A known IP adds nothing.
        auth(conn, &s, p, Some("10.0.0.5"), t + Duration::minutes(2)).unwrap();
        assert_eq!(get(conn).1.len(), 5);
    }
}

#[test]
fn usernames_and_emails_are_unique_case_insensitively() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        user(conn, "Alice", false);
        fn dup<'a>(u: &'a str, e: &'a str) -> users::NewUserRequest<'a> {
            users::NewUserRequest {
                username: u,
                email: e,
                name: None,
                password: None,
                is_admin: false,
            }
        }
        assert!(matches!(
            users::create(
                conn,
                &gitpat::service::audit::Actor::cli(),
                &dup("alice", "other@example.com"),
                Utc::now()
            ),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            users::create(
                conn,
                &gitpat::service::audit::Actor::cli(),
                &dup("bob", "ALICE@example.com"),
                Utc::now()
            ),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            users::create(
                conn,
                &gitpat::service::audit::Actor::cli(),
                &dup("bad name", "b@example.com"),
                Utc::now()
            ),
            Err(Error::Invalid(_))
        ));
        let pw = users::NewUserRequest {
            password: Some("short"),
            ..dup("carol", "c@example.com")
        };
        assert!(matches!(
            users::create(conn, &gitpat::service::audit::Actor::cli(), &pw, Utc::now()),
            Err(Error::Invalid(_))
        ));
        assert_eq!(db::user::list(conn).unwrap().len(), 1, "{}", tdb.backend);
        assert_eq!(users::get(conn, "ALICE").unwrap().username, "Alice");
        let pw = users::NewUserRequest {
            password: Some("long enough"),
            ..dup("carol", "c@example.com")
        };
        let carol = users::create(conn, &gitpat::service::audit::Actor::cli(), &pw, Utc::now()).unwrap();
        let hash = carol.password_hash.unwrap();
        assert!(gitpat::auth::password::verify("long enough", &hash));
        assert!(!hash.contains("long enough"));
    }
}

#[test]
fn initial_root_is_created_once() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let dir = tempfile::tempdir().unwrap();
        // A file left by an earlier database is replaced, not trusted.
        std::fs::write(dir.path().join(users::INITIAL_PASSWORD_FILE), "stale-password\n").unwrap();
        let path = users::ensure_initial_root(conn, dir.path(), Utc::now())
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let password = std::fs::read_to_string(&path).unwrap();
        let root = users::get(conn, "root").unwrap();
        assert!(root.is_admin);
        assert!(gitpat::auth::password::verify(
            password.trim(),
            root.password_hash.as_deref().unwrap()
        ));
        assert!(users::ensure_initial_root(conn, dir.path(), Utc::now())
            .unwrap()
            .is_none());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), password, "{}", tdb.backend);
    }
}

struct Repos {
    _dir: tempfile::TempDir,
    store: RepoStore,
}

fn repos_store() -> Repos {
    let dir = tempfile::tempdir().unwrap();
    let store = RepoStore::new(dir.path().join("repositories"));
    std::fs::create_dir_all(store.root()).unwrap();
    Repos { _dir: dir, store }
}

fn new_repo<'a>(path: &'a str) -> repos::NewRepoRequest<'a> {
    repos::NewRepoRequest {
        path,
        name: None,
        owner: None,
        visibility: None,
        default_branch: None,
        description: None,
        import: None,
    }
}

#[test]
fn bad_repository_paths_create_nothing_anywhere() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        user(conn, "alice", false);
        let r = repos_store();
        let parent = r.store.root().parent().unwrap().to_path_buf();
        let before = files_under(&parent);
        for bad in [
            "../evil",
            "alice/../../evil",
            "/tmp/evil",
            "alice/.git",
            "alice/x.git/y",
            "alice",
            "alice/x y",
            "alice//x",
        ] {
            let err = repos::create(conn, &r.store, &new_repo(bad), Utc::now()).err();
            assert!(
                matches!(err, Some(Error::Invalid(_))),
                "{}: {bad:?} accepted",
                tdb.backend
            );
        }
        assert_eq!(files_under(&parent), before);
        assert!(db::project::list(conn).unwrap().is_empty());
        let dirs: Vec<_> = std::fs::read_dir(r.store.root()).unwrap().collect();
        assert!(dirs.is_empty(), "{}: folders were left: {dirs:?}", tdb.backend);
    }
}

#[test]
fn a_repository_is_a_row_and_a_bare_repository_or_neither() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let alice = user(conn, "alice", false);
        let r = repos_store();
        let p = repos::create(conn, &r.store, &new_repo("alice/tools"), Utc::now()).unwrap();
        assert_eq!(
            (p.owner_id, p.visibility.as_str(), p.default_branch.as_str()),
            (alice.id, "private", "main")
        );
        let git = git2::Repository::open_bare(r.store.root().join("alice/tools.git")).unwrap();
        assert_eq!(
            git.find_reference("HEAD").unwrap().symbolic_target(),
            Some("refs/heads/main")
        );
        // Taken, even in another case: refused before anything is built.
        assert!(matches!(
            repos::create(conn, &r.store, &new_repo("ALICE/Tools"), Utc::now()),
            Err(Error::Conflict(_))
        ));
        // The folder cannot be made (a file stands where the namespace
        // folder must go): the row is rolled back and nothing is left.
        std::fs::write(r.store.root().join("blocker"), b"").unwrap();
        let mut req = new_repo("blocker/x");
        req.owner = Some("alice");
        assert!(repos::create(conn, &r.store, &req, Utc::now()).is_err());
        assert!(
            db::project::find_by_path(conn, "blocker/x").unwrap().is_none(),
            "{}: row left",
            tdb.backend
        );
        assert_eq!(
            std::fs::read_dir(r.store.root().join(".tmp")).unwrap().count(),
            0,
            "staging left behind"
        );
        // A folder gitpat does not know is not overwritten.
        std::fs::create_dir_all(r.store.root().join("alice/orphan.git")).unwrap();
        assert!(matches!(
            repos::create(conn, &r.store, &new_repo("alice/orphan"), Utc::now()),
            Err(Error::Conflict(_))
        ));
        assert_eq!(db::project::list(conn).unwrap().len(), 1, "{}", tdb.backend);
        // Delete: row, members and folder go.
        user(conn, "bob", false);
        repos::add_member(conn, "alice/tools", "bob", "developer", Utc::now()).unwrap();
        repos::delete(conn, &r.store, "alice/tools").unwrap();
        assert!(!r.store.root().join("alice/tools.git").exists());
        assert!(db::project::list(conn).unwrap().is_empty());
        assert!(db::member::list(conn, p.id).unwrap().is_empty());
        assert!(matches!(
            repos::delete(conn, &r.store, "alice/tools"),
            Err(Error::NotFound(_))
        ));
    }
}

#[test]
fn roles_and_visibility_decide_access() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        let owner = user(conn, "alice", false);
        let admin = user(conn, "root", true);
        let r = repos_store();
        let p = repos::create(conn, &r.store, &new_repo("alice/tools"), Utc::now()).unwrap();
        let mut members = vec![];
        for role in ["guest", "reporter", "developer", "maintainer", "owner"] {
            let u = user(conn, role, false);
            repos::add_member(conn, "alice/tools", role, role, Utc::now()).unwrap();
            members.push(u);
        }
        let stranger = user(conn, "stranger", false);
        let a = |conn: &mut DbConn, u: Option<&User>, p: &db::project::Project| {
            access::access(conn, u, p, chrono::Utc::now().date_naive()).unwrap()
        };
        let acc = |see, pull, push, push_protected| Access {
            see,
            pull,
            push,
            push_protected,
        };
        assert_eq!(a(conn, None, &p), Access::NONE);
        assert_eq!(a(conn, Some(&stranger), &p), Access::NONE);
        assert_eq!(a(conn, Some(&members[0]), &p), acc(true, false, false, false), "guest");
        assert_eq!(
            a(conn, Some(&members[1]), &p),
            acc(true, true, false, false),
            "reporter"
        );
        assert_eq!(
            a(conn, Some(&members[2]), &p),
            acc(true, true, true, false),
            "developer"
        );
        assert_eq!(
            a(conn, Some(&members[3]), &p),
            acc(true, true, true, true),
            "maintainer"
        );
        assert_eq!(
            a(conn, Some(&members[4]), &p),
            acc(true, true, true, true),
            "owner member"
        );
        assert_eq!(a(conn, Some(&owner), &p), acc(true, true, true, true), "owner");
        assert_eq!(a(conn, Some(&admin), &p), acc(true, true, true, true), "admin");
        // Blocked: nothing, whatever the role.
        users::set_blocked(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "developer",
            true,
            chrono::Utc::now(),
        )
        .unwrap();
        let blocked = users::get(conn, "developer").unwrap();
        assert_eq!(a(conn, Some(&blocked), &p), Access::NONE);
        // Internal: any signed-in user pulls; public: anyone pulls.
        let mut req = new_repo("alice/internal");
        req.visibility = Some("internal");
        let mut internal = repos::create(conn, &r.store, &req, Utc::now()).unwrap();
        assert_eq!(a(conn, Some(&stranger), &internal), acc(true, true, false, false));
        assert_eq!(a(conn, None, &internal), Access::NONE);
        internal.visibility = "public".into();
        assert_eq!(
            a(conn, None, &internal),
            acc(true, true, false, false),
            "{}",
            tdb.backend
        );
        assert_eq!(a(conn, Some(&members[0]), &internal), acc(true, true, false, false));
        // Members can be removed, and unknown roles are refused.
        repos::remove_member(conn, "alice/tools", "reporter").unwrap();
        assert_eq!(a(conn, Some(&members[1]), &p), Access::NONE);
        assert!(matches!(
            repos::remove_member(conn, "alice/tools", "reporter"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            repos::add_member(conn, "alice/tools", "stranger", "boss", Utc::now()),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            repos::add_member(conn, "alice/tools", "guest", "guest", Utc::now()),
            Err(Error::Conflict(_))
        ));
    }
}

#[test]
fn settings_persist_and_bad_values_change_nothing() {
    for tdb in backends() {
        let conn = &mut tdb.conn();
        assert_eq!(Settings::load(conn).unwrap(), Settings::default());
        Settings::store(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "max_personal_access_token_lifetime",
            "30",
            chrono::Utc::now(),
        )
        .unwrap();
        Settings::store(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "password_authentication_enabled_for_git",
            "false",
            chrono::Utc::now(),
        )
        .unwrap();
        assert!(Settings::store(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "max_personal_access_token_lifetime",
            "forever",
            chrono::Utc::now()
        )
        .is_err());
        assert!(Settings::store(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "nope",
            "1",
            chrono::Utc::now()
        )
        .is_err());
        let s = Settings::load(conn).unwrap();
        assert_eq!(s.max_personal_access_token_lifetime, Some(30), "{}", tdb.backend);
        assert!(!s.password_authentication_enabled_for_git);
        Settings::store(
            conn,
            &gitpat::service::audit::Actor::cli(),
            "max_personal_access_token_lifetime",
            "none",
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(Settings::load(conn).unwrap().max_personal_access_token_lifetime, None);
    }
}

#[test]
fn migrations_apply_once_and_again_harmlessly() {
    for tdb in backends() {
        let mut conn = tdb.conn();
        db::migrate(&mut conn).unwrap();
        assert_eq!(db::user::count(&mut conn).unwrap(), 0, "{}", tdb.backend);
    }
}
