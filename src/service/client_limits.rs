//! The per-client limit (SPEC §8): at most `AUTH_CLIENT_MAX` requests per
//! `AUTH_CLIENT_WINDOW` from one client address to the routes that check a password or
//! may send an email, decided before any of their work.

use std::sync::Arc;
use std::time::Duration;

use super::{server_error_conversions, Limiter, RateLimit, ServerError};
use crate::domain::Client;
use crate::metrics::Metrics;
use crate::repo::{RateKey, RateLimits};

#[derive(Debug, thiserror::Error)]
pub enum ClientLimitError {
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Server(#[from] ServerError),
}

server_error_conversions!(ClientLimitError);

pub struct ClientLimits {
    /// `None`: the limit is off.
    limiter: Option<Limiter>,
}

impl ClientLimits {
    pub fn new(counters: RateLimits, limit: Option<RateLimit>, metrics: Arc<Metrics>) -> Self {
        ClientLimits {
            limiter: limit.map(|limit| Limiter::new(counters, limit, "client", metrics)),
        }
    }

    /// Counts one request from `client`. A trusted proxy is never limited as a client.
    pub async fn admit(&self, client: &Client) -> Result<(), ClientLimitError> {
        let Some(limiter) = self.limiter.as_ref().filter(|_| !client.trusted) else {
            return Ok(());
        };
        match limiter.hit(&RateKey::Client(client.addr)).await? {
            Ok(()) => Ok(()),
            Err(exceeded) => Err(ClientLimitError::RateLimited {
                retry_after: exceeded.retry_after,
            }),
        }
    }
}
