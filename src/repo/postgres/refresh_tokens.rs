//! [`RefreshTokens`] on PostgreSQL. A session is a row of `refresh_families`.

use std::time::SystemTime;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::domain::{PasswordHash, Refresh, SessionId, SessionInfo, TokenHash, UserAgent, UserId};
use crate::repo::{EndMark, NewRefreshToken, NewSession, RefreshTokens, RepoError, Rotation};

/// FOR SHARE on the user row: a concurrent password change, email change or disabling
/// (which updates that row, then revokes the sessions) either waits for this session to
/// exist and then revokes it, or commits first and this finds the password or address
/// changed or the account disabled.
const START_SESSION: &str = "
    WITH account AS (
        SELECT id FROM users
        WHERE id = $2 AND password_hash = $5 AND lower(email) = lower($7) AND NOT disabled
        FOR SHARE
    ), family AS (
        INSERT INTO refresh_families (id, user_id, user_agent) SELECT $1, id, $6 FROM account
        RETURNING id
    )
    INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
    SELECT $3, id, $4 FROM family";

/// What every way a session ends sets (see `sql/0007_sessions.sql`): when, for people,
/// and by which transaction, for the replicas reading ends back (`ended_since`).
macro_rules! end_session {
    () => {
        "revoked_at = now(), revoked_xid = pg_current_xact_id()::text::bigint"
    };
}

const REVOKE_SESSION: &str = concat!(
    "UPDATE refresh_families SET ",
    end_session!(),
    " WHERE id = $1 AND revoked_at IS NULL"
);

const REVOKE_SESSION_OF_TOKEN: &str = concat!(
    "UPDATE refresh_families SET ",
    end_session!(),
    " WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
      AND revoked_at IS NULL
    RETURNING id"
);

/// Only a live session (as `SESSIONS` lists them) is the user's to end.
const REVOKE_USER_SESSION: &str = concat!(
    "UPDATE refresh_families f SET ",
    end_session!(),
    " WHERE f.id = $1 AND f.user_id = $2 AND f.revoked_at IS NULL
      AND EXISTS (SELECT 1 FROM refresh_tokens t
                  WHERE t.family_id = f.id AND t.rotated_at IS NULL AND t.expires_at > $3)"
);

pub(super) const REVOKE_USER_SESSIONS: &str = concat!(
    "UPDATE refresh_families SET ",
    end_session!(),
    " WHERE user_id = $1 AND revoked_at IS NULL RETURNING id"
);

/// Live sessions: not ended, with a token that may still be spent. A session was last
/// used when its newest token was issued: the rotation's own insert says it, no extra
/// write on the refresh path.
const SESSIONS: &str = "
    SELECT f.id, f.created_at, max(t.created_at), f.user_agent
    FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id
    WHERE f.user_id = $1 AND f.revoked_at IS NULL
    GROUP BY f.id
    HAVING bool_or(t.rotated_at IS NULL AND t.expires_at > $2)
    ORDER BY f.created_at, f.id";

/// Every transaction below it has finished: an end committed later has a higher id.
const END_HORIZON: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

/// By `refresh_families_revoked_idx` and `session_ends_xid_idx` (the ends of deleted
/// accounts' sessions), in pages (keyset on the mark and the id).
const ENDED_SINCE: &str = "
    (SELECT revoked_xid, id FROM refresh_families
     WHERE revoked_xid >= $1 AND revoked_at >= $2
       AND ($3::bigint IS NULL OR (revoked_xid, id) > ($3, $4::uuid))
     ORDER BY revoked_xid, id LIMIT $5)
    UNION ALL
    (SELECT ended_xid, id FROM session_ends
     WHERE ended_xid >= $1 AND ended_at >= $2
       AND ($3::bigint IS NULL OR (ended_xid, id) > ($3, $4::uuid))
     ORDER BY ended_xid, id LIMIT $5)
    ORDER BY 1, 2 LIMIT $5";

/// One batch of the kept ends of deleted accounts' sessions no reader needs any more.
const PURGE_SESSION_ENDS: &str = "
    DELETE FROM session_ends WHERE id IN (
        SELECT id FROM session_ends WHERE keep_until <= $1 LIMIT $2
    )";

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
        session: NewSession,
        password: &PasswordHash,
    ) -> Result<bool, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(START_SESSION).await?;
            let hash: &[u8] = session.first.hash.as_bytes();
            let agent = session.user_agent.as_ref().map(UserAgent::as_str);
            let params: [&(dyn ToSql + Sync); 7] = [
                &session.id.as_uuid(),
                &session.user.as_uuid(),
                &hash,
                &session.first.expires_at,
                &password.as_str(),
                &agent,
                &session.email.as_str(),
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
        let (rotations, deadline) = self.rotations();
        rotations.rotate(presented, successor, now, deadline).await
    }

    async fn revoke_session(&self, id: SessionId, _now: SystemTime) -> Result<bool, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(REVOKE_SESSION).await?;
            Ok(client.execute(&stmt, &[&id.as_uuid()]).await? == 1)
        })
        .await
    }

    async fn revoke_session_of(
        &self,
        token: &TokenHash<Refresh>,
        _now: SystemTime,
    ) -> Result<Option<SessionId>, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(REVOKE_SESSION_OF_TOKEN).await?;
            let hash: &[u8] = token.as_bytes();
            let row = client.query_opt(&stmt, &[&hash]).await?;
            Ok(row.map(|r| SessionId::from_uuid(r.get(0))))
        })
        .await
    }

    async fn revoke_user_session(
        &self,
        user: UserId,
        id: SessionId,
        now: SystemTime,
    ) -> Result<bool, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(REVOKE_USER_SESSION).await?;
            let params: [&(dyn ToSql + Sync); 3] = [&id.as_uuid(), &user.as_uuid(), &now];
            Ok(client.execute(&stmt, &params).await? == 1)
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user: UserId,
        _now: SystemTime,
    ) -> Result<Vec<SessionId>, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(REVOKE_USER_SESSIONS).await?;
            let rows = client.query(&stmt, &[&user.as_uuid()]).await?;
            Ok(rows
                .iter()
                .map(|r| SessionId::from_uuid(r.get(0)))
                .collect())
        })
        .await
    }

    async fn sessions(&self, user: UserId, now: SystemTime) -> Result<Vec<SessionInfo>, RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(SESSIONS).await?;
            let rows = client.query(&stmt, &[&user.as_uuid(), &now]).await?;
            Ok(rows
                .iter()
                .map(|row| SessionInfo {
                    id: SessionId::from_uuid(row.get(0)),
                    created_at: row.get(1),
                    last_used_at: row.get(2),
                    user_agent: row.get::<_, Option<&str>>(3).and_then(UserAgent::parse),
                })
                .collect())
        })
        .await
    }

    async fn end_horizon(&self) -> Result<EndMark, RepoError> {
        self.watching(|client| async move {
            let stmt = client.prepare_cached(END_HORIZON).await?;
            Ok(EndMark(client.query_one(&stmt, &[]).await?.get(0)))
        })
        .await
    }

    async fn ended_since(
        &self,
        from: EndMark,
        not_before: SystemTime,
        after: Option<(EndMark, SessionId)>,
        limit: usize,
    ) -> Result<Vec<(EndMark, SessionId)>, RepoError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (after_mark, after_id) = match after {
            Some((mark, id)) => (Some(mark.0), Some(id.as_uuid())),
            None => (None, None),
        };
        self.watching(|client| async move {
            let stmt = client.prepare_cached(ENDED_SINCE).await?;
            let params: [&(dyn ToSql + Sync); 5] =
                [&from.0, &not_before, &after_mark, &after_id, &limit];
            let rows = client.query(&stmt, &params).await?;
            Ok(rows
                .iter()
                .map(|row| (EndMark(row.get(0)), SessionId::from_uuid(row.get(1))))
                .collect())
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
            let ends = tx.execute(PURGE_SESSION_ENDS, &[&now, &limit]).await?;
            tx.commit().await?;
            Ok((rows.len() as u64).max(ends))
        })
        .await
    }
}
