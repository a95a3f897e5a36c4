//! RS256 access tokens and the JWKS that lets other services verify them.
//!
//! - [`pem`] and [`der`]: just enough PEM and DER to read key files and the public key.
//! - [`jwk`]: a JWK built by hand from the DER public key; `kid` is the RFC 7638 thumbprint.
//! - [`keys`]: the signing key and the retired keys still published.
//! - [`signer`]: the compact JWS, encoded by hand and signed with ring.
//! - [`verifier`]: checks our own access tokens (RS256 only, published keys only).

pub mod der;
pub mod jwk;
pub mod keys;
pub mod pem;
pub mod signer;
pub mod verifier;

pub use der::RsaPublicKey;
pub use jwk::{Jwk, JwkSet};
pub use keys::{read_published_key, KeyError, KeyRing, SigningKey};
pub use signer::{AccessToken, Claims, SignError, Signer};
pub use verifier::{Verified, Verifier, VerifyError};
