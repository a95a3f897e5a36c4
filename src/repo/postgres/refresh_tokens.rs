//! [`RefreshTokens`] on PostgreSQL. A session is a row of `refresh_families`.

use std::time::SystemTime;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::domain::{PasswordHash, Refresh, SessionId, TokenHash, TokenState, UserId};
use crate::repo::{NewRefreshToken, RefreshTokens, RepoError, Rotation};

/// FOR SHARE on the user row: a concurrent password change (which updates that row, then
/// revokes the sessions) either waits for this session to exist and then revokes it, or
/// commits first and this finds the password changed.
const START_SESSION: &str = "
    WITH account AS (
        SELECT id FROM users WHERE id = $2 AND password_hash = $5 FOR SHARE
    ), family AS (
        INSERT INTO refresh_families (id, user_id) SELECT $1, id FROM account RETURNING id
    )
    INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
    SELECT $3, id, $4 FROM family";

/// The compare-and-set of a rotation, and its successor, in one statement (one round
/// trip). The WHERE clause is `TokenState::is_current` in SQL. The UPDATE takes the row
/// lock; a concurrent rotation of the same token waits, re-checks `rotated_at IS NULL`,
/// finds it false and claims nothing: exactly one caller gets a row back.
const ROTATE: &str = "
    WITH claimed AS (
        UPDATE refresh_tokens t SET rotated_at = $2
        FROM refresh_families f
        WHERE t.token_hash = $1 AND f.id = t.family_id
          AND t.rotated_at IS NULL AND f.revoked_at IS NULL AND t.expires_at > $2
        RETURNING t.family_id, f.user_id
    ), successor AS (
        INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
        SELECT $3, family_id, $4 FROM claimed
    )
    SELECT family_id, user_id FROM claimed";

/// A token that could not be rotated, as it is now.
const TOKEN_STATE: &str = "
    SELECT t.family_id, t.rotated_at, t.expires_at, f.revoked_at IS NOT NULL
    FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
    WHERE t.token_hash = $1";

const REVOKE_SESSION: &str = "
    UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

const REVOKE_SESSION_OF_TOKEN: &str = "
    UPDATE refresh_families SET revoked_at = $2
    WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
      AND revoked_at IS NULL";

/// One batch of expired tokens (by `refresh_tokens_expires_idx`), and their sessions.
const PURGE_EXPIRED_TOKENS: &str = "
    DELETE FROM refresh_tokens WHERE token_hash IN (
        SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2
    )
    RETURNING family_id";

/// The sessions of the tokens just purged that have no token left.
const PURGE_EMPTY_SESSIONS: &str = "
    DELETE FROM refresh_families f
    WHERE f.id = ANY($1)
      AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)";

#[async_trait]
impl RefreshTokens for PgStore {
    async fn start_session(
        &self,
        id: SessionId,
        user: UserId,
        password: &PasswordHash,
        first: NewRefreshToken,
    ) -> Result<bool, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(START_SESSION).await?;
            let hash: &[u8] = first.hash.as_bytes();
            let params: [&(dyn ToSql + Sync); 5] = [
                &id.as_uuid(),
                &user.as_uuid(),
                &hash,
                &first.expires_at,
                &password.as_str(),
            ];
            Ok(client.execute(&stmt, &params).await? == 1)
        })
        .await
    }

    async fn rotate(
        &self,
        presented: &TokenHash<Refresh>,
        successor: NewRefreshToken,
        now: SystemTime,
    ) -> Result<Rotation, RepoError> {
        self.with(|client| async move {
            let rotate = client.prepare_cached(ROTATE).await?;
            let presented: &[u8] = presented.as_bytes();
            let next: &[u8] = successor.hash.as_bytes();
            let params: [&(dyn ToSql + Sync); 4] = [&presented, &now, &next, &successor.expires_at];
            if let Some(row) = client.query_opt(&rotate, &params).await? {
                return Ok(Rotation::Rotated {
                    session: SessionId::from_uuid(row.get(0)),
                    user: UserId::from_uuid(row.get(1)),
                });
            }
            let state = client.prepare_cached(TOKEN_STATE).await?;
            let row = client.query_opt(&state, &[&presented]).await?;
            Ok(Rotation::Refused(row.map(|row| TokenState {
                session: SessionId::from_uuid(row.get(0)),
                rotated_at: row.get(1),
                expires_at: row.get(2),
                session_revoked: row.get(3),
            })))
        })
        .await
    }

    async fn revoke_session(&self, id: SessionId, now: SystemTime) -> Result<(), RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(REVOKE_SESSION).await?;
            client.execute(&stmt, &[&id.as_uuid(), &now]).await?;
            Ok(())
        })
        .await
    }

    async fn revoke_session_of(
        &self,
        token: &TokenHash<Refresh>,
        now: SystemTime,
    ) -> Result<(), RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(REVOKE_SESSION_OF_TOKEN).await?;
            let hash: &[u8] = token.as_bytes();
            client.execute(&stmt, &[&hash, &now]).await?;
            Ok(())
        })
        .await
    }

    async fn purge_expired(&self, now: SystemTime, limit: usize) -> Result<u64, RepoError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.maintenance(|mut client| async move {
            // One transaction: the second statement sees what the first deleted.
            let tx = client.transaction().await?;
            let rows = tx.query(PURGE_EXPIRED_TOKENS, &[&now, &limit]).await?;
            let sessions: Vec<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
            tx.execute(PURGE_EMPTY_SESSIONS, &[&sessions]).await?;
            tx.commit().await?;
            Ok(rows.len() as u64)
        })
        .await
    }
}
