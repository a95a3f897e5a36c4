//! Rate-limit counters: how often an action happened for one subject within a window.

use std::sync::Arc;
use std::time::Duration;

use super::{Counter, KeyValue, RepoError};
use crate::domain::{ClientAddr, Email, UserId};

/// A rate-limited action and whom it is counted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RateKey {
    LoginFailures(Email),
    LoginAttempts(Email),
    Resend(Email),
    PasswordForgot(Email),
    /// Email changes asked for one account.
    EmailChange(UserId),
    /// Requests from one client address to the password and email routes.
    Client(ClientAddr),
}

impl RateKey {
    /// The key text, unique across actions. The email, account or client address appears
    /// only as its SHA-256, so a look at Redis does not list who tried to log in.
    fn key(&self) -> String {
        let (action, subject) = match self {
            RateKey::LoginFailures(e) => ("login-failures", e.as_str().to_string()),
            RateKey::LoginAttempts(e) => ("login-attempts", e.as_str().to_string()),
            RateKey::Resend(e) => ("resend", e.as_str().to_string()),
            RateKey::PasswordForgot(e) => ("forgot", e.as_str().to_string()),
            RateKey::EmailChange(user) => ("email-change", user.to_string()),
            RateKey::Client(addr) => ("client", addr.to_string()),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, subject.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("rate:{action}:{hex}")
    }
}

/// The counters, on Redis or in memory.
#[derive(Clone)]
pub struct RateLimits {
    store: Arc<dyn KeyValue>,
}

impl RateLimits {
    pub fn new(store: Arc<dyn KeyValue>) -> RateLimits {
        RateLimits { store }
    }

    /// Adds one to the counter, starting a window of `window` if none is running, in one
    /// atomic step. Returns the new count.
    pub async fn hit(&self, key: &RateKey, window: Duration) -> Result<Counter, RepoError> {
        self.store.increment(&key.key(), window).await
    }

    /// The counter, if a window is running.
    pub async fn peek(&self, key: &RateKey) -> Result<Option<Counter>, RepoError> {
        self.store.counter(&key.key()).await
    }

    /// Ends the window (e.g. after a successful login).
    pub async fn clear(&self, key: &RateKey) -> Result<(), RepoError> {
        self.store.delete(&key.key()).await
    }
}
