//! The rules: validation, transactions and the GitLab behaviours, over the
//! models in `db`. The CLI and the HTTP handlers call these; they never write
//! SQL themselves. Every function here is blocking: async callers go through
//! `web::block`.

pub mod access;
pub mod audit;
pub mod bans;
pub mod git_http;
pub mod leaks;
pub mod notify;
pub mod push_slots;
pub mod repos;
pub mod sessions;
pub mod sign_in;
pub mod tokens;
pub mod two_factor;
pub mod users;

use crate::db::{DbConn, DbPool, PooledConn};
use crate::error::{Error, Result};

use chrono::{DateTime, NaiveDate, Utc};

/// "Now", passed in so tests can move the clock.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Parses a date given as `YYYY-MM-DD`.
pub fn parse_date(field: &str, s: &str) -> crate::error::Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| crate::error::Error::Invalid(format!("{field} must be a date as YYYY-MM-DD, not {s:?}")))
}

/// Where a chain that checks a password gets its connections: one it is
/// lent (tests, the CLI), or a pool it takes one from for each step, so
/// that none is held while argon2 runs.
pub enum Conns<'a> {
    Lent(&'a mut DbConn),
    Pool(&'a DbPool),
}

pub enum ConnGuard<'a> {
    Lent(&'a mut DbConn),
    Pooled(Box<PooledConn>),
}

impl std::ops::Deref for ConnGuard<'_> {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        match self {
            ConnGuard::Lent(c) => c,
            ConnGuard::Pooled(c) => c,
        }
    }
}

impl std::ops::DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut DbConn {
        match self {
            ConnGuard::Lent(c) => c,
            ConnGuard::Pooled(c) => c,
        }
    }
}

impl Conns<'_> {
    pub fn get(&mut self) -> Result<ConnGuard<'_>> {
        Ok(match self {
            Conns::Lent(c) => ConnGuard::Lent(c),
            Conns::Pool(p) => {
                ConnGuard::Pooled(Box::new(p.get().map_err(|e| {
                    Error::Internal(anyhow::anyhow!("no database connection available: {e}"))
                })?))
            }
        })
    }
}
