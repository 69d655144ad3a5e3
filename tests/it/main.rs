//! One integration test binary (built once): the model rules on every
//! backend, and the CLI through the built binary.

mod support;

mod api_audit;
mod api_paging;
mod api_projects;
mod api_restricted;
mod api_settings;
mod api_tokens;
mod api_users;
mod backup;
mod cli;
mod fixtures;
mod git_auth;
mod git_fetch_cache;
mod git_http;
mod git_http_v2;
mod git_leak;
mod git_lfs;
mod git_load;
mod git_push;
mod git_restricted;
mod git_shallow_server;
mod mail;
mod models;
mod platform;
mod python_gitlab;
mod serve_ops;
mod serve_tls;
mod web_browser;
mod web_forms;
