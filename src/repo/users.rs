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

    /// Marks the email verified. Verifying twice, or an unknown id, is not an error.
    async fn mark_verified(&self, id: UserId) -> Result<(), RepoError>;

    /// Replaces the password hash — only if it is still `current`, so that of two racing
    /// changes one wins — marks the email verified when `verified` is set, and ends every
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
}
