//! authd: a self-hosted authentication service.
//!
//! Users register with email and password, verify the email through a single-use link, log
//! in, and receive an RS256 JWT access token (verified by other services through the JWKS)
//! and an opaque refresh token that rotates on every use. `SPEC.md` is the contract.
//!
//! # Layout
//!
//! A request flows router → handler → service → repository (and mailer). Each layer owns
//! one kind of decision:
//!
//! - **handlers** parse HTTP into domain types and map results back — no rules;
//! - **services** own every rule and workflow: limits, what a token means, which email a
//!   flow sends and the token in it;
//! - **repositories** own atomicity: each method is one atomic step on storage, and says
//!   what it found, not what it means;
//! - **domain** holds the typed values, and the pure rules both sides share
//!   ([`domain::classify`]).
//!
//! | Module | Holds |
//! |---|---|
//! | `src/main.rs` (the binary) | read the configuration, start logging, run until SIGTERM; `authd migrate`, `keygen`, `admin-token` |
//! | [`config`] | every variable of SPEC §5, parsed into the values the rest uses, one section per concern |
//! | [`app`] | `App::build` wires everything; `serve` is the accept loop; `housekeeping` the purges |
//! | [`router`] | the route table, and what wraps every request (request id and log span, CORS, timeout, access log) |
//! | [`handlers`] | one file per area: `account`, `session`, `password`, `keys`, `health`; the `State` they share |
//! | [`http`] | plumbing: JSON bodies and their limits, problem responses, CORS, request ids, bearer headers |
//! | [`service`] | the rules: `Accounts`, `Sessions`, `Passwords`, `AccessTokens`, `Health`, `Letters`, rate limits, the mailroom |
//! | [`domain`] | typed values (`Email`, `Password`, tokens, ids) and the refresh-token verdict |
//! | [`repo`] | one file per capability, backends in `postgres/`, `redis/`, `memory/` |
//! | [`mail`] | email text, link templates, the `Mailer` boundary (SMTP, log), the outbox worker |
//! | [`jwt`] | RS256 signing with ring, the JWKS built by hand from DER, the verifier of our own tokens |
//! | [`hasher`] | bcrypt on a bounded pool, with a dummy hash for unknown accounts |
//! | [`cpu_pool`] | the bounded thread pools for bcrypt and RSA |
//! | [`clock`] | the time services and in-memory stores go by (tests move it forward) |
//! | [`metrics`] | Prometheus text exposition |
//! | [`operator`] | the files `authd keygen` and `authd admin-token` write |
//! | [`tls`] | rustls client settings and CA files for PostgreSQL and Redis |
//!
//! Outside `src/`: `sql/` (numbered migrations), `tests/api/` (black-box tests and the
//! repository contract suite), `bench/` (the load generator and its results).

#![forbid(unsafe_code)]

pub mod app;
pub mod clock;
pub mod config;
pub mod cpu_pool;
pub mod domain;
pub mod handlers;
pub mod hasher;
pub mod http;
pub mod jwt;
pub mod mail;
pub mod metrics;
pub mod operator;
pub mod repo;
pub mod router;
pub mod service;
pub mod tls;

pub use app::App;
pub use config::Config;
