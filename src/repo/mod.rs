//! Storage, split by capability. Repositories offer atomic operations; the services decide
//! what they mean.
//!
//! | Capability | Trait or type | Backends |
//! |---|---|---|
//! | accounts | [`Users`] | [`postgres`], [`memory`] |
//! | sessions and refresh tokens | [`RefreshTokens`] | [`postgres`], [`memory`] |
//! | the email outbox | [`Outbox`] | [`postgres`], [`memory`] |
//! | one-time tokens, and each account's | [`OneTimeTokens`], [`OwnedTokens`] over [`KeyValue`] | [`redis`], [`memory`] |
//! | disabled accounts, for bearer checks | [`DisabledMarks`] over [`KeyValue`] | [`redis`], [`memory`] |
//! | rate-limit counters | [`RateLimits`] over [`KeyValue`] | [`redis`], [`memory`] |
//! | readiness | [`Dependency`] | all |
//!
//! Each trait documents its error contract; every method may also fail with a
//! [`RepoError`] when its backend cannot be reached in time, which the services answer
//! with `503`. One contract suite (`tests/api/contract.rs`) runs against both backends.
//! [`open`] picks the backends the configuration asks for.

mod dependency;
mod disabled_marks;
mod error;
mod key_value;
mod one_time_tokens;
mod open;
mod outbox;
mod rate_limits;
mod refresh_tokens;
mod users;

pub mod memory;
pub mod postgres;
pub mod redis;

pub use dependency::Dependency;
pub use disabled_marks::DisabledMarks;
pub use error::RepoError;
pub use key_value::{Counter, KeyValue};
pub use one_time_tokens::{OneTimeKind, OneTimeTokens, OwnedTokens, Subject};
pub use open::{open, OpenError, Repos};
pub use outbox::{Outbox, OutboxItem, OutgoingEmail};
pub use rate_limits::{RateKey, RateLimits};
pub use refresh_tokens::{EndMark, NewRefreshToken, NewSession, RefreshTokens, Rotation};
pub use users::{AddressChange, CreateUserError, NewUser, Users};
