//! Opaque tokens (refresh, email verification, password reset) and their hashes.
//!
//! Each token is 32 bytes from the operating system's CSPRNG, shown to its holder as
//! unpadded base64url (43 characters). Only its SHA-256 is ever stored. The kind is part of
//! the type — of the token and of its hash — so a verification token cannot be passed, or
//! looked up, where a refresh or reset token is expected.

use std::fmt;
use std::marker::PhantomData;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret as _, SecretBox};

use super::{Email, UserId};

const TOKEN_BYTES: usize = 32;
/// Length of the base64url text of 32 bytes without padding.
const TOKEN_CHARS: usize = 43;

/// Marker for refresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refresh {}
/// Marker for email verification tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verification {}
/// Marker for password reset tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reset {}
/// Marker for email-change confirmation tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EmailChange {}

pub type RefreshToken = OpaqueToken<Refresh>;
pub type VerificationToken = OpaqueToken<Verification>;
pub type ResetToken = OpaqueToken<Reset>;
pub type EmailChangeToken = OpaqueToken<EmailChange>;

/// A token as its holder sees it: redacted in Debug, zeroed when dropped.
#[derive(Debug)]
pub struct OpaqueToken<K> {
    bytes: SecretBox<[u8; TOKEN_BYTES]>,
    kind: PhantomData<K>,
}

/// The presented text is not a token we could have issued (wrong length or alphabet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedToken;

impl<K> OpaqueToken<K> {
    fn from_bytes(bytes: [u8; TOKEN_BYTES]) -> OpaqueToken<K> {
        OpaqueToken {
            bytes: SecretBox::new(Box::new(bytes)),
            kind: PhantomData,
        }
    }

    /// Draws a new token from the system CSPRNG.
    pub fn generate(rng: &SystemRandom) -> OpaqueToken<K> {
        let mut bytes = [0u8; TOKEN_BYTES];
        // The system RNG only fails when the OS has no entropy source at all; nothing sane
        // can be done then, and issuing a predictable token would be worse than stopping.
        rng.fill(&mut bytes)
            .expect("the operating system's random generator failed");
        OpaqueToken::from_bytes(bytes)
    }

    /// Accepts exactly the canonical 43-character unpadded base64url form of 32 bytes.
    pub fn parse(text: &str) -> Result<OpaqueToken<K>, MalformedToken> {
        if text.len() != TOKEN_CHARS {
            return Err(MalformedToken);
        }
        let decoded = URL_SAFE_NO_PAD.decode(text).map_err(|_| MalformedToken)?;
        let bytes: [u8; TOKEN_BYTES] = decoded.try_into().map_err(|_| MalformedToken)?;
        Ok(OpaqueToken::from_bytes(bytes))
    }

    /// The text handed to the holder. Call only to put it in a response body or an email.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes.expose_secret())
    }

    /// SHA-256 of the raw 32 bytes: what storage keeps and looks up.
    pub fn hash(&self) -> TokenHash<K> {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.bytes.expose_secret());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        TokenHash {
            bytes: out,
            kind: PhantomData,
        }
    }
}

/// SHA-256 of a token of kind `K`. Not secret in the way the token is, but never logged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash<K> {
    bytes: [u8; 32],
    kind: PhantomData<K>,
}

impl<K> TokenHash<K> {
    /// A hash read back from storage (or made up by a test).
    pub fn from_bytes(bytes: [u8; 32]) -> TokenHash<K> {
        TokenHash {
            bytes,
            kind: PhantomData,
        }
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Lower-case hex, for key-value stores whose keys are text.
    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl<K> fmt::Debug for TokenHash<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// What a reset token stands for: the account, and the stamp of its password when the link
/// was issued. Issuing and checking the stamp is `service::passwords`' business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetGrant {
    pub user: UserId,
    pub stamp: u64,
}

/// What an email-change token stands for: the account, the stamp of the address it had
/// when the link was issued, and the address it moves to. Issuing and checking the stamp
/// is `service::email_change`'s business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChangeGrant {
    pub user: UserId,
    pub stamp: u64,
    pub to: Email,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_round_trip_through_their_text() {
        let rng = SystemRandom::new();
        let token = RefreshToken::generate(&rng);
        let text = token.expose();
        assert_eq!(text.len(), 43);
        let parsed = RefreshToken::parse(&text).unwrap();
        assert_eq!(parsed.hash(), token.hash());
    }

    #[test]
    fn two_tokens_differ() {
        let rng = SystemRandom::new();
        assert_ne!(
            RefreshToken::generate(&rng).hash(),
            RefreshToken::generate(&rng).hash()
        );
    }

    #[test]
    fn rejects_malformed_text() {
        for text in [
            "",
            "short",
            &"A".repeat(44),
            &"+".repeat(43),
            &format!("{}=", "A".repeat(42)),
        ] {
            assert_eq!(
                RefreshToken::parse(text).unwrap_err(),
                MalformedToken,
                "{text:?}"
            );
        }
        // Non-canonical: the last character carries bits beyond the 32 bytes.
        let mut text = "A".repeat(42);
        text.push('B');
        assert_eq!(RefreshToken::parse(&text).unwrap_err(), MalformedToken);
    }

    #[test]
    fn hash_is_sha256_of_the_raw_bytes() {
        // 32 zero bytes.
        let token = RefreshToken::parse(&"A".repeat(43)).unwrap();
        assert_eq!(
            token.hash().to_hex(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn debug_redacts() {
        let token = RefreshToken::generate(&SystemRandom::new());
        assert!(!format!("{token:?}").contains(&token.expose()));
        assert!(!format!("{:?}", token.hash()).contains(&token.hash().to_hex()));
    }
}
