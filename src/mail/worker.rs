//! The outbox worker: claims due emails, mints their tokens, sends, records the outcome.
//!
//! Delivery is at-least-once: a claim is a lease, so an email whose sender died mid-send is
//! claimed again when the lease ends. Transient failures back off exponentially with jitter;
//! permanent failures and emails out of attempts are marked failed and logged.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{watch, Notify};

use super::{compose, Mailer, SendError};
use crate::config::LinkTemplate;
use crate::domain::{OpaqueToken, Reset, TokenHash, Verification};
use crate::metrics::Metrics;
use crate::repo::{OneTimeTokens, Outbox, OutboxItem, OutgoingEmail, Purpose, TokenSubject, Users};

/// What the worker needs to turn an outbox row into an email.
pub struct Settings {
    pub verify_url: LinkTemplate,
    pub reset_url: LinkTemplate,
    pub verify_ttl: Duration,
    pub reset_ttl: Duration,
    /// How long a claim lasts before another worker may take the email.
    pub lease: Duration,
    pub max_attempts: u32,
    /// How often to look for due emails when nobody calls [`Notify`].
    pub poll: Duration,
}

pub struct Worker {
    pub outbox: Arc<dyn Outbox>,
    /// To find the account a password-reset request is for.
    pub users: Arc<dyn Users>,
    pub tokens: Arc<dyn OneTimeTokens>,
    pub mailer: Arc<dyn Mailer>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    rng: SystemRandom,
}

const BATCH: usize = 16;

impl Worker {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        users: Arc<dyn Users>,
        tokens: Arc<dyn OneTimeTokens>,
        mailer: Arc<dyn Mailer>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Worker {
        Worker {
            outbox,
            users,
            tokens,
            mailer,
            settings,
            metrics,
            rng: SystemRandom::new(),
        }
    }

    /// Runs until `stop` turns true. `wake` is notified when an email is queued locally, so
    /// it leaves at once instead of at the next poll.
    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let sent_some = match self
                .outbox
                .claim(BATCH, self.settings.lease, SystemTime::now())
                .await
            {
                Ok(items) => {
                    let full = items.len() == BATCH;
                    for item in items {
                        // On shutdown, leave the rest: their claim lapses and they are sent
                        // by whichever process claims them next (at-least-once).
                        if *stop.borrow() {
                            return;
                        }
                        self.deliver(item).await;
                    }
                    full
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: cannot claim emails");
                    false
                }
            };
            if sent_some {
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
                changed = stop.changed() => {
                    // The sender is gone: whoever ran us has stopped.
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn deliver(&self, item: OutboxItem) {
        let to = item.email.to();
        // The token is minted now, so its lifetime starts when the email leaves.
        let (purpose, subject, ttl, (hash, token)) = match &item.email {
            OutgoingEmail::Verification { user, .. } => (
                Purpose::VerifyEmail,
                TokenSubject::from(*user),
                self.settings.verify_ttl,
                mint::<Verification>(&self.rng),
            ),
            OutgoingEmail::PasswordReset { to } => match self.users.by_email(to).await {
                Ok(Some(user)) => (
                    Purpose::ResetPassword,
                    // Stamped with the current password: a reset or change makes it stale.
                    TokenSubject {
                        user: user.id,
                        stamp: Some(user.password_hash.stamp()),
                    },
                    self.settings.reset_ttl,
                    mint::<Reset>(&self.rng),
                ),
                Ok(None) => {
                    // Nobody to reset: the request was queued only so that asking costs the
                    // same whether or not the account exists. Counted as "sent", like a
                    // real one, so that /metrics does not tell either.
                    self.metrics.email("sent");
                    if let Err(e) = self.outbox.mark_skipped(item.id).await {
                        tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot mark request skipped");
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot look the account up");
                    self.retry_or_fail(&item).await;
                    return;
                }
            },
        };
        if let Err(e) = self.tokens.put(purpose, &hash, subject, ttl).await {
            tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot store token");
            self.retry_or_fail(&item).await;
            return;
        }
        let message = match purpose {
            Purpose::VerifyEmail => {
                compose::verification(to, &self.settings.verify_url.render(&token), ttl)
            }
            Purpose::ResetPassword => {
                compose::password_reset(to, &self.settings.reset_url.render(&token), ttl)
            }
        };
        match self.mailer.send(&message).await {
            Ok(()) => {
                self.metrics.email("sent");
                if let Err(e) = self.outbox.mark_sent(item.id).await {
                    // The email left; at worst it is sent once more after the lease.
                    tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot mark email sent");
                }
            }
            Err(SendError::Transient(cause)) if item.attempts + 1 < self.settings.max_attempts => {
                tracing::warn!(%cause, outbox_id = item.id, to = %to.masked(), attempt = item.attempts + 1, "email not sent; will retry");
                self.metrics.email("retried");
                self.retry(&item).await;
            }
            Err(SendError::Transient(cause) | SendError::Permanent(cause)) => {
                tracing::error!(%cause, outbox_id = item.id, to = %to.masked(), attempts = item.attempts + 1, "email failed for good");
                self.metrics.email("failed");
                if let Err(e) = self.outbox.mark_failed(item.id).await {
                    tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot mark email failed");
                }
            }
        }
    }

    /// Tries again later, or gives up when the attempts are used up.
    async fn retry_or_fail(&self, item: &OutboxItem) {
        if item.attempts + 1 < self.settings.max_attempts {
            self.retry(item).await;
        } else {
            tracing::error!(
                outbox_id = item.id,
                attempts = item.attempts + 1,
                "email failed for good"
            );
            self.metrics.email("failed");
            if let Err(e) = self.outbox.mark_failed(item.id).await {
                tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot mark email failed");
            }
        }
    }

    async fn retry(&self, item: &OutboxItem) {
        let at = SystemTime::now() + backoff(item.attempts, &self.rng);
        if let Err(e) = self.outbox.retry_at(item.id, at).await {
            tracing::warn!(error = %e, outbox_id = item.id, "outbox: cannot reschedule; the lease will");
        }
    }
}

/// A new token of kind `K`: its hash to store and its text for the link.
fn mint<K>(rng: &SystemRandom) -> (TokenHash, String) {
    let token = OpaqueToken::<K>::generate(rng);
    (token.hash(), token.expose())
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
