//! [`Outbox`] on PostgreSQL: claims are `FOR UPDATE SKIP LOCKED` leases.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use uuid::Uuid;

use super::PgStore;
use crate::domain::{Email, UserId};
use crate::repo::{Outbox, OutboxItem, OutgoingEmail, RepoError};

/// Every email in one statement: all queued or none.
pub(super) const ENQUEUE: &str = "
    INSERT INTO outbox (kind, user_id, recipient, stamp, created_at, due_at)
    SELECT kind, user_id, recipient, stamp, $5, $5
    FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bigint[])
        WITH ORDINALITY AS e(kind, user_id, recipient, stamp, n)
    ORDER BY n";

/// The columns of emails, as [`ENQUEUE`] takes them (`$1`–`$4`).
pub(super) struct EnqueueColumns<'a> {
    pub kinds: Vec<&'static str>,
    pub users: Vec<Uuid>,
    pub recipients: Vec<&'a str>,
    pub stamps: Vec<Option<i64>>,
}

impl<'a> EnqueueColumns<'a> {
    pub fn of(emails: &'a [OutgoingEmail]) -> EnqueueColumns<'a> {
        let columns: Vec<_> = emails.iter().map(outbox_columns).collect();
        EnqueueColumns {
            kinds: columns.iter().map(|c| c.0).collect(),
            users: columns.iter().map(|c| c.1).collect(),
            recipients: columns.iter().map(|c| c.2).collect(),
            stamps: columns.iter().map(|c| c.3).collect(),
        }
    }
}

/// The account is looked up in the same statement: one row is written whether or not
/// there is one (same work, same time); without one, `user_id` is NULL.
const REQUEST_RESET: &str = "
    INSERT INTO outbox (kind, user_id, recipient, created_at, due_at)
    VALUES ('password_reset', (SELECT id FROM users WHERE lower(email) = lower($1)), $1, $2, $2)";

/// Requests that name no account, by `outbox_orphans_idx` — and still have none: a
/// replica of an older version queued every request without its account.
const DROP_ORPHANS: &str = "
    DELETE FROM outbox WHERE id IN (
        SELECT o.id FROM outbox o
        WHERE o.state = 'pending' AND o.user_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower(o.recipient))
        LIMIT $1
    )";

/// SKIP LOCKED: concurrent workers (other replicas) each take different rows. The claim
/// pushes `due_at` to the end of the lease. Only rows for an account (`outbox_due_idx`):
/// requests for addresses without one never stand in front of real email.
const CLAIM: &str = "
    UPDATE outbox SET attempts = attempts + 1, due_at = $2
    WHERE id IN (
        SELECT id FROM outbox WHERE state = 'pending' AND user_id IS NOT NULL AND due_at <= $1
        ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    RETURNING id, kind, user_id, recipient, attempts - 1, stamp";

const MARK_SENT: &str = "UPDATE outbox SET state = 'sent', sent_at = now() WHERE id = $1";
const MARK_SKIPPED: &str = "UPDATE outbox SET state = 'skipped', sent_at = now() WHERE id = $1";
const MARK_FAILED: &str = "UPDATE outbox SET state = 'failed' WHERE id = $1";
const RETRY_AT: &str = "UPDATE outbox SET due_at = $2 WHERE id = $1 AND state = 'pending'";

/// One batch of old sent rows, by `outbox_sent_idx`.
const PURGE_SENT: &str = "
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE state IN ('sent', 'skipped') AND sent_at < $1 LIMIT $2
    )";

/// One batch of old failed rows, by `outbox_failed_idx`.
const PURGE_FAILED: &str = "
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE state = 'failed' AND created_at < $1 LIMIT $2
    )";

/// Verification emails only: see [`Outbox::backlog`].
const BACKLOG: &str = "
    SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending' AND kind = 'verification'";

/// The outbox row of an email: kind, user, recipient as queued.
pub(super) fn outbox_columns(email: &OutgoingEmail) -> (&'static str, Uuid, &str, Option<i64>) {
    let (kind, user, to, stamp) = match email {
        OutgoingEmail::Verification { user, to } => ("verification", user, to, None),
        OutgoingEmail::PasswordReset { user, to } => ("password_reset", user, to, None),
        OutgoingEmail::EmailChange { user, to, stamp } => {
            ("email_change", user, to, Some(*stamp as i64))
        }
        OutgoingEmail::EmailChangeNotice { user, to } => ("email_change_notice", user, to, None),
        OutgoingEmail::EmailChanged { user, to } => ("email_changed", user, to, None),
    };
    (kind, user.as_uuid(), to.as_str(), stamp)
}

fn item_from_row(row: &tokio_postgres::Row) -> Result<OutboxItem, RepoError> {
    let to = Email::parse(row.get(3))
        .map_err(|_| RepoError::Corrupt("an outbox recipient is invalid"))?;
    let user = row
        .get::<_, Option<Uuid>>(2)
        .map(UserId::from_uuid)
        .ok_or(RepoError::Corrupt("a claimed outbox row names no account"))?;
    let email = match row.get::<_, &str>(1) {
        "verification" => OutgoingEmail::Verification { user, to },
        "password_reset" => OutgoingEmail::PasswordReset { user, to },
        "email_change" => OutgoingEmail::EmailChange {
            user,
            to,
            stamp: row
                .get::<_, Option<i64>>(5)
                .ok_or(RepoError::Corrupt("an email-change row has no stamp"))?
                as u64,
        },
        "email_change_notice" => OutgoingEmail::EmailChangeNotice { user, to },
        "email_changed" => OutgoingEmail::EmailChanged { user, to },
        _ => return Err(RepoError::Corrupt("an outbox row has an unknown kind")),
    };
    let id: i64 = row.get(0);
    let attempts: i32 = row.get(4);
    Ok(OutboxItem {
        id: u64::try_from(id).unwrap_or_default(),
        email,
        attempts: u32::try_from(attempts).unwrap_or_default(),
    })
}

impl PgStore {
    async fn update_row(
        &self,
        sql: &'static str,
        id: u64,
        at: Option<SystemTime>,
    ) -> Result<(), RepoError> {
        let id = i64::try_from(id).unwrap_or_default();
        self.with(|client| async move {
            let stmt = client.prepare_cached(sql).await?;
            match at {
                Some(at) => client.execute(&stmt, &[&id, &at]).await?,
                None => client.execute(&stmt, &[&id]).await?,
            };
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Outbox for PgStore {
    async fn enqueue(&self, emails: &[OutgoingEmail], now: SystemTime) -> Result<(), RepoError> {
        let c = EnqueueColumns::of(emails);
        self.with(|client| async move {
            let stmt = client.prepare_cached(ENQUEUE).await?;
            client
                .execute(&stmt, &[&c.kinds, &c.users, &c.recipients, &c.stamps, &now])
                .await?;
            Ok(())
        })
        .await
    }

    async fn request_reset(&self, to: &Email, now: SystemTime) -> Result<(), RepoError> {
        self.with(|client| async move {
            let stmt = client.prepare_cached(REQUEST_RESET).await?;
            client.execute(&stmt, &[&to.as_str(), &now]).await?;
            Ok(())
        })
        .await
    }

    async fn drop_orphans(&self, limit: usize) -> Result<u64, RepoError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|client| async move {
            let stmt = client.prepare_cached(DROP_ORPHANS).await?;
            Ok(client.execute(&stmt, &[&limit]).await?)
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
            let stmt = client.prepare_cached(CLAIM).await?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = client.query(&stmt, &[&now, &(now + lease), &limit]).await?;
            rows.iter().map(item_from_row).collect()
        })
        .await
    }

    async fn mark_sent(&self, id: u64) -> Result<(), RepoError> {
        self.update_row(MARK_SENT, id, None).await
    }

    async fn retry_at(&self, id: u64, at: SystemTime) -> Result<(), RepoError> {
        self.update_row(RETRY_AT, id, Some(at)).await
    }

    async fn mark_skipped(&self, id: u64) -> Result<(), RepoError> {
        self.update_row(MARK_SKIPPED, id, None).await
    }

    async fn mark_failed(&self, id: u64) -> Result<(), RepoError> {
        self.update_row(MARK_FAILED, id, None).await
    }

    async fn purge(
        &self,
        sent_before: SystemTime,
        failed_before: SystemTime,
        limit: usize,
    ) -> Result<u64, RepoError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.maintenance(|client| async move {
            let sent = client.execute(PURGE_SENT, &[&sent_before, &limit]).await?;
            // Failed rows only once no old sent row is left in this batch.
            let room = limit - i64::try_from(sent).unwrap_or(limit);
            let failed = match room {
                0 => 0,
                room => {
                    client
                        .execute(PURGE_FAILED, &[&failed_before, &room])
                        .await?
                }
            };
            Ok(sent + failed)
        })
        .await
    }

    async fn backlog(&self, now: SystemTime) -> Result<(u64, Duration), RepoError> {
        self.with(|client| async move {
            let row = client.query_one(BACKLOG, &[]).await?;
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
