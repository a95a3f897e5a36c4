//! Typed values parsed once at the edge. After a handler, nothing takes a raw `String`:
//! services and repositories only see these types, so an unvalidated email or an
//! over-long password cannot reach them.

mod email;
mod password;
mod tokens;
mod user;

pub use email::{Email, EmailError};
pub use password::{Password, PasswordError, PasswordHash};
pub use tokens::{
    MalformedToken, OpaqueToken, Refresh, RefreshToken, Reset, ResetToken, TokenHash, Verification,
    VerificationToken,
};
pub use user::{User, UserId};
