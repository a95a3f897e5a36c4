//! The rules and workflows of authd, independent of HTTP and of the storage backend.
//!
//! | Service | Owns |
//! |---|---|
//! | [`Accounts`] | registering, verifying the email, resending the verification email — and the verification link it issues; deleting one's own account |
//! | [`EmailChanges`] | changing the address: the confirmation link (and the stamp that makes older ones stale), the notice |
//! | [`Removal`] | deleting an account with everything it has, for its user or an operator |
//! | [`Admin`] | the operator's actions (SPEC §10), each logged on `authd::audit` |
//! | [`Sessions`] | logging in, refreshing (rotation with reuse detection), logging out |
//! | [`Passwords`] | forgotten passwords (reset links, and the stamp that makes older ones stale) and password changes |
//! | [`AccessTokens`] | checking the bearer access tokens authd issued, their sessions still live |
//! | [`Revocations`] | which sessions have ended, as this replica knows it |
//! | [`ClientLimits`] | the per-client limit of the password and email routes |
//! | [`Health`] | readiness and the gauges of `/metrics` |
//! | [`Letters`] | which service writes which queued email |
//!
//! Shared pieces: [`Limiter`] (one rate-limit rule for every limit), [`LoginLimits`] (the
//! password-guessing limits of login and password change), [`Mailroom`] (queuing email). Each service has one error enum: domain outcomes a client may act on, plus
//! [`ServerError`] for what is not the client's doing (a full CPU pool: shed with 503;
//! storage failing: 503, cause logged; a bug: 500).

mod accounts;
mod admin;
mod bearer;
mod client_limits;
mod email_change;
mod health;
mod letters;
mod login_limits;
mod mailroom;
mod passwords;
mod rate_limit;
mod removal;
mod revocations;
mod sessions;
mod shared;

pub use accounts::{AccountError, Accounts};
pub use admin::{Admin, AdminError, UserView};
pub use bearer::{AccessTokens, BearerError, Caller};
pub use client_limits::{ClientLimitError, ClientLimits};
pub use email_change::{EmailChangeError, EmailChanges};
pub use health::{Health, Readiness};
pub use letters::Letters;
pub use login_limits::{LoginLimits, Recheck};
pub use mailroom::Mailroom;
pub use passwords::{PasswordError, Passwords};
pub use rate_limit::{Exceeded, Limiter, RateLimit};
pub use removal::Removal;
pub use revocations::{Revocations, Stale};
pub use sessions::{SessionError, Sessions, TokenPair};
pub(crate) use shared::server_error_conversions;
pub use shared::{Bug, ServerError, Shared};
