//! The rules: validation, transactions and the GitLab behaviours, over the
//! models in `db`. The CLI and the HTTP handlers call these; they never write
//! SQL themselves. Every function here is blocking: async callers go through
//! `web::block`.

pub mod access;
pub mod bans;
pub mod git_http;
pub mod push_slots;
pub mod repos;
pub mod tokens;
pub mod users;

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
