//! Who is calling the API (spec section 4): the token from `PRIVATE-TOKEN`,
//! `private_token` or `Authorization: Bearer`; the endpoint's scope rule;
//! and Sudo. Credentials are read from the request without the database
//! ([`Credentials::read`]); [`authenticate`] then runs on a blocking thread,
//! where it also records the token's use (the service layer does that, and
//! the family revocation when a rotated-away token comes back).

use std::fmt;
use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::params::Params;
use crate::auth::token::{self, Scope, SecretKey};
use crate::db::{self, token::TokenRow, user::User, DbConn};
use crate::service::bans;
use crate::service::tokens::{self, AuthOutcome, Rejection};
use crate::settings::Settings;

/// What a request presented. `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct Credentials {
    token: Option<String>,
    /// The `Sudo` header or `sudo` parameter: a user id or username.
    pub sudo: Option<String>,
    /// An `Authorization` header was sent but held no token.
    pub malformed: bool,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("sudo", &self.sudo)
            .finish()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl Credentials {
    /// The token from, in this order, the `PRIVATE-TOKEN` header, the
    /// `private_token` parameter (query or body), an `Authorization:
    /// Bearer` header, or the OAuth-style `access_token` parameter (GitLab
    /// takes a personal access token there too); Sudo from the `Sudo`
    /// header, else the `sudo` parameter.
    pub fn read(headers: &HeaderMap, params: &Params) -> Credentials {
        let param = |name: &str| {
            params
                .str(name)
                .ok()
                .flatten()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let bearer = || {
            header(headers, AUTHORIZATION.as_str()).and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                let rest = rest.trim();
                (scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty()).then(|| rest.to_string())
            })
        };
        let token = header(headers, "private-token")
            .map(String::from)
            .or_else(|| param("private_token"))
            .or_else(bearer)
            .or_else(|| param("access_token"));
        let sudo = header(headers, "sudo").map(String::from).or_else(|| param("sudo"));
        // An Authorization header that gave no token: a failed attempt.
        let malformed = token.is_none() && headers.contains_key(AUTHORIZATION);
        Credentials { token, sudo, malformed }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }
}

/// Which token scopes an endpoint accepts (spec section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `api`; `read_api` too for GET and HEAD. The default.
    Api,
    /// As `Api`, and `read_user` for GET and HEAD (the `/user` and `/users`
    /// endpoints, `/version`).
    ReadUser,
    /// Any scope at all (`GET`/`DELETE /personal_access_tokens/self`).
    AnyScope,
}

impl Policy {
    /// The scopes that would do, in the order the `scope` member lists them.
    pub fn accepted(self, read: bool) -> Vec<Scope> {
        match (self, read) {
            (Policy::AnyScope, _) => Scope::ALL.to_vec(),
            (Policy::Api, true) => vec![Scope::Api, Scope::ReadApi],
            (Policy::ReadUser, true) => vec![Scope::Api, Scope::ReadApi, Scope::ReadUser],
            (_, false) => vec![Scope::Api],
        }
    }
}

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whom the request acts as: the token's owner, or the Sudo user.
    pub user: User,
    /// The token that authenticated the request.
    pub token: TokenRow,
    /// The administrator who used Sudo, if the request did.
    pub sudo_by: Option<User>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.is_admin
    }

    /// `403 Forbidden` unless the acting user is an administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// GitLab's answer to a blocked user (their own token, or Sudo to them).
pub const BLOCKED: &str = "Your account has been blocked.";

/// A bad token or `Authorization` header counts against the client, as a
/// bad Git password does (unless it is banned already: no write then).
fn failed(conn: &mut DbConn, settings: &Settings, ip: Option<IpAddr>, now: DateTime<Utc>) -> Result<(), ApiError> {
    let Some(ip) = ip else { return Ok(()) };
    if bans::client_banned(conn, settings, ip, now)?.is_none() {
        bans::client_failed(conn, settings, ip, now)?;
    }
    Ok(())
}

/// Authenticates the credentials, checks that the token has one of the
/// `accepted` scopes (see [`Policy::accepted`]) and applies Sudo. Blocking.
pub fn authenticate(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    creds: &Credentials,
    ip: Option<IpAddr>,
    accepted: Vec<Scope>,
    now: DateTime<Utc>,
) -> Result<Caller, ApiError> {
    let Some(secret) = creds.token.as_deref() else {
        if creds.malformed {
            failed(conn, settings, ip, now)?;
        }
        return Err(ApiError::Unauthorized);
    };
    let ip_text = ip.map(|i| i.to_string());
    let (token_row, user) = match tokens::verify(conn, key, settings, secret, ip_text.as_deref(), now)? {
        AuthOutcome::Ok(b) => *b,
        // GitLab's answer to a blocked user's valid token.
        AuthOutcome::Rejected(Rejection::UserBlocked) => return Err(ApiError::Forbidden(Some(BLOCKED.into()))),
        AuthOutcome::Rejected(why) => {
            if matches!(why, Rejection::Unknown) {
                crate::metrics::get().auth(crate::metrics::AuthResult::TokenUnknown);
            }
            tracing::debug!(?why, "API token refused");
            failed(conn, settings, ip, now)?;
            return Err(ApiError::Unauthorized);
        }
    };
    let ip_text = ip.map(|i| i.to_string());
    let ip = ip_text.as_deref();
    let scopes = token::scopes_from_db(&token_row.scopes);
    if !scopes.iter().any(|s| accepted.contains(s)) {
        return Err(ApiError::InsufficientScope(
            accepted.into_iter().map(Scope::as_str).collect(),
        ));
    }
    // Use is recorded once the request is let in (its scope, and Sudo's
    // rules, passed): a refused request writes nothing.
    let Some(target) = creds.sudo.as_deref() else {
        return Ok(Caller {
            user,
            token: tokens::note_use(conn, settings, token_row, ip, now)?,
            sudo_by: None,
        });
    };
    if !user.is_admin {
        return Err(ApiError::Forbidden(Some("Must be admin to use sudo".into())));
    }
    if !scopes.contains(&Scope::Sudo) {
        return Err(ApiError::InsufficientScope(vec![Scope::Sudo.as_str()]));
    }
    let found = if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) {
        match target.parse::<i64>() {
            Ok(id) => db::user::find(conn, id)?,
            Err(_) => None,
        }
    } else {
        db::user::find_by_username(conn, target)?
    };
    let Some(as_user) = found else {
        let shown: String = target.chars().take(255).collect();
        return Err(ApiError::NotFound(format!("User with ID or username '{shown}'")));
    };
    if as_user.is_blocked() {
        // Sudo acts as the user would, and a blocked user may not.
        return Err(ApiError::Forbidden(Some(BLOCKED.into())));
    }
    Ok(Caller {
        user: as_user,
        token: tokens::note_use(conn, settings, token_row, ip, now)?,
        sudo_by: Some(user),
    })
}

/// The audit event of `admin` acting as `user` through Sudo on `method
/// path` (the path only: a query may carry a token) with token `token_id`.
#[allow(clippy::too_many_arguments)]
pub fn record_sudo(
    conn: &mut DbConn,
    admin: &User,
    user: &User,
    token_id: i64,
    method: &str,
    path: &str,
    ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    use crate::service::audit::{self, Actor, Event, Via};
    let event = Event::on_user(
        "user_impersonated_with_sudo",
        user,
        format!("{} acted as {} with Sudo", admin.username, user.username),
    )
    .with("method", method)
    .with("path", audit::clip(path))
    .with("token_id", token_id);
    audit::record(
        conn,
        &Actor::user(admin, Via::Api, ip.map(|i| i.to_string())),
        event,
        now,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn token_sources_in_order() {
        let q = Params::from_query("private_token=fromquery&sudo=bob");
        let c = Credentials::read(&headers(&[("PRIVATE-TOKEN", "fromheader")]), &q);
        assert_eq!(c.token.as_deref(), Some("fromheader"));
        assert_eq!(c.sudo.as_deref(), Some("bob"));
        let c = Credentials::read(&headers(&[("Authorization", "Bearer b")]), &q);
        assert_eq!(c.token.as_deref(), Some("fromquery"));
        let c = Credentials::read(
            &headers(&[("Authorization", "Bearer  tok "), ("Sudo", "7")]),
            &Params::default(),
        );
        assert_eq!(c.token.as_deref(), Some("tok"));
        assert_eq!(c.sudo.as_deref(), Some("7"));
        let c = Credentials::read(&headers(&[("Authorization", "Basic eDp5")]), &Params::default());
        assert!(!c.has_token());
        assert!(!format!("{c:?}").contains("eDp5"));
        let c = Credentials::read(&headers(&[("PRIVATE-TOKEN", "glpat-secretsecret")]), &q);
        assert!(!format!("{c:?}").contains("secretsecret"));
    }

    #[test]
    fn scope_rules() {
        use Scope::*;
        assert_eq!(Policy::Api.accepted(true), vec![Api, ReadApi]);
        assert_eq!(Policy::Api.accepted(false), vec![Api]);
        assert_eq!(Policy::ReadUser.accepted(true), vec![Api, ReadApi, ReadUser]);
        assert_eq!(Policy::ReadUser.accepted(false), vec![Api]);
        assert_eq!(Policy::AnyScope.accepted(false).len(), Scope::ALL.len());
    }
}
