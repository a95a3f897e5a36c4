//! The embedded default: every repository in process memory. State dies with the process,
//! which is why start-up logs it loudly.
//!
//! - [`MemoryDb`] stands in for PostgreSQL: users, sessions, the outbox. One mutex over
//!   all of it gives the same atomicity as a transaction.
//! - [`MemoryKv`] stands in for Redis: keys with lifetimes, expired by a background task
//!   the way mini-redis does it.

mod db;
mod kv;
mod outbox;
mod refresh_tokens;
mod users;

pub use db::MemoryDb;
pub use kv::MemoryKv;
