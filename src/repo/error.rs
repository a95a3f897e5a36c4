//! What can go wrong in storage, typed, for the log and the one place that answers `503`.

use super::postgres::PgError;

/// A storage failure. Its Display is for the log only, never for a client, and never
/// quotes stored values.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("postgres: {0}")]
    Postgres(#[from] PgError),
    #[error("postgres: no pooled connection within AUTH_DB_TIMEOUT")]
    PoolTimeout,
    #[error("postgres: {0}")]
    Pool(deadpool_postgres::PoolError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}: timed out")]
    Timeout(&'static str),
    #[error("stored data is not what authd writes: {0}")]
    Corrupt(&'static str),
    #[error("the in-memory store is poisoned: a thread panicked while holding it")]
    Poisoned,
    /// A combined write (several refreshes in one statement) failed as a whole.
    #[error("{0} (in a combined write)")]
    Batch(std::sync::Arc<RepoError>),
}
