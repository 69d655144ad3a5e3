//! The `project_members` table: GitLab roles per repository.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::page::{contains_pattern, folded, window};
use super::schema::{project_members as pm, users};
use super::user::User;
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

/// The members of a project whose user matches a filter, by user id: the
/// rows under a project's member list (`service::repos::Members` puts the
/// owner first).
#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    pub project_id: i64,
    /// Left out (the owner, listed apart).
    pub except_user: Option<i64>,
    /// Lowercase text the username or the name contains.
    pub query: Option<String>,
    pub user_ids: Option<Vec<i64>>,
}

/// Filters a query on `users` (alone or joined) by a [`MemberFilter`]'s
/// user conditions: the one place they are written.
macro_rules! user_conditions {
    ($q:expr, $f:expr, $conn:expr) => {{
        let (mut q, conn) = ($q, $conn);
        if let Some(s) = &$f.query {
            let p = contains_pattern(s);
            q = q.filter(
                folded(conn, users::username)
                    .like(p.clone())
                    .escape('\\')
                    .or(folded(conn, users::name).like(p).escape('\\')),
            );
        }
        if let Some(ids) = &$f.user_ids {
            q = q.filter(users::id.eq_any(ids.clone()));
        }
        q
    }};
}

impl MemberFilter {
    /// User `id` if they match the filter's user conditions.
    pub fn user_matching(&self, conn: &mut DbConn, id: i64) -> QueryResult<Option<User>> {
        let q = user_conditions!(users::table.filter(users::id.eq(id)).into_boxed(), self, &*conn);
        q.select(User::as_select()).first(conn).optional()
    }

    fn filtered(
        &self,
        conn: &DbConn,
    ) -> diesel::dsl::IntoBoxed<'static, diesel::dsl::InnerJoin<pm::table, users::table>, super::MultiBackend> {
        let mut q = pm::table.inner_join(users::table).into_boxed();
        q = q.filter(pm::project_id.eq(self.project_id));
        if let Some(u) = self.except_user {
            q = q.filter(pm::user_id.ne(u));
        }
        user_conditions!(q, self, conn)
    }

    /// The matching members from `offset` on, by user id.
    pub fn rows(&self, conn: &mut DbConn, offset: i64, limit: Option<i64>) -> QueryResult<Vec<(User, Member)>> {
        let q = self
            .filtered(conn)
            .select((User::as_select(), Member::as_select()))
            .order_by(pm::user_id.asc());
        window!(q, offset, limit).load(conn)
    }

    /// How many members match, counting no further than `limit`.
    pub fn count_upto(&self, conn: &mut DbConn, limit: i64) -> QueryResult<i64> {
        let ids: Vec<i64> = self.filtered(conn).select(pm::user_id).limit(limit).load(conn)?;
        Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
    }
}
