//! The `auth_failures` table: failed authentications counted per key (a
//! client, `ip:...`, or an account, `user:...`), with the lock they led to.
//! The rules (which keys, how many, how long) live in `service::bans`.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::auth_failures as f;
use super::DbConn;

/// Until when `key` is locked, if it is at `now`.
pub fn locked_until(conn: &mut DbConn, key: &str, now: NaiveDateTime) -> QueryResult<Option<NaiveDateTime>> {
    let until: Option<Option<NaiveDateTime>> = f::table.find(key).select(f::locked_until).first(conn).optional()?;
    Ok(until.flatten().filter(|u| *u > now))
}

/// Counts one failure of `key` at `now`: failures older than `window`
/// (or from before a lock that has run out) are forgotten first; the
/// `max`-th locks the key for `lock`. Answers the lock, if this failure
/// made one. A key locked already is left as it is (no write).
pub fn record(
    conn: &mut DbConn,
    key: &str,
    now: NaiveDateTime,
    window: Duration,
    max: u32,
    lock: Duration,
) -> QueryResult<Option<NaiveDateTime>> {
    super::write_transaction(conn, |conn| {
        let row: Option<(i32, NaiveDateTime, Option<NaiveDateTime>)> = f::table
            .find(key)
            .select((f::failures, f::window_start, f::locked_until))
            .first(conn)
            .optional()?;
        let (mut failures, mut start) = match row {
            Some((_, _, Some(until))) if until > now => return Ok(None),
            Some((n, start, None)) if now - start < window => (n, start),
            _ => (0, now),
        };
        failures += 1;
        let locked = (failures >= i32::try_from(max).unwrap_or(i32::MAX)).then(|| now + lock);
        if locked.is_some() {
            // The next count starts afresh once the lock is over.
            start = now;
        }
        let expires = locked.unwrap_or(start + window);
        diesel::delete(f::table.filter(f::expires_at.lt(now))).execute(conn)?;
        let n = diesel::update(f::table.find(key))
            .set((
                f::failures.eq(failures),
                f::window_start.eq(start),
                f::locked_until.eq(locked),
                f::expires_at.eq(expires),
            ))
            .execute(conn)?;
        if n == 0 {
            diesel::insert_into(f::table)
                .values((
                    f::key.eq(key),
                    f::failures.eq(failures),
                    f::window_start.eq(start),
                    f::locked_until.eq(locked),
                    f::expires_at.eq(expires),
                ))
                .execute(conn)?;
        }
        Ok(locked)
    })
}

/// Forgets the failures of `key` unless it is locked now (a success does
/// not lift a lock).
pub fn clear(conn: &mut DbConn, key: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        f::table
            .find(key)
            .filter(f::locked_until.is_null().or(f::locked_until.le(now))),
    )
    .execute(conn)
}

/// How many keys (clients and accounts) are locked at `now`.
pub fn locked_count(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<i64> {
    f::table.filter(f::locked_until.gt(now)).count().get_result(conn)
}
