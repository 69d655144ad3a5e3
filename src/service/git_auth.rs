//! Who is calling over Git HTTP, and may they do this (spec section 3): the
//! password is tried as a token first, then as the user's password; scopes
//! decide pull and push, roles decide where; repeated failures from one IP
//! get it banned for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::auth::basic::BasicCredentials;
use crate::auth::password;
use crate::auth::token::{self, Scope, SecretKey};
use crate::db::{self, project::Project, token::TokenRow, user::User, DbConn};
use crate::error::Result;
use crate::service::access;
use crate::service::tokens::{self, AuthOutcome};
use crate::settings::Settings;

pub const ACCESS_DENIED: &str = "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped.";
pub const TOKEN_REQUIRED: &str = "HTTP Basic: Access denied. You must use a personal access token with 'read_repository' or 'write_repository' scope for Git over HTTP.";
pub const NOT_FOUND: &str =
    "The project you were looking for could not be found or you don't have permission to view it.";
pub const CANNOT_DOWNLOAD: &str = "You are not allowed to download code.";
pub const CANNOT_UPLOAD: &str = "You are not allowed to upload code.";
pub const BANNED: &str = "Too many failed authentication attempts from this IP";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Pull,
    Push,
}

/// An authenticated Git caller: by token (with its scopes) or by password.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token: Option<TokenRow>,
}

impl Caller {
    /// May this credential, whatever the repository, do `op`? A password
    /// may do what the user may; a token only what its scopes allow.
    pub fn scope_allows(&self, op: Operation) -> bool {
        let Some(t) = &self.token else { return true };
        token::scopes_from_db(&t.scopes).into_iter().any(|s| match op {
            Operation::Pull => Scope::allows_git_pull(s),
            Operation::Push => Scope::allows_git_push(s),
        })
    }
}

/// A refusal, with what the HTTP layer must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401 with `WWW-Authenticate: Basic`, so git asks for credentials.
    Challenge(&'static str),
    /// 401 without a challenge, so git stops asking (2FA user, password).
    NoChallenge(&'static str),
    /// 403.
    Forbidden(&'static str),
    /// 404, the same answer as for a repository that does not exist.
    NotFound,
}

impl Denied {
    pub fn message(&self) -> &'static str {
        match self {
            Denied::Challenge(m) | Denied::NoChallenge(m) | Denied::Forbidden(m) => m,
            Denied::NotFound => NOT_FOUND,
        }
    }
}

/// Authenticates Basic credentials; `Ok(None)` for an anonymous request.
pub fn authenticate(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    creds: Option<&BasicCredentials>,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Result<Option<Caller>, Denied>> {
    let Some(c) = creds else { return Ok(Ok(None)) };
    if c.username.is_empty() || c.password.is_empty() {
        return Ok(Err(Denied::Challenge(ACCESS_DENIED)));
    }
    match tokens::authenticate(conn, key, settings, &c.password, ip, now)? {
        AuthOutcome::Ok(b) => {
            let (token, user) = *b;
            return Ok(Ok(Some(Caller {
                user,
                token: Some(token),
            })));
        }
        AuthOutcome::Rejected(tokens::Rejection::Unknown) => {}
        AuthOutcome::Rejected(_) => return Ok(Err(Denied::Challenge(ACCESS_DENIED))),
    }
    // Not a token: the user's password, where allowed.
    let Some(user) = db::user::find_by_username(conn, &c.username)? else {
        password::verify_dummy(&c.password);
        return Ok(Err(Denied::Challenge(ACCESS_DENIED)));
    };
    let Some(hash) = user.password_hash.as_deref() else {
        password::verify_dummy(&c.password);
        return Ok(Err(Denied::Challenge(ACCESS_DENIED)));
    };
    if !password::verify(&c.password, hash) || user.is_blocked() {
        return Ok(Err(Denied::Challenge(ACCESS_DENIED)));
    }
    if user.two_factor_enabled || !settings.password_authentication_enabled_for_git {
        return Ok(Err(Denied::NoChallenge(TOKEN_REQUIRED)));
    }
    Ok(Ok(Some(Caller { user, token: None })))
}

/// May `caller` do `op` in `project` (None: no such repository)?
pub fn authorize(
    conn: &mut DbConn,
    caller: Option<&Caller>,
    project: Option<&Project>,
    op: Operation,
) -> Result<Result<(), Denied>> {
    let Some(project) = project else {
        // No existence leak; but an anonymous caller is asked to sign in.
        return Ok(Err(match caller {
            None => Denied::Challenge(ACCESS_DENIED),
            Some(_) => Denied::NotFound,
        }));
    };
    let a = access::access(conn, caller.map(|c| &c.user), project)?;
    let Some(caller) = caller else {
        return Ok(match op {
            Operation::Pull if a.pull => Ok(()),
            _ => Err(Denied::Challenge(ACCESS_DENIED)),
        });
    };
    if !a.see {
        return Ok(Err(Denied::NotFound));
    }
    Ok(match op {
        Operation::Pull if !(a.pull && caller.scope_allows(Operation::Pull)) => Err(Denied::Forbidden(CANNOT_DOWNLOAD)),
        Operation::Push if !(a.push && caller.scope_allows(Operation::Push)) => Err(Denied::Forbidden(CANNOT_UPLOAD)),
        _ => Ok(()),
    })
}

/// Failed-authentication bans, per client IP, in this process.
#[derive(Debug, Default)]
pub struct BanList {
    entries: Mutex<HashMap<IpAddr, BanEntry>>,
}

#[derive(Debug, Clone, Copy)]
struct BanEntry {
    failures: u32,
    window_start: DateTime<Utc>,
    banned_until: Option<DateTime<Utc>>,
}

impl BanList {
    fn exempt(settings: &Settings, ip: IpAddr) -> bool {
        !settings.git_auth_ban_enabled || settings.git_auth_ban_allowlist.contains(&ip)
    }

    /// Is `ip` banned now?
    pub fn is_banned(&self, settings: &Settings, ip: IpAddr, now: DateTime<Utc>) -> bool {
        if Self::exempt(settings, ip) {
            return false;
        }
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)
            .and_then(|e| e.banned_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failed authentication; bans the IP at the threshold.
    pub fn record_failure(&self, settings: &Settings, ip: IpAddr, now: DateTime<Utc>) {
        if Self::exempt(settings, ip) {
            return;
        }
        let window = Duration::seconds(i64::from(settings.git_auth_ban_window_seconds));
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Forget what is over, so the map stays as small as the attack.
        map.retain(|_, e| e.banned_until.map_or(now - e.window_start < window, |u| now < u));
        let e = map.entry(ip).or_insert(BanEntry {
            failures: 0,
            window_start: now,
            banned_until: None,
        });
        if e.banned_until.is_some() {
            return;
        }
        if now - e.window_start >= window {
            *e = BanEntry {
                failures: 0,
                window_start: now,
                banned_until: None,
            };
        }
        e.failures += 1;
        if e.failures >= settings.git_auth_ban_max_failures {
            e.banned_until = Some(now + Duration::seconds(i64::from(settings.git_auth_ban_duration_seconds)));
            tracing::warn!(%ip, "banned from Git authentication after {} failures", e.failures);
        }
    }

    /// A success resets the IP's count.
    pub fn record_success(&self, ip: IpAddr) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&ip).is_some_and(|e| e.banned_until.is_none()) {
            map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_a_minute_ban_for_an_hour() {
        let s = Settings::default();
        let bans = BanList::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for i in 0..9 {
            bans.record_failure(&s, ip, t0 + Duration::seconds(i));
        }
        assert!(!bans.is_banned(&s, ip, t0 + Duration::seconds(9)));
        bans.record_failure(&s, ip, t0 + Duration::seconds(9));
        assert!(bans.is_banned(&s, ip, t0 + Duration::seconds(10)));
        assert!(!bans.is_banned(&s, other, t0 + Duration::seconds(10)));
        // A success during the ban does not lift it.
        bans.record_success(ip);
        assert!(bans.is_banned(&s, ip, t0 + Duration::minutes(59)));
        assert!(!bans.is_banned(&s, ip, t0 + Duration::seconds(9) + Duration::hours(1)));
    }

    #[test]
    fn failures_spread_out_or_reset_by_success_do_not_ban() {
        let s = Settings::default();
        let bans = BanList::default();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for i in 0..30 {
            bans.record_failure(&s, ip, t0 + Duration::seconds(i * 7));
        }
        assert!(
            !bans.is_banned(&s, ip, t0 + Duration::seconds(211)),
            "failures over minutes ban"
        );
        for i in 0..9 {
            bans.record_failure(&s, ip, t0 + Duration::seconds(300 + i));
        }
        bans.record_success(ip);
        bans.record_failure(&s, ip, t0 + Duration::seconds(310));
        assert!(
            !bans.is_banned(&s, ip, t0 + Duration::seconds(311)),
            "a success must reset the count"
        );
    }

    #[test]
    fn the_allowlist_and_the_switch_exempt() {
        let mut s = Settings::default();
        s.set("git_auth_ban_allowlist", "192.0.2.7, 2001:db8::1").unwrap();
        let bans = BanList::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..20 {
            bans.record_failure(&s, ip, t0);
        }
        assert!(!bans.is_banned(&s, ip, t0));
        s.set("git_auth_ban_allowlist", "").unwrap();
        s.set("git_auth_ban_enabled", "false").unwrap();
        for _ in 0..20 {
            bans.record_failure(&s, ip, t0);
        }
        assert!(!bans.is_banned(&s, ip, t0));
        s.set("git_auth_ban_enabled", "true").unwrap();
        for _ in 0..10 {
            bans.record_failure(&s, ip, t0);
        }
        assert!(bans.is_banned(&s, ip, t0));
    }
}
