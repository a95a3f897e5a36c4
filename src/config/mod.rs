//! Configuration: every variable of SPEC §5, parsed once at start-up into the values the
//! rest of authd uses (URLs, keys, CA files, the log filter, the SMTP transport), in one
//! section per concern.
//!
//! Variables are read through [`Source`] so tests pass a map instead of mutating the
//! process environment. [`Config::load`] reports *every* bad variable by name in one
//! error. The types of parsed values live with the module that uses them (e.g.
//! [`DatabaseUrl`](crate::repo::postgres::DatabaseUrl) in `repo::postgres`).

mod bcrypt;
mod http;
mod limits;
mod load;
mod log;
mod mail;
mod source;
mod storage;
mod tokens;

pub use bcrypt::BcryptConfig;
pub use http::HttpConfig;
pub use limits::LimitConfig;
pub use load::Config;
pub use log::{LogConfig, LogFormat};
pub use mail::MailConfig;
pub use source::{parse_duration, ConfigError, Env, Problem, Source, MAX_DURATION};
pub use storage::StorageConfig;
pub use tokens::TokenConfig;
