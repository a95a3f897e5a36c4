//! Which accounts are disabled, for the checks that must not ask PostgreSQL: a bearer
//! token whose session has ended is answered `403 account_disabled` rather than `401`
//! when its account is marked (SPEC §10), at the cost of one look-up on that refusal path
//! only. A mark lives as long as an access token issued before the disabling can.

use std::sync::Arc;
use std::time::Duration;

use super::{KeyValue, RepoError};
use crate::domain::UserId;

#[derive(Clone)]
pub struct DisabledMarks {
    store: Arc<dyn KeyValue>,
}

fn key(user: UserId) -> String {
    format!("disabled:{user}")
}

impl DisabledMarks {
    pub fn new(store: Arc<dyn KeyValue>) -> DisabledMarks {
        DisabledMarks { store }
    }

    pub async fn mark(&self, user: UserId, ttl: Duration) -> Result<(), RepoError> {
        self.store.set(&key(user), "1", ttl).await
    }

    pub async fn unmark(&self, user: UserId) -> Result<(), RepoError> {
        self.store.delete(&key(user)).await
    }

    pub async fn is_marked(&self, user: UserId) -> Result<bool, RepoError> {
        Ok(self.store.get(&key(user)).await?.is_some())
    }
}
