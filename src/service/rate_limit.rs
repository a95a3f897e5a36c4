//! The one rate-limit rule: at most `max` events per `window` for one key, counted
//! atomically before the work the limit protects.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::repo::{RateKey, RateLimits, RepoError};

/// At most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

/// Past the limit: come back after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub retry_after: Duration,
}

/// A [`RateLimit`] applied to counters, under a name for `authd_rate_limited_total`.
pub struct Limiter {
    counters: RateLimits,
    limit: RateLimit,
    label: &'static str,
    metrics: Arc<Metrics>,
}

impl Limiter {
    pub fn new(
        counters: RateLimits,
        limit: RateLimit,
        label: &'static str,
        metrics: Arc<Metrics>,
    ) -> Limiter {
        Limiter {
            counters,
            limit,
            label,
            metrics,
        }
    }

    /// Counts one more event for `key`; `Err(Exceeded)` once past the limit.
    pub async fn hit(&self, key: &RateKey) -> Result<Result<(), Exceeded>, RepoError> {
        let counter = self.counters.hit(key, self.limit.window).await?;
        if counter.count > u64::from(self.limit.max) {
            self.metrics.rate_limited(self.label);
            return Ok(Err(Exceeded {
                retry_after: counter.resets_in,
            }));
        }
        Ok(Ok(()))
    }

    /// Whether `key` has used up its events already, without counting one.
    pub async fn check(&self, key: &RateKey) -> Result<Result<(), Exceeded>, RepoError> {
        match self.counters.peek(key).await? {
            Some(counter) if counter.count >= u64::from(self.limit.max) => {
                self.metrics.rate_limited(self.label);
                Ok(Err(Exceeded {
                    retry_after: counter.resets_in,
                }))
            }
            _ => Ok(Ok(())),
        }
    }

    /// Forgets the events counted for `key` (the window starts over).
    pub async fn clear(&self, key: &RateKey) -> Result<(), RepoError> {
        self.counters.clear(key).await
    }
}
