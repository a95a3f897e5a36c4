//! Which service writes which queued email: the [`mail::worker::Letters`] the outbox
//! worker is handed.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Accounts, EmailChanges, Passwords};
use crate::mail::{self, Message};
use crate::repo::{OutgoingEmail, RepoError};

pub struct Letters {
    pub accounts: Arc<Accounts>,
    pub passwords: Arc<Passwords>,
    pub email_changes: Arc<EmailChanges>,
}

#[async_trait]
impl mail::worker::Letters for Letters {
    async fn write(&self, email: &OutgoingEmail) -> Result<Option<Message>, RepoError> {
        match email {
            OutgoingEmail::Verification { user, .. } => {
                self.accounts.verification_letter(*user).await
            }
            OutgoingEmail::PasswordReset { user, .. } => self.passwords.reset_letter(*user).await,
            OutgoingEmail::EmailChange { user, to } => {
                self.email_changes.confirmation_letter(*user, to).await
            }
            OutgoingEmail::EmailChangeNotice { user, .. } => {
                self.email_changes.notice_letter(*user).await
            }
        }
    }
}
