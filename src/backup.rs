//! Backups: `gitpat backup create DIR` while the server runs, and `gitpat
//! backup restore DIR` into an empty data directory.
//!
//! A backup is a folder: the database (`database.sqlite`, or
//! `database.pgdump` from `pg_dump`), the secret key, a git bundle per
//! repository under `repositories/`, and last `manifest.json` (every file
//! with its size and SHA-256, every repository with its HEAD and kept
//! config). A folder without a manifest is no finished backup.
//!
//! **The database first, then the repositories.** A push is acknowledged
//! after its refs moved, and a repository's row is committed before its
//! first push can land. So a push acknowledged before the backup began is
//! in a repository the snapshot has a row for, and that repository's refs
//! are read (by `git bundle`, which reads the refs and then packs what they
//! reach) after the snapshot: the push is in the backup. The other way
//! round a repository could be newer than every row. Only the
//! repositories of the snapshot's rows are taken: one made after it has no
//! row there, and restored it would be a folder no row knows, blocking its
//! path; it is left out, and named. A row whose folder is gone by the time
//! it is bundled (deleted during the backup) is restored as an empty
//! repository, so the rows and the folders agree.
//!
//! **Restore** verifies every file against the manifest before it writes
//! anything, and writes nothing over anything: the data directory must be
//! empty, the secret key and SQLite files absent, a PostgreSQL database
//! without tables. The repositories are built in
//! `<data-dir>/.restore-<random>/` and moved into place by one rename; the
//! files are linked into place; PostgreSQL's dump is restored last, in one
//! transaction. A failure removes everything the restore wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::db::schema::projects;
use crate::db::Backend;
use crate::git::bundle;
use crate::git::store::{RepoPath, RepoStore};

/// The manifest format this gitpat writes and reads.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
const SQLITE_FILE: &str = "database.sqlite";
const PG_FILE: &str = "database.pgdump";
const SECRET_KEY_FILE: &str = "secret_key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    fn of(backend: Backend) -> DatabaseKind {
        match backend {
            Backend::Sqlite => DatabaseKind::Sqlite,
            Backend::Postgres => DatabaseKind::Postgres,
        }
    }

    fn file(self) -> &'static str {
        match self {
            DatabaseKind::Sqlite => SQLITE_FILE,
            DatabaseKind::Postgres => PG_FILE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatabaseKind::Sqlite => "SQLite",
            DatabaseKind::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub gitpat_version: String,
    /// RFC 3339, when the backup began.
    pub created_at: String,
    pub database: DatabaseEntry,
    /// The secret key's file in the backup.
    pub secret_key: String,
    pub files: Vec<FileEntry>,
    pub repositories: Vec<RepoEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseEntry {
    pub kind: DatabaseKind,
    pub file: String,
}

/// A file of the backup, relative to its folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoState {
    /// Its refs and objects are in the bundle.
    Bundled,
    /// It had no refs (git makes no empty bundle).
    Empty,
    /// Its row was in the snapshot, its folder gone when it was bundled.
    Missing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoEntry {
    /// `namespace/name`, without `.git`.
    pub path: String,
    pub state: RepoState,
    /// What HEAD names (`refs/heads/main`).
    pub head: Option<String>,
    /// `repositories/<path>.bundle` when bundled.
    pub bundle: Option<String>,
    /// The kept local config ([`bundle::kept_config_key`]), `[key, value]`.
    #[serde(default)]
    pub config: Vec<(String, String)>,
    /// Empty, and a push was creating it (`git::sweep::PUSH_TO_CREATE`):
    /// restored with the marker, so the sweep treats it as it would have.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
}

/// Why a backup or a restore did not happen; nothing half done is left.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} is not empty: a backup goes into an empty or new folder")]
    DirNotEmpty(PathBuf),
    #[error("{0} is not a folder")]
    NotADir(PathBuf),
    #[error("nothing to back up: {0}")]
    Nothing(String),
    #[error("{0} has no {MANIFEST}: it is no finished gitpat backup")]
    NoManifest(PathBuf),
    #[error("the manifest of {dir} is invalid: {why}; nothing was restored")]
    BadManifest { dir: PathBuf, why: String },
    #[error(
        "{path} does not match the manifest ({found}; the manifest says {size} bytes, SHA-256 {sha256}): the backup was changed or damaged; nothing was restored"
    )]
    Checksum {
        path: PathBuf,
        found: String,
        size: u64,
        sha256: String,
    },
    #[error(
        "this backup holds a {backup} database, but the database configured is {configured}: restore into the same kind (database_url, --database-url or GITPAT_DATABASE_URL)"
    )]
    BackendMismatch {
        backup: &'static str,
        configured: &'static str,
    },
    #[error(
        "the data directory {0} is not empty: restore into a new or empty one (--data-dir or GITPAT_DATA_DIR); nothing was restored"
    )]
    DataDirNotEmpty(PathBuf),
    #[error("{0} already exists: a restore writes no file over another; nothing was restored")]
    Exists(PathBuf),
    #[error(
        "the PostgreSQL database {0} is not empty: restore into a new, empty database (createdb NAME, then --database-url); nothing was restored"
    )]
    DatabaseNotEmpty(String),
    #[error("{tool} is not on PATH: {hint}")]
    MissingTool { tool: &'static str, hint: &'static str },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

type Result<T> = std::result::Result<T, BackupError>;

fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn tool(name: &'static str, hint: &'static str) -> Result<PathBuf> {
    on_path(name).ok_or(BackupError::MissingTool { tool: name, hint })
}

fn git_binary() -> Result<PathBuf> {
    tool("git", "backups bundle and restore repositories with git: install it")
}

/// SHA-256 (lowercase hex) and size of a file.
fn digest(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Flushes a file or folder to disk (a backup must survive a crash after
/// `create` said it was done).
fn sync(path: &Path) -> anyhow::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {} to disk", path.display()))
}

/// A SQLite URI opening `path` read-only and immutable: no lock, no `-wal`
/// or `-shm` file made beside it, nothing written.
fn sqlite_read_only_uri(path: &Path) -> anyhow::Result<String> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
    const SET: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#').add(b' ');
    let p = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    Ok(format!("file:{}?mode=ro&immutable=1", utf8_percent_encode(p, SET)))
}

/// `postgres://user:secret@host/db` without its password, and the
/// password (percent-decoded), to hand a client tool through `PGPASSWORD`
/// rather than on its command line, where `ps` shows it.
fn split_pg_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_string(), None);
    };
    let password = percent_encoding::percent_decode_str(password)
        .decode_utf8_lossy()
        .into_owned();
    (format!("{scheme}://{user}@{host}{tail}"), Some(password))
}

/// `pg_dump` or `pg_restore` on the database of `url`.
fn pg_tool(binary: &Path, url: &str) -> std::process::Command {
    let (url, password) = split_pg_password(url);
    let mut cmd = std::process::Command::new(binary);
    cmd.arg(format!("--dbname={url}"))
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null());
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

fn run_tool(mut cmd: std::process::Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot start {what}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ create

/// What `create` wrote.
#[derive(Debug)]
pub struct Created {
    pub kind: DatabaseKind,
    /// Repositories in the backup, and how many of them are empty.
    pub repositories: usize,
    pub empty: usize,
    /// Rows whose folder was gone when bundled: in the backup as empty.
    pub missing: Vec<String>,
    /// Folders on disk without a row in the snapshot: left out.
    pub left_out: Vec<String>,
}

/// Writes a backup of the instance `config` names into `dir` (empty, or
/// made here), while it runs.
pub fn create(config: &Config, dir: &Path) -> Result<Created> {
    // Absolute: git writes the bundles from inside each repository.
    let dir = &std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let made = match std::fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(BackupError::NotADir(dir.to_path_buf())),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
            if entries.next().is_some() {
                return Err(BackupError::DirNotEmpty(dir.to_path_buf()));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::fsutil::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            true
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read {}", dir.display()))
                .into())
        }
    };
    let result = create_in(config, dir);
    if result.is_err() {
        // The folder was empty: all in it is this backup's.
        if made {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    result
}

fn create_in(config: &Config, dir: &Path) -> Result<Created> {
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let git = git_binary()?;
    let backend = Backend::from_url(&config.database_url)?;
    let kind = DatabaseKind::of(backend);
    if !config.data_dir.is_dir() {
        return Err(BackupError::Nothing(format!(
            "the data directory {} does not exist",
            config.data_dir.display()
        )));
    }

    // The key never changes while the instance runs: its place in the
    // order is free. First, so a missing key fails before the long part.
    let key_dest = dir.join(SECRET_KEY_FILE);
    match std::fs::read(&config.secret_key_file) {
        Ok(key) => write_private(&key_dest, &key)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::Nothing(format!(
                "there is no secret key at {} (without it no token authenticates)",
                config.secret_key_file.display()
            )))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!(
                    "cannot read the secret key {}",
                    config.secret_key_file.display()
                ))
                .into())
        }
    }

    // The database, then the repositories its rows name (see the module).
    let db_dest = dir.join(kind.file());
    let rows = match backend {
        Backend::Sqlite => snapshot_sqlite(&config.database_url, &db_dest)?,
        Backend::Postgres => snapshot_postgres(&config.database_url, &db_dest)?,
    };

    let root = config.repositories_dir();
    let mut repositories = Vec::new();
    let mut missing = Vec::new();
    let mut bundles = Vec::new();
    for (path, default_branch) in &rows {
        let repo_path = RepoPath::parse(path)
            .map_err(|e| anyhow::anyhow!("the database holds a repository path that is not one: {e}"))?;
        let repo_dir = root.join(format!("{}.git", repo_path.as_str()));
        let rel = format!("repositories/{}.bundle", repo_path.as_str());
        let file = dir.join(&rel);
        if let Some(parent) = file.parent() {
            crate::fsutil::create_private_dir(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let taken = if repo_dir.join("objects").is_dir() {
            match bundle::take(&git, &repo_dir, &file) {
                Ok(t) => Some(t),
                // Deleted while bundled.
                Err(_) if !repo_dir.join("objects").is_dir() => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        let entry = match taken {
            Some(t) if t.bundled => {
                bundles.push(rel.clone());
                RepoEntry {
                    path: path.clone(),
                    state: RepoState::Bundled,
                    head: t.head,
                    bundle: Some(rel),
                    config: t.config,
                    creating: false,
                }
            }
            Some(t) => RepoEntry {
                path: path.clone(),
                state: RepoState::Empty,
                head: t.head,
                bundle: None,
                config: t.config,
                creating: repo_dir.join(crate::git::sweep::PUSH_TO_CREATE).exists(),
            },
            None => {
                tracing::warn!("{path} has a row in the database snapshot but no folder any more: backed up as empty");
                missing.push(path.clone());
                RepoEntry {
                    path: path.clone(),
                    state: RepoState::Missing,
                    head: Some(format!("refs/heads/{default_branch}")),
                    bundle: None,
                    config: Vec::new(),
                    creating: false,
                }
            }
        };
        repositories.push(entry);
    }
    let known: BTreeSet<&str> = rows.iter().map(|(p, _)| p.as_str()).collect();
    let left_out: Vec<String> = bundle::list(&root)
        .into_iter()
        .filter(|p| !known.contains(p.as_str()))
        .collect();

    let mut files = Vec::new();
    for rel in [SECRET_KEY_FILE.to_string(), kind.file().to_string()]
        .into_iter()
        .chain(bundles)
    {
        let p = dir.join(&rel);
        // The database holds password hashes and token digests: owner only,
        // whatever mode SQLite, pg_dump or git made it with.
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", p.display()))?;
        let (sha256, size) = digest(&p)?;
        sync(&p)?;
        files.push(FileEntry {
            path: rel,
            sha256,
            size,
        });
    }
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| dir.join(&f.path).parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs.iter().rev() {
        sync(d)?;
    }

    let empty = repositories.iter().filter(|r| r.state != RepoState::Bundled).count();
    let manifest = Manifest {
        format: FORMAT,
        gitpat_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at,
        database: DatabaseEntry {
            kind,
            file: kind.file().to_string(),
        },
        secret_key: SECRET_KEY_FILE.to_string(),
        files,
        repositories,
    };
    let json = serde_json::to_vec_pretty(&manifest).context("cannot write the manifest")?;
    // Last, and whole or not at all: its presence says the backup is done.
    let tmp = dir.join(format!(".{MANIFEST}.tmp"));
    write_private(&tmp, &json)?;
    std::fs::rename(&tmp, dir.join(MANIFEST)).with_context(|| format!("cannot write {}", dir.display()))?;
    sync(dir)?;
    Ok(Created {
        kind,
        repositories: manifest.repositories.len(),
        empty,
        missing,
        left_out,
    })
}

fn write_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(content)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

type Rows = Vec<(String, String)>;

/// `(path, default_branch)` of every repository row, on either
/// connection type (the snapshots are read through plain diesel
/// connections, not `DbConn`).
macro_rules! load_rows {
    ($conn:expr) => {
        projects::table
            .select((projects::path, projects::default_branch))
            .order(projects::path)
            .load::<(String, String)>($conn)
    };
}

/// The SQLite database copied with `VACUUM INTO`, and the repositories of
/// the copy.
///
/// `VACUUM INTO` rather than the online backup API: SQLite documents it as
/// a transactionally consistent copy of a live database, made in one read
/// transaction, which in WAL mode never blocks the server's writers nor
/// waits for them; the backup API, stepped, starts again whenever another
/// connection writes, and run in one step it is the same read transaction
/// (through raw handles that diesel does not lend). `VACUUM INTO` is one
/// statement on an ordinary connection, and its copy is compact.
fn snapshot_sqlite(url: &str, dest: &Path) -> Result<Rows> {
    let src = url.strip_prefix("sqlite://").unwrap_or(url);
    if !Path::new(src).is_file() {
        return Err(BackupError::Nothing(format!("there is no SQLite database at {src}")));
    }
    let mut conn =
        diesel::SqliteConnection::establish(src).with_context(|| format!("cannot open the SQLite database {src}"))?;
    diesel::connection::SimpleConnection::batch_execute(&mut conn, "PRAGMA busy_timeout = 5000;")
        .context("cannot configure the SQLite connection")?;
    let target = dest
        .to_str()
        .with_context(|| format!("{} is not UTF-8", dest.display()))?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(target)
        .execute(&mut conn)
        .with_context(|| format!("cannot copy the SQLite database {src} (VACUUM INTO)"))?;
    drop(conn);
    let mut copy = diesel::SqliteConnection::establish(&sqlite_read_only_uri(dest)?)
        .with_context(|| format!("cannot open the copy {}", dest.display()))?;
    Ok(load_rows!(&mut copy).context("cannot read the repositories of the database copy")?)
}

#[derive(QueryableByName)]
struct SnapshotId {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// `pg_dump` (custom format) of an exported snapshot, and the repositories
/// of that same snapshot, read in the transaction that exported it.
fn snapshot_postgres(url: &str, dest: &Path) -> Result<Rows> {
    let pg_dump = tool(
        "pg_dump",
        "PostgreSQL backups need the PostgreSQL client tools (pg_dump, of the server's major version or newer)",
    )?;
    let mut conn = diesel::PgConnection::establish(url)
        .with_context(|| format!("cannot connect to PostgreSQL at {}", crate::db::redact_url(url)))?;
    let rows = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run(|c| -> anyhow::Result<Rows> {
            let snapshot: SnapshotId = diesel::sql_query("SELECT pg_export_snapshot() AS id")
                .get_result(c)
                .context("cannot export a snapshot")?;
            let rows = load_rows!(c).context("cannot read the repositories")?;
            let mut cmd = pg_tool(&pg_dump, url);
            cmd.args(["--format=custom", "--no-owner"])
                .arg(format!("--snapshot={}", snapshot.id))
                .arg("--file")
                .arg(dest);
            run_tool(cmd, "pg_dump")?;
            Ok(rows)
        })?;
    Ok(rows)
}

// ----------------------------------------------------------------- restore

/// What `restore` put in place.
#[derive(Debug)]
pub struct Restored {
    pub kind: DatabaseKind,
    pub repositories: usize,
    pub created_at: String,
}

fn bad(dir: &Path, why: impl Into<String>) -> BackupError {
    BackupError::BadManifest {
        dir: dir.to_path_buf(),
        why: why.into(),
    }
}

/// Reads and checks the manifest of `dir`: every name one a backup
/// writes (no path leaves the folder), every file referred to listed and
/// every listed file referred to.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BackupError::NoManifest(dir.to_path_buf())),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read {}", path.display()))
                .into())
        }
    };
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| bad(dir, e.to_string()))?;
    if m.format != FORMAT {
        return Err(bad(
            dir,
            format!(
                "it is format {} (gitpat {}); this gitpat reads format {FORMAT}",
                m.format, m.gitpat_version
            ),
        ));
    }
    let mut listed = BTreeMap::new();
    for f in &m.files {
        let p = Path::new(&f.path);
        if f.path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad(dir, format!("{:?} is not a path inside the backup", f.path)));
        }
        if f.sha256.len() != 64
            || !f
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad(dir, format!("the SHA-256 of {:?} is not 64 hex digits", f.path)));
        }
        if listed.insert(f.path.as_str(), f).is_some() {
            return Err(bad(dir, format!("{:?} is listed twice", f.path)));
        }
    }
    let mut used = BTreeSet::new();
    let mut need = |name: &str, what: &str| -> Result<()> {
        if !listed.contains_key(name) {
            return Err(bad(dir, format!("{what} {name:?} is not among its files")));
        }
        used.insert(name.to_string());
        Ok(())
    };
    if m.database.file != m.database.kind.file() {
        return Err(bad(dir, format!("the database file is {:?}", m.database.file)));
    }
    need(&m.database.file, "the database file")?;
    if m.secret_key != SECRET_KEY_FILE {
        return Err(bad(dir, format!("the secret key file is {:?}", m.secret_key)));
    }
    need(&m.secret_key, "the secret key file")?;
    let mut paths = BTreeSet::new();
    for r in &m.repositories {
        match RepoPath::parse(&r.path) {
            Ok(p) if p.as_str() == r.path => {}
            Ok(_) => return Err(bad(dir, format!("the repository path {:?} ends in .git", r.path))),
            Err(e) => return Err(bad(dir, e.to_string())),
        }
        if !paths.insert(r.path.as_str()) {
            return Err(bad(dir, format!("the repository {} is listed twice", r.path)));
        }
        let expected = format!("repositories/{}.bundle", r.path);
        match (r.state, &r.bundle) {
            (RepoState::Bundled, Some(b)) if *b == expected => need(b, "the bundle")?,
            (RepoState::Empty | RepoState::Missing, None) => {}
            _ => {
                return Err(bad(
                    dir,
                    format!("the repository {} is {:?} with bundle {:?}", r.path, r.state, r.bundle),
                ))
            }
        }
        if let Some(h) = &r.head {
            if !h.starts_with("refs/") || !git2::Reference::is_valid_name(h) {
                return Err(bad(dir, format!("the HEAD of {} is {h:?}", r.path)));
            }
        }
        if let Some((k, _)) = r.config.iter().find(|(k, _)| !bundle::kept_config_key(k)) {
            return Err(bad(
                dir,
                format!("the config of {} sets {k:?}, which a backup does not keep", r.path),
            ));
        }
    }
    if let Some(extra) = listed.keys().find(|k| !used.contains(**k)) {
        return Err(bad(dir, format!("{extra:?} is listed but is nothing a backup holds")));
    }
    Ok(m)
}

/// Every file of the manifest, its size and SHA-256 checked.
pub fn verify(dir: &Path, m: &Manifest) -> Result<()> {
    for f in &m.files {
        let path = dir.join(&f.path);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return Err(BackupError::Checksum {
                    path,
                    found: "not a plain file".into(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                })
            }
            Err(_) => {
                return Err(BackupError::Checksum {
                    path,
                    found: "no such file".into(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                })
            }
        }
        let (sha256, size) = digest(&path)?;
        if sha256 != f.sha256 || size != f.size {
            return Err(BackupError::Checksum {
                path,
                found: format!("{size} bytes, SHA-256 {sha256}"),
                size: f.size,
                sha256: f.sha256.clone(),
            });
        }
    }
    Ok(())
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Fails unless the PostgreSQL database has no relation outside the
/// system schemas.
fn check_pg_empty(url: &str) -> Result<()> {
    let mut conn = diesel::PgConnection::establish(url)
        .with_context(|| format!("cannot connect to PostgreSQL at {}", crate::db::redact_url(url)))?;
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace \
         WHERE s.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND s.nspname NOT LIKE 'pg\\_toast%' AND s.nspname NOT LIKE 'pg\\_temp%'",
    )
    .get_result(&mut conn)
    .context("cannot list the tables of the PostgreSQL database")?;
    if count.n > 0 {
        return Err(BackupError::DatabaseNotEmpty(crate::db::redact_url(url)));
    }
    Ok(())
}

/// `PRAGMA quick_check` of a SQLite file, opened read-only and immutable.
fn check_sqlite(path: &Path) -> anyhow::Result<()> {
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        quick_check: String,
    }
    let mut conn = diesel::SqliteConnection::establish(&sqlite_read_only_uri(path)?)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let rows: Vec<Check> = diesel::sql_query("PRAGMA quick_check")
        .load(&mut conn)
        .with_context(|| format!("{} is no SQLite database", path.display()))?;
    match rows.first() {
        Some(c) if rows.len() == 1 && c.quick_check == "ok" => Ok(()),
        _ => anyhow::bail!(
            "{} fails SQLite's quick_check: {}",
            path.display(),
            rows.iter()
                .map(|c| c.quick_check.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// What a restore wrote so far, removed again if it fails.
struct Undo {
    paths: Vec<PathBuf>,
}

impl Undo {
    fn run(self) {
        for p in self.paths.iter().rev() {
            let r = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
            if let Err(e) = r {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!("cannot remove {} after the failed restore: {e}", p.display());
                }
            }
        }
    }
}

/// Restores the backup in `dir` into the instance `config` names, which
/// must hold nothing yet.
pub fn restore(config: &Config, dir: &Path) -> Result<Restored> {
    // Absolute: git reads the bundles from inside each repository.
    let dir = &std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let manifest = read_manifest(dir)?;
    verify(dir, &manifest)?;
    let backend = Backend::from_url(&config.database_url)?;
    let configured = DatabaseKind::of(backend);
    if configured != manifest.database.kind {
        return Err(BackupError::BackendMismatch {
            backup: manifest.database.kind.name(),
            configured: configured.name(),
        });
    }
    let git = git_binary()?;

    // Where it all goes: nothing there yet.
    let data_dir = &config.data_dir;
    let data_dir_made = match std::fs::symlink_metadata(data_dir) {
        Ok(m) if !m.is_dir() => return Err(BackupError::NotADir(data_dir.clone())),
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(data_dir).with_context(|| format!("cannot read {}", data_dir.display()))?;
            if entries.next().is_some() {
                return Err(BackupError::DataDirNotEmpty(data_dir.clone()));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read {}", data_dir.display()))
                .into())
        }
    };
    if exists(&config.secret_key_file) {
        return Err(BackupError::Exists(config.secret_key_file.clone()));
    }
    let sqlite_dest = match backend {
        Backend::Sqlite => {
            let p = PathBuf::from(
                config
                    .database_url
                    .strip_prefix("sqlite://")
                    .unwrap_or(&config.database_url),
            );
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut q = p.clone().into_os_string();
                q.push(suffix);
                if exists(Path::new(&q)) {
                    return Err(BackupError::Exists(q.into()));
                }
            }
            Some(p)
        }
        Backend::Postgres => None,
    };
    let db_file = dir.join(&manifest.database.file);
    let pg_restore = match backend {
        Backend::Postgres => {
            let t = tool(
                "pg_restore",
                "PostgreSQL restores need the PostgreSQL client tools (pg_restore, of the dump's major version or newer)",
            )?;
            // The dump's table of contents read, the database untouched.
            let mut list = std::process::Command::new(&t);
            list.arg("--list")
                .arg(&db_file)
                .env("LC_ALL", "C")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null());
            run_tool(list, "pg_restore --list").map_err(|e| bad(dir, format!("its database is unreadable: {e:#}")))?;
            check_pg_empty(&config.database_url)?;
            Some(t)
        }
        Backend::Sqlite => {
            check_sqlite(&db_file).map_err(|e| bad(dir, format!("its database is unreadable: {e:#}")))?;
            None
        }
    };

    crate::fsutil::create_private_dir(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut undo = Undo { paths: Vec::new() };
    if data_dir_made {
        undo.paths.push(data_dir.clone());
    }
    let result = (|| -> Result<()> {
        let staging = data_dir.join(format!(
            ".restore-{}",
            crate::fsutil::random_hex(8).context("no randomness")?
        ));
        crate::fsutil::create_private_dir(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
        undo.paths.push(staging.clone());
        let staged_root = staging.join("repositories");
        std::fs::create_dir_all(&staged_root).with_context(|| format!("cannot create {}", staged_root.display()))?;
        let store = RepoStore::new(&staged_root);
        for r in &manifest.repositories {
            let path = RepoPath::parse(&r.path).map_err(|e| bad(dir, e.to_string()))?;
            // As gitpat makes a repository (bare, reflogs on), then filled.
            store.stage(None, None)?.install(&store, &path)?;
            let repo_dir = store.path_of(&path);
            let bundle_file = r.bundle.as_ref().map(|b| dir.join(b));
            bundle::put_back(&git, &repo_dir, bundle_file.as_deref(), r.head.as_deref(), &r.config)
                .with_context(|| format!("cannot restore the repository {}", r.path))?;
            if r.creating {
                std::fs::write(repo_dir.join(crate::git::sweep::PUSH_TO_CREATE), b"")
                    .with_context(|| format!("cannot mark {} as being created", r.path))?;
            }
        }
        let tmp = staged_root.join(".tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
        }

        // Into place.
        let repos_dest = config.repositories_dir();
        std::fs::rename(&staged_root, &repos_dest)
            .with_context(|| format!("cannot move the repositories into {}", repos_dest.display()))?;
        undo.paths.push(repos_dest);
        let key = listed(dir, &manifest, &manifest.secret_key)?;
        place_file(&dir.join(&key.path), &config.secret_key_file, key)?;
        undo.paths.push(config.secret_key_file.clone());
        if let Some(dest) = &sqlite_dest {
            let db = listed(dir, &manifest, &manifest.database.file)?;
            place_file(&dir.join(&db.path), dest, db)?;
            undo.paths.push(dest.clone());
        }
        std::fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
        if let Some(pg_restore) = &pg_restore {
            // Last: one transaction, so a failure leaves the database as
            // empty as it was, and the files are undone.
            let mut cmd = pg_tool(pg_restore, &config.database_url);
            cmd.args(["--no-owner", "--no-acl", "--single-transaction", "--exit-on-error"])
                .arg(&db_file);
            run_tool(cmd, "pg_restore")?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        undo.run();
        return Err(e);
    }
    Ok(Restored {
        kind: manifest.database.kind,
        repositories: manifest.repositories.len(),
        created_at: manifest.created_at.clone(),
    })
}

/// The file entry `name` ([`read_manifest`] checked it is listed).
fn listed<'a>(dir: &Path, m: &'a Manifest, name: &str) -> Result<&'a FileEntry> {
    m.files
        .iter()
        .find(|f| f.path == name)
        .ok_or_else(|| bad(dir, format!("{name:?} is not among its files")))
}

/// Copies `src` to a new file `dest` (mode 0600) through a temporary file
/// beside it, checking the copy's checksum again (the backup may change
/// after it was verified) and linking it into place, never over a file.
fn place_file(src: &Path, dest: &Path, entry: &FileEntry) -> Result<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".gitpat-restore-{}",
        crate::fsutil::random_hex(8).context("no randomness")?
    ));
    let result = (|| -> Result<()> {
        let mut from = File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut h = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = from
                .read(&mut buf)
                .with_context(|| format!("cannot read {}", src.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            size += n as u64;
            to.write_all(&buf[..n])
                .with_context(|| format!("cannot write {}", tmp.display()))?;
        }
        to.sync_all()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let sha256 = hex::encode(h.finalize());
        if sha256 != entry.sha256 || size != entry.size {
            return Err(BackupError::Checksum {
                path: src.to_path_buf(),
                found: format!("{size} bytes, SHA-256 {sha256}"),
                size: entry.size,
                sha256: entry.sha256.clone(),
            });
        }
        match std::fs::hard_link(&tmp, dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(BackupError::Exists(dest.to_path_buf())),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("cannot put {} in place", dest.display()))
                .into()),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_passwords_leave_the_url() {
        assert_eq!(
            split_pg_password("postgres://u:p%40ss@db.example.com:5432/g?sslmode=require"),
            (
                "postgres://u@db.example.com:5432/g?sslmode=require".to_string(),
                Some("p@ss".to_string())
            )
        );
        assert_eq!(
            split_pg_password("postgres://u@h/g"),
            ("postgres://u@h/g".to_string(), None)
        );
        assert_eq!(
            split_pg_password("postgresql://h/g?user=u"),
            ("postgresql://h/g?user=u".to_string(), None)
        );
    }

    #[test]
    fn read_only_uris_escape_what_sqlite_reads() {
        assert_eq!(
            sqlite_read_only_uri(Path::new("/b a/x?#%.db")).unwrap(),
            "file:/b%20a/x%3F%23%25.db?mode=ro&immutable=1"
        );
    }
}
