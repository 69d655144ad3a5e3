//! The `personal_access_tokens` table. Only the keyed digest of a token is
//! ever stored here.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::page::{binary, contains_pattern, folded, order_all, window, Listing};
use super::schema::{lower, personal_access_tokens as pat};
use super::{DbConn, MultiBackend};

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
    /// The repository patterns the token is limited to, one a line
    /// (`auth::restriction`); NULL: no restriction.
    pub repositories: Option<String>,
    /// The refs it may push to, one pattern a line; NULL: any.
    pub push_ref_patterns: Option<String>,
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
    pub repositories: Option<&'a str>,
    pub push_ref_patterns: Option<&'a str>,
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

/// Every token (of `user_id`, if given), in id order.
pub fn list(conn: &mut DbConn, user_id: Option<i64>) -> QueryResult<Vec<TokenRow>> {
    TokenQuery {
        user_id,
        ..TokenQuery::default()
    }
    .all(conn)
}

/// Tokens not revoked whose expiry falls from `from` to `to` (both
/// included), by id: what the daily expiry checks look at.
pub fn live_expiring_between(conn: &mut DbConn, from: NaiveDate, to: NaiveDate) -> QueryResult<Vec<TokenRow>> {
    pat::table
        .filter(pat::revoked.eq(false))
        .filter(pat::expires_at.ge(from))
        .filter(pat::expires_at.le(to))
        .order(pat::id.asc())
        .select(TokenRow::as_select())
        .load(conn)
}

/// What a token list is ordered by. Ties are broken by id, ascending; a
/// missing date sorts after every date ascending, before them descending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenOrder {
    #[default]
    Id,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    /// Case-insensitively.
    Name,
}

/// Whether a token is active on `today`: not revoked and, while expiry is
/// enforced, not expired (`service::tokens::is_active` in SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveOn {
    pub active: bool,
    pub today: NaiveDate,
    pub enforce_expiry: bool,
}

/// A list of tokens, filtered and ordered in SQL. Bounds are GitLab's:
/// inclusive but for `expires_before`; a bound on a missing date matches
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct TokenQuery {
    pub user_id: Option<i64>,
    pub impersonation: Option<bool>,
    pub revoked: Option<bool>,
    pub state: Option<ActiveOn>,
    pub created_before: Option<NaiveDateTime>,
    pub created_after: Option<NaiveDateTime>,
    pub last_used_before: Option<NaiveDateTime>,
    pub last_used_after: Option<NaiveDateTime>,
    pub expires_before: Option<NaiveDate>,
    pub expires_after: Option<NaiveDate>,
    /// Lowercase text the name contains.
    pub search: Option<String>,
    pub order: TokenOrder,
    pub desc: bool,
}

impl TokenQuery {
    fn filtered(&self, conn: &DbConn) -> pat::BoxedQuery<'static, MultiBackend> {
        let mut q = pat::table.into_boxed();
        if let Some(uid) = self.user_id {
            q = q.filter(pat::user_id.eq(uid));
        }
        if let Some(i) = self.impersonation {
            q = q.filter(pat::impersonation.eq(i));
        }
        if let Some(r) = self.revoked {
            q = q.filter(pat::revoked.eq(r));
        }
        if let Some(s) = self.state {
            if s.active {
                q = q.filter(pat::revoked.eq(false));
                if s.enforce_expiry {
                    q = q.filter(pat::expires_at.is_null().or(pat::expires_at.gt(s.today)));
                }
            } else if s.enforce_expiry {
                q = q.filter(pat::revoked.eq(true).or(pat::expires_at.le(s.today)));
            } else {
                q = q.filter(pat::revoked.eq(true));
            }
        }
        if let Some(d) = self.created_before {
            q = q.filter(pat::created_at.le(d));
        }
        if let Some(d) = self.created_after {
            q = q.filter(pat::created_at.ge(d));
        }
        if let Some(d) = self.last_used_before {
            q = q.filter(pat::last_used_at.le(d));
        }
        if let Some(d) = self.last_used_after {
            q = q.filter(pat::last_used_at.ge(d));
        }
        if let Some(d) = self.expires_before {
            q = q.filter(pat::expires_at.lt(d));
        }
        if let Some(d) = self.expires_after {
            q = q.filter(pat::expires_at.ge(d));
        }
        if let Some(s) = &self.search {
            q = q.filter(folded(conn, pat::name).like(contains_pattern(s)).escape('\\'));
        }
        q
    }
}

impl Listing for TokenQuery {
    type Row = TokenRow;

    fn rows(&self, conn: &mut DbConn, offset: i64, limit: Option<i64>) -> QueryResult<Vec<TokenRow>> {
        let q = self.filtered(conn).select(TokenRow::as_select());
        let q = match self.order {
            TokenOrder::Id => order_all!(q, self.desc, pat::id),
            TokenOrder::CreatedAt => order_all!(q, self.desc, pat::created_at).then_order_by(pat::id.asc()),
            TokenOrder::ExpiresAt => {
                order_all!(q, self.desc, pat::expires_at.is_null(), pat::expires_at).then_order_by(pat::id.asc())
            }
            TokenOrder::LastUsedAt => {
                order_all!(q, self.desc, pat::last_used_at.is_null(), pat::last_used_at).then_order_by(pat::id.asc())
            }
            TokenOrder::Name => order_all!(q, self.desc, binary(conn, lower(pat::name))).then_order_by(pat::id.asc()),
        };
        window!(q, offset, limit).load(conn)
    }

    fn count_upto(&self, conn: &mut DbConn, limit: i64) -> QueryResult<i64> {
        let ids: Vec<i64> = self.filtered(conn).select(pat::id).limit(limit).load(conn)?;
        Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
    }

    fn row_id(row: &TokenRow) -> i64 {
        row.id
    }
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
