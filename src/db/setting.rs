//! The `application_settings` table: instance settings as key/value text,
//! shared by every gitpat instance on the same database. Parsing and
//! validation live in `crate::settings`.

use diesel::prelude::*;

use super::schema::application_settings as s;
use super::DbConn;

pub fn all(conn: &mut DbConn) -> QueryResult<Vec<(String, String)>> {
    s::table.select((s::key, s::value)).load(conn)
}

/// Insert or replace one setting.
pub fn put(conn: &mut DbConn, key: &str, value: &str) -> QueryResult<()> {
    super::write_transaction(conn, |conn| {
        let n = diesel::update(s::table.find(key))
            .set(s::value.eq(value))
            .execute(conn)?;
        if n == 0 {
            diesel::insert_into(s::table)
                .values((s::key.eq(key), s::value.eq(value)))
                .execute(conn)?;
        }
        Ok(())
    })
}

pub fn remove(conn: &mut DbConn, key: &str) -> QueryResult<usize> {
    diesel::delete(s::table.find(key)).execute(conn)
}
