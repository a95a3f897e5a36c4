//! Access tokens: a compact JWS (RFC 7515) with RS256, assembled by hand.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};

use super::keys::SigningKey;
use crate::domain::{SessionId, UserId};

/// The claims of an access token (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aud: Option<String>,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// The session (refresh-token family) the token belongs to: a random UUID.
    pub sid: String,
}

/// Signing produced no token: a bug or a broken key, never the client's doing.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("claims encoding: {0}")]
    Claims(#[from] serde_json::Error),
    #[error("RSA signing failed")]
    Rsa(ring::error::Unspecified),
}

/// A signed access token and its lifetime in seconds.
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// Signs access tokens. Signing is CPU work (about a millisecond): call it off the
/// async workers.
pub struct Signer {
    key: Arc<SigningKey>,
    /// base64url of the header, which never changes for a key.
    header_b64: String,
    issuer: String,
    audience: Option<String>,
    ttl_secs: u64,
    rng: SystemRandom,
}

impl Signer {
    pub fn new(
        key: Arc<SigningKey>,
        issuer: String,
        audience: Option<String>,
        ttl_secs: u64,
    ) -> Signer {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        Signer {
            key,
            header_b64,
            issuer,
            audience,
            ttl_secs,
            rng: SystemRandom::new(),
        }
    }

    /// Issues a token for `user` in `session`, valid from `now` (Unix seconds) for the
    /// access TTL.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        now: u64,
    ) -> Result<AccessToken, SignError> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user.to_string(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_secs,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sid: session.to_string(),
        };
        let payload = serde_json::to_vec(&claims)?;
        let mut token = String::with_capacity(800);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let pair = self.key.pair();
        let mut signature = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &self.rng,
            token.as_bytes(),
            &mut signature,
        )
        .map_err(SignError::Rsa)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(AccessToken {
            token,
            expires_in: self.ttl_secs,
        })
    }
}
