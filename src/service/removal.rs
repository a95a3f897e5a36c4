//! Deleting an account, however it is asked for (its user, or an operator): one
//! transaction removes the account and everything stored with it, every session ends at
//! once on every replica (SPEC §9), then its one-time tokens go from Redis — useless
//! already, since they name an account that no longer exists.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument as _;

use super::{Bug, Revocations, ServerError, Shared};
use crate::clock::Clock;
use crate::domain::UserId;
use crate::metrics::Metrics;
use crate::repo::{DisabledMarks, OwnedTokens, Users};

/// How long past the access-token lifetime the ends of a deleted account's sessions stay
/// readable: replicas read ends back for the access TTL plus their own margin.
const KEEP_ENDS_MARGIN: Duration = Duration::from_secs(600);

pub struct Removal {
    users: Arc<dyn Users>,
    owned_tokens: OwnedTokens,
    disabled_marks: DisabledMarks,
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
        let work = async move {
            let Some(ended) = users.delete(user, now, keep_until).await? else {
                return Ok(false);
            };
            revocations.ended_here(ended);
            // After the commit: if Redis fails here, what is left names an account that is
            // gone (no token of it works), and expires by itself.
            if let Err(e) = owned.forget(user).await {
                tracing::warn!(user_id = %user, error = %e, "one-time tokens of a deleted account left to expire");
            }
            let _ = marks.unmark(user).await;
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
