//! Users as the services see them.

use std::fmt;
use std::time::SystemTime;

use super::{Email, PasswordHash};

/// A user's random identifier; the `sub` of their access tokens (never the email).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(uuid::Uuid);

impl UserId {
    pub fn random() -> UserId {
        UserId(uuid::Uuid::new_v4())
    }

    pub fn from_uuid(id: uuid::Uuid) -> UserId {
        UserId(id)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0.hyphenated())
    }
}

/// A stored account.
#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub email_verified: bool,
    /// An operator disabled it (SPEC §10): no login, refresh or bearer route.
    pub disabled: bool,
    pub created_at: SystemTime,
}

impl User {
    /// 64 bits of SHA-256 of the password hash and the address: what links sent by email
    /// (password reset, email change) are stamped with when they are issued and checked
    /// against when they are used, so that a change of either makes every older link
    /// stale. Reveals nothing usable about either.
    pub fn stamp(&self) -> u64 {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(self.password_hash.as_str().as_bytes());
        context.update(b"\n");
        context.update(self.email.as_str().as_bytes());
        let digest = context.finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        u64::from_be_bytes(first)
    }
}
