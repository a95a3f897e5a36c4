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
mod mailer;
pub mod smtp;
pub mod worker;

pub use self::link::LinkTemplate;
pub use self::log::LogMailer;
pub use self::mailer::{Mailer, Message, SendError};
pub use self::smtp::{SmtpMailer, SmtpUrl};
