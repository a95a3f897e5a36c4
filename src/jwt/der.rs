//! A minimal DER reader: enough to take `n` and `e` out of an RSA public key.
//!
//! ring hands us the public key as a DER `RSAPublicKey` (RFC 8017 A.1.1); public key files
//! hold a `SubjectPublicKeyInfo` (RFC 5280 4.1) wrapping the same structure.

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
/// DER of the OID 1.2.840.113549.1.1.1 (rsaEncryption).
const RSA_ENCRYPTION_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// The two numbers of an RSA public key, big-endian without leading zero bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    pub modulus: Vec<u8>,
    pub exponent: Vec<u8>,
}

/// Splits one TLV off the front of `input`: (tag, contents, rest).
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("DER: unexpected end of input")?;
    let (&first, mut rest) = rest.split_first().ok_or("DER: missing length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err("DER: unsupported length encoding".into());
        }
        let mut len = 0usize;
        for &b in &rest[..count] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[count..];
        len
    };
    if rest.len() < len {
        return Err("DER: length runs past the end of input".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (found, contents, rest) = read_tlv(input)?;
    if found != tag {
        return Err(format!("DER: expected tag {tag:#04x}, found {found:#04x}"));
    }
    Ok((contents, rest))
}

/// A positive INTEGER's magnitude without the sign-padding zero byte.
fn unsigned(integer: &[u8]) -> Result<Vec<u8>, String> {
    if integer.first().is_some_and(|b| b & 0x80 != 0) {
        return Err("DER: RSA numbers must be positive".into());
    }
    let start = integer
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(integer.len());
    if start == integer.len() {
        return Err("DER: RSA numbers must be non-zero".into());
    }
    Ok(integer[start..].to_vec())
}

/// Parses `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
pub fn rsa_public_key(der: &[u8]) -> Result<RsaPublicKey, String> {
    let (seq, trailing) = expect(der, SEQUENCE)?;
    if !trailing.is_empty() {
        return Err("DER: trailing bytes after RSAPublicKey".into());
    }
    let (n, rest) = expect(seq, INTEGER)?;
    let (e, rest) = expect(rest, INTEGER)?;
    if !rest.is_empty() {
        return Err("DER: unexpected fields in RSAPublicKey".into());
    }
    Ok(RsaPublicKey {
        modulus: unsigned(n)?,
        exponent: unsigned(e)?,
    })
}

/// Parses a `SubjectPublicKeyInfo` holding an RSA key and returns its `RSAPublicKey`.
pub fn spki_rsa_public_key(der: &[u8]) -> Result<RsaPublicKey, String> {
    let (spki, _) = expect(der, SEQUENCE)?;
    let (algorithm, rest) = expect(spki, SEQUENCE)?;
    if !algorithm.starts_with(&RSA_ENCRYPTION_OID) {
        return Err("public key is not an RSA key".into());
    }
    let (bits, _) = expect(rest, BIT_STRING)?;
    match bits.split_first() {
        Some((0, key)) => rsa_public_key(key),
        _ => Err("DER: malformed BIT STRING".into()),
    }
}

/// The modulus of a PKCS#8 `PrivateKeyInfo` holding an RSA key (RFC 5208 §5, RFC 8017
/// A.1.2), read before ring sees the key so that a key too small is told apart by its size,
/// not by the wording of ring's refusal.
pub fn pkcs8_rsa_modulus(der: &[u8]) -> Result<Vec<u8>, String> {
    let (info, _) = expect(der, SEQUENCE)?;
    let (_version, rest) = expect(info, INTEGER)?;
    let (algorithm, rest) = expect(rest, SEQUENCE)?;
    if !algorithm.starts_with(&RSA_ENCRYPTION_OID) {
        return Err("the private key is not an RSA key".into());
    }
    let (private_key, _) = expect(rest, OCTET_STRING)?;
    let (rsa, _) = expect(private_key, SEQUENCE)?;
    let (_version, rest) = expect(rsa, INTEGER)?;
    let (modulus, _) = expect(rest, INTEGER)?;
    unsigned(modulus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_sign_padding_and_reads_both_numbers() {
        // SEQUENCE { INTEGER 0x00 0x80 0x01, INTEGER 0x01 0x00 0x01 }
        let der = [
            0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01,
        ];
        let key = rsa_public_key(&der).unwrap();
        assert_eq!(key.modulus, [0x80, 0x01]);
        assert_eq!(key.exponent, [0x01, 0x00, 0x01]);
    }

    #[test]
    fn reads_the_modulus_of_pkcs8_keys() {
        let pem = |name: &str| {
            let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
            super::super::pem::decode(&std::fs::read_to_string(path).unwrap())
                .unwrap()
                .1
        };
        assert_eq!(
            pkcs8_rsa_modulus(&pem("signing-key.pem")).unwrap().len(),
            256
        );
        assert_eq!(
            pkcs8_rsa_modulus(&pem("weak-1024-key.pem")).unwrap().len(),
            128
        );
        assert!(pkcs8_rsa_modulus(&[0x30, 0x00]).is_err());
    }

    #[test]
    fn rejects_truncated_and_wrong_input() {
        assert!(rsa_public_key(&[0x30, 0x05, 0x02]).is_err());
        assert!(rsa_public_key(&[0x31, 0x00]).is_err());
        assert!(rsa_public_key(&[0x30, 0x03, 0x02, 0x01, 0x80]).is_err());
    }
}
