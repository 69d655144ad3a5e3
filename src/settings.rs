//! Instance settings (spec section 5): typed, validated, stored as text in
//! `application_settings` so that every instance on one database agrees.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::net::Cidr;
use crate::service::audit::{self, Actor, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Days; when set, a token must expire within this many days.
    pub max_personal_access_token_lifetime: Option<u32>,
    /// When false, expired tokens still authenticate.
    pub enforce_personal_access_token_expiration: bool,
    /// May users without 2FA use their password for Git over HTTP?
    pub password_authentication_enabled_for_git: bool,
    /// Put before the random part of generated tokens.
    pub personal_access_token_prefix: String,
    /// `last_used_at` is written at most once in this many minutes.
    pub personal_access_token_last_used_throttle_minutes: u32,
    /// Ban an IP from Git authentication after repeated failures?
    pub git_auth_ban_enabled: bool,
    /// This many failures within the window ban the IP...
    pub git_auth_ban_max_failures: u32,
    pub git_auth_ban_window_seconds: u32,
    /// ...for this long.
    pub git_auth_ban_duration_seconds: u32,
    /// IPs never banned.
    pub git_auth_ban_allowlist: Vec<IpAddr>,
    /// Bytes; a push whose pack is larger is refused.
    pub receive_max_input_size: u64,
    /// A push that leaves a repository with more packs starts maintenance.
    pub maintenance_pack_limit: u32,
    /// Seconds a push's request may take in all, however fast it goes.
    pub push_deadline_seconds: u32,
    /// Bytes per second a push must send on average over each minute it
    /// waits on the client (0: no minimum).
    pub push_min_bytes_per_second: u32,
    /// Pushes in flight at once, in all and for one user; past either, 503.
    pub max_concurrent_pushes: u32,
    pub max_concurrent_pushes_per_user: u32,
    /// This many failed passwords lock an account's password sign-in...
    pub max_login_attempts: u32,
    /// ...for this many minutes (GitLab's names and defaults).
    pub failed_login_attempts_unlock_period_in_minutes: u32,
    /// Proxies whose `X-Forwarded-For` names the client.
    #[serde(serialize_with = "cidrs_as_text")]
    pub trusted_proxies: Vec<Cidr>,
    /// Minutes a browser session lasts without being used (GitLab's name;
    /// default a week).
    pub session_expire_delay: u32,
    /// Mail owners about tokens that expire soon or expired today?
    pub token_expiry_notifications_enabled: bool,
    /// The days before expiry each notice goes out (each once per token).
    pub token_expiry_notify_days: Vec<u32>,
    /// Scan what a push adds for live tokens of this instance and refuse
    /// the push when it holds one (leaked-token push protection).
    pub secret_push_protection_enabled: bool,
    /// Revoke a live token found in a push to a private repository too
    /// (in a public or internal one it is always revoked).
    pub revoke_leaked_tokens: bool,
    /// Audit events older than this many days are deleted (hourly).
    pub audit_events_retention_days: u32,
}

fn cidrs_as_text<S: serde::Serializer>(v: &[Cidr], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|c| c.to_string()))
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_personal_access_token_lifetime: None,
            enforce_personal_access_token_expiration: true,
            password_authentication_enabled_for_git: true,
            personal_access_token_prefix: "glpat-".into(),
            personal_access_token_last_used_throttle_minutes: 10,
            git_auth_ban_enabled: true,
            git_auth_ban_max_failures: 10,
            git_auth_ban_window_seconds: 60,
            git_auth_ban_duration_seconds: 3600,
            git_auth_ban_allowlist: Vec::new(),
            receive_max_input_size: DEFAULT_RECEIVE_MAX_INPUT_SIZE,
            maintenance_pack_limit: 16,
            push_deadline_seconds: 6 * 3600,
            push_min_bytes_per_second: 1024,
            max_concurrent_pushes: 64,
            max_concurrent_pushes_per_user: 16,
            max_login_attempts: 10,
            failed_login_attempts_unlock_period_in_minutes: 10,
            trusted_proxies: Vec::new(),
            session_expire_delay: 10_080,
            token_expiry_notifications_enabled: true,
            token_expiry_notify_days: vec![60, 30, 7],
            secret_push_protection_enabled: true,
            revoke_leaked_tokens: false,
            audit_events_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
        }
    }
}

/// The setting names, in the order they are listed.
pub const KEYS: [&str; 25] = [
    "max_personal_access_token_lifetime",
    "enforce_personal_access_token_expiration",
    "password_authentication_enabled_for_git",
    "personal_access_token_prefix",
    "personal_access_token_last_used_throttle_minutes",
    "git_auth_ban_enabled",
    "git_auth_ban_max_failures",
    "git_auth_ban_window_seconds",
    "git_auth_ban_duration_seconds",
    "git_auth_ban_allowlist",
    "receive_max_input_size",
    "maintenance_pack_limit",
    "push_deadline_seconds",
    "push_min_bytes_per_second",
    "max_concurrent_pushes",
    "max_concurrent_pushes_per_user",
    "max_login_attempts",
    "failed_login_attempts_unlock_period_in_minutes",
    "trusted_proxies",
    "session_expire_delay",
    "token_expiry_notifications_enabled",
    "token_expiry_notify_days",
    "secret_push_protection_enabled",
    "revoke_leaked_tokens",
    "audit_events_retention_days",
];

/// How long audit events are kept by default: a year.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 365;
/// The longest retention: a hundred years.
pub const MAX_AUDIT_RETENTION_DAYS: u32 = 36_500;

/// 2 GiB.
pub const DEFAULT_RECEIVE_MAX_INPUT_SIZE: u64 = 2 << 30;
/// The bounds of `receive_max_input_size`: 1 MiB to 1 TiB.
pub const RECEIVE_MAX_INPUT_SIZE_RANGE: std::ops::RangeInclusive<u64> = (1 << 20)..=(1 << 40);

/// The longest lifetime an instance may impose (GitLab's upper bound).
pub const MAX_LIFETIME_DAYS: u32 = 400;

fn parse_u32(key: &str, v: &str, range: std::ops::RangeInclusive<u32>, unit: &str) -> Result<u32> {
    match v.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(Error::Invalid(format!(
            "{key} must be a number of {unit} from {} to {}; not {v:?}",
            range.start(),
            range.end()
        ))),
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::Invalid(format!("{key} must be true or false, not {v:?}"))),
    }
}

impl Settings {
    /// The value of one setting, as text (`none` for an unset lifetime).
    pub fn get(&self, key: &str) -> Result<String> {
        Ok(match key {
            "max_personal_access_token_lifetime" => match self.max_personal_access_token_lifetime {
                Some(d) => d.to_string(),
                None => "none".into(),
            },
            "enforce_personal_access_token_expiration" => self.enforce_personal_access_token_expiration.to_string(),
            "password_authentication_enabled_for_git" => self.password_authentication_enabled_for_git.to_string(),
            "personal_access_token_prefix" => self.personal_access_token_prefix.clone(),
            "personal_access_token_last_used_throttle_minutes" => {
                self.personal_access_token_last_used_throttle_minutes.to_string()
            }
            "git_auth_ban_enabled" => self.git_auth_ban_enabled.to_string(),
            "git_auth_ban_max_failures" => self.git_auth_ban_max_failures.to_string(),
            "git_auth_ban_window_seconds" => self.git_auth_ban_window_seconds.to_string(),
            "git_auth_ban_duration_seconds" => self.git_auth_ban_duration_seconds.to_string(),
            "git_auth_ban_allowlist" => self
                .git_auth_ban_allowlist
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "receive_max_input_size" => self.receive_max_input_size.to_string(),
            "maintenance_pack_limit" => self.maintenance_pack_limit.to_string(),
            "push_deadline_seconds" => self.push_deadline_seconds.to_string(),
            "push_min_bytes_per_second" => self.push_min_bytes_per_second.to_string(),
            "max_concurrent_pushes" => self.max_concurrent_pushes.to_string(),
            "max_concurrent_pushes_per_user" => self.max_concurrent_pushes_per_user.to_string(),
            "max_login_attempts" => self.max_login_attempts.to_string(),
            "failed_login_attempts_unlock_period_in_minutes" => {
                self.failed_login_attempts_unlock_period_in_minutes.to_string()
            }
            "trusted_proxies" => self
                .trusted_proxies
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "session_expire_delay" => self.session_expire_delay.to_string(),
            "token_expiry_notifications_enabled" => self.token_expiry_notifications_enabled.to_string(),
            "token_expiry_notify_days" => self
                .token_expiry_notify_days
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "secret_push_protection_enabled" => self.secret_push_protection_enabled.to_string(),
            "revoke_leaked_tokens" => self.revoke_leaked_tokens.to_string(),
            "audit_events_retention_days" => self.audit_events_retention_days.to_string(),
            _ => return Err(unknown_key(key)),
        })
    }

    /// Sets one setting from text, validating it; `self` is unchanged on error.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let v = value.trim();
        match key {
            "max_personal_access_token_lifetime" => {
                self.max_personal_access_token_lifetime = if v.is_empty() || v.eq_ignore_ascii_case("none") {
                    None
                } else {
                    match v.parse::<u32>() {
                        Ok(d) if (1..=MAX_LIFETIME_DAYS).contains(&d) => Some(d),
                        _ => {
                            return Err(Error::Invalid(format!(
                                "max_personal_access_token_lifetime must be a number of days from 1 to {MAX_LIFETIME_DAYS}, or none; not {value:?}"
                            )))
                        }
                    }
                }
            }
            "enforce_personal_access_token_expiration" => {
                self.enforce_personal_access_token_expiration = parse_bool(key, v)?
            }
            "password_authentication_enabled_for_git" => {
                self.password_authentication_enabled_for_git = parse_bool(key, v)?
            }
            "personal_access_token_prefix" => {
                if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                    return Err(Error::Invalid(format!(
                        "personal_access_token_prefix may hold at most 20 of the characters A-Z a-z 0-9 _ -; not {value:?}"
                    )));
                }
                self.personal_access_token_prefix = v.to_string();
            }
            "personal_access_token_last_used_throttle_minutes" => {
                self.personal_access_token_last_used_throttle_minutes = parse_u32(key, v, 0..=1440, "minutes")?
            }
            "git_auth_ban_enabled" => self.git_auth_ban_enabled = parse_bool(key, v)?,
            "git_auth_ban_max_failures" => self.git_auth_ban_max_failures = parse_u32(key, v, 1..=100_000, "failures")?,
            "git_auth_ban_window_seconds" => {
                self.git_auth_ban_window_seconds = parse_u32(key, v, 1..=86_400, "seconds")?
            }
            "git_auth_ban_duration_seconds" => {
                self.git_auth_ban_duration_seconds = parse_u32(key, v, 1..=2_592_000, "seconds")?
            }
            "git_auth_ban_allowlist" => {
                let mut ips = Vec::new();
                for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    ips.push(part.parse::<IpAddr>().map_err(|_| {
                        Error::Invalid(format!("git_auth_ban_allowlist: {part:?} is not an IP address"))
                    })?);
                }
                self.git_auth_ban_allowlist = ips;
            }
            "maintenance_pack_limit" => self.maintenance_pack_limit = parse_u32(key, v, 2..=10_000, "packs")?,
            "push_deadline_seconds" => self.push_deadline_seconds = parse_u32(key, v, 60..=7 * 86_400, "seconds")?,
            "push_min_bytes_per_second" => {
                self.push_min_bytes_per_second = parse_u32(key, v, 0..=1 << 30, "bytes per second")?
            }
            "max_concurrent_pushes" => self.max_concurrent_pushes = parse_u32(key, v, 1..=100_000, "pushes")?,
            "max_concurrent_pushes_per_user" => {
                self.max_concurrent_pushes_per_user = parse_u32(key, v, 1..=100_000, "pushes")?
            }
            "max_login_attempts" => self.max_login_attempts = parse_u32(key, v, 1..=1000, "attempts")?,
            "session_expire_delay" => self.session_expire_delay = parse_u32(key, v, 1..=5_256_000, "minutes")?,
            "token_expiry_notifications_enabled" => self.token_expiry_notifications_enabled = parse_bool(key, v)?,
            "secret_push_protection_enabled" => self.secret_push_protection_enabled = parse_bool(key, v)?,
            "revoke_leaked_tokens" => self.revoke_leaked_tokens = parse_bool(key, v)?,
            "token_expiry_notify_days" => {
                let mut days = Vec::new();
                for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part.parse::<u32>() {
                        Ok(d) if (1..=MAX_LIFETIME_DAYS).contains(&d) => days.push(d),
                        _ => {
                            return Err(Error::Invalid(format!(
                                "token_expiry_notify_days must be days from 1 to {MAX_LIFETIME_DAYS} separated by commas (such as 60,30,7); not {value:?}"
                            )))
                        }
                    }
                }
                if days.is_empty() {
                    return Err(Error::Invalid(
                        "token_expiry_notify_days needs at least one day (turn the notices off with token_expiry_notifications_enabled)".into(),
                    ));
                }
                days.sort_unstable_by(|a, b| b.cmp(a));
                days.dedup();
                self.token_expiry_notify_days = days;
            }
            "failed_login_attempts_unlock_period_in_minutes" => {
                self.failed_login_attempts_unlock_period_in_minutes = parse_u32(key, v, 1..=1_440_000, "minutes")?
            }
            "audit_events_retention_days" => {
                self.audit_events_retention_days = parse_u32(key, v, 1..=MAX_AUDIT_RETENTION_DAYS, "days")?
            }
            "trusted_proxies" => {
                let mut blocks = Vec::new();
                for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    blocks.push(Cidr::parse(part).ok_or_else(|| {
                        Error::Invalid(format!(
                            "trusted_proxies: {part:?} is not an IP address or block (such as 10.0.0.0/8)"
                        ))
                    })?);
                }
                self.trusted_proxies = blocks;
            }
            "receive_max_input_size" => {
                let r = RECEIVE_MAX_INPUT_SIZE_RANGE;
                self.receive_max_input_size = match v.parse::<u64>() {
                    Ok(n) if r.contains(&n) => n,
                    _ => {
                        return Err(Error::Invalid(format!(
                            "receive_max_input_size must be a number of bytes from {} to {}; not {value:?}",
                            r.start(),
                            r.end()
                        )))
                    }
                }
            }
            _ => return Err(unknown_key(key)),
        }
        Ok(())
    }

    /// Reads the settings; keys not stored keep their defaults.
    pub fn load(conn: &mut DbConn) -> Result<Settings> {
        let mut s = Settings::default();
        for (k, v) in db::setting::all(conn)? {
            // A stored value that no longer parses (or a key from a newer
            // version) must not stop the server: it keeps its default.
            if let Err(e) = s.set(&k, &v) {
                tracing::warn!("ignoring the stored setting {k}: {e}");
            }
        }
        Ok(s)
    }

    /// Validates every `(key, value)` against the stored settings, then
    /// stores them all in one transaction, with an audit event by `actor`
    /// for each value that changed (old and new): one bad value stores
    /// nothing (its error names it). Returns the new settings.
    pub fn store_many(
        conn: &mut DbConn,
        actor: &Actor,
        changes: &[(&str, String)],
        now: DateTime<Utc>,
    ) -> Result<Settings> {
        db::write_transaction(conn, |conn| {
            let before = Settings::load(conn)?;
            let mut next = before.clone();
            for (key, value) in changes {
                next.set(key, value)?;
            }
            let mut seen: Vec<&str> = Vec::new();
            for (key, _) in changes {
                let (old, new) = (before.get(key)?, next.get(key)?);
                db::setting::put(conn, key, &new)?;
                if old != new && !seen.contains(key) {
                    seen.push(key);
                    let event = Event::on_instance(
                        "application_setting_updated",
                        format!("Changed the setting {key} from {old:?} to {new:?}"),
                    )
                    .target("ApplicationSetting", None, *key)
                    .with("setting", *key)
                    .with("from", old)
                    .with("to", new);
                    audit::record(conn, actor, event, now)?;
                }
            }
            Ok(next)
        })
    }

    /// Validates and stores one setting ([`Settings::store_many`]);
    /// returns the new settings.
    pub fn store(conn: &mut DbConn, actor: &Actor, key: &str, value: &str, now: DateTime<Utc>) -> Result<Settings> {
        Settings::store_many(conn, actor, &[(key, value.to_string())], now)
    }
}

/// How old the cached settings may get before they are read again (so
/// that other instances' changes apply within a few seconds).
pub const SETTINGS_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// The settings in memory, so that no request reads them from the database
/// (and no async worker ever waits for it). This instance's own changes
/// are put in at once; [`SettingsCache::stale`] says when to read them
/// again (`App::settings` does, off the request's path).
pub struct SettingsCache {
    inner: std::sync::RwLock<(Settings, std::time::Instant)>,
    /// A refresh is under way.
    pub refreshing: std::sync::atomic::AtomicBool,
}

impl SettingsCache {
    pub fn new(settings: Settings) -> SettingsCache {
        SettingsCache {
            inner: std::sync::RwLock::new((settings, std::time::Instant::now())),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn current(&self) -> Settings {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    pub fn stale(&self) -> bool {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).1.elapsed() >= SETTINGS_REFRESH
    }

    pub fn put(&self, settings: Settings) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = (settings, std::time::Instant::now());
    }
}

fn unknown_key(key: &str) -> Error {
    Error::Invalid(format!("unknown setting {key:?}; the settings are {}", KEYS.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips() {
        let d = Settings::default();
        for k in KEYS {
            let mut s = d.clone();
            s.set(k, &d.get(k).unwrap()).unwrap();
            assert_eq!(s, d, "{k}");
        }
    }

    #[test]
    fn validation() {
        let mut s = Settings::default();
        s.set("max_personal_access_token_lifetime", "30").unwrap();
        assert_eq!(s.max_personal_access_token_lifetime, Some(30));
        s.set("max_personal_access_token_lifetime", "none").unwrap();
        assert_eq!(s.max_personal_access_token_lifetime, None);
        assert!(s.set("max_personal_access_token_lifetime", "0").is_err());
        assert!(s.set("max_personal_access_token_lifetime", "401").is_err());
        assert!(s.set("enforce_personal_access_token_expiration", "maybe").is_err());
        s.set("enforce_personal_access_token_expiration", "false").unwrap();
        assert!(!s.enforce_personal_access_token_expiration);
        assert!(s.set("personal_access_token_prefix", "has space").is_err());
        assert!(s
            .set("personal_access_token_last_used_throttle_minutes", "1441")
            .is_err());
        assert!(s.set("git_auth_ban_max_failures", "0").is_err());
        s.set("git_auth_ban_allowlist", " 127.0.0.1 ,::1").unwrap();
        assert_eq!(s.get("git_auth_ban_allowlist").unwrap(), "127.0.0.1,::1");
        let before = s.clone();
        assert!(s.set("git_auth_ban_allowlist", "127.0.0.1,not-an-ip").is_err());
        assert_eq!(s, before, "a refused value must change nothing");
        assert!(s.set("receive_max_input_size", "1048575").is_err());
        assert!(s.set("receive_max_input_size", "2GiB").is_err());
        s.set("receive_max_input_size", "1048576").unwrap();
        assert!(s.set("maintenance_pack_limit", "1").is_err());
        s.set("maintenance_pack_limit", "4").unwrap();
        assert_eq!(s.maintenance_pack_limit, 4);
        assert!(s.set("push_deadline_seconds", "59").is_err());
        assert!(s.set("max_concurrent_pushes", "0").is_err());
        assert!(s.set("max_concurrent_pushes_per_user", "-1").is_err());
        s.set("push_min_bytes_per_second", "0").unwrap();
        assert!(s.set("trusted_proxies", "10.0.0.0/33").is_err());
        s.set("trusted_proxies", "10.0.0.0/8, ::1").unwrap();
        assert_eq!(s.get("trusted_proxies").unwrap(), "10.0.0.0/8,::1/128");
        assert!(s.set("max_login_attempts", "0").is_err());
        assert!(s.set("audit_events_retention_days", "0").is_err());
        assert!(s.set("audit_events_retention_days", "36501").is_err());
        s.set("audit_events_retention_days", "30").unwrap();
        assert_eq!(s.audit_events_retention_days, 30);
        assert_eq!(s.push_min_bytes_per_second, 0);
        assert_eq!(s.receive_max_input_size, 1 << 20);
        s.set("personal_access_token_prefix", "").unwrap();
        assert_eq!(s.personal_access_token_prefix, "");
        let err = s.set("no_such_key", "1").unwrap_err().to_string();
        assert!(err.contains("unknown setting \"no_such_key\""), "{err}");
    }
}
