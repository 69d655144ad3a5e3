//! gitpat: a Git smart-HTTP server whose credentials work like GitLab's
//! personal access tokens. See ARCHITECTURE.md for the map.

pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod fsutil;
pub mod git;
pub mod http;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod net;
pub mod redact;
pub mod service;
pub mod settings;
#[cfg(test)]
mod test_alloc;
pub mod tls;
pub mod web;
