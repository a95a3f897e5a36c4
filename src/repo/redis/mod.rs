//! The Redis store: the [`KeyValue`](crate::repo::KeyValue) primitives under which
//! one-time tokens and rate limits live.
//!
//! Every key starts with `AUTH_REDIS_PREFIX`, and every operation touches exactly one key
//! (one hash slot), so all of them work unchanged on Redis Cluster, which `REDIS_URL`
//! selects by listing several nodes (or `AUTH_REDIS_CLUSTER=true`).

mod store;
mod url;

pub use store::RedisStore;
pub use url::RedisUrl;
