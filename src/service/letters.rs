//! Which service writes which queued email: the [`mail::worker::Letters`] the outbox
//! worker is handed — and the one check every letter gets after its token is stored: the
//! account still exists and is not disabled (a deletion committed while the letter was
//! written would otherwise leave a token naming it in Redis; a disabled account gets no
//! working link).

use std::sync::Arc;

use async_trait::async_trait;

use super::{Accounts, EmailChanges, Passwords};
use crate::mail::{self, Message};
use crate::repo::{OutgoingEmail, OwnedTokens, RepoError, Users};

pub struct Letters {
    pub accounts: Arc<Accounts>,
    pub passwords: Arc<Passwords>,
    pub email_changes: Arc<EmailChanges>,
    pub users: Arc<dyn Users>,
    pub owned_tokens: OwnedTokens,
}

impl Letters {
    async fn letter(&self, email: &OutgoingEmail) -> Result<Option<Message>, RepoError> {
        match email {
            OutgoingEmail::Verification { user, .. } => {
                self.accounts.verification_letter(*user).await
            }
            OutgoingEmail::PasswordReset { user, .. } => self.passwords.reset_letter(*user).await,
            OutgoingEmail::EmailChange { user, to, stamp } => {
                self.email_changes
                    .confirmation_letter(*user, to, *stamp)
                    .await
            }
            OutgoingEmail::EmailChangeNotice { user, to } => {
                self.email_changes.notice_letter(*user, to).await
            }
            OutgoingEmail::EmailChanged { user, to } => {
                self.email_changes.changed_letter(*user, to).await
            }
        }
    }
}

#[async_trait]
impl mail::worker::Letters for Letters {
    async fn write(&self, email: &OutgoingEmail) -> Result<Option<Message>, RepoError> {
        let Some(letter) = self.letter(email).await? else {
            return Ok(None);
        };
        // Deleted or disabled while the letter was written: nothing goes out, and no
        // token of it stays behind.
        let user = email.user();
        if self.users.by_id(user).await?.is_none_or(|u| u.disabled) {
            self.owned_tokens.forget(user).await?;
            return Ok(None);
        }
        Ok(Some(letter))
    }
}
