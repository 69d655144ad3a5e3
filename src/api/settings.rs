//! `GET /version` and the instance settings (`/application/settings`).

use serde_json::{json, Value};

use super::{entities, ApiCall, ApiError, ApiResult, Policy, Reply};
use crate::settings::{Settings, KEYS};

/// The GitLab API level gitpat answers as, for clients that check the
/// version before they call (gitpat's own version is in `revision`).
pub const GITLAB_API_VERSION: &str = "17.0.0";

pub async fn version(call: ApiCall) -> ApiResult {
    call.run(Policy::ReadUser, |_| {
        Reply::ok(json!({
            "version": format!("{GITLAB_API_VERSION}-gitpat"),
            "revision": concat!("gitpat-", env!("CARGO_PKG_VERSION")),
            "enterprise": false,
        }))
    })
    .await
}

pub async fn show(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        cx.me()?.require_admin()?;
        Reply::ok(entities::settings(&cx.settings))
    })
    .await
}

/// One parameter as the text `Settings::set` reads: null and "" clear,
/// arrays join with commas.
fn as_setting_text(key: &str, v: &Value) -> Result<String, ApiError> {
    Ok(match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => {
            let mut parts = Vec::with_capacity(a.len());
            for item in a {
                match item {
                    Value::String(s) => parts.push(s.clone()),
                    Value::Number(n) => parts.push(n.to_string()),
                    _ => return Err(ApiError::InvalidParam(key.to_string())),
                }
            }
            parts.join(",")
        }
        Value::Object(_) => return Err(ApiError::InvalidParam(key.to_string())),
    })
}

/// Validates every given setting first, then stores them all in one
/// transaction: one bad value stores nothing. Other parameters are
/// ignored, as GitLab ignores what it does not know.
pub async fn update(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        cx.me()?.require_admin()?;
        let mut changes = Vec::new();
        for key in KEYS {
            let Some(v) = cx.params.raw(key) else { continue };
            let text = as_setting_text(key, v)?;
            if key == "personal_access_token_prefix" && v.is_null() {
                return Err(ApiError::InvalidParam(key.to_string()));
            }
            changes.push((key, text));
        }
        let actor = cx.actor()?;
        let next = Settings::store_many(cx.conn, &actor, &changes, cx.now).map_err(|e| match e {
            crate::error::Error::Invalid(m) => ApiError::bad_request(m),
            other => other.into(),
        })?;
        // This instance applies its own change at once; others within
        // SETTINGS_REFRESH.
        cx.app.settings_cache.put(next.clone());
        Reply::ok(entities::settings(&next))
    })
    .await
}
