//! [`Users`] on PostgreSQL.

use std::time::SystemTime;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::outbox::outbox_columns;
use super::refresh_tokens::REVOKE_USER_SESSIONS;
use super::PgStore;
use crate::domain::{Email, PasswordHash, SessionId, User, UserId};
use crate::repo::{CreateUserError, NewUser, OutgoingEmail, RepoError, Users};

/// The user and their first email in one statement: stored together or not at all.
/// Outbox times come from authd's clock, as `claim` compares them with it.
const CREATE: &str = "
    WITH new_user AS (
        INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) RETURNING id
    )
    INSERT INTO outbox (kind, user_id, recipient, created_at, due_at)
    SELECT $4, $5, $6, $7, $7 FROM new_user";

const BY_EMAIL: &str = "
    SELECT id, email, password_hash, email_verified FROM users WHERE lower(email) = lower($1)";

const BY_ID: &str = "SELECT id, email, password_hash, email_verified FROM users WHERE id = $1";

const MARK_VERIFIED: &str = "
    UPDATE users SET email_verified = true, updated_at = now()
    WHERE id = $1 AND NOT email_verified";

/// Compare-and-set on the password hash: of two racing changes, one wins.
const SET_PASSWORD: &str = "
    UPDATE users SET password_hash = $2, email_verified = email_verified OR $3, updated_at = now()
    WHERE id = $1 AND password_hash = $4";

fn user_from_row(row: &tokio_postgres::Row) -> Result<User, RepoError> {
    let email: &str = row.get("email");
    Ok(User {
        id: UserId::from_uuid(row.get("id")),
        email: Email::parse(email).map_err(|_| RepoError::Corrupt("a stored email is invalid"))?,
        password_hash: PasswordHash::from_stored(row.get("password_hash")),
        email_verified: row.get("email_verified"),
    })
}

#[async_trait]
impl Users for PgStore {
    async fn create(
        &self,
        user: NewUser,
        email: OutgoingEmail,
        now: SystemTime,
    ) -> Result<User, CreateUserError> {
        let created = self
            .with(|client| async move {
                let stmt = client.prepare_cached(CREATE).await?;
                let (kind, user_id, to) = outbox_columns(&email);
                let params: [&(dyn ToSql + Sync); 7] = [
                    &user.id.as_uuid(),
                    &user.email.as_str(),
                    &user.password_hash.as_str(),
                    &kind,
                    &user_id,
                    &to,
                    &now,
                ];
                match client.execute(&stmt, &params).await {
                    Ok(_) => Ok(Some(User {
                        id: user.id,
                        email: user.email,
                        password_hash: user.password_hash,
                        email_verified: false,
                    })),
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        created.ok_or(CreateUserError::EmailTaken)
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(BY_EMAIL).await?;
            let row = client.query_opt(&stmt, &[&email.as_str()]).await?;
            row.as_ref().map(user_from_row).transpose()
        })
        .await
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(BY_ID).await?;
            let row = client.query_opt(&stmt, &[&id.as_uuid()]).await?;
            row.as_ref().map(user_from_row).transpose()
        })
        .await
    }

    async fn mark_verified(&self, id: UserId) -> Result<(), RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(MARK_VERIFIED).await?;
            client.execute(&stmt, &[&id.as_uuid()]).await?;
            Ok(())
        })
        .await
    }

    async fn set_password(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
        verified: bool,
        _now: SystemTime,
    ) -> Result<Option<Vec<SessionId>>, RepoError> {
        self.with(|mut client| async move {
            let tx = client.transaction().await?;
            let params: [&(dyn ToSql + Sync); 4] =
                [&id.as_uuid(), &new.as_str(), &verified, &current.as_str()];
            if tx.execute(SET_PASSWORD, &params).await? != 1 {
                // No such user, or another change won the race: change nothing.
                return Ok(None);
            }
            let ended = tx.query(REVOKE_USER_SESSIONS, &[&id.as_uuid()]).await?;
            tx.commit().await?;
            Ok(Some(
                ended
                    .iter()
                    .map(|r| SessionId::from_uuid(r.get(0)))
                    .collect(),
            ))
        })
        .await
    }
}
