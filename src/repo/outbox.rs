//! The durable outbox: emails to send, written with the change that asks for them.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::RepoError;
use crate::domain::{Email, UserId};

/// An email waiting in the outbox for `user`. Its token is minted only when it is sent, so
/// the token's lifetime starts when the email leaves; it goes to the address the account
/// has then. `to` is the address as it was queued, kept for investigation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutgoingEmail {
    /// The link that verifies `user`'s address.
    Verification { user: UserId, to: Email },
    /// A password-reset link for `user`.
    PasswordReset { user: UserId, to: Email },
    /// The link that moves `user`'s account to the address `to` (not yet the account's),
    /// stamped when it was asked for (see `service::email_change`).
    EmailChange { user: UserId, to: Email, stamp: u64 },
    /// A notice, without a link, to the address `user`'s account had when a change was
    /// asked for.
    EmailChangeNotice { user: UserId, to: Email },
    /// A notice to the address `user`'s account had until a change was confirmed.
    EmailChanged { user: UserId, to: Email },
}

impl OutgoingEmail {
    pub fn user(&self) -> UserId {
        match self {
            OutgoingEmail::Verification { user, .. }
            | OutgoingEmail::PasswordReset { user, .. }
            | OutgoingEmail::EmailChange { user, .. }
            | OutgoingEmail::EmailChangeNotice { user, .. }
            | OutgoingEmail::EmailChanged { user, .. } => *user,
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
    /// Queues emails, due at `now`, all or none. Durable once this returns.
    async fn enqueue(&self, emails: &[OutgoingEmail], now: SystemTime) -> Result<(), RepoError>;

    /// Queues a password-reset email for the account of `to`, found in the same step.
    /// A request for an address without an account is stored too — the work, and so the
    /// time, is the same either way — but is never claimed: [`Outbox::drop_orphans`]
    /// removes such requests in bulk, so they never wait in front of real email.
    async fn request_reset(&self, to: &Email, now: SystemTime) -> Result<(), RepoError>;

    /// Deletes at most `limit` pending requests that name no account. Returns how many.
    async fn drop_orphans(&self, limit: usize) -> Result<u64, RepoError>;

    /// Claims up to `limit` emails due at `now` for `lease`: nobody else sees them until
    /// the lease ends, and an unfinished claim (crash) becomes due again then
    /// (at-least-once). Requests that name no account are never claimed.
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

    /// Nothing to send after all (the account is gone).
    async fn mark_skipped(&self, id: u64) -> Result<(), RepoError>;

    /// Verification emails not yet sent nor failed, and the age of the oldest at `now`.
    /// Reset emails are left out: whether one is waiting would tell which addresses have
    /// an account.
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
