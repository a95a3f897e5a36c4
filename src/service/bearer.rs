//! Bearer access tokens presented to authd itself (SPEC §1, §9): RS256 only, authd's
//! published keys, `iss`/`aud` as configured, `exp` without leeway — and the token's
//! session still live.
//!
//! Verified tokens are remembered until they expire, so that `/authz` in front of every
//! API call costs a look-up, not an RSA verification; whether the session has ended is
//! asked of [`Revocations`] every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::revocations::{Revocations, Stale};
use crate::clock::Clock;
use crate::domain::{SessionId, UserId};
use crate::jwt::{Verified, Verifier};
use crate::repo::DisabledMarks;

/// Verified tokens remembered at most; past it, the expired ones go, or all of them.
const REMEMBERED: usize = 100_000;
/// How long what a disabled mark said about an account is believed; a refused token
/// presented again and again costs one look-up a second, not one per request.
const MARK_FRESH: Duration = Duration::from_secs(1);
/// Accounts whose mark is remembered at most.
const MARKS_REMEMBERED: usize = 10_000;

/// Who a valid bearer token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub session: SessionId,
}

/// Why a bearer token is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// Missing, malformed, badly signed, expired, foreign — or its session has ended.
    #[error("invalid access token")]
    Invalid,
    /// Its session has ended because an operator disabled the account: `403`.
    #[error("account disabled")]
    Disabled,
    /// Whether its session has ended cannot be told now: 503.
    #[error(transparent)]
    Unavailable(#[from] Stale),
}

pub struct AccessTokens {
    verifier: Verifier,
    revocations: Arc<Revocations>,
    disabled_marks: DisabledMarks,
    clock: Arc<dyn Clock>,
    /// By the token's SHA-256, so that memory stays small per token. A std lock: held
    /// for one map operation.
    verified: RwLock<HashMap<[u8; 32], Verified>>,
    /// Whether an account is disabled, as its mark said, and when it was read.
    marks_read: Mutex<HashMap<UserId, (bool, Instant)>>,
}

impl AccessTokens {
    pub fn new(
        verifier: Verifier,
        revocations: Arc<Revocations>,
        disabled_marks: DisabledMarks,
        clock: Arc<dyn Clock>,
    ) -> AccessTokens {
        AccessTokens {
            verifier,
            revocations,
            disabled_marks,
            clock,
            verified: RwLock::new(HashMap::new()),
            marks_read: Mutex::new(HashMap::new()),
        }
    }

    /// Whom the bearer token (if any) speaks for. Storage is asked only when the token's
    /// session has ended (is its account disabled?): a valid token costs no round trip.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, BearerError> {
        let token = bearer.ok_or(BearerError::Invalid)?;
        let now = self.clock.unix_now();
        let verified = self.verified(token, now)?;
        if self.revocations.has_ended(verified.session, verified.iat)? {
            return Err(match self.is_disabled(verified.user).await {
                true => BearerError::Disabled,
                false => BearerError::Invalid,
            });
        }
        Ok(Caller {
            user: verified.user,
            session: verified.session,
        })
    }

    /// Whether `user`'s account is disabled, from a mark read within [`MARK_FRESH`]. The
    /// token is refused either way: if the mark cannot be read, the refusal is a plain
    /// `401` rather than a `503`.
    async fn is_disabled(&self, user: UserId) -> bool {
        let now = self.clock.instant();
        let lock = || self.marks_read.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((disabled, at)) = lock().get(&user).copied() {
            if now.saturating_duration_since(at) < MARK_FRESH {
                return disabled;
            }
        }
        let Ok(disabled) = self.disabled_marks.is_marked(user).await else {
            return false;
        };
        let mut read = lock();
        if read.len() >= MARKS_REMEMBERED {
            read.clear();
        }
        read.insert(user, (disabled, now));
        disabled
    }

    /// The token's claims, from memory or from a verification; an expired one is refused
    /// either way.
    fn verified(&self, token: &str, now: u64) -> Result<Verified, BearerError> {
        let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let known = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        if let Some(known) = known {
            return if now < known.exp {
                Ok(known)
            } else {
                Err(BearerError::Invalid)
            };
        }
        let verified = self
            .verifier
            .verify(token, now)
            .map_err(|_| BearerError::Invalid)?;
        let mut remembered = self.verified.write().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= REMEMBERED {
            remembered.retain(|_, v| now < v.exp);
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(key, verified);
        Ok(verified)
    }
}
