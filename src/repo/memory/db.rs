//! The in-memory stand-in for PostgreSQL: its tables and its one lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::domain::{Email, Refresh, SessionId, TokenHash, User, UserAgent, UserId};
use crate::repo::{Dependency, EndMark, OutgoingEmail, RepoError};

pub(super) struct TokenRecord {
    pub session: SessionId,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    pub rotated_at: Option<SystemTime>,
}

pub(super) struct Session {
    pub user: UserId,
    pub created_at: SystemTime,
    pub user_agent: Option<UserAgent>,
    /// When it ended, and its place in the order of ends.
    pub revoked: Option<(SystemTime, EndMark)>,
}

pub(super) enum OutboxState {
    Pending { due: SystemTime },
    Failed,
}

pub(super) struct OutboxRow {
    /// `None`: a reset request for an address without an account.
    pub email: Option<OutgoingEmail>,
    pub attempts: u32,
    pub created_at: SystemTime,
    pub state: OutboxState,
}

/// The end of a deleted account's session, kept for the readers of ends.
pub(super) struct KeptEnd {
    pub at: SystemTime,
    pub mark: EndMark,
    pub keep_until: SystemTime,
}

/// The tables.
#[derive(Default)]
pub(super) struct Tables {
    pub users: HashMap<UserId, User>,
    pub by_email: HashMap<Email, UserId>,
    pub sessions: HashMap<SessionId, Session>,
    pub tokens: HashMap<TokenHash<Refresh>, TokenRecord>,
    /// Ordered by id, i.e. by insertion: claims go oldest first.
    pub outbox: BTreeMap<u64, OutboxRow>,
    pub next_outbox_id: u64,
    /// The mark the next session end gets. Ends happen under the one lock, so each is
    /// visible as soon as it is marked.
    pub next_end_mark: i64,
    /// The ended sessions of deleted accounts.
    pub session_ends: HashMap<SessionId, KeptEnd>,
}

impl Tables {
    pub fn push_outbox(&mut self, email: Option<OutgoingEmail>, now: SystemTime) {
        self.next_outbox_id += 1;
        let row = OutboxRow {
            email,
            attempts: 0,
            created_at: now,
            state: OutboxState::Pending { due: now },
        };
        self.outbox.insert(self.next_outbox_id, row);
    }

    /// Ends session `id` at `now` unless it has ended; whether it ended now.
    pub fn end_session(&mut self, id: SessionId, now: SystemTime) -> bool {
        let Some(session) = self.sessions.get_mut(&id) else {
            return false;
        };
        if session.revoked.is_some() {
            return false;
        }
        session.revoked = Some((now, EndMark(self.next_end_mark)));
        self.next_end_mark += 1;
        true
    }

    /// Ends every session of `user`; those it ended.
    pub fn revoke_sessions_of(&mut self, user: UserId, now: SystemTime) -> Vec<SessionId> {
        let theirs: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user && s.revoked.is_none())
            .map(|(id, _)| *id)
            .collect();
        theirs
            .into_iter()
            .filter(|id| self.end_session(*id, now))
            .collect()
    }
}

/// Users, sessions and the outbox in memory.
#[derive(Default)]
pub struct MemoryDb {
    /// A std Mutex, not tokio's: it is never held across an `.await`, and every critical
    /// section is a few map operations.
    tables: Mutex<Tables>,
}

impl MemoryDb {
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Tables>, RepoError> {
        self.tables.lock().map_err(|_| RepoError::Poisoned)
    }
}

#[async_trait]
impl Dependency for MemoryDb {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.lock().map(|_| ())
    }
}
