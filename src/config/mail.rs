//! The mail section: how emails leave, who sends them, where their links point, and how
//! the outbox hands them out.

use std::time::Duration;

use lettre::message::Mailbox;

use super::source::Reader;
use crate::mail::smtp::{parse_sender, SmtpUrl};
use crate::mail::LinkTemplate;

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// SMTP server; `None` writes emails to the log instead.
    pub smtp: Option<SmtpUrl>,
    pub from: Mailbox,
    /// `None`: `{AUTH_PUBLIC_URL}/verify-email?token={token}`, known once bound.
    pub verify_url: Option<LinkTemplate>,
    /// `None`: `{AUTH_PUBLIC_URL}/password/reset?token={token}`.
    pub reset_url: Option<LinkTemplate>,
    /// `None`: `{AUTH_PUBLIC_URL}/email/confirm?token={token}`.
    pub email_change_url: Option<LinkTemplate>,
    /// How long a worker's claim on an email lasts: after a crash, the email is sent by
    /// another worker this much later.
    pub outbox_lease: Duration,
    /// Emails one replica sends at once.
    pub outbox_concurrency: usize,
}

impl MailConfig {
    pub(super) fn read(r: &mut Reader) -> MailConfig {
        let default_sender = parse_sender("authd <no-reply@localhost>")
            .expect("the default sender is a valid mailbox");
        let outbox_lease = r.duration("AUTH_OUTBOX_LEASE", Duration::from_secs(60));
        if outbox_lease < Duration::from_secs(1) {
            r.fail("AUTH_OUTBOX_LEASE", "must be at least 1s");
        }
        MailConfig {
            smtp: r.parse("SMTP_URL", None, |v| SmtpUrl::parse(v).map(Some)),
            from: r.parse("AUTH_MAIL_FROM", default_sender, parse_sender),
            verify_url: r.parse("AUTH_VERIFY_URL", None, |v| {
                LinkTemplate::parse(v).map(Some)
            }),
            reset_url: r.parse("AUTH_RESET_URL", None, |v| LinkTemplate::parse(v).map(Some)),
            email_change_url: r.parse("AUTH_EMAIL_CHANGE_URL", None, |v| {
                LinkTemplate::parse(v).map(Some)
            }),
            outbox_lease,
            outbox_concurrency: r.number("AUTH_OUTBOX_CONCURRENCY", 16usize, (1, 1024)),
        }
    }
}
