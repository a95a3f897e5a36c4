//! Guessing passwords (SPEC §8): at most `AUTH_LOGIN_MAX_FAILURES` wrong passwords per
//! address per window — counted as failures, after the check, so that right passwords are
//! never refused for arriving together — and, since failures are only known once bcrypt
//! has run, at most twice that many attempts between two successes, counted before it, so
//! that parallel guesses cannot all reach bcrypt while the first are still being checked.

use std::sync::Arc;

use super::{Exceeded, Limiter, RateLimit, ServerError};
use crate::domain::{ClientAddr, CurrentPassword, Email, User};
use crate::hasher::Hasher;
use crate::metrics::Metrics;
use crate::repo::{RateKey, RateLimits, RepoError};

/// What re-checking a signed-in user's password found.
pub enum Recheck {
    Right,
    Wrong,
    /// Too many wrong passwords for the account's address: nothing was checked.
    Limited(Exceeded),
}

pub struct LoginLimits {
    failures: Limiter,
    attempts: Limiter,
}

impl LoginLimits {
    /// `failures`: `AUTH_LOGIN_MAX_FAILURES` per `AUTH_LOGIN_WINDOW`.
    pub fn new(counters: RateLimits, failures: RateLimit, metrics: Arc<Metrics>) -> LoginLimits {
        let attempts = RateLimit {
            max: failures.max.saturating_mul(2),
            window: failures.window,
        };
        LoginLimits {
            failures: Limiter::new(counters.clone(), failures, "login", Arc::clone(&metrics)),
            attempts: Limiter::new(counters, attempts, "login", metrics),
        }
    }

    /// Before any bcrypt work: refused when `email` has used up its failures, or has had
    /// too many attempts since its last success.
    pub async fn admit(&self, email: &Email) -> Result<Result<(), Exceeded>, RepoError> {
        if let Err(exceeded) = self.failures.check(&failures(email)).await? {
            return Ok(Err(exceeded));
        }
        self.attempts.hit(&attempts(email)).await
    }

    /// Checks `password` against `account`'s as a login would count it (SPEC §10: the
    /// routes that re-check a password follow login's rules): refused before any bcrypt
    /// work past the limits; a wrong one counts as a failure, a right one starts the
    /// counts over. Text outside the password rules is wrong without costing an attempt
    /// or bcrypt work: it cannot be anybody's password.
    pub async fn recheck(
        &self,
        hasher: &Hasher,
        client: ClientAddr,
        account: &User,
        password: CurrentPassword,
    ) -> Result<Recheck, ServerError> {
        let CurrentPassword::Possible(password) = password else {
            return Ok(Recheck::Wrong);
        };
        if let Err(exceeded) = self.admit(&account.email).await? {
            return Ok(Recheck::Limited(exceeded));
        }
        if !hasher
            .verify(client, password, Some(&account.password_hash))
            .await?
        {
            self.failed(&account.email).await?;
            return Ok(Recheck::Wrong);
        }
        self.succeeded(&account.email).await?;
        Ok(Recheck::Right)
    }

    /// The password was wrong.
    pub async fn failed(&self, email: &Email) -> Result<(), RepoError> {
        self.failures.hit(&failures(email)).await.map(|_| ())
    }

    /// The password was right: both counts start over.
    pub async fn succeeded(&self, email: &Email) -> Result<(), RepoError> {
        self.failures.clear(&failures(email)).await?;
        self.attempts.clear(&attempts(email)).await
    }
}

fn failures(email: &Email) -> RateKey {
    RateKey::LoginFailures(email.clone())
}

fn attempts(email: &Email) -> RateKey {
    RateKey::LoginAttempts(email.clone())
}
