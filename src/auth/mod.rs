//! Credentials: tokens (generation, digests, scopes), passwords (argon2id),
//! and two-factor secrets (TOTP). Nothing here touches the database.

pub mod basic;
pub mod password;
pub mod restriction;
pub mod token;
pub mod totp;
