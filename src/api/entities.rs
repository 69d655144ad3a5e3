//! The JSON of each thing, shaped as GitLab's API entities.

use chrono::NaiveDate;
use serde_json::{json, Value};

use crate::auth::token::PlainToken;
use crate::db::{member::Member, project::Project, token::TokenRow, user::User};
use crate::service::tokens::{iso, TokenView};
use crate::settings::Settings;

/// A user. `full` (to the user themselves and to admins) adds the email,
/// the admin flag and two-factor state.
pub fn user(u: &User, full: bool, base: &str) -> Value {
    let mut v = json!({
        "id": u.id,
        "username": u.username,
        "name": u.name,
        "state": u.state,
        "locked": false,
        "avatar_url": null,
        "web_url": format!("{base}/{}", u.username),
        "created_at": iso(u.created_at),
        "bot": false,
    });
    if full {
        v["email"] = json!(u.email);
        v["is_admin"] = json!(u.is_admin);
        v["two_factor_enabled"] = json!(u.two_factor_enabled);
        // A user's namespace is the user (see `namespace`).
        v["namespace_id"] = json!(u.id);
    }
    v
}

/// A token, never with its secret.
pub fn token(row: &TokenRow, settings: &Settings, today: NaiveDate) -> Value {
    serde_json::to_value(TokenView::new(row, settings, today)).unwrap_or(Value::Null)
}

/// A token just made (create, rotate), with its secret: shown this once.
pub fn new_token(row: &TokenRow, plain: &PlainToken, settings: &Settings, today: NaiveDate) -> Value {
    let mut v = token(row, settings, today);
    v["token"] = json!(plain.expose());
    v
}

/// The namespace of a project: the owner's own (`kind: user`, id = the
/// user's id) or, for a path under another name, a group-like one.
fn namespace(p: &Project, owner: Option<&User>, base: &str) -> Value {
    let full_path = p.path.rsplit_once('/').map(|(ns, _)| ns).unwrap_or_default();
    match owner {
        Some(o) if o.username.eq_ignore_ascii_case(full_path) => json!({
            "id": o.id,
            "name": o.name,
            "path": o.username,
            "kind": "user",
            "full_path": o.username,
            "web_url": format!("{base}/{}", o.username),
        }),
        _ => {
            let last = full_path.rsplit('/').next().unwrap_or(full_path);
            json!({
                "id": null,
                "name": last,
                "path": last,
                "kind": "group",
                "full_path": full_path,
                "web_url": format!("{base}/{full_path}"),
            })
        }
    }
}

pub fn project(p: &Project, owner: Option<&User>, base: &str) -> Value {
    let ns = namespace(p, owner, base);
    let ns_name = ns["name"].as_str().unwrap_or_default().to_string();
    json!({
        "id": p.id,
        "name": p.name,
        "path": p.path.rsplit('/').next().unwrap_or(&p.path),
        "path_with_namespace": p.path,
        "name_with_namespace": format!("{ns_name} / {}", p.name),
        "description": p.description,
        "visibility": p.visibility,
        "default_branch": p.default_branch,
        "http_url_to_repo": format!("{base}/{}.git", p.path),
        "web_url": format!("{base}/{}", p.path),
        "created_at": iso(p.created_at),
        "last_activity_at": iso(p.last_activity_at),
        "namespace": ns,
        // What gitpat has none of, in the fields clients read.
        "archived": false,
        "topics": [],
        "tag_list": [],
        "star_count": 0,
        "forks_count": 0,
        "ssh_url_to_repo": null,
        "owner": owner.map(|o| json!({
            "id": o.id,
            "username": o.username,
            "name": o.name,
            "state": o.state,
            "web_url": format!("{base}/{}", o.username),
        })),
    })
}

/// GitLab's `permissions` of a project for the caller: their own access
/// level (`None`: not a member), and no group access (there are no groups).
pub fn permissions(level: Option<i32>) -> Value {
    json!({
        "project_access": level.map(|l| json!({ "access_level": l, "notification_level": 3 })),
        "group_access": null,
    })
}

/// A project member: the user, their access level and its expiry date.
pub fn member(u: &User, m: &Member, base: &str) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "name": u.name,
        "state": u.state,
        "avatar_url": null,
        "web_url": format!("{base}/{}", u.username),
        "access_level": m.access_level,
        "created_at": iso(m.created_at),
        "expires_at": m.expires_at.map(|d| d.format("%Y-%m-%d").to_string()),
    })
}

/// The instance settings with JSON types.
pub fn settings(s: &Settings) -> Value {
    json!({
        "max_personal_access_token_lifetime": s.max_personal_access_token_lifetime,
        "enforce_personal_access_token_expiration": s.enforce_personal_access_token_expiration,
        "password_authentication_enabled_for_git": s.password_authentication_enabled_for_git,
        "personal_access_token_prefix": s.personal_access_token_prefix,
        "personal_access_token_last_used_throttle_minutes": s.personal_access_token_last_used_throttle_minutes,
        "git_auth_ban_enabled": s.git_auth_ban_enabled,
        "git_auth_ban_max_failures": s.git_auth_ban_max_failures,
        "git_auth_ban_window_seconds": s.git_auth_ban_window_seconds,
        "git_auth_ban_duration_seconds": s.git_auth_ban_duration_seconds,
        "git_auth_ban_allowlist": s.git_auth_ban_allowlist.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
        "receive_max_input_size": s.receive_max_input_size,
        "maintenance_pack_limit": s.maintenance_pack_limit,
        "push_deadline_seconds": s.push_deadline_seconds,
        "push_min_bytes_per_second": s.push_min_bytes_per_second,
        "max_concurrent_pushes": s.max_concurrent_pushes,
        "max_concurrent_pushes_per_user": s.max_concurrent_pushes_per_user,
        "max_login_attempts": s.max_login_attempts,
        "failed_login_attempts_unlock_period_in_minutes": s.failed_login_attempts_unlock_period_in_minutes,
        "trusted_proxies": s.trusted_proxies.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "session_expire_delay": s.session_expire_delay,
        "token_expiry_notifications_enabled": s.token_expiry_notifications_enabled,
        "token_expiry_notify_days": s.token_expiry_notify_days,
        "secret_push_protection_enabled": s.secret_push_protection_enabled,
        "revoke_leaked_tokens": s.revoke_leaked_tokens,
        "audit_events_retention_days": s.audit_events_retention_days,
    })
}
