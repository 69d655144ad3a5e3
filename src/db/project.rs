//! The `projects` table: one row per hosted repository.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{lower, projects};
use super::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = projects)]
pub struct Project {
    pub id: i64,
    /// The full path, `namespace/name` (the namespace may be nested).
    pub path: String,
    pub name: String,
    pub description: Option<String>,
    pub owner_id: i64,
    pub visibility: String,
    pub default_branch: String,
    pub created_at: NaiveDateTime,
    pub last_activity_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = projects)]
pub struct NewProject<'a> {
    pub path: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub owner_id: i64,
    pub visibility: &'a str,
    pub default_branch: &'a str,
    pub created_at: NaiveDateTime,
    pub last_activity_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, new: &NewProject) -> QueryResult<Project> {
    diesel::insert_into(projects::table).values(new).execute(conn)?;
    find_by_path(conn, new.path)?.ok_or(diesel::result::Error::NotFound)
}

/// Paths are unique case-insensitively, as in GitLab.
pub fn find_by_path(conn: &mut DbConn, path: &str) -> QueryResult<Option<Project>> {
    projects::table
        .filter(lower(projects::path).eq(path.to_lowercase()))
        .select(Project::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<Project>> {
    projects::table
        .find(id)
        .select(Project::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<Project>> {
    projects::table
        .order(projects::id)
        .select(Project::as_select())
        .load(conn)
}

pub fn delete(conn: &mut DbConn, id: i64) -> QueryResult<usize> {
    diesel::delete(projects::table.find(id)).execute(conn)
}

pub fn set_default_branch(conn: &mut DbConn, id: i64, branch: &str) -> QueryResult<usize> {
    diesel::update(projects::table.find(id))
        .set(projects::default_branch.eq(branch))
        .execute(conn)
}

/// The fields an update may change; `None` keeps the stored value.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = projects)]
pub struct ProjectChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub visibility: Option<&'a str>,
    pub default_branch: Option<&'a str>,
}

pub fn update(conn: &mut DbConn, id: i64, c: &ProjectChanges) -> QueryResult<usize> {
    if c.name.is_none() && c.description.is_none() && c.visibility.is_none() && c.default_branch.is_none() {
        return Ok(0);
    }
    diesel::update(projects::table.find(id)).set(c).execute(conn)
}

pub fn touch(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(projects::table.find(id))
        .set(projects::last_activity_at.eq(at))
        .execute(conn)
}
