//! The application state shared by the CLI and the server: configuration,
//! database pool, secret key and repository store. Cheap to clone.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::auth::token::SecretKey;
use crate::config::Config;
use crate::db::{self, DbPool, PooledConn};
use crate::error::{Error, Result};
use crate::git::maintenance::Maintainer;
use crate::git::pack::PackEngine;
use crate::git::pack_cache::PackCache;
use crate::git::store::RepoStore;
use crate::service::push_slots::PushSlots;
use crate::settings::{Settings, SettingsCache};

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub key: Arc<SecretKey>,
    pub store: RepoStore,
    /// What makes the packs that fetches receive.
    pub engine: PackEngine,
    /// KiB that upload-pack requests being read may hold, all together
    /// (`http::body::UPLOAD_BUDGET_KIB`).
    pub upload_budget: Arc<tokio::sync::Semaphore>,
    /// Background repacks after pushes.
    pub maintainer: Arc<Maintainer>,
    /// Pushes in flight, against the push caps.
    pub push_slots: Arc<PushSlots>,
    /// The instance settings, in memory (see [`App::settings`]).
    pub settings_cache: Arc<SettingsCache>,
    /// Packs shared by identical fetches (`serve` only, when on).
    pub pack_cache: Option<Arc<PackCache>>,
}

/// Where the database keeps its key's fingerprint.
const KEY_FINGERPRINT: &str = "secret_key_fingerprint";

/// The instance secret key in `path`, made on first use, and checked
/// against the one the database was set up with: under another key every
/// token would be unknown, every session and CSRF token refused and no
/// two-factor secret would open, so gitpat refuses to start instead (and
/// makes no new key for a database that had one). A database of an earlier
/// version, with no fingerprint yet, takes the key it is opened with.
fn secret_key_for(conn: &mut db::DbConn, path: &Path) -> anyhow::Result<SecretKey> {
    let recorded = db::instance::get(conn, KEY_FINGERPRINT).context("cannot read the instance facts")?;
    if recorded.is_some() && !path.exists() {
        anyhow::bail!(
            "the secret key file {} is missing, and this database was set up with a key: put that file back \
             (a backup holds it as secret_key) or point secret_key_file at it. gitpat makes no new key \
             for it: tokens, sessions and two-factor secrets made under the old one would stop working",
            path.display()
        );
    }
    let key = SecretKey::load_or_create(path)?;
    let mine = key.fingerprint();
    let kept = match recorded {
        Some(r) => r,
        None => {
            db::instance::record_once(conn, KEY_FINGERPRINT, &mine).context("cannot record the key's fingerprint")?
        }
    };
    if kept != mine {
        anyhow::bail!(
            "the secret key in {} is not the one this database was set up with: tokens, sessions and \
             two-factor secrets made under that key would not work with this one. Use the key file the \
             database came with (a backup holds it as secret_key); instances sharing a database share one key",
            path.display()
        );
    }
    Ok(key)
}

impl App {
    /// Prepares the data directory (mode 0700), the secret key and the
    /// repositories folder, migrates the database and opens the pool.
    pub fn open(config: Config) -> anyhow::Result<App> {
        crate::fsutil::create_private_dir(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let repos = config.repositories_dir();
        std::fs::create_dir_all(&repos).with_context(|| format!("cannot create {}", repos.display()))?;
        let engine = PackEngine::resolve(&config.pack_engine, std::env::var_os("PATH").as_deref())
            .map_err(anyhow::Error::new)?;
        let pool = db::open_pool(&config.database_url, config.db_pool_size)?;
        let (key, settings) = {
            let mut conn = pool.get().context("no database connection available")?;
            let key = secret_key_for(&mut conn, &config.secret_key_file)?;
            let sealed = crate::service::two_factor::seal_kept_in_clear(&mut conn, &key)
                .map_err(|e| anyhow::anyhow!("cannot seal the two-factor secrets: {e}"))?;
            if sealed > 0 {
                tracing::info!("sealed {sealed} two-factor secrets an earlier version kept in clear");
            }
            let settings = Settings::load(&mut conn).map_err(|e| anyhow::anyhow!("cannot read the settings: {e}"))?;
            (key, settings)
        };
        Ok(App {
            store: RepoStore::new(repos).with_git(engine.git_binary().map(Path::to_path_buf)),
            config: Arc::new(config),
            pool,
            key: Arc::new(key),
            engine,
            upload_budget: Arc::new(tokio::sync::Semaphore::new(crate::http::body::UPLOAD_BUDGET_KIB)),
            maintainer: Arc::new(Maintainer::default()),
            push_slots: Arc::new(PushSlots::default()),
            settings_cache: Arc::new(SettingsCache::new(settings)),
            pack_cache: None,
        })
    }

    /// Opens the pack cache, when the configuration has it on: for
    /// `serve`, whose process owns the cache folder (emptied here).
    pub fn with_pack_cache(mut self) -> anyhow::Result<App> {
        if let Some(c) = &self.config.pack_cache {
            let cache = PackCache::open(c.clone())
                .with_context(|| format!("cannot prepare the pack cache folder {}", c.dir.display()))?;
            self.pack_cache = Some(cache);
        }
        Ok(self)
    }

    /// The instance settings, from memory: never waits for the database.
    /// When they are older than [`crate::settings::SETTINGS_REFRESH`], a
    /// refresh is started in the background (on the blocking pool when
    /// there is a runtime, else here: the CLI).
    pub fn settings(&self) -> Settings {
        let cache = &self.settings_cache;
        if cache.stale() && !cache.refreshing.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let app = self.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(move || app.reload_settings());
                }
                Err(_) => app.reload_settings(),
            }
        }
        cache.current()
    }

    /// Reads the settings from the database into memory now (blocking).
    pub fn reload_settings(&self) {
        let loaded = self.conn().and_then(|mut c| Settings::load(&mut c));
        match loaded {
            Ok(s) => self.settings_cache.put(s),
            Err(e) => tracing::warn!("cannot refresh the settings: {e}"),
        }
        self.settings_cache
            .refreshing
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// A connection from the pool (blocking: call from a blocking context).
    pub fn conn(&self) -> Result<PooledConn> {
        self.pool
            .get()
            .context("no database connection available")
            .map_err(Error::Internal)
    }
}
