//! [`RefreshTokens`] in memory.

use std::collections::HashSet;
use std::time::SystemTime;

use async_trait::async_trait;

use super::db::{Session, Tables, TokenRecord};
use super::MemoryDb;
use crate::domain::{PasswordHash, Refresh, SessionId, SessionInfo, TokenHash, TokenState, UserId};
use crate::repo::{EndMark, NewRefreshToken, NewSession, RefreshTokens, RepoError, Rotation};

#[async_trait]
impl RefreshTokens for MemoryDb {
    async fn start_session(
        &self,
        session: NewSession,
        password: &PasswordHash,
    ) -> Result<bool, RepoError> {
        let mut tables = self.lock()?;
        if tables
            .users
            .get(&session.user)
            .is_none_or(|u| u.password_hash != *password || u.email != session.email || u.disabled)
        {
            return Ok(false);
        }
        // The session starts when its first token is issued.
        let now = session.first.created_at;
        let record = Session {
            user: session.user,
            created_at: now,
            user_agent: session.user_agent,
            revoked: None,
        };
        tables.sessions.insert(session.id, record);
        let first = TokenRecord {
            session: session.id,
            created_at: now,
            expires_at: session.first.expires_at,
            rotated_at: None,
        };
        tables.tokens.insert(session.first.hash, first);
        Ok(true)
    }

    async fn rotate(
        &self,
        presented: &TokenHash<Refresh>,
        successor: NewRefreshToken,
        now: SystemTime,
    ) -> Result<Rotation, RepoError> {
        let mut tables = self.lock()?;
        let Tables {
            tokens,
            sessions,
            users,
            ..
        } = &mut *tables;
        let Some((record, session)) = tokens
            .get_mut(presented)
            .and_then(|r| sessions.get(&r.session).map(|s| (r, s)))
        else {
            return Ok(Rotation::Refused(None));
        };
        let state = TokenState {
            session: record.session,
            user: session.user,
            account_disabled: users.get(&session.user).is_some_and(|u| u.disabled),
            rotated_at: record.rotated_at,
            expires_at: record.expires_at,
            session_revoked: session.revoked.is_some(),
        };
        if !state.is_current(now) {
            return Ok(Rotation::Refused(Some(state)));
        }
        record.rotated_at = Some(now);
        let next = TokenRecord {
            session: state.session,
            created_at: now,
            expires_at: successor.expires_at,
            rotated_at: None,
        };
        let user = session.user;
        tokens.insert(successor.hash, next);
        Ok(Rotation::Rotated {
            user,
            session: state.session,
        })
    }

    async fn revoke_session(&self, id: SessionId, now: SystemTime) -> Result<bool, RepoError> {
        Ok(self.lock()?.end_session(id, now))
    }

    async fn revoke_session_of(
        &self,
        token: &TokenHash<Refresh>,
        now: SystemTime,
    ) -> Result<Option<SessionId>, RepoError> {
        let mut tables = self.lock()?;
        let session = tables.tokens.get(token).map(|r| r.session);
        Ok(session.filter(|id| tables.end_session(*id, now)))
    }

    async fn revoke_user_session(
        &self,
        user: UserId,
        id: SessionId,
        now: SystemTime,
    ) -> Result<bool, RepoError> {
        let mut tables = self.lock()?;
        let live = tables.sessions.get(&id).is_some_and(|s| s.user == user)
            && tables
                .tokens
                .values()
                .any(|t| t.session == id && t.rotated_at.is_none() && t.expires_at > now);
        Ok(live && tables.end_session(id, now))
    }

    async fn revoke_user_sessions(
        &self,
        user: UserId,
        now: SystemTime,
    ) -> Result<Vec<SessionId>, RepoError> {
        Ok(self.lock()?.revoke_sessions_of(user, now))
    }

    async fn sessions(&self, user: UserId, now: SystemTime) -> Result<Vec<SessionInfo>, RepoError> {
        let tables = self.lock()?;
        let mut live: Vec<SessionInfo> = tables
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user && s.revoked.is_none())
            .filter_map(|(id, s)| {
                let tokens = tables.tokens.values().filter(|t| t.session == *id);
                let (mut last_used, mut current) = (s.created_at, false);
                for t in tokens {
                    last_used = last_used.max(t.created_at);
                    current |= t.rotated_at.is_none() && t.expires_at > now;
                }
                current.then(|| SessionInfo {
                    id: *id,
                    created_at: s.created_at,
                    last_used_at: last_used,
                    user_agent: s.user_agent.clone(),
                })
            })
            .collect();
        live.sort_by_key(|s| (s.created_at, s.id));
        Ok(live)
    }

    async fn end_horizon(&self) -> Result<EndMark, RepoError> {
        Ok(EndMark(self.lock()?.next_end_mark))
    }

    async fn ended_since(
        &self,
        from: EndMark,
        not_before: SystemTime,
        after: Option<(EndMark, SessionId)>,
        limit: usize,
    ) -> Result<Vec<(EndMark, SessionId)>, RepoError> {
        let tables = self.lock()?;
        let mut ended: Vec<(EndMark, SessionId)> = tables
            .sessions
            .iter()
            .filter_map(|(id, s)| s.revoked.map(|(at, mark)| (at, mark, *id)))
            .chain(
                tables
                    .session_ends
                    .iter()
                    .map(|(id, e)| (e.at, e.mark, *id)),
            )
            .filter(|(at, mark, id)| {
                *mark >= from && *at >= not_before && after.is_none_or(|a| (*mark, *id) > a)
            })
            .map(|(_, mark, id)| (mark, id))
            .collect();
        ended.sort_unstable();
        ended.truncate(limit);
        Ok(ended)
    }

    async fn purge_expired(&self, now: SystemTime, limit: usize) -> Result<u64, RepoError> {
        let mut tables = self.lock()?;
        let expired: Vec<TokenHash<Refresh>> = tables
            .tokens
            .iter()
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(hash, _)| *hash)
            .take(limit)
            .collect();
        for hash in &expired {
            tables.tokens.remove(hash);
        }
        let purged = expired.len() as u64;
        let live: HashSet<SessionId> = tables.tokens.values().map(|r| r.session).collect();
        tables.sessions.retain(|id, _| live.contains(id));
        let before = tables.session_ends.len();
        tables.session_ends.retain(|_, e| e.keep_until > now);
        Ok(purged.max((before - tables.session_ends.len()) as u64))
    }
}
