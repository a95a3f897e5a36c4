//! What the API tests stand on, one module a job:
//!
//! - the servers (PostgreSQL, Redis, SMTP, Redis Cluster) and storage of one's own come
//!   from the `authd-testkit` crate (`tests/kit`), which the bench shares;
//! - [`app`]: authd in this process, with captured email and a clock to move;
//! - [`client`]: a tiny HTTP client with typed helpers;
//! - [`process`]: the real binary as a child process;
//! - [`pg_proxy`]: a PostgreSQL proxy that counts round trips.

#[macro_use]
mod app;
mod client;
mod pg_proxy;
mod process;
mod scratch;

pub use app::{
    base_config, path_of_link, spawn_app, spawn_app_on, spawn_app_with, spawn_replica, testdata,
    Backend, TestApp, PASSWORD,
};
pub use authd_testkit::{
    block_on, free_port, node_packages, services, Nginx, Owned, RedisCluster, SmtpSink, Storage,
    TestDatabase, TestRedis,
};
pub use client::{connect, Client, TestResponse};
pub use pg_proxy::PgProxy;
pub use process::AuthdProcess;
pub use scratch::Scratch;
