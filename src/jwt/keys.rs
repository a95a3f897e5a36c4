//! Key material: the active signing key and every key the JWKS publishes.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ring::signature::{KeyPair as _, RsaKeyPair};

use super::der::{self, RsaPublicKey};
use super::jwk::{Jwk, JwkSet};
use super::pem;

/// Smallest RSA modulus accepted, in bits (SPEC §5).
pub const MIN_RSA_BITS: usize = 2048;

/// Why key material cannot be used. Never contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("{0}")]
    Encoding(String),
    #[error("expected a PKCS#8 \"PRIVATE KEY\" PEM, found \"{0}\" (convert with `openssl pkcs8 -topk8 -nocrypt`)")]
    NotPkcs8(String),
    #[error("unsupported PEM label \"{0}\"")]
    UnsupportedLabel(String),
    #[error("RSA key is smaller than {MIN_RSA_BITS} bits")]
    TooSmall,
    #[error("not a usable RSA private key ({0})")]
    Rejected(ring::error::KeyRejected),
    #[error("RSA key generation failed: {0}")]
    Generate(String),
}

/// The private key tokens are signed with, and its public JWK.
pub struct SigningKey {
    pair: RsaKeyPair,
    public: RsaPublicKey,
    jwk: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(kid={})", self.jwk.kid)
    }
}

fn check_size(modulus: &[u8]) -> Result<(), KeyError> {
    if modulus.len() * 8 < MIN_RSA_BITS {
        return Err(KeyError::TooSmall);
    }
    Ok(())
}

impl SigningKey {
    /// Reads a PKCS#8 PEM RSA private key of at least 2048 bits.
    pub fn from_pem_file(path: &Path) -> Result<SigningKey, KeyError> {
        let text = std::fs::read_to_string(path)?;
        let (label, der) = pem::decode(&text).map_err(KeyError::Encoding)?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::NotPkcs8(label));
        }
        SigningKey::from_pkcs8_der(&der)
    }

    /// Builds a key from PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        check_size(&der::pkcs8_rsa_modulus(der).map_err(KeyError::Encoding)?)?;
        let pair = RsaKeyPair::from_pkcs8(der).map_err(KeyError::Rejected)?;
        let public = der::rsa_public_key(pair.public_key().as_ref()).map_err(KeyError::Encoding)?;
        Ok(SigningKey {
            jwk: Jwk::from_rsa(&public),
            public,
            pair,
        })
    }

    /// A fresh 2048-bit key for the embedded default. ring cannot generate RSA keys, so the
    /// RustCrypto `rsa` crate makes it; signing still goes through ring. Slow: call it off
    /// the async workers.
    pub fn generate() -> Result<SigningKey, KeyError> {
        SigningKey::from_pkcs8_der(&SigningKey::generate_pkcs8()?)
    }

    /// A fresh 2048-bit key as PKCS#8 DER, what `AUTH_SIGNING_KEY` files hold (as PEM).
    pub fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
        use rsa::pkcs8::EncodePrivateKey as _;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, MIN_RSA_BITS)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(der.as_bytes().to_vec())
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

/// Reads a retired key that is still published: its PKCS#8 private key, or only its public
/// half (`PUBLIC KEY` SubjectPublicKeyInfo or PKCS#1 `RSA PUBLIC KEY`).
pub fn read_published_key(path: &Path) -> Result<RsaPublicKey, KeyError> {
    let text = std::fs::read_to_string(path)?;
    let (label, der) = pem::decode(&text).map_err(KeyError::Encoding)?;
    let public = match label.as_str() {
        "PRIVATE KEY" => return SigningKey::from_pkcs8_der(&der).map(|key| key.public),
        "PUBLIC KEY" => der::spki_rsa_public_key(&der),
        "RSA PUBLIC KEY" => der::rsa_public_key(&der),
        _ => return Err(KeyError::UnsupportedLabel(label)),
    }
    .map_err(KeyError::Encoding)?;
    check_size(&public.modulus)?;
    Ok(public)
}

/// The signing key plus everything published: the JWKS document and, by `kid`, the public
/// keys our own verifier accepts.
pub struct KeyRing {
    pub signing: Arc<SigningKey>,
    pub jwks: JwkSet,
    pub public_keys: HashMap<String, RsaPublicKey>,
}

impl KeyRing {
    /// The signing key first, then each retired key once (a retired key equal to the
    /// signing key, as during a rotation, is listed once).
    pub fn new(signing: Arc<SigningKey>, retired: &[RsaPublicKey]) -> KeyRing {
        let mut keys = vec![signing.jwk.clone()];
        let mut public_keys = HashMap::new();
        public_keys.insert(signing.jwk.kid.clone(), signing.public.clone());
        for public in retired {
            let jwk = Jwk::from_rsa(public);
            if !public_keys.contains_key(&jwk.kid) {
                public_keys.insert(jwk.kid.clone(), public.clone());
                keys.push(jwk);
            }
        }
        KeyRing {
            signing,
            jwks: JwkSet { keys },
            public_keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    #[test]
    fn keys_are_refused_by_kind_not_by_wording() {
        assert!(SigningKey::from_pem_file(&testdata("signing-key.pem")).is_ok());
        assert!(matches!(
            SigningKey::from_pem_file(&testdata("weak-1024-key.pem")),
            Err(KeyError::TooSmall)
        ));
        assert!(matches!(
            read_published_key(&testdata("weak-1024-key.pem")),
            Err(KeyError::TooSmall)
        ));
        assert!(matches!(
            SigningKey::from_pem_file(&testdata("retired-key.pub.pem")),
            Err(KeyError::NotPkcs8(label)) if label == "PUBLIC KEY"
        ));
        assert!(read_published_key(&testdata("retired-key.pub.pem")).is_ok());
        assert!(matches!(
            SigningKey::from_pem_file(&testdata("nonexistent.pem")),
            Err(KeyError::Read(_))
        ));
    }

    #[test]
    fn a_retired_key_equal_to_the_signing_key_is_published_once() {
        let signing = SigningKey::from_pem_file(&testdata("signing-key.pem")).unwrap();
        let same = read_published_key(&testdata("signing-key.pem")).unwrap();
        let retired = read_published_key(&testdata("retired-key.pub.pem")).unwrap();
        let ring = KeyRing::new(Arc::new(signing), &[same, retired]);
        assert_eq!(ring.jwks.keys.len(), 2);
        assert_eq!(ring.public_keys.len(), 2);
    }
}
