//! Two-factor authentication, enrolled by the user (issue 14): a secret
//! kept as "being enrolled" until a code from it and the current password
//! confirm it; then [`RECOVERY_CODES`] one-time recovery codes, stored as
//! keyed digests. Disabling needs the password and a code; regenerating
//! the codes, the password. (The CLI's `user two-factor` stays, for an
//! administrator.)

use chrono::{DateTime, Utc};
use hmac::Mac;

use crate::auth::token::SecretKey;
use crate::auth::{password, seal, totp};
use crate::db::{self, user::User, DbConn};
use crate::error::{Error, Result};
use crate::service::audit::{self, Actor, Event};

pub const RECOVERY_CODES: usize = 10;
pub const WRONG_PASSWORD: &str = "The current password is wrong.";

/// A new secret to enrol for `user`, replacing any earlier one: each
/// showing of the enrolment page has its own, so a secret someone saw
/// once is not the one a later enrolment turns on. The database keeps it
/// sealed ([`sealed`]).
pub fn begin(conn: &mut DbConn, key: &SecretKey, user: &User) -> Result<String> {
    if user.two_factor_enabled {
        return Err(Error::Conflict("two-factor authentication is already on".into()));
    }
    let secret = totp::generate_secret();
    db::user::set_pending_otp_secret(conn, user.id, &sealed(key, user.id, &secret)?)?;
    Ok(secret)
}

/// What a sealed secret of user `id` is bound to.
fn context(id: i64) -> Vec<u8> {
    format!("users.otp_secret of user {id}").into_bytes()
}

/// `secret`, TOTP secret of user `id`, as the database keeps it: sealed
/// with the instance's key (`auth::seal`), never in clear.
pub fn sealed(key: &SecretKey, id: i64, secret: &str) -> Result<String> {
    seal::seal(key, &context(id), secret).map_err(|e| Error::Internal(anyhow::anyhow!(e)))
}

/// `user`'s TOTP secret (enrolled or being enrolled), opened.
pub fn secret_of(key: &SecretKey, user: &User) -> Result<Option<String>> {
    match &user.otp_secret {
        Some(stored) => seal::open(key, &context(user.id), stored)
            .map(Some)
            .map_err(|e| Error::Internal(anyhow::anyhow!("the two-factor secret of {}: {e}", user.username))),
        None => Ok(None),
    }
}

/// Seals the TOTP secrets an earlier version kept in clear (once, when
/// the instance opens). Returns how many.
pub fn seal_kept_in_clear(conn: &mut DbConn, key: &SecretKey) -> Result<usize> {
    let mut n = 0;
    // The prefix holds no LIKE wildcard (`_` or `%`).
    for (id, stored) in db::user::otp_secrets_not_sealed(conn, seal::PREFIX)? {
        // Compare-and-set: a secret changed meanwhile is left to its writer.
        n += db::user::replace_otp_secret(conn, id, &stored, &sealed(key, id, &stored)?)?;
    }
    Ok(n)
}

/// Does `pass` match `user`'s password? (argon2: call with no connection
/// held.)
pub fn password_matches(user: &User, pass: &str) -> bool {
    match &user.password_hash {
        Some(h) => password::verify(pass, h),
        None => {
            password::verify_dummy(pass);
            false
        }
    }
}

/// Is `code` a fresh TOTP code of `secret` for `user` at `now`? Claims
/// its time step (a second use of it is refused).
pub fn code_ok(conn: &mut DbConn, user: &User, secret: &str, code: &str, now: DateTime<Utc>) -> Result<bool> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    match totp::matching_step(secret, &code, now.timestamp().max(0) as u64)? {
        Some(step) => Ok(db::session::claim_otp_step(
            conn,
            user.id,
            i64::try_from(step).unwrap_or(i64::MAX),
        )?),
        None => Ok(false),
    }
}

fn recovery_digest(key: &SecretKey, code: &str) -> String {
    hex::encode(
        key.mac(&[b"recovery", normalize(code).as_bytes()])
            .finalize()
            .into_bytes(),
    )
}

/// A recovery code as typed, to compare: lower case, no spaces or dashes.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Does `code` look like a recovery code (16 hex digits)?
pub fn looks_like_recovery_code(code: &str) -> bool {
    let n = normalize(code);
    n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

/// New recovery codes for `user`, replacing the old: the codes, to show once.
pub fn new_recovery_codes(conn: &mut DbConn, key: &SecretKey, user: &User) -> Result<Vec<String>> {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| Error::Internal(anyhow::anyhow!("no randomness: {e}")))?;
        codes.push(hex::encode(b));
    }
    let digests: Vec<String> = codes.iter().map(|c| recovery_digest(key, c)).collect();
    db::write_transaction(conn, |conn| {
        Ok::<_, Error>(db::session::replace_recovery_codes(conn, user.id, &digests)?)
    })?;
    Ok(codes)
}

/// Uses one of `user`'s recovery codes: true once per code.
pub fn use_recovery_code(
    conn: &mut DbConn,
    key: &SecretKey,
    user: &User,
    code: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    Ok(db::session::use_recovery_code(
        conn,
        user.id,
        &recovery_digest(key, code),
        now.naive_utc(),
    )?)
}

pub fn recovery_codes_left(conn: &mut DbConn, user: &User) -> Result<i64> {
    Ok(db::session::recovery_codes_left(conn, user.id)?)
}

/// Confirms the enrolment with a code of the secret being enrolled (the
/// password was checked by the caller): two-factor authentication is on,
/// and the new recovery codes are returned, to show once. `Ok(Err(..))`
/// says why not.
pub fn confirm(
    conn: &mut DbConn,
    key: &SecretKey,
    actor: &Actor,
    user: &User,
    code: &str,
    now: DateTime<Utc>,
) -> Result<std::result::Result<Vec<String>, String>> {
    let (Some(stored), Some(secret)) = (
        user.otp_secret.clone().filter(|_| !user.two_factor_enabled),
        secret_of(key, user)?,
    ) else {
        return Ok(Err("Start the set-up again: there is no secret being enrolled.".into()));
    };
    if !code_ok(conn, user, &secret, code, now)? {
        return Ok(Err(crate::service::sign_in::INVALID_CODE.into()));
    }
    db::write_transaction(conn, |conn| {
        if db::user::confirm_otp_secret(conn, user.id, &stored)? != 1 {
            return Ok(Err("Start the set-up again: the secret changed meanwhile.".into()));
        }
        record_enabled(conn, actor, user, now)?;
        Ok(Ok(new_recovery_codes(conn, key, user)?))
    })
}

/// The audit event of two-factor authentication turned on for `user`.
pub fn record_enabled(conn: &mut DbConn, actor: &Actor, user: &User, now: DateTime<Utc>) -> Result<()> {
    let event = Event::on_user(
        "user_two_factor_enabled",
        user,
        format!("Enabled two-factor authentication for {}", user.username),
    );
    audit::record(conn, actor, event, now)
}

/// Turns two-factor authentication off and forgets the secret and the
/// recovery codes.
pub fn disable(conn: &mut DbConn, actor: &Actor, user: &User, now: DateTime<Utc>) -> Result<()> {
    db::write_transaction(conn, |conn| {
        db::user::set_two_factor(conn, user.id, None)?;
        db::session::replace_recovery_codes(conn, user.id, &[])?;
        let event = Event::on_user(
            "user_two_factor_disabled",
            user,
            format!("Disabled two-factor authentication for {}", user.username),
        );
        audit::record(conn, actor, event, now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_compare_as_typed() {
        let key = SecretKey::from_bytes([5; 32]);
        assert_eq!(
            recovery_digest(&key, "0123456789abcdef"),
            recovery_digest(&key, " 0123-4567-89AB-CDEF ")
        );
        assert_ne!(
            recovery_digest(&key, "0123456789abcdef"),
            recovery_digest(&key, "0123456789abcdee")
        );
        assert!(looks_like_recovery_code("0123-4567-89ab-cdef"));
        assert!(!looks_like_recovery_code("123456"));
        assert!(!looks_like_recovery_code("0123456789abcdeg"));
    }
}
