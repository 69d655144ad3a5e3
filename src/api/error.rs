//! `ApiError`: every refusal of the REST API, rendered in the JSON shapes
//! GitLab's v4 API uses, so clients that parse GitLab's errors parse ours.
//!
//! | variant | status | body |
//! |---|---|---|
//! | `BadRequest(r)` | 400 | `{"message":"400 Bad request - r"}` (`"400 Bad request"` when `r` is empty) |
//! | `Missing(ps)` | 400 | `{"error":"a is missing, b is missing"}` |
//! | `InvalidParam(p)` | 400 | `{"error":"p is invalid"}` |
//! | `NotAllowedValue(p)` | 400 | `{"error":"p does not have a valid value"}` |
//! | `Fields(m)` | 400 | `{"message":{"field":["reason"]}}` |
//! | `Unauthorized` | 401 | `{"message":"401 Unauthorized"}` |
//! | `Forbidden(None)` / `Forbidden(Some(r))` | 403 | `{"message":"403 Forbidden"}` / `{"message":"403 Forbidden - r"}` |
//! | `InsufficientScope(s)` | 403 | `{"error":"insufficient_scope","error_description":...,"scope":"s1 s2"}` |
//! | `NotFound(t)` | 404 | `{"message":"404 t Not Found"}` (`"404 Not Found"` when `t` is empty) |
//! | `NoRoute` | 404 | `{"error":"404 Not Found"}` |
//! | `MethodNotAllowed` | 405 | `{"message":"405 Method Not Allowed"}` |
//! | `KeysetUnavailable` | 405 | `{"error":"Keyset pagination is not yet available for this type of request"}` |
//! | `Conflict(m)` | 409 | `{"message":"m"}` |
//! | `PayloadTooLarge` | 413 | `{"message":"413 Request Entity Too Large"}` |
//! | `UnsupportedMediaType` | 415 | `{"message":"415 Unsupported Media Type"}` |
//! | `Unprocessable(m)` | 422 | `{"message":"m"}` |
//! | `Internal(e)` | 500 | `{"message":"500 Internal Server Error"}` (`e` is logged, never sent) |

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::error::Error;

pub const INSUFFICIENT_SCOPE_DESCRIPTION: &str =
    "The request requires higher privileges than provided by the access token.";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("400 Bad request - {0}")]
    BadRequest(String),
    #[error("missing parameters {0:?}")]
    Missing(Vec<String>),
    #[error("{0} is invalid")]
    InvalidParam(String),
    /// A parameter rule of its own words: `{"error":"<text>"}`.
    #[error("{0}")]
    ParamRule(String),
    #[error("{0} does not have a valid value")]
    NotAllowedValue(String),
    #[error("invalid fields {0:?}")]
    Fields(BTreeMap<String, Vec<String>>),
    #[error("401 Unauthorized")]
    Unauthorized,
    #[error("403 Forbidden")]
    Forbidden(Option<String>),
    #[error("insufficient scope, needs one of {0:?}")]
    InsufficientScope(Vec<&'static str>),
    #[error("404 {0} Not Found")]
    NotFound(String),
    #[error("404 Not Found (no route)")]
    NoRoute,
    #[error("405 Method Not Allowed")]
    MethodNotAllowed,
    /// `pagination=keyset` on a list (or in an order) that has none.
    #[error("405 keyset pagination is not available")]
    KeysetUnavailable,
    #[error("409 {0}")]
    Conflict(String),
    #[error("413 Request Entity Too Large")]
    PayloadTooLarge,
    #[error("415 Unsupported Media Type")]
    UnsupportedMediaType,
    #[error("422 {0}")]
    Unprocessable(String),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::BadRequest(reason.into())
    }

    pub fn not_found(thing: impl Into<String>) -> ApiError {
        ApiError::NotFound(thing.into())
    }

    pub fn forbidden() -> ApiError {
        ApiError::Forbidden(None)
    }

    /// One field error: `{"message":{"field":["reason"]}}`.
    pub fn field(field: &str, reason: impl Into<String>) -> ApiError {
        ApiError::Fields(BTreeMap::from([(field.to_string(), vec![reason.into()])]))
    }

    /// The JSON body this error is answered with.
    pub fn body(&self) -> Value {
        match self {
            ApiError::BadRequest(r) if r.is_empty() => json!({ "message": "400 Bad request" }),
            ApiError::BadRequest(r) => json!({ "message": format!("400 Bad request - {r}") }),
            ApiError::Missing(ps) => json!({
                "error": ps.iter().map(|p| format!("{p} is missing")).collect::<Vec<_>>().join(", ")
            }),
            ApiError::InvalidParam(p) => json!({ "error": format!("{p} is invalid") }),
            ApiError::ParamRule(t) => json!({ "error": t }),
            ApiError::NotAllowedValue(p) => json!({ "error": format!("{p} does not have a valid value") }),
            ApiError::Fields(m) => json!({ "message": m }),
            ApiError::Unauthorized => json!({ "message": "401 Unauthorized" }),
            ApiError::Forbidden(None) => json!({ "message": "403 Forbidden" }),
            ApiError::Forbidden(Some(r)) => json!({ "message": format!("403 Forbidden - {r}") }),
            ApiError::InsufficientScope(scopes) => json!({
                "error": "insufficient_scope",
                "error_description": INSUFFICIENT_SCOPE_DESCRIPTION,
                "scope": scopes.join(" "),
            }),
            ApiError::NotFound(t) if t.is_empty() => json!({ "message": "404 Not Found" }),
            ApiError::NotFound(t) => json!({ "message": format!("404 {t} Not Found") }),
            ApiError::NoRoute => json!({ "error": "404 Not Found" }),
            ApiError::MethodNotAllowed => json!({ "message": "405 Method Not Allowed" }),
            ApiError::KeysetUnavailable => {
                json!({ "error": "Keyset pagination is not yet available for this type of request" })
            }
            ApiError::Conflict(m) | ApiError::Unprocessable(m) => json!({ "message": m }),
            ApiError::PayloadTooLarge => json!({ "message": "413 Request Entity Too Large" }),
            ApiError::UnsupportedMediaType => json!({ "message": "415 Unsupported Media Type" }),
            ApiError::Internal(_) => json!({ "message": "500 Internal Server Error" }),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_)
            | ApiError::Missing(_)
            | ApiError::InvalidParam(_)
            | ApiError::ParamRule(_)
            | ApiError::NotAllowedValue(_)
            | ApiError::Fields(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed | ApiError::KeysetUnavailable => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!("API request failed: {e:#}");
        }
        let mut r = HttpResponse::build(self.status_code());
        if let ApiError::InsufficientScope(scopes) = self {
            // RFC 6750's challenge, as GitLab sends it beside the JSON.
            r.insert_header((
                "WWW-Authenticate",
                format!(
                    "Bearer realm=\"gitpat\", error=\"insufficient_scope\", error_description=\"{INSUFFICIENT_SCOPE_DESCRIPTION}\", scope=\"{}\"",
                    scopes.join(" ")
                ),
            ));
        }
        r.json(self.body())
    }
}

/// Service errors as the API answers them. Handlers that owe a more exact
/// GitLab text (`404 User Not Found`, `Username has already been taken`)
/// map the service error themselves before this applies.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => ApiError::BadRequest(m),
            Error::Unauthorized(_) => ApiError::Unauthorized,
            Error::Forbidden(m) if m.is_empty() => ApiError::Forbidden(None),
            Error::Forbidden(m) => ApiError::Forbidden(Some(m)),
            Error::NotFound(_) => ApiError::NotFound(String::new()),
            Error::Conflict(m) => ApiError::Conflict(m),
            Error::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            ApiError::bad_request("x").body(),
            json!({"message": "400 Bad request - x"})
        );
        assert_eq!(
            ApiError::Missing(vec!["name".into(), "scopes".into()]).body(),
            json!({"error": "name is missing, scopes is missing"})
        );
        assert_eq!(
            ApiError::not_found("User").body(),
            json!({"message": "404 User Not Found"})
        );
        assert_eq!(ApiError::not_found("").body(), json!({"message": "404 Not Found"}));
        assert_eq!(ApiError::bad_request("").body(), json!({"message": "400 Bad request"}));
        assert_eq!(
            ApiError::Forbidden(Some("Must be admin to use sudo".into())).body(),
            json!({"message": "403 Forbidden - Must be admin to use sudo"})
        );
        assert_eq!(
            ApiError::InsufficientScope(vec!["api", "read_api"]).body()["scope"],
            json!("api read_api")
        );
        assert_eq!(
            ApiError::field("expires_at", "must be in the future").body(),
            json!({"message": {"expires_at": ["must be in the future"]}})
        );
        assert_eq!(
            ApiError::Internal(anyhow::anyhow!("secret detail")).body(),
            json!({"message": "500 Internal Server Error"})
        );
    }
}
