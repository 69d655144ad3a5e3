//! The `project_members` table: GitLab roles per repository.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::project_members as pm;
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pm)]
pub struct Member {
    pub project_id: i64,
    pub user_id: i64,
    pub access_level: i32,
    pub created_at: NaiveDateTime,
    /// The membership gives no access from this date (00:00 UTC) on.
    pub expires_at: Option<NaiveDate>,
}

impl Member {
    /// Whether the membership still gives its access on `today` (UTC).
    pub fn active_on(&self, today: NaiveDate) -> bool {
        self.expires_at.is_none_or(|e| today < e)
    }
}

pub fn insert(conn: &mut DbConn, m: &Member) -> QueryResult<usize> {
    diesel::insert_into(pm::table).values(m).execute(conn)
}

pub fn find(conn: &mut DbConn, project_id: i64, user_id: i64) -> QueryResult<Option<Member>> {
    pm::table
        .find((project_id, user_id))
        .select(Member::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut DbConn, project_id: i64) -> QueryResult<Vec<Member>> {
    pm::table
        .filter(pm::project_id.eq(project_id))
        .order(pm::user_id)
        .select(Member::as_select())
        .load(conn)
}

pub fn set_level(conn: &mut DbConn, project_id: i64, user_id: i64, level: i32) -> QueryResult<usize> {
    diesel::update(pm::table.find((project_id, user_id)))
        .set(pm::access_level.eq(level))
        .execute(conn)
}

pub fn set_expiry(conn: &mut DbConn, project_id: i64, user_id: i64, at: Option<NaiveDate>) -> QueryResult<usize> {
    diesel::update(pm::table.find((project_id, user_id)))
        .set(pm::expires_at.eq(at))
        .execute(conn)
}

pub fn delete(conn: &mut DbConn, project_id: i64, user_id: i64) -> QueryResult<usize> {
    diesel::delete(pm::table.find((project_id, user_id))).execute(conn)
}

/// Every membership of one user.
pub fn list_for_user(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<Member>> {
    pm::table
        .filter(pm::user_id.eq(user_id))
        .select(Member::as_select())
        .load(conn)
}
