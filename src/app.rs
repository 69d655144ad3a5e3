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

impl App {
    /// Prepares the data directory (mode 0700), the secret key and the
    /// repositories folder, migrates the database and opens the pool.
    pub fn open(config: Config) -> anyhow::Result<App> {
        crate::fsutil::create_private_dir(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let repos = config.repositories_dir();
        std::fs::create_dir_all(&repos).with_context(|| format!("cannot create {}", repos.display()))?;
        let key = SecretKey::load_or_create(&config.secret_key_file)?;
        let engine = PackEngine::resolve(&config.pack_engine, std::env::var_os("PATH").as_deref())
            .map_err(anyhow::Error::new)?;
        let pool = db::open_pool(&config.database_url, config.db_pool_size)?;
        let settings = {
            let mut conn = pool.get().context("no database connection available")?;
            let sealed = crate::service::two_factor::seal_kept_in_clear(&mut conn, &key)
                .map_err(|e| anyhow::anyhow!("cannot seal the two-factor secrets: {e}"))?;
            if sealed > 0 {
                tracing::info!("sealed {sealed} two-factor secrets an earlier version kept in clear");
            }
            Settings::load(&mut conn).map_err(|e| anyhow::anyhow!("cannot read the settings: {e}"))?
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
