//! Credentials: tokens (generation, digests, scopes), passwords (argon2id),
//! two-factor secrets (TOTP), and the sealing of secrets kept to be read
//! back. Nothing here touches the database.

pub mod basic;
pub mod password;
pub mod restriction;
pub mod seal;
pub mod token;
pub mod totp;
