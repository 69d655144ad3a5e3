//! The `audit_events` table: the audit log, one row per recorded event.
//! What goes in a row, and that no secret does, is `service::audit`'s rule.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::page::{order_all, window, Listing};
use super::schema::audit_events as a;
use super::{DbConn, MultiBackend};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = a)]
pub struct AuditEvent {
    pub id: i64,
    pub author_id: Option<i64>,
    pub author_name: String,
    pub entity_type: String,
    pub entity_id: i64,
    pub entity_path: Option<String>,
    pub event_name: String,
    pub target_type: Option<String>,
    pub target_id: Option<i64>,
    pub target_details: Option<String>,
    pub ip_address: Option<String>,
    /// A JSON object: the event's own fields.
    pub details: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = a)]
pub struct NewAuditEvent<'a> {
    pub author_id: Option<i64>,
    pub author_name: &'a str,
    pub entity_type: &'a str,
    pub entity_id: i64,
    pub entity_path: Option<&'a str>,
    pub event_name: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<i64>,
    pub target_details: Option<&'a str>,
    pub ip_address: Option<&'a str>,
    pub details: &'a str,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, new: &NewAuditEvent) -> QueryResult<usize> {
    diesel::insert_into(a::table).values(new).execute(conn)
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<AuditEvent>> {
    a::table.find(id).select(AuditEvent::as_select()).first(conn).optional()
}

/// Deletes the events created before `cutoff`; answers how many.
pub fn delete_before(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(a::table.filter(a::created_at.lt(cutoff))).execute(conn)
}

/// A list of events, newest first (by id), filtered in SQL. Time bounds
/// are inclusive, as GitLab's.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub created_after: Option<NaiveDateTime>,
    pub created_before: Option<NaiveDateTime>,
    pub entity_type: Option<String>,
    pub entity_id: Option<i64>,
    /// Keyset pages: only ids above / below these.
    pub id_after: Option<i64>,
    pub id_before: Option<i64>,
    /// Oldest first instead.
    pub ascending: bool,
}

impl AuditQuery {
    fn filtered(&self) -> a::BoxedQuery<'static, MultiBackend> {
        let mut q = a::table.into_boxed();
        if let Some(t) = self.created_after {
            q = q.filter(a::created_at.ge(t));
        }
        if let Some(t) = self.created_before {
            q = q.filter(a::created_at.le(t));
        }
        if let Some(t) = &self.entity_type {
            q = q.filter(a::entity_type.eq(t.clone()));
        }
        if let Some(id) = self.entity_id {
            q = q.filter(a::entity_id.eq(id));
        }
        if let Some(id) = self.id_after {
            q = q.filter(a::id.gt(id));
        }
        if let Some(id) = self.id_before {
            q = q.filter(a::id.lt(id));
        }
        q
    }
}

impl Listing for AuditQuery {
    type Row = AuditEvent;

    fn rows(&self, conn: &mut DbConn, offset: i64, limit: Option<i64>) -> QueryResult<Vec<AuditEvent>> {
        let q = self.filtered().select(AuditEvent::as_select());
        let q = order_all!(q, !self.ascending, a::id);
        window!(q, offset, limit).load(conn)
    }

    fn count_upto(&self, conn: &mut DbConn, limit: i64) -> QueryResult<i64> {
        let ids: Vec<i64> = self.filtered().select(a::id).limit(limit).load(conn)?;
        Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
    }

    fn row_id(row: &AuditEvent) -> i64 {
        row.id
    }
}
