//! The `notifications` and `job_runs` tables: mail notices about tokens,
//! claimed before they are sent so that each goes once. The rules live in
//! `service::notify`.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{job_runs as j, notifications as n};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = n)]
pub struct Notification {
    pub id: i64,
    pub token_id: i64,
    pub kind: String,
    pub detail: Option<String>,
    pub created_at: NaiveDateTime,
    pub claimed_at: Option<NaiveDateTime>,
    pub sent_at: Option<NaiveDateTime>,
    pub outcome: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
}

/// Queues notice `kind` of `token_id`, unless that token has it already:
/// true when queued.
pub fn queue(
    conn: &mut DbConn,
    token_id: i64,
    kind: &str,
    detail: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let exists = n::table
        .filter(n::token_id.eq(token_id))
        .filter(n::kind.eq(kind))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if exists {
        return Ok(false);
    }
    let r = diesel::insert_into(n::table)
        .values((
            n::token_id.eq(token_id),
            n::kind.eq(kind),
            n::detail.eq(detail),
            n::created_at.eq(now),
            n::next_attempt_at.eq(now),
        ))
        .execute(conn);
    match r {
        Ok(_) => Ok(true),
        // Another instance queued it at the same moment.
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The ids of notices due at `now`: not sent, their next attempt due, and
/// unclaimed or claimed before `stale` (their sender died).
pub fn due(conn: &mut DbConn, now: NaiveDateTime, stale: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>> {
    n::table
        .filter(n::sent_at.is_null())
        .filter(n::next_attempt_at.le(now))
        .filter(n::claimed_at.is_null().or(n::claimed_at.lt(stale)))
        .order(n::id)
        .limit(limit)
        .select(n::id)
        .load(conn)
}

/// Claims notice `id` at `now` (compare-and-set: of two senders, one
/// wins): the notice when this caller won.
pub fn claim(
    conn: &mut DbConn,
    id: i64,
    now: NaiveDateTime,
    stale: NaiveDateTime,
) -> QueryResult<Option<Notification>> {
    let won = diesel::update(
        n::table
            .find(id)
            .filter(n::sent_at.is_null())
            .filter(n::claimed_at.is_null().or(n::claimed_at.lt(stale))),
    )
    .set((n::claimed_at.eq(Some(now)), n::attempts.eq(n::attempts + 1)))
    .execute(conn)?;
    if won != 1 {
        return Ok(None);
    }
    n::table
        .find(id)
        .select(Notification::as_select())
        .first(conn)
        .optional()
}

/// Sent (or skipped, as `outcome` says) at `now`.
pub fn finish(conn: &mut DbConn, id: i64, outcome: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(n::table.find(id))
        .set((n::sent_at.eq(Some(now)), n::outcome.eq(Some(outcome))))
        .execute(conn)
}

/// Not sent: released for another attempt at `next`.
pub fn retry_at(conn: &mut DbConn, id: i64, next: NaiveDateTime, why: &str) -> QueryResult<usize> {
    diesel::update(n::table.find(id))
        .set((
            n::claimed_at.eq(None::<NaiveDateTime>),
            n::next_attempt_at.eq(next),
            n::outcome.eq(Some(why)),
        ))
        .execute(conn)
}

pub fn list_for_token(conn: &mut DbConn, token_id: i64) -> QueryResult<Vec<Notification>> {
    n::table
        .filter(n::token_id.eq(token_id))
        .order(n::id)
        .select(Notification::as_select())
        .load(conn)
}

/// Claims the run of daily job `name` for `day`: true for the one caller
/// that moves it forward (of several instances, one runs the job).
pub fn claim_day(conn: &mut DbConn, name: &str, day: NaiveDate) -> QueryResult<bool> {
    let moved = diesel::update(j::table.find(name).filter(j::last_day.lt(day)))
        .set(j::last_day.eq(day))
        .execute(conn)?;
    if moved == 1 {
        return Ok(true);
    }
    let exists = j::table.find(name).count().get_result::<i64>(conn)? > 0;
    if exists {
        return Ok(false);
    }
    match diesel::insert_into(j::table)
        .values((j::name.eq(name), j::last_day.eq(day)))
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
