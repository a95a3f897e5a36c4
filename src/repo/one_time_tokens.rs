//! Single-use tokens (email verification, password reset, email change) by the hash of
//! the token, each kind in its own key space, with a lifetime — and, per account, which
//! tokens it has, so that deleting the account deletes them too.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{KeyValue, RepoError};
use crate::domain::{
    Email, EmailChange, EmailChangeGrant, Reset, ResetGrant, TokenHash, UserId, Verification,
};

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

impl OneTimeKind for EmailChange {
    const SEGMENT: &'static str = "email-change";
    type Subject = EmailChangeGrant;
}

/// What a token stands for, as stored text, and whose it is.
pub trait Subject: Clone + Send + Sync + Sized + 'static {
    fn encode(&self) -> String;
    fn decode(text: &str) -> Option<Self>;
    fn owner(&self) -> UserId;
}

impl Subject for UserId {
    fn encode(&self) -> String {
        self.to_string()
    }

    fn decode(text: &str) -> Option<UserId> {
        uuid::Uuid::parse_str(text).ok().map(UserId::from_uuid)
    }

    fn owner(&self) -> UserId {
        *self
    }
}

/// `<uuid>:<stamp in hex>:<address>` (the address last: it may hold a `:`).
impl Subject for EmailChangeGrant {
    fn encode(&self) -> String {
        format!("{}:{:016x}:{}", self.user, self.stamp, self.to.as_str())
    }

    fn decode(text: &str) -> Option<EmailChangeGrant> {
        let (user, rest) = text.split_once(':')?;
        let (stamp, to) = rest.split_once(':')?;
        Some(EmailChangeGrant {
            user: UserId::decode(user)?,
            stamp: u64::from_str_radix(stamp, 16).ok()?,
            to: Email::parse(to).ok()?,
        })
    }

    fn owner(&self) -> UserId {
        self.user
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

    fn owner(&self) -> UserId {
        self.user
    }
}

/// The key of the set listing an account's one-time tokens, of every kind.
fn owner_key(user: UserId) -> String {
    format!("owned:{user}")
}

/// Every one-time token of an account, whatever its kind.
#[derive(Clone)]
pub struct OwnedTokens {
    store: Arc<dyn KeyValue>,
}

impl OwnedTokens {
    pub fn new(store: Arc<dyn KeyValue>) -> OwnedTokens {
        OwnedTokens { store }
    }

    /// Deletes every one-time token of `user` (an account being deleted). Tokens whose
    /// deletion fails are useless anyway: their account is gone.
    pub async fn forget(&self, user: UserId) -> Result<(), RepoError> {
        for key in self.store.take_members(&owner_key(user)).await? {
            self.store.delete(&key).await?;
        }
        Ok(())
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

    /// Stores `hash → subject` for `ttl`, then lists it among its owner's tokens. In that
    /// order, a deletion's [`OwnedTokens::forget`] running in between takes a list
    /// without it, and the token is listed anew for the writer's own check (see
    /// `service::letters`); if it cannot be listed, it is deleted again.
    pub async fn put(
        &self,
        hash: &TokenHash<K>,
        subject: K::Subject,
        ttl: Duration,
    ) -> Result<(), RepoError> {
        let key = Self::key(hash);
        self.store.set(&key, &subject.encode(), ttl).await?;
        let listed = self
            .store
            .add_member(&owner_key(subject.owner()), &key, ttl)
            .await;
        if listed.is_err() {
            let _ = self.store.delete(&key).await;
        }
        listed
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
