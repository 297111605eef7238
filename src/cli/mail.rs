//! `latchkey mail test`: one message straight through the configured SMTP server (not
//! through the outbox, and without the database), to check the mail settings.

use super::CliError;
use crate::config::{LATCHKEY_SMTP_URL, Settings};
use crate::mail::{self, Letter, Mailer};

/// Exits 1 without an SMTP server: the operator asked whether mail goes out, and it does
/// not. The message is still handed to the log, as the service would.
pub async fn test(settings: Settings, to: &str) -> Result<(), CliError> {
    let mailer = Mailer::new(&settings.mail)?;
    let message = mail::render(&Letter::Test, &settings.mail.app_name);
    let reply = mailer.send(to, &message).await.map_err(|error| {
        CliError::Rejected(format!(
            "test message to {to} not sent: {error}; {}",
            mailer.describe()
        ))
    })?;
    if settings.mail.smtp_url.is_none() {
        return Err(CliError::Rejected(format!(
            "{LATCHKEY_SMTP_URL} is not set: mail is not sent, so the test message to {to} was \
             only written to the log (at info level); set {LATCHKEY_SMTP_URL} to send it"
        )));
    }
    println!("test message sent to {to}; {}", mailer.describe());
    println!("server answered: {reply}");
    Ok(())
}
