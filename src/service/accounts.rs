//! Accounts: registration, email verification, resending the verification email.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::cpu_pool::PoolError;
use crate::domain::{Email, Password, User, UserId, VerificationToken};
use crate::metrics::Metrics;
use crate::passwords::Hasher;
use crate::repo::{
    CreateUserError, NewUser, OneTimeTokens, Outbox, OutgoingEmail, Purpose, RateKey, RateLimits,
    RepoError, Users,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    EmailTaken,
    /// Unknown, expired or already used token.
    InvalidToken,
    NoSuchAccount,
    RateLimited {
        retry_after: Duration,
    },
    Overloaded,
    Unavailable(String),
    Unexpected(String),
}

impl From<RepoError> for AccountError {
    fn from(e: RepoError) -> Self {
        AccountError::Unavailable(e.to_string())
    }
}

impl From<PoolError> for AccountError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Overloaded => AccountError::Overloaded,
            PoolError::Panicked => AccountError::Unexpected("bcrypt job panicked".into()),
        }
    }
}

pub struct Accounts {
    pub users: Arc<dyn Users>,
    pub outbox: Arc<dyn Outbox>,
    pub tokens: Arc<dyn OneTimeTokens>,
    pub limits: Arc<dyn RateLimits>,
    pub hasher: Arc<Hasher>,
    /// Wakes the outbox worker so a queued email leaves at once.
    pub mail_wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    pub resend_max: u32,
    pub resend_window: Duration,
}

impl Accounts {
    /// Creates an unverified account and queues its verification email in the same step.
    pub async fn register(&self, email: Email, password: Password) -> Result<User, AccountError> {
        let password_hash = self.hasher.hash(password).await?;
        let new_user = NewUser {
            id: UserId::random(),
            email,
            password_hash,
        };
        let user = self.users.create(new_user).await.map_err(|e| match e {
            CreateUserError::EmailTaken => AccountError::EmailTaken,
            CreateUserError::Repo(e) => e.into(),
        })?;
        self.metrics.email("queued");
        self.mail_wake.notify_one();
        tracing::info!(user_id = %user.id, email = %user.email.masked(), "user registered");
        Ok(user)
    }

    /// Consumes a verification token and marks its user's email verified.
    pub async fn verify_email(&self, token: VerificationToken) -> Result<(), AccountError> {
        // Verify first, spend the token last: if PostgreSQL fails in between, the link still
        // works on the next click. Marking verified twice is harmless, and of concurrent
        // clicks exactly one spends the token and gets 200.
        let hash = token.hash();
        let user = self
            .tokens
            .peek(Purpose::VerifyEmail, &hash)
            .await?
            .ok_or(AccountError::InvalidToken)?
            .user;
        self.users.mark_verified(user).await?;
        if self
            .tokens
            .take(Purpose::VerifyEmail, &hash)
            .await?
            .is_none()
        {
            return Err(AccountError::InvalidToken);
        }
        tracing::info!(user_id = %user, "email verified");
        Ok(())
    }

    /// Whether `token` would verify an email, without using it up.
    pub async fn verification_token_is_live(
        &self,
        token: &VerificationToken,
    ) -> Result<bool, AccountError> {
        Ok(self
            .tokens
            .peek(Purpose::VerifyEmail, &token.hash())
            .await?
            .is_some())
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
        let counter = self
            .limits
            .hit(&RateKey::Resend(email.clone()), self.resend_window)
            .await?;
        if counter.count > u64::from(self.resend_max) {
            self.metrics.rate_limited("resend");
            return Err(AccountError::RateLimited {
                retry_after: counter.resets_in,
            });
        }
        self.outbox
            .enqueue(OutgoingEmail::Verification {
                user: user.id,
                to: email,
            })
            .await?;
        self.metrics.email("queued");
        self.mail_wake.notify_one();
        Ok(())
    }
}
