//! The programs authd's tests and bench talk to, found or started on demand, and storage
//! of one's own on them. Shared by `tests/api` and `bench/`.
//!
//! | Module | Holds |
//! |---|---|
//! | [`servers`] | the shared PostgreSQL and Redis: found on their usual ports, or started |
//! | [`owned`] | a throwaway PostgreSQL or Redis (installed with apt-get when missing, as root) |
//! | [`storage`] | a fresh database and Redis prefix per test, dropped afterwards |
//! | [`smtp`] | a real SMTP server (aiosmtpd) that records what it receives |
//! | [`nginx`] | a real NGINX running a site configuration |
//! | [`node`] | Node.js packages from npm, for tests that drive a real client library |
//! | [`cluster`] | a Redis Cluster of 3 masters and 3 replicas |
//! | [`system`] | ports, commands, packages, temporary directories |

pub mod cluster;
pub mod nginx;
pub mod node;
pub mod owned;
pub mod servers;
pub mod smtp;
pub mod storage;
pub mod system;

pub use cluster::RedisCluster;
pub use nginx::Nginx;
pub use node::node_packages;
pub use owned::Owned;
pub use servers::{services, Services};
pub use smtp::SmtpSink;
pub use storage::{Storage, TestDatabase, TestRedis};
pub use system::{block_on, free_port};
