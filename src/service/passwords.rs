//! Passwords after registration: forgotten (reset through an emailed single-use link) and
//! changed (with the current one). Both end every session of the account.
//!
//! A reset link is stamped with the password it would replace and the address it was
//! sent to ([`User::stamp`](crate::domain::User::stamp)) when it is issued, and checked
//! against the account when it is spent: once the password changes — by a reset or a
//! change — or the address does, every older link is stale. Issuing and checking are in
//! this file.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ring::rand::SystemRandom;
use tracing::Instrument as _;

use super::{
    server_error_conversions, Bug, Limiter, LoginLimits, Mailroom, Recheck, Revocations,
    ServerError, Shared,
};
use crate::clock::Clock;
use crate::config::{LimitConfig, TokenConfig};
use crate::domain::{
    ClientAddr, CurrentPassword, Email, Password, PasswordHash, Reset, ResetGrant, ResetToken,
    SessionId, UserId,
};
use crate::hasher::Hasher;
use crate::mail::{compose, LinkTemplate, Message};
use crate::repo::{OneTimeTokens, RateKey, RepoError, Users};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Unknown, expired, used or stale reset token.
    #[error("invalid reset token")]
    InvalidResetToken,
    /// The access token names no account.
    #[error("invalid access token")]
    InvalidAccessToken,
    /// The current password given to change it is wrong.
    #[error("wrong current password")]
    WrongPassword,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Server(#[from] ServerError),
}

server_error_conversions!(PasswordError);

pub struct Passwords {
    users: Arc<dyn Users>,
    tokens: OneTimeTokens<Reset>,
    mailroom: Arc<Mailroom>,
    forgot_limit: Limiter,
    /// Wrong current passwords count as failed logins.
    login_limits: LoginLimits,
    hasher: Arc<Hasher>,
    clock: Arc<dyn Clock>,
    revocations: Arc<Revocations>,
    reset_url: LinkTemplate,
    reset_ttl: Duration,
    rng: SystemRandom,
}

impl Passwords {
    pub fn new(
        shared: &Shared,
        tokens: &TokenConfig,
        limits: &LimitConfig,
        reset_url: LinkTemplate,
    ) -> Passwords {
        let limiter = |limit, label| {
            Limiter::new(
                shared.repos.rate_limits.clone(),
                limit,
                label,
                Arc::clone(&shared.metrics),
            )
        };
        Passwords {
            users: Arc::clone(&shared.repos.users),
            tokens: shared.repos.reset_tokens.clone(),
            mailroom: Arc::clone(&shared.mailroom),
            forgot_limit: limiter(limits.forgot, "forgot"),
            login_limits: LoginLimits::new(
                shared.repos.rate_limits.clone(),
                limits.login_failures,
                Arc::clone(&shared.metrics),
            ),
            hasher: Arc::clone(&shared.hasher),
            clock: Arc::clone(&shared.clock),
            revocations: Arc::clone(&shared.revocations),
            reset_url,
            reset_ttl: tokens.reset_ttl,
            rng: SystemRandom::new(),
        }
    }

    /// Queues a reset email for `email`. Always succeeds from the caller's point of view:
    /// the work done here — one counter, one queued request — is the same whether or not
    /// the account exists (a request for an unknown address is stored, never sent, and
    /// dropped in bulk). Past the per-address limit nothing is queued, silently.
    pub async fn forgot(&self, email: Email) -> Result<(), PasswordError> {
        let key = RateKey::PasswordForgot(email.clone());
        if self.forgot_limit.hit(&key).await?.is_err() {
            return Ok(());
        }
        self.mailroom.request_reset(&email).await?;
        Ok(())
    }

    /// The reset email of `user`, to the address stored on the account, with a token
    /// stamped with its current password; `None` when the account is gone.
    pub async fn reset_letter(&self, user: UserId) -> Result<Option<Message>, RepoError> {
        let Some(user) = self.users.by_id(user).await? else {
            return Ok(None);
        };
        let token = ResetToken::generate(&self.rng);
        let grant = ResetGrant {
            user: user.id,
            stamp: user.stamp(),
        };
        self.tokens
            .put(&token.hash(), grant, self.reset_ttl)
            .await?;
        let link = self.reset_url.render(&token.expose());
        // To the address stored on the account.
        Ok(Some(compose::password_reset(
            &user.email,
            &link,
            self.reset_ttl,
        )))
    }

    /// Spends `token` and sets `password`; the email counts as verified (the user just
    /// proved control of it) and every session ends.
    pub async fn reset(
        &self,
        client: ClientAddr,
        token: ResetToken,
        password: Password,
    ) -> Result<(), PasswordError> {
        let hash = token.hash();
        // A cheap look first, so that made-up tokens cost no bcrypt work.
        if self.tokens.peek(&hash).await?.is_none() {
            return Err(PasswordError::InvalidResetToken);
        }
        // Hash before spending the token: if the bcrypt pool sheds the request, the token
        // is still good.
        let new_hash = self.hasher.hash(client, password).await?;
        // Spending the token and setting the password run as their own task, so a client
        // that disconnects (or a request timeout) cannot stop between the two.
        let (tokens, users, ttl) = (self.tokens.clone(), Arc::clone(&self.users), self.reset_ttl);
        let (revocations, clock) = (Arc::clone(&self.revocations), Arc::clone(&self.clock));
        let spend = async move {
            let grant = tokens
                .take(&hash)
                .await?
                .ok_or(PasswordError::InvalidResetToken)?;
            let outcome = replace_password(users.as_ref(), grant, new_hash, clock.now())
                .await
                .map(|(user, ended)| {
                    revocations.ended_here(ended);
                    user
                });
            if let Err(PasswordError::Server(ServerError::Unavailable(_))) = &outcome {
                // Storage failed after the token was spent: put it back so the link works
                // again once the database does (with a fresh lifetime).
                let _ = tokens.put(&hash, grant, ttl).await;
            }
            outcome
        };
        let user = tokio::spawn(spend.in_current_span())
            .await
            .map_err(Bug::from)??;
        // Failed logins before the reset no longer count against the new password.
        if let Ok(Some(account)) = self.users.by_id(user).await {
            let _ = self.login_limits.succeeded(&account.email).await;
        }
        tracing::info!(user_id = %user, "password reset; every session revoked");
        Ok(())
    }

    /// Replaces the password of `user_id` (from a checked access token) after checking the
    /// current one; every session ends. Wrong current passwords count as failed logins.
    pub async fn change(
        &self,
        client: ClientAddr,
        user_id: UserId,
        current: CurrentPassword,
        new: Password,
    ) -> Result<(), PasswordError> {
        let user = self
            .users
            .by_id(user_id)
            .await?
            .ok_or(PasswordError::InvalidAccessToken)?;
        let checked = self
            .login_limits
            .recheck(&self.hasher, client, &user, current);
        match checked.await? {
            Recheck::Right => {}
            Recheck::Wrong => return Err(PasswordError::WrongPassword),
            Recheck::Limited(exceeded) => {
                return Err(PasswordError::RateLimited {
                    retry_after: exceeded.retry_after,
                })
            }
        }
        let new_hash = self.hasher.hash(client, new).await?;
        // Only if the password is still the one just checked: a concurrent reset wins.
        let ended = self
            .users
            .set_password(
                user.id,
                &user.password_hash,
                new_hash,
                false,
                self.clock.now(),
            )
            .await?
            .ok_or(PasswordError::WrongPassword)?;
        self.revocations.ended_here(ended);
        tracing::info!(user_id = %user.id, "password changed; every session revoked");
        Ok(())
    }
}

/// The second half of a reset, once its token is spent: the link must have been issued
/// under the password it replaces.
async fn replace_password(
    users: &dyn Users,
    grant: ResetGrant,
    new_hash: PasswordHash,
    now: SystemTime,
) -> Result<(UserId, Vec<SessionId>), PasswordError> {
    let account = users
        .by_id(grant.user)
        .await?
        .ok_or(PasswordError::InvalidResetToken)?;
    // Issued before the password last changed (by an earlier reset or a change): stale,
    // like every other link of that time.
    if grant.stamp != account.stamp() {
        return Err(PasswordError::InvalidResetToken);
    }
    match users
        .set_password(account.id, &account.password_hash, new_hash, true, now)
        .await?
    {
        Some(ended) => Ok((account.id, ended)),
        None => Err(PasswordError::InvalidResetToken),
    }
}
