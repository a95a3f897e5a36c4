//! The rules and workflows of authd, independent of HTTP and of the storage backend.
//!
//! - [`accounts`]: register, verify the email, resend the verification email.
//! - [`sessions`]: log in, refresh (rotation with reuse detection), log out.
//! - [`credentials`]: forgotten password (reset by email) and password change.
//!
//! Each service has one error enum: domain outcomes a client may act on, plus `Overloaded`
//! (a CPU pool is full: shed with 503) and `Unavailable` (storage failed: 503, cause logged).

pub mod accounts;
pub mod credentials;
pub mod sessions;

use std::time::{SystemTime, UNIX_EPOCH};

pub use accounts::{AccountError, Accounts};
pub use credentials::{Credentials, CredentialsError};
pub use sessions::{SessionError, Sessions, TokenPair};

/// Seconds since the Unix epoch, for JWT claims.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
