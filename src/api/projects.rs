//! Projects (hosted repositories) and their members.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::pagination::KeysetOrder;
use super::{entities, ApiCall, ApiError, ApiResult, Ctx, Policy, Reply};
use crate::db::project::{Project, ProjectOrder, ProjectQuery};
use crate::db::{self, member::Member, user::User};
use crate::error::Error;
use crate::git::store::RepoPath;
use crate::service::access::{self, Role, VISIBILITIES};
use crate::service::repos::{self, NewRepoRequest, ProjectUpdate};
use crate::service::tokens::restriction;

const PROJECT_NOT_FOUND: &str = "Project";
const MEMBER_NOT_FOUND: &str = "Member";

/// GitLab's path from a name: lowercased; every run of characters other
/// than letters, digits, `_`, `.` and `-` becomes one `-`; no `-` or `.`
/// at either end.
pub fn path_from_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// What the caller's token is limited to (restricted tokens).
fn limits(cx: &Ctx) -> crate::auth::restriction::Restriction {
    cx.caller.as_ref().map(|c| restriction(&c.token)).unwrap_or_default()
}

/// The project of `{id}` (a number or a URL-encoded path) if the caller
/// may see it (and a restricted token reach it); 404 Project Not Found
/// otherwise.
fn visible(cx: &mut Ctx) -> Result<Project, ApiError> {
    let raw = cx.segment("id").to_string();
    let found = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        match raw.parse::<i64>() {
            Ok(id) => db::project::find(cx.conn, id)?,
            Err(_) => None,
        }
    } else {
        match RepoPath::parse(&raw) {
            Ok(p) => db::project::find_by_path(cx.conn, p.as_str())?,
            Err(_) => None,
        }
    };
    let project = found
        .filter(|p| limits(cx).allows_repo(&p.path))
        .ok_or_else(|| ApiError::not_found(PROJECT_NOT_FOUND))?;
    let user = cx.caller.as_ref().map(|c| c.user.clone());
    if !access::access(cx.conn, user.as_ref(), &project, cx.now.date_naive())?.see {
        return Err(ApiError::not_found(PROJECT_NOT_FOUND));
    }
    Ok(project)
}

/// The caller's role in `project`, admins counting as owners.
fn role_of(cx: &mut Ctx, project: &Project) -> Result<Option<Role>, ApiError> {
    let me = cx.me()?.clone();
    if me.is_admin() {
        return Ok(Some(Role::Owner));
    }
    Ok(access::role(cx.conn, &me.user, project, cx.now.date_naive())?)
}

/// 403 unless the caller's role is at least `min`.
fn require_role(cx: &mut Ctx, project: &Project, min: Role) -> Result<Role, ApiError> {
    match role_of(cx, project)? {
        Some(r) if r >= min => Ok(r),
        _ => Err(ApiError::forbidden()),
    }
}

fn owner_of(cx: &mut Ctx, p: &Project) -> Result<Option<User>, ApiError> {
    Ok(db::user::find(cx.conn, p.owner_id)?)
}

fn project_json(cx: &mut Ctx, p: &Project) -> Result<Value, ApiError> {
    let owner = owner_of(cx, p)?;
    Ok(entities::project(p, owner.as_ref(), cx.base))
}

fn taken() -> ApiError {
    ApiError::Fields(BTreeMap::from([
        ("name".to_string(), vec!["has already been taken".to_string()]),
        ("path".to_string(), vec!["has already been taken".to_string()]),
    ]))
}

/// A project's own path, as GitLab validates it: one segment (no `/`),
/// not ending in `.git` or `.atom`; the rest of the rules are
/// `RepoPath`'s. `{"message":{"path":["..."]}}` otherwise.
fn check_path_segment(path: &str) -> Result<(), ApiError> {
    let lower = path.to_ascii_lowercase();
    if path.contains('/') || lower.ends_with(".git") || lower.ends_with(".atom") {
        return Err(ApiError::field(
            "path",
            "can contain only letters, digits, '_', '-' and '.'; cannot contain '/', \
             start with '-' or '.', or end in '.git' or '.atom'",
        ));
    }
    Ok(())
}

/// Whether another project (not `except`) in namespace `ns` has `name`:
/// GitLab keeps names unique within a namespace, as it does paths.
fn name_taken(cx: &mut Ctx, ns: &str, name: &str, except: Option<i64>) -> Result<bool, ApiError> {
    Ok(db::project::name_taken_in(cx.conn, ns, name, except)?)
}

/// The user whose namespace `namespace_id` names (an id or a username).
fn namespace_owner(cx: &mut Ctx) -> Result<Option<User>, ApiError> {
    let Some(ns) = cx.params.str("namespace_id")?.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let found = if ns.bytes().all(|b| b.is_ascii_digit()) {
        match ns.parse::<i64>() {
            Ok(id) => db::user::find(cx.conn, id)?,
            Err(_) => None,
        }
    } else {
        db::user::find_by_username(cx.conn, &ns)?
    };
    found.map(Some).ok_or_else(|| ApiError::not_found("Namespace"))
}

pub async fn create(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let me = cx.me()?.clone();
        let p = cx.params;
        let name = p.str("name")?.filter(|s| !s.trim().is_empty());
        let path = p.str("path")?.filter(|s| !s.trim().is_empty());
        let (name, path) = match (name, path) {
            (None, None) => {
                return Err(ApiError::ParamRule(
                    "name, path are missing, at least one parameter must be provided".into(),
                ))
            }
            (Some(n), None) => {
                let derived = path_from_name(&n);
                (n, derived)
            }
            (None, Some(p)) => (p.clone(), p),
            (Some(n), Some(p)) => (n, p),
        };
        let visibility = p.one_of("visibility", &VISIBILITIES)?;
        let default_branch = p.str("default_branch")?.filter(|s| !s.is_empty());
        let description = p.str("description")?;
        let ns_user = match namespace_owner(cx)? {
            Some(u) if u.id != me.user.id && !me.is_admin() => return Err(ApiError::forbidden()),
            Some(u) => u,
            None => me.user.clone(),
        };
        repos::validate_name(&name).map_err(|e| ApiError::field("name", e.to_string()))?;
        check_path_segment(&path)?;
        let full = format!("{}/{path}", ns_user.username);
        let parsed = RepoPath::parse(&full).map_err(|e| ApiError::field("path", e.to_string()))?;
        // A restricted token creates only where its patterns reach.
        if !limits(cx).allows_repo(parsed.as_str()) {
            return Err(ApiError::forbidden());
        }
        if db::project::find_by_path(cx.conn, parsed.as_str())?.is_some() {
            return Err(taken());
        }
        if name_taken(cx, &ns_user.username, &name, None)? {
            return Err(ApiError::field("name", "has already been taken"));
        }
        let req = NewRepoRequest {
            path: parsed.as_str(),
            name: Some(&name),
            owner: Some(&ns_user.username),
            visibility: visibility.as_deref(),
            default_branch: default_branch.as_deref(),
            description: description.as_deref(),
            import: None,
        };
        let project = repos::create(cx.conn, &cx.app.store, &req, cx.now).map_err(|e| match e {
            Error::Conflict(m) if m.contains("already exists on disk") => ApiError::Conflict(m),
            Error::Conflict(_) => taken(),
            other => other.into(),
        })?;
        Reply::created(entities::project(&project, Some(&ns_user), cx.base))
    })
    .await
}

pub async fn list(call: ApiCall) -> ApiResult {
    call.run_public(Policy::Api, |cx| {
        let p = cx.params;
        let owned = p.bool("owned")?.unwrap_or(false);
        let membership = p.bool("membership")?.unwrap_or(false);
        let search = p.str("search")?.map(|s| s.to_lowercase());
        let visibility = p.one_of("visibility", &VISIBILITIES)?;
        let order_by = p
            .one_of(
                "order_by",
                &["id", "name", "path", "created_at", "updated_at", "last_activity_at"],
            )?
            .unwrap_or_else(|| "created_at".into());
        let desc = p.one_of("sort", &["asc", "desc"])?.is_none_or(|s| s == "desc");
        let min_level = match p.int("min_access_level")? {
            None => None,
            Some(l) => Some(
                i32::try_from(l)
                    .ok()
                    .and_then(Role::from_level)
                    .ok_or_else(|| ApiError::NotAllowedValue("min_access_level".into()))?,
            ),
        };
        // gitpat has no stars and no archived projects: asking for them
        // finds none; `simple` answers the full entity, which is a superset.
        let starred = p.bool("starred")?.unwrap_or(false);
        let archived = p.bool("archived")?.unwrap_or(false);
        p.bool("simple")?;
        let id_after = p.int("id_after")?;
        let id_before = p.int("id_before")?;
        let me = cx.caller.as_ref().map(|c| c.user.clone());
        let q = ProjectQuery {
            owned,
            membership,
            min_access_level: min_level.map(|r| r as i32),
            visibility,
            search,
            none: starred || archived,
            id_after,
            id_before,
            order: match order_by.as_str() {
                "id" => ProjectOrder::Id,
                "name" => ProjectOrder::Name,
                "path" => ProjectOrder::Path,
                "updated_at" | "last_activity_at" => ProjectOrder::LastActivityAt,
                _ => ProjectOrder::CreatedAt,
            },
            desc,
            repositories: limits(cx).repositories,
            ..ProjectQuery::visible_to(repos::viewer(me.as_ref()), cx.today())
        };
        let keyset = match q.order {
            ProjectOrder::Id => KeysetOrder::ById { desc },
            _ => KeysetOrder::Unsupported,
        };
        let (rows, info) = cx.fetch(&q, keyset)?;
        let owner_ids: Vec<i64> = rows.iter().map(|pr| pr.owner_id).collect();
        let owners = db::user::by_ids(cx.conn, &owner_ids)?;
        let items = rows
            .iter()
            .map(|pr| entities::project(pr, owners.get(&pr.owner_id), cx.base))
            .collect();
        Reply::page(items, info)
    })
    .await
}

/// One project; to a signed-in caller with GitLab's `permissions`.
pub async fn show(call: ApiCall) -> ApiResult {
    call.run_public(Policy::Api, |cx| {
        let project = visible(cx)?;
        let mut v = project_json(cx, &project)?;
        if let Some(me) = cx.caller.as_ref().map(|c| c.user.clone()) {
            let level = access::role(cx.conn, &me, &project, cx.now.date_naive())?.map(|r| r as i32);
            v["permissions"] = entities::permissions(level);
        }
        Reply::ok(v)
    })
    .await
}

pub async fn update(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let project = visible(cx)?;
        let my_role = require_role(cx, &project, Role::Maintainer)?;
        let p = cx.params;
        const UPDATABLE: [&str; 5] = ["name", "path", "description", "visibility", "default_branch"];
        if !UPDATABLE.iter().any(|k| p.contains(k)) {
            return Err(ApiError::ParamRule(format!(
                "{} are missing, at least one parameter must be provided",
                UPDATABLE.join(", ")
            )));
        }
        let name = p.str("name")?;
        let description = p.str("description")?;
        let visibility = p.one_of("visibility", &VISIBILITIES)?;
        // GitLab: only owners may send the visibility level at all.
        if visibility.is_some() && my_role < Role::Owner {
            return Err(ApiError::forbidden());
        }
        if let Some(n) = &name {
            repos::validate_name(n).map_err(|e| ApiError::field("name", e.to_string()))?;
            let ns = project.path.rsplit_once('/').map(|(ns, _)| ns).unwrap_or_default();
            if name_taken(cx, ns, n, Some(project.id))? {
                return Err(ApiError::field("name", "has already been taken"));
            }
        }
        let default_branch = p.str("default_branch")?.filter(|s| !s.is_empty());
        if let Some(path) = p.str("path")? {
            let current = project.path.rsplit('/').next().unwrap_or_default();
            if path != current {
                return Err(ApiError::bad_request(
                    "changing a project's path is not supported; create a new project and push to it",
                ));
            }
        }
        let req = ProjectUpdate {
            name: name.as_deref(),
            description: description.as_deref(),
            visibility: visibility.as_deref(),
            default_branch: default_branch.as_deref(),
        };
        let updated = repos::update(cx.conn, &cx.app.store, &project, &req)?;
        Reply::ok(project_json(cx, &updated)?)
    })
    .await
}

pub async fn delete(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let project = visible(cx)?;
        require_role(cx, &project, Role::Owner)?;
        repos::delete(cx.conn, &cx.app.store, &project.path)?;
        Ok(Reply::Json(
            actix_web::http::StatusCode::ACCEPTED,
            json!({ "message": "202 Accepted" }),
        ))
    })
    .await
}

/// `GET /projects/:id/members` (and `/members/all`: gitpat has no groups
/// to inherit from, so they are the same), with GitLab's `query` (a
/// username or name fragment) and `user_ids` filters.
pub async fn members(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let project = visible(cx)?;
        let query = cx.params.str("query")?.map(|q| q.to_lowercase());
        let ids = cx.params.int_list("user_ids")?;
        let list = repos::Members::of(&project, query, ids);
        let (rows, info) = cx.fetch(&list, KeysetOrder::Unsupported)?;
        let items = rows.iter().map(|(u, m)| entities::member(u, m, cx.base)).collect();
        Reply::page(items, info)
    })
    .await
}

/// `{user_id}`'s entry in the project, or 404 Member Not Found.
fn entry(cx: &mut Ctx, project: &Project) -> Result<(User, Member), ApiError> {
    let uid = cx.id("user_id", MEMBER_NOT_FOUND)?;
    repos::member_entry(cx.conn, project, uid)?.ok_or_else(|| ApiError::not_found(MEMBER_NOT_FOUND))
}

pub async fn member(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let project = visible(cx)?;
        let (u, m) = entry(cx, &project)?;
        Reply::ok(entities::member(&u, &m, cx.base))
    })
    .await
}

/// `expires_at`, when given: a date not in the past (`Some(None)`: null or
/// empty, no expiry); GitLab's field error otherwise.
fn expiry_param(cx: &Ctx) -> Result<Option<Option<chrono::NaiveDate>>, ApiError> {
    if !cx.params.contains("expires_at") {
        return Ok(None);
    }
    let at = cx.params.date("expires_at")?;
    if at.is_some_and(|d| d < cx.today()) {
        return Err(ApiError::field("expires_at", "cannot be a date in the past"));
    }
    Ok(Some(at))
}

/// `access_level` as one of GitLab's levels; only an owner (or admin)
/// may give the owner level.
fn level_param(cx: &Ctx, my_role: Role) -> Result<Role, ApiError> {
    cx.params.require(&["access_level"])?;
    let level = cx
        .params
        .int("access_level")?
        .ok_or_else(|| ApiError::Missing(vec!["access_level".into()]))?;
    let role = i32::try_from(level)
        .ok()
        .and_then(Role::from_level)
        .ok_or_else(|| ApiError::NotAllowedValue("access_level".into()))?;
    if role == Role::Owner && my_role < Role::Owner {
        return Err(ApiError::forbidden());
    }
    Ok(role)
}

pub async fn add_member(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let project = visible(cx)?;
        let my_role = require_role(cx, &project, Role::Maintainer)?;
        // The member by `user_id` or, as GitLab also takes, `username`.
        let uid = cx.params.int("user_id")?;
        let username = cx.params.str("username")?.filter(|u| !u.is_empty());
        let found = match (uid, username) {
            (Some(_), Some(_)) => return Err(ApiError::ParamRule("user_id, username are mutually exclusive".into())),
            (None, None) => {
                // Grape reports every failed rule, the required one first.
                let level = if cx.params.require(&["access_level"]).is_err() {
                    "access_level is missing, "
                } else {
                    ""
                };
                return Err(ApiError::ParamRule(format!(
                    "{level}user_id, username are missing, exactly one parameter must be provided"
                )));
            }
            (Some(id), None) => db::user::find(cx.conn, id)?,
            (None, Some(name)) => db::user::find_by_username(cx.conn, &name)?,
        };
        let role = level_param(cx, my_role)?;
        let expires_at = expiry_param(cx)?.flatten();
        let user = found.ok_or_else(|| ApiError::not_found("User"))?;
        if user.id == project.owner_id || db::member::find(cx.conn, project.id, user.id)?.is_some() {
            return Err(ApiError::Conflict("Member already exists".into()));
        }
        let m = Member {
            project_id: project.id,
            user_id: user.id,
            access_level: role as i32,
            created_at: cx.now.naive_utc(),
            expires_at,
        };
        db::member::insert(cx.conn, &m).map_err(|e| {
            if db::is_unique_violation(&e) {
                ApiError::Conflict("Member already exists".into())
            } else {
                e.into()
            }
        })?;
        Reply::created(entities::member(&user, &m, cx.base))
    })
    .await
}

pub async fn update_member(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let project = visible(cx)?;
        let my_role = require_role(cx, &project, Role::Maintainer)?;
        let (user, mut m) = entry(cx, &project)?;
        let role = level_param(cx, my_role)?;
        let expiry = expiry_param(cx)?;
        if user.id == project.owner_id || (m.access_level >= Role::Owner as i32 && my_role < Role::Owner) {
            return Err(ApiError::forbidden());
        }
        m.access_level = role as i32;
        if let Some(at) = expiry {
            m.expires_at = at;
        }
        crate::db::write_transaction(cx.conn, |conn| {
            db::member::set_level(conn, project.id, user.id, m.access_level)?;
            db::member::set_expiry(conn, project.id, user.id, m.expires_at)?;
            Ok::<_, diesel::result::Error>(())
        })?;
        Reply::ok(entities::member(&user, &m, cx.base))
    })
    .await
}

pub async fn remove_member(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let project = visible(cx)?;
        let (user, m) = entry(cx, &project)?;
        let current = m.access_level;
        let leaving = cx.me()?.user.id == user.id;
        if user.id == project.owner_id {
            return Err(ApiError::forbidden());
        }
        if !leaving {
            let my_role = require_role(cx, &project, Role::Maintainer)?;
            if current >= Role::Owner as i32 && my_role < Role::Owner {
                return Err(ApiError::forbidden());
            }
        }
        db::member::delete(cx.conn, project.id, user.id)?;
        Reply::no_content()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_names() {
        assert_eq!(path_from_name("My Project!"), "my-project");
        assert_eq!(path_from_name("Second Repo"), "second-repo");
        assert_eq!(path_from_name("tools"), "tools");
        assert_eq!(path_from_name("  a__b..c  "), "a__b..c");
        assert_eq!(path_from_name("Ünïcode"), "n-code");
        assert_eq!(path_from_name("!!!"), "");
    }
}
