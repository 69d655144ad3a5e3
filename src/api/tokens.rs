//! Personal access tokens and impersonation tokens (spec section 4).

use super::pagination::KeysetOrder;
use super::{entities, users, ApiCall, ApiError, ApiResult, Ctx, Policy, Reply};
use crate::auth::token;
use crate::db::token::{TokenOrder, TokenQuery, TokenRow};
use crate::db::{self, user::User};
use crate::service::tokens::{self as svc, NewTokenRequest};

const PAT_NOT_FOUND: &str = "Personal Access Token";
const IMPERSONATION_NOT_FOUND: &str = "Impersonation Token";

const SORTS: [&str; 10] = [
    "id_asc",
    "id_desc",
    "created_asc",
    "created_desc",
    "expires_asc",
    "expires_desc",
    "last_used_asc",
    "last_used_desc",
    "name_asc",
    "name_desc",
];

/// A `sort` value as the order it names.
fn token_order(sort: &str) -> (TokenOrder, bool) {
    let (key, desc) = sort
        .rsplit_once('_')
        .map(|(k, d)| (k, d == "desc"))
        .unwrap_or(("id", false));
    let order = match key {
        "created" => TokenOrder::CreatedAt,
        "expires" => TokenOrder::ExpiresAt,
        "last_used" => TokenOrder::LastUsedAt,
        "name" => TokenOrder::Name,
        _ => TokenOrder::Id,
    };
    (order, desc)
}

pub async fn list(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let me = cx.me()?.clone();
        let user_id = cx.params.int("user_id")?;
        if !me.is_admin() && user_id.is_some_and(|u| u != me.user.id) {
            return Err(ApiError::Unauthorized);
        }
        if let (true, Some(uid)) = (me.is_admin(), user_id) {
            if db::user::find(cx.conn, uid)?.is_none() {
                return Err(ApiError::not_found("User"));
            }
        }
        // Admins see impersonation tokens too; users only their own PATs
        // (GitLab's finder adds `impersonation: false` for non-admins).
        let mut q = if me.is_admin() {
            TokenQuery {
                user_id,
                ..TokenQuery::default()
            }
        } else {
            svc::manageable_by_owner(me.user.id)
        };
        let p = cx.params;
        q.revoked = p.bool("revoked")?;
        let state = p.one_of("state", &["active", "inactive"])?;
        q.state = state.map(|s| svc::state_filter(s == "active", &cx.settings, cx.today()));
        // GitLab's bounds: inclusive, but for `expires_before`.
        q.created_before = p.datetime("created_before")?.map(|d| d.naive_utc());
        q.created_after = p.datetime("created_after")?.map(|d| d.naive_utc());
        q.last_used_before = p.datetime("last_used_before")?.map(|d| d.naive_utc());
        q.last_used_after = p.datetime("last_used_after")?.map(|d| d.naive_utc());
        q.expires_before = p.date("expires_before")?;
        q.expires_after = p.date("expires_after")?;
        q.search = p.str("search")?.map(|s| s.to_lowercase());
        if let Some(sort) = p.one_of("sort", &SORTS)? {
            (q.order, q.desc) = token_order(&sort);
        }
        let (rows, info) = cx.fetch(&q, KeysetOrder::Unsupported)?;
        let items = rows
            .iter()
            .map(|t| entities::token(t, &cx.settings, cx.today()))
            .collect();
        Reply::page(items, info)
    })
    .await
}

/// Whether the caller may manage `t` on these endpoints: an admin any
/// token, a user their own personal (not impersonation) tokens, as GitLab's
/// token policy has it.
fn owns(cx: &Ctx, t: &TokenRow) -> bool {
    cx.caller
        .as_ref()
        .is_some_and(|me| me.is_admin() || svc::owner_may_manage(me.user.id, t))
}

/// A token by id that the caller may manage (see [`owns`]). Otherwise an
/// admin gets 404 and anyone else 401 (as GitLab answers).
fn manageable(cx: &mut Ctx, id: i64) -> Result<TokenRow, ApiError> {
    let admin = cx.me()?.is_admin();
    match db::token::find(cx.conn, id)? {
        Some(t) if owns(cx, &t) => Ok(t),
        _ if admin => Err(ApiError::not_found(PAT_NOT_FOUND)),
        _ => Err(ApiError::Unauthorized),
    }
}

fn token_id(cx: &Ctx) -> Result<i64, ApiError> {
    let me_admin = cx.caller.as_ref().is_some_and(|c| c.is_admin());
    match cx.id("id", PAT_NOT_FOUND) {
        Err(ApiError::NotFound(_)) if !me_admin => Err(ApiError::Unauthorized),
        other => other,
    }
}

pub async fn show(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let id = token_id(cx)?;
        let t = manageable(cx, id)?;
        Reply::ok(entities::token(&t, &cx.settings, cx.today()))
    })
    .await
}

pub async fn show_self(call: ApiCall) -> ApiResult {
    call.run(Policy::AnyScope, |cx| {
        let t = cx.me()?.token.clone();
        Reply::ok(entities::token(&t, &cx.settings, cx.today()))
    })
    .await
}

/// Revokes; revoking a revoked token changes (and records) nothing and
/// is no error.
fn revoke_row(cx: &mut Ctx, t: &TokenRow) -> Result<Reply, ApiError> {
    if !t.revoked {
        let actor = cx.actor()?;
        match svc::revoke(cx.conn, &actor, t.id, cx.now) {
            Ok(_) | Err(crate::error::Error::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Reply::no_content()
}

/// As GitLab: a missing token is 404 to anyone, another user's token 400
/// (the revoke service refuses) to all but admins.
pub async fn revoke(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let id = cx.id("id", PAT_NOT_FOUND)?;
        let t = db::token::find(cx.conn, id)?.ok_or_else(|| ApiError::not_found(PAT_NOT_FOUND))?;
        if !owns(cx, &t) {
            return Err(ApiError::bad_request(""));
        }
        revoke_row(cx, &t)
    })
    .await
}

pub async fn revoke_self(call: ApiCall) -> ApiResult {
    call.run(Policy::AnyScope, |cx| {
        let t = cx.me()?.token.clone();
        revoke_row(cx, &t)
    })
    .await
}

fn rotate_row(cx: &mut Ctx, t: &TokenRow) -> Result<Reply, ApiError> {
    let expires_at = cx.params.date("expires_at")?;
    if t.revoked {
        return Err(ApiError::bad_request("Token already revoked"));
    }
    let actor = cx.actor()?;
    let (row, plain) = svc::rotate(cx.conn, &cx.app.key, &cx.settings, &actor, t.id, expires_at, cx.now)?;
    Reply::ok(entities::new_token(&row, &plain, &cx.settings, cx.today()))
}

pub async fn rotate(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let id = token_id(cx)?;
        let t = manageable(cx, id)?;
        rotate_row(cx, &t)
    })
    .await
}

pub async fn rotate_self(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let t = cx.me()?.token.clone();
        rotate_row(cx, &t)
    })
    .await
}

/// Creates a token for `user` from `name`, `scopes`, `expires_at`,
/// `description` and gitpat's `repositories` and `push_ref_patterns`,
/// checking every parameter before anything is written.
fn create_token(cx: &mut Ctx, user: &User, impersonation: bool) -> Result<Reply, ApiError> {
    let p = cx.params;
    p.require(&["name", "scopes"])?;
    let name = p.required_str("name")?;
    let names = p.str_list("scopes")?.unwrap_or_default();
    if names.is_empty() {
        return Err(ApiError::Missing(vec!["scopes".into()]));
    }
    let scopes: Vec<String> = token::parse_scopes(&names, user.is_admin)
        .map_err(|_| ApiError::NotAllowedValue("scopes".into()))?
        .into_iter()
        .map(|s| s.as_str().to_string())
        .collect();
    let expires_at = p.date("expires_at")?;
    let description = p.str("description")?;
    let repositories = p.str_list_with_empty("repositories")?;
    let push_ref_patterns = p.str_list_with_empty("push_ref_patterns")?;
    // What GitLab's token model refuses, its create service answers 422.
    if name.chars().count() > 255 {
        return Err(ApiError::Unprocessable(
            "Name is too long (maximum is 255 characters)".into(),
        ));
    }
    if description.as_ref().is_some_and(|d| d.chars().count() > 255) {
        return Err(ApiError::Unprocessable(
            "Description is too long (maximum is 255 characters)".into(),
        ));
    }
    // An administrator making another user's token is named in its notice.
    let actor = cx.actor()?;
    let req = NewTokenRequest {
        user,
        name: &name,
        description: description.as_deref(),
        scopes: &scopes,
        expires_at,
        token: None,
        impersonation,
        actor: &actor,
    };
    let limits = svc::Limits {
        repositories: repositories.as_deref(),
        push_ref_patterns: push_ref_patterns.as_deref(),
    };
    let (row, plain) = svc::create_limited(cx.conn, &cx.app.key, &cx.settings, &req, limits, cx.now)?;
    Reply::created(entities::new_token(&row, &plain, &cx.settings, cx.today()))
}

/// The user of `{user_id}` for an admin (403 for anyone else).
fn admin_target(cx: &mut Ctx) -> Result<User, ApiError> {
    cx.me()?.require_admin()?;
    users::find(cx, "user_id")
}

pub async fn create_for_user(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let user = admin_target(cx)?;
        create_token(cx, &user, false)
    })
    .await
}

pub async fn impersonation_list(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let user = admin_target(cx)?;
        let state = cx.params.one_of("state", &["all", "active", "inactive"])?;
        let mut q = svc::impersonation_tokens(user.id);
        q.state = match state.as_deref() {
            Some("active") => Some(svc::state_filter(true, &cx.settings, cx.today())),
            Some("inactive") => Some(svc::state_filter(false, &cx.settings, cx.today())),
            _ => None,
        };
        let (rows, info) = cx.fetch(&q, KeysetOrder::Unsupported)?;
        let items = rows
            .iter()
            .map(|t| entities::token(t, &cx.settings, cx.today()))
            .collect();
        Reply::page(items, info)
    })
    .await
}

pub async fn impersonation_create(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let user = admin_target(cx)?;
        create_token(cx, &user, true)
    })
    .await
}

fn impersonation_token(cx: &mut Ctx) -> Result<TokenRow, ApiError> {
    let user = admin_target(cx)?;
    let id = cx.id("impersonation_token_id", IMPERSONATION_NOT_FOUND)?;
    db::token::find(cx.conn, id)?
        .filter(|t| t.impersonation && t.user_id == user.id)
        .ok_or_else(|| ApiError::not_found(IMPERSONATION_NOT_FOUND))
}

pub async fn impersonation_show(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let t = impersonation_token(cx)?;
        Reply::ok(entities::token(&t, &cx.settings, cx.today()))
    })
    .await
}

pub async fn impersonation_revoke(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        let t = impersonation_token(cx)?;
        revoke_row(cx, &t)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_name_their_orders() {
        assert_eq!(token_order("id_asc"), (TokenOrder::Id, false));
        assert_eq!(token_order("expires_desc"), (TokenOrder::ExpiresAt, true));
        assert_eq!(token_order("last_used_asc"), (TokenOrder::LastUsedAt, false));
        assert_eq!(token_order("name_desc"), (TokenOrder::Name, true));
        assert_eq!(token_order("created_asc"), (TokenOrder::CreatedAt, false));
    }
}
