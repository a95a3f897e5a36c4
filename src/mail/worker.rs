//! The outbox worker: claims due emails, has them written, sends them, records the outcome.
//!
//! Up to `concurrency` emails are sent at once, each in its own task, so one slow relay
//! or one slow message holds only its own slot; each send is bounded well inside its lease.
//! Delivery is at-least-once: a claim is a lease, so an email whose sender died mid-send is
//! claimed again when the lease ends. Transient failures back off exponentially with jitter;
//! permanent failures and emails out of attempts are marked failed and logged. Reset
//! requests for addresses without an account are dropped in bulk before each claim.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use super::{Mailer, Message, SendError};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::repo::{Outbox, OutboxItem, OutgoingEmail, RepoError};

/// Writes the message of a queued email, minting and storing the token it carries now, so
/// the token's lifetime starts when the email leaves. Implemented by the services that own
/// each kind of email (see `service::letters`).
#[async_trait]
pub trait Letters: Send + Sync {
    /// `None` when there is nothing to send after all (a reset request for an address
    /// without an account).
    async fn write(&self, email: &OutgoingEmail) -> Result<Option<Message>, RepoError>;
}

/// How the worker paces itself.
pub struct Settings {
    /// How long a claim lasts before another worker may take the email.
    pub lease: Duration,
    pub max_attempts: u32,
    /// How often to look for due emails when nobody calls [`Notify`].
    pub poll: Duration,
    /// Emails sent at once.
    pub concurrency: usize,
}

pub struct Worker {
    pub outbox: Arc<dyn Outbox>,
    pub letters: Arc<dyn Letters>,
    pub mailer: Arc<dyn Mailer>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub rng: SystemRandom,
}

/// Orphan reset requests dropped by one statement at most.
const ORPHANS_BATCH: usize = 10_000;
/// On shutdown, how long sends in progress may take to finish; the rest are left to their
/// lease (and sent again by whoever claims them next).
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Worker {
    /// Runs until `stop` turns true. `wake` is notified when an email is queued locally, so
    /// it leaves at once instead of at the next poll.
    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let worker = Arc::new(self);
        let slots = Arc::new(Semaphore::new(worker.settings.concurrency.max(1)));
        let mut sending = JoinSet::new();
        loop {
            while sending.try_join_next().is_some() {}
            if *stop.borrow() {
                break;
            }
            worker.drop_orphans().await;
            let free = slots.available_permits();
            let mut full = false;
            if free > 0 {
                let now = worker.clock.now();
                match worker.outbox.claim(free, worker.settings.lease, now).await {
                    Ok(items) => {
                        full = items.len() == free;
                        for item in items {
                            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                                break;
                            };
                            let worker = Arc::clone(&worker);
                            sending.spawn(async move {
                                worker.deliver_within_lease(item).await;
                                drop(slot);
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "outbox: cannot claim emails"),
                }
            }
            if full {
                // More may be due: claim again as soon as a slot is free.
                tokio::select! {
                    _ = sending.join_next() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(worker.settings.poll) => {}
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
                changed = stop.changed() => {
                    // The sender is gone: whoever ran us has stopped.
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        let finish = async { while sending.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_GRACE, finish).await.is_err() {
            sending.abort_all();
        }
    }

    /// Drops reset requests for addresses without an account.
    async fn drop_orphans(&self) {
        if let Err(e) = self.outbox.drop_orphans(ORPHANS_BATCH).await {
            tracing::warn!(error = %e, "outbox: cannot drop requests without an account");
        }
    }

    /// Counts an outcome — of verification emails only. Whether and when a reset email is
    /// sent, retried or failed would tell a `/metrics` reader which addresses have an
    /// account (a request for one without is dropped at once); reset emails are counted
    /// once, as queued, when requested, and their outcomes are logged.
    fn count(&self, item: &OutboxItem, result: &'static str) {
        if matches!(item.email, OutgoingEmail::Verification { .. }) {
            self.metrics.email(result);
        }
    }

    /// Delivers `item`, giving up (the lease will bring it back) if that takes most of the
    /// lease: a claim never outlives its lease.
    async fn deliver_within_lease(&self, item: OutboxItem) {
        let (id, limit) = (item.id, self.settings.lease.mul_f64(0.75));
        if tokio::time::timeout(limit, self.deliver(item))
            .await
            .is_err()
        {
            tracing::warn!(
                outbox_id = id,
                "email took longer than its lease allows; it will be claimed again"
            );
        }
    }

    async fn deliver(&self, item: OutboxItem) {
        let message = match self.letters.write(&item.email).await {
            Ok(Some(message)) => message,
            Ok(None) => {
                // The account is gone: nothing to send.
                if let Err(e) = self.outbox.mark_skipped(item.id).await {
                    tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot mark email skipped");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot write the email");
                self.retry_or_fail(&item, None).await;
                return;
            }
        };
        let to = message.to.masked();
        match self.mailer.send(&message).await {
            Ok(()) => {
                self.count(&item, "sent");
                if let Err(e) = self.outbox.mark_sent(item.id).await {
                    // The email left; at worst it is sent once more after the lease.
                    tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot mark email sent");
                }
            }
            Err(SendError::Transient(cause)) => {
                tracing::warn!(%cause, outbox_id = item.id, %to, attempt = item.attempts + 1, "email not sent");
                if self.retry_or_fail(&item, Some(&to)).await {
                    self.count(&item, "retried");
                }
            }
            Err(SendError::Permanent(cause)) => {
                tracing::error!(%cause, outbox_id = item.id, %to, attempts = item.attempts + 1, "email refused for good");
                self.fail(&item).await;
            }
        }
    }

    /// Tries again later (true), or gives up when the attempts are used up (false).
    async fn retry_or_fail(&self, item: &OutboxItem, to: Option<&str>) -> bool {
        if item.attempts + 1 >= self.settings.max_attempts {
            tracing::error!(
                outbox_id = item.id,
                to = to.unwrap_or_default(),
                attempts = item.attempts + 1,
                "email failed for good: out of attempts"
            );
            self.fail(item).await;
            return false;
        }
        let at = self.clock.now() + backoff(item.attempts, &self.rng);
        if let Err(e) = self.outbox.retry_at(item.id, at).await {
            tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot reschedule; the lease will");
        }
        true
    }

    async fn fail(&self, item: &OutboxItem) {
        self.count(item, "failed");
        if let Err(e) = self.outbox.mark_failed(item.id).await {
            tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot mark email failed");
        }
    }
}

/// 1 s, 2 s, 4 s … capped at 10 min, each with up to half again of random jitter so that
/// many failed emails do not retry in lockstep.
pub fn backoff(attempts: u32, rng: &SystemRandom) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.min(20)).min(Duration::from_secs(600));
    let mut b = [0u8; 2];
    let jitter = if rng.fill(&mut b).is_ok() {
        u16::from_le_bytes(b)
    } else {
        0
    };
    base + base.mul_f64(f64::from(jitter) / f64::from(u16::MAX) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let rng = SystemRandom::new();
        let first = backoff(0, &rng);
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1500));
        let fifth = backoff(4, &rng);
        assert!(fifth >= Duration::from_secs(16) && fifth <= Duration::from_secs(24));
        let late = backoff(30, &rng);
        assert!(late >= Duration::from_secs(600) && late <= Duration::from_secs(900));
    }
}
