//! The `projects` table: one row per hosted repository.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::page::{binary, contains_pattern, escape_like, folded, order_all, prefix_upper_bound, window, Listing};
use super::schema::{lower, project_members as pm, projects};
use super::{DbConn, MultiBackend};
use crate::auth::restriction::{RepoMatch, RepoPattern};

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

/// `lower(path)` as an indexed range: the paths that start with `prefix`
/// (lowercase), case-insensitively.
fn path_starts_with(
    conn: &DbConn,
    q: projects::BoxedQuery<'static, MultiBackend>,
    prefix: &str,
) -> projects::BoxedQuery<'static, MultiBackend> {
    let q = q.filter(binary(conn, lower(projects::path)).ge(prefix.to_string()));
    match prefix_upper_bound(prefix) {
        Some(upper) => q.filter(binary(conn, lower(projects::path)).lt(upper)),
        None => q,
    }
}

/// Whether any project's path starts with `prefix`, case-insensitively.
pub fn exists_under(conn: &mut DbConn, prefix: &str) -> QueryResult<bool> {
    let prefix = prefix.to_lowercase();
    let q = path_starts_with(conn, projects::table.into_boxed(), &prefix);
    let found: Vec<i64> = q.select(projects::id).limit(1).load(conn)?;
    Ok(!found.is_empty())
}

/// Whether a project other than `except` directly in namespace `ns`
/// (case-insensitively; not in a namespace nested below it) is named
/// `name` (exactly).
pub fn name_taken_in(conn: &mut DbConn, ns: &str, name: &str, except: Option<i64>) -> QueryResult<bool> {
    let prefix = format!("{}/", ns.to_lowercase());
    let mut q = path_starts_with(conn, projects::table.into_boxed(), &prefix)
        .filter(
            lower(projects::path)
                .not_like(format!("{}%/%", escape_like(&prefix)))
                .escape('\\'),
        )
        .filter(projects::name.eq(name.to_string()));
    if let Some(id) = except {
        q = q.filter(projects::id.ne(id));
    }
    let found: Vec<i64> = q.select(projects::id).limit(1).load(conn)?;
    Ok(!found.is_empty())
}

/// The ids of the projects `user` is a member of on `today`, at `min`
/// level or above (a subquery; boxed ones do not cross backends).
macro_rules! memberships {
    ($user:expr, $today:expr, $min:expr) => {
        pm::table
            .select(pm::project_id)
            .filter(pm::user_id.eq($user))
            .filter(pm::expires_at.is_null().or(pm::expires_at.gt($today)))
            .filter(pm::access_level.ge($min))
    };
}

/// Who lists projects, as visibility sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Anonymous,
    User { id: i64, is_admin: bool, blocked: bool },
}

/// What a project list is ordered by; `id` breaks ties, in the same
/// direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProjectOrder {
    Id,
    /// Case-insensitively.
    Name,
    /// Case-insensitively.
    Path,
    #[default]
    CreatedAt,
    LastActivityAt,
}

/// A list of projects, filtered and ordered in SQL. Visibility is
/// `service::access::access`'s `see`: administrators see all; anyone
/// public projects; the signed-in internal ones; the owner and the members
/// (while their membership lasts) private ones; a blocked user none.
#[derive(Debug, Clone)]
pub struct ProjectQuery {
    pub viewer: Viewer,
    /// The day memberships are judged on.
    pub today: NaiveDate,
    /// Only the viewer's own projects.
    pub owned: bool,
    /// Only projects the viewer owns or is a member of.
    pub membership: bool,
    /// Only projects where the viewer's own level (owner 50, else the
    /// membership's) is at least this.
    pub min_access_level: Option<i32>,
    pub visibility: Option<String>,
    /// Lowercase text the name or the path contains.
    pub search: Option<String>,
    /// Matches none (filters for what gitpat has not: stars, archives).
    pub none: bool,
    /// Ids above / below (keyset cursors).
    pub id_after: Option<i64>,
    pub id_before: Option<i64>,
    pub order: ProjectOrder,
    pub desc: bool,
    /// A restricted token's repository patterns: only the projects they
    /// match (`None`: no restriction).
    pub repositories: Option<Vec<RepoPattern>>,
}

/// A condition on a project row, built at run time.
type Condition = Box<dyn BoxableExpression<projects::table, MultiBackend, SqlType = diesel::sql_types::Bool>>;

/// The projects `pattern` matches (`RepoPattern::matches` in SQL), case
/// folded as each backend needs.
fn matching(conn: &DbConn, pattern: &RepoPattern) -> Condition {
    let (kind, base) = pattern.shape();
    let under = format!("{}%", escape_like(base));
    match kind {
        RepoMatch::Exact => Box::new(lower(projects::path).eq(base.to_string())),
        RepoMatch::Descendant => Box::new(folded(conn, projects::path).like(under).escape('\\')),
        RepoMatch::Child => Box::new(
            folded(conn, projects::path).like(under).escape('\\').and(
                folded(conn, projects::path)
                    .not_like(format!("{}%/%", escape_like(base)))
                    .escape('\\'),
            ),
        ),
    }
}

impl ProjectQuery {
    /// Every project `viewer` may see, in id order.
    pub fn visible_to(viewer: Viewer, today: NaiveDate) -> ProjectQuery {
        ProjectQuery {
            viewer,
            today,
            owned: false,
            membership: false,
            min_access_level: None,
            visibility: None,
            search: None,
            none: false,
            id_after: None,
            id_before: None,
            order: ProjectOrder::Id,
            desc: false,
            repositories: None,
        }
    }

    fn filtered(&self, conn: &DbConn) -> projects::BoxedQuery<'static, MultiBackend> {
        let mut q = projects::table.into_boxed();
        let me = match self.viewer {
            Viewer::User { blocked: true, .. } => None,
            Viewer::User { id, .. } => Some(id),
            Viewer::Anonymous => None,
        };
        let nothing = self.none
            || matches!(self.viewer, Viewer::User { blocked: true, .. })
            || (me.is_none() && (self.owned || self.membership || self.min_access_level.is_some()));
        if nothing {
            return q.filter(projects::id.eq_any(Vec::<i64>::new()));
        }
        match self.viewer {
            Viewer::Anonymous => q = q.filter(projects::visibility.eq("public")),
            Viewer::User { is_admin: true, .. } => {}
            Viewer::User { id, .. } => {
                q = q.filter(
                    projects::visibility
                        .ne("private")
                        .or(projects::owner_id.eq(id))
                        .or(projects::id.eq_any(memberships!(id, self.today, 0))),
                )
            }
        }
        if let Some(id) = me {
            if self.owned {
                q = q.filter(projects::owner_id.eq(id));
            }
            if self.membership {
                q = q.filter(
                    projects::owner_id
                        .eq(id)
                        .or(projects::id.eq_any(memberships!(id, self.today, 0))),
                );
            }
            if let Some(min) = self.min_access_level {
                // The owner's level is the highest there is.
                q = q.filter(
                    projects::owner_id
                        .eq(id)
                        .or(projects::id.eq_any(memberships!(id, self.today, min))),
                );
            }
        }
        if let Some(v) = &self.visibility {
            q = q.filter(projects::visibility.eq(v.clone()));
        }
        if let Some(s) = &self.search {
            let p = contains_pattern(s);
            q = q.filter(
                folded(conn, projects::name)
                    .like(p.clone())
                    .escape('\\')
                    .or(folded(conn, projects::path).like(p).escape('\\')),
            );
        }
        if let Some(patterns) = &self.repositories {
            let any = patterns
                .iter()
                .map(|p| matching(conn, p))
                .reduce(|a, b| Box::new(a.or(b)) as Condition);
            q = match any {
                Some(c) => q.filter(c),
                None => q.filter(projects::id.eq_any(Vec::<i64>::new())),
            };
        }
        if let Some(id) = self.id_after {
            q = q.filter(projects::id.gt(id));
        }
        if let Some(id) = self.id_before {
            q = q.filter(projects::id.lt(id));
        }
        q
    }
}

impl Listing for ProjectQuery {
    type Row = Project;

    fn rows(&self, conn: &mut DbConn, offset: i64, limit: Option<i64>) -> QueryResult<Vec<Project>> {
        let q = self.filtered(conn).select(Project::as_select());
        let q = match self.order {
            ProjectOrder::Id => order_all!(q, self.desc, projects::id),
            ProjectOrder::Name => order_all!(q, self.desc, binary(conn, lower(projects::name)), projects::id),
            ProjectOrder::Path => order_all!(q, self.desc, binary(conn, lower(projects::path)), projects::id),
            ProjectOrder::CreatedAt => order_all!(q, self.desc, projects::created_at, projects::id),
            ProjectOrder::LastActivityAt => order_all!(q, self.desc, projects::last_activity_at, projects::id),
        };
        window!(q, offset, limit).load(conn)
    }

    fn count_upto(&self, conn: &mut DbConn, limit: i64) -> QueryResult<i64> {
        let ids: Vec<i64> = self.filtered(conn).select(projects::id).limit(limit).load(conn)?;
        Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
    }

    fn row_id(row: &Project) -> i64 {
        row.id
    }
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
