//! The PostgreSQL repositories: users, sessions and refresh tokens, the outbox.
//!
//! [`PgStore`] holds the pool; each trait is implemented in its own file, with its SQL in
//! named constants. Every operation takes a pooled connection (bounded wait) and runs
//! prepared statements, the whole bounded by one deadline, so a stalled database yields a
//! [`RepoError`](crate::repo::RepoError) (a 503) instead of a hung request. Multi-row
//! changes are single statements (CTEs) or transactions, which is what makes them atomic.
//! Refresh-token rotations are combined: those that arrive together are written as one
//! statement (`rotations.rs`), by one writer on a connection of its own.

pub mod migrate;
mod outbox;
mod refresh_tokens;
mod rotations;
mod store;
mod url;
mod users;

pub use migrate::MigrateError;
pub use store::{PgError, PgStore};
pub use url::DatabaseUrl;
