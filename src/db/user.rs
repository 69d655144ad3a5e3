//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::page::{binary, contains_pattern, folded, order_all, window, Listing};
use super::schema::{lower, users};
use super::{DbConn, MultiBackend};

/// `Debug` leaves out the password hash and the TOTP secret.
#[derive(Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub state: String,
    pub otp_secret: Option<String>,
    pub two_factor_enabled: bool,
    pub created_at: NaiveDateTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_admin", &self.is_admin)
            .field("state", &self.state)
            .field("two_factor_enabled", &self.two_factor_enabled)
            .finish_non_exhaustive()
    }
}

impl User {
    pub fn is_blocked(&self) -> bool {
        self.state == STATE_BLOCKED
    }
}

pub const STATE_ACTIVE: &str = "active";
pub const STATE_BLOCKED: &str = "blocked";

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: Option<&'a str>,
    pub is_admin: bool,
    pub state: &'a str,
    pub two_factor_enabled: bool,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, new: &NewUser) -> QueryResult<User> {
    diesel::insert_into(users::table).values(new).execute(conn)?;
    find_by_username(conn, new.username)?.ok_or(diesel::result::Error::NotFound)
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<User>> {
    users::table.find(id).select(User::as_select()).first(conn).optional()
}

/// Usernames are unique case-insensitively, as in GitLab.
pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(lower(users::username).eq(username.to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(lower(users::email).eq(email.to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    users::table.order(users::id).select(User::as_select()).load(conn)
}

/// The users of `ids`, by id (ids with no user left out).
pub fn by_ids(conn: &mut DbConn, ids: &[i64]) -> QueryResult<std::collections::HashMap<i64, User>> {
    let found: Vec<User> = users::table
        .filter(users::id.eq_any(ids))
        .select(User::as_select())
        .load(conn)?;
    Ok(found.into_iter().map(|u| (u.id, u)).collect())
}

/// What a user list is ordered by; `id` breaks ties, in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserOrder {
    #[default]
    Id,
    /// Case-insensitively.
    Name,
    /// Case-insensitively.
    Username,
    CreatedAt,
}

/// A list of users, filtered and ordered in SQL.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only users whose state is (`Some(true)`) or is not (`Some(false)`)
    /// blocked.
    pub blocked: Option<bool>,
    /// Matches none (contradictory filters).
    pub none: bool,
    /// Lowercase text that the username or the name (or, with
    /// `search_email`, the e-mail) contains.
    pub search: Option<String>,
    pub search_email: bool,
    /// The username, case-insensitively.
    pub username: Option<String>,
    /// Ids above / below (keyset cursors).
    pub id_after: Option<i64>,
    pub id_before: Option<i64>,
    pub order: UserOrder,
    pub desc: bool,
}

impl UserQuery {
    fn filtered(&self, conn: &DbConn) -> users::BoxedQuery<'static, MultiBackend> {
        let mut q = users::table.into_boxed();
        if self.none {
            q = q.filter(users::id.eq_any(Vec::<i64>::new()));
        }
        match self.blocked {
            Some(true) => q = q.filter(users::state.eq(STATE_BLOCKED)),
            Some(false) => q = q.filter(users::state.ne(STATE_BLOCKED)),
            None => {}
        }
        if let Some(s) = &self.search {
            let p = contains_pattern(s);
            let by_name = folded(conn, users::username)
                .like(p.clone())
                .escape('\\')
                .or(folded(conn, users::name).like(p.clone()).escape('\\'));
            q = if self.search_email {
                q.filter(by_name.or(folded(conn, users::email).like(p).escape('\\')))
            } else {
                q.filter(by_name)
            };
        }
        if let Some(u) = &self.username {
            q = q.filter(lower(users::username).eq(u.to_ascii_lowercase()));
        }
        if let Some(id) = self.id_after {
            q = q.filter(users::id.gt(id));
        }
        if let Some(id) = self.id_before {
            q = q.filter(users::id.lt(id));
        }
        q
    }
}

impl Listing for UserQuery {
    type Row = User;

    fn rows(&self, conn: &mut DbConn, offset: i64, limit: Option<i64>) -> QueryResult<Vec<User>> {
        let q = self.filtered(conn).select(User::as_select());
        let q = match self.order {
            UserOrder::Id => order_all!(q, self.desc, users::id),
            UserOrder::Name => order_all!(q, self.desc, binary(conn, lower(users::name)), users::id),
            UserOrder::Username => order_all!(q, self.desc, binary(conn, lower(users::username)), users::id),
            UserOrder::CreatedAt => order_all!(q, self.desc, users::created_at, users::id),
        };
        window!(q, offset, limit).load(conn)
    }

    fn count_upto(&self, conn: &mut DbConn, limit: i64) -> QueryResult<i64> {
        let ids: Vec<i64> = self.filtered(conn).select(users::id).limit(limit).load(conn)?;
        Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
    }

    fn row_id(row: &User) -> i64 {
        row.id
    }
}

pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn set_state(conn: &mut DbConn, id: i64, state: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set(users::state.eq(state))
        .execute(conn)
}

/// The fields an update may change; `None` keeps the stored value.
#[derive(Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub is_admin: Option<bool>,
    pub password_hash: Option<&'a str>,
}

impl UserChanges<'_> {
    pub fn is_empty(&self) -> bool {
        self.username.is_none()
            && self.email.is_none()
            && self.name.is_none()
            && self.is_admin.is_none()
            && self.password_hash.is_none()
    }
}

pub fn update(conn: &mut DbConn, id: i64, changes: &UserChanges) -> QueryResult<usize> {
    if changes.is_empty() {
        return Ok(0);
    }
    diesel::update(users::table.find(id)).set(changes).execute(conn)
}

pub fn set_two_factor(conn: &mut DbConn, id: i64, secret: Option<&str>) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::otp_secret.eq(secret),
            users::two_factor_enabled.eq(secret.is_some()),
        ))
        .execute(conn)
}

/// Turns two-factor authentication on with `secret` (an administrator's
/// enrolment): only while it is off.
pub fn enable_two_factor(conn: &mut DbConn, id: i64, secret: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(id).filter(users::two_factor_enabled.eq(false)))
        .set((users::otp_secret.eq(Some(secret)), users::two_factor_enabled.eq(true)))
        .execute(conn)
}

/// Keeps `secret` as the user's secret being enrolled (not yet on): only
/// while two-factor authentication is off.
pub fn set_pending_otp_secret(conn: &mut DbConn, id: i64, secret: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(id).filter(users::two_factor_enabled.eq(false)))
        .set(users::otp_secret.eq(Some(secret)))
        .execute(conn)
}

/// Every (id, stored TOTP secret) not starting with `sealed_prefix`.
pub fn otp_secrets_not_sealed(conn: &mut DbConn, sealed_prefix: &str) -> QueryResult<Vec<(i64, String)>> {
    let rows: Vec<(i64, Option<String>)> = users::table
        .filter(users::otp_secret.is_not_null())
        .filter(users::otp_secret.not_like(format!("{sealed_prefix}%")))
        .select((users::id, users::otp_secret))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(id, s)| s.map(|s| (id, s))).collect())
}

/// Replaces user `id`'s stored TOTP secret `old` with `new` (nothing if it
/// is no longer `old`).
pub fn replace_otp_secret(conn: &mut DbConn, id: i64, old: &str, new: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(id).filter(users::otp_secret.eq(old)))
        .set(users::otp_secret.eq(Some(new)))
        .execute(conn)
}

/// Turns two-factor authentication on with the secret being enrolled.
pub fn confirm_otp_secret(conn: &mut DbConn, id: i64, secret: &str) -> QueryResult<usize> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::two_factor_enabled.eq(false))
            .filter(users::otp_secret.eq(secret)),
    )
    .set(users::two_factor_enabled.eq(true))
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_credentials() {
        let u = User {
            id: 1,
            username: "alice".into(),
            email: "a@example.com".into(),
            name: "Alice".into(),
            password_hash: Some("$argon2id$SECRETHASH".into()),
            is_admin: false,
            state: STATE_ACTIVE.into(),
            otp_secret: Some("TOTPSECRETBASE32".into()),
            two_factor_enabled: true,
            created_at: chrono::DateTime::UNIX_EPOCH.naive_utc(),
        };
        let d = format!("{u:?}");
        assert!(d.contains("alice"));
        assert!(!d.contains("SECRETHASH") && !d.contains("TOTPSECRET"), "{d}");
    }
}
