//! Checks access tokens that authd issued: RS256 only, against the published keys, with
//! `iss`/`aud` as configured and `exp` without leeway. Used by `/password/change`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use super::der::RsaPublicKey;
use super::signer::Claims;
use crate::domain::{SessionId, UserId};

/// Why a bearer token is refused. Kept coarse on purpose: clients get one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    BadSignature,
    WrongIssuerOrAudience,
    Expired,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user: UserId,
    pub session: SessionId,
    /// Issue time and expiry, Unix seconds.
    pub iat: u64,
    pub exp: u64,
}

pub struct Verifier {
    keys: Arc<HashMap<String, RsaPublicKey>>,
    issuer: String,
    audience: Option<String>,
}

impl Verifier {
    pub fn new(
        keys: Arc<HashMap<String, RsaPublicKey>>,
        issuer: String,
        audience: Option<String>,
    ) -> Verifier {
        Verifier {
            keys,
            issuer,
            audience,
        }
    }

    /// The user a valid token speaks for and its session, at time `now` (Unix seconds),
    /// with the token's expiry.
    pub fn verify(&self, token: &str, now: u64) -> Result<Verified, VerifyError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != "RS256" {
            return Err(VerifyError::Malformed);
        }
        let key = header
            .kid
            .and_then(|kid| self.keys.get(&kid))
            .ok_or(VerifyError::BadSignature)?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| VerifyError::Malformed)?;
        let signed = &token[..h.len() + 1 + p.len()];
        ring::signature::RsaPublicKeyComponents {
            n: &key.modulus,
            e: &key.exponent,
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        )
        .map_err(|_| VerifyError::BadSignature)?;
        let claims: Claims = decode_json(p)?;
        if claims.iss != self.issuer || claims.aud != self.audience {
            return Err(VerifyError::WrongIssuerOrAudience);
        }
        if now >= claims.exp {
            return Err(VerifyError::Expired);
        }
        let uuid = |text: &str| uuid::Uuid::parse_str(text).map_err(|_| VerifyError::Malformed);
        Ok(Verified {
            user: UserId::from_uuid(uuid(&claims.sub)?),
            session: SessionId::from_uuid(uuid(&claims.sid)?),
            iat: claims.iat,
            exp: claims.exp,
        })
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}
