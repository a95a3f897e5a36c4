//! Choosing the backends: PostgreSQL when `DATABASE_URL` is set (after migrating), Redis
//! when `REDIS_URL` is set, memory for whatever is unset.

use std::sync::Arc;
use std::time::Duration;

use super::postgres::{self, MigrateError, PgStore};
use super::redis::RedisStore;
use super::{
    memory, Dependency, DisabledMarks, KeyValue, OneTimeTokens, Outbox, OwnedTokens, RateLimits,
    RefreshTokens, Users,
};
use crate::clock::Clock;
use crate::config::StorageConfig;
use crate::domain::{EmailChange, Reset, Verification};
use crate::metrics::Metrics;

/// Longest start-up waits for PostgreSQL to answer and migrations to apply.
const MIGRATE_WITHIN: Duration = Duration::from_secs(30);

/// Every repository the services use, as trait objects so the backend is chosen at start-up.
#[derive(Clone)]
pub struct Repos {
    pub users: Arc<dyn Users>,
    pub refresh_tokens: Arc<dyn RefreshTokens>,
    pub outbox: Arc<dyn Outbox>,
    pub verification_tokens: OneTimeTokens<Verification>,
    pub reset_tokens: OneTimeTokens<Reset>,
    pub email_change_tokens: OneTimeTokens<EmailChange>,
    pub owned_tokens: OwnedTokens,
    pub disabled_marks: DisabledMarks,
    pub rate_limits: RateLimits,
    pub dependencies: Vec<Arc<dyn Dependency>>,
}

/// Why storage could not be opened; names the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("DATABASE_URL: PostgreSQL did not answer within {}s", MIGRATE_WITHIN.as_secs())]
    MigrationTimeout,
    #[error("DATABASE_URL: {0}")]
    Migrate(#[from] MigrateError),
    #[error("DATABASE_URL: cannot build the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Opens the storage `config` asks for. The in-memory stores keep time by `clock`.
pub async fn open(
    config: &StorageConfig,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<Repos, OpenError> {
    match (&config.database, &config.redis) {
        (None, None) => tracing::warn!(
            "DATABASE_URL and REDIS_URL are not set: all state is in memory and is lost when authd stops"
        ),
        (None, Some(_)) => tracing::warn!(
            "DATABASE_URL is not set: users and sessions are in memory and are lost when authd stops"
        ),
        (Some(_), None) => tracing::warn!(
            "REDIS_URL is not set: one-time tokens and rate limits are in memory, per process"
        ),
        (Some(_), Some(_)) => {}
    }
    let mut dependencies: Vec<Arc<dyn Dependency>> = Vec::new();
    let (users, refresh_tokens, outbox): (Arc<dyn Users>, Arc<dyn RefreshTokens>, Arc<dyn Outbox>) =
        match &config.database {
            Some(url) => {
                let applied = tokio::time::timeout(MIGRATE_WITHIN, postgres::migrate::run(url))
                    .await
                    .map_err(|_| OpenError::MigrationTimeout)??;
                if !applied.is_empty() {
                    tracing::info!(count = applied.len(), "database migrations applied");
                }
                let store = Arc::new(PgStore::new(
                    url,
                    config.db_pool_size,
                    config.db_timeout,
                    Arc::clone(&metrics),
                )?);
                dependencies.push(store.clone());
                (store.clone(), store.clone(), store)
            }
            None => {
                let db = Arc::new(memory::MemoryDb::default());
                dependencies.push(db.clone());
                (db.clone(), db.clone(), db)
            }
        };
    let ephemeral: Arc<dyn KeyValue> = match &config.redis {
        Some(url) => {
            let store = Arc::new(RedisStore::new(
                metrics,
                url,
                config.redis_ca.as_ref(),
                config.redis_prefix.clone(),
                config.redis_timeout,
            )?);
            dependencies.push(store.clone());
            store
        }
        None => {
            let kv = Arc::new(memory::MemoryKv::new(clock));
            dependencies.push(kv.clone());
            kv
        }
    };
    Ok(Repos {
        users,
        refresh_tokens,
        outbox,
        verification_tokens: OneTimeTokens::new(Arc::clone(&ephemeral)),
        reset_tokens: OneTimeTokens::new(Arc::clone(&ephemeral)),
        email_change_tokens: OneTimeTokens::new(Arc::clone(&ephemeral)),
        owned_tokens: OwnedTokens::new(Arc::clone(&ephemeral)),
        disabled_marks: DisabledMarks::new(Arc::clone(&ephemeral)),
        rate_limits: RateLimits::new(ephemeral),
        dependencies,
    })
}
