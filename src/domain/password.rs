//! Passwords and their bcrypt hashes.

use std::fmt;

/// A password as the user typed it. Debug never shows it, and there is no Display.
pub struct Password(String);

/// Why a new password is refused. The message is safe to show a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordError {
    TooShort,
    /// bcrypt reads only 72 bytes; a longer password is refused rather than silently truncated.
    TooLong,
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PasswordError::TooShort => "password must be at least 8 bytes",
            PasswordError::TooLong => "password must be at most 72 bytes",
        })
    }
}

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 72;

    /// A password: 8 to 72 bytes of UTF-8, whether chosen now or presented at login.
    pub fn new(raw: String) -> Result<Password, PasswordError> {
        if raw.len() < Self::MIN_LEN {
            Err(PasswordError::TooShort)
        } else if raw.len() > Self::MAX_LEN {
            Err(PasswordError::TooLong)
        } else {
            Ok(Password(raw))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A bcrypt hash in its modular-crypt string form (`$2b$12$…`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash read back from storage or produced by bcrypt.
    pub fn from_stored(hash: String) -> PasswordHash {
        PasswordHash(hash)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// 64 bits of SHA-256 of the hash: changes whenever the password does, and reveals
    /// nothing usable about it. Stamped on reset tokens so they go stale with the password.
    pub fn stamp(&self) -> u64 {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        u64::from_be_bytes(first)
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_password_accepts_8_to_72_bytes() {
        assert_eq!(
            Password::new("1234567".into()).unwrap_err(),
            PasswordError::TooShort
        );
        assert!(Password::new("12345678".into()).is_ok());
        assert!(Password::new("x".repeat(72)).is_ok());
        assert_eq!(
            Password::new("x".repeat(73)).unwrap_err(),
            PasswordError::TooLong
        );
    }

    #[test]
    fn length_counts_bytes_not_characters() {
        // 24 three-byte characters = 72 bytes; one more is 75.
        assert!(Password::new("€".repeat(24)).is_ok());
        assert_eq!(
            Password::new("€".repeat(25)).unwrap_err(),
            PasswordError::TooLong
        );
        // 4 two-byte characters are 8 bytes.
        assert!(Password::new("éééé".into()).is_ok());
    }

    #[test]
    fn debug_redacts() {
        let password = Password::new("hunter2hunter2".into()).unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
