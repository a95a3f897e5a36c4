//! The text of each email: a plain-text and an HTML part, the link, the expiry in words.

use std::time::Duration;

use super::Message;
use crate::domain::Email;

/// A duration for people: "4 hours", "30 minutes", "90 seconds".
fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs % 86_400 == 0 && secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs % 3600 == 0 && secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 && secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn message(
    to: &Email,
    subject: &str,
    intro: &str,
    action: &str,
    link: &str,
    expiry: &str,
    ignore: &str,
) -> Message {
    let text = format!("{intro}\n\n{action}:\n{link}\n\n{expiry}\n\n{ignore}\n");
    let (l, i, a, e, ig) = (
        escape_html(link),
        escape_html(intro),
        escape_html(action),
        escape_html(expiry),
        escape_html(ignore),
    );
    let html = format!(
        "<!doctype html>\n<html><body style=\"font-family:sans-serif\">\n<p>{i}</p>\n<p><a href=\"{l}\">{a}</a></p>\n<p>Or paste this link into your browser:<br>{l}</p>\n<p>{e}</p>\n<p style=\"color:#666\">{ig}</p>\n</body></html>\n"
    );
    Message {
        to: to.clone(),
        subject: subject.to_string(),
        text,
        html,
    }
}

/// The email that proves control of an address.
pub fn verification(to: &Email, link: &str, ttl: Duration) -> Message {
    message(
        to,
        "Verify your email address",
        "Please confirm that this is your email address.",
        "Verify your email address",
        link,
        &format!("This link expires in {} and works once.", humanize(ttl)),
        "If you did not create an account, ignore this email.",
    )
}

/// The email that lets a user choose a new password.
pub fn password_reset(to: &Email, link: &str, ttl: Duration) -> Message {
    message(
        to,
        "Reset your password",
        "Someone asked to reset the password of the account with this email address.",
        "Choose a new password",
        link,
        &format!("This link expires in {} and works once.", humanize(ttl)),
        "If you did not ask for this, ignore this email: your password stays as it is.",
    )
}

/// The email, to the new address, whose link moves the account there.
pub fn email_change(to: &Email, link: &str, ttl: Duration) -> Message {
    message(
        to,
        "Confirm your new email address",
        "Someone asked to move an account to this email address.",
        "Use this email address",
        link,
        &format!("This link expires in {} and works once.", humanize(ttl)),
        "If you did not ask for this, ignore this email: nothing changes.",
    )
}

/// The notice, without a link, to the current address of an account whose address may
/// change.
pub fn email_change_notice(to: &Email) -> Message {
    let text = "Someone who knows your password asked to change the email address of your \
                account. The change happens only when the link sent to the new address is \
                used, and it ends every session of the account.\n\nIf this was not you, \
                change your password now.\n";
    let html = format!(
        "<!doctype html>\n<html><body style=\"font-family:sans-serif\">\n<p>{}</p>\n</body></html>\n",
        escape_html(text).replace("\n\n", "</p>\n<p>")
    );
    Message {
        to: to.clone(),
        subject: "Your email address may change".to_string(),
        text: text.to_string(),
        html,
    }
}

/// The notice, to the address an account just left, that it moved to `new` (masked).
pub fn email_changed(to: &Email, new: &Email) -> Message {
    let text = format!(
        "The email address of your account was changed to {}, and every session of the \
         account ended.\n\nIf this was not you, contact the service's support at once.\n",
        new.masked()
    );
    let html = format!(
        "<!doctype html>\n<html><body style=\"font-family:sans-serif\">\n<p>{}</p>\n</body></html>\n",
        escape_html(&text).replace("\n\n", "</p>\n<p>")
    );
    Message {
        to: to.clone(),
        subject: "Your email address was changed".to_string(),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_picks_the_largest_whole_unit() {
        assert_eq!(humanize(Duration::from_secs(4 * 3600)), "4 hours");
        assert_eq!(humanize(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(humanize(Duration::from_secs(86_400)), "1 day");
        assert_eq!(humanize(Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn verification_email_has_link_and_expiry_in_both_parts() {
        let to = Email::parse("a@example.com").unwrap();
        let m = verification(
            &to,
            "https://x.example/verify-email?token=abc&x=<1>",
            Duration::from_secs(4 * 3600),
        );
        assert!(m
            .text
            .contains("https://x.example/verify-email?token=abc&x=<1>"));
        assert!(m.text.contains("expires in 4 hours"));
        assert!(m
            .html
            .contains("href=\"https://x.example/verify-email?token=abc&amp;x=&lt;1&gt;\""));
        assert!(m.html.contains("expires in 4 hours"));
    }
}
