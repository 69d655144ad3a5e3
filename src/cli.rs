//! The command line: `serve` and the admin commands. Results go to stdout
//! (one value, a table, or JSON with `--json`), errors to stderr with a
//! non-zero exit.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, Overrides};
use crate::db;
use crate::service::{self, repos, tokens, users};
use crate::settings::{Settings, KEYS};

#[derive(Debug, Parser)]
#[command(
    name = "gitpat",
    version,
    about = "A Git smart-HTTP server with GitLab-style personal access tokens"
)]
pub struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "GITPAT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the SQLite database, the repositories and the secret key live
    /// [default: ./gitpat-data].
    #[arg(long, global = true, env = "GITPAT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://...` selects PostgreSQL instead of the embedded SQLite.
    #[arg(long, global = true, env = "GITPAT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The instance secret key [default: <data-dir>/secret_key]; instances
    /// sharing one database must share it.
    #[arg(long, global = true, env = "GITPAT_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Certificates for https.
    #[command(subcommand)]
    Tls(TlsCmd),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage personal access tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage repositories.
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Read and change instance settings.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Token notices by mail (serve sends them by itself).
    #[command(subcommand)]
    Notify(NotifyCmd),
    /// Back up the database, the repositories and the secret key, or restore
    /// them into an empty data directory.
    #[command(subcommand)]
    Backup(BackupCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit events, newest first.
    List {
        /// Only events of this entity type: User or Gitlab::Audit::InstanceScope
        /// (GitLab's names; Group and Project find none).
        #[arg(long)]
        entity_type: Option<String>,
        /// Only events of this entity id.
        #[arg(long)]
        entity_id: Option<i64>,
        /// At most this many events [default: all].
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Write a consistent backup into DIR (empty or new), the server
    /// running or not.
    Create { dir: PathBuf },
    /// Restore the backup in DIR into an empty data directory (and, for
    /// PostgreSQL, an empty database).
    Restore { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "GITPAT_LISTEN")]
    listen: Option<String>,
    /// What makes packs for fetches: auto (git when on PATH), git or
    /// libgit2 [default: auto].
    #[arg(long, env = "GITPAT_PACK_ENGINE")]
    pack_engine: Option<String>,
    /// The URL clients reach gitpat at (`https://git.example.com`), for
    /// the URLs the API answers [default: as each request addressed us].
    #[arg(long, env = "GITPAT_EXTERNAL_URL")]
    external_url: Option<String>,
    /// Serve https with this certificate chain (PEM; read again on SIGHUP).
    #[arg(long, env = "GITPAT_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "GITPAT_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A second address, plain HTTP, that redirects every request to https.
    #[arg(long, env = "GITPAT_LISTEN_HTTP")]
    listen_http: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TlsCmd {
    /// Write a private CA and a certificate for HOST signed by it, for a
    /// quick start (clients must be told to trust the CA).
    SelfSigned {
        /// A name or IP address clients use (repeat for more).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// The folder to write cert.pem, key.pem and ca.pem in
        /// [default: <data-dir>/tls].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Run the expiry checks as of AT and send every notice that is due
    /// (for cron, and for tests).
    Run {
        /// An RFC 3339 instant such as 2026-12-24T01:00:00Z [default: now].
        #[arg(long)]
        at: Option<String>,
    },
    /// Print the mail a notice of a token would be.
    Preview {
        #[arg(long)]
        token_id: i64,
        /// expiring_<days>d (such as expiring_7d), expired, created, family_revoked or leaked.
        #[arg(long)]
        kind: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user; prints its id.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        /// Display name [default: the username].
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Block a user: none of their credentials work.
    Block { username: String },
    /// Unblock a user.
    Unblock { username: String },
    /// Two-factor authentication.
    #[command(subcommand, name = "two-factor")]
    TwoFactor(TwoFactorCmd),
}

#[derive(Debug, Subcommand)]
pub enum TwoFactorCmd {
    /// Enable with a new secret; prints the otpauth:// URI.
    Enable { username: String },
    /// Disable and forget the secret.
    Disable { username: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token; prints the token, nothing else. It is not shown again.
    Create(TokenCreate),
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token, by its string or its id.
    Revoke {
        /// The token string (`-` reads it from standard input).
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        token: Option<String>,
        #[arg(long)]
        id: Option<i64>,
    },
    /// Revoke a token and create its successor; prints the new token.
    Rotate {
        #[arg(long)]
        id: i64,
        /// YYYY-MM-DD [default: today + 7 days].
        #[arg(long)]
        expires_at: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreate {
    /// The owner's username.
    #[arg(long)]
    pub user: String,
    /// The token's name.
    #[arg(long)]
    pub name: String,
    /// Comma-separated: api, read_api, read_user, read_repository,
    /// write_repository, read_registry, write_registry, sudo.
    #[arg(long, value_delimiter = ',', required = true)]
    pub scopes: Vec<String>,
    /// YYYY-MM-DD; the token stops working at 00:00 UTC that day.
    #[arg(long)]
    pub expires_at: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// A predetermined token string of at least 20 characters (`-` reads it
    /// from standard input).
    #[arg(long)]
    pub token: Option<String>,
    /// An impersonation token (made by an admin on behalf of the user).
    #[arg(long)]
    pub impersonation: bool,
    /// Limit the token to these repositories (gitpat): comma-separated
    /// paths or namespace patterns, such as alice/tools,team/*,team/**.
    #[arg(long)]
    pub repositories: Option<String>,
    /// Limit the refs it may push to (gitpat): comma-separated git ref
    /// patterns, such as refs/heads/feature/*,refs/tags/v*.
    #[arg(long)]
    pub push_ref_patterns: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Create a repository; prints its id.
    Create {
        /// namespace/name, e.g. alice/tools.
        path: String,
        /// The owner [default: the user named by the first path segment].
        #[arg(long)]
        owner: Option<String>,
        /// private, internal or public [default: private].
        #[arg(long)]
        visibility: Option<String>,
        /// [default: main, or the imported repository's HEAD]
        #[arg(long)]
        default_branch: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Import the branches and tags of an existing repository.
        #[arg(long, value_name = "PATH_TO_REPO")]
        import: Option<PathBuf>,
    },
    /// List repositories.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a repository and everything in it.
    Delete { path: String },
    /// Repack a repository now: one pack with a bitmap (what a push with
    /// more than maintenance_pack_limit packs starts in the background).
    Gc { path: String },
    /// Manage members.
    #[command(subcommand)]
    Member(MemberCmd),
}

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Give a user a role in a repository.
    Add {
        path: String,
        username: String,
        /// guest, reporter, developer, maintainer or owner.
        #[arg(long)]
        role: String,
    },
    /// Take a user's role away.
    Remove { path: String, username: String },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// Print one setting's value, or every `key=value`.
    Get { key: Option<String> },
    /// Change a setting.
    Set { key: String, value: String },
}

fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(line)
}

fn secret_arg(value: Option<String>) -> anyhow::Result<Option<String>> {
    match value.as_deref() {
        Some("-") => Ok(Some(read_stdin_line("token")?)),
        _ => Ok(value),
    }
}

/// Prints rows as aligned columns under a header.
fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn json(out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let flags = match &cli.command {
        Command::Serve(a) => Some(a),
        _ => None,
    };
    let overrides = Overrides {
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        listen: flags.and_then(|a| a.listen.clone()),
        pack_engine: flags.and_then(|a| a.pack_engine.clone()),
        external_url: flags.and_then(|a| a.external_url.clone()),
        secret_key_file: cli.secret_key_file,
        tls_cert: flags.and_then(|a| a.tls_cert.clone()),
        tls_key: flags.and_then(|a| a.tls_key.clone()),
        listen_http: flags.and_then(|a| a.listen_http.clone()),
        log_format: std::env::var("GITPAT_LOG_FORMAT").ok().filter(|v| !v.trim().is_empty()),
    };
    let config = Config::load(cli.config.as_deref(), overrides)?;
    crate::logging::init(config.log_format);
    match cli.command {
        Command::Serve(_) => return serve(config),
        Command::Tls(TlsCmd::SelfSigned { hosts, out, days }) => {
            let dir = out.unwrap_or_else(|| config.data_dir.join("tls"));
            let port = config
                .listen
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(443);
            return tls_self_signed(&dir, &hosts, days, port, &mut std::io::stdout().lock());
        }
        Command::Backup(cmd) => return backup(&config, &cmd),
        _ => {}
    }
    let mut pool_config = config;
    pool_config.db_pool_size = 1;
    let app = App::open(pool_config)?;
    let mut conn = app.conn()?;
    let conn: &mut db::DbConn = &mut conn;
    let mut out = std::io::stdout().lock();
    let now = service::now();
    // The command line's changes are audited as `cli`, with no address.
    let actor = service::audit::Actor::cli();
    match cli.command {
        Command::Serve(_) | Command::Tls(_) | Command::Backup(_) => unreachable!("handled above"),
        Command::User(cmd) => match cmd {
            UserCmd::Create {
                username,
                email,
                name,
                admin,
                password_stdin,
            } => {
                let password = if password_stdin {
                    Some(read_stdin_line("password")?)
                } else {
                    None
                };
                let req = users::NewUserRequest {
                    username: &username,
                    email: &email,
                    name: name.as_deref(),
                    password: password.as_deref(),
                    is_admin: admin,
                };
                let user = users::create(conn, &actor, &req, now)?;
                writeln!(out, "{}", user.id)?;
            }
            UserCmd::List { json: as_json } => {
                let list: Vec<users::UserView> = db::user::list(conn)?.iter().map(users::UserView::from).collect();
                if as_json {
                    json(&mut out, &list)?;
                } else {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|u| {
                            vec![
                                u.id.to_string(),
                                u.username.clone(),
                                u.email.clone(),
                                u.state.clone(),
                                (if u.is_admin { "yes" } else { "no" }).into(),
                                (if u.two_factor_enabled { "yes" } else { "no" }).into(),
                                u.name.clone(),
                            ]
                        })
                        .collect();
                    table(
                        &mut out,
                        &["ID", "USERNAME", "EMAIL", "STATE", "ADMIN", "2FA", "NAME"],
                        &rows,
                    )?;
                }
            }
            UserCmd::Block { username } => {
                users::set_blocked(conn, &actor, &username, true, now)?;
            }
            UserCmd::Unblock { username } => {
                users::set_blocked(conn, &actor, &username, false, now)?;
            }
            UserCmd::TwoFactor(TwoFactorCmd::Enable { username }) => {
                writeln!(
                    out,
                    "{}",
                    users::enable_two_factor(conn, &app.key, &actor, &username, now)?
                )?;
            }
            UserCmd::TwoFactor(TwoFactorCmd::Disable { username }) => {
                users::disable_two_factor(conn, &actor, &username, now)?
            }
        },
        Command::Token(cmd) => {
            let settings = Settings::load(conn)?;
            match cmd {
                TokenCmd::Create(a) => {
                    let user = users::get(conn, &a.user)?;
                    let expires_at = a
                        .expires_at
                        .as_deref()
                        .map(|d| service::parse_date("--expires-at", d))
                        .transpose()?;
                    let token = secret_arg(a.token)?;
                    let req = tokens::NewTokenRequest {
                        user: &user,
                        name: &a.name,
                        description: a.description.as_deref(),
                        scopes: &a.scopes,
                        expires_at,
                        token: token.as_deref(),
                        impersonation: a.impersonation,
                        actor: &actor,
                    };
                    let split = |s: &Option<String>| s.as_deref().map(crate::auth::restriction::split_list);
                    let (repositories, push_ref_patterns) = (split(&a.repositories), split(&a.push_ref_patterns));
                    let limits = tokens::Limits {
                        repositories: repositories.as_deref(),
                        push_ref_patterns: push_ref_patterns.as_deref(),
                    };
                    let (_, plain) = tokens::create_limited(conn, &app.key, &settings, &req, limits, now)?;
                    writeln!(out, "{}", plain.expose())?;
                }
                TokenCmd::List { user, json: as_json } => {
                    let user_id = user.map(|u| users::get(conn, &u).map(|u| u.id)).transpose()?;
                    let today = now.date_naive();
                    let views: Vec<tokens::TokenView> = db::token::list(conn, user_id)?
                        .iter()
                        .map(|r| tokens::TokenView::new(r, &settings, today))
                        .collect();
                    if as_json {
                        json(&mut out, &views)?;
                    } else {
                        let rows: Vec<Vec<String>> = views
                            .iter()
                            .map(|t| {
                                vec![
                                    t.id.to_string(),
                                    t.user_id.to_string(),
                                    (if t.active { "yes" } else { "no" }).into(),
                                    t.expires_at.clone().unwrap_or_else(|| "never".into()),
                                    t.last_used_at.clone().unwrap_or_else(|| "never".into()),
                                    t.scopes.join(","),
                                    t.name.clone(),
                                ]
                            })
                            .collect();
                        table(
                            &mut out,
                            &["ID", "USER_ID", "ACTIVE", "EXPIRES", "LAST_USED", "SCOPES", "NAME"],
                            &rows,
                        )?;
                    }
                }
                TokenCmd::Revoke { token, id } => {
                    let id = match (secret_arg(token)?, id) {
                        (Some(s), _) => {
                            tokens::find_by_secret(conn, &app.key, &crate::auth::token::PlainToken::new(s))?.id
                        }
                        (None, Some(id)) => id,
                        (None, None) => bail!("give --token or --id"),
                    };
                    tokens::revoke(conn, &actor, id, now)?;
                }
                TokenCmd::Rotate { id, expires_at } => {
                    let expires_at = expires_at
                        .as_deref()
                        .map(|d| service::parse_date("--expires-at", d))
                        .transpose()?;
                    let (_, plain) = tokens::rotate(conn, &app.key, &settings, &actor, id, expires_at, now)?;
                    writeln!(out, "{}", plain.expose())?;
                }
            }
        }
        Command::Repo(cmd) => match cmd {
            RepoCmd::Create {
                path,
                owner,
                visibility,
                default_branch,
                description,
                import,
            } => {
                let req = repos::NewRepoRequest {
                    path: &path,
                    name: None,
                    owner: owner.as_deref(),
                    visibility: visibility.as_deref(),
                    default_branch: default_branch.as_deref(),
                    description: description.as_deref(),
                    import: import.as_deref(),
                };
                let p = repos::create(conn, &app.store, &req, now)?;
                writeln!(out, "{}", p.id)?;
            }
            RepoCmd::List { json: as_json } => {
                let list = repos::list(conn)?;
                if as_json {
                    json(&mut out, &list)?;
                } else {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                r.owner.clone(),
                                r.visibility.clone(),
                                r.default_branch.clone(),
                                r.path_with_namespace.clone(),
                            ]
                        })
                        .collect();
                    table(
                        &mut out,
                        &["ID", "OWNER", "VISIBILITY", "DEFAULT_BRANCH", "PATH"],
                        &rows,
                    )?;
                }
            }
            RepoCmd::Delete { path } => repos::delete(conn, &app.store, &path)?,
            RepoCmd::Gc { path } => {
                let o = repos::gc(conn, &app.store, &path)?;
                writeln!(out, "{path}: {} packs, now {}", o.packs_before, o.packs_after)?;
            }
            RepoCmd::Member(MemberCmd::Add { path, username, role }) => {
                repos::add_member(conn, &path, &username, &role, now)?
            }
            RepoCmd::Member(MemberCmd::Remove { path, username }) => repos::remove_member(conn, &path, &username)?,
        },
        Command::Notify(cmd) => notify(&app, conn, cmd, &mut out)?,
        Command::Settings(cmd) => match cmd {
            SettingsCmd::Get { key: Some(key) } => writeln!(out, "{}", Settings::load(conn)?.get(&key)?)?,
            SettingsCmd::Get { key: None } => {
                let s = Settings::load(conn)?;
                for k in KEYS {
                    writeln!(out, "{k}={}", s.get(k)?)?;
                }
            }
            SettingsCmd::Set { key, value } => {
                Settings::store(conn, &actor, &key, &value, now)?;
            }
        },
        Command::Audit(cmd) => audit(conn, cmd, &mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// `backup create` and `backup restore`: before `App::open`, which would
/// make the data directory a restore needs empty.
fn backup(config: &Config, cmd: &BackupCmd) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        BackupCmd::Create { dir } => {
            let c = crate::backup::create(config, dir)?;
            writeln!(
                out,
                "backed up the {} database, {} repositories ({} empty) and the secret key into {}",
                c.kind.name(),
                c.repositories,
                c.empty,
                dir.display()
            )?;
            for p in &c.missing {
                writeln!(out, "{p}: its folder was gone (deleted during the backup): kept empty")?;
            }
            for p in &c.left_out {
                writeln!(
                    out,
                    "{p}: left out, it has no row in the database snapshot (made since)"
                )?;
            }
        }
        BackupCmd::Restore { dir } => {
            let r = crate::backup::restore(config, dir)?;
            writeln!(
                out,
                "restored the backup of {}: the {} database, {} repositories and the secret key, into {}",
                r.created_at,
                r.kind.name(),
                r.repositories,
                config.data_dir.display()
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn audit(conn: &mut db::DbConn, cmd: AuditCmd, out: &mut impl Write) -> anyhow::Result<()> {
    let AuditCmd::List {
        entity_type,
        entity_id,
        limit,
        json: as_json,
    } = cmd;
    if let Some(t) = &entity_type {
        if !service::audit::ENTITY_TYPES.contains(&t.as_str()) {
            bail!(
                "--entity-type must be one of {}, not {t:?}",
                service::audit::ENTITY_TYPES.join(", ")
            );
        }
    }
    if limit.is_some_and(|l| l < 1) {
        bail!("--limit must be at least 1");
    }
    let q = db::audit_event::AuditQuery {
        entity_type,
        entity_id,
        ..Default::default()
    };
    let events = service::audit::list(conn, &q, limit)?;
    if as_json {
        let list: Vec<serde_json::Value> = events.iter().map(service::audit::view).collect();
        json(out, &list)?;
    } else {
        let rows: Vec<Vec<String>> = events.iter().map(service::audit::line).collect();
        table(
            out,
            &[
                "ID",
                "CREATED_AT",
                "EVENT",
                "AUTHOR",
                "ENTITY",
                "TARGET",
                "IP",
                "MESSAGE",
            ],
            &rows,
        )?;
    }
    Ok(())
}

fn site_of(app: &App) -> service::notify::Site {
    let from = crate::mail::from_address(&app.config.mail, app.config.external_url.as_deref());
    service::notify::Site::new(Some(&app.config.base_url()), from)
}

fn notify(app: &App, conn: &mut db::DbConn, cmd: NotifyCmd, out: &mut impl Write) -> anyhow::Result<()> {
    let settings = Settings::load(conn)?;
    let site = site_of(app);
    match cmd {
        NotifyCmd::Run { at } => {
            let at = match at {
                Some(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
                    .map_err(|e| anyhow::anyhow!("--at must be an RFC 3339 instant such as 2026-12-24T01:00:00Z: {e}"))?
                    .with_timezone(&chrono::Utc),
                None => service::now(),
            };
            let mailer = crate::mail::Mailer::from_config(&app.config.mail)?;
            if !mailer.is_on() {
                writeln!(
                    out,
                    "mail is off (see README: configuring mail): nothing checked or sent"
                )?;
                return Ok(());
            }
            let queued = service::notify::check_expiring(conn, &settings, at)?
                + service::notify::check_expired(conn, &settings, at)?;
            let d = service::notify::deliver(service::Conns::Lent(conn), &mailer, &site, &settings, at)?;
            writeln!(
                out,
                "queued {queued}; sent {}, skipped {}, failed {}",
                d.sent, d.skipped, d.failed
            )?;
        }
        NotifyCmd::Preview { token_id, kind } => {
            let m = service::notify::preview(conn, &site, &settings, token_id, &kind, service::now())?;
            writeln!(
                out,
                "To: {} <{}>\nSubject: {}\n\n{}",
                m.to_name, m.to, m.subject, m.text
            )?;
        }
    }
    Ok(())
}

/// How often `serve` looks for token notices to send.
const NOTIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// Sends token notices: the daily checks when due (01:00 and 02:00 UTC,
/// caught up after a downtime) and every queued notice, on the blocking
/// pool. With mail off it says so once and does nothing.
async fn notify_loop(app: App) {
    let mailer = match crate::mail::Mailer::from_config(&app.config.mail) {
        Ok(m) => std::sync::Arc::new(m),
        Err(e) => {
            tracing::error!("mail is misconfigured, no token notices are sent: {e:#}");
            return;
        }
    };
    if !mailer.is_on() {
        tracing::info!("mail is off: token notices (expiry, new tokens) are not sent");
        return;
    }
    let mut every = tokio::time::interval(NOTIFY_EVERY);
    loop {
        every.tick().await;
        let (app, mailer) = (app.clone(), mailer.clone());
        let done = crate::metrics::block(move || -> crate::error::Result<_> {
            let settings = app.settings();
            let now = service::now();
            service::notify::run_due_checks(&mut *app.conn()?, &settings, now)?;
            service::notify::deliver(service::Conns::Pool(&app.pool), &mailer, &site_of(&app), &settings, now)
        })
        .await;
        match done {
            Ok(Ok(d)) if d.sent + d.failed > 0 => {
                tracing::info!(
                    "token notices: {} sent, {} skipped, {} to retry",
                    d.sent,
                    d.skipped,
                    d.failed
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("token notices failed: {e}"),
            Err(e) => tracing::warn!("token notices failed: {e}"),
        }
    }
}

/// How often `serve` sweeps the leftovers of dead processes.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Sweeps the repositories folder at start and then hourly, on the
/// blocking pool.
async fn sweep_hourly(app: App) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        let app = app.clone();
        let swept = crate::metrics::block(move || -> anyhow::Result<_> {
            let mut conn = app.conn()?;
            // Audit events past their retention go too.
            match service::audit::purge(&mut conn, &app.settings(), service::now()) {
                Ok(0) => {}
                Ok(n) => tracing::info!("purged {n} audit events past audit_events_retention_days"),
                Err(e) => tracing::warn!("the purge of old audit events failed: {e}"),
            }
            Ok(service::repos::sweep(
                &mut conn,
                &app.store,
                std::time::SystemTime::now(),
            )?)
        })
        .await;
        match swept {
            Ok(Ok(s)) => tracing::info!(
                "swept leftovers: {} quarantines, {} lock files, {} temporary files, {} unfinished repositories",
                s.quarantines,
                s.locks,
                s.temporary,
                s.unfinished_creates.len()
            ),
            Ok(Err(e)) => tracing::warn!("the sweep of leftovers failed: {e:#}"),
            Err(e) => tracing::warn!("the sweep of leftovers failed: {e}"),
        }
    }
}

/// Drops expired pack cache entries now and then (they are dropped when
/// met, too), on the blocking pool: it removes files.
async fn purge_pack_cache(cache: std::sync::Arc<crate::git::pack_cache::PackCache>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        every.tick().await;
        let cache = cache.clone();
        let _ = crate::metrics::block(move || cache.purge()).await;
    }
}

/// Writes the pair and says how to serve it and trust it, at the port
/// gitpat listens on (`listen` of the config file, or the default).
fn tls_self_signed(
    dir: &std::path::Path,
    hosts: &[String],
    days: u32,
    port: u16,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let made = crate::tls::self_signed(dir, hosts, service::now().date_naive(), days)?;
    let host = hosts.first().map(String::as_str).unwrap_or("localhost");
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let origin = match port {
        443 => format!("https://{host}"),
        port => format!("https://{host}:{port}"),
    };
    writeln!(
        out,
        "wrote {cert} (the certificate for {names}, valid until {until}) and {key} (its key)\n\
         serve https with:\n  gitpat serve --tls-cert {cert} --tls-key {key}\n\
         clients must trust {ca}, the CA that signed it (its key was not kept):\n  \
         git -c http.sslCAInfo={ca} clone {origin}/<namespace>/<project>.git\n  \
         git config --global http.{origin}/.sslCAInfo {ca}\n  \
         curl --cacert {ca} {origin}/-/liveness",
        cert = made.cert.display(),
        key = made.key.display(),
        ca = made.ca.display(),
        names = hosts.join(", "),
        until = made.not_after,
    )?;
    Ok(())
}

use actix_web::rt::signal::unix::{signal, Signal, SignalKind};

/// The signals `serve` handles, caught from before it listens (a signal
/// that came between the first connection and the handlers' first poll
/// would otherwise have its default action: the end of the process).
struct Signals {
    term: std::io::Result<Signal>,
    int: std::io::Result<Signal>,
}

/// Stops the server on SIGTERM or SIGINT: no new connections, the requests
/// in flight finish (up to `shutdown_timeout_seconds`), then `serve`
/// returns and the process exits 0. A second signal stops at once.
async fn stop_on_signal(signals: Signals, handle: actix_server::ServerHandle, timeout: std::time::Duration) {
    let (Ok(mut term), Ok(mut int)) = (signals.term, signals.int) else {
        tracing::error!("cannot watch SIGTERM and SIGINT: stop the server with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        "{name}: stopping; requests in flight have {} s to finish",
        timeout.as_secs()
    );
    let stop = handle.stop(true);
    tokio::select! {
        _ = stop => tracing::info!("stopped"),
        _ = term.recv() => { tracing::warn!("SIGTERM again: stopping now"); handle.stop(false).await }
        _ = int.recv() => { tracing::warn!("SIGINT again: stopping now"); handle.stop(false).await }
    }
}

/// Reads the certificate and key again on each SIGHUP; a pair that does
/// not load leaves the one in use. Without TLS there is nothing to read
/// again, but SIGHUP is still caught (a `systemctl reload` must not stop
/// the server, which is what the signal's default would do).
async fn reload_on_sighup(hup: std::io::Result<Signal>, store: Option<std::sync::Arc<crate::tls::CertStore>>) {
    let Ok(mut hup) = hup else {
        tracing::error!("cannot watch SIGHUP: the certificate is read at start only");
        return;
    };
    while hup.recv().await.is_some() {
        let Some(store) = store.clone() else {
            tracing::info!("SIGHUP: nothing to reload (serving without TLS)");
            continue;
        };
        match crate::metrics::block(move || store.reload()).await {
            Ok(Ok(loaded)) => tracing::info!("SIGHUP: now serving {loaded}"),
            Ok(Err(e)) => tracing::error!("SIGHUP: {e}; still serving the certificate loaded before"),
            Err(e) => tracing::error!("SIGHUP: the reload did not run: {e}"),
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen.clone();
    let listen_http = config.listen_http.clone();
    let metrics_listen = config.metrics_listen.clone();
    tracing::info!(
        "data directory {}, database {}",
        config.data_dir.display(),
        db::redact_url(&config.database_url)
    );
    let tls = match &config.tls {
        Some(files) => {
            let (store, loaded) = crate::tls::CertStore::open(files)?;
            tracing::info!("https with {loaded} from {}", files.cert.display());
            Some(store)
        }
        None => None,
    };
    let app = App::open(config)?.with_pack_cache()?;
    tracing::info!("pack engine: {}", app.engine.name());
    match &app.config.pack_cache {
        Some(c) => tracing::info!(
            "pack cache in {}: entries kept {} s, at most {} MiB",
            c.dir.display(),
            c.max_age.as_secs(),
            c.max_bytes >> 20
        ),
        None => tracing::info!("pack cache off"),
    }
    {
        let mut conn = app.conn()?;
        if let Some(path) = users::ensure_initial_root(&mut conn, &app.config.data_dir, service::now())? {
            tracing::info!(
                "created the administrator {}; its password is in {}",
                users::ROOT_USERNAME,
                path.display()
            );
        }
    }
    let shutdown_timeout = app.config.shutdown_timeout;
    let scheme = app.config.scheme();
    actix_web::rt::System::new().block_on(async move {
        actix_web::rt::spawn(sweep_hourly(app.clone()));
        actix_web::rt::spawn(notify_loop(app.clone()));
        if let Some(cache) = app.pack_cache.clone() {
            actix_web::rt::spawn(purge_pack_cache(cache));
        }
        let signals = Signals {
            term: signal(SignalKind::terminate()),
            int: signal(SignalKind::interrupt()),
        };
        actix_web::rt::spawn(reload_on_sighup(signal(SignalKind::hangup()), tls.clone()));
        let running = crate::http::server::start(
            app,
            crate::http::server::Listen {
                main: &listen,
                tls,
                redirect: listen_http.as_deref(),
                metrics: metrics_listen.as_deref(),
            },
        )?;
        for a in &running.main {
            tracing::info!("gitpat listening on {scheme}://{a}");
        }
        for a in &running.redirect {
            tracing::info!("redirecting http://{a} to https");
        }
        for a in &running.metrics {
            tracing::info!("metrics on http://{a}/-/metrics");
        }
        actix_web::rt::spawn(stop_on_signal(signals, running.server.handle(), shutdown_timeout));
        let stopped = running.server.await.context("the server stopped with an error");
        wait_for_cleanup().await;
        stopped
    })
}

/// After a stop, requests cut by the deadline are dropped on their
/// workers' threads while this one returns: wait (a little) for what they
/// hold (quarantines, locks, staging folders) to be removed before the
/// process exits, rather than leave it to the next start's sweep.
async fn wait_for_cleanup() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::git::sweep::held_count() > 0 {
        if std::time::Instant::now() > deadline {
            tracing::warn!(
                "{} leftovers of cut requests remain; the next start sweeps them",
                crate::git::sweep::held_count()
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
