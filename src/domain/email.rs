//! Email addresses: trimmed, lower-cased, checked against SPEC §3.

use std::fmt;

/// A syntactically valid, normalised email address (trimmed and lower-cased, so that
/// uniqueness is case-insensitive by construction).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

/// Why a string is not an acceptable email address. The message is safe to show a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailError {
    Empty,
    TooLong,
    NotOneAt,
    LocalPart,
    Domain,
    ForbiddenCharacter,
    /// Not an address a mail server would take (`<>"(),;` and the like, outside quotes).
    NotAnAddress,
}

impl fmt::Display for EmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EmailError::Empty => "email is empty",
            EmailError::TooLong => "email is longer than 254 bytes",
            EmailError::NotOneAt => "email must contain exactly one '@'",
            EmailError::LocalPart => "the part before '@' must be 1 to 64 bytes",
            EmailError::Domain => "the domain must contain a dot and no empty labels",
            EmailError::ForbiddenCharacter => "email contains whitespace or control characters",
            EmailError::NotAnAddress => "email is not a valid address",
        })
    }
}

impl Email {
    pub const MAX_LEN: usize = 254;
    pub const MAX_LOCAL_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::ForbiddenCharacter);
        }
        let normalised = trimmed.to_lowercase();
        if normalised.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let mut parts = normalised.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::NotOneAt);
        };
        if local.is_empty() || local.len() > Self::MAX_LOCAL_LEN {
            return Err(EmailError::LocalPart);
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return Err(EmailError::Domain);
        }
        // What is accepted is what will be sent to: the address must be one the mail
        // library takes, and write back unchanged.
        match normalised.parse::<lettre::Address>() {
            Ok(address) if address.to_string() == normalised => Ok(Email(normalised)),
            _ => Err(EmailError::NotAnAddress),
        }
    }

    /// The normalised address, for responses, storage and the recipient of an email.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as logs may show it: first character of the local part, then `***`.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or(("", &self.0));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }
}

/// Debug masks the address so that a stray `{:?}` cannot put an email in the logs.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_by_trimming_and_lowercasing() {
        let email = Email::parse("  Alice.Smith@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
    }

    #[test]
    fn rejects_what_spec_forbids() {
        let cases = [
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("alice.example.com", EmailError::NotOneAt),
            ("a@b@example.com", EmailError::NotOneAt),
            ("@example.com", EmailError::LocalPart),
            ("alice@localhost", EmailError::Domain),
            ("alice@example.", EmailError::Domain),
            ("alice@.example.com", EmailError::Domain),
            ("alice@exa..mple.com", EmailError::Domain),
            ("al ice@example.com", EmailError::ForbiddenCharacter),
            ("alice@exam\u{7}ple.com", EmailError::ForbiddenCharacter),
            ("x<eve@evil.com>", EmailError::NotAnAddress),
            ("a\"b@example.com", EmailError::NotAnAddress),
            ("a,b@example.com", EmailError::NotAnAddress),
            ("a;b@example.com", EmailError::NotAnAddress),
            ("(a)@example.com", EmailError::NotAnAddress),
            ("a@exa(mple).com", EmailError::NotAnAddress),
        ];
        for (raw, expected) in cases {
            assert_eq!(Email::parse(raw), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn enforces_length_limits_in_bytes() {
        let local64 = "a".repeat(64);
        assert!(Email::parse(&format!("{local64}@example.com")).is_ok());
        let local65 = "a".repeat(65);
        assert_eq!(
            Email::parse(&format!("{local65}@example.com")),
            Err(EmailError::LocalPart)
        );
        // DNS labels are at most 63 bytes: three of 60, one of 61, then "com".
        let label = "d".repeat(60);
        let domain = format!("{label}.{label}.{label}.{}.com", "d".repeat(61));
        let at_limit = format!("a@{domain}");
        assert_eq!(at_limit.len(), 250);
        assert!(Email::parse(&at_limit).is_ok());
        let over = format!("abcdef@{domain}");
        assert_eq!(over.len(), 255);
        assert_eq!(Email::parse(&over), Err(EmailError::TooLong));
    }

    #[test]
    fn debug_and_masked_hide_the_local_part() {
        let email = Email::parse("secret.person@example.com").unwrap();
        assert_eq!(email.masked(), "s***@example.com");
        assert!(!format!("{email:?}").contains("secret"));
    }
}
