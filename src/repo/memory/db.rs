//! Users, refresh-token families and the outbox, in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::domain::{Email, PasswordHash, TokenHash, User, UserId};
use crate::repo::{
    CreateUserError, Dependency, NewRefreshToken, NewUser, Outbox, OutboxItem, OutgoingEmail,
    RefreshTokens, RepoError, Rotation, Users,
};

struct TokenRecord {
    family: u64,
    expires_at: SystemTime,
    rotated_at: Option<SystemTime>,
}

struct Family {
    user: UserId,
    revoked: bool,
}

enum OutboxState {
    Pending { due: SystemTime },
    Sent,
    Failed,
}

struct OutboxRow {
    email: OutgoingEmail,
    attempts: u32,
    created_at: SystemTime,
    state: OutboxState,
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, User>,
    by_email: HashMap<Email, UserId>,
    families: HashMap<u64, Family>,
    tokens: HashMap<TokenHash, TokenRecord>,
    next_family: u64,
    /// Ordered by id, i.e. by insertion: claims go oldest first.
    outbox: BTreeMap<u64, OutboxRow>,
    next_outbox_id: u64,
}

impl State {
    fn push_outbox(&mut self, email: OutgoingEmail, now: SystemTime) {
        self.next_outbox_id += 1;
        let row = OutboxRow {
            email,
            attempts: 0,
            created_at: now,
            state: OutboxState::Pending { due: now },
        };
        self.outbox.insert(self.next_outbox_id, row);
    }

    fn revoke_families_of(&mut self, user: UserId) {
        for family in self.families.values_mut().filter(|f| f.user == user) {
            family.revoked = true;
        }
    }
}

/// The in-memory stand-in for PostgreSQL.
#[derive(Default)]
pub struct MemoryDb {
    /// A std Mutex, not tokio's: it is never held across an `.await`, and every critical
    /// section is a few map operations.
    state: Mutex<State>,
}

impl MemoryDb {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, RepoError> {
        self.state
            .lock()
            .map_err(|_| RepoError::Unavailable("memory store poisoned".into()))
    }
}

#[async_trait]
impl Users for MemoryDb {
    async fn create(&self, user: NewUser) -> Result<User, CreateUserError> {
        let mut state = self.lock()?;
        if state.by_email.contains_key(&user.email) {
            return Err(CreateUserError::EmailTaken);
        }
        let user = User {
            id: user.id,
            email: user.email,
            password_hash: user.password_hash,
            email_verified: false,
        };
        state.by_email.insert(user.email.clone(), user.id);
        state.users.insert(user.id, user.clone());
        let first_email = OutgoingEmail::Verification {
            user: user.id,
            to: user.email.clone(),
        };
        state.push_outbox(first_email, SystemTime::now());
        Ok(user)
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        let state = self.lock()?;
        Ok(state
            .by_email
            .get(email)
            .and_then(|id| state.users.get(id))
            .cloned())
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        Ok(self.lock()?.users.get(&id).cloned())
    }

    async fn mark_verified(&self, id: UserId) -> Result<(), RepoError> {
        if let Some(user) = self.lock()?.users.get_mut(&id) {
            user.email_verified = true;
        }
        Ok(())
    }

    async fn set_password(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
        verified: bool,
    ) -> Result<bool, RepoError> {
        let mut state = self.lock()?;
        let Some(user) = state
            .users
            .get_mut(&id)
            .filter(|u| u.password_hash == *current)
        else {
            return Ok(false);
        };
        user.password_hash = new;
        user.email_verified |= verified;
        state.revoke_families_of(id);
        Ok(true)
    }
}

#[async_trait]
impl RefreshTokens for MemoryDb {
    async fn start_family(
        &self,
        user: UserId,
        password: &PasswordHash,
        first: NewRefreshToken,
    ) -> Result<bool, RepoError> {
        let mut state = self.lock()?;
        if state
            .users
            .get(&user)
            .is_none_or(|u| u.password_hash != *password)
        {
            return Ok(false);
        }
        state.next_family += 1;
        let family = state.next_family;
        state.families.insert(
            family,
            Family {
                user,
                revoked: false,
            },
        );
        state.tokens.insert(
            first.hash,
            TokenRecord {
                family,
                expires_at: first.expires_at,
                rotated_at: None,
            },
        );
        Ok(true)
    }

    async fn rotate(
        &self,
        presented: &TokenHash,
        successor: NewRefreshToken,
        now: SystemTime,
        grace: Duration,
    ) -> Result<Rotation, RepoError> {
        let mut state = self.lock()?;
        let State {
            tokens, families, ..
        } = &mut *state;
        let Some(record) = tokens.get_mut(presented) else {
            return Ok(Rotation::Unknown);
        };
        let Some(family) = families.get_mut(&record.family) else {
            return Ok(Rotation::Unknown);
        };
        if family.revoked {
            return Ok(Rotation::Revoked);
        }
        if let Some(rotated_at) = record.rotated_at {
            let since = now.duration_since(rotated_at).unwrap_or_default();
            if since <= grace && !grace.is_zero() {
                return Ok(Rotation::ReusedWithinGrace);
            }
            family.revoked = true;
            return Ok(Rotation::ReuseDetected);
        }
        if record.expires_at <= now {
            return Ok(Rotation::Expired);
        }
        record.rotated_at = Some(now);
        let (family_id, user) = (record.family, family.user);
        tokens.insert(
            successor.hash,
            TokenRecord {
                family: family_id,
                expires_at: successor.expires_at,
                rotated_at: None,
            },
        );
        Ok(Rotation::Rotated { user })
    }

    async fn revoke_family(&self, token: &TokenHash) -> Result<(), RepoError> {
        let mut state = self.lock()?;
        let State {
            tokens, families, ..
        } = &mut *state;
        if let Some(family) = tokens.get(token).and_then(|r| families.get_mut(&r.family)) {
            family.revoked = true;
        }
        Ok(())
    }

    async fn purge_expired(&self, now: SystemTime) -> Result<u64, RepoError> {
        let mut state = self.lock()?;
        let before = state.tokens.len();
        state.tokens.retain(|_, r| r.expires_at > now);
        let purged = (before - state.tokens.len()) as u64;
        let live: std::collections::HashSet<u64> =
            state.tokens.values().map(|r| r.family).collect();
        state.families.retain(|id, _| live.contains(id));
        Ok(purged)
    }
}

#[async_trait]
impl Outbox for MemoryDb {
    async fn enqueue(&self, email: OutgoingEmail) -> Result<(), RepoError> {
        self.lock()?.push_outbox(email, SystemTime::now());
        Ok(())
    }

    async fn claim(
        &self,
        limit: usize,
        lease: Duration,
        now: SystemTime,
    ) -> Result<Vec<OutboxItem>, RepoError> {
        let mut state = self.lock()?;
        let mut claimed = Vec::new();
        for (id, row) in state.outbox.iter_mut() {
            if claimed.len() >= limit {
                break;
            }
            if let OutboxState::Pending { due } = row.state {
                if due <= now {
                    claimed.push(OutboxItem {
                        id: *id,
                        email: row.email.clone(),
                        attempts: row.attempts,
                    });
                    row.attempts += 1;
                    row.state = OutboxState::Pending { due: now + lease };
                }
            }
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, id: u64) -> Result<(), RepoError> {
        // Sent rows are of no further use in memory; PostgreSQL keeps them for a while.
        let mut state = self.lock()?;
        if let Some(row) = state.outbox.get_mut(&id) {
            row.state = OutboxState::Sent;
        }
        state
            .outbox
            .retain(|_, r| !matches!(r.state, OutboxState::Sent));
        Ok(())
    }

    async fn retry_at(&self, id: u64, at: SystemTime) -> Result<(), RepoError> {
        if let Some(row) = self.lock()?.outbox.get_mut(&id) {
            row.state = OutboxState::Pending { due: at };
        }
        Ok(())
    }

    async fn mark_skipped(&self, id: u64) -> Result<(), RepoError> {
        self.mark_sent(id).await
    }

    async fn mark_failed(&self, id: u64) -> Result<(), RepoError> {
        if let Some(row) = self.lock()?.outbox.get_mut(&id) {
            row.state = OutboxState::Failed;
        }
        Ok(())
    }

    async fn purge(
        &self,
        _sent_before: SystemTime,
        failed_before: SystemTime,
    ) -> Result<u64, RepoError> {
        // Sent rows are dropped as soon as they are sent; failed ones age out here.
        let mut state = self.lock()?;
        let before = state.outbox.len();
        state.outbox.retain(|_, r| {
            !(matches!(r.state, OutboxState::Failed) && r.created_at < failed_before)
        });
        Ok((before - state.outbox.len()) as u64)
    }

    async fn backlog(&self, now: SystemTime) -> Result<(u64, Duration), RepoError> {
        let state = self.lock()?;
        let pending = state
            .outbox
            .values()
            .filter(|r| matches!(r.state, OutboxState::Pending { .. }));
        let (count, oldest) = pending.fold((0u64, None::<SystemTime>), |(n, oldest), r| {
            (
                n + 1,
                Some(oldest.map_or(r.created_at, |o| o.min(r.created_at))),
            )
        });
        Ok((
            count,
            oldest.map_or(Duration::ZERO, |o| {
                now.duration_since(o).unwrap_or_default()
            }),
        ))
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
