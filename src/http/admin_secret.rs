//! The admin API's bearer secret (`AUTH_ADMIN_TOKEN_FILE`, SPEC §10).
//!
//! Only its SHA-256 is kept. A presented secret is hashed and the two digests compared
//! without an early exit, so neither the time taken nor the secret's length tells an
//! attacker how much of a guess was right.

use std::path::Path;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretBox};

/// Shortest secret accepted; `authd admin-token` writes 43 characters.
pub const MIN_ADMIN_SECRET: usize = 32;

#[derive(Debug, Clone)]
pub struct AdminSecret {
    digest: Arc<SecretBox<[u8; 32]>>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

impl AdminSecret {
    /// The secret in `text`, trailing whitespace (a final newline) aside.
    pub fn parse(text: &str) -> Result<AdminSecret, String> {
        let secret = text.trim_end();
        if secret.len() < MIN_ADMIN_SECRET {
            return Err(format!(
                "the admin secret must be at least {MIN_ADMIN_SECRET} bytes (`authd admin-token` writes one)"
            ));
        }
        Ok(AdminSecret {
            digest: Arc::new(SecretBox::new(Box::new(sha256(secret.as_bytes())))),
        })
    }

    /// Reads the secret from the file at `path`.
    pub fn from_file(path: &Path) -> Result<AdminSecret, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        AdminSecret::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether `presented` is the secret, in time independent of how much of it matches.
    pub fn matches(&self, presented: &str) -> bool {
        let theirs = sha256(presented.as_bytes());
        let ours = self.digest.expose_secret();
        ours.iter()
            .zip(theirs.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_matches_and_short_ones_are_refused() {
        let secret = AdminSecret::parse("0123456789abcdef0123456789abcdef\n").unwrap();
        assert!(secret.matches("0123456789abcdef0123456789abcdef"));
        assert!(!secret.matches("0123456789abcdef0123456789abcdeF"));
        assert!(!secret.matches(""));
        assert!(AdminSecret::parse("too short").unwrap_err().contains("32"));
        assert!(!format!("{secret:?}").contains("0123"));
    }
}
