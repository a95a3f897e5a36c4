//! The PostgreSQL repositories: users, refresh-token families, the outbox.
//!
//! Every operation takes a pooled connection (bounded wait) and runs prepared statements,
//! the whole bounded by one deadline, so a stalled database yields
//! [`RepoError::Unavailable`] (a 503) instead of a hung request. Multi-row changes are
//! single statements (CTEs) or transactions, which is what makes them atomic.

pub mod migrate;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use crate::config::DatabaseUrl;
use crate::domain::{Email, PasswordHash, TokenHash, User, UserId};
use crate::metrics::Metrics;
use crate::repo::{
    CreateUserError, Dependency, NewRefreshToken, NewUser, Outbox, OutboxItem, OutgoingEmail,
    RefreshTokens, RepoError, Rotation, Users,
};

/// The PostgreSQL store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Bound on one whole operation: pool wait, statements, commit.
    deadline: Duration,
    metrics: Arc<Metrics>,
}

fn unavailable(e: impl std::fmt::Display) -> RepoError {
    RepoError::Unavailable(format!("postgres: {e}"))
}

/// A driver error for the log: the server's message and SQLSTATE when there is one, but
/// never its `detail`, which can quote row values (an email, a hash); otherwise the error
/// and its cause (e.g. why a TLS handshake failed).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{} ({})", db.message(), db.code().code()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

fn db_error(e: tokio_postgres::Error) -> RepoError {
    unavailable(describe(&e))
}

impl PgStore {
    /// Builds the pool. Connections are opened on demand, so this does not touch the server.
    pub fn new(
        url: &DatabaseUrl,
        size: usize,
        deadline: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<PgStore, String> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        // The server gives up on a statement, or a lock wait, when authd would: a request
        // that timed out here must not leave its query running and its locks held there.
        let mut config = url.pg_config();
        let ms = deadline.as_millis();
        let limits = format!("-c statement_timeout={ms} -c lock_timeout={ms}");
        let options = match config.get_options() {
            Some(existing) => format!("{existing} {limits}"),
            None => limits,
        };
        config.options(&options);
        let manager = match url.tls() {
            Some(tls) => Manager::from_config(
                config,
                MakeRustlsConnect::new((*tls).clone()),
                manager_config,
            ),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(deadline))
            .create_timeout(Some(deadline))
            .recycle_timeout(Some(deadline))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot build the connection pool: {e}"))?;
        Ok(PgStore {
            pool,
            deadline,
            metrics,
        })
    }

    /// Runs `op` with a pooled connection, within the deadline.
    async fn with<'a, T, F, Fut>(&'a self, op: F) -> Result<T, RepoError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T, RepoError>> + 'a,
    {
        let work = async {
            let client = match self.pool.get().await {
                Ok(client) => client,
                Err(deadpool_postgres::PoolError::Timeout(_)) => {
                    self.metrics.dependency_error("postgres", "pool_timeout");
                    return Err(unavailable("no pooled connection within AUTH_DB_TIMEOUT"));
                }
                Err(deadpool_postgres::PoolError::Backend(e)) => {
                    self.metrics.dependency_error("postgres", "error");
                    return Err(db_error(e));
                }
                Err(other) => {
                    self.metrics.dependency_error("postgres", "error");
                    return Err(unavailable(other));
                }
            };
            let result = op(client).await;
            if result.is_err() {
                self.metrics.dependency_error("postgres", "error");
            }
            result
        };
        tokio::time::timeout(self.deadline, work)
            .await
            .unwrap_or_else(|_| {
                self.metrics.dependency_error("postgres", "timeout");
                Err(unavailable("timed out"))
            })
    }
}

fn user_from_row(row: &tokio_postgres::Row) -> Result<User, RepoError> {
    let email: String = row.get("email");
    Ok(User {
        id: UserId::from_uuid(row.get("id")),
        email: Email::parse(&email)
            .map_err(|e| unavailable(format!("stored email is invalid: {e}")))?,
        password_hash: PasswordHash::from_stored(row.get("password_hash")),
        email_verified: row.get("email_verified"),
    })
}

/// The outbox row of an email: kind, user (when known), recipient.
fn outbox_columns(email: &OutgoingEmail) -> (&'static str, Option<Uuid>, &str) {
    match email {
        OutgoingEmail::Verification { user, to } => {
            ("verification", Some(user.as_uuid()), to.as_str())
        }
        OutgoingEmail::PasswordReset { to } => ("password_reset", None, to.as_str()),
    }
}

#[async_trait]
impl Users for PgStore {
    async fn create(&self, user: NewUser) -> Result<User, CreateUserError> {
        let result = self
            .with(|client| async move {
                // One statement: the user and their first email are stored together or not at all.
                let stmt = client
                    .prepare_cached(
                        "WITH new_user AS (
                             INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) RETURNING id
                         )
                                                  INSERT INTO outbox (kind, user_id, recipient, created_at, due_at)
                         SELECT 'verification', id, $2, $4, $4 FROM new_user",
                    )
                    .await
                    .map_err(db_error)?;
                // Outbox times come from authd's clock, as `claim` compares them with it.
                let now = SystemTime::now();
                                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&user.id.as_uuid(), &user.email.as_str(), &user.password_hash.as_str(), &now];
                match client.execute(&stmt, &params).await {
                    Ok(_) => Ok(Ok(User {
                        id: user.id,
                        email: user.email,
                        password_hash: user.password_hash,
                        email_verified: false,
                    })),
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Err(CreateUserError::EmailTaken)),
                    Err(e) => Err(db_error(e)),
                }
            })
            .await;
        match result {
            Ok(inner) => inner,
            Err(e) => Err(CreateUserError::Repo(e)),
        }
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        self.with(|client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT id, email, password_hash, email_verified FROM users WHERE lower(email) = lower($1)",
                )
                .await
                .map_err(db_error)?;
            let row = client.query_opt(&stmt, &[&email.as_str()]).await.map_err(db_error)?;
            row.as_ref().map(user_from_row).transpose()
        })
        .await
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        self.with(|client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT id, email, password_hash, email_verified FROM users WHERE id = $1",
                )
                .await
                .map_err(db_error)?;
            let row = client
                .query_opt(&stmt, &[&id.as_uuid()])
                .await
                .map_err(db_error)?;
            row.as_ref().map(user_from_row).transpose()
        })
        .await
    }

    async fn mark_verified(&self, id: UserId) -> Result<(), RepoError> {
        self.with(|client| async move {
            let stmt = client
                .prepare_cached(
                    "UPDATE users SET email_verified = true, updated_at = now() WHERE id = $1 AND NOT email_verified",
                )
                .await
                .map_err(db_error)?;
            client.execute(&stmt, &[&id.as_uuid()]).await.map_err(db_error)?;
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
    ) -> Result<bool, RepoError> {
        let current = current.clone();
        self.with(|mut client| async move {
            let tx = client.transaction().await.map_err(db_error)?;
            let updated = tx
                .execute(
                    "UPDATE users SET password_hash = $2, email_verified = email_verified OR $3, updated_at = now()
                     WHERE id = $1 AND password_hash = $4",
                    &[&id.as_uuid(), &new.as_str(), &verified, &current.as_str()],
                )
                .await
                .map_err(db_error)?;
            if updated != 1 {
                // No such user, or another change won the race: change nothing.
                return Ok(false);
            }
            tx.execute(
                "UPDATE refresh_families SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                &[&id.as_uuid()],
            )
            .await
            .map_err(db_error)?;
                        tx.commit().await.map_err(db_error)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl RefreshTokens for PgStore {
    async fn start_family(
        &self,
        user: UserId,
        password: &PasswordHash,
        first: NewRefreshToken,
    ) -> Result<bool, RepoError> {
        let password = password.clone();
        self.with(|client| async move {
            // FOR SHARE on the user row: a concurrent password change (which updates that
            // row, then revokes the families) either waits for this session to exist and
            // then revokes it, or commits first and this finds the password changed.
            let stmt = client
                .prepare_cached(
                    "WITH account AS (
                         SELECT id FROM users WHERE id = $2 AND password_hash = $5 FOR SHARE
                     ), family AS (
                         INSERT INTO refresh_families (id, user_id) SELECT $1, id FROM account RETURNING id
                     )
                     INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
                     SELECT $3, id, $4 FROM family",
                )
                .await
                .map_err(db_error)?;
            let family = Uuid::new_v4();
            let hash: &[u8] = first.hash.as_bytes();
            let started = client
                .execute(&stmt, &[&family, &user.as_uuid(), &hash, &first.expires_at, &password.as_str()])
                .await
                .map_err(db_error)?;
            Ok(started == 1)
        })
        .await
    }

    async fn rotate(
        &self,
        presented: &TokenHash,
        successor: NewRefreshToken,
        now: SystemTime,
        grace: Duration,
    ) -> Result<Rotation, RepoError> {
        let presented = *presented;
        self.with(|client| async move {
            // The UPDATE takes the row lock; a concurrent rotation of the same token waits,
            // re-checks `rotated_at IS NULL`, finds it false and claims nothing. So exactly
            // one caller gets a row back, and its successor is inserted in the same statement.
            let claim = client
                .prepare_cached(
                    "WITH claimed AS (
                         UPDATE refresh_tokens t SET rotated_at = $2
                         FROM refresh_families f
                         WHERE t.token_hash = $1 AND f.id = t.family_id
                           AND t.rotated_at IS NULL AND f.revoked_at IS NULL AND t.expires_at > $2
                         RETURNING t.family_id, f.user_id
                     ), successor AS (
                         INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
                         SELECT $3, family_id, $4 FROM claimed
                     )
                     SELECT user_id FROM claimed",
                )
                .await
                .map_err(db_error)?;
            let presented_bytes: &[u8] = presented.as_bytes();
            let successor_bytes: &[u8] = successor.hash.as_bytes();
            let row = client
                .query_opt(&claim, &[&presented_bytes, &now, &successor_bytes, &successor.expires_at])
                .await
                .map_err(db_error)?;
            if let Some(row) = row {
                return Ok(Rotation::Rotated { user: UserId::from_uuid(row.get(0)) });
            }
            // Not rotated: say why. Reuse past the grace revokes the family in the same
            // statement that detects it.
            let classify = client
                .prepare_cached(
                    "WITH token AS (
                         SELECT t.family_id, t.rotated_at, t.expires_at, f.revoked_at
                         FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
                         WHERE t.token_hash = $1
                     ), revoke AS (
                         UPDATE refresh_families SET revoked_at = $2
                         WHERE id = (SELECT family_id FROM token)
                           AND revoked_at IS NULL
                           AND (SELECT rotated_at FROM token) IS NOT NULL
                           AND ($3::bigint = 0 OR (SELECT rotated_at FROM token) < $2::timestamptz - $3::bigint * interval '1 millisecond')
                         RETURNING id
                     )
                     SELECT rotated_at, expires_at, revoked_at, EXISTS (SELECT 1 FROM revoke) FROM token",
                )
                .await
                .map_err(db_error)?;
            let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
            let row = client.query_opt(&classify, &[&presented_bytes, &now, &grace_ms]).await.map_err(db_error)?;
            let Some(row) = row else { return Ok(Rotation::Unknown) };
            let rotated_at: Option<SystemTime> = row.get(0);
            let expires_at: SystemTime = row.get(1);
            let revoked_at: Option<SystemTime> = row.get(2);
            let revoked_now: bool = row.get(3);
            Ok(if revoked_now {
                Rotation::ReuseDetected
            } else if revoked_at.is_some() {
                Rotation::Revoked
            } else if rotated_at.is_some() {
                Rotation::ReusedWithinGrace
            } else if expires_at <= now {
                Rotation::Expired
            } else {
                // Current, live and unrotated, yet not claimed: only possible if the token
                // changed twice between our two statements. Refuse without side effects.
                Rotation::Unknown
            })
        })
        .await
    }

    async fn revoke_family(&self, token: &TokenHash) -> Result<(), RepoError> {
        let token = *token;
        self.with(|client| async move {
            let stmt = client
                .prepare_cached(
                    "UPDATE refresh_families SET revoked_at = now()
                     WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL",
                )
                .await
                .map_err(db_error)?;
            let hash: &[u8] = token.as_bytes();
            client.execute(&stmt, &[&hash]).await.map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn purge_expired(&self, now: SystemTime) -> Result<u64, RepoError> {
        self.with(|client| async move {
            let purged = client
                .execute("DELETE FROM refresh_tokens WHERE expires_at <= $1", &[&now])
                .await
                .map_err(db_error)?;
            client
                .execute(
                    "DELETE FROM refresh_families f
                     WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)",
                    &[],
                )
                .await
                .map_err(db_error)?;
            Ok(purged)
        })
        .await
    }
}

#[async_trait]
impl Outbox for PgStore {
    async fn enqueue(&self, email: OutgoingEmail) -> Result<(), RepoError> {
        self.with(|client| async move {
            let stmt = client
                .prepare_cached(
                    "INSERT INTO outbox (kind, user_id, recipient, created_at, due_at) VALUES ($1, $2, $3, $4, $4)",
                )
                .await
                .map_err(db_error)?;
                        let (kind, user, to) = outbox_columns(&email);
            client.execute(&stmt, &[&kind, &user, &to, &SystemTime::now()]).await.map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn claim(
        &self,
        limit: usize,
        lease: Duration,
        now: SystemTime,
    ) -> Result<Vec<OutboxItem>, RepoError> {
        self.with(|client| async move {
            // SKIP LOCKED: concurrent workers (other replicas) each take different rows.
            let stmt = client
                .prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, due_at = $2
                     WHERE id IN (
                         SELECT id FROM outbox WHERE state = 'pending' AND due_at <= $1
                         ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED
                     )
                     RETURNING id, kind, user_id, recipient, attempts - 1",
                )
                .await
                .map_err(db_error)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = client
                .query(&stmt, &[&now, &(now + lease), &limit])
                .await
                .map_err(db_error)?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows {
                let to: String = row.get(3);
                let to = Email::parse(&to)
                    .map_err(|e| unavailable(format!("stored recipient is invalid: {e}")))?;
                let user: Option<Uuid> = row.get(2);
                let email = match (row.get::<_, &str>(1), user) {
                    ("verification", Some(user)) => OutgoingEmail::Verification {
                        user: UserId::from_uuid(user),
                        to,
                    },
                    ("password_reset", _) => OutgoingEmail::PasswordReset { to },
                    (kind, _) => {
                        return Err(unavailable(format!("unexpected outbox row of kind {kind}")))
                    }
                };
                let id: i64 = row.get(0);
                let attempts: i32 = row.get(4);
                items.push(OutboxItem {
                    id: u64::try_from(id).unwrap_or_default(),
                    email,
                    attempts: u32::try_from(attempts).unwrap_or_default(),
                });
            }
            Ok(items)
        })
        .await
    }

    async fn mark_sent(&self, id: u64) -> Result<(), RepoError> {
        self.set_state(
            id,
            "UPDATE outbox SET state = 'sent', sent_at = now() WHERE id = $1",
        )
        .await
    }

    async fn retry_at(&self, id: u64, at: SystemTime) -> Result<(), RepoError> {
        let id = i64::try_from(id).unwrap_or_default();
        self.with(|client| async move {
            client
                .execute(
                    "UPDATE outbox SET due_at = $2 WHERE id = $1 AND state = 'pending'",
                    &[&id, &at],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn mark_skipped(&self, id: u64) -> Result<(), RepoError> {
        self.set_state(
            id,
            "UPDATE outbox SET state = 'skipped', sent_at = now() WHERE id = $1",
        )
        .await
    }

    async fn mark_failed(&self, id: u64) -> Result<(), RepoError> {
        self.set_state(id, "UPDATE outbox SET state = 'failed' WHERE id = $1")
            .await
    }

    async fn purge(
        &self,
        sent_before: SystemTime,
        failed_before: SystemTime,
    ) -> Result<u64, RepoError> {
        self.with(|client| async move {
            client
                .execute(
                    "DELETE FROM outbox WHERE (state IN ('sent', 'skipped') AND sent_at < $1) OR (state = 'failed' AND created_at < $2)",
                    &[&sent_before, &failed_before],
                )
                .await
                .map_err(db_error)
        })
        .await
    }

    async fn backlog(&self, now: SystemTime) -> Result<(u64, Duration), RepoError> {
        self.with(|client| async move {
            let row = client
                .query_one(
                    "SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'",
                    &[],
                )
                .await
                .map_err(db_error)?;
            let count: i64 = row.get(0);
            let oldest: Option<SystemTime> = row.get(1);
            let age = oldest.map_or(Duration::ZERO, |o| {
                now.duration_since(o).unwrap_or_default()
            });
            Ok((u64::try_from(count).unwrap_or_default(), age))
        })
        .await
    }
}

impl PgStore {
    async fn set_state(&self, id: u64, sql: &'static str) -> Result<(), RepoError> {
        let id = i64::try_from(id).unwrap_or_default();
        self.with(|client| async move {
            client.execute(sql, &[&id]).await.map_err(db_error)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Dependency for PgStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.with(|client| async move {
            client.simple_query("SELECT 1").await.map_err(db_error)?;
            Ok(())
        })
        .await
    }
}
