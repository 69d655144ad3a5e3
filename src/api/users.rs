//! `/user` and `/users`: read by anyone signed in, written by admins.

use serde_json::json;

use super::pagination::KeysetOrder;
use super::{entities, ApiCall, ApiError, ApiResult, Ctx, Policy, Reply};
use crate::auth::password;
use crate::db::{self, user::User, user::UserOrder};
use crate::error::Error;
use crate::service::users::{self, NewUserRequest, UserUpdate};

const USER_NOT_FOUND: &str = "User";

/// The user of `{user_id}`, or 404 User Not Found.
pub fn find(cx: &mut Ctx, segment: &str) -> Result<User, ApiError> {
    let id = cx.id(segment, USER_NOT_FOUND)?;
    db::user::find(cx.conn, id)?.ok_or_else(|| ApiError::not_found(USER_NOT_FOUND))
}

/// Whether `viewer` sees the private fields of `u` (email, admin flag).
fn full_view(cx: &Ctx, u: &User) -> bool {
    cx.caller.as_ref().is_some_and(|c| c.is_admin() || c.user.id == u.id)
}

pub async fn me(call: ApiCall) -> ApiResult {
    call.run(Policy::ReadUser, |cx| {
        let me = cx.me()?;
        Reply::ok(entities::user(&me.user, true, cx.base))
    })
    .await
}

pub async fn show(call: ApiCall) -> ApiResult {
    call.run(Policy::ReadUser, |cx| {
        let u = find(cx, "id")?;
        Reply::ok(entities::user(&u, full_view(cx, &u), cx.base))
    })
    .await
}

/// `GET /users`: GitLab's filters and orders, offset pages or, by id,
/// keyset pages.
pub async fn list(call: ApiCall) -> ApiResult {
    call.run(Policy::ReadUser, |cx| {
        let p = cx.params;
        let username = p.str("username")?;
        let search = p.str("search")?;
        let active = p.bool("active")?.unwrap_or(false);
        let blocked = p.bool("blocked")?.unwrap_or(false);
        let order_by = p
            .one_of("order_by", &["id", "name", "username", "created_at", "updated_at"])?
            .unwrap_or_else(|| "id".into());
        let desc = p.one_of("sort", &["asc", "desc"])?.is_none_or(|s| s == "desc");
        let id_after = p.int("id_after")?;
        let id_before = p.int("id_before")?;
        let admin = cx.caller.as_ref().is_some_and(|c| c.is_admin());
        let mut q = users::query(search.as_deref(), admin);
        q.username = username;
        if active || blocked {
            // Either narrows what the caller may see; both find none.
            q.none = blocked && (active || q.blocked == Some(false));
            q.blocked = Some(blocked);
        }
        q.order = match order_by.as_str() {
            "name" => UserOrder::Name,
            "username" => UserOrder::Username,
            "created_at" | "updated_at" => UserOrder::CreatedAt,
            _ => UserOrder::Id,
        };
        q.desc = desc;
        q.id_after = id_after;
        q.id_before = id_before;
        let keyset = match q.order {
            UserOrder::Id => KeysetOrder::ById { desc },
            _ => KeysetOrder::Unsupported,
        };
        let (rows, info) = cx.fetch(&q, keyset)?;
        let items = rows
            .iter()
            .map(|u| entities::user(u, full_view(cx, u), cx.base))
            .collect();
        Reply::page(items, info)
    })
    .await
}

/// A field error (`{"message":{"field":["reason"]}}`) for an invalid value,
/// the service's reason kept.
fn field_error(field: &str, e: Error) -> ApiError {
    match e {
        Error::Invalid(m) => ApiError::field(field, m),
        other => other.into(),
    }
}

/// Checks each given field as GitLab reports them: one field error each.
fn validate_fields(username: Option<&str>, email: Option<&str>, pw: Option<&str>) -> Result<(), ApiError> {
    if let Some(u) = username {
        users::validate_username(u).map_err(|e| field_error("username", e))?;
    }
    if let Some(e) = email {
        users::validate_email(e).map_err(|err| field_error("email", err))?;
    }
    if let Some(p) = pw {
        password::validate(p).map_err(|m| ApiError::field("password", m))?;
    }
    Ok(())
}

/// 409 with GitLab's text when another user holds the username or email.
fn check_taken(cx: &mut Ctx, id: Option<i64>, username: Option<&str>, email: Option<&str>) -> Result<(), ApiError> {
    let other = |u: Option<User>| u.is_some_and(|u| Some(u.id) != id);
    if let Some(u) = username {
        if other(db::user::find_by_username(cx.conn, u)?) {
            return Err(ApiError::Conflict("Username has already been taken".into()));
        }
    }
    if let Some(e) = email {
        if other(db::user::find_by_email(cx.conn, e)?) {
            return Err(ApiError::Conflict("Email has already been taken".into()));
        }
    }
    Ok(())
}

/// A service conflict that slipped past the checks (a race) in GitLab's words.
fn conflict_text(e: Error) -> ApiError {
    match e {
        Error::Conflict(m) if m.contains("email") && !m.contains("username") => {
            ApiError::Conflict("Email has already been taken".into())
        }
        Error::Conflict(_) => ApiError::Conflict("Username has already been taken".into()),
        other => other.into(),
    }
}

pub async fn create(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        cx.me()?.require_admin()?;
        cx.params.require(&["email", "name", "username"])?;
        let username = cx.params.required_str("username")?;
        let email = cx.params.required_str("email")?;
        let name = cx.params.required_str("name")?;
        let pw = cx.params.str("password")?.filter(|p| !p.is_empty());
        let is_admin = cx.params.bool("admin")?.unwrap_or(false);
        // Accepted as GitLab does; gitpat sends no mail and needs no password.
        for flag in ["skip_confirmation", "reset_password", "force_random_password"] {
            cx.params.bool(flag)?;
        }
        validate_fields(Some(&username), Some(&email), pw.as_deref())?;
        check_taken(cx, None, Some(&username), Some(&email))?;
        let req = NewUserRequest {
            username: &username,
            email: &email,
            name: Some(&name),
            password: pw.as_deref(),
            is_admin,
        };
        let actor = cx.actor()?;
        let u = users::create(cx.conn, &actor, &req, cx.now).map_err(|e| match e {
            Error::Invalid(m) => ApiError::field("name", m),
            other => conflict_text(other),
        })?;
        Reply::created(entities::user(&u, true, cx.base))
    })
    .await
}

pub async fn update(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        cx.me()?.require_admin()?;
        let target = find(cx, "id")?;
        let username = cx.params.str("username")?;
        let email = cx.params.str("email")?;
        let name = cx.params.str("name")?;
        let pw = cx.params.str("password")?;
        let is_admin = cx.params.bool("admin")?;
        validate_fields(username.as_deref(), email.as_deref(), pw.as_deref())?;
        check_taken(cx, Some(target.id), username.as_deref(), email.as_deref())?;
        let req = UserUpdate {
            username: username.as_deref(),
            email: email.as_deref(),
            name: name.as_deref(),
            password: pw.as_deref(),
            is_admin,
        };
        let actor = cx.actor()?;
        let u = users::update(cx.conn, &actor, target.id, &req, cx.now).map_err(|e| match e {
            Error::Invalid(m) => ApiError::bad_request(m),
            other => conflict_text(other),
        })?;
        Reply::ok(entities::user(&u, true, cx.base))
    })
    .await
}

fn set_blocked(cx: &mut Ctx, blocked: bool) -> Result<Reply, ApiError> {
    cx.me()?.require_admin()?;
    let target = find(cx, "id")?;
    if blocked && cx.me()?.user.id == target.id {
        return Err(ApiError::Forbidden(Some("You cannot block yourself".into())));
    }
    let actor = cx.actor()?;
    users::set_blocked(cx.conn, &actor, &target.username, blocked, cx.now)?;
    Reply::created(json!(true))
}

pub async fn block(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| set_blocked(cx, true)).await
}

pub async fn unblock(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| set_blocked(cx, false)).await
}
