//! The durable outbox: emails to send, written with the change that asks for them.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::RepoError;
use crate::domain::{Email, UserId};

/// An email waiting in the outbox. Its token, if it carries one, is minted only when it is
/// sent, so the token's lifetime starts when the email leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutgoingEmail {
    /// The link that verifies `user`'s address.
    Verification { user: UserId, to: Email },
    /// A password-reset link for the account of `to` — if there is one when it is sent.
    /// Requests are queued for any address, so that asking costs the same whether or not
    /// the account exists.
    PasswordReset { to: Email },
}

impl OutgoingEmail {
    pub fn to(&self) -> &Email {
        match self {
            OutgoingEmail::Verification { to, .. } | OutgoingEmail::PasswordReset { to } => to,
        }
    }
}

/// An outbox row claimed by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: u64,
    pub email: OutgoingEmail,
    /// Attempts made before this one.
    pub attempts: u32,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Queues an email, due at `now`. Durable once this returns.
    async fn enqueue(&self, email: OutgoingEmail, now: SystemTime) -> Result<(), RepoError>;

    /// Claims up to `limit` emails due at `now` for `lease`: nobody else sees them until
    /// the lease ends, and an unfinished claim (crash) becomes due again then
    /// (at-least-once).
    async fn claim(
        &self,
        limit: usize,
        lease: Duration,
        now: SystemTime,
    ) -> Result<Vec<OutboxItem>, RepoError>;

    /// The email was handed to the mail server.
    async fn mark_sent(&self, id: u64) -> Result<(), RepoError>;

    /// Try again at `at`.
    async fn retry_at(&self, id: u64, at: SystemTime) -> Result<(), RepoError>;

    /// Give up on this email.
    async fn mark_failed(&self, id: u64) -> Result<(), RepoError>;

    /// Nothing to send after all (a reset request for an address with no account).
    async fn mark_skipped(&self, id: u64) -> Result<(), RepoError>;

    /// Emails not yet sent nor failed, and the age of the oldest at `now`.
    async fn backlog(&self, now: SystemTime) -> Result<(u64, Duration), RepoError>;

    /// Deletes at most `limit` sent emails older than `sent_before` and failed ones older
    /// than `failed_before` (kept longer, for investigation). Returns how many: fewer than
    /// `limit` means none are left.
    async fn purge(
        &self,
        sent_before: SystemTime,
        failed_before: SystemTime,
        limit: usize,
    ) -> Result<u64, RepoError>;
}
