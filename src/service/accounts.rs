//! Accounts: registration, email verification, resending the verification email — and the
//! verification link, minted when its email is sent — and deleting one's own account.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;

use super::{
    server_error_conversions, Limiter, LoginLimits, Mailroom, Recheck, Removal, ServerError, Shared,
};
use crate::clock::Clock;
use crate::config::{LimitConfig, TokenConfig};
use crate::domain::Verification;
use crate::domain::{
    ClientAddr, CurrentPassword, Email, Password, User, UserId, VerificationToken,
};
use crate::hasher::Hasher;
use crate::mail::{compose, LinkTemplate, Message};
use crate::repo::{
    CreateUserError, NewUser, OneTimeTokens, OutgoingEmail, RateKey, RepoError, Users,
};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the email is taken")]
    EmailTaken,
    /// Unknown, expired or already used token.
    #[error("invalid verification token")]
    InvalidToken,
    #[error("no account has this email")]
    NoSuchAccount,
    /// The account a valid access token names is gone.
    #[error("the account is gone")]
    Gone,
    /// The password given to delete the account is wrong.
    #[error("wrong password")]
    WrongPassword,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Server(#[from] ServerError),
}

server_error_conversions!(AccountError);

pub struct Accounts {
    users: Arc<dyn Users>,
    tokens: OneTimeTokens<Verification>,
    mailroom: Arc<Mailroom>,
    resend_limit: Limiter,
    /// Wrong passwords given to delete the account count as failed logins.
    login_limits: LoginLimits,
    removal: Arc<Removal>,
    hasher: Arc<Hasher>,
    clock: Arc<dyn Clock>,
    /// Where the verification link points, and how long it works.
    verify_url: LinkTemplate,
    verify_ttl: Duration,
    rng: SystemRandom,
}

impl Accounts {
    pub fn new(
        shared: &Shared,
        tokens: &TokenConfig,
        limits: &LimitConfig,
        verify_url: LinkTemplate,
        removal: Arc<Removal>,
    ) -> Accounts {
        Accounts {
            users: Arc::clone(&shared.repos.users),
            tokens: shared.repos.verification_tokens.clone(),
            mailroom: Arc::clone(&shared.mailroom),
            resend_limit: Limiter::new(
                shared.repos.rate_limits.clone(),
                limits.resend,
                "resend",
                Arc::clone(&shared.metrics),
            ),
            login_limits: LoginLimits::new(
                shared.repos.rate_limits.clone(),
                limits.login_failures,
                Arc::clone(&shared.metrics),
            ),
            removal,
            hasher: Arc::clone(&shared.hasher),
            clock: Arc::clone(&shared.clock),
            verify_url,
            verify_ttl: tokens.verify_ttl,
            rng: SystemRandom::new(),
        }
    }

    /// Creates an unverified account and queues its verification email in the same step.
    pub async fn register(
        &self,
        client: ClientAddr,
        email: Email,
        password: Password,
    ) -> Result<User, AccountError> {
        let password_hash = self.hasher.hash(client, password).await?;
        let id = UserId::random();
        let first = OutgoingEmail::Verification {
            user: id,
            to: email.clone(),
        };
        let new_user = NewUser {
            id,
            email,
            password_hash,
        };
        let user = self
            .users
            .create(new_user, first, self.clock.now())
            .await
            .map_err(|e| match e {
                CreateUserError::EmailTaken => AccountError::EmailTaken,
                CreateUserError::Repo(e) => e.into(),
            })?;
        self.mailroom.queued();
        tracing::info!(user_id = %user.id, email = %user.email.masked(), "user registered");
        Ok(user)
    }

    /// The account of a caller (from a checked access token).
    pub async fn profile(&self, user: UserId) -> Result<User, AccountError> {
        self.users.by_id(user).await?.ok_or(AccountError::Gone)
    }

    /// Consumes a verification token and marks its user's email verified.
    pub async fn verify_email(&self, token: VerificationToken) -> Result<(), AccountError> {
        // Verify first, spend the token last: if PostgreSQL fails in between, the link still
        // works on the next click. Marking verified twice is harmless, and of concurrent
        // clicks exactly one spends the token and gets 200.
        let hash = token.hash();
        let user = self
            .tokens
            .peek(&hash)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        // A token of a deleted account names no account: it verifies nothing.
        if !self.users.mark_verified(user).await? {
            return Err(AccountError::InvalidToken);
        }
        self.tokens
            .take(&hash)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        tracing::info!(user_id = %user, "email verified");
        Ok(())
    }

    /// Deletes the account of `user` (from a checked access token) after checking its
    /// password, with everything it has. Wrong passwords count as failed logins.
    pub async fn delete(
        &self,
        client: ClientAddr,
        user: UserId,
        password: CurrentPassword,
    ) -> Result<(), AccountError> {
        let account = self.users.by_id(user).await?.ok_or(AccountError::Gone)?;
        let checked = self
            .login_limits
            .recheck(&self.hasher, client, &account, password);
        match checked.await? {
            Recheck::Right => {}
            Recheck::Wrong => return Err(AccountError::WrongPassword),
            Recheck::Limited(exceeded) => {
                return Err(AccountError::RateLimited {
                    retry_after: exceeded.retry_after,
                })
            }
        }
        if !self.removal.delete(user).await? {
            return Err(AccountError::Gone);
        }
        tracing::info!(user_id = %user, "account deleted by its user");
        Ok(())
    }

    /// Whether `token` would verify an email, without using it up.
    pub async fn verification_token_is_live(
        &self,
        token: &VerificationToken,
    ) -> Result<bool, AccountError> {
        Ok(self.tokens.peek(&token.hash()).await?.is_some())
    }

    /// Queues a new verification email, within the per-address limit. An already verified
    /// account gets nothing, and that is not an error.
    pub async fn resend_verification(&self, email: Email) -> Result<(), AccountError> {
        let user = self
            .users
            .by_email(&email)
            .await?
            .ok_or(AccountError::NoSuchAccount)?;
        if user.email_verified {
            return Ok(());
        }
        if let Err(exceeded) = self
            .resend_limit
            .hit(&RateKey::Resend(email.clone()))
            .await?
        {
            return Err(AccountError::RateLimited {
                retry_after: exceeded.retry_after,
            });
        }
        // To the address stored on the account, never the spelling the request typed.
        let email = OutgoingEmail::Verification {
            user: user.id,
            to: user.email,
        };
        self.mailroom.queue(&[email]).await?;
        Ok(())
    }

    /// The verification email of `user`, to the address stored on the account, with a
    /// token minted and stored now: its lifetime starts when the email leaves. `None` when
    /// the account is gone.
    pub async fn verification_letter(&self, user: UserId) -> Result<Option<Message>, RepoError> {
        let Some(account) = self.users.by_id(user).await? else {
            return Ok(None);
        };
        let token = VerificationToken::generate(&self.rng);
        self.tokens
            .put(&token.hash(), user, self.verify_ttl)
            .await?;
        let link = self.verify_url.render(&token.expose());
        Ok(Some(compose::verification(
            &account.email,
            &link,
            self.verify_ttl,
        )))
    }
}
