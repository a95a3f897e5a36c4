//! Typed values parsed once at the edge, and the pure rules about them. After a handler,
//! nothing takes a raw `String`: services and repositories only see these types, so an
//! unvalidated email or an over-long password cannot reach them.

mod client;
mod email;
mod password;
mod session;
mod tokens;
mod user;

pub use client::{Client, ClientAddr};
pub use email::{Email, EmailError};
pub use password::{CurrentPassword, Password, PasswordError, PasswordHash};
pub use session::{classify, SessionId, SessionInfo, TokenState, UserAgent, Verdict};
pub use tokens::{
    EmailChange, EmailChangeGrant, EmailChangeToken, MalformedToken, OpaqueToken, Refresh,
    RefreshToken, Reset, ResetGrant, ResetToken, TokenHash, Verification, VerificationToken,
};
pub use user::{User, UserId};
