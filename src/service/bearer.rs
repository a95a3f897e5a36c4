//! Bearer access tokens presented to authd itself (SPEC §1): RS256 only, authd's published
//! keys, `iss`/`aud` as configured, `exp` without leeway.

use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::UserId;
use crate::jwt::Verifier;

/// Missing, malformed, badly signed, expired or foreign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid access token")]
pub struct InvalidAccessToken;

pub struct AccessTokens {
    verifier: Verifier,
    clock: Arc<dyn Clock>,
}

impl AccessTokens {
    pub fn new(verifier: Verifier, clock: Arc<dyn Clock>) -> AccessTokens {
        AccessTokens { verifier, clock }
    }

    /// The user the bearer token (if any) speaks for.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<UserId, InvalidAccessToken> {
        let token = bearer.ok_or(InvalidAccessToken)?;
        self.verifier
            .verify(token, self.clock.unix_now())
            .map_err(|_| InvalidAccessToken)
    }
}
