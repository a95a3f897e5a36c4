//! The boundary to the mail server: a composed message, and why sending it failed.

use async_trait::async_trait;

use crate::domain::Email;

/// A composed email with both parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub to: Email,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why sending failed, which decides whether to try again. The text is the server's
/// reply with addresses redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (connection trouble, a 4xx reply).
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (a 5xx reply, a refused address).
    #[error("{0}")]
    Permanent(String),
}

/// The boundary to the mail server.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}
