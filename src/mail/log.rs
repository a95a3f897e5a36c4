//! The embedded mailer: writes each email to the log.

use async_trait::async_trait;

use super::{Mailer, Message, SendError};

/// Logs emails instead of sending them (no `SMTP_URL`). This is the one place where a token
/// reaches the log, by design: the link is the point of the email.
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        tracing::info!(
            target: "authd::mail",
            to = %message.to.as_str(),
            subject = %message.subject,
            "email (embedded mailer, not sent):\n{}",
            message.text
        );
        Ok(())
    }
}
