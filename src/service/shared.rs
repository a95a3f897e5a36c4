//! What every service is built from, and the failures that are not the client's doing,
//! shared by every service's error enum.

use std::sync::Arc;

use super::{Mailroom, Revocations};
use crate::clock::Clock;
use crate::cpu_pool::PoolError;
use crate::hasher::Hasher;
use crate::jwt::SignError;
use crate::metrics::Metrics;
use crate::repo::{RepoError, Repos};

/// What every service is built from.
pub struct Shared {
    pub repos: Repos,
    pub hasher: Arc<Hasher>,
    pub mailroom: Arc<Mailroom>,
    /// Which sessions have ended; told at once when this replica ends one.
    pub revocations: Arc<Revocations>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

/// A failure that is not the client's doing.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A CPU pool is full: shed the request rather than queue without limit.
    #[error("a CPU pool is full")]
    Overloaded,
    /// Storage failed or did not answer in time.
    #[error(transparent)]
    Unavailable(#[from] RepoError),
    #[error(transparent)]
    Unexpected(#[from] Bug),
}

/// Something that should never happen.
#[derive(Debug, thiserror::Error)]
pub enum Bug {
    #[error("a CPU pool job panicked")]
    Panicked,
    #[error(transparent)]
    Signing(#[from] SignError),
    #[error("a spawned task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<PoolError> for ServerError {
    fn from(e: PoolError) -> ServerError {
        match e {
            PoolError::Overloaded => ServerError::Overloaded,
            PoolError::Panicked => ServerError::Unexpected(Bug::Panicked),
        }
    }
}

/// Lets `?` turn storage, pool and bug errors into a service error's `Server` variant.
macro_rules! server_error_conversions {
    ($error:ident) => {
        impl From<$crate::repo::RepoError> for $error {
            fn from(e: $crate::repo::RepoError) -> $error {
                $error::Server(e.into())
            }
        }

        impl From<$crate::cpu_pool::PoolError> for $error {
            fn from(e: $crate::cpu_pool::PoolError) -> $error {
                $error::Server(e.into())
            }
        }

        impl From<$crate::service::Bug> for $error {
            fn from(e: $crate::service::Bug) -> $error {
                $error::Server(e.into())
            }
        }
    };
}
pub(crate) use server_error_conversions;
