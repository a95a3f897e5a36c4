//! [`Users`] in memory.

use std::time::SystemTime;

use async_trait::async_trait;

use super::db::KeptEnd;
use super::MemoryDb;
use crate::domain::{Email, PasswordHash, SessionId, User, UserId};
use crate::repo::{AddressChange, CreateUserError, NewUser, OutgoingEmail, RepoError, Users};

#[async_trait]
impl Users for MemoryDb {
    async fn create(
        &self,
        user: NewUser,
        email: OutgoingEmail,
        now: SystemTime,
    ) -> Result<User, CreateUserError> {
        let mut tables = self.lock()?;
        if tables.by_email.contains_key(&user.email) {
            return Err(CreateUserError::EmailTaken);
        }
        let user = User {
            id: user.id,
            email: user.email,
            password_hash: user.password_hash,
            email_verified: false,
            disabled: false,
            created_at: now,
        };
        tables.by_email.insert(user.email.clone(), user.id);
        tables.users.insert(user.id, user.clone());
        tables.push_outbox(Some(email), now);
        Ok(user)
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        let tables = self.lock()?;
        Ok(tables
            .by_email
            .get(email)
            .and_then(|id| tables.users.get(id))
            .cloned())
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        Ok(self.lock()?.users.get(&id).cloned())
    }

    async fn mark_verified(&self, id: UserId) -> Result<bool, RepoError> {
        let mut tables = self.lock()?;
        let Some(user) = tables.users.get_mut(&id) else {
            return Ok(false);
        };
        user.email_verified = true;
        Ok(true)
    }

    async fn set_password(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
        verified: bool,
        now: SystemTime,
    ) -> Result<Option<Vec<SessionId>>, RepoError> {
        let mut tables = self.lock()?;
        let Some(user) = tables
            .users
            .get_mut(&id)
            .filter(|u| u.password_hash == *current && !u.disabled)
        else {
            return Ok(None);
        };
        user.password_hash = new;
        user.email_verified |= verified;
        Ok(Some(tables.revoke_sessions_of(id, now)))
    }

    async fn set_disabled(
        &self,
        id: UserId,
        disabled: bool,
        now: SystemTime,
    ) -> Result<Option<Vec<SessionId>>, RepoError> {
        let mut tables = self.lock()?;
        let Some(user) = tables.users.get_mut(&id) else {
            return Ok(None);
        };
        user.disabled = disabled;
        Ok(Some(match disabled {
            true => tables.revoke_sessions_of(id, now),
            false => Vec::new(),
        }))
    }

    async fn change_email(
        &self,
        id: UserId,
        from: &Email,
        to: &Email,
        password: &PasswordHash,
        notice: OutgoingEmail,
        now: SystemTime,
    ) -> Result<AddressChange, RepoError> {
        let mut tables = self.lock()?;
        if tables
            .users
            .get(&id)
            .is_none_or(|u| u.email != *from || u.password_hash != *password || u.disabled)
        {
            return Ok(AddressChange::Stale);
        }
        if tables.by_email.get(to).is_some_and(|owner| *owner != id) {
            return Ok(AddressChange::Taken);
        }
        tables.by_email.remove(from);
        tables.by_email.insert(to.clone(), id);
        let user = tables.users.get_mut(&id).expect("looked up above");
        user.email = to.clone();
        user.email_verified = true;
        tables.push_outbox(Some(notice), now);
        Ok(AddressChange::Changed(tables.revoke_sessions_of(id, now)))
    }

    async fn delete(
        &self,
        id: UserId,
        now: SystemTime,
        keep_ends_until: SystemTime,
    ) -> Result<Option<(Email, Vec<SessionId>)>, RepoError> {
        let mut tables = self.lock()?;
        let Some(user) = tables.users.remove(&id) else {
            return Ok(None);
        };
        tables.by_email.remove(&user.email);
        let ended = tables.revoke_sessions_of(id, now);
        let theirs: Vec<SessionId> = tables
            .sessions
            .iter()
            .filter(|(_, s)| s.user == id)
            .map(|(sid, _)| *sid)
            .collect();
        for sid in &theirs {
            let session = tables.sessions.remove(sid).expect("listed above");
            let (at, mark) = session.revoked.expect("every one ended above");
            let kept = KeptEnd {
                at,
                mark,
                keep_until: keep_ends_until,
            };
            tables.session_ends.insert(*sid, kept);
        }
        tables.tokens.retain(|_, t| !theirs.contains(&t.session));
        // Requests for an address without an account keep no address here.
        tables
            .outbox
            .retain(|_, row| row.email.as_ref().is_none_or(|e| e.user() != id));
        Ok(Some((user.email, ended)))
    }
}
