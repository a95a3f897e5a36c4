//! Passwords after registration: forgotten (reset through an emailed single-use link) and
//! changed (with the current one). Both revoke every session of the account.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::unix_now;
use crate::cpu_pool::PoolError;
use crate::domain::{Email, Password, ResetToken, UserId};
use crate::jwt::Verifier;
use crate::metrics::Metrics;
use crate::passwords::Hasher;
use crate::repo::{
    OneTimeTokens, Outbox, OutgoingEmail, Purpose, RateKey, RateLimits, RepoError, Users,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsError {
    /// Unknown, expired or already used reset token.
    InvalidResetToken,
    /// Missing, malformed, badly signed, expired or foreign access token.
    InvalidAccessToken,
    /// The current password given to change it is wrong.
    WrongPassword,
    RateLimited {
        retry_after: Duration,
    },
    Overloaded,
    Unavailable(String),
    Unexpected(String),
}

impl From<RepoError> for CredentialsError {
    fn from(e: RepoError) -> Self {
        CredentialsError::Unavailable(e.to_string())
    }
}

impl From<PoolError> for CredentialsError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Overloaded => CredentialsError::Overloaded,
            PoolError::Panicked => CredentialsError::Unexpected("bcrypt job panicked".into()),
        }
    }
}

pub struct Credentials {
    pub users: Arc<dyn Users>,
    pub outbox: Arc<dyn Outbox>,
    pub tokens: Arc<dyn OneTimeTokens>,
    pub limits: Arc<dyn RateLimits>,
    pub hasher: Arc<Hasher>,
    /// Checks the access tokens presented to change a password.
    pub verifier: Verifier,
    pub mail_wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Forgot requests per address share the resend limits.
    pub forgot_max: u32,
    pub forgot_window: Duration,
    pub reset_ttl: Duration,
    pub login_max_failures: u32,
    pub login_window: Duration,
}

impl Credentials {
    /// Queues a reset email for `email`. Always succeeds from the caller's point of view:
    /// the work done here — one counter, one queued request — is the same whether or not
    /// the account exists; the outbox worker finds out when it sends, and sends nothing for
    /// an unknown address. Past the per-address limit nothing is queued, silently.
    pub async fn forgot(&self, email: Email) -> Result<(), CredentialsError> {
        let counter = self
            .limits
            .hit(&RateKey::PasswordForgot(email.clone()), self.forgot_window)
            .await?;
        if counter.count > u64::from(self.forgot_max) {
            self.metrics.rate_limited("forgot");
            return Ok(());
        }
        self.outbox
            .enqueue(OutgoingEmail::PasswordReset { to: email })
            .await?;
        self.metrics.email("queued");
        self.mail_wake.notify_one();
        Ok(())
    }

    /// Spends `token` and sets `password`; the email counts as verified (the user just
    /// proved control of it) and every session ends.
    pub async fn reset(
        &self,
        token: ResetToken,
        password: Password,
    ) -> Result<(), CredentialsError> {
        let token_hash = token.hash();
        // A cheap look first, so that made-up tokens cost no bcrypt work.
        if self
            .tokens
            .peek(Purpose::ResetPassword, &token_hash)
            .await?
            .is_none()
        {
            return Err(CredentialsError::InvalidResetToken);
        }
        // Hash before spending the token: if the bcrypt pool sheds the request, the token
        // is still good.
        let new_hash = self.hasher.hash(password).await?;
        // Spending the token and setting the password run as their own task, so a client
        // that disconnects (or a request timeout) cannot stop between the two.
        let (tokens, users, ttl) = (
            Arc::clone(&self.tokens),
            Arc::clone(&self.users),
            self.reset_ttl,
        );
        let user = tokio::spawn(async move {
            let subject = tokens
                .take(Purpose::ResetPassword, &token_hash)
                .await?
                .ok_or(CredentialsError::InvalidResetToken)?;
            let outcome = async {
                let account = users
                    .by_id(subject.user)
                    .await?
                    .ok_or(CredentialsError::InvalidResetToken)?;
                // Issued before the password last changed (by an earlier reset or a change):
                // stale, like every other link of that time.
                if subject.stamp != Some(account.password_hash.stamp()) {
                    return Err(CredentialsError::InvalidResetToken);
                }
                match users
                    .set_password(account.id, &account.password_hash, new_hash, true)
                    .await?
                {
                    true => Ok(account.id),
                    false => Err(CredentialsError::InvalidResetToken),
                }
            }
            .await;
            if let Err(CredentialsError::Unavailable(_)) = &outcome {
                // Storage failed after the token was spent: put it back so the link works
                // again once the database does (with a fresh lifetime).
                let _ = tokens
                    .put(Purpose::ResetPassword, &token_hash, subject, ttl)
                    .await;
            }
            outcome
        })
        .await
        .map_err(|e| CredentialsError::Unexpected(format!("reset task: {e}")))??;
        // Failed logins before the reset no longer count against the new password.
        if let Ok(Some(account)) = self.users.by_id(user).await {
            let _ = self
                .limits
                .clear(&RateKey::LoginFailures(account.email))
                .await;
        }
        tracing::info!(user_id = %user, "password reset; every session revoked");
        Ok(())
    }

    /// The user an access token speaks for: RS256 only, published keys only, `iss`/`aud`
    /// as configured, `exp` without leeway.
    pub fn authenticate(&self, bearer: &str) -> Result<UserId, CredentialsError> {
        self.verifier
            .verify(bearer, unix_now())
            .map_err(|_| CredentialsError::InvalidAccessToken)
    }

    /// Replaces the password of `user_id` (from [`Credentials::authenticate`]) after
    /// checking the current one; every session ends. Wrong current passwords count as
    /// failed logins.
    pub async fn change(
        &self,
        user_id: UserId,
        current: Password,
        new: Password,
    ) -> Result<(), CredentialsError> {
        let user = self
            .users
            .by_id(user_id)
            .await?
            .ok_or(CredentialsError::InvalidAccessToken)?;
        let attempts_key = RateKey::LoginFailures(user.email.clone());
        let attempts = self.limits.hit(&attempts_key, self.login_window).await?;
        if attempts.count > u64::from(self.login_max_failures) {
            self.metrics.rate_limited("login");
            return Err(CredentialsError::RateLimited {
                retry_after: attempts.resets_in,
            });
        }
        if !self
            .hasher
            .verify(current, Some(&user.password_hash))
            .await?
        {
            return Err(CredentialsError::WrongPassword);
        }
        self.limits.clear(&attempts_key).await?;
        let new_hash = self.hasher.hash(new).await?;
        // Only if the password is still the one just checked: a concurrent reset wins.
        if !self
            .users
            .set_password(user.id, &user.password_hash, new_hash, false)
            .await?
        {
            return Err(CredentialsError::WrongPassword);
        }
        tracing::info!(user_id = %user.id, "password changed; every session revoked");
        Ok(())
    }
}
