//! What an operator may do through the admin API (SPEC §10): find an account, disable or
//! enable it, end its sessions, count its email as verified, delete it. Every action that
//! finds its account is logged on the `authd::audit` target with the user id.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument as _;

use super::{server_error_conversions, Bug, Removal, Revocations, ServerError, Shared};
use crate::clock::Clock;
use crate::domain::{Email, User, UserId};
use crate::metrics::Metrics;
use crate::repo::{DisabledMarks, OwnedTokens, RefreshTokens, Users};

/// How long past the access-token lifetime a disabled account stays marked for bearer
/// checks: clock skew between replicas, with room.
const MARK_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no such user")]
    NoSuchUser,
    #[error(transparent)]
    Server(#[from] ServerError),
}

server_error_conversions!(AdminError);

/// An account as an operator sees it.
pub struct UserView {
    pub user: User,
    /// Live sessions.
    pub sessions: usize,
}

pub struct Admin {
    users: Arc<dyn Users>,
    refresh_tokens: Arc<dyn RefreshTokens>,
    disabled_marks: DisabledMarks,
    owned_tokens: OwnedTokens,
    revocations: Arc<Revocations>,
    removal: Arc<Removal>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    mark_ttl: Duration,
}

fn audit(action: &'static str, user: UserId) {
    tracing::info!(target: "authd::audit", action, user_id = %user, "admin action");
}

impl Admin {
    pub fn new(shared: &Shared, removal: Arc<Removal>, access_ttl: Duration) -> Admin {
        Admin {
            users: Arc::clone(&shared.repos.users),
            refresh_tokens: Arc::clone(&shared.repos.refresh_tokens),
            disabled_marks: shared.repos.disabled_marks.clone(),
            owned_tokens: shared.repos.owned_tokens.clone(),
            revocations: Arc::clone(&shared.revocations),
            removal,
            metrics: Arc::clone(&shared.metrics),
            clock: Arc::clone(&shared.clock),
            mark_ttl: access_ttl + MARK_MARGIN,
        }
    }

    fn done(&self, action: &'static str, user: UserId) {
        self.metrics.admin(action);
        audit(action, user);
    }

    async fn view(&self, user: Option<User>) -> Result<UserView, AdminError> {
        let user = user.ok_or(AdminError::NoSuchUser)?;
        let sessions = self
            .refresh_tokens
            .sessions(user.id, self.clock.now())
            .await?
            .len();
        self.done("lookup", user.id);
        Ok(UserView { user, sessions })
    }

    pub async fn find_by_email(&self, email: &Email) -> Result<UserView, AdminError> {
        let user = self.users.by_email(email).await?;
        self.view(user).await
    }

    pub async fn find(&self, id: UserId) -> Result<UserView, AdminError> {
        let user = self.users.by_id(id).await?;
        self.view(user).await
    }

    /// Disables the account, ends every session and forgets its one-time tokens (no link
    /// of it works); its bearer tokens are refused with `account_disabled` from then on.
    /// The mark bearer checks read is set first, so that no moment has the account
    /// disabled without it.
    ///
    /// Runs as its own task, so that a dropped request cannot stop between the steps.
    pub async fn disable(&self, id: UserId) -> Result<(), AdminError> {
        let (marks, users, owned) = (
            self.disabled_marks.clone(),
            Arc::clone(&self.users),
            self.owned_tokens.clone(),
        );
        let (revocations, ttl, now) = (
            Arc::clone(&self.revocations),
            self.mark_ttl,
            self.clock.now(),
        );
        let work = async move {
            marks.mark(id, ttl).await?;
            let ended = match users.set_disabled(id, true, now).await {
                Ok(Some(ended)) => ended,
                outcome => {
                    let _ = marks.unmark(id).await;
                    return match outcome {
                        Err(e) => Err(e.into()),
                        _ => Err(AdminError::NoSuchUser),
                    };
                }
            };
            revocations.ended_here(ended);
            owned.forget(id).await?;
            Ok::<_, AdminError>(())
        };
        tokio::spawn(work.in_current_span())
            .await
            .map_err(Bug::from)??;
        self.done("disable", id);
        Ok(())
    }

    pub async fn enable(&self, id: UserId) -> Result<(), AdminError> {
        self.users
            .set_disabled(id, false, self.clock.now())
            .await?
            .ok_or(AdminError::NoSuchUser)?;
        self.disabled_marks.unmark(id).await?;
        self.done("enable", id);
        Ok(())
    }

    pub async fn revoke_sessions(&self, id: UserId) -> Result<(), AdminError> {
        self.users.by_id(id).await?.ok_or(AdminError::NoSuchUser)?;
        let ended = self
            .refresh_tokens
            .revoke_user_sessions(id, self.clock.now())
            .await?;
        self.revocations.ended_here(ended);
        self.done("revoke_sessions", id);
        Ok(())
    }

    pub async fn verify(&self, id: UserId) -> Result<(), AdminError> {
        if !self.users.mark_verified(id).await? {
            return Err(AdminError::NoSuchUser);
        }
        self.done("verify", id);
        Ok(())
    }

    pub async fn delete(&self, id: UserId) -> Result<(), AdminError> {
        if !self.removal.delete(id).await? {
            return Err(AdminError::NoSuchUser);
        }
        self.done("delete", id);
        Ok(())
    }
}
