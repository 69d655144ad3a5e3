//! Users: creation with GitLab's username rules, blocking, two-factor, and
//! the initial administrator.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::auth::{password, totp};
use crate::db::page::Listing;
use crate::db::{self, user::NewUser, user::User, user::UserQuery, DbConn};
use crate::error::{Error, Result};
use crate::service::audit::{self, Actor, Event};

/// The user entity as the API and `user list --json` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub state: String,
    pub is_admin: bool,
    pub two_factor_enabled: bool,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            state: u.state.clone(),
            is_admin: u.is_admin,
            two_factor_enabled: u.two_factor_enabled,
            created_at: crate::service::tokens::iso(u.created_at),
        }
    }
}

pub struct NewUserRequest<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub password: Option<&'a str>,
    pub is_admin: bool,
}

/// GitLab's rule: letters, digits, `_`, `.`, `-`; not starting with `-` or
/// `.`; not ending with `.`, `.git` or `.atom`.
pub fn validate_username(u: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Invalid(format!("invalid username {u:?}: {why}")));
    if u.is_empty() || u.len() > 255 {
        return bad("it must have 1 to 255 characters");
    }
    if !u
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return bad("use only letters, digits, '_', '.' and '-'");
    }
    if u.starts_with('-') || u.starts_with('.') {
        return bad("it cannot start with '-' or '.'");
    }
    let lower = u.to_ascii_lowercase();
    if u.ends_with('.') || lower.ends_with(".git") || lower.ends_with(".atom") || u.contains("..") {
        return bad("it cannot end with '.', '.git' or '.atom', nor hold '..'");
    }
    Ok(())
}

pub fn validate_email(e: &str) -> Result<()> {
    let ok = e.len() <= 255
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@') && !d.starts_with('.') && !d.ends_with('.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid email address {e:?}")))
    }
}

fn validate_display_name(n: &str) -> Result<()> {
    if n.trim().is_empty() || n.chars().count() > 255 || n.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "the name must have 1 to 255 characters and no control characters".into(),
        ));
    }
    Ok(())
}

/// A password checked against GitLab's length rules and hashed
/// (argon2id: slow; call it with no connection held).
pub fn hashed_password(p: &str) -> Result<String> {
    hash_password(p)
}

/// Checks GitLab's length rules, then hashes (argon2id).
fn hash_password(p: &str) -> Result<String> {
    password::validate(p).map_err(Error::Invalid)?;
    Ok(password::hash(p)?)
}

pub fn create(conn: &mut DbConn, actor: &Actor, req: &NewUserRequest, now: DateTime<Utc>) -> Result<User> {
    validate_new(req)?;
    let hash = req.password.map(hash_password).transpose()?;
    create_hashed(conn, actor, req, hash, now)
}

/// The checks of a new user that need no database.
pub fn validate_new(req: &NewUserRequest) -> Result<()> {
    validate_username(req.username)?;
    validate_email(req.email)?;
    validate_display_name(req.name.unwrap_or(req.username))
}

/// [`create`] for a caller that checked and hashed the password already
/// ([`hashed_password`], with no connection held): `req.password` is
/// not read.
pub fn create_hashed(
    conn: &mut DbConn,
    actor: &Actor,
    req: &NewUserRequest,
    hash: Option<String>,
    now: DateTime<Utc>,
) -> Result<User> {
    validate_new(req)?;
    let name = req.name.unwrap_or(req.username);
    crate::db::write_transaction(conn, |conn| {
        if db::user::find_by_username(conn, req.username)?.is_some() {
            return Err(Error::Conflict(format!(
                "the username {} is already taken",
                req.username
            )));
        }
        if db::user::find_by_email(conn, req.email)?.is_some() {
            return Err(Error::Conflict(format!("the email {} is already taken", req.email)));
        }
        let new = NewUser {
            username: req.username,
            email: req.email,
            name,
            password_hash: hash.as_deref(),
            is_admin: req.is_admin,
            state: db::user::STATE_ACTIVE,
            two_factor_enabled: false,
            created_at: now.naive_utc(),
        };
        let user = db::user::insert(conn, &new).map_err(|e| {
            if db::is_unique_violation(&e) {
                Error::Conflict(format!(
                    "the username {} or email {} is already taken",
                    req.username, req.email
                ))
            } else {
                Error::from(e)
            }
        })?;
        let event = Event::on_user("user_created", &user, format!("Created user {}", user.username))
            .with("email", user.email.clone())
            .with("name", user.name.clone())
            .with("is_admin", user.is_admin)
            .with("password_set", user.password_hash.is_some());
        audit::record(conn, actor, event, now)?;
        Ok(user)
    })
}

/// What an admin may change of a user; `None` keeps it.
#[derive(Default)]
pub struct UserUpdate<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub password: Option<&'a str>,
    pub is_admin: Option<bool>,
}

/// Validates every given field, then updates them in one statement. A
/// username or email held by another user is a conflict.
pub fn update(conn: &mut DbConn, actor: &Actor, id: i64, req: &UserUpdate, now: DateTime<Utc>) -> Result<User> {
    if let Some(u) = req.username {
        validate_username(u)?;
    }
    if let Some(e) = req.email {
        validate_email(e)?;
    }
    if let Some(n) = req.name {
        validate_display_name(n)?;
    }
    let hash = req.password.map(hash_password).transpose()?;
    update_hashed(conn, actor, id, req, hash, now)
}

/// [`update`] for a caller that hashed the new password already
/// ([`hashed_password`]): `req.password` is not read.
pub fn update_hashed(
    conn: &mut DbConn,
    actor: &Actor,
    id: i64,
    req: &UserUpdate,
    hash: Option<String>,
    now: DateTime<Utc>,
) -> Result<User> {
    if let Some(u) = req.username {
        validate_username(u)?;
    }
    if let Some(e) = req.email {
        validate_email(e)?;
    }
    if let Some(n) = req.name {
        validate_display_name(n)?;
    }
    crate::db::write_transaction(conn, |conn| {
        let user = db::user::find(conn, id)?.ok_or_else(|| Error::NotFound(format!("no user with id {id}")))?;
        if let Some(u) = req.username {
            if db::user::find_by_username(conn, u)?.is_some_and(|other| other.id != user.id) {
                return Err(Error::Conflict(format!("the username {u} is already taken")));
            }
            // Repositories live under the username: a rename would orphan them.
            let prefix = format!("{}/", user.username.to_lowercase());
            if !u.eq_ignore_ascii_case(&user.username) && db::project::exists_under(conn, &prefix)? {
                return Err(Error::Invalid(format!(
                    "{} has repositories under their namespace; renaming a user with repositories is not supported",
                    user.username
                )));
            }
        }
        if let Some(e) = req.email {
            if db::user::find_by_email(conn, e)?.is_some_and(|other| other.id != user.id) {
                return Err(Error::Conflict(format!("the email {e} is already taken")));
            }
        }
        let changes = db::user::UserChanges {
            username: req.username,
            email: req.email,
            name: req.name,
            is_admin: req.is_admin,
            password_hash: hash.as_deref(),
        };
        db::user::update(conn, user.id, &changes).map_err(|e| {
            if db::is_unique_violation(&e) {
                Error::Conflict("the username or email is already taken".into())
            } else {
                e.into()
            }
        })?;
        // A new password ends every browser session (GitLab's rule).
        if hash.is_some() {
            db::session::delete_all(conn, user.id)?;
        }
        let after = db::user::find(conn, user.id)?.ok_or_else(|| Error::NotFound(format!("no user with id {id}")))?;
        record_update(conn, actor, &user, &after, hash.is_some(), now)?;
        Ok(after)
    })
}

/// The audit events of an update from `before` to `after`: the admin
/// flag, the password (that it changed, never what to), the other fields
/// (old and new).
fn record_update(
    conn: &mut DbConn,
    actor: &Actor,
    before: &User,
    after: &User,
    password: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    if before.is_admin != after.is_admin {
        let what = if after.is_admin { "Granted" } else { "Revoked" };
        let event = Event::on_user(
            "user_admin_status_changed",
            after,
            format!("{what} administrator rights of {}", after.username),
        )
        .with("from", before.is_admin)
        .with("to", after.is_admin);
        audit::record(conn, actor, event, now)?;
    }
    if password {
        let event = Event::on_user(
            "user_password_changed",
            after,
            format!("Changed the password of {}", after.username),
        );
        audit::record(conn, actor, event, now)?;
    }
    let mut changes = serde_json::Map::new();
    for (field, old, new) in [
        ("username", &before.username, &after.username),
        ("email", &before.email, &after.email),
        ("name", &before.name, &after.name),
    ] {
        if old != new {
            changes.insert(field.into(), serde_json::json!({"from": old, "to": new}));
        }
    }
    if !changes.is_empty() {
        let fields: Vec<&str> = changes.keys().map(String::as_str).collect();
        let message = format!("Changed the {} of {}", fields.join(", "), after.username);
        let event = Event::on_user("user_updated", after, message).with("changes", serde_json::Value::Object(changes));
        audit::record(conn, actor, event, now)?;
    }
    Ok(())
}

/// The users `search` (any part of the username or name, and for an
/// administrator of the e-mail too) finds, as GitLab's UsersFinder: only
/// administrators search e-mails (others would learn hidden ones a letter
/// at a time) and see blocked users. In id order; the API adds its
/// filters and order to it.
pub fn query(search: Option<&str>, by_admin: bool) -> UserQuery {
    UserQuery {
        blocked: (!by_admin).then_some(false),
        search: search.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()),
        search_email: by_admin,
        ..UserQuery::default()
    }
}

/// Every user [`query`] finds, in id order.
pub fn search(conn: &mut DbConn, search: Option<&str>, by_admin: bool) -> Result<Vec<User>> {
    Ok(query(search, by_admin).all(conn)?)
}

pub fn get(conn: &mut DbConn, username: &str) -> Result<User> {
    db::user::find_by_username(conn, username)?.ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))
}

/// Blocks or unblocks `username`; a change of state is recorded (blocking
/// a blocked user changes, and records, nothing).
pub fn set_blocked(
    conn: &mut DbConn,
    actor: &Actor,
    username: &str,
    blocked: bool,
    now: DateTime<Utc>,
) -> Result<User> {
    let state = if blocked {
        db::user::STATE_BLOCKED
    } else {
        db::user::STATE_ACTIVE
    };
    crate::db::write_transaction(conn, |conn| {
        let user = get(conn, username)?;
        if user.is_blocked() == blocked {
            return Ok(user);
        }
        db::user::set_state(conn, user.id, state)?;
        // A blocked user is signed out everywhere.
        if blocked {
            db::session::delete_all(conn, user.id)?;
        }
        let (name, what) = if blocked {
            ("user_blocked", "Blocked")
        } else {
            ("user_unblocked", "Unblocked")
        };
        let event = Event::on_user(name, &user, format!("{what} user {}", user.username));
        audit::record(conn, actor, event, now)?;
        get(conn, username)
    })
}

/// Enables two-factor authentication with a new secret; returns the
/// `otpauth://` URI to give an authenticator app.
pub fn enable_two_factor(
    conn: &mut DbConn,
    key: &crate::auth::token::SecretKey,
    actor: &Actor,
    username: &str,
    now: DateTime<Utc>,
) -> Result<String> {
    let user = get(conn, username)?;
    if user.two_factor_enabled {
        return Err(Error::Conflict(format!(
            "two-factor authentication is already enabled for {}; disable it first to make a new secret",
            user.username
        )));
    }
    let secret = totp::generate_secret();
    let uri = totp::provisioning_uri(&secret, &user.username)?;
    crate::db::write_transaction(conn, |conn| {
        // Compare-and-set: only while it is off.
        let sealed = crate::service::two_factor::sealed(key, user.id, &secret)?;
        if db::user::enable_two_factor(conn, user.id, &sealed)? != 1 {
            return Err(Error::Conflict(format!(
                "two-factor authentication is already enabled for {}",
                user.username
            )));
        }
        crate::service::two_factor::record_enabled(conn, actor, &user, now)
    })?;
    Ok(uri)
}

/// Turns two-factor authentication off (the secret and the recovery codes
/// are forgotten).
pub fn disable_two_factor(conn: &mut DbConn, actor: &Actor, username: &str, now: DateTime<Utc>) -> Result<()> {
    let user = get(conn, username)?;
    crate::service::two_factor::disable(conn, actor, &user, now)
}

pub const ROOT_USERNAME: &str = "root";
pub const INITIAL_PASSWORD_FILE: &str = "initial_root_password";

/// On an instance with no users, creates the administrator `root` with a
/// random password written once to `<data-dir>/initial_root_password`
/// (mode 0600). Returns the file's path when it did.
pub fn ensure_initial_root(
    conn: &mut DbConn,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Option<std::path::PathBuf>> {
    if db::user::count(conn)? > 0 {
        return Ok(None);
    }
    let password = crate::fsutil::random_hex(16).map_err(anyhow::Error::from)?;
    let req = NewUserRequest {
        username: ROOT_USERNAME,
        email: "admin@example.com",
        name: Some("Administrator"),
        password: Some(&password),
        is_admin: true,
    };
    match create(conn, &Actor::system(None), &req, now) {
        Ok(_) => {}
        // Another instance on the same database made it first.
        Err(Error::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    }
    // A file left from an earlier database would name a password that no
    // longer works: replace it.
    let path = data_dir.join(INITIAL_PASSWORD_FILE);
    crate::fsutil::replace_private(&path, format!("{password}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["alice", "a.b", "a_b-c", "A1", "x"] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a.", "a b", "a/b", "a.git", "a.atom", "a..b", "é"] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(validate_email("a@b.c").is_ok());
        for bad in ["", "a", "@b", "a@", "a b@c", "a@b@c", "a@.b"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
