//! Signing in to the web pages (issue 14): a username or e-mail and a
//! password, then for a 2FA user a TOTP code (±1 step, each step's code
//! accepted once) or a recovery code (each once). The same throttles as Git's: the client's ban and the
//! account lock (`service::bans`), and the same answer for an unknown
//! user as for a wrong password (argon2 runs either way). A blocked user
//! is told so only once the password was right.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::auth::password;
use crate::auth::token::SecretKey;
use crate::db::{self, user::User};
use crate::error::Result;
use crate::metrics::AuthResult;
use crate::service::audit::{self, Actor, Event, Via};
use crate::service::{bans, two_factor, Conns};
use crate::settings::Settings;

pub const INVALID_LOGIN: &str = "Invalid login or password.";
pub const INVALID_CODE: &str = "Invalid two-factor code.";
pub const BLOCKED: &str =
    "Your account has been blocked. Please contact your GitLab administrator if you think this is an error.";

/// What a password sign-in comes to.
#[derive(Debug)]
pub enum Outcome {
    /// Signed in (no second factor).
    SignedIn(User),
    /// The password was right; the second factor is next.
    TwoFactor(User),
    /// Refused, with the sentence to show.
    Refused(String),
}

/// The first step: `login` (username or e-mail) and `password` from
/// `ip`. No connection is held while argon2 runs.
pub fn with_password(
    mut db: Conns<'_>,
    settings: &Settings,
    login: &str,
    pass: &str,
    ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let login = login.trim();
    let mut conn = db.get()?;
    if let Some(ip) = ip {
        if let Some(until) = bans::client_banned(&mut conn, settings, ip, now)? {
            crate::metrics::get().auth(AuthResult::Banned);
            return Ok(Outcome::Refused(bans::banned_message(until)));
        }
    }
    let user = if login.contains('@') {
        db::user::find_by_email(&mut conn, login)?
    } else {
        db::user::find_by_username(&mut conn, login)?
    };
    // The account's count is kept under its username, or for a login that
    // names no one under the login itself: the answers are the same.
    let account = user.as_ref().map_or(login.to_string(), |u| u.username.clone());
    if let Some(until) = bans::account_locked(&mut conn, &account, now)? {
        crate::metrics::get().auth(AuthResult::AccountLocked);
        return Ok(Outcome::Refused(bans::locked_sentence(until)));
    }
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    drop(conn);
    let right = match &hash {
        Some(h) => password::verify(pass, h),
        None => {
            password::verify_dummy(pass);
            false
        }
    };
    let mut conn = db.get()?;
    crate::metrics::get().auth(if right && user.is_some() {
        AuthResult::PasswordOk
    } else {
        AuthResult::PasswordWrong
    });
    let (Some(user), true) = (&user, right) else {
        failed(
            &mut conn,
            user.as_ref(),
            login,
            "standard",
            "wrong login or password",
            ip,
            now,
        )?;
        if let Some(ip) = ip {
            bans::client_failed(&mut conn, settings, ip, now)?;
        }
        bans::password_failed(&mut conn, settings, &account, now)?;
        return Ok(Outcome::Refused(INVALID_LOGIN.into()));
    };
    let user = user.clone();
    if user.is_blocked() {
        failed(
            &mut conn,
            Some(&user),
            login,
            "standard",
            "the user is blocked",
            ip,
            now,
        )?;
        return Ok(Outcome::Refused(BLOCKED.into()));
    }
    // A 2FA user's count starts again only once the code is right too:
    // else a known password would buy a fresh run of code guesses.
    if user.two_factor_enabled {
        return Ok(Outcome::TwoFactor(user));
    }
    bans::password_succeeded(&mut conn, &user.username, now)?;
    Ok(Outcome::SignedIn(user))
}

/// The current password asked again by a settings page (2FA, password)
/// of a signed-in `user`: under the same ban and lock as sign-in, counted
/// when wrong, with no connection held while argon2 runs.
pub fn reauthenticate(
    mut db: Conns<'_>,
    settings: &Settings,
    user: &User,
    pass: &str,
    ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<std::result::Result<(), String>> {
    let mut conn = db.get()?;
    if let Some(ip) = ip {
        if let Some(until) = bans::client_banned(&mut conn, settings, ip, now)? {
            return Ok(Err(bans::banned_message(until)));
        }
    }
    if let Some(until) = bans::account_locked(&mut conn, &user.username, now)? {
        return Ok(Err(bans::locked_sentence(until)));
    }
    drop(conn);
    if two_factor::password_matches(user, pass) {
        return Ok(Ok(()));
    }
    let mut conn = db.get()?;
    let why = "wrong password asked again by a settings page";
    failed(&mut conn, Some(user), &user.username, "standard", why, ip, now)?;
    if let Some(ip) = ip {
        bans::client_failed(&mut conn, settings, ip, now)?;
    }
    bans::password_failed(&mut conn, settings, &user.username, now)?;
    Ok(Err(two_factor::WRONG_PASSWORD.into()))
}

/// The audit event of a failed authentication at the pages (it changes
/// no other row: written alone). `user` when the login names one; else the
/// login as typed, cut short, is the only name there is.
fn failed(
    conn: &mut db::DbConn,
    user: Option<&User>,
    login: &str,
    method: &'static str,
    why: &str,
    ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<()> {
    let (name, message) = match method {
        "otp" => (
            "login_failed_with_otp_authentication",
            "Failed to login with OTP authentication",
        ),
        _ => (
            "login_failed_with_standard_authentication",
            "Failed to login with STANDARD authentication",
        ),
    };
    let ip = ip.map(|i| i.to_string());
    let (event, actor) = match user {
        Some(u) => (
            Event::on_user(name, u, message),
            Actor {
                user_id: None,
                name: u.username.clone(),
                email: None,
                ip,
                via: Some(Via::Web),
                sudo_by: None,
            },
        ),
        None => (
            Event::on_instance(name, message).target("User", None, audit::clip(login)),
            Actor {
                user_id: None,
                name: audit::clip(login),
                email: None,
                ip,
                via: Some(Via::Web),
                sudo_by: None,
            },
        ),
    };
    audit::record(conn, &actor, event.with("reason", why), now)
}

/// The second step: `code` from the authenticator app of `user`, or one
/// of their recovery codes (each works once). A wrong or replayed code
/// counts against the account and the client as a wrong password does.
pub fn with_code(
    conn: &mut db::DbConn,
    key: &SecretKey,
    settings: &Settings,
    user: &User,
    code: &str,
    ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<std::result::Result<(), String>> {
    if let Some(ip) = ip {
        if let Some(until) = bans::client_banned(conn, settings, ip, now)? {
            return Ok(Err(bans::banned_message(until)));
        }
    }
    if let Some(until) = bans::account_locked(conn, &user.username, now)? {
        return Ok(Err(bans::locked_sentence(until)));
    }
    let ok = match two_factor::secret_of(key, user)? {
        Some(_) if two_factor::looks_like_recovery_code(code) => {
            two_factor::use_recovery_code(conn, key, user, code, now)?
        }
        Some(secret) => two_factor::code_ok(conn, user, &secret, code, now)?,
        None => false,
    };
    if !ok {
        crate::metrics::get().auth(AuthResult::TwoFactorWrong);
        failed(
            conn,
            Some(user),
            &user.username,
            "otp",
            "invalid two-factor code",
            ip,
            now,
        )?;
        if let Some(ip) = ip {
            bans::client_failed(conn, settings, ip, now)?;
        }
        bans::password_failed(conn, settings, &user.username, now)?;
        return Ok(Err(INVALID_CODE.into()));
    }
    bans::password_succeeded(conn, &user.username, now)?;
    Ok(Ok(()))
}
