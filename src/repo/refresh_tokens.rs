//! Sessions and their refresh tokens (only hashes). What a presented token *means* is
//! decided by [`crate::domain::classify`]; this trait only rotates atomically and reports.

use std::time::SystemTime;

use async_trait::async_trait;

use super::RepoError;
use crate::domain::{PasswordHash, Refresh, SessionId, TokenHash, TokenState, UserId};

/// A refresh token to store: only its hash.
#[derive(Debug, Clone, Copy)]
pub struct NewRefreshToken {
    pub hash: TokenHash<Refresh>,
    pub expires_at: SystemTime,
}

/// What an attempt to rotate a presented token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current; it is now rotated and its successor stored in its session.
    Rotated { user: UserId, session: SessionId },
    /// Nothing changed. The token's state as it is now, `None` if there is no such token.
    Refused(Option<TokenState>),
}

#[async_trait]
pub trait RefreshTokens: Send + Sync {
    /// Starts session `id` (a login) with its first token — only if the user's password is
    /// still `password`, the one the login checked, so that a reset or change committed
    /// meanwhile cannot be outlived by this session. `false`: nothing started.
    async fn start_session(
        &self,
        id: SessionId,
        user: UserId,
        password: &PasswordHash,
        first: NewRefreshToken,
    ) -> Result<bool, RepoError>;

    /// Rotates `presented` into `successor` as one atomic step, if and only if it is
    /// current at `now` ([`TokenState::is_current`]): of many concurrent calls with one
    /// token, exactly one gets `Rotated`. The success path is one round trip to storage.
    async fn rotate(
        &self,
        presented: &TokenHash<Refresh>,
        successor: NewRefreshToken,
        now: SystemTime,
    ) -> Result<Rotation, RepoError>;

    /// Ends a session at `now`. Ending an ended or unknown session changes nothing.
    async fn revoke_session(&self, id: SessionId, now: SystemTime) -> Result<(), RepoError>;

    /// Ends the session `token` belongs to (logout). Unknown tokens are ignored.
    async fn revoke_session_of(
        &self,
        token: &TokenHash<Refresh>,
        now: SystemTime,
    ) -> Result<(), RepoError>;

    /// Deletes at most `limit` tokens expired before `now`, and the sessions they leave
    /// empty. Returns how many tokens: fewer than `limit` means none are left.
    async fn purge_expired(&self, now: SystemTime, limit: usize) -> Result<u64, RepoError>;
}
