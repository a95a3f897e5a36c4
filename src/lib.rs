//! authd: a self-hosted authentication service.
//!
//! Users register with email and password, verify the email through a single-use link, log
//! in, and receive an RS256 JWT access token (verified by other services through the JWKS)
//! and an opaque refresh token that rotates on every use. See `SPEC.md` for the contract.
//!
//! # Layout
//!
//! Requests flow Handler → Service → Repository (and Mailer):
//!
//! | Module | Holds |
//! |---|---|
//! | [`config`] | every environment variable, parsed and validated |
//! | [`app`] | `App::build` wires everything; `App::run` is the accept loop |
//! | [`http`] | router, problem+json errors, body limits, CORS, request ids |
//! | [`handlers`] | one file per area: account, session, keys, health |
//! | [`service`] | the rules: accounts (register/verify/resend), sessions (login/refresh/logout) |
//! | [`domain`] | typed values: `Email`, `Password`, tokens, `UserId` |
//! | [`jwt`] | RS256 signing with ring, JWKS built by hand from DER, our own verifier |
//! | [`passwords`] | bcrypt on a bounded pool, with a dummy hash for unknown accounts |
//! | [`cpu_pool`] | the bounded thread pool for bcrypt and RSA |
//! | [`repo`] | repository traits and their in-memory implementations |
//! | [`mail`] | email text, the `Mailer` boundary, the outbox worker |
//! | [`metrics`] | Prometheus text exposition |
//! | [`tls`] | rustls client settings for PostgreSQL and Redis |

#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod cpu_pool;
pub mod domain;
pub mod handlers;
pub mod http;
pub mod jwt;
pub mod mail;
pub mod metrics;
pub mod passwords;
pub mod repo;
pub mod service;
pub mod tls;

pub use app::App;
pub use config::Config;
