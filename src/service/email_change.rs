//! Changing an account's email address (SPEC §10): asked with the password, confirmed
//! through a single-use link sent to the new address, with a notice to the current one.
//!
//! A change is stamped with the account as it was when the change was asked for — its
//! address and its password ([`User::stamp`](crate::domain::User::stamp)) — and checked
//! against the account when the link is sent and when it is used: once the address or
//! the password changes (the owner noticing the notice and changing the password, say),
//! every older link is stale. Issuing and checking are in this file. A confirmed change
//! also forgets every other one-time token of the account: links sent to the old address
//! stop working.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use tracing::Instrument as _;

use super::{
    server_error_conversions, Bug, Limiter, LoginLimits, Mailroom, Recheck, Revocations,
    ServerError, Shared,
};
use crate::clock::Clock;
use crate::config::{LimitConfig, TokenConfig};
use crate::domain::{
    ClientAddr, CurrentPassword, Email, EmailChange, EmailChangeGrant, EmailChangeToken, UserId,
};
use crate::hasher::Hasher;
use crate::mail::{compose, LinkTemplate, Message};
use crate::metrics::Metrics;
use crate::repo::{
    AddressChange, OneTimeTokens, OutgoingEmail, OwnedTokens, RateKey, RepoError, Users,
};

#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    /// The access token names no account.
    #[error("invalid access token")]
    InvalidAccessToken,
    #[error("wrong password")]
    WrongPassword,
    /// Another account has the address (or this one already does).
    #[error("the email is taken")]
    EmailTaken,
    /// Unknown, expired, used or stale confirmation token.
    #[error("invalid email-change token")]
    InvalidToken,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Server(#[from] ServerError),
}

server_error_conversions!(EmailChangeError);

pub struct EmailChanges {
    users: Arc<dyn Users>,
    tokens: OneTimeTokens<EmailChange>,
    owned_tokens: OwnedTokens,
    mailroom: Arc<Mailroom>,
    /// Changes asked per account (each sends two emails).
    limit: Limiter,
    /// Wrong passwords count as failed logins.
    login_limits: LoginLimits,
    hasher: Arc<Hasher>,
    revocations: Arc<Revocations>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    url: LinkTemplate,
    ttl: Duration,
    rng: SystemRandom,
}

impl EmailChanges {
    pub fn new(
        shared: &Shared,
        tokens: &TokenConfig,
        limits: &LimitConfig,
        url: LinkTemplate,
    ) -> EmailChanges {
        EmailChanges {
            users: Arc::clone(&shared.repos.users),
            tokens: shared.repos.email_change_tokens.clone(),
            owned_tokens: shared.repos.owned_tokens.clone(),
            mailroom: Arc::clone(&shared.mailroom),
            limit: Limiter::new(
                shared.repos.rate_limits.clone(),
                limits.email_change,
                "email_change",
                Arc::clone(&shared.metrics),
            ),
            login_limits: LoginLimits::new(
                shared.repos.rate_limits.clone(),
                limits.login_failures,
                Arc::clone(&shared.metrics),
            ),
            hasher: Arc::clone(&shared.hasher),
            revocations: Arc::clone(&shared.revocations),
            metrics: Arc::clone(&shared.metrics),
            clock: Arc::clone(&shared.clock),
            url,
            ttl: tokens.verify_ttl,
            rng: SystemRandom::new(),
        }
    }

    /// Checks the password of `user` (from a checked access token) and queues the
    /// confirmation to `new` and the notice to the current address, together.
    pub async fn request(
        &self,
        client: ClientAddr,
        user: UserId,
        new: Email,
        password: CurrentPassword,
    ) -> Result<(), EmailChangeError> {
        let account = self
            .users
            .by_id(user)
            .await?
            .ok_or(EmailChangeError::InvalidAccessToken)?;
        let checked = self
            .login_limits
            .recheck(&self.hasher, client, &account, password);
        match checked.await? {
            Recheck::Right => {}
            Recheck::Wrong => return Err(EmailChangeError::WrongPassword),
            Recheck::Limited(exceeded) => {
                return Err(EmailChangeError::RateLimited {
                    retry_after: exceeded.retry_after,
                })
            }
        }
        if new == account.email || self.users.by_email(&new).await?.is_some() {
            return Err(EmailChangeError::EmailTaken);
        }
        if let Err(exceeded) = self.limit.hit(&RateKey::EmailChange(user)).await? {
            return Err(EmailChangeError::RateLimited {
                retry_after: exceeded.retry_after,
            });
        }
        let stamp = account.stamp();
        self.mailroom
            .queue(&[
                OutgoingEmail::EmailChange {
                    user,
                    to: new,
                    stamp,
                },
                // To the address the account has now, which a confirmation may change
                // before this is sent.
                OutgoingEmail::EmailChangeNotice {
                    user,
                    to: account.email.clone(),
                },
            ])
            .await?;
        self.metrics.account("email_change_requested");
        tracing::info!(user_id = %user, "email change requested");
        Ok(())
    }

    /// Whether `token` would confirm a change, without using it up (HEAD, link checkers).
    pub async fn token_is_live(&self, token: &EmailChangeToken) -> Result<bool, EmailChangeError> {
        Ok(self.tokens.peek(&token.hash()).await?.is_some())
    }

    /// Spends `token` and moves its account to the new address, which counts as verified;
    /// every session ends. The new address.
    pub async fn confirm(&self, token: EmailChangeToken) -> Result<Email, EmailChangeError> {
        let hash = token.hash();
        // Spending the token and changing the address run as their own task, so a client
        // that disconnects cannot stop between the two.
        let (tokens, users, ttl) = (self.tokens.clone(), Arc::clone(&self.users), self.ttl);
        let (revocations, now) = (Arc::clone(&self.revocations), self.clock.now());
        let owned = self.owned_tokens.clone();
        let spend = async move {
            let grant = tokens
                .take(&hash)
                .await?
                .ok_or(EmailChangeError::InvalidToken)?;
            let outcome = apply(users.as_ref(), &grant, now).await;
            match &outcome {
                Ok(ended) => {
                    revocations.ended_here(ended.iter().copied());
                    // Links sent to the old address, and other pending changes, die.
                    if let Err(e) = owned.forget(grant.user).await {
                        tracing::warn!(user_id = %grant.user, error = %e, "one-time tokens of the old address left to expire");
                    }
                }
                // Storage failed after the token was spent: put it back, so the link works
                // again once the database does.
                Err(EmailChangeError::Server(ServerError::Unavailable(_))) => {
                    let _ = tokens.put(&hash, grant.clone(), ttl).await;
                }
                Err(_) => {}
            }
            outcome.map(|_| grant)
        };
        let grant = tokio::spawn(spend.in_current_span())
            .await
            .map_err(Bug::from)??;
        // The notice to the old address was queued with the change.
        self.mailroom.queued();
        self.metrics.account("email_changed");
        tracing::info!(user_id = %grant.user, "email changed; every session revoked");
        Ok(grant.to)
    }

    /// The confirmation email of a change of `user`'s address to `to` — sent to `to`,
    /// the one address this flow writes to that is not yet the account's — with a token
    /// carrying the change's `stamp`; `None` when the account is gone or the stamp is
    /// stale already (nothing worth sending).
    pub async fn confirmation_letter(
        &self,
        user: UserId,
        to: &Email,
        stamp: u64,
    ) -> Result<Option<Message>, RepoError> {
        let Some(account) = self.users.by_id(user).await? else {
            return Ok(None);
        };
        if account.stamp() != stamp {
            return Ok(None);
        }
        let token = EmailChangeToken::generate(&self.rng);
        let grant = EmailChangeGrant {
            user,
            stamp,
            to: to.clone(),
        };
        self.tokens.put(&token.hash(), grant, self.ttl).await?;
        let link = self.url.render(&token.expose());
        Ok(Some(compose::email_change(to, &link, self.ttl)))
    }

    /// The notice that a change was asked for, to `to`: the address the account had then.
    pub async fn notice_letter(
        &self,
        user: UserId,
        to: &Email,
    ) -> Result<Option<Message>, RepoError> {
        let account = self.users.by_id(user).await?;
        Ok(account.map(|_| compose::email_change_notice(to)))
    }

    /// The notice that the account moved away from `to`.
    pub async fn changed_letter(
        &self,
        user: UserId,
        to: &Email,
    ) -> Result<Option<Message>, RepoError> {
        let account = self.users.by_id(user).await?;
        Ok(account.map(|a| compose::email_changed(to, &a.email)))
    }
}

/// The second half of a confirmation, once its token is spent: the link must have been
/// issued for the address the account still has. The sessions that ended.
async fn apply(
    users: &dyn Users,
    grant: &EmailChangeGrant,
    now: std::time::SystemTime,
) -> Result<Vec<crate::domain::SessionId>, EmailChangeError> {
    let account = users
        .by_id(grant.user)
        .await?
        .ok_or(EmailChangeError::InvalidToken)?;
    if grant.stamp != account.stamp() {
        return Err(EmailChangeError::InvalidToken);
    }
    let notice = OutgoingEmail::EmailChanged {
        user: account.id,
        to: account.email.clone(),
    };
    match users
        .change_email(
            account.id,
            &account.email,
            &grant.to,
            &account.password_hash,
            notice,
            now,
        )
        .await?
    {
        AddressChange::Changed(ended) => Ok(ended),
        AddressChange::Taken => Err(EmailChangeError::EmailTaken),
        AddressChange::Stale => Err(EmailChangeError::InvalidToken),
    }
}
