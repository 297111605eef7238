//! Mail: what the service's messages say (`templates`, compiled in) and how they go out
//! (`smtp`: SMTP through `lettre`, or the log when no SMTP server is configured). Which
//! message goes when is the outbox's business (`auth::outbox`); this module only renders
//! and delivers one.

mod smtp;
mod templates;

use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};
use secrecy::ExposeSecret as _;

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
    /// Worth another try later: the server could not be reached, timed out, answered 4xx,
    /// or refused the credentials (which refuses every message until they are mended).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Another try would fail the same way: the server refused the message (5xx), or the
    /// recipient is not an address.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Delivers messages: over SMTP, or into the log.
pub struct Mailer {
    from: Mailbox,
    backend: Backend,
}

enum Backend {
    /// No `LATCHKEY_SMTP_URL`: each message is written to the log at `info`.
    Log,
    Smtp(Box<smtp::Smtp>),
}

impl Mailer {
    /// With an SMTP URL, must run inside a tokio runtime (the connection pool starts a task
    /// there), and the mailer is best used from that runtime. No connection is opened yet.
    pub fn new(settings: &MailSettings) -> anyhow::Result<Self> {
        let from =
            settings.from.trim().parse::<Mailbox>().map_err(|error| {
                anyhow::anyhow!("LATCHKEY_MAIL_FROM is not an address ({error})")
            })?;
        let backend = match &settings.smtp_url {
            None => Backend::Log,
            Some(url) => Backend::Smtp(Box::new(smtp::Smtp::new(url.expose_secret())?)),
        };
        Ok(Self { from, backend })
    }

    /// Where mail goes, for the start-up log: the SMTP server (without credentials), or
    /// that mail is only logged.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Log => "mail is NOT sent: LATCHKEY_SMTP_URL is not set, so each message \
                             is written to the log (at info level) instead"
                .to_owned(),
            Backend::Smtp(smtp) => format!("mail goes out through {}", smtp.endpoint),
        }
    }

    /// Sends one message to `to`; answers the server's reply (like `250 2.0.0 Ok: queued`),
    /// or `logged` without an SMTP server.
    pub async fn send(&self, to: &str, message: &Rendered) -> Result<String, SendError> {
        let recipient: Address = to.trim().parse().map_err(|error| {
            SendError::Permanent(format!("the recipient is not an address ({error})"))
        })?;
        match &self.backend {
            Backend::Log => {
                tracing::info!(
                    to = %recipient,
                    subject = %message.subject,
                    text = %message.text,
                    "mail not sent (LATCHKEY_SMTP_URL is not set); logged instead"
                );
                Ok("logged".to_owned())
            }
            Backend::Smtp(smtp) => smtp.send(self.message(recipient, message)?).await,
        }
    }

    /// A multipart/alternative message: the text part first, the HTML part preferred.
    fn message(&self, to: Address, rendered: &Rendered) -> Result<Message, SendError> {
        // The sender's domain names the message, rather than this machine's host name.
        let message_id = format!(
            "<{}@{}>",
            uuid::Uuid::now_v7().simple(),
            self.from.email.domain()
        );
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(rendered.subject.clone())
            .message_id(Some(message_id))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html.clone(),
            ))
            .map_err(|error| SendError::Permanent(format!("the message cannot be built ({error})")))
    }
}

/// Checks an `LATCHKEY_SMTP_URL` value: `smtp://` or `smtps://`, a host, an optional port,
/// credentials as `USER:PASSWORD@` (both or neither), and `?tls=required|opportunistic` with
/// `smtp://` only. The problem, in words that never repeat the password, if it cannot be
/// used.
pub fn check_smtp_url(raw: &str) -> Result<(), String> {
    smtp::Endpoint::parse(raw).map(drop)
}

/// Checks a sender (`LATCHKEY_MAIL_FROM`): `Name <address>` or a bare address.
pub fn check_mailbox(raw: &str) -> Result<(), String> {
    raw.trim().parse::<Mailbox>().map(drop).map_err(|error| {
        format!("expected an address like `Name <name@example.com>`, got {raw:?} ({error})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_mailboxes() {
        for raw in [
            "Latchkey <latchkey@localhost>",
            "latchkey@example.com",
            " \"Acme, Inc.\" <no-reply@acme.example> ",
        ] {
            assert_eq!(check_mailbox(raw), Ok(()), "{raw:?}");
        }
        for raw in [
            "",
            "latchkey",
            "Latchkey <latchkey>",
            "a@b@c",
            "<@example.com>",
        ] {
            assert!(check_mailbox(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn smtp_urls_are_checked_without_repeating_passwords() {
        assert_eq!(check_smtp_url("smtp://127.0.0.1:2525"), Ok(()));
        let problem = check_smtp_url("smtp://u:s3cr3t@host?tls=maybe").unwrap_err();
        assert!(!problem.contains("s3cr3t"), "{problem}");
    }

    #[actix_web::test]
    async fn describe_says_where_mail_goes() {
        let mut settings = MailSettings {
            smtp_url: None,
            from: "Latchkey <latchkey@localhost>".into(),
            app_name: "Latchkey".into(),
        };
        let logged = Mailer::new(&settings).unwrap().describe();
        assert!(
            logged.contains("NOT sent") && logged.contains("log"),
            "{logged}"
        );

        settings.smtp_url = Some("smtp://user:s3cr3t@mail.example.com:587?tls=required".into());
        let smtp = Mailer::new(&settings).unwrap().describe();
        assert_eq!(
            smtp,
            "mail goes out through smtp://mail.example.com:587 (STARTTLS required, with a user \
             name and password)"
        );
    }

    #[actix_web::test]
    async fn the_log_backend_refuses_what_smtp_would_refuse() {
        let settings = MailSettings {
            smtp_url: None,
            from: "latchkey@localhost".into(),
            app_name: "Latchkey".into(),
        };
        let mailer = Mailer::new(&settings).unwrap();
        let message = render(&Letter::Test, "Latchkey");
        assert_eq!(
            mailer.send("ada@example.com", &message).await.unwrap(),
            "logged"
        );
        assert!(matches!(
            mailer.send("not an address", &message).await,
            Err(SendError::Permanent(_))
        ));
    }
}
