//! The storage section: PostgreSQL and Redis, and how long to wait for them.

use std::path::Path;
use std::time::Duration;

use super::source::Reader;
use crate::repo::postgres::DatabaseUrl;
use crate::repo::redis::RedisUrl;
use crate::tls::CaFile;

/// Longest wait for one storage operation. PostgreSQL also takes it as `statement_timeout`
/// and `lock_timeout`, which it holds in (32-bit) milliseconds.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// PostgreSQL; `None` keeps users, sessions and the outbox in memory.
    pub database: Option<DatabaseUrl>,
    /// Redis; `None` keeps one-time tokens and rate limits in memory.
    pub redis: Option<RedisUrl>,
    pub db_pool_size: usize,
    /// Bound on one database operation, pool wait included.
    pub db_timeout: Duration,
    /// Bound on one Redis command, connecting included.
    pub redis_timeout: Duration,
    /// Certificates trusted for `rediss://` instead of the Mozilla roots.
    pub redis_ca: Option<CaFile>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
}

impl StorageConfig {
    pub(super) fn read(r: &mut Reader) -> StorageConfig {
        let database = r.parse("DATABASE_URL", None, |v| DatabaseUrl::parse(v).map(Some));
        let cluster = r.flag("AUTH_REDIS_CLUSTER", false);
        StorageConfig {
            database,
            redis: r.parse("REDIS_URL", None, |v| RedisUrl::parse(v, cluster).map(Some)),
            db_pool_size: r.number("AUTH_DB_POOL_SIZE", 16usize, (1, 10_000)),
            db_timeout: r.timeout("AUTH_DB_TIMEOUT", Duration::from_secs(2), MAX_TIMEOUT),
            redis_timeout: r.timeout("AUTH_REDIS_TIMEOUT", Duration::from_secs(1), MAX_TIMEOUT),
            redis_ca: r.parse("AUTH_REDIS_CA", None, |v| {
                CaFile::read(Path::new(v)).map(Some)
            }),
            redis_prefix: r
                .string("AUTH_REDIS_PREFIX")
                .unwrap_or_else(|| "authd:".into()),
        }
    }
}
