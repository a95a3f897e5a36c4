//! Delivery over SMTP with lettre (tokio + rustls; no OpenSSL).
//!
//! `SMTP_URL` uses lettre's syntax: `smtp://host:port` (plain), `smtp://host:port?tls=required`
//! (STARTTLS), `smtps://user:pass@host:465` (implicit TLS). One pooled transport is built at
//! start-up and shared by every send.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Mailer, Message, SendError};

/// Longest one SMTP conversation may take before it counts as a transient failure.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// `SMTP_URL`, parsed into lettre's transport settings (whose Debug redacts credentials).
#[derive(Debug, Clone)]
pub struct SmtpUrl(AsyncSmtpTransportBuilder);

impl SmtpUrl {
    pub fn parse(raw: &str) -> Result<SmtpUrl, String> {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(raw)
            .map(SmtpUrl)
            .map_err(|e| format!("is not a valid SMTP URL such as smtp://127.0.0.1:2525 or smtps://user:pass@host:465 ({e})"))
    }
}

/// Parses `AUTH_MAIL_FROM` (`Name <address>` or `address`).
pub fn parse_sender(raw: &str) -> Result<Mailbox, String> {
    raw.parse::<Mailbox>()
        .map_err(|e| format!("must be an address or `Name <address>` ({e})"))
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// One pooled transport for every send; call within a tokio runtime.
    pub fn new(url: &SmtpUrl, from: Mailbox) -> SmtpMailer {
        let transport = url.0.clone().timeout(Some(SEND_TIMEOUT)).build();
        SmtpMailer { transport, from }
    }
}

/// Server replies can quote the recipient; logs must not show addresses in full.
fn redact_addresses(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains('@') {
                "<address>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let to: Mailbox = message.to.as_str().parse().map_err(|e| {
            SendError::Permanent(format!("recipient not accepted by the SMTP library: {e}"))
        })?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            // 5xx: the server will not take this email, now or later.
            Err(e) if e.is_permanent() => {
                Err(SendError::Permanent(redact_addresses(&e.to_string())))
            }
            // 4xx, connection trouble, timeouts, TLS failures: try again later.
            Err(e) => Err(SendError::Transient(redact_addresses(&e.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_senders_are_checked() {
        assert!(SmtpUrl::parse("smtp://127.0.0.1:2525").is_ok());
        assert!(SmtpUrl::parse("smtp://127.0.0.1:2525?tls=required").is_ok());
        assert!(SmtpUrl::parse("smtps://user:pass@mail.example.com:465").is_ok());
        assert!(SmtpUrl::parse("http://mail.example.com").is_err());
        assert!(!format!(
            "{:?}",
            SmtpUrl::parse("smtps://user:pass@mail.example.com").unwrap()
        )
        .contains("pass"));
        assert_eq!(
            parse_sender("authd <no-reply@localhost>")
                .unwrap()
                .email
                .to_string(),
            "no-reply@localhost"
        );
        assert!(parse_sender("no at sign").is_err());
    }

    #[test]
    fn addresses_are_redacted_from_server_replies() {
        assert_eq!(
            redact_addresses("permanent error (550): 5.1.1 <bob@example.com>: unknown"),
            "permanent error (550): 5.1.1 <address> unknown"
        );
    }
}
