//! Passwords and their bcrypt hashes.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};

/// A password as the user typed it: redacted in Debug, zeroed when dropped, no Display.
#[derive(Debug)]
pub struct Password(SecretString);

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
            Ok(Password(raw.into()))
        }
    }

    /// The text, for bcrypt only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// The current password, as given to change it. Text outside the password rules is kept
/// as `Impossible` rather than refused here: what that means (it cannot be the stored
/// password) is the service's to say.
#[derive(Debug)]
pub enum CurrentPassword {
    Possible(Password),
    Impossible,
}

impl CurrentPassword {
    pub fn parse(raw: String) -> CurrentPassword {
        Password::new(raw).map_or(CurrentPassword::Impossible, CurrentPassword::Possible)
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
}

/// Not a secret the way a password is, but nothing a log needs either.
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
        let current = CurrentPassword::parse("hunter2hunter2".into());
        assert!(!format!("{current:?}").contains("hunter2"));
    }

    #[test]
    fn a_current_password_outside_the_rules_is_impossible() {
        assert!(matches!(
            CurrentPassword::parse("short".into()),
            CurrentPassword::Impossible
        ));
        assert!(matches!(
            CurrentPassword::parse("x".repeat(73)),
            CurrentPassword::Impossible
        ));
        assert!(matches!(
            CurrentPassword::parse("long enough".into()),
            CurrentPassword::Possible(_)
        ));
    }
}
