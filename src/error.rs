//! The error type of the service layer, and what each kind means to a caller
//! (an HTTP status, a CLI exit). Messages are written for a person.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The input is wrong; the message says how. HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// Authentication failed. HTTP 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed. HTTP 403.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing (or not visible to the caller). HTTP 404.
    #[error("{0}")]
    NotFound(String),
    /// The name is taken, or the state forbids it. HTTP 409.
    #[error("{0}")]
    Conflict(String),
    /// Anything else: a bug or the environment. HTTP 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        Error::Internal(anyhow::Error::new(e).context("database query failed"))
    }
}

impl From<git2::Error> for Error {
    fn from(e: git2::Error) -> Self {
        Error::Internal(anyhow::Error::new(e).context("repository operation failed"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

pub fn not_found<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::NotFound(msg.into()))
}
