//! Repositories: a row in `projects` and a bare repository on disk, created
//! and deleted so that a failure leaves neither behind; members and roles.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::db::member::{Member, MemberFilter};
use crate::db::page::Listing;
use crate::db::project::{NewProject, Project, ProjectQuery, Viewer};
use crate::db::{self, user::User, DbConn};
use crate::error::{Error, Result};
use crate::git::maintenance::{self, MaintenanceError};
use crate::git::store::{is_valid_branch_name, RepoPath, RepoStore};
use crate::service::access::{Role, VISIBILITIES};
use crate::service::{tokens::iso, users};

pub struct NewRepoRequest<'a> {
    pub path: &'a str,
    /// The display name; by default the last segment of the path.
    pub name: Option<&'a str>,
    /// The owner's username; by default the user named by the first segment.
    pub owner: Option<&'a str>,
    pub visibility: Option<&'a str>,
    pub default_branch: Option<&'a str>,
    pub description: Option<&'a str>,
    /// An existing repository whose branches and tags to import.
    pub import: Option<&'a Path>,
}

#[derive(Debug, Serialize)]
pub struct RepoView {
    pub id: i64,
    pub path_with_namespace: String,
    pub name: String,
    pub namespace: String,
    pub owner: String,
    pub visibility: String,
    pub default_branch: String,
    pub description: Option<String>,
    pub created_at: String,
}

impl RepoView {
    pub fn new(p: &Project, owner: &str) -> RepoView {
        let namespace = p
            .path
            .rsplit_once('/')
            .map(|(ns, _)| ns)
            .unwrap_or_default()
            .to_string();
        RepoView {
            id: p.id,
            path_with_namespace: p.path.clone(),
            name: p.name.clone(),
            namespace,
            owner: owner.to_string(),
            visibility: p.visibility.clone(),
            default_branch: p.default_branch.clone(),
            description: p.description.clone(),
            created_at: iso(p.created_at),
        }
    }
}

pub fn parse_path(path: &str) -> Result<RepoPath> {
    RepoPath::parse(path).map_err(|e| Error::Invalid(e.to_string()))
}

/// A project's display name: 1 to 255 characters, no control characters.
pub fn validate_name(n: &str) -> Result<()> {
    if n.trim().is_empty() || n.chars().count() > 255 || n.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "the name must have 1 to 255 characters and no control characters".into(),
        ));
    }
    Ok(())
}

fn validate_description(d: &str) -> Result<()> {
    if d.chars().count() > 2000 {
        return Err(Error::Invalid(
            "the description is too long (at most 2000 characters)".into(),
        ));
    }
    Ok(())
}

pub fn validate_visibility(v: &str) -> Result<()> {
    if VISIBILITIES.contains(&v) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "unknown visibility {v:?}; use private, internal or public"
        )))
    }
}

/// Creates a repository: validates everything first, builds the bare
/// repository aside, then inserts the row and moves the repository into
/// place in one transaction. A failure at any step leaves no row and no
/// folder.
pub fn create(conn: &mut DbConn, store: &RepoStore, req: &NewRepoRequest, now: DateTime<Utc>) -> Result<Project> {
    let path = parse_path(req.path)?;
    let visibility = req.visibility.unwrap_or("private");
    validate_visibility(visibility)?;
    if let Some(branch) = req.default_branch {
        if !is_valid_branch_name(branch) {
            return Err(Error::Invalid(format!("{branch:?} is not a valid branch name")));
        }
    }
    if let Some(d) = req.description {
        validate_description(d)?;
    }
    if let Some(n) = req.name {
        validate_name(n)?;
    }
    let owner: User = match req.owner {
        Some(name) => users::get(conn, name)?,
        None => db::user::find_by_username(conn, path.top_namespace())?.ok_or_else(|| {
            Error::Invalid(format!(
                "no user is named {:?}, so the repository needs an owner: pass --owner USER",
                path.top_namespace()
            ))
        })?,
    };
    if db::project::find_by_path(conn, path.as_str())?.is_some() {
        return Err(Error::Conflict(format!("the repository {path} already exists")));
    }
    if store.path_of(&path).exists() {
        return Err(Error::Conflict(format!(
            "{} already exists on disk but gitpat does not know it; move it away first",
            store.path_of(&path).display()
        )));
    }
    let staged = store
        .stage(req.default_branch, req.import)
        .map_err(|e| match req.import {
            Some(_) => Error::Invalid(format!("{e:#}")),
            None => Error::Internal(e),
        })?;
    let new = NewProject {
        path: path.as_str(),
        name: req.name.unwrap_or(path.name()),
        description: req.description,
        owner_id: owner.id,
        visibility,
        default_branch: &staged.default_branch.clone(),
        created_at: now.naive_utc(),
        last_activity_at: now.naive_utc(),
    };
    let mut installed = None;
    let result = crate::db::write_transaction(conn, |conn| {
        let project = db::project::insert(conn, &new).map_err(|e| {
            if db::is_unique_violation(&e) {
                Error::Conflict(format!("the repository {path} already exists"))
            } else {
                e.into()
            }
        })?;
        installed = Some(staged.install(store, &path)?);
        Ok(project)
    });
    if result.is_err() {
        if let Some(i) = installed {
            i.undo();
        }
    }
    result
}

/// What may change of a repository; `None` keeps it.
#[derive(Default)]
pub struct ProjectUpdate<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub visibility: Option<&'a str>,
    /// Moves HEAD too; the branch must exist unless the repository has none.
    pub default_branch: Option<&'a str>,
}

/// Validates, then updates the row and (for a new default branch) HEAD in
/// one transaction: if HEAD cannot move, the row is not changed either.
pub fn update(conn: &mut DbConn, store: &RepoStore, project: &Project, req: &ProjectUpdate) -> Result<Project> {
    if let Some(n) = req.name {
        validate_name(n)?;
    }
    if let Some(d) = req.description {
        validate_description(d)?;
    }
    if let Some(v) = req.visibility {
        validate_visibility(v)?;
    }
    let repo_path = parse_path(&project.path)?;
    let branch = req.default_branch.filter(|b| *b != project.default_branch);
    if let Some(b) = branch {
        if !is_valid_branch_name(b) {
            return Err(Error::Invalid(format!("{b:?} is not a valid branch name")));
        }
    }
    crate::db::write_transaction(conn, |conn| {
        let changes = db::project::ProjectChanges {
            name: req.name,
            description: req.description,
            visibility: req.visibility,
            default_branch: branch,
        };
        db::project::update(conn, project.id, &changes)?;
        if let Some(b) = branch {
            let repo = store.open(&repo_path)?;
            let has_branches = repo.references_glob("refs/heads/*")?.next().is_some();
            if has_branches && repo.find_branch(b, git2::BranchType::Local).is_err() {
                return Err(Error::Invalid(format!("the branch {b} does not exist")));
            }
            repo.set_head(&format!("refs/heads/{b}"))?;
        }
        db::project::find(conn, project.id)?.ok_or_else(|| Error::NotFound(format!("no repository {}", project.path)))
    })
}

pub fn get(conn: &mut DbConn, path: &str) -> Result<Project> {
    let p = parse_path(path)?;
    db::project::find_by_path(conn, p.as_str())?.ok_or_else(|| Error::NotFound(format!("no repository {p}")))
}

/// Deletes a repository: the folder is moved aside, the row (and its
/// members) deleted, and only then the folder removed; if the database
/// refuses, the folder is put back.
pub fn delete(conn: &mut DbConn, store: &RepoStore, path: &str) -> Result<()> {
    let project = get(conn, path)?;
    let repo_path = parse_path(&project.path)?;
    let trashed = store.trash(&repo_path)?;
    match db::project::delete(conn, project.id) {
        Ok(_) => {
            if let Some(t) = trashed {
                t.purge()?;
            } else {
                tracing::warn!("the repository {} had no folder on disk", project.path);
            }
            Ok(())
        }
        Err(e) => {
            if let Some(t) = trashed {
                t.restore()?;
            }
            Err(e.into())
        }
    }
}

/// Removes what dead processes left in the repositories folder
/// (`git::sweep`), and the repositories whose creating push never landed:
/// with no ref, row and folder go; with refs (the push landed, the marker
/// stayed), the marker goes.
pub fn sweep(conn: &mut DbConn, store: &RepoStore, now: std::time::SystemTime) -> Result<crate::git::sweep::Swept> {
    let swept = crate::git::sweep::sweep(store.root(), now);
    for dir in &swept.unfinished_creates {
        let Some(path) = dir
            .strip_prefix(store.root())
            .ok()
            .and_then(|p| p.to_str())
            .and_then(|p| p.strip_suffix(".git"))
        else {
            continue;
        };
        let landed = git2::Repository::open_bare(dir)
            .ok()
            .and_then(|r| r.references().ok().map(|mut refs| refs.next().is_some()))
            .unwrap_or(true);
        if landed {
            let _ = std::fs::remove_file(dir.join(crate::git::sweep::PUSH_TO_CREATE));
        } else if db::project::find_by_path(conn, path)?.is_some() {
            tracing::info!("removing {path}: the push that was creating it never landed");
            delete(conn, store, path)?;
        }
    }
    Ok(swept)
}

/// Repacks a repository now (`gitpat repo gc`): one pack with a bitmap,
/// unreachable objects kept in a cruft pack.
pub fn gc(conn: &mut DbConn, store: &RepoStore, path: &str) -> Result<maintenance::Outcome> {
    let project = get(conn, path)?;
    let repo_path = parse_path(&project.path)?;
    maintenance::run(store.git(), &store.path_of(&repo_path)).map_err(|e| match e {
        MaintenanceError::Busy => Error::Conflict(e.to_string()),
        MaintenanceError::NoGit => Error::Invalid(e.to_string()),
        MaintenanceError::Failed(_) => Error::Internal(anyhow::anyhow!("{}: {e}", project.path)),
    })
}

/// Who `user` (none: anonymous) is to the project lists' visibility rule.
pub fn viewer(user: Option<&User>) -> Viewer {
    match user {
        None => Viewer::Anonymous,
        Some(u) => Viewer::User {
            id: u.id,
            is_admin: u.is_admin,
            blocked: u.is_blocked(),
        },
    }
}

/// The projects `user` (none: anonymous) may see, in id order: the rule
/// of [`crate::service::access::access`]'s `see` (admins all; public to
/// anyone; internal to the signed-in; private to the owner and members),
/// in SQL ([`ProjectQuery`]).
pub fn visible_to(conn: &mut DbConn, user: Option<&User>, today: NaiveDate) -> Result<Vec<Project>> {
    Ok(ProjectQuery::visible_to(viewer(user), today).all(conn)?)
}

/// Every repository with its owner's username, in id order (the CLI's list).
pub fn list(conn: &mut DbConn) -> Result<Vec<RepoView>> {
    let owners: std::collections::HashMap<i64, String> =
        db::user::list(conn)?.into_iter().map(|u| (u.id, u.username)).collect();
    Ok(db::project::list(conn)?
        .iter()
        .map(|p| RepoView::new(p, owners.get(&p.owner_id).map(String::as_str).unwrap_or_default()))
        .collect())
}

/// A project's member list: its owner (access level 50, since the
/// project was made), then every other member by user id, each whose user
/// matches the filter.
#[derive(Debug, Clone)]
pub struct Members {
    owner: Member,
    filter: MemberFilter,
}

impl Members {
    /// `query`: lowercase text the username or name contains.
    pub fn of(project: &Project, query: Option<String>, user_ids: Option<Vec<i64>>) -> Members {
        Members {
            owner: owner_entry(project),
            filter: MemberFilter {
                project_id: project.id,
                except_user: Some(project.owner_id),
                query,
                user_ids,
            },
        }
    }

    fn owner(&self, conn: &mut DbConn) -> Result<Option<(User, Member)>, diesel::result::Error> {
        Ok(self
            .filter
            .user_matching(conn, self.owner.user_id)?
            .map(|u| (u, self.owner.clone())))
    }
}

/// The owner's entry in the member list.
fn owner_entry(project: &Project) -> Member {
    Member {
        project_id: project.id,
        user_id: project.owner_id,
        access_level: Role::Owner as i32,
        created_at: project.created_at,
        expires_at: None,
    }
}

impl Listing for Members {
    type Row = (User, Member);

    fn rows(
        &self,
        conn: &mut DbConn,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<Vec<(User, Member)>, diesel::result::Error> {
        let mut out = Vec::new();
        let mut offset = offset;
        let mut limit = limit;
        if let Some(owner) = self.owner(conn)? {
            if offset == 0 {
                if limit == Some(0) {
                    return Ok(out);
                }
                out.push(owner);
                limit = limit.map(|l| l - 1);
            } else {
                offset -= 1;
            }
        }
        if limit != Some(0) {
            out.extend(self.filter.rows(conn, offset, limit)?);
        }
        Ok(out)
    }

    fn count_upto(&self, conn: &mut DbConn, limit: i64) -> Result<i64, diesel::result::Error> {
        let owner = i64::from(self.owner(conn)?.is_some());
        Ok(owner + self.filter.count_upto(conn, limit - owner)?)
    }

    fn row_id(row: &(User, Member)) -> i64 {
        row.0.id
    }
}

/// User `user_id`'s entry in `project`'s member list (the owner's, as in
/// [`Members`], or their membership), if any.
pub fn member_entry(conn: &mut DbConn, project: &Project, user_id: i64) -> Result<Option<(User, Member)>> {
    let Some(user) = db::user::find(conn, user_id)? else {
        return Ok(None);
    };
    if user_id == project.owner_id {
        return Ok(Some((user, owner_entry(project))));
    }
    Ok(db::member::find(conn, project.id, user_id)?.map(|m| (user, m)))
}

pub fn add_member(conn: &mut DbConn, path: &str, username: &str, role: &str, now: DateTime<Utc>) -> Result<()> {
    let role = Role::parse(role).ok_or_else(|| {
        Error::Invalid(format!(
            "unknown role {role:?}; use guest, reporter, developer, maintainer or owner"
        ))
    })?;
    let project = get(conn, path)?;
    let user = users::get(conn, username)?;
    if db::member::find(conn, project.id, user.id)?.is_some() {
        return Err(Error::Conflict(format!(
            "{} is already a member of {}",
            user.username, project.path
        )));
    }
    db::member::insert(
        conn,
        &Member {
            project_id: project.id,
            user_id: user.id,
            access_level: role as i32,
            created_at: now.naive_utc(),
            expires_at: None,
        },
    )?;
    Ok(())
}

pub fn remove_member(conn: &mut DbConn, path: &str, username: &str) -> Result<()> {
    let project = get(conn, path)?;
    let user = users::get(conn, username)?;
    if db::member::delete(conn, project.id, user.id)? == 0 {
        return Err(Error::NotFound(format!(
            "{} is not a member of {}",
            user.username, project.path
        )));
    }
    Ok(())
}
