//! [`Users`] on PostgreSQL.

use std::time::SystemTime;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::outbox::{outbox_columns, EnqueueColumns, ENQUEUE};
use super::refresh_tokens::REVOKE_USER_SESSIONS;
use super::PgStore;
use crate::domain::{Email, PasswordHash, SessionId, User, UserId};
use crate::repo::{AddressChange, CreateUserError, NewUser, OutgoingEmail, RepoError, Users};

/// The user and their first email in one statement: stored together or not at all.
/// Outbox times come from authd's clock, as `claim` compares them with it.
const CREATE: &str = "
    WITH new_user AS (
        INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $7)
        RETURNING id
    )
    INSERT INTO outbox (kind, user_id, recipient, created_at, due_at)
    SELECT $4, $5, $6, $7, $7 FROM new_user";

macro_rules! user_columns {
    () => {
        "SELECT id, email, password_hash, email_verified, disabled, created_at FROM users"
    };
}

const BY_EMAIL: &str = concat!(user_columns!(), " WHERE lower(email) = lower($1)");

const BY_ID: &str = concat!(user_columns!(), " WHERE id = $1");

/// A row back for every existing account, verified before or not.
const MARK_VERIFIED: &str = "
    UPDATE users SET email_verified = true,
        updated_at = CASE WHEN email_verified THEN updated_at ELSE now() END
    WHERE id = $1";

/// The row lock it takes makes a racing login's `FOR SHARE` wait, then see the flag.
const SET_DISABLED: &str = "UPDATE users SET disabled = $2, updated_at = now() WHERE id = $1";

/// Compare-and-set on the address and the password the change was checked against; the
/// unique index decides between two accounts.
const CHANGE_EMAIL: &str = "
    UPDATE users SET email = $3, email_verified = true, updated_at = now()
    WHERE id = $1 AND lower(email) = lower($2) AND password_hash = $4 AND NOT disabled";

/// Locks the account against racing logins and changes for the rest of the deletion.
const LOCK_FOR_DELETE: &str = "SELECT email FROM users WHERE id = $1 FOR UPDATE";

/// The ends of every session of the account (all ended by now), kept without it.
const KEEP_ENDS: &str = "
    INSERT INTO session_ends (id, ended_at, ended_xid, keep_until)
    SELECT id, coalesce(revoked_at, now()),
           coalesce(revoked_xid, pg_current_xact_id()::text::bigint), $2
    FROM refresh_families WHERE user_id = $1";

/// Reset requests typed for the address before it had an account name none.
const DELETE_REQUESTS_FOR_ADDRESS: &str = "
    DELETE FROM outbox WHERE user_id IS NULL AND lower(recipient) = lower($1)";

/// Sessions, their tokens and the account's outbox rows go with it (ON DELETE CASCADE).
const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

/// Compare-and-set on the password hash: of two racing changes, one wins. A disabled
/// account's password stays as it is.
const SET_PASSWORD: &str = "
    UPDATE users SET password_hash = $2, email_verified = email_verified OR $3, updated_at = now()
    WHERE id = $1 AND password_hash = $4 AND NOT disabled";

fn user_from_row(row: &tokio_postgres::Row) -> Result<User, RepoError> {
    let email: &str = row.get("email");
    Ok(User {
        id: UserId::from_uuid(row.get("id")),
        email: Email::parse(email).map_err(|_| RepoError::Corrupt("a stored email is invalid"))?,
        password_hash: PasswordHash::from_stored(row.get("password_hash")),
        email_verified: row.get("email_verified"),
        disabled: row.get("disabled"),
        created_at: row.get("created_at"),
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
                let (kind, user_id, to, _) = outbox_columns(&email);
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
                        disabled: false,
                        created_at: now,
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

    async fn mark_verified(&self, id: UserId) -> Result<bool, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(MARK_VERIFIED).await?;
            Ok(client.execute(&stmt, &[&id.as_uuid()]).await? == 1)
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
            let ended = session_ids(&tx.query(REVOKE_USER_SESSIONS, &[&id.as_uuid()]).await?);
            tx.commit().await?;
            Ok(Some(ended))
        })
        .await
    }

    async fn set_disabled(
        &self,
        id: UserId,
        disabled: bool,
        _now: SystemTime,
    ) -> Result<Option<Vec<SessionId>>, RepoError> {
        self.with(|mut client| async move {
            let tx = client.transaction().await?;
            if tx
                .execute(SET_DISABLED, &[&id.as_uuid(), &disabled])
                .await?
                != 1
            {
                return Ok(None);
            }
            let ended = match disabled {
                true => session_ids(&tx.query(REVOKE_USER_SESSIONS, &[&id.as_uuid()]).await?),
                false => Vec::new(),
            };
            tx.commit().await?;
            Ok(Some(ended))
        })
        .await
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
        self.with(|mut client| async move {
            let tx = client.transaction().await?;
            let params: [&(dyn ToSql + Sync); 4] = [
                &id.as_uuid(),
                &from.as_str(),
                &to.as_str(),
                &password.as_str(),
            ];
            match tx.execute(CHANGE_EMAIL, &params).await {
                Ok(1) => {}
                Ok(_) => return Ok(AddressChange::Stale),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Ok(AddressChange::Taken)
                }
                Err(e) => return Err(e.into()),
            }
            let ended = session_ids(&tx.query(REVOKE_USER_SESSIONS, &[&id.as_uuid()]).await?);
            let c = EnqueueColumns::of(std::slice::from_ref(&notice));
            tx.execute(
                ENQUEUE,
                &[&c.kinds, &c.users, &c.recipients, &c.stamps, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(AddressChange::Changed(ended))
        })
        .await
    }

    async fn delete(
        &self,
        id: UserId,
        _now: SystemTime,
        keep_ends_until: SystemTime,
    ) -> Result<Option<(Email, Vec<SessionId>)>, RepoError> {
        self.with(|mut client| async move {
            let tx = client.transaction().await?;
            let Some(account) = tx.query_opt(LOCK_FOR_DELETE, &[&id.as_uuid()]).await? else {
                return Ok(None);
            };
            let email: &str = account.get(0);
            let address =
                Email::parse(email).map_err(|_| RepoError::Corrupt("a stored email is invalid"))?;
            let ended = session_ids(&tx.query(REVOKE_USER_SESSIONS, &[&id.as_uuid()]).await?);
            tx.execute(KEEP_ENDS, &[&id.as_uuid(), &keep_ends_until])
                .await?;
            tx.execute(DELETE_REQUESTS_FOR_ADDRESS, &[&email]).await?;
            tx.execute(DELETE_USER, &[&id.as_uuid()]).await?;
            tx.commit().await?;
            Ok(Some((address, ended)))
        })
        .await
    }
}

fn session_ids(rows: &[tokio_postgres::Row]) -> Vec<SessionId> {
    rows.iter()
        .map(|r| SessionId::from_uuid(r.get(0)))
        .collect()
}
