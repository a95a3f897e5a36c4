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
