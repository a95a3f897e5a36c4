//! Repository traits: what the services need from storage, split by capability.
//!
//! Each trait documents its error contract. Every method may fail with
//! [`RepoError::Unavailable`] when its backend cannot be reached in time; services turn that
//! into a `503`. The in-memory implementations in [`memory`] are the embedded default.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::domain::{Email, PasswordHash, TokenHash, User, UserId};

pub mod memory;
pub mod postgres;
pub mod redis;

/// A storage failure. The message is for the log only, never for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoError {
    /// The backend did not answer, or answered with an error.
    Unavailable(String),
}

impl fmt::Display for RepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoError::Unavailable(cause) => write!(f, "storage unavailable: {cause}"),
        }
    }
}

/// The outcome of creating a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateUserError {
    /// Another account already has this (normalised) email.
    EmailTaken,
    Repo(RepoError),
}

impl From<RepoError> for CreateUserError {
    fn from(e: RepoError) -> Self {
        CreateUserError::Repo(e)
    }
}

/// A user to create.
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub password_hash: PasswordHash,
}

#[async_trait]
pub trait Users: Send + Sync {
    /// Creates the user and queues their verification email in the outbox, atomically:
    /// either both are stored or neither. `EmailTaken` when the email is already registered.
    async fn create(&self, user: NewUser) -> Result<User, CreateUserError>;

    /// The account with this email, if any.
    async fn by_email(&self, email: &Email) -> Result<Option<User>, RepoError>;

    /// Marks the email verified. Verifying twice, or an unknown id, is not an error.
    async fn mark_verified(&self, id: UserId) -> Result<(), RepoError>;

    /// Replaces the password hash — only if it is still `current`, so that of two racing
    /// changes one wins — marks the email verified when `verified` is set, and revokes
    /// every refresh-token family of the user, atomically. `false` when there is no such
    /// user or its password changed meanwhile (then nothing changes).
    async fn set_password(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
        verified: bool,
    ) -> Result<bool, RepoError>;

    /// The account with this id, if any.
    async fn by_id(&self, id: UserId) -> Result<Option<User>, RepoError>;
}

/// A refresh token to store: only its hash.
#[derive(Debug, Clone, Copy)]
pub struct NewRefreshToken {
    pub hash: TokenHash,
    pub expires_at: SystemTime,
}

/// What happened when a refresh token was presented for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current; it is now rotated and its successor stored in the same family.
    Rotated { user: UserId },
    /// No such token.
    Unknown,
    /// The token's lifetime is over.
    Expired,
    /// The token's family was revoked (logout, reuse, password change).
    Revoked,
    /// The token was already rotated, within the reuse grace: refused, family kept.
    ReusedWithinGrace,
    /// The token was already rotated, past the grace: the whole family is now revoked.
    ReuseDetected,
}

#[async_trait]
pub trait RefreshTokens: Send + Sync {
    /// Starts a new family (a login session) with its first token — only if the user's
    /// password is still `password`, the one the login checked, so that a reset or change
    /// committed meanwhile cannot be outlived by this session. `false`: nothing started.
    async fn start_family(
        &self,
        user: UserId,
        password: &PasswordHash,
        first: NewRefreshToken,
    ) -> Result<bool, RepoError>;

    /// Rotates `presented` into `successor` as one atomic step: of many concurrent calls
    /// with one token, exactly one gets `Rotated`. Classifies every other case (see
    /// [`Rotation`]); revokes the family on reuse detected after `grace`.
    async fn rotate(
        &self,
        presented: &TokenHash,
        successor: NewRefreshToken,
        now: SystemTime,
        grace: Duration,
    ) -> Result<Rotation, RepoError>;

    /// Revokes the family `token` belongs to. Unknown tokens are ignored.
    async fn revoke_family(&self, token: &TokenHash) -> Result<(), RepoError>;

    /// Deletes tokens expired before `now` (and families left empty). Returns how many.
    async fn purge_expired(&self, now: SystemTime) -> Result<u64, RepoError>;
}

/// What a one-time token proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    /// The key-space segment for this purpose; the two never share keys.
    pub fn segment(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify",
            Purpose::ResetPassword => "reset",
        }
    }
}

/// Whom a one-time token is for. A reset token also carries the stamp of the password hash
/// current when it was issued: once the password changes, every older reset link is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSubject {
    pub user: UserId,
    pub stamp: Option<u64>,
}

impl From<UserId> for TokenSubject {
    fn from(user: UserId) -> TokenSubject {
        TokenSubject { user, stamp: None }
    }
}

impl TokenSubject {
    /// The stored text: `<uuid>` or `<uuid>:<stamp in hex>`.
    pub fn encode(&self) -> String {
        match self.stamp {
            Some(stamp) => format!("{}:{stamp:016x}", self.user),
            None => self.user.to_string(),
        }
    }

    pub fn decode(text: &str) -> Option<TokenSubject> {
        let (user, stamp) = match text.split_once(':') {
            Some((user, stamp)) => (user, Some(u64::from_str_radix(stamp, 16).ok()?)),
            None => (text, None),
        };
        Some(TokenSubject {
            user: UserId::from_uuid(uuid::Uuid::parse_str(user).ok()?),
            stamp,
        })
    }
}

#[async_trait]
pub trait OneTimeTokens: Send + Sync {
    /// Stores `hash → subject` for `ttl`.
    async fn put(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
        subject: TokenSubject,
        ttl: Duration,
    ) -> Result<(), RepoError>;

    /// The subject of a live entry, without consuming it.
    async fn peek(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
    ) -> Result<Option<TokenSubject>, RepoError>;

    /// Returns the subject and deletes the entry in one atomic step, so a token works once
    /// even under concurrent use. `None` for unknown, expired or already used tokens.
    async fn take(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
    ) -> Result<Option<TokenSubject>, RepoError>;
}

/// A rate-limited action and whom it is counted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RateKey {
    LoginFailures(Email),
    Resend(Email),
    PasswordForgot(Email),
}

impl RateKey {
    /// The key text, unique across actions. The address appears only as its SHA-256, so
    /// a look at Redis does not list who tried to log in.
    pub fn key(&self) -> String {
        let (action, email) = match self {
            RateKey::LoginFailures(e) => ("login-failures", e),
            RateKey::Resend(e) => ("resend", e),
            RateKey::PasswordForgot(e) => ("forgot", e),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, email.as_str().as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("{action}:{hex}")
    }
}

/// A counter's value and how long until its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub count: u64,
    pub resets_in: Duration,
}

#[async_trait]
pub trait RateLimits: Send + Sync {
    /// Adds one to the counter, starting a window of `window` if none is running, in one
    /// atomic step. Returns the new count.
    async fn hit(&self, key: &RateKey, window: Duration) -> Result<Counter, RepoError>;

    /// The counter, if a window is running.
    async fn peek(&self, key: &RateKey) -> Result<Option<Counter>, RepoError>;

    /// Ends the window (e.g. after a successful login).
    async fn clear(&self, key: &RateKey) -> Result<(), RepoError>;
}

/// An email waiting in the outbox. Its token is minted only when it is sent, so the token's
/// lifetime starts when the email leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutgoingEmail {
    /// The link that verifies `user`'s address.
    Verification { user: UserId, to: Email },
    /// A password-reset link for the account of `to` — if there is one when it is sent.
    /// Requests are queued for any address, so that asking costs the same whether or not
    /// the account exists.
    PasswordReset { to: Email },
}

impl OutgoingEmail {
    pub fn to(&self) -> &Email {
        match self {
            OutgoingEmail::Verification { to, .. } | OutgoingEmail::PasswordReset { to } => to,
        }
    }
}

/// An outbox row claimed by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: u64,
    pub email: OutgoingEmail,
    /// Attempts made before this one.
    pub attempts: u32,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Queues an email (e.g. a resend). Durable once this returns.
    async fn enqueue(&self, email: OutgoingEmail) -> Result<(), RepoError>;

    /// Claims up to `limit` due emails for `lease`: nobody else sees them until the lease
    /// ends, and an unfinished claim (crash) becomes due again then (at-least-once).
    async fn claim(
        &self,
        limit: usize,
        lease: Duration,
        now: SystemTime,
    ) -> Result<Vec<OutboxItem>, RepoError>;

    /// The email was handed to the mail server.
    async fn mark_sent(&self, id: u64) -> Result<(), RepoError>;

    /// Try again at `at`.
    async fn retry_at(&self, id: u64, at: SystemTime) -> Result<(), RepoError>;

    /// Give up on this email.
    async fn mark_failed(&self, id: u64) -> Result<(), RepoError>;

    /// Nothing to send after all (a reset request for an address with no account).
    async fn mark_skipped(&self, id: u64) -> Result<(), RepoError>;

    /// Emails not yet sent nor failed, and the age of the oldest.
    async fn backlog(&self, now: SystemTime) -> Result<(u64, Duration), RepoError>;

    /// Deletes sent emails older than `sent_before` and failed ones older than
    /// `failed_before` (kept longer, for investigation). Returns how many.
    async fn purge(
        &self,
        sent_before: SystemTime,
        failed_before: SystemTime,
    ) -> Result<u64, RepoError>;
}

/// Something `/readyz` checks.
#[async_trait]
pub trait Dependency: Send + Sync {
    /// A short name: `postgres`, `redis`, `memory`.
    fn name(&self) -> &'static str;
    async fn ping(&self) -> Result<(), RepoError>;
}

/// Every repository the services use, as trait objects so the backend is chosen at start-up.
/// See [`open`].
#[derive(Clone)]
pub struct Repos {
    pub users: Arc<dyn Users>,
    pub refresh_tokens: Arc<dyn RefreshTokens>,
    pub one_time_tokens: Arc<dyn OneTimeTokens>,
    pub rate_limits: Arc<dyn RateLimits>,
    pub outbox: Arc<dyn Outbox>,
    pub dependencies: Vec<Arc<dyn Dependency>>,
}

/// Opens the storage the configuration asks for: PostgreSQL when `DATABASE_URL` is set
/// (after applying migrations), Redis when `REDIS_URL` is set, memory for what is unset.
pub async fn open(
    config: &crate::config::Config,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Repos, String> {
    let mem = memory::repos();
    let mut dependencies = Vec::new();
    let (users, refresh_tokens, outbox): (Arc<dyn Users>, Arc<dyn RefreshTokens>, Arc<dyn Outbox>) =
        match &config.database_url {
            Some(url) => {
                let applied =
                    tokio::time::timeout(Duration::from_secs(30), postgres::migrate::run(url))
                        .await
                        .map_err(|_| {
                            "DATABASE_URL: PostgreSQL did not answer within 30s".to_string()
                        })?
                        .map_err(|e| format!("DATABASE_URL: {e}"))?;
                if !applied.is_empty() {
                    tracing::info!(count = applied.len(), "database migrations applied");
                }
                let store = Arc::new(
                    postgres::PgStore::new(
                        url,
                        config.db_pool_size,
                        config.db_timeout,
                        Arc::clone(&metrics),
                    )
                    .map_err(|e| format!("DATABASE_URL: {e}"))?,
                );
                dependencies.push(store.clone() as Arc<dyn Dependency>);
                (store.clone(), store.clone(), store)
            }
            None => {
                dependencies.push(mem.dependencies[0].clone());
                (mem.users, mem.refresh_tokens, mem.outbox)
            }
        };
    let (one_time_tokens, rate_limits): (Arc<dyn OneTimeTokens>, Arc<dyn RateLimits>) =
        match &config.redis_url {
            Some(url) => {
                let store = Arc::new(
                    redis::RedisStore::new(
                        metrics,
                        url,
                        config.redis_ca.clone(),
                        config.redis_prefix.clone(),
                        config.redis_timeout,
                    )
                    .map_err(|e| format!("REDIS_URL: {e}"))?,
                );
                dependencies.push(store.clone() as Arc<dyn Dependency>);
                (store.clone(), store)
            }
            None => {
                dependencies.push(mem.dependencies[1].clone());
                (mem.one_time_tokens, mem.rate_limits)
            }
        };
    Ok(Repos {
        users,
        refresh_tokens,
        one_time_tokens,
        rate_limits,
        outbox,
        dependencies,
    })
}
