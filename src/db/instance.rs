//! The `instance_facts` table: facts about the instance itself, a row
//! each, written once and then only read (the secret key's fingerprint).

use diesel::prelude::*;

use super::schema::instance_facts as f;
use super::DbConn;

/// The value recorded for `name`, if any.
pub fn get(conn: &mut DbConn, name: &str) -> QueryResult<Option<String>> {
    f::table.find(name).select(f::value).first(conn).optional()
}

/// Records `value` for `name` unless a value is there already; returns the
/// value that stays (another instance's, when it recorded first).
pub fn record_once(conn: &mut DbConn, name: &str, value: &str) -> QueryResult<String> {
    let first = super::write_transaction(conn, |conn| {
        if let Some(v) = get(conn, name)? {
            return Ok(v);
        }
        diesel::insert_into(f::table)
            .values((f::name.eq(name), f::value.eq(value)))
            .execute(conn)?;
        Ok(value.to_string())
    });
    match first {
        // Two PostgreSQL instances inserting at once: one wins the key.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            get(conn, name)?.ok_or(diesel::result::Error::NotFound)
        }
        other => other,
    }
}
