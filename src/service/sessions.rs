//! Browser sessions (issue 14): a random id in an `HttpOnly` cookie, only
//! its keyed digest in the database, so that sessions work across
//! instances and can be listed and revoked. A session expires after
//! `session_expire_delay` minutes without use; one waiting for its second
//! factor lasts [`PENDING_MINUTES`] and can do nothing else. Blocking a
//! user or changing their password ends their sessions (`service::users`).
//!
//! Also derived from the session's id, under the instance key:
//! - its CSRF token (the same for every form of the session, checked in
//!   constant time);
//! - the key of its flash: a new token kept encrypted for the one page
//!   that shows it after a redirect (the database alone cannot read it).

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use hmac::Mac;

use crate::auth::token::SecretKey;
use crate::db::{self, session::SessionRow, user::User, DbConn};
use crate::error::{Error, Result};
use crate::service::audit::{self, Actor, Event, Via};
use crate::settings::Settings;

/// Minutes a session waiting for the second factor lasts.
pub const PENDING_MINUTES: i64 = 5;
/// A session's last use is written at most this often.
pub const TOUCH_INTERVAL: Duration = Duration::minutes(1);
/// At most this much of the user agent is kept.
pub const MAX_USER_AGENT: usize = 255;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The random id a session's cookie carries. `Debug` shows none of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    pub fn generate() -> Result<SessionSecret> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(anyhow::anyhow!("no randomness: {e}")))?;
        Ok(SessionSecret(B64.encode(bytes)))
    }

    /// A cookie's value, as the browser sent it (anything: it is only
    /// ever looked up by digest).
    pub fn from_cookie(value: &str) -> SessionSecret {
        SessionSecret(value.to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn digest(&self, key: &SecretKey) -> String {
        hex::encode(key.mac(&[b"session", self.0.as_bytes()]).finalize().into_bytes())
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

/// The CSRF token of the forms of whatever `basis` names (a session's
/// secret, or before sign-in the value of the pre-session cookie).
pub fn csrf_token(key: &SecretKey, basis: &str) -> String {
    hex::encode(key.mac(&[b"csrf", basis.as_bytes()]).finalize().into_bytes())
}

/// Is `given` the CSRF token of `basis`? (Constant time.)
pub fn csrf_ok(key: &SecretKey, basis: &str, given: &str) -> bool {
    match hex::decode(given.trim()) {
        Ok(bytes) => key.mac(&[b"csrf", basis.as_bytes()]).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// Where a sign-in came from, as the active sessions page shows it.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

fn idle(settings: &Settings) -> Duration {
    Duration::minutes(i64::from(settings.session_expire_delay))
}

/// Starts a session for `user` (pending: waiting for the second factor).
pub fn start(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    user: &User,
    pending: bool,
    client: &Client,
    now: DateTime<Utc>,
) -> Result<(SessionRow, SessionSecret)> {
    let secret = SessionSecret::generate()?;
    let digest = secret.digest(key);
    let lasts = if pending {
        Duration::minutes(PENDING_MINUTES)
    } else {
        idle(settings)
    };
    let agent: Option<String> = client
        .user_agent
        .as_deref()
        .map(|a| a.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT).collect());
    let now = now.naive_utc();
    let new = db::session::NewSession {
        digest: &digest,
        user_id: user.id,
        created_at: now,
        last_seen_at: now,
        expires_at: now + lasts,
        ip: client.ip.as_deref(),
        user_agent: agent.as_deref(),
        two_factor_pending: pending,
    };
    let row = db::write_transaction(conn, |conn| {
        db::session::delete_expired(conn, now)?;
        let row = db::session::insert(conn, &new)?;
        // A session waiting for the second factor is no sign-in yet.
        if !pending {
            record_sign_in(conn, user, client.ip.clone(), false, now.and_utc())?;
        }
        Ok::<_, Error>(row)
    })?;
    Ok((row, secret))
}

/// The audit event of `user` signing in to the pages from `ip`.
fn record_sign_in(
    conn: &mut DbConn,
    user: &User,
    ip: Option<String>,
    two_factor: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let how = if two_factor { "two-factor" } else { "standard" };
    let event = Event::on_user("user_signed_in", user, format!("Signed in with {how} authentication"))
        .with("two_factor", two_factor);
    audit::record(conn, &Actor::user(user, Via::Web, ip), event, now)
}

/// The live session a cookie names, with its user: none when it is
/// unknown, expired, or its user is blocked. Its last use is recorded (at
/// most once a [`TOUCH_INTERVAL`]), which also pushes its expiry back.
pub fn resolve(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    secret: &SessionSecret,
    now: DateTime<Utc>,
) -> Result<Option<(SessionRow, User)>> {
    let now = now.naive_utc();
    let Some(mut row) = db::session::find_by_digest(conn, &secret.digest(key))? else {
        return Ok(None);
    };
    if row.expires_at <= now {
        return Ok(None);
    }
    let Some(user) = db::user::find(conn, row.user_id)? else {
        return Ok(None);
    };
    if user.is_blocked() {
        return Ok(None);
    }
    if !row.two_factor_pending && now - row.last_seen_at >= TOUCH_INTERVAL {
        row.last_seen_at = now;
        row.expires_at = now + idle(settings);
        db::session::touch(conn, row.id, row.last_seen_at, row.expires_at)?;
    }
    Ok(Some((row, user)))
}

/// The second factor passed: the pending session becomes a full one,
/// under a new secret (the pending cookie's is never the signed-in one).
pub fn complete(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    row: &SessionRow,
    now: DateTime<Utc>,
) -> Result<SessionSecret> {
    let secret = SessionSecret::generate()?;
    let expires = now.naive_utc() + idle(settings);
    db::write_transaction(conn, |conn| {
        if db::session::promote(conn, row.id, &secret.digest(key), expires)? != 1 {
            return Err(Error::Conflict("this sign-in has already been completed".into()));
        }
        let user = db::user::find(conn, row.user_id)?
            .ok_or_else(|| Error::NotFound(format!("no user with id {}", row.user_id)))?;
        record_sign_in(conn, &user, row.ip.clone(), true, now)
    })?;
    Ok(secret)
}

/// The user's signed-in sessions, the most recently used first.
pub fn list(conn: &mut DbConn, user_id: i64, now: DateTime<Utc>) -> Result<Vec<SessionRow>> {
    Ok(db::session::list_live(conn, user_id, now.naive_utc())?)
}

/// Ends session `id` of `user_id`.
pub fn revoke(conn: &mut DbConn, user_id: i64, id: i64) -> Result<()> {
    match db::session::delete(conn, user_id, id)? {
        0 => Err(Error::NotFound("no such session".into())),
        _ => Ok(()),
    }
}

/// Ends every session of `user_id` (blocked, or a new password).
pub fn end_all(conn: &mut DbConn, user_id: i64) -> Result<usize> {
    Ok(db::session::delete_all(conn, user_id)?)
}

/// Signs out: ends the session the cookie names, if any.
pub fn sign_out(conn: &mut DbConn, key: &SecretKey, secret: &SessionSecret) -> Result<()> {
    if let Some(row) = db::session::find_by_digest(conn, &secret.digest(key))? {
        db::session::delete(conn, row.user_id, row.id)?;
    }
    Ok(())
}

fn keystream_xor(k: &[u8], nonce: &[u8], data: &mut [u8]) {
    for (i, chunk) in data.chunks_mut(32).enumerate() {
        let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(k).expect("HMAC takes any key length");
        m.update(b"stream");
        m.update(nonce);
        m.update(&(i as u64).to_be_bytes());
        let block = m.finalize().into_bytes();
        for (b, s) in chunk.iter_mut().zip(block.iter()) {
            *b ^= s;
        }
    }
}

fn flash_tag(k: &[u8], nonce: &[u8], ct: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(k).expect("HMAC takes any key length");
    m.update(b"tag");
    m.update(nonce);
    m.update(ct);
    m
}

/// What a flash holds, and so which page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// A new personal access token (the tokens page).
    Token,
    /// New recovery codes (the two-factor page).
    RecoveryCodes,
    /// A new impersonation token of this user (their admin page).
    Impersonation(i64),
}

impl FlashKind {
    fn name(self) -> String {
        match self {
            FlashKind::Token => "token".into(),
            FlashKind::RecoveryCodes => "recovery".into(),
            FlashKind::Impersonation(user_id) => format!("impersonation-{user_id}"),
        }
    }
}

/// Keeps `text` (a new token, new recovery codes) for the session's next
/// page of its kind, encrypted under a key derived from the session's
/// secret: HMAC-SHA-256 in counter mode, then HMAC over the nonce and the
/// ciphertext.
pub fn set_flash(
    conn: &mut DbConn,
    key: &SecretKey,
    row: &SessionRow,
    secret: &SessionSecret,
    kind: FlashKind,
    text: &str,
) -> Result<()> {
    let k = key.mac(&[b"flash", secret.expose().as_bytes()]).finalize().into_bytes();
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| Error::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    let mut ct = text.as_bytes().to_vec();
    keystream_xor(&k, &nonce, &mut ct);
    let tag = flash_tag(&k, &nonce, &ct).finalize().into_bytes();
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ct);
    sealed.extend_from_slice(&tag);
    db::session::set_flash(conn, row.id, Some(&format!("{}:{}", kind.name(), B64.encode(sealed))))?;
    Ok(())
}

/// The flash of `kind`, once: read, cleared, and decrypted (none when
/// there is none of that kind, or it does not open under this session's
/// key).
pub fn take_flash(
    conn: &mut DbConn,
    key: &SecretKey,
    row: &SessionRow,
    secret: &SessionSecret,
    kind: FlashKind,
) -> Result<Option<String>> {
    let Some(sealed) = db::session::take_flash(conn, row.id, &kind.name())? else {
        return Ok(None);
    };
    let Ok(bytes) = B64.decode(sealed) else {
        return Ok(None);
    };
    if bytes.len() < 16 + 32 {
        return Ok(None);
    }
    let k = key.mac(&[b"flash", secret.expose().as_bytes()]).finalize().into_bytes();
    let (nonce, rest) = bytes.split_at(16);
    let (ct, tag) = rest.split_at(rest.len() - 32);
    if flash_tag(&k, nonce, ct).verify_slice(tag).is_err() {
        return Ok(None);
    }
    let mut pt = ct.to_vec();
    keystream_xor(&k, nonce, &mut pt);
    Ok(String::from_utf8(pt).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_their_basis() {
        let key = SecretKey::from_bytes([3; 32]);
        let t = csrf_token(&key, "session-a");
        assert!(csrf_ok(&key, "session-a", &t));
        assert!(!csrf_ok(&key, "session-b", &t), "another session's token");
        assert!(!csrf_ok(&key, "session-a", ""), "no token");
        assert!(!csrf_ok(&key, "session-a", "zz"), "not hex");
        assert!(
            !csrf_ok(&SecretKey::from_bytes([4; 32]), "session-a", &t),
            "another instance key"
        );
    }

    #[test]
    fn a_secret_is_random_and_its_debug_shows_nothing() {
        let a = SessionSecret::generate().unwrap();
        let b = SessionSecret::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(format!("{a:?}"), "SessionSecret(..)");
    }

    #[test]
    fn the_keystream_round_trips_and_depends_on_the_key() {
        let mut data = b"glpat-abcdefghijklmnopqrst and more than one block of text".to_vec();
        let orig = data.clone();
        keystream_xor(b"k1", b"nonce", &mut data);
        assert_ne!(data, orig);
        let mut other = data.clone();
        keystream_xor(b"k1", b"nonce", &mut data);
        assert_eq!(data, orig);
        keystream_xor(b"k2", b"nonce", &mut other);
        assert_ne!(other, orig);
    }
}
