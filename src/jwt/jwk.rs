//! JSON Web Keys (RFC 7517/7518) for RSA public keys, built by hand from DER.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use super::der::RsaPublicKey;

/// One published key. Field order is irrelevant to clients; the thumbprint has its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: &'static str,
    pub n: String,
    pub e: String,
}

/// The document served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Serialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The JWK of an RSA public key; `kid` is its RFC 7638 thumbprint.
    pub fn from_rsa(key: &RsaPublicKey) -> Jwk {
        let n = URL_SAFE_NO_PAD.encode(&key.modulus);
        let e = URL_SAFE_NO_PAD.encode(&key.exponent);
        let kid = thumbprint(&n, &e);
        Jwk {
            kty: "RSA",
            kid,
            use_: "sig",
            alg: "RS256",
            n,
            e,
        }
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace,
/// base64url without padding. `n` and `e` are already base64url and need no JSON escaping.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 7638 §3.1.
    #[test]
    fn rfc7638_section_3_1_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn builds_unpadded_base64url_members() {
        let jwk = Jwk::from_rsa(&RsaPublicKey {
            modulus: vec![0xff; 256],
            exponent: vec![1, 0, 1],
        });
        assert_eq!(jwk.e, "AQAB");
        assert!(!jwk.n.contains('=') && !jwk.n.contains('+') && !jwk.n.contains('/'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&jwk.n).unwrap(), vec![0xff; 256]);
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "RS256");
        assert_eq!(json["kty"], "RSA");
    }
}
