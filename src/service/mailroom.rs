//! Where the services leave email: the durable outbox, and a nudge to the worker so that a
//! queued email leaves at once instead of at the next poll.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::domain::Email;
use crate::metrics::Metrics;
use crate::repo::{Outbox, OutgoingEmail, RepoError};

pub struct Mailroom {
    outbox: Arc<dyn Outbox>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl Mailroom {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Mailroom {
        Mailroom {
            outbox,
            wake,
            metrics,
            clock,
        }
    }

    /// Queues `emails`, all or none; durable once this returns.
    pub async fn queue(&self, emails: &[OutgoingEmail]) -> Result<(), RepoError> {
        self.outbox.enqueue(emails, self.clock.now()).await?;
        for _ in emails {
            self.queued();
        }
        Ok(())
    }

    /// Queues a password-reset email for the account of `to`, if there is one — doing the
    /// same either way.
    pub async fn request_reset(&self, to: &Email) -> Result<(), RepoError> {
        self.outbox.request_reset(to, self.clock.now()).await?;
        self.queued();
        Ok(())
    }

    /// Announces an email that storage queued together with another change (a new user).
    pub fn queued(&self) {
        self.metrics.email("queued");
        self.wake.notify_one();
    }
}
