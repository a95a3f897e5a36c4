//! Sessions: login, refresh-token rotation with reuse detection (RFC 9700 §4.14.2), logout.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ring::rand::SystemRandom;

use super::unix_now;
use crate::cpu_pool::{CpuPool, PoolError};
use crate::domain::{Email, Password, RefreshToken, UserId};
use crate::jwt::Signer;
use crate::metrics::Metrics;
use crate::passwords::Hasher;
use crate::repo::{
    NewRefreshToken, RateKey, RateLimits, RefreshTokens, RepoError, Rotation, Users,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// Wrong email or password (never says which).
    InvalidCredentials,
    /// Correct password, unverified email.
    EmailNotVerified,
    /// Unknown, expired, revoked or reused refresh token.
    InvalidToken,
    RateLimited {
        retry_after: Duration,
    },
    Overloaded,
    Unavailable(String),
    Unexpected(String),
}

impl From<RepoError> for SessionError {
    fn from(e: RepoError) -> Self {
        SessionError::Unavailable(e.to_string())
    }
}

impl From<PoolError> for SessionError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Overloaded => SessionError::Overloaded,
            PoolError::Panicked => SessionError::Unexpected("CPU pool job panicked".into()),
        }
    }
}

/// What `/login` and `/refresh` return.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: RefreshToken,
    pub expires_in: u64,
}

pub struct Sessions {
    pub users: Arc<dyn Users>,
    pub refresh_tokens: Arc<dyn RefreshTokens>,
    pub limits: Arc<dyn RateLimits>,
    pub hasher: Arc<Hasher>,
    pub signer: Arc<Signer>,
    /// RSA signing runs here, off the async workers.
    pub signing_pool: Arc<CpuPool>,
    pub metrics: Arc<Metrics>,
    pub refresh_ttl: Duration,
    pub reuse_grace: Duration,
    pub login_max_failures: u32,
    pub login_window: Duration,
    pub rng: SystemRandom,
}

impl Sessions {
    /// Checks the password and starts a session (a new refresh-token family).
    ///
    /// Every attempt is counted *before* any bcrypt work, in one atomic step, so parallel
    /// guesses cannot slip past the limit while earlier ones are still being checked; a
    /// locked-out address costs nothing, and the right password does not get through
    /// either. A correct password ends the count. Unknown emails are checked against a
    /// dummy hash: same work, same answer as a wrong password.
    pub async fn login(&self, email: Email, password: Password) -> Result<TokenPair, SessionError> {
        let attempts_key = RateKey::LoginFailures(email.clone());
        let attempts = self.limits.hit(&attempts_key, self.login_window).await?;
        if attempts.count > u64::from(self.login_max_failures) {
            self.metrics.rate_limited("login");
            return Err(SessionError::RateLimited {
                retry_after: attempts.resets_in,
            });
        }
        let user = self.users.by_email(&email).await?;
        let matched = self
            .hasher
            .verify(password, user.as_ref().map(|u| &u.password_hash))
            .await?;
        let user = match user {
            Some(user) if matched => user,
            _ => return Err(SessionError::InvalidCredentials),
        };
        self.limits.clear(&attempts_key).await?;
        if !user.email_verified {
            return Err(SessionError::EmailNotVerified);
        }
        let refresh_token = RefreshToken::generate(&self.rng);
        // Only if the password is still the one just checked: a reset or change that
        // committed during the bcrypt check wins, and this login fails like a wrong one.
        let record = self.new_record(&refresh_token);
        if !self
            .refresh_tokens
            .start_family(user.id, &user.password_hash, record)
            .await?
        {
            return Err(SessionError::InvalidCredentials);
        }
        tracing::info!(user_id = %user.id, "login");
        self.pair(user.id, refresh_token).await
    }

    /// Spends `presented` for a new pair. Exactly one of many concurrent calls with the same
    /// token succeeds; the repository decides atomically.
    pub async fn refresh(&self, presented: RefreshToken) -> Result<TokenPair, SessionError> {
        let successor = RefreshToken::generate(&self.rng);
        let outcome = self
            .refresh_tokens
            .rotate(
                &presented.hash(),
                self.new_record(&successor),
                SystemTime::now(),
                self.reuse_grace,
            )
            .await?;
        let label = match outcome {
            Rotation::Rotated { user } => {
                self.metrics.refresh("rotated");
                return self.pair(user, successor).await;
            }
            Rotation::Unknown => "unknown",
            Rotation::Expired => "expired",
            Rotation::Revoked => "revoked",
            Rotation::ReusedWithinGrace => "reuse_grace",
            Rotation::ReuseDetected => {
                tracing::warn!("refresh token reuse detected: session family revoked");
                "reuse_detected"
            }
        };
        self.metrics.refresh(label);
        Err(SessionError::InvalidToken)
    }

    /// Ends the session `token` belongs to. Unknown or revoked tokens are fine (idempotent).
    pub async fn logout(&self, token: RefreshToken) -> Result<(), SessionError> {
        self.refresh_tokens.revoke_family(&token.hash()).await?;
        Ok(())
    }

    fn new_record(&self, token: &RefreshToken) -> NewRefreshToken {
        NewRefreshToken {
            hash: token.hash(),
            expires_at: SystemTime::now() + self.refresh_ttl,
        }
    }

    async fn pair(
        &self,
        user: UserId,
        refresh_token: RefreshToken,
    ) -> Result<TokenPair, SessionError> {
        let signer = Arc::clone(&self.signer);
        let access = self
            .signing_pool
            .run(move || signer.issue(user, unix_now()))
            .await?;
        let access = access.map_err(SessionError::Unexpected)?;
        Ok(TokenPair {
            access_token: access.token,
            refresh_token,
            expires_in: access.expires_in,
        })
    }
}
