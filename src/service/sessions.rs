//! Sessions: login, refresh-token rotation with reuse detection (RFC 9700 §4.14.2), logout.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use tracing::Instrument as _;

use super::{server_error_conversions, Bug, Caller, LoginLimits, Revocations, ServerError, Shared};
use crate::clock::Clock;
use crate::config::{LimitConfig, TokenConfig};
use crate::cpu_pool::{CpuPool, Lane, Reservation};
use crate::domain::{
    classify, ClientAddr, Email, Password, RefreshToken, SessionId, SessionInfo, UserAgent, UserId,
    Verdict,
};
use crate::hasher::Hasher;
use crate::jwt::Signer;
use crate::metrics::Metrics;
use crate::repo::{NewRefreshToken, NewSession, RefreshTokens, Rotation, Users};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Wrong email or password (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Correct password, unverified email.
    #[error("email not verified")]
    EmailNotVerified,
    /// An operator disabled the account (told only to whoever presented its password or
    /// one of its refresh tokens).
    #[error("account disabled")]
    AccountDisabled,
    /// Unknown, expired, revoked or reused refresh token.
    #[error("invalid refresh token")]
    InvalidToken,
    /// Not one of the caller's live sessions.
    #[error("no such session")]
    NoSuchSession,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Server(#[from] ServerError),
}

server_error_conversions!(SessionError);

/// What `/login` and `/refresh` return.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: RefreshToken,
    pub expires_in: u64,
}

pub struct Sessions {
    users: Arc<dyn Users>,
    refresh_tokens: Arc<dyn RefreshTokens>,
    login_limits: LoginLimits,
    hasher: Arc<Hasher>,
    signer: Arc<Signer>,
    /// RSA signing runs here, off the async workers.
    signing_pool: Arc<CpuPool>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    revocations: Arc<Revocations>,
    refresh_ttl: Duration,
    reuse_grace: Duration,
    rng: SystemRandom,
}

impl Sessions {
    pub fn new(
        shared: &Shared,
        tokens: &TokenConfig,
        limits: &LimitConfig,
        signer: Arc<Signer>,
        signing_pool: Arc<CpuPool>,
    ) -> Sessions {
        Sessions {
            users: Arc::clone(&shared.repos.users),
            refresh_tokens: Arc::clone(&shared.repos.refresh_tokens),
            login_limits: LoginLimits::new(
                shared.repos.rate_limits.clone(),
                limits.login_failures,
                Arc::clone(&shared.metrics),
            ),
            hasher: Arc::clone(&shared.hasher),
            signer,
            signing_pool,
            metrics: Arc::clone(&shared.metrics),
            clock: Arc::clone(&shared.clock),
            revocations: Arc::clone(&shared.revocations),
            refresh_ttl: tokens.refresh_ttl,
            reuse_grace: tokens.refresh_reuse_grace,
            rng: SystemRandom::new(),
        }
    }

    /// Checks the password and starts a session.
    ///
    /// The guessing limits ([`LoginLimits`]) are decided before any bcrypt work: a
    /// locked-out address costs nothing, and the right password does not get through
    /// either. Unknown emails are checked against a dummy hash: same work, same answer as
    /// a wrong password.
    pub async fn login(
        &self,
        client: ClientAddr,
        email: Email,
        password: Password,
        user_agent: Option<UserAgent>,
    ) -> Result<TokenPair, SessionError> {
        if let Err(exceeded) = self.login_limits.admit(&email).await? {
            return Err(SessionError::RateLimited {
                retry_after: exceeded.retry_after,
            });
        }
        let user = self.users.by_email(&email).await?;
        let matched = self
            .hasher
            .verify(client, password, user.as_ref().map(|u| &u.password_hash))
            .await?;
        let user = match user {
            Some(user) if matched => user,
            _ => {
                self.login_limits.failed(&email).await?;
                return Err(SessionError::InvalidCredentials);
            }
        };
        self.login_limits.succeeded(&email).await?;
        if user.disabled {
            return Err(SessionError::AccountDisabled);
        }
        if !user.email_verified {
            return Err(SessionError::EmailNotVerified);
        }
        // The signature's place is taken before the session exists: once it does, nothing
        // may refuse the answer.
        let signing = self.signing_pool.reserve(Lane::default())?;
        let refresh_token = RefreshToken::generate(&self.rng);
        // Only if the password is still the one just checked: a reset or change that
        // committed during the bcrypt check wins, and this login fails like a wrong one.
        let session = NewSession {
            id: SessionId::random(),
            user: user.id,
            email: user.email.clone(),
            user_agent,
            first: self.new_record(&refresh_token),
        };
        let id = session.id;
        let started = self
            .refresh_tokens
            .start_session(session, &user.password_hash)
            .await?;
        if !started {
            // The password or address changed, or the account was disabled, during the
            // check.
            let disabled = self.users.by_id(user.id).await?.is_some_and(|u| u.disabled);
            return Err(match disabled {
                true => SessionError::AccountDisabled,
                false => SessionError::InvalidCredentials,
            });
        }
        tracing::info!(user_id = %user.id, "login");
        self.pair(signing, user.id, id, refresh_token).await
    }

    /// Spends `presented` for a new pair. Exactly one of many concurrent calls with the same
    /// token succeeds (the repository rotates atomically); every other outcome is
    /// [`classify`]'s to name.
    ///
    /// The access token's signature is reserved before the rotation (a full pool answers
    /// `503` with the presented token still good): a committed rotation is always answered
    /// with its successor (SPEC §6).
    pub async fn refresh(&self, presented: RefreshToken) -> Result<TokenPair, SessionError> {
        let signing = self.signing_pool.reserve(Lane::default())?;
        let successor = RefreshToken::generate(&self.rng);
        let now = self.clock.now();
        let record = self.new_record(&successor);
        let state = match self
            .refresh_tokens
            .rotate(&presented.hash(), record, now)
            .await?
        {
            Rotation::Rotated { user, session } => {
                self.metrics.refresh(Verdict::Current.label());
                return self.pair(signing, user, session, successor).await;
            }
            Rotation::Refused(state) => state,
        };
        let verdict = match classify(state.as_ref(), now, self.reuse_grace) {
            // Not rotated, yet current: the token changed between the repository's look
            // and ours. Refuse without side effects.
            Verdict::Current => Verdict::Unknown,
            verdict => verdict,
        };
        if let (Verdict::ReuseDetected, Some(state)) = (verdict, state) {
            // Its own task: a client that disconnects, or a request timeout, cannot stop
            // a detected replay from ending the session.
            let refresh_tokens = Arc::clone(&self.refresh_tokens);
            let revocations = Arc::clone(&self.revocations);
            let session = state.session;
            let revoke = async move {
                if refresh_tokens.revoke_session(session, now).await? {
                    revocations.ended_here([session]);
                }
                Ok::<_, crate::repo::RepoError>(())
            };
            tokio::spawn(revoke.in_current_span())
                .await
                .map_err(Bug::from)??;
            tracing::warn!(session = %state.session, "refresh token reuse detected: session revoked");
        }
        self.metrics.refresh(verdict.label());
        // Disabling ends every session: whoever holds one of its tokens learns why.
        if state.is_some_and(|s| s.account_disabled) {
            return Err(SessionError::AccountDisabled);
        }
        Err(SessionError::InvalidToken)
    }

    /// Ends the session `token` belongs to. Unknown or revoked tokens are fine (idempotent).
    pub async fn logout(&self, token: RefreshToken) -> Result<(), SessionError> {
        let ended = self
            .refresh_tokens
            .revoke_session_of(&token.hash(), self.clock.now())
            .await?;
        self.revocations.ended_here(ended);
        Ok(())
    }

    /// The caller's live sessions, and which of them the caller is.
    pub async fn list(&self, caller: Caller) -> Result<Vec<(SessionInfo, bool)>, SessionError> {
        let sessions = self
            .refresh_tokens
            .sessions(caller.user, self.clock.now())
            .await?;
        Ok(sessions
            .into_iter()
            .map(|s| {
                let current = s.id == caller.session;
                (s, current)
            })
            .collect())
    }

    /// Ends one of the caller's sessions.
    pub async fn end(&self, caller: Caller, id: SessionId) -> Result<(), SessionError> {
        let ended = self
            .refresh_tokens
            .revoke_user_session(caller.user, id, self.clock.now())
            .await?;
        if !ended {
            return Err(SessionError::NoSuchSession);
        }
        self.revocations.ended_here([id]);
        tracing::info!(user_id = %caller.user, session = %id, "session ended by its user");
        Ok(())
    }

    /// Ends every session of the caller ("log out everywhere").
    pub async fn end_all(&self, caller: Caller) -> Result<(), SessionError> {
        let ended = self
            .refresh_tokens
            .revoke_user_sessions(caller.user, self.clock.now())
            .await?;
        self.revocations.ended_here(ended);
        tracing::info!(user_id = %caller.user, "every session ended by its user");
        Ok(())
    }

    fn new_record(&self, token: &RefreshToken) -> NewRefreshToken {
        let now = self.clock.now();
        NewRefreshToken {
            hash: token.hash(),
            created_at: now,
            expires_at: now + self.refresh_ttl,
        }
    }

    /// Signs the access token for `user`, off the async workers, in the place `signing`
    /// set aside.
    async fn pair(
        &self,
        signing: Reservation,
        user: UserId,
        session: SessionId,
        refresh_token: RefreshToken,
    ) -> Result<TokenPair, SessionError> {
        let signer = Arc::clone(&self.signer);
        let now = self.clock.unix_now();
        let access = signing
            .run(move || signer.issue(user, session, now))
            .await?
            .map_err(Bug::from)?;
        Ok(TokenPair {
            access_token: access.token,
            refresh_token,
            expires_in: access.expires_in,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{Config, LimitConfig};
    use crate::repo::{memory, OneTimeTokens, Outbox, RateLimits, Repos};
    use crate::service::Mailroom;
    use std::collections::HashMap;

    /// Sessions on the embedded stores, with a hasher whose work the test can count.
    fn sessions() -> (Sessions, Arc<Hasher>) {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let db = Arc::new(memory::MemoryDb::default());
        let kv = Arc::new(memory::MemoryKv::new(Arc::clone(&clock)));
        let repos = Repos {
            users: db.clone(),
            refresh_tokens: db.clone(),
            outbox: db.clone(),
            verification_tokens: OneTimeTokens::new(kv.clone()),
            reset_tokens: OneTimeTokens::new(kv.clone()),
            email_change_tokens: OneTimeTokens::new(kv.clone()),
            owned_tokens: crate::repo::OwnedTokens::new(kv.clone()),
            disabled_marks: crate::repo::DisabledMarks::new(kv.clone()),
            rate_limits: RateLimits::new(kv),
            dependencies: vec![],
        };
        let metrics = Arc::new(Metrics::default());
        let hasher = Arc::new(Hasher::new(Arc::new(CpuPool::new("b", 1, 8)), 4).unwrap());
        let revocations = Arc::new(crate::service::Revocations::new(
            db.clone(),
            Duration::from_secs(60),
            Arc::clone(&clock),
            true,
        ));
        let outbox: Arc<dyn Outbox> = db;
        let shared = Shared {
            revocations,
            mailroom: Arc::new(Mailroom::new(
                outbox,
                Default::default(),
                Arc::clone(&metrics),
                Arc::clone(&clock),
            )),
            repos,
            hasher: Arc::clone(&hasher),
            metrics,
            clock,
        };
        let config = Config::load(&HashMap::<String, String>::new()).unwrap();
        let limits = LimitConfig {
            login_failures: crate::service::RateLimit {
                max: 1,
                window: Duration::from_secs(60),
            },
            ..config.limits
        };
        let key = Arc::new(
            crate::jwt::SigningKey::from_pem_file(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/testdata/signing-key.pem"
            )))
            .unwrap(),
        );
        let signer = Arc::new(Signer::new(key, "https://test".into(), None, 60));
        let pool = Arc::new(CpuPool::new("rsa", 1, 8));
        (
            Sessions::new(&shared, &config.tokens, &limits, signer, pool),
            hasher,
        )
    }

    /// No timing oracle (SPEC §3): a login for an address without an account costs the
    /// same bcrypt work as a wrong password — one verification — and a locked-out address
    /// costs none.
    #[tokio::test]
    async fn a_login_for_an_unknown_email_costs_one_bcrypt_check() {
        let (sessions, hasher) = sessions();
        let password = || Password::new("some password".into()).unwrap();
        let email = Email::parse("nobody@example.com").unwrap();
        let before = hasher.work();
        let client = ClientAddr::of("127.0.0.1".parse().unwrap());
        let outcome = sessions
            .login(client, email.clone(), password(), None)
            .await;
        assert!(matches!(outcome, Err(SessionError::InvalidCredentials)));
        assert_eq!(hasher.work().verifications, before.verifications + 1);
        assert_eq!(hasher.work().hashes, before.hashes);
        // Past the limit (1 failure), the attempt is refused before any bcrypt work.
        let outcome = sessions.login(client, email, password(), None).await;
        assert!(matches!(outcome, Err(SessionError::RateLimited { .. })));
        assert_eq!(hasher.work().verifications, before.verifications + 1);
    }
}
