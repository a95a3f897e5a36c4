//! Accounts.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{OutgoingEmail, RepoError};
use crate::domain::{Email, PasswordHash, SessionId, User, UserId};

/// The outcome of creating a user.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Another account already has this (normalised) email.
    #[error("the email is taken")]
    EmailTaken,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// What changing an account's email did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressChange {
    /// The address changed (and counts as verified); these sessions ended.
    Changed(Vec<SessionId>),
    /// Another account has the new address.
    Taken,
    /// No such account, or its address is no longer the one the change was asked from.
    Stale,
}

/// A user to create.
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub password_hash: PasswordHash,
}

#[async_trait]
pub trait Users: Send + Sync {
    /// Creates the user and queues `email` in the outbox (due at `now`), atomically: either
    /// both are stored or neither. `EmailTaken` when the email is already registered.
    async fn create(
        &self,
        user: NewUser,
        email: OutgoingEmail,
        now: SystemTime,
    ) -> Result<User, CreateUserError>;

    /// The account with this email, if any.
    async fn by_email(&self, email: &Email) -> Result<Option<User>, RepoError>;

    /// The account with this id, if any.
    async fn by_id(&self, id: UserId) -> Result<Option<User>, RepoError>;

    /// Marks the email verified (verifying twice is not an error). `false`: there is no
    /// such account.
    async fn mark_verified(&self, id: UserId) -> Result<bool, RepoError>;

    /// Replaces the password hash — only if it is still `current`, so that of two racing
    /// changes one wins, and the account is not disabled — marks the email verified when `verified` is set, and ends every
    /// session of the user (as [`crate::repo::RefreshTokens::revoke_user_sessions`] does),
    /// atomically. The sessions it ended; `None` when there is no such user or its
    /// password changed meanwhile (then nothing changes).
    async fn set_password(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
        verified: bool,
        now: SystemTime,
    ) -> Result<Option<Vec<SessionId>>, RepoError>;

    /// Disables or enables the account; disabling ends every session, atomically, and a
    /// login racing it starts none ([`crate::repo::RefreshTokens::start_session`] refuses
    /// disabled accounts). The sessions it ended; `None` when there is no such account.
    async fn set_disabled(
        &self,
        id: UserId,
        disabled: bool,
        now: SystemTime,
    ) -> Result<Option<Vec<SessionId>>, RepoError>;

    /// Changes the address from `from` to `to` — only if it is still `from`, the password
    /// still `password` (the one the change was checked against) and the account is not
    /// disabled, else `Stale` — marks it verified, ends every session and queues `notice`
    /// (due at `now`), atomically. Of two accounts changing to one address, one gets
    /// `Changed` and the other `Taken`.
    async fn change_email(
        &self,
        id: UserId,
        from: &Email,
        to: &Email,
        password: &PasswordHash,
        notice: OutgoingEmail,
        now: SystemTime,
    ) -> Result<AddressChange, RepoError>;

    /// Deletes the account and everything stored with it — sessions and their refresh
    /// tokens, every outbox row for it, and password-reset requests for its address — in
    /// one atomic step. Every session ends: ends stay readable by
    /// [`crate::repo::RefreshTokens::ended_since`] until `keep_ends_until`, naming no
    /// account. The address it had and the sessions it ended; `None` when there is no
    /// such account.
    async fn delete(
        &self,
        id: UserId,
        now: SystemTime,
        keep_ends_until: SystemTime,
    ) -> Result<Option<(Email, Vec<SessionId>)>, RepoError>;
}
