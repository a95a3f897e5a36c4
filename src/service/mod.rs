//! The rules and workflows of authd, independent of HTTP and of the storage backend.
//!
//! | Service | Owns |
//! |---|---|
//! | [`Accounts`] | registering, verifying the email, resending the verification email — and the verification link it issues |
//! | [`Sessions`] | logging in, refreshing (rotation with reuse detection), logging out |
//! | [`Passwords`] | forgotten passwords (reset links, and the stamp that makes older ones stale) and password changes |
//! | [`AccessTokens`] | checking the bearer access tokens authd issued |
//! | [`Health`] | readiness and the gauges of `/metrics` |
//! | [`Letters`] | which service writes which queued email |
//!
//! Shared pieces: [`Limiter`] (one rate-limit rule for every limit), [`Mailroom`] (queuing
//! email). Each service has one error enum: domain outcomes a client may act on, plus
//! [`ServerError`] for what is not the client's doing (a full CPU pool: shed with 503;
//! storage failing: 503, cause logged; a bug: 500).

mod accounts;
mod bearer;
mod health;
mod letters;
mod mailroom;
mod passwords;
mod rate_limit;
mod sessions;

use std::sync::Arc;

pub use accounts::{AccountError, Accounts};
pub use bearer::{AccessTokens, InvalidAccessToken};
pub use health::{Health, Readiness};
pub use letters::Letters;
pub use mailroom::Mailroom;
pub use passwords::{PasswordError, Passwords};
pub use rate_limit::{Exceeded, Limiter, RateLimit};
pub use sessions::{SessionError, Sessions, TokenPair};

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
