//! A Git request's one chain (spec section 3), from credentials to a
//! [`Grant`] or a [`Denied`]: the client's ban, the password tried as a
//! token first (any username, empty included), then as the user's password
//! where passwords are allowed (decided before the password is checked, so
//! the answer is the same whatever the password), the account lock, the
//! repository path (push-to-create in one's own namespace; a restricted
//! token's repository patterns), roles and
//! scopes, and last the token's record of use, once the request is
//! authorized. Failures count against the client and, for passwords, the
//! account (`service::bans`).

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::auth::basic::BasicCredentials;
use crate::auth::password;
use crate::auth::token::{self, Scope, SecretKey};
use crate::db::{self, project::Project, token::TokenRow, user::User, DbConn};
use crate::error::{Error, Result};
use crate::git::store::RepoPath;
use crate::metrics::AuthResult;
use crate::service::access;
use crate::service::bans;
use crate::service::tokens::{self, AuthOutcome};
use crate::service::Conns;
use crate::settings::Settings;

pub const ACCESS_DENIED: &str = "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped.";
pub const TOKEN_REQUIRED: &str = "HTTP Basic: Access denied. You must use a personal access token with 'read_repository' or 'write_repository' scope for Git over HTTP.";
pub const NOT_FOUND: &str =
    "The project you were looking for could not be found or you don't have permission to view it.";
pub const CANNOT_DOWNLOAD: &str = "You are not allowed to download code.";
pub const CANNOT_UPLOAD: &str = "You are not allowed to upload code.";
pub const BANNED: &str = "Too many failed authentication attempts from this IP";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Pull,
    Push,
}

/// An authenticated Git caller: by token (with its scopes) or by password.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token: Option<TokenRow>,
}

impl Caller {
    /// What the token is limited to (nothing for a password, or a GitLab
    /// token).
    pub fn restriction(&self) -> crate::auth::restriction::Restriction {
        self.token.as_ref().map(tokens::restriction).unwrap_or_default()
    }

    /// May this credential, whatever the repository, do `op`? A password
    /// may do what the user may; a token only what its scopes allow.
    pub fn scope_allows(&self, op: Operation) -> bool {
        let Some(t) = &self.token else { return true };
        token::scopes_from_db(&t.scopes).into_iter().any(|s| match op {
            Operation::Pull => Scope::allows_git_pull(s),
            Operation::Push => Scope::allows_git_push(s),
        })
    }
}

/// A refusal, with what the HTTP layer must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401 with `WWW-Authenticate: Basic`, so git asks for credentials.
    Challenge(Cow<'static, str>),
    /// 401 without a challenge, so git stops asking (2FA user, password).
    NoChallenge(Cow<'static, str>),
    /// 403.
    Forbidden(Cow<'static, str>),
    /// 404, the same answer as for a repository that does not exist.
    NotFound,
}

impl Denied {
    pub fn message(&self) -> &str {
        match self {
            Denied::Challenge(m) | Denied::NoChallenge(m) | Denied::Forbidden(m) => m,
            Denied::NotFound => NOT_FOUND,
        }
    }

    /// Refusals that count as a failed authentication.
    fn is_auth_failure(&self) -> bool {
        matches!(self, Denied::Challenge(_) | Denied::NoChallenge(_))
    }
}

fn denied_access() -> Denied {
    Denied::Challenge(ACCESS_DENIED.into())
}

/// The credentials of a request, as the HTTP layer found them.
#[derive(Debug)]
pub enum Creds {
    None,
    /// An `Authorization` header that is not valid Basic credentials.
    Malformed,
    Basic(BasicCredentials),
}

/// One Git request to authorize.
#[derive(Debug)]
pub struct GitRequest {
    /// The repository path as the URL spells it.
    pub repo: String,
    pub op: Operation,
    pub creds: Creds,
    /// The client (behind trusted proxies, the one they name).
    pub ip: Option<IpAddr>,
    pub now: DateTime<Utc>,
}

/// What a Git request may go on with.
#[derive(Debug, Clone)]
pub struct Grant {
    pub caller: Option<Caller>,
    /// `None` only for a push that will create the repository.
    pub project: Option<Project>,
    /// The repository's path as it was created (whatever the URL's casing).
    pub path: RepoPath,
}

/// Authenticates and authorizes `req` (blocking; a connection is held
/// for the database steps, never across the client's I/O or argon2).
pub fn grant(
    mut db: Conns<'_>,
    key: &SecretKey,
    settings: &Settings,
    req: &GitRequest,
) -> Result<Result<Grant, Denied>> {
    // One connection for the whole request, but given back while argon2
    // checks a password (the one slow step).
    let mut conn = db.get()?;
    let banned = match req.ip {
        Some(ip) => bans::client_banned(&mut conn, settings, ip, req.now)?,
        None => None,
    };
    let outcome = match authenticate(&mut conn, key, settings, req, banned)? {
        Step::Done(outcome) => outcome,
        Step::Dummy => {
            drop(conn);
            if let Creds::Basic(c) = &req.creds {
                password::verify_dummy(&c.password);
            }
            conn = db.get()?;
            crate::metrics::get().auth(AuthResult::PasswordWrong);
            Err(denied_access())
        }
        Step::Password { user, hash } => {
            drop(conn);
            let right = matches!(&req.creds, Creds::Basic(c) if password::verify(&c.password, &hash));
            conn = db.get()?;
            crate::metrics::get().auth(if right {
                AuthResult::PasswordOk
            } else {
                AuthResult::PasswordWrong
            });
            if !right {
                bans::password_failed(&mut conn, settings, &user.username, req.now)?;
                Err(denied_access())
            } else {
                bans::password_succeeded(&mut conn, &user.username, req.now)?;
                if user.is_blocked() {
                    Err(denied_access())
                } else {
                    Ok(Some(Caller { user, token: None }))
                }
            }
        }
    };
    let conn = &mut *conn;
    let caller = match outcome {
        Ok(c) => c,
        Err(d) => {
            // A banned client's refusals cost no write.
            if let (true, None, Some(ip)) = (d.is_auth_failure(), banned, req.ip) {
                bans::client_failed(conn, settings, ip, req.now)?;
            }
            return Ok(Err(d));
        }
    };
    let granted = locate(conn, caller, req)?;
    // The token's use is recorded once the request is authorized.
    if let Ok(Grant {
        caller: Some(Caller { token: Some(t), .. }),
        ..
    }) = &granted
    {
        let ip = req.ip.map(|i| i.to_string());
        tokens::note_use(conn, settings, t.clone(), ip.as_deref(), req.now)?;
    }
    Ok(granted)
}

/// Where authentication stands once the database has been asked.
// One per request, gone at once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Step {
    Done(std::result::Result<Option<Caller>, Denied>),
    /// No such account: argon2 all the same, so that timing tells nothing.
    Dummy,
    /// Check the password against the account's hash.
    Password {
        user: User,
        hash: String,
    },
}

/// Who is calling, as far as the database tells: `Done(Ok(None))` for an
/// anonymous request.
fn authenticate(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    req: &GitRequest,
    banned: Option<DateTime<Utc>>,
) -> Result<Step> {
    // Each attempt is counted once in the metrics: `count` is false where
    // a token's refusal (revoked, expired, ...) was counted already.
    let refused = |banned: Option<DateTime<Utc>>, count: bool| {
        Step::Done(Err(match banned {
            Some(until) => {
                if count {
                    crate::metrics::get().auth(AuthResult::Banned);
                }
                Denied::Forbidden(bans::banned_message(until).into())
            }
            None => denied_access(),
        }))
    };
    let c = match &req.creds {
        Creds::None => return Ok(Step::Done(Ok(None))),
        Creds::Malformed => return Ok(refused(banned, true)),
        Creds::Basic(c) => c,
    };
    if c.password.is_empty() {
        return Ok(refused(banned, true));
    }
    // A token, whatever the username (GitLab ignores it), even when banned.
    let ip = req.ip.map(|i| i.to_string());
    match tokens::verify(conn, key, settings, &c.password, ip.as_deref(), req.now)? {
        AuthOutcome::Ok(b) => {
            let (token, user) = *b;
            return Ok(Step::Done(Ok(Some(Caller {
                user,
                token: Some(token),
            }))));
        }
        AuthOutcome::Rejected(tokens::Rejection::Unknown) => {}
        AuthOutcome::Rejected(_) => return Ok(refused(banned, false)),
    }
    // A password: never checked for a banned client.
    if banned.is_some() || c.username.is_empty() {
        return Ok(refused(banned, true));
    }
    let user = db::user::find_by_username(conn, &c.username)?;
    // Where passwords are refused, they are refused unchecked: the same
    // answer, right password or wrong.
    if !settings.password_authentication_enabled_for_git || user.as_ref().is_some_and(|u| u.two_factor_enabled) {
        crate::metrics::get().auth(AuthResult::PasswordRefused);
        return Ok(Step::Done(Err(Denied::NoChallenge(TOKEN_REQUIRED.into()))));
    }
    let Some((user, hash)) = user.and_then(|u| u.password_hash.clone().map(|h| (u, h))) else {
        return Ok(Step::Dummy);
    };
    if let Some(until) = bans::account_locked(conn, &user.username, req.now)? {
        crate::metrics::get().auth(AuthResult::AccountLocked);
        return Ok(Step::Done(Err(Denied::NoChallenge(bans::locked_message(until).into()))));
    }
    Ok(Step::Password { user, hash })
}

/// The repository of the request, and whether `caller` may do its
/// operation there.
fn locate(conn: &mut DbConn, caller: Option<Caller>, req: &GitRequest) -> Result<Result<Grant, Denied>> {
    let Ok(path) = RepoPath::parse(&req.repo) else {
        return Ok(Err(if caller.is_some() {
            Denied::NotFound
        } else {
            denied_access()
        }));
    };
    // A restricted token sees no repository outside its patterns, to push
    // to, to pull from or to create.
    if caller
        .as_ref()
        .is_some_and(|c| !c.restriction().allows_repo(path.as_str()))
    {
        return Ok(Err(Denied::NotFound));
    }
    let project = db::project::find_by_path(conn, path.as_str())?;
    if project.is_none() && req.op == Operation::Push {
        if let Some(c) = &caller {
            // Push to create, inside the pusher's own namespace only.
            let own = path.namespace().eq_ignore_ascii_case(&c.user.username);
            if own && c.scope_allows(Operation::Push) {
                // The namespace as the user spells it, whatever the URL's casing.
                let canonical = RepoPath::parse(&format!("{}/{}", c.user.username, path.name()))
                    .map_err(|e| Error::Internal(anyhow::anyhow!("username as a namespace: {e}")))?;
                return Ok(Ok(Grant {
                    caller,
                    project: None,
                    path: canonical,
                }));
            }
        }
    }
    // Paths are unique without regard to case: serve the repository under
    // the path it was created with, whatever the URL's casing.
    let path = match &project {
        Some(p) => RepoPath::parse(&p.path)
            .map_err(|e| Error::Internal(anyhow::anyhow!("stored project path {:?}: {e}", p.path)))?,
        None => path,
    };
    Ok(
        match authorize(conn, caller.as_ref(), project.as_ref(), req.op, req.now.date_naive())? {
            Ok(()) => Ok(Grant { caller, project, path }),
            Err(d) => Err(d),
        },
    )
}

/// May `caller` do `op` in `project` (None: no such repository)?
pub fn authorize(
    conn: &mut DbConn,
    caller: Option<&Caller>,
    project: Option<&Project>,
    op: Operation,
    today: chrono::NaiveDate,
) -> Result<Result<(), Denied>> {
    let Some(project) = project else {
        // No existence leak; but an anonymous caller is asked to sign in.
        return Ok(Err(match caller {
            None => denied_access(),
            Some(_) => Denied::NotFound,
        }));
    };
    let a = access::access(conn, caller.map(|c| &c.user), project, today)?;
    let Some(caller) = caller else {
        return Ok(match op {
            Operation::Pull if a.pull => Ok(()),
            _ => Err(denied_access()),
        });
    };
    if !a.see {
        return Ok(Err(Denied::NotFound));
    }
    Ok(match op {
        Operation::Pull if !(a.pull && caller.scope_allows(Operation::Pull)) => {
            Err(Denied::Forbidden(CANNOT_DOWNLOAD.into()))
        }
        Operation::Push if !(a.push && caller.scope_allows(Operation::Push)) => {
            Err(Denied::Forbidden(CANNOT_UPLOAD.into()))
        }
        _ => Ok(()),
    })
}
