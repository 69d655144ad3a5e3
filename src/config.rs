//! Configuration: defaults that work with no file, then a TOML file
//! (`--config`), then `GITPAT_*` environment variables and flags (clap merges
//! those two, the flag winning).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./gitpat-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// A Git request body silent this long is given up: generous, since a
/// pushing git may think a while between its commands and its pack.
pub const DEFAULT_BODY_IDLE_TIMEOUT_SECONDS: u64 = 120;

#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite database, `repositories/` and the secret key live here.
    pub data_dir: PathBuf,
    /// `postgres://...` for PostgreSQL; otherwise the SQLite file.
    pub database_url: String,
    pub listen: String,
    pub secret_key_file: PathBuf,
    pub db_pool_size: u32,
    /// `auto` (git when found on PATH), `git` or `libgit2`.
    pub pack_engine: String,
    /// How long a Git request body may stall before the request is given
    /// up (file key `body_idle_timeout_seconds`).
    pub body_idle_timeout: std::time::Duration,
    /// `scheme://host[:port][/prefix]` clients use, without a trailing
    /// `/`; `None`: each request's own.
    pub external_url: Option<String>,
    /// How mail goes out (off by default).
    pub mail: MailConfig,
    /// The pack cache of `serve` (`None`: off).
    pub pack_cache: Option<crate::git::pack_cache::PackCacheConfig>,
    /// https on `listen` with this certificate (`None`: plain HTTP).
    pub tls: Option<TlsConfig>,
    /// A second address, plain HTTP, that only redirects to https.
    pub listen_http: Option<String>,
    /// `Strict-Transport-Security: max-age=...` on https answers (0: none).
    pub hsts_max_age_seconds: u64,
    /// How long a stopping server waits for the requests in flight.
    pub shutdown_timeout: std::time::Duration,
    pub log_format: LogFormat,
    /// Who may read `/-/metrics` on the main listener.
    pub metrics_allowlist: Vec<crate::net::Cidr>,
    /// A listener of its own for `/-/metrics` (and the health checks),
    /// open to anyone who reaches it.
    pub metrics_listen: Option<String>,
}

/// The certificate chain and private key files (PEM) of https; both are
/// read again on SIGHUP.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => anyhow::bail!("log_format must be text or json, not {other:?}"),
        }
    }
}

/// GitLab's HSTS default (two years).
pub const DEFAULT_HSTS_MAX_AGE_SECONDS: u64 = 63_072_000;
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: u64 = 60;
/// GitLab's monitoring allowlist default: the loopback addresses.
pub const DEFAULT_METRICS_ALLOWLIST: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// How a mail leaves: SMTP, the local sendmail, `.eml` files in a folder
/// (development), or not at all.
#[derive(Debug, Clone, Default)]
pub struct MailConfig {
    pub transport: MailTransport,
    /// The From address; `None`: `gitpat@<host of external_url>`.
    pub from: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub enum MailTransport {
    #[default]
    Off,
    Smtp(SmtpConfig),
    Sendmail,
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

/// `Debug` hides the password.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's (a private
    /// mail server's own CA).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The keys a config file may hold; an unknown key is an error, not a
/// silent typo.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub db_pool_size: Option<u32>,
    pub pack_engine: Option<String>,
    pub body_idle_timeout_seconds: Option<u64>,
    pub external_url: Option<String>,
    /// The pack cache: on (default) or off.
    pub pack_cache: Option<bool>,
    pub pack_cache_max_age_seconds: Option<u64>,
    /// Default: a tenth of the disk space free at start.
    pub pack_cache_max_bytes: Option<u64>,
    /// `smtp`, `sendmail`, `file` or `off` (default: `smtp` when
    /// `smtp_host` is set, else off).
    pub mail: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_tls: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password_file: Option<PathBuf>,
    pub smtp_ca_file: Option<PathBuf>,
    /// Refused with a sentence: the password never goes in this file.
    pub smtp_password: Option<toml::Value>,
    pub mail_from: Option<String>,
    /// The folder of `mail = "file"`.
    pub mail_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub listen_http: Option<String>,
    pub hsts_max_age_seconds: Option<u64>,
    pub shutdown_timeout_seconds: Option<u64>,
    /// `text` (default) or `json`.
    pub log_format: Option<String>,
    /// CIDR blocks allowed to read `/-/metrics` (default: loopback).
    pub metrics_allowlist: Option<Vec<String>>,
    pub metrics_listen: Option<String>,
}

/// The mail settings of the file, with `GITPAT_*` variables over them.
fn mail_config(f: &FileConfig, data_dir: &Path) -> anyhow::Result<MailConfig> {
    if f.smtp_password.is_some() {
        anyhow::bail!(
            "the config file may not hold smtp_password: put the SMTP password in GITPAT_SMTP_PASSWORD or in a file named by smtp_password_file"
        );
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let host = env("GITPAT_SMTP_HOST").or_else(|| f.smtp_host.clone());
    let kind = env("GITPAT_MAIL").or_else(|| f.mail.clone()).unwrap_or_else(|| {
        if host.is_some() {
            "smtp".into()
        } else {
            "off".into()
        }
    });
    let from = env("GITPAT_MAIL_FROM").or_else(|| f.mail_from.clone());
    if let Some(a) = &from {
        a.parse::<lettre::Address>()
            .map_err(|e| anyhow::anyhow!("mail_from {a:?} is not an e-mail address: {e}"))?;
    }
    let transport = match kind.trim().to_ascii_lowercase().as_str() {
        "off" | "none" => MailTransport::Off,
        "sendmail" => MailTransport::Sendmail,
        "file" => MailTransport::File(
            env("GITPAT_MAIL_DIR")
                .map(PathBuf::from)
                .or_else(|| f.mail_dir.clone())
                .unwrap_or_else(|| data_dir.join("mail")),
        ),
        "smtp" => {
            let host = host.ok_or_else(|| anyhow::anyhow!("mail = smtp needs smtp_host (or GITPAT_SMTP_HOST)"))?;
            let tls = match env("GITPAT_SMTP_TLS")
                .or_else(|| f.smtp_tls.clone())
                .unwrap_or_else(|| "starttls".into())
                .to_ascii_lowercase()
                .as_str()
            {
                "none" => SmtpTls::None,
                "starttls" => SmtpTls::Starttls,
                "tls" => SmtpTls::Tls,
                other => anyhow::bail!("smtp_tls must be none, starttls or tls, not {other:?}"),
            };
            let port = match env("GITPAT_SMTP_PORT") {
                Some(p) => p
                    .parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("GITPAT_SMTP_PORT must be a port number, not {p:?}"))?,
                None => f.smtp_port.unwrap_or(match tls {
                    SmtpTls::Tls => 465,
                    SmtpTls::Starttls => 587,
                    SmtpTls::None => 25,
                }),
            };
            let password = match env("GITPAT_SMTP_PASSWORD") {
                Some(p) => Some(p),
                None => match env("GITPAT_SMTP_PASSWORD_FILE")
                    .map(PathBuf::from)
                    .or_else(|| f.smtp_password_file.clone())
                {
                    Some(path) => Some(
                        std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read the SMTP password file {}", path.display()))?
                            .trim_end_matches(['\n', '\r'])
                            .to_string(),
                    ),
                    None => None,
                },
            };
            MailTransport::Smtp(SmtpConfig {
                host,
                port,
                tls,
                username: env("GITPAT_SMTP_USERNAME").or_else(|| f.smtp_username.clone()),
                password,
                ca_file: env("GITPAT_SMTP_CA_FILE")
                    .map(PathBuf::from)
                    .or_else(|| f.smtp_ca_file.clone()),
            })
        }
        other => anyhow::bail!("mail must be smtp, sendmail, file or off, not {other:?}"),
    };
    Ok(MailConfig { transport, from })
}

/// The default lifetime of a pack cache entry.
pub const DEFAULT_PACK_CACHE_MAX_AGE_SECONDS: u64 = 300;

/// The pack cache from the file and `GITPAT_PACK_CACHE`,
/// `GITPAT_PACK_CACHE_MAX_AGE_SECONDS`, `GITPAT_PACK_CACHE_MAX_BYTES`.
fn pack_cache_config(
    f: &FileConfig,
    data_dir: &Path,
) -> anyhow::Result<Option<crate::git::pack_cache::PackCacheConfig>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let number = |key: &str, env_value: Option<String>, file: Option<u64>| -> anyhow::Result<Option<u64>> {
        match env_value {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{key} must be a whole number, not {v:?}")),
            None => Ok(file),
        }
    };
    let on = match env("GITPAT_PACK_CACHE") {
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            _ => anyhow::bail!("GITPAT_PACK_CACHE must be on or off, not {v:?}"),
        },
        None => f.pack_cache.unwrap_or(true),
    };
    if !on {
        return Ok(None);
    }
    let max_age = number(
        "pack_cache_max_age_seconds",
        env("GITPAT_PACK_CACHE_MAX_AGE_SECONDS"),
        f.pack_cache_max_age_seconds,
    )?
    .unwrap_or(DEFAULT_PACK_CACHE_MAX_AGE_SECONDS);
    let dir = data_dir.join("cache").join("packs");
    let max_bytes = number(
        "pack_cache_max_bytes",
        env("GITPAT_PACK_CACHE_MAX_BYTES"),
        f.pack_cache_max_bytes,
    )?
    .unwrap_or_else(|| crate::git::pack_cache::PackCache::default_max_bytes(&dir));
    Ok(Some(crate::git::pack_cache::PackCacheConfig {
        dir,
        max_age: std::time::Duration::from_secs(max_age),
        max_bytes,
    }))
}

/// What flags and the environment said (already merged by clap).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub pack_engine: Option<String>,
    pub external_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub listen_http: Option<String>,
    pub log_format: Option<String>,
}

/// An external URL as the API builds links from it: `http(s)://host...`
/// with no query, fragment or credentials; the trailing `/` dropped.
fn external_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| anyhow::anyhow!("external_url {url:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || rest.contains(['?', '#', ' ']) {
        anyhow::bail!("external_url {url:?} must be scheme://host[:port][/path], with no credentials, query or spaces");
    }
    Ok(url.to_string())
}

impl Config {
    pub fn load(file: Option<&Path>, o: Overrides) -> anyhow::Result<Config> {
        let f = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = o
            .data_dir
            .or(f.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let mail = mail_config(&f, &data_dir)?;
        let pack_cache = pack_cache_config(&f, &data_dir)?;
        let database_url = o
            .database_url
            .or(f.database_url)
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| crate::db::sqlite_url_for(&data_dir));
        crate::db::Backend::from_url(&database_url)?;
        let listen = o.listen.or(f.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let secret_key_file = o
            .secret_key_file
            .or(f.secret_key_file)
            .unwrap_or_else(|| data_dir.join("secret_key"));
        let db_pool_size = f.db_pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        if db_pool_size == 0 {
            anyhow::bail!("db_pool_size must be at least 1");
        }
        let pack_engine = o.pack_engine.or(f.pack_engine).unwrap_or_else(|| "auto".to_string());
        let body_idle_timeout_seconds = f.body_idle_timeout_seconds.unwrap_or(DEFAULT_BODY_IDLE_TIMEOUT_SECONDS);
        if body_idle_timeout_seconds == 0 {
            anyhow::bail!("body_idle_timeout_seconds must be at least 1");
        }
        let external_url = match o.external_url.or(f.external_url).filter(|u| !u.trim().is_empty()) {
            Some(u) => Some(external_url(&u)?),
            None => None,
        };
        let tls = match (o.tls_cert.or(f.tls_cert), o.tls_key.or(f.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("tls_cert is set but tls_key is not: https needs both"),
            (None, Some(_)) => anyhow::bail!("tls_key is set but tls_cert is not: https needs both"),
        };
        let listen_http = o.listen_http.or(f.listen_http).filter(|l| !l.trim().is_empty());
        if listen_http.is_some() && tls.is_none() {
            anyhow::bail!("listen_http redirects to https: it needs tls_cert and tls_key");
        }
        let log_format = match o.log_format.or(f.log_format) {
            Some(v) => v.parse()?,
            None => LogFormat::Text,
        };
        let metrics_allowlist = match f.metrics_allowlist {
            Some(list) => list,
            None => DEFAULT_METRICS_ALLOWLIST.iter().map(|s| s.to_string()).collect(),
        }
        .iter()
        .map(|c| {
            crate::net::Cidr::parse(c)
                .ok_or_else(|| anyhow::anyhow!("metrics_allowlist: {c:?} is not an address or CIDR block"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Config {
            tls,
            listen_http,
            hsts_max_age_seconds: f.hsts_max_age_seconds.unwrap_or(DEFAULT_HSTS_MAX_AGE_SECONDS),
            shutdown_timeout: std::time::Duration::from_secs(
                f.shutdown_timeout_seconds.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT_SECONDS),
            ),
            log_format,
            metrics_allowlist,
            metrics_listen: f.metrics_listen.filter(|l| !l.trim().is_empty()),
            mail,
            pack_cache,
            data_dir,
            database_url,
            listen,
            secret_key_file,
            db_pool_size,
            pack_engine,
            body_idle_timeout: std::time::Duration::from_secs(body_idle_timeout_seconds),
            external_url,
        })
    }

    /// The scheme gitpat is served with.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The URL of this instance where no request names one (mail): the
    /// external URL, else the scheme and the listen address, where a
    /// wildcard address (`0.0.0.0`, `[::]`), which no client can reach,
    /// is this machine's host name.
    pub fn base_url(&self) -> String {
        match &self.external_url {
            Some(u) => u.clone(),
            None => {
                let (host, port) = self.listen.rsplit_once(':').unwrap_or((self.listen.as_str(), ""));
                let host = match host {
                    "" | "0.0.0.0" | "[::]" | "::" => host_name(),
                    h => h.to_string(),
                };
                match port {
                    "" => format!("{}://{host}", self.scheme()),
                    p => format!("{}://{host}:{p}", self.scheme()),
                }
            }
        }
    }

    pub fn repositories_dir(&self) -> PathBuf {
        self.data_dir.join("repositories")
    }
}

/// This machine's host name (Linux's), or `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_names_a_host_clients_can_reach() {
        let with = |listen: &str, external: Option<&str>| Config {
            listen: listen.into(),
            external_url: external.map(str::to_string),
            ..Config::load(None, Overrides::default()).unwrap()
        };
        assert_eq!(with("127.0.0.1:8080", None).base_url(), "http://127.0.0.1:8080");
        assert_eq!(with("[::1]:8080", None).base_url(), "http://[::1]:8080");
        let me = host_name();
        assert_ne!(me, "0.0.0.0");
        assert_eq!(with("0.0.0.0:8080", None).base_url(), format!("http://{me}:8080"));
        assert_eq!(with("[::]:8080", None).base_url(), format!("http://{me}:8080"));
        let tls = Config {
            tls: Some(TlsConfig {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
            ..with("0.0.0.0:8443", None)
        };
        assert_eq!(tls.base_url(), format!("https://{me}:8443"));
        assert_eq!(
            with("0.0.0.0:8080", Some("https://git.example.com")).base_url(),
            "https://git.example.com"
        );
    }

    #[test]
    fn defaults_then_file_then_overrides() {
        let c = Config::load(None, Overrides::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert!(c.database_url.ends_with("gitpat-data/gitpat.db"));
        assert_eq!(c.secret_key_file, PathBuf::from(DEFAULT_DATA_DIR).join("secret_key"));
        assert_eq!(c.shutdown_timeout, std::time::Duration::from_secs(60));
        assert_eq!(c.log_format, LogFormat::Text);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gitpat.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/g\"\nlisten = \"0.0.0.0:9000\"\nshutdown_timeout_seconds = 5\nlog_format = \"json\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), Overrides::default()).unwrap();
        assert_eq!(c.shutdown_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.data_dir, PathBuf::from("/srv/g"));
        assert_eq!(c.database_url, "/srv/g/gitpat.db");
        assert_eq!(c.listen, "0.0.0.0:9000");

        let o = Overrides {
            listen: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), o).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.data_dir, PathBuf::from("/srv/g"));
    }

    #[test]
    fn external_urls_are_checked_and_trimmed() {
        let load = |u: &str| {
            Config::load(
                None,
                Overrides {
                    external_url: Some(u.into()),
                    ..Default::default()
                },
            )
        };
        assert_eq!(
            load("https://git.example.com/").unwrap().external_url.as_deref(),
            Some("https://git.example.com")
        );
        assert_eq!(
            load("http://h:8080/gitpat").unwrap().external_url.as_deref(),
            Some("http://h:8080/gitpat")
        );
        assert_eq!(load("").unwrap().external_url, None);
        for bad in [
            "git.example.com",
            "ftp://h",
            "https://",
            "https://u:p@h",
            "https://h/?x=1",
        ] {
            let err = format!("{:#}", load(bad).unwrap_err());
            assert!(err.contains("external_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_files_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gitpat.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&file), Overrides::default()).unwrap_err());
        assert!(err.contains("unknown field `lisen`"), "{err}");
        let err = format!(
            "{:#}",
            Config::load(Some(&dir.path().join("nope.toml")), Overrides::default()).unwrap_err()
        );
        assert!(err.contains("cannot read the config file"), "{err}");
        let o = Overrides {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert!(Config::load(None, o).is_err());
    }

    #[test]
    fn mail_is_configured_in_the_file_and_never_holds_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gitpat.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(Some(&file), Overrides::default())
        };
        assert!(matches!(load("").unwrap().mail.transport, MailTransport::Off));
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let c = load(&format!(
            "smtp_host = \"mail.example.com\"\nsmtp_username = \"u\"\nsmtp_password_file = {:?}\n",
            pw.display().to_string()
        ))
        .unwrap();
        match &c.mail.transport {
            MailTransport::Smtp(s) => {
                assert_eq!(
                    (s.host.as_str(), s.port, s.tls),
                    ("mail.example.com", 587, SmtpTls::Starttls)
                );
                assert_eq!(s.password.as_deref(), Some("s3cret"));
                assert!(!format!("{s:?}").contains("s3cret"), "the password in Debug");
            }
            other => panic!("not SMTP: {other:?}"),
        }
        let c = load("smtp_host = \"m\"\nsmtp_tls = \"tls\"\n").unwrap();
        assert!(matches!(&c.mail.transport, MailTransport::Smtp(s) if s.port == 465));
        let c = load("mail = \"file\"\n").unwrap();
        assert!(matches!(&c.mail.transport, MailTransport::File(d) if d.ends_with("mail")));
        for (text, says) in [
            ("smtp_password = \"x\"\n", "may not hold smtp_password"),
            ("smtp_host = \"m\"\nsmtp_tls = \"maybe\"\n", "smtp_tls must be"),
            ("mail = \"pigeon\"\n", "mail must be"),
            ("mail = \"smtp\"\n", "needs smtp_host"),
            ("mail_from = \"not an address\"\n", "is not an e-mail address"),
        ] {
            let err = format!("{:#}", load(text).unwrap_err());
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
