//! What `authd keygen` and `authd admin-token` make, so that a deployer needs no openssl
//! or shell recipe: a signing key file and an admin secret file.
//!
//! Both are secrets: files are created with mode 0600 and never overwrite an existing
//! file (an overwritten signing key would log every user out; an overwritten admin secret
//! would lock the operator out of a running fleet).

use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::jwt::{pem, KeyError, SigningKey};

/// Random bytes in a generated admin secret: 256 bits, 43 characters of base64url.
const ADMIN_SECRET_BYTES: usize = 32;

/// A new PKCS#8 PEM RSA-2048 private key, as `AUTH_SIGNING_KEY` reads it.
pub fn signing_key_pem() -> Result<String, KeyError> {
    Ok(pem::encode("PRIVATE KEY", &SigningKey::generate_pkcs8()?))
}

/// A new admin secret for `AUTH_ADMIN_TOKEN_FILE`, followed by a newline (which authd
/// trims when it reads the file).
pub fn admin_secret() -> String {
    let mut bytes = [0u8; ADMIN_SECRET_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random generator failed");
    format!("{}\n", URL_SAFE_NO_PAD.encode(bytes))
}

/// Writes `contents` to a new file at `path`, readable by its owner only.
pub fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    if written.is_err() {
        // Half a secret is no secret: leave no file that would stop the next try.
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_as_signing_keys() {
        let pem = signing_key_pem().unwrap();
        let (label, der) = pem::decode(&pem).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        assert!(SigningKey::from_pkcs8_der(&der).is_ok());
    }

    #[test]
    fn admin_secrets_are_long_enough_and_differ() {
        let (a, b) = (admin_secret(), admin_secret());
        assert_ne!(a, b);
        assert_eq!(a.trim_end().len(), 43);
        assert!(a
            .trim_end()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
