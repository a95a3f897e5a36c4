//! The primitives an ephemeral store offers (Redis, or memory): keys with a lifetime, read,
//! taken, counted. One-time tokens and rate limits are built on them once, for every backend.

use std::time::Duration;

use async_trait::async_trait;

use super::RepoError;

/// A counter's value and how long until its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub count: u64,
    pub resets_in: Duration,
}

/// Every method touches exactly one key (one Redis Cluster hash slot) and is atomic.
#[async_trait]
pub trait KeyValue: Send + Sync {
    /// Sets `key` to `value` for `ttl`, replacing what was there.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError>;

    /// The value of a live key.
    async fn get(&self, key: &str) -> Result<Option<String>, RepoError>;

    /// Returns the value and deletes the key in one step: of concurrent takes, one gets it.
    async fn take(&self, key: &str) -> Result<Option<String>, RepoError>;

    /// Adds one to the counter at `key`, starting a window of `window` if none is running.
    async fn increment(&self, key: &str, window: Duration) -> Result<Counter, RepoError>;

    /// The counter at `key`, if a window is running.
    async fn counter(&self, key: &str) -> Result<Option<Counter>, RepoError>;

    async fn delete(&self, key: &str) -> Result<(), RepoError>;

    /// Adds `member` to the set at `key`, which then lives at least `ttl` more.
    async fn add_member(&self, key: &str, member: &str, ttl: Duration) -> Result<(), RepoError>;

    /// Returns the members of the set at `key` and deletes it, in one step.
    async fn take_members(&self, key: &str) -> Result<Vec<String>, RepoError>;
}
