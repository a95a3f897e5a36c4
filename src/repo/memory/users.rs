//! [`Users`] in memory.

use std::time::SystemTime;

use async_trait::async_trait;

use super::MemoryDb;
use crate::domain::{Email, PasswordHash, SessionId, User, UserId};
use crate::repo::{CreateUserError, NewUser, OutgoingEmail, RepoError, Users};

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
        now: SystemTime,
    ) -> Result<Option<Vec<SessionId>>, RepoError> {
        let mut tables = self.lock()?;
        let Some(user) = tables
            .users
            .get_mut(&id)
            .filter(|u| u.password_hash == *current)
        else {
            return Ok(None);
        };
        user.password_hash = new;
        user.email_verified |= verified;
        Ok(Some(tables.revoke_sessions_of(id, now)))
    }
}
