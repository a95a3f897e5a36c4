//! Key material: the active signing key and every key the JWKS publishes.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ring::signature::{KeyPair as _, RsaKeyPair};

use super::der::{self, RsaPublicKey};
use super::jwk::{Jwk, JwkSet};
use super::pem;

/// Smallest RSA modulus accepted, in bits (SPEC §5).
pub const MIN_RSA_BITS: usize = 2048;

/// A key file that cannot be used. Names the variable and file; never contains key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {} {}",
            self.variable, self.message
        )
    }
}

impl std::error::Error for KeyError {}

/// The private key tokens are signed with, and its public JWK.
pub struct SigningKey {
    pair: RsaKeyPair,
    jwk: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(kid={})", self.jwk.kid)
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM RSA private key of at least 2048 bits.
    pub fn from_pem_file(path: &Path) -> Result<SigningKey, KeyError> {
        let fail = |message: String| KeyError {
            variable: "AUTH_SIGNING_KEY",
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        let (label, der) =
            pem::decode(&text).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        if label != "PRIVATE KEY" {
            return Err(fail(format!(
                "{}: expected a PKCS#8 \"PRIVATE KEY\" PEM, found \"{label}\" (convert with `openssl pkcs8 -topk8 -nocrypt`)",
                path.display()
            )));
        }
        SigningKey::from_pkcs8_der(&der).map_err(|e| fail(format!("{}: {e}", path.display())))
    }

    /// Builds a key from PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, String> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| match e.to_string().as_str() {
            "TooSmall" => format!("RSA key is smaller than {MIN_RSA_BITS} bits"),
            other => format!("not a usable RSA private key ({other})"),
        })?;
        if pair.public().modulus_len() * 8 < MIN_RSA_BITS {
            return Err(format!("RSA key is smaller than {MIN_RSA_BITS} bits"));
        }
        let public = der::rsa_public_key(pair.public_key().as_ref())?;
        Ok(SigningKey {
            jwk: Jwk::from_rsa(&public),
            pair,
        })
    }

    /// A fresh 2048-bit key for the embedded default. ring cannot generate RSA keys, so the
    /// RustCrypto `rsa` crate makes it; signing still goes through ring.
    pub fn generate() -> Result<SigningKey, String> {
        use rsa::pkcs8::EncodePrivateKey as _;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, MIN_RSA_BITS)
            .map_err(|e| format!("RSA key generation failed: {e}"))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| format!("PKCS#8 encoding failed: {e}"))?;
        SigningKey::from_pkcs8_der(der.as_bytes())
    }

    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub(crate) fn pair(&self) -> &RsaKeyPair {
        &self.pair
    }
}

/// Reads a retired key: its PKCS#8 private key, or only its public half
/// (`PUBLIC KEY` SubjectPublicKeyInfo or PKCS#1 `RSA PUBLIC KEY`).
fn read_published_key(path: &Path) -> Result<RsaPublicKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (label, der) = pem::decode(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let public = match label.as_str() {
        "PRIVATE KEY" => {
            let key =
                SigningKey::from_pkcs8_der(&der).map_err(|e| format!("{}: {e}", path.display()))?;
            der::rsa_public_key(key.pair.public_key().as_ref())
        }
        "PUBLIC KEY" => der::spki_rsa_public_key(&der),
        "RSA PUBLIC KEY" => der::rsa_public_key(&der),
        other => {
            return Err(format!(
                "{}: unsupported PEM label \"{other}\"",
                path.display()
            ))
        }
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    if public.modulus.len() * 8 < MIN_RSA_BITS {
        return Err(format!(
            "{}: RSA key is smaller than {MIN_RSA_BITS} bits",
            path.display()
        ));
    }
    Ok(public)
}

/// The signing key plus everything published: the JWKS document and, by `kid`, the public
/// keys our own verifier accepts.
pub struct KeyRing {
    pub signing: SigningKey,
    pub jwks: JwkSet,
    pub public_keys: HashMap<String, RsaPublicKey>,
}

impl KeyRing {
    /// The signing key first, then each extra key once (an extra key equal to the signing
    /// key, as during a rotation, is listed once).
    pub fn new(signing: SigningKey, extra_paths: &[PathBuf]) -> Result<KeyRing, KeyError> {
        let mut keys = vec![signing.jwk.clone()];
        let mut public_keys = HashMap::new();
        public_keys.insert(
            signing.jwk.kid.clone(),
            der::rsa_public_key(signing.pair.public_key().as_ref()).map_err(|message| {
                KeyError {
                    variable: "AUTH_SIGNING_KEY",
                    message,
                }
            })?,
        );
        for path in extra_paths {
            let public = read_published_key(path).map_err(|message| KeyError {
                variable: "AUTH_JWKS_EXTRA_KEYS",
                message,
            })?;
            let jwk = Jwk::from_rsa(&public);
            if !public_keys.contains_key(&jwk.kid) {
                public_keys.insert(jwk.kid.clone(), public);
                keys.push(jwk);
            }
        }
        Ok(KeyRing {
            signing,
            jwks: JwkSet { keys },
            public_keys,
        })
    }
}
