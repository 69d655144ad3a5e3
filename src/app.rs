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
use crate::git::store::RepoStore;
use crate::service::git_auth::BanList;
use crate::service::push_slots::PushSlots;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub key: Arc<SecretKey>,
    pub store: RepoStore,
    /// Failed Git authentication per IP, in this process.
    pub bans: Arc<BanList>,
    /// What makes the packs that fetches receive.
    pub engine: PackEngine,
    /// KiB that upload-pack requests being read may hold, all together
    /// (`http::body::UPLOAD_BUDGET_KIB`).
    pub upload_budget: Arc<tokio::sync::Semaphore>,
    /// Background repacks after pushes.
    pub maintainer: Arc<Maintainer>,
    /// Pushes in flight, against the push caps.
    pub push_slots: Arc<PushSlots>,
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
            .map_err(anyhow::Error::msg)?;
        let pool = db::open_pool(&config.database_url, config.db_pool_size)?;
        Ok(App {
            store: RepoStore::new(repos).with_git(engine.git_binary().map(Path::to_path_buf)),
            config: Arc::new(config),
            pool,
            key: Arc::new(key),
            bans: Arc::new(BanList::default()),
            engine,
            upload_budget: Arc::new(tokio::sync::Semaphore::new(crate::http::body::UPLOAD_BUDGET_KIB)),
            maintainer: Arc::new(Maintainer::default()),
            push_slots: Arc::new(PushSlots::default()),
        })
    }

    /// A connection from the pool (blocking: call from a blocking context).
    pub fn conn(&self) -> Result<PooledConn> {
        self.pool
            .get()
            .context("no database connection available")
            .map_err(Error::Internal)
    }
}
