//! The `sessions` table, and the users' last accepted TOTP step. The rules
//! (digests, expiry, the flash's encryption) live in `service::sessions`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{sessions as s, users};
use super::DbConn;

/// `Debug` leaves out the digest and the flash.
#[derive(Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = s)]
pub struct SessionRow {
    pub id: i64,
    pub digest: String,
    pub user_id: i64,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub two_factor_pending: bool,
    pub flash: Option<String>,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .field("two_factor_pending", &self.two_factor_pending)
            .finish_non_exhaustive()
    }
}

#[derive(Insertable)]
#[diesel(table_name = s)]
pub struct NewSession<'a> {
    pub digest: &'a str,
    pub user_id: i64,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub two_factor_pending: bool,
}

pub fn insert(conn: &mut DbConn, new: &NewSession) -> QueryResult<SessionRow> {
    diesel::insert_into(s::table).values(new).execute(conn)?;
    find_by_digest(conn, new.digest)?.ok_or(diesel::result::Error::NotFound)
}

pub fn find_by_digest(conn: &mut DbConn, digest: &str) -> QueryResult<Option<SessionRow>> {
    s::table
        .filter(s::digest.eq(digest))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// A user's sessions that have not expired at `now`, the newest first.
pub fn list_live(conn: &mut DbConn, user_id: i64, now: NaiveDateTime) -> QueryResult<Vec<SessionRow>> {
    s::table
        .filter(s::user_id.eq(user_id))
        .filter(s::expires_at.gt(now))
        .filter(s::two_factor_pending.eq(false))
        .order(s::last_seen_at.desc())
        .select(SessionRow::as_select())
        .load(conn)
}

/// Seen at `at`, now valid until `expires_at`.
pub fn touch(conn: &mut DbConn, id: i64, at: NaiveDateTime, expires_at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(s::table.find(id))
        .set((s::last_seen_at.eq(at), s::expires_at.eq(expires_at)))
        .execute(conn)
}

/// The second factor passed: the session is a full one from now on, with a
/// new digest (the pending cookie's id is not the signed-in one).
pub fn promote(conn: &mut DbConn, id: i64, digest: &str, expires_at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(s::table.find(id).filter(s::two_factor_pending.eq(true)))
        .set((
            s::digest.eq(digest),
            s::two_factor_pending.eq(false),
            s::expires_at.eq(expires_at),
        ))
        .execute(conn)
}

pub fn set_flash(conn: &mut DbConn, id: i64, flash: Option<&str>) -> QueryResult<usize> {
    diesel::update(s::table.find(id)).set(s::flash.eq(flash)).execute(conn)
}

/// The flash, taken if it is of `kind` (it starts `<kind>:`): read, then
/// cleared by compare-and-set, so that of two readers at once only one
/// gets it. A flash of another kind stays for its own page.
pub fn take_flash(conn: &mut DbConn, id: i64, kind: &str) -> QueryResult<Option<String>> {
    let flash: Option<Option<String>> = s::table.find(id).select(s::flash).first(conn).optional()?;
    let Some(value) = flash.flatten() else {
        return Ok(None);
    };
    let Some(rest) = value.strip_prefix(&format!("{kind}:")).map(str::to_string) else {
        return Ok(None);
    };
    let taken = diesel::update(s::table.find(id).filter(s::flash.eq(&value)))
        .set(s::flash.eq(None::<String>))
        .execute(conn)?;
    Ok((taken == 1).then_some(rest))
}

/// Deletes session `id` of `user_id`: how many went (0 or 1).
pub fn delete(conn: &mut DbConn, user_id: i64, id: i64) -> QueryResult<usize> {
    diesel::delete(s::table.filter(s::id.eq(id)).filter(s::user_id.eq(user_id))).execute(conn)
}

/// Deletes every session of `user_id`.
pub fn delete_all(conn: &mut DbConn, user_id: i64) -> QueryResult<usize> {
    diesel::delete(s::table.filter(s::user_id.eq(user_id))).execute(conn)
}

/// Deletes the sessions that expired before `now`.
pub fn delete_expired(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(s::table.filter(s::expires_at.le(now))).execute(conn)
}

/// Records that `user_id` used the TOTP code of time step `step`, unless a
/// code of that step or a later one was used already: true when recorded
/// (the code may be accepted), false for a replay.
pub fn claim_otp_step(conn: &mut DbConn, user_id: i64, step: i64) -> QueryResult<bool> {
    let n = diesel::update(
        users::table
            .find(user_id)
            .filter(users::otp_last_step.is_null().or(users::otp_last_step.lt(step))),
    )
    .set(users::otp_last_step.eq(step))
    .execute(conn)?;
    Ok(n == 1)
}

/// Replaces the recovery codes of `user_id` with `digests`.
pub fn replace_recovery_codes(conn: &mut DbConn, user_id: i64, digests: &[String]) -> QueryResult<()> {
    use super::schema::recovery_codes as r;
    diesel::delete(r::table.filter(r::user_id.eq(user_id))).execute(conn)?;
    for d in digests {
        diesel::insert_into(r::table)
            .values((r::user_id.eq(user_id), r::digest.eq(d)))
            .execute(conn)?;
    }
    Ok(())
}

/// Uses the recovery code of `digest` of `user_id` at `at`: true when it
/// was there and unused (compare-and-set: only one use wins).
pub fn use_recovery_code(conn: &mut DbConn, user_id: i64, digest: &str, at: NaiveDateTime) -> QueryResult<bool> {
    use super::schema::recovery_codes as r;
    let n = diesel::update(
        r::table
            .filter(r::user_id.eq(user_id))
            .filter(r::digest.eq(digest))
            .filter(r::used_at.is_null()),
    )
    .set(r::used_at.eq(Some(at)))
    .execute(conn)?;
    Ok(n == 1)
}

/// How many unused recovery codes `user_id` has.
pub fn recovery_codes_left(conn: &mut DbConn, user_id: i64) -> QueryResult<i64> {
    use super::schema::recovery_codes as r;
    r::table
        .filter(r::user_id.eq(user_id))
        .filter(r::used_at.is_null())
        .count()
        .get_result(conn)
}
