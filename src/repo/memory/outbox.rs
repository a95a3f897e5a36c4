//! [`Outbox`] in memory.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::db::OutboxState;
use super::MemoryDb;
use crate::domain::Email;
use crate::repo::{Outbox, OutboxItem, OutgoingEmail, RepoError};

impl MemoryDb {
    fn set_state(&self, id: u64, state: OutboxState) -> Result<(), RepoError> {
        if let Some(row) = self.lock()?.outbox.get_mut(&id) {
            row.state = state;
        }
        Ok(())
    }
}

#[async_trait]
impl Outbox for MemoryDb {
    async fn enqueue(&self, emails: &[OutgoingEmail], now: SystemTime) -> Result<(), RepoError> {
        let mut tables = self.lock()?;
        for email in emails {
            tables.push_outbox(Some(email.clone()), now);
        }
        Ok(())
    }

    async fn request_reset(&self, to: &Email, now: SystemTime) -> Result<(), RepoError> {
        let mut tables = self.lock()?;
        let user = tables.by_email.get(to).copied();
        let email = user.map(|user| OutgoingEmail::PasswordReset {
            user,
            to: to.clone(),
        });
        tables.push_outbox(email, now);
        Ok(())
    }

    async fn drop_orphans(&self, limit: usize) -> Result<u64, RepoError> {
        let mut tables = self.lock()?;
        let orphans: Vec<u64> = tables
            .outbox
            .iter()
            .filter(|(_, r)| r.email.is_none() && matches!(r.state, OutboxState::Pending { .. }))
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        for id in &orphans {
            tables.outbox.remove(id);
        }
        Ok(orphans.len() as u64)
    }

    async fn claim(
        &self,
        limit: usize,
        lease: Duration,
        now: SystemTime,
    ) -> Result<Vec<OutboxItem>, RepoError> {
        let mut tables = self.lock()?;
        let mut claimed = Vec::new();
        for (id, row) in tables.outbox.iter_mut() {
            if claimed.len() >= limit {
                break;
            }
            let Some(email) = &row.email else {
                continue;
            };
            if matches!(row.state, OutboxState::Pending { due } if due <= now) {
                claimed.push(OutboxItem {
                    id: *id,
                    email: email.clone(),
                    attempts: row.attempts,
                });
                row.attempts += 1;
                row.state = OutboxState::Pending { due: now + lease };
            }
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, id: u64) -> Result<(), RepoError> {
        // Sent rows are of no further use in memory; PostgreSQL keeps them for a while.
        self.lock()?.outbox.remove(&id);
        Ok(())
    }

    async fn retry_at(&self, id: u64, at: SystemTime) -> Result<(), RepoError> {
        self.set_state(id, OutboxState::Pending { due: at })
    }

    async fn mark_skipped(&self, id: u64) -> Result<(), RepoError> {
        self.mark_sent(id).await
    }

    async fn mark_failed(&self, id: u64) -> Result<(), RepoError> {
        self.set_state(id, OutboxState::Failed)
    }

    async fn purge(
        &self,
        _sent_before: SystemTime,
        failed_before: SystemTime,
        limit: usize,
    ) -> Result<u64, RepoError> {
        // Sent rows are dropped as soon as they are sent; failed ones age out here.
        let mut tables = self.lock()?;
        let old: Vec<u64> = tables
            .outbox
            .iter()
            .filter(|(_, r)| matches!(r.state, OutboxState::Failed) && r.created_at < failed_before)
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        for id in &old {
            tables.outbox.remove(id);
        }
        Ok(old.len() as u64)
    }

    async fn backlog(&self, now: SystemTime) -> Result<(u64, Duration), RepoError> {
        let tables = self.lock()?;
        let pending = tables.outbox.values().filter(|r| {
            matches!(r.state, OutboxState::Pending { .. })
                && matches!(r.email, Some(OutgoingEmail::Verification { .. }))
        });
        let (count, oldest) = pending.fold((0u64, None::<SystemTime>), |(n, oldest), r| {
            (
                n + 1,
                Some(oldest.map_or(r.created_at, |o| o.min(r.created_at))),
            )
        });
        let age = oldest.map_or(Duration::ZERO, |o| {
            now.duration_since(o).unwrap_or_default()
        });
        Ok((count, age))
    }
}
