//! Outgoing email: what is sent ([`compose`], [`LinkTemplate`]), how ([`Mailer`]
//! implementations) and when ([`worker`], which drains the durable outbox). Which email a
//! flow sends, and the token in it, is decided by the services; the worker only sends
//! what they write.
//!
//! The embedded default writes each email to the log ([`LogMailer`]), link included — its
//! whole purpose is to show the email when no SMTP server is configured.

pub mod compose;
mod link;
mod log;
pub mod smtp;
pub mod worker;

use async_trait::async_trait;

pub use self::link::LinkTemplate;
pub use self::log::LogMailer;
pub use self::smtp::{SmtpMailer, SmtpUrl};
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
