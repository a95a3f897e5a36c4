//! Single-use tokens (email verification, password reset) by the hash of the token, each
//! kind in its own key space, with a lifetime.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{KeyValue, RepoError};
use crate::domain::{Reset, ResetGrant, TokenHash, UserId, Verification};

/// A kind of one-time token: its key space and what it stands for.
pub trait OneTimeKind: Send + Sync + 'static {
    /// The key-space segment; no two kinds share one.
    const SEGMENT: &'static str;
    type Subject: Subject;
}

impl OneTimeKind for Verification {
    const SEGMENT: &'static str = "verify";
    type Subject = UserId;
}

impl OneTimeKind for Reset {
    const SEGMENT: &'static str = "reset";
    type Subject = ResetGrant;
}

/// What a token stands for, as stored text.
pub trait Subject: Copy + Send + Sync + Sized + 'static {
    fn encode(&self) -> String;
    fn decode(text: &str) -> Option<Self>;
}

impl Subject for UserId {
    fn encode(&self) -> String {
        self.to_string()
    }

    fn decode(text: &str) -> Option<UserId> {
        uuid::Uuid::parse_str(text).ok().map(UserId::from_uuid)
    }
}

/// `<uuid>:<stamp in hex>`.
impl Subject for ResetGrant {
    fn encode(&self) -> String {
        format!("{}:{:016x}", self.user, self.stamp)
    }

    fn decode(text: &str) -> Option<ResetGrant> {
        let (user, stamp) = text.split_once(':')?;
        Some(ResetGrant {
            user: UserId::decode(user)?,
            stamp: u64::from_str_radix(stamp, 16).ok()?,
        })
    }
}

/// The one-time tokens of kind `K`.
pub struct OneTimeTokens<K> {
    store: Arc<dyn KeyValue>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for OneTimeTokens<K> {
    fn clone(&self) -> Self {
        OneTimeTokens {
            store: Arc::clone(&self.store),
            kind: PhantomData,
        }
    }
}

impl<K: OneTimeKind> OneTimeTokens<K> {
    pub fn new(store: Arc<dyn KeyValue>) -> OneTimeTokens<K> {
        OneTimeTokens {
            store,
            kind: PhantomData,
        }
    }

    fn key(hash: &TokenHash<K>) -> String {
        format!("{}:{}", K::SEGMENT, hash.to_hex())
    }

    /// Stores `hash → subject` for `ttl`.
    pub async fn put(
        &self,
        hash: &TokenHash<K>,
        subject: K::Subject,
        ttl: Duration,
    ) -> Result<(), RepoError> {
        self.store
            .set(&Self::key(hash), &subject.encode(), ttl)
            .await
    }

    /// The subject of a live token, without spending it.
    pub async fn peek(&self, hash: &TokenHash<K>) -> Result<Option<K::Subject>, RepoError> {
        let text = self.store.get(&Self::key(hash)).await?;
        Ok(text.as_deref().and_then(K::Subject::decode))
    }

    /// Returns the subject and deletes the token in one atomic step, so a token works once
    /// even under concurrent use. `None` for unknown, expired or already used tokens.
    pub async fn take(&self, hash: &TokenHash<K>) -> Result<Option<K::Subject>, RepoError> {
        let text = self.store.take(&Self::key(hash)).await?;
        Ok(text.as_deref().and_then(K::Subject::decode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_through_their_text() {
        let user = UserId::random();
        assert_eq!(UserId::decode(&user.encode()), Some(user));
        let grant = ResetGrant {
            user,
            stamp: u64::MAX - 7,
        };
        assert_eq!(ResetGrant::decode(&grant.encode()), Some(grant));
        assert_eq!(ResetGrant::decode(&user.encode()), None);
        assert_eq!(UserId::decode("not a uuid"), None);
    }
}
