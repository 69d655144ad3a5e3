//! Failed authentications and what they lead to, in the database so that
//! every instance applies the same (spec: the ban):
//! - per **client** (an IP; an IPv6 client by its /64): the
//!   `git_auth_ban_*` settings, 10 failures in a minute ban it for an hour.
//!   A banned client's bad credentials and passwords are refused without
//!   being checked (no argon2), but a valid token still works: a token
//!   cannot be guessed, and a NAT or CI runner stays usable.
//! - per **account**: `max_login_attempts` failed passwords lock its
//!   password sign-in for `failed_login_attempts_unlock_period_in_minutes`,
//!   whatever the IP (GitLab's lock), counted over a day.
//!
//! A success clears only its own account's count, never the client's.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use crate::db::{self, DbConn};
use crate::error::Result;
use crate::net::client_key;
use crate::service::audit::{self, Actor, Event};
use crate::settings::Settings;

/// Failed passwords count against an account over this span.
pub const ACCOUNT_WINDOW_HOURS: i64 = 24;

fn exempt(settings: &Settings, ip: IpAddr) -> bool {
    !settings.git_auth_ban_enabled || settings.git_auth_ban_allowlist.contains(&ip)
}

fn account_key(username: &str) -> String {
    format!("user:{}", username.to_lowercase())
}

fn utc(t: chrono::NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Until when `ip` is banned, if it is now.
pub fn client_banned(
    conn: &mut DbConn,
    settings: &Settings,
    ip: IpAddr,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    if exempt(settings, ip) {
        return Ok(None);
    }
    Ok(db::auth_failure::locked_until(conn, &client_key(ip), now.naive_utc())?.map(utc))
}

/// Counts a failed authentication of any kind (bad token, bad password,
/// malformed credentials) from `ip`.
pub fn client_failed(conn: &mut DbConn, settings: &Settings, ip: IpAddr, now: DateTime<Utc>) -> Result<()> {
    if exempt(settings, ip) {
        return Ok(());
    }
    let key = client_key(ip);
    let banned = record(
        conn,
        &key,
        now,
        Duration::seconds(i64::from(settings.git_auth_ban_window_seconds)),
        settings.git_auth_ban_max_failures,
        Duration::seconds(i64::from(settings.git_auth_ban_duration_seconds)),
    )?;
    if let Some(until) = banned {
        tracing::warn!(client = %key, "banned from authentication until {until} after repeated failures");
        // Its own event (the ban's row is written already): no change of
        // another row to share a transaction with.
        let event = Event::on_instance(
            "client_banned",
            format!("Banned {key} from authentication after repeated failures"),
        )
        .target("Client", None, key.clone())
        .with("until", crate::service::tokens::iso(until.naive_utc()))
        .with("failures", settings.git_auth_ban_max_failures)
        .with("window_seconds", settings.git_auth_ban_window_seconds);
        audit::record(conn, &Actor::system(Some(ip.to_string())), event, now)?;
    }
    Ok(())
}

/// Until when password sign-in is locked for `username`, if it is now.
pub fn account_locked(conn: &mut DbConn, username: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    Ok(db::auth_failure::locked_until(conn, &account_key(username), now.naive_utc())?.map(utc))
}

/// Counts a wrong password for `username` (an existing account).
pub fn password_failed(conn: &mut DbConn, settings: &Settings, username: &str, now: DateTime<Utc>) -> Result<()> {
    let locked = record(
        conn,
        &account_key(username),
        now,
        Duration::hours(ACCOUNT_WINDOW_HOURS),
        settings.max_login_attempts,
        Duration::minutes(i64::from(settings.failed_login_attempts_unlock_period_in_minutes)),
    )?;
    if let Some(until) = locked {
        tracing::warn!(
            user = username,
            "password sign-in locked until {until} after repeated failures"
        );
        let message = "Locked password sign-in after repeated failures";
        let event = match db::user::find_by_username(conn, username)? {
            Some(u) => Event::on_user("user_access_locked", &u, message),
            None => Event::on_instance("user_access_locked", message).target("User", None, audit::clip(username)),
        }
        .with("until", crate::service::tokens::iso(until.naive_utc()))
        .with("failures", settings.max_login_attempts);
        audit::record(conn, &Actor::system(None), event, now)?;
    }
    Ok(())
}

/// A right password for `username`: its count starts again.
pub fn password_succeeded(conn: &mut DbConn, username: &str, now: DateTime<Utc>) -> Result<()> {
    db::auth_failure::clear(conn, &account_key(username), now.naive_utc())?;
    Ok(())
}

/// [`db::auth_failure::record`], once more if another instance inserted
/// the same key at the same moment.
fn record(
    conn: &mut DbConn,
    key: &str,
    now: DateTime<Utc>,
    window: Duration,
    max: u32,
    lock: Duration,
) -> Result<Option<DateTime<Utc>>> {
    let now = now.naive_utc();
    let locked = match db::auth_failure::record(conn, key, now, window, max, lock) {
        Err(e) if db::is_unique_violation(&e) => db::auth_failure::record(conn, key, now, window, max, lock)?,
        other => other?,
    };
    Ok(locked.map(utc))
}

/// The refusal of a banned client, saying until when.
pub fn banned_message(until: DateTime<Utc>) -> String {
    format!(
        "{} until {} UTC",
        crate::service::git_http::BANNED,
        until.format("%Y-%m-%d %H:%M:%S")
    )
}

/// The refusal of a locked account, saying until when (to Git).
pub fn locked_message(until: DateTime<Utc>) -> String {
    format!("HTTP Basic: Access denied. {}", locked_sentence(until))
}

/// Why a locked account is refused, and until when.
pub fn locked_sentence(until: DateTime<Utc>) -> String {
    format!(
        "Your account is locked after too many failed sign-in attempts, until {} UTC.",
        until.format("%Y-%m-%d %H:%M:%S")
    )
}
