//! The `personal_access_tokens` table. Only the keyed digest of a token is
//! ever stored here.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::personal_access_tokens as pat;
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = pat)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub description: Option<String>,
    /// Space-separated scope names.
    pub scopes: String,
    pub token_digest: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDate>,
    pub revoked: bool,
    pub last_used_at: Option<NaiveDateTime>,
    /// JSON array of up to five IP strings, oldest first.
    pub last_used_ips: String,
    pub ips_updated_at: Option<NaiveDateTime>,
    pub impersonation: bool,
    pub previous_token_id: Option<i64>,
    pub expire_notification_delivered: bool,
    pub after_expiry_notification_delivered: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = pat)]
pub struct NewToken<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub scopes: &'a str,
    pub token_digest: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDate>,
    pub impersonation: bool,
    pub previous_token_id: Option<i64>,
}

pub fn insert(conn: &mut DbConn, new: &NewToken) -> QueryResult<TokenRow> {
    diesel::insert_into(pat::table).values(new).execute(conn)?;
    find_by_digest(conn, new.token_digest)?.ok_or(diesel::result::Error::NotFound)
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<TokenRow>> {
    pat::table.find(id).select(TokenRow::as_select()).first(conn).optional()
}

pub fn find_by_digest(conn: &mut DbConn, digest: &str) -> QueryResult<Option<TokenRow>> {
    pat::table
        .filter(pat::token_digest.eq(digest))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()
}

/// The token that a rotation of `id` created, if any.
pub fn find_successor(conn: &mut DbConn, id: i64) -> QueryResult<Option<TokenRow>> {
    pat::table
        .filter(pat::previous_token_id.eq(id))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut DbConn, user_id: Option<i64>) -> QueryResult<Vec<TokenRow>> {
    let mut q = pat::table.select(TokenRow::as_select()).order(pat::id).into_boxed();
    if let Some(uid) = user_id {
        q = q.filter(pat::user_id.eq(uid));
    }
    q.load(conn)
}

pub fn revoke(conn: &mut DbConn, id: i64) -> QueryResult<usize> {
    diesel::update(pat::table.find(id))
        .set(pat::revoked.eq(true))
        .execute(conn)
}

/// Revokes every token of `ids` that is not yet revoked.
pub fn revoke_all(conn: &mut DbConn, ids: &[i64]) -> QueryResult<usize> {
    diesel::update(pat::table.filter(pat::id.eq_any(ids)).filter(pat::revoked.eq(false)))
        .set(pat::revoked.eq(true))
        .execute(conn)
}

pub fn set_last_used_at(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(pat::table.find(id))
        .set(pat::last_used_at.eq(at))
        .execute(conn)
}

pub fn set_last_used_ips(conn: &mut DbConn, id: i64, ips_json: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(pat::table.find(id))
        .set((pat::last_used_ips.eq(ips_json), pat::ips_updated_at.eq(at)))
        .execute(conn)
}

/// Marks the GitLab-compatible "notified" flags: the expired notice
/// (`after_expiry`) or an expiring one.
pub fn set_notified(conn: &mut DbConn, id: i64, after_expiry: bool) -> QueryResult<usize> {
    let q = diesel::update(pat::table.find(id));
    if after_expiry {
        q.set(pat::after_expiry_notification_delivered.eq(true)).execute(conn)
    } else {
        q.set(pat::expire_notification_delivered.eq(true)).execute(conn)
    }
}
