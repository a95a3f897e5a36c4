//! Sessions and their refresh tokens (only hashes). What a presented token *means* is
//! decided by [`crate::domain::classify`]; this trait only rotates atomically and reports.

use std::time::SystemTime;

use async_trait::async_trait;

use super::RepoError;
use crate::domain::{
    Email, PasswordHash, Refresh, SessionId, SessionInfo, TokenHash, TokenState, UserAgent, UserId,
};

/// A refresh token to store: only its hash.
#[derive(Debug, Clone, Copy)]
pub struct NewRefreshToken {
    pub hash: TokenHash<Refresh>,
    /// When it is issued (the store may use its own clock instead).
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
}

/// Where a session's end falls in the order in which ends become visible to readers
/// (PostgreSQL: the ending transaction's id; in memory: a counter). Ends that become
/// visible later never get a mark below a horizon read before them
/// ([`RefreshTokens::end_horizon`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EndMark(pub i64);

/// A session to start: a login.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub user: UserId,
    /// The address the login checked.
    pub email: Email,
    pub user_agent: Option<UserAgent>,
    pub first: NewRefreshToken,
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
    /// Starts `session` (a login) with its first token — only if the user's password is
    /// still `password` and its address still `session.email`, the ones the login
    /// checked, and the account is not disabled, so that a reset, a change of password or
    /// address, or a disabling committed meanwhile cannot be outlived by this session.
    /// `false`: nothing started.
    async fn start_session(
        &self,
        session: NewSession,
        password: &PasswordHash,
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

    /// Every way a session ends marks it with an [`EndMark`] — where its end falls in the
    /// order in which ends become visible — which [`RefreshTokens::ended_since`] reads
    /// back, and returns the sessions it ended, so that the replica that ended them knows
    /// at once. Ending an ended or unknown session changes nothing (and returns nothing).
    ///
    /// Ends a session (reuse detected). `true`: it ended now.
    async fn revoke_session(&self, id: SessionId, now: SystemTime) -> Result<bool, RepoError>;

    /// Ends the session `token` belongs to (logout). Unknown tokens are ignored.
    async fn revoke_session_of(
        &self,
        token: &TokenHash<Refresh>,
        now: SystemTime,
    ) -> Result<Option<SessionId>, RepoError>;

    /// Ends session `id` if it is one of `user`'s live sessions at `now` (as
    /// [`RefreshTokens::sessions`] lists them). `false`: it is not.
    async fn revoke_user_session(
        &self,
        user: UserId,
        id: SessionId,
        now: SystemTime,
    ) -> Result<bool, RepoError>;

    /// Ends every session of `user`.
    async fn revoke_user_sessions(
        &self,
        user: UserId,
        now: SystemTime,
    ) -> Result<Vec<SessionId>, RepoError>;

    /// `user`'s live sessions at `now` — not ended, with a token that may still be spent —
    /// oldest first.
    async fn sessions(&self, user: UserId, now: SystemTime) -> Result<Vec<SessionInfo>, RepoError>;

    /// A mark at or below that of every end not yet visible: what a reader of
    /// [`RefreshTokens::ended_since`] may resume from next time, taken before it reads.
    async fn end_horizon(&self) -> Result<EndMark, RepoError>;

    /// Sessions whose end is marked at or after `from`, ended no earlier than `not_before`,
    /// in mark order — after `after` (the last of the previous page), at most `limit`.
    async fn ended_since(
        &self,
        from: EndMark,
        not_before: SystemTime,
        after: Option<(EndMark, SessionId)>,
        limit: usize,
    ) -> Result<Vec<(EndMark, SessionId)>, RepoError>;

    /// Deletes at most `limit` tokens expired before `now`, and the sessions they leave
    /// empty, and at most `limit` kept ends of deleted accounts' sessions whose time is
    /// over. Returns the larger count: fewer than `limit` means none are left.
    async fn purge_expired(&self, now: SystemTime, limit: usize) -> Result<u64, RepoError>;
}
