//! [`RefreshTokens`] in memory.

use std::collections::HashSet;
use std::time::SystemTime;

use async_trait::async_trait;

use super::db::{Session, Tables, TokenRecord};
use super::MemoryDb;
use crate::domain::{PasswordHash, Refresh, SessionId, TokenHash, TokenState, UserId};
use crate::repo::{NewRefreshToken, RefreshTokens, RepoError, Rotation};

#[async_trait]
impl RefreshTokens for MemoryDb {
    async fn start_session(
        &self,
        id: SessionId,
        user: UserId,
        password: &PasswordHash,
        first: NewRefreshToken,
    ) -> Result<bool, RepoError> {
        let mut tables = self.lock()?;
        if tables
            .users
            .get(&user)
            .is_none_or(|u| u.password_hash != *password)
        {
            return Ok(false);
        }
        let session = Session {
            user,
            revoked: false,
        };
        tables.sessions.insert(id, session);
        let record = TokenRecord {
            session: id,
            expires_at: first.expires_at,
            rotated_at: None,
        };
        tables.tokens.insert(first.hash, record);
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
            tokens, sessions, ..
        } = &mut *tables;
        let Some((record, session)) = tokens
            .get_mut(presented)
            .and_then(|r| sessions.get(&r.session).map(|s| (r, s)))
        else {
            return Ok(Rotation::Refused(None));
        };
        let state = TokenState {
            session: record.session,
            rotated_at: record.rotated_at,
            expires_at: record.expires_at,
            session_revoked: session.revoked,
        };
        if !state.is_current(now) {
            return Ok(Rotation::Refused(Some(state)));
        }
        record.rotated_at = Some(now);
        let next = TokenRecord {
            session: state.session,
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

    async fn revoke_session(&self, id: SessionId, _now: SystemTime) -> Result<(), RepoError> {
        if let Some(session) = self.lock()?.sessions.get_mut(&id) {
            session.revoked = true;
        }
        Ok(())
    }

    async fn revoke_session_of(
        &self,
        token: &TokenHash<Refresh>,
        now: SystemTime,
    ) -> Result<(), RepoError> {
        let session = self.lock()?.tokens.get(token).map(|r| r.session);
        match session {
            Some(id) => self.revoke_session(id, now).await,
            None => Ok(()),
        }
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
        Ok(purged)
    }
}
