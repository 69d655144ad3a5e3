//! Git: repository paths and storage on disk. This module knows nothing of
//! HTTP or the database.

pub mod store;
