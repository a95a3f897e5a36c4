//! The embedded default: every repository in process memory. State dies with the process,
//! which is why start-up logs it loudly.
//!
//! - [`MemoryDb`] stands in for PostgreSQL: users, refresh-token families, the outbox. One
//!   mutex over all of it gives the same atomicity as a transaction.
//! - [`MemoryKv`] stands in for Redis: keys with TTLs, expired by a background task the way
//!   mini-redis does it.

mod db;
mod kv;

use std::sync::Arc;

pub use db::MemoryDb;
pub use kv::MemoryKv;

use super::Repos;

/// All repositories backed by memory.
pub fn repos() -> Repos {
    let db = Arc::new(MemoryDb::default());
    let kv = Arc::new(MemoryKv::new());
    Repos {
        users: db.clone(),
        refresh_tokens: db.clone(),
        one_time_tokens: kv.clone(),
        rate_limits: kv.clone(),
        outbox: db.clone(),
        dependencies: vec![db, kv],
    }
}
