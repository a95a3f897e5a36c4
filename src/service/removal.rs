//! Deleting an account, however it is asked for (its user, or an operator): one
//! transaction removes the account and everything stored with it, every session ends at
//! once on every replica (SPEC §9), then what Redis holds for it goes — its one-time
//! tokens (useless already: they name an account that no longer exists), the rate-limit
//! counters of its address and its disabled mark.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument as _;

use super::{Bug, Revocations, ServerError, Shared};
use crate::clock::Clock;
use crate::domain::UserId;
use crate::metrics::Metrics;
use crate::repo::{DisabledMarks, OwnedTokens, RateKey, RateLimits, Users};

/// How long past the access-token lifetime the ends of a deleted account's sessions stay
/// readable: replicas read ends back for the access TTL plus their own margin.
const KEEP_ENDS_MARGIN: Duration = Duration::from_secs(600);

pub struct Removal {
    users: Arc<dyn Users>,
    owned_tokens: OwnedTokens,
    disabled_marks: DisabledMarks,
    rate_limits: RateLimits,
    revocations: Arc<Revocations>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    keep_ends: Duration,
}

impl Removal {
    pub fn new(shared: &Shared, access_ttl: Duration) -> Removal {
        Removal {
            users: Arc::clone(&shared.repos.users),
            owned_tokens: shared.repos.owned_tokens.clone(),
            disabled_marks: shared.repos.disabled_marks.clone(),
            rate_limits: shared.repos.rate_limits.clone(),
            revocations: Arc::clone(&shared.revocations),
            metrics: Arc::clone(&shared.metrics),
            clock: Arc::clone(&shared.clock),
            keep_ends: access_ttl + KEEP_ENDS_MARGIN,
        }
    }

    /// Deletes `user` with everything it has. `false`: there is no such account. Runs as
    /// its own task, so a client that disconnects cannot stop it half-way.
    pub async fn delete(&self, user: UserId) -> Result<bool, ServerError> {
        let (users, owned, marks) = (
            Arc::clone(&self.users),
            self.owned_tokens.clone(),
            self.disabled_marks.clone(),
        );
        let (revocations, now) = (Arc::clone(&self.revocations), self.clock.now());
        let keep_until = now + self.keep_ends;
        let limits = self.rate_limits.clone();
        let work = async move {
            let Some((email, ended)) = users.delete(user, now, keep_until).await? else {
                return Ok(false);
            };
            revocations.ended_here(ended);
            // After the commit: if Redis fails here, what is left names an account that is
            // gone (no token of it works), and expires by itself.
            let keys = [
                RateKey::LoginFailures(email.clone()),
                RateKey::LoginAttempts(email.clone()),
                RateKey::Resend(email.clone()),
                RateKey::PasswordForgot(email),
                RateKey::EmailChange(user),
            ];
            let mut left = owned.forget(user).await.err();
            for key in &keys {
                left = left.or(limits.clear(key).await.err());
            }
            left = left.or(marks.unmark(user).await.err());
            if let Some(e) = left {
                tracing::warn!(user_id = %user, error = %e, "what Redis held for a deleted account is left to expire");
            }
            Ok::<_, ServerError>(true)
        };
        let deleted = tokio::spawn(work.in_current_span())
            .await
            .map_err(Bug::from)??;
        if deleted {
            self.metrics.account("deleted");
        }
        Ok(deleted)
    }
}
