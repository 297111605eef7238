//! The outbox (API.md "Outbox"): every message is a row written in the transaction of what
//! it reports or carries, and a worker on each instance sends it, with retries and backoff,
//! so that no request waits on SMTP and an outage loses nothing. With several instances on
//! PostgreSQL each message is claimed by one worker (`FOR UPDATE SKIP LOCKED`), and sent once.
//!
//! A password reset is special: the request writes only the address (the same work whether
//! an account has it or not, so neither the answer nor its time tells), and the worker finds
//! the account, issues the code and mails it, or drops the message when there is none.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::client::ClientInfo;
use super::codes::{Codes, Purpose};
use super::events;
use crate::db::outbox::{self, Message, NewMessage};
use crate::db::{self, Db, DbConn, users};
use crate::domain::{EventKind, MailKind, UserId};
use crate::error::Error;
use crate::mail::{Letter, Mailer, SendError};

/// How often a worker looks for due messages when nothing woke it: the wake-up is only this
/// instance's, and another instance's messages (or a retry's time) come due unannounced.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Messages a worker claims at once, and sends side by side.
const BATCH: i64 = 10;

/// How long a claimed message is left to its worker: past it (the worker died, say), another
/// worker may take it. Longer than a send may take.
const LEASE: Duration = Duration::from_secs(60);

/// How long one delivery may take, connection included.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The first retry's delay, doubled at each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// How long a notice (no code in it) is retried before it is given up.
const NOTICE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What a message ended as (`outbox.outcome`).
const SENT: &str = "sent";
const NO_ACCOUNT: &str = "no_account";
const FAILED: &str = "failed";

/// Wakes this instance's worker when a request has queued a message.
#[derive(Clone, Default)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    /// Call once the transaction that queued a message has committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// A message to queue, in the caller's transaction.
pub struct Outgoing<'a> {
    pub kind: MailKind,
    pub recipient: &'a str,
    pub user_id: Option<&'a UserId>,
    pub code: Option<&'a str>,
    /// What the message says beside its code: the new address, in a change notice.
    pub detail: Option<&'a str>,
    /// Who asked, for the event recorded when the message is prepared.
    pub requested_by: Option<&'a ClientInfo>,
}

impl<'a> Outgoing<'a> {
    /// A notice about the account, to `recipient`.
    pub fn notice(kind: MailKind, recipient: &'a str, user_id: &'a UserId) -> Self {
        Self {
            kind,
            recipient,
            user_id: Some(user_id),
            code: None,
            detail: None,
            requested_by: None,
        }
    }
}

pub fn enqueue(conn: &mut DbConn, message: &Outgoing<'_>) -> Result<(), Error> {
    let now = db::now();
    let ip = message
        .requested_by
        .and_then(|client| client.ip)
        .map(|ip| ip.to_string());
    outbox::insert(
        conn,
        &NewMessage {
            id: &uuid::Uuid::now_v7().to_string(),
            kind: message.kind,
            recipient: message.recipient,
            user_id: message.user_id,
            code: message.code,
            detail: message.detail,
            requested_ip: ip.as_deref(),
            requested_user_agent: message
                .requested_by
                .and_then(|client| client.user_agent.as_deref()),
            created_at: now,
            next_attempt_at: now,
        },
    )?;
    Ok(())
}

/// Issues a code for the account and queues the message that carries it to `email`, in the
/// caller's transaction: the code is never stored without its message.
pub fn mail_code(
    conn: &mut DbConn,
    codes: &Codes,
    user_id: &UserId,
    purpose: Purpose,
    email: &str,
) -> Result<(), Error> {
    let code = codes.issue(conn, user_id, purpose, email)?;
    let kind = match purpose {
        Purpose::PasswordReset => MailKind::PasswordReset,
        Purpose::EmailVerification => MailKind::EmailVerification,
        Purpose::EmailChange => MailKind::EmailChange,
    };
    enqueue(
        conn,
        &Outgoing {
            kind,
            recipient: email,
            user_id: Some(user_id),
            code: Some(&code),
            detail: None,
            requested_by: None,
        },
    )
}

/// The outbox's metrics, registered with the service's (see `metrics`).
#[derive(Clone)]
pub struct OutboxMetrics {
    sent: IntCounter,
    failed_attempts: IntCounter,
    given_up: IntCounter,
    waiting: IntGauge,
    oldest_waiting: IntGauge,
}

impl OutboxMetrics {
    pub fn new() -> prometheus::Result<Self> {
        Ok(Self {
            sent: IntCounter::new(
                "latchkey_mail_sent_total",
                "Messages the SMTP server accepted.",
            )?,
            failed_attempts: IntCounter::new(
                "latchkey_mail_failed_attempts_total",
                "Deliveries that failed (each is retried until its message is given up).",
            )?,
            given_up: IntCounter::new(
                "latchkey_mail_given_up_total",
                "Messages given up: refused for good by the server, or still failing when their \
                 code expired.",
            )?,
            waiting: IntGauge::new(
                "latchkey_mail_queued",
                "Messages in the outbox waiting to be sent (all instances').",
            )?,
            oldest_waiting: IntGauge::new(
                "latchkey_mail_oldest_waiting_seconds",
                "Age of the oldest message waiting in the outbox; 0 when none waits.",
            )?,
        })
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.sent.clone()),
            Box::new(self.failed_attempts.clone()),
            Box::new(self.given_up.clone()),
            Box::new(self.waiting.clone()),
            Box::new(self.oldest_waiting.clone()),
        ]
    }
}

/// What a mail says beside its code: the product's name and where links point.
#[derive(Clone)]
pub struct LetterSettings {
    pub app_name: String,
    /// With `{purpose}`, `{code}` and `{email}` to fill in.
    pub link_url: String,
}

impl LetterSettings {
    /// The link that opens the form for `purpose` with `code` and `email` filled in.
    pub fn link(&self, purpose: Purpose, code: &str, email: &str) -> String {
        let email = percent_encoding::utf8_percent_encode(email, QUERY_VALUE).to_string();
        self.link_url
            .replace("{purpose}", purpose.link_word())
            .replace("{code}", code)
            .replace("{email}", &email)
    }
}

/// Every character but the unreserved ones is escaped in a link's values.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Sends the outbox's messages, for one instance.
pub struct Worker {
    pub db: Db,
    pub mailer: Arc<Mailer>,
    pub codes: Codes,
    pub letters: LetterSettings,
    pub outbox: Outbox,
    pub metrics: OutboxMetrics,
}

impl Worker {
    /// Runs for as long as the server runs. On the tokio runtime itself, not actix's local
    /// task set: the runtime drops its tasks inside its own context as it shuts down, so the
    /// SMTP pool, which spawns its clean-up when dropped, can still do so.
    pub fn spawn(self) {
        tokio::spawn(self.run());
    }

    async fn run(self) {
        let worker = Arc::new(self);
        loop {
            if let Err(error) = worker.clone().drain().await {
                tracing::warn!(error = %error, "outbox: cannot read the queue; will retry");
            }
            worker.gauge().await;
            tokio::select! {
                () = worker.outbox.wake.notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// Sends what is due, batch after batch, until nothing is.
    pub async fn drain(self: Arc<Self>) -> Result<(), Error> {
        loop {
            let now = db::now();
            let lease_until = now + db::span(LEASE);
            let claimed = self
                .db
                .run(move |conn| {
                    db::write_transaction(conn, |conn| {
                        Ok::<_, Error>(outbox::claim(conn, now, lease_until, BATCH)?)
                    })
                })
                .await?;
            if claimed.is_empty() {
                return Ok(());
            }
            let deliveries = claimed.into_iter().map(|message| {
                let worker = self.clone();
                async move {
                    let id = message.id.clone();
                    if let Err(error) = worker.deliver(message).await {
                        // The lease runs out and the message is tried again.
                        tracing::warn!(error = %error, message_id = id, "outbox: delivery not recorded");
                    }
                }
            });
            futures_util::future::join_all(deliveries).await;
        }
    }

    async fn deliver(&self, message: Message) -> Result<(), Error> {
        let code = match (message.kind, &message.code) {
            (MailKind::PasswordReset, None) => match self.prepare_reset(&message).await? {
                Some(code) => Some(code),
                None => return Ok(()),
            },
            (_, code) => code.clone().map(Zeroizing::new),
        };
        let Some(letter) = self.letter(&message, code.as_deref().map(String::as_str)) else {
            tracing::error!(message_id = message.id, kind = %message.kind, "outbox: a message without its code");
            return self
                .finish(&message, FAILED, Some("the message lost its code"))
                .await;
        };
        let rendered = crate::mail::render(&letter, &self.letters.app_name);
        let sent = tokio::time::timeout(
            SEND_TIMEOUT,
            self.mailer.send(&message.recipient, &rendered),
        )
        .await
        .unwrap_or_else(|_| Err(SendError::Transient("timed out".into())));
        match sent {
            Ok(reply) => {
                self.metrics.sent.inc();
                tracing::info!(message_id = message.id, kind = %message.kind, reply, "mail sent");
                self.finish(&message, SENT, None).await
            }
            Err(error) => {
                self.metrics.failed_attempts.inc();
                self.failed(&message, &error).await
            }
        }
    }

    /// Finds the account a reset was asked for and issues its code, with the request's
    /// event; or drops the message when no enabled account has the address. Answers the code.
    async fn prepare_reset(&self, message: &Message) -> Result<Option<Zeroizing<String>>, Error> {
        let (codes, message) = (self.codes.clone(), message.clone());
        self.db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let account = users::find_by_email(conn, &message.recipient)?
                        .filter(|user| user.disabled_at.is_none());
                    let Some(user) = account else {
                        outbox::finish(conn, &message.id, NO_ACCOUNT, None, db::now())?;
                        return Ok(None);
                    };
                    let code = codes.issue(conn, &user.id, Purpose::PasswordReset, &user.email)?;
                    outbox::set_code(conn, &message.id, &user.id, &code)?;
                    let client = ClientInfo {
                        ip: message
                            .requested_ip
                            .as_deref()
                            .and_then(|ip| ip.parse().ok()),
                        user_agent: message.requested_user_agent.clone(),
                    };
                    events::record(
                        conn,
                        &user.id,
                        EventKind::PasswordResetRequested,
                        &client,
                        None,
                    )?;
                    Ok::<_, Error>(Some(code))
                })
            })
            .await
    }

    /// The letter a message is, `None` if it needs a code and has none.
    fn letter(&self, message: &Message, code: Option<&str>) -> Option<Letter> {
        let with_code = |purpose: Purpose| {
            code.map(|code| {
                (
                    code.to_owned(),
                    self.letters.link(purpose, code, &message.recipient),
                )
            })
        };
        let valid_for_minutes = self.codes.ttl().as_secs() / 60;
        Some(match message.kind {
            MailKind::PasswordReset => {
                let (code, link) = with_code(Purpose::PasswordReset)?;
                Letter::PasswordReset {
                    code,
                    link,
                    valid_for_minutes,
                }
            }
            MailKind::EmailVerification => {
                let (code, link) = with_code(Purpose::EmailVerification)?;
                Letter::EmailVerification {
                    code,
                    link,
                    valid_for_minutes,
                }
            }
            MailKind::EmailChange => {
                let (code, link) = with_code(Purpose::EmailChange)?;
                Letter::EmailVerification {
                    code,
                    link,
                    valid_for_minutes,
                }
            }
            MailKind::PasswordChanged => Letter::PasswordChanged,
            MailKind::EmailChangeRequested => Letter::EmailChangeRequested {
                new_email: message.detail.clone().unwrap_or_default(),
            },
        })
    }

    /// Retries a failed delivery after its backoff, or gives it up: at once when the server
    /// refused it for good, or when its code would be dead by the next try.
    async fn failed(&self, message: &Message, error: &SendError) -> Result<(), Error> {
        let now = db::now();
        let retry_at = now + db::span(backoff(message.attempts));
        let lifetime = match message.kind {
            MailKind::PasswordChanged | MailKind::EmailChangeRequested => NOTICE_LIFETIME,
            _ => self.codes.ttl(),
        };
        let give_up = matches!(error, SendError::Permanent(_))
            || retry_at >= message.created_at + db::span(lifetime);
        let reason = error.to_string();
        if give_up {
            self.metrics.given_up.inc();
            tracing::warn!(message_id = message.id, kind = %message.kind, attempts = message.attempts, error = reason, "mail given up");
            return self.finish(message, FAILED, Some(&reason)).await;
        }
        tracing::warn!(message_id = message.id, kind = %message.kind, attempts = message.attempts, error = reason, %retry_at, "mail not sent; will retry");
        let id = message.id.clone();
        self.db
            .run(move |conn| Ok(outbox::retry_at(conn, &id, retry_at, &reason).map(drop)?))
            .await
    }

    async fn finish(
        &self,
        message: &Message,
        outcome: &'static str,
        error: Option<&str>,
    ) -> Result<(), Error> {
        let (id, error) = (message.id.clone(), error.map(str::to_owned));
        self.db
            .run(move |conn| {
                Ok(outbox::finish(conn, &id, outcome, error.as_deref(), db::now()).map(drop)?)
            })
            .await
    }

    /// Refreshes the gauges of the queue.
    async fn gauge(&self) {
        match self.db.run(|conn| Ok(outbox::waiting(conn)?)).await {
            Ok((waiting, oldest)) => {
                self.metrics.waiting.set(waiting);
                self.metrics
                    .oldest_waiting
                    .set(age_seconds(oldest, db::now()));
            }
            Err(error) => tracing::debug!(error = %error, "outbox: cannot read the queue's size"),
        }
    }
}

/// The delay before the next try of a message tried `attempts` times.
fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn age_seconds(oldest: Option<NaiveDateTime>, now: NaiveDateTime) -> i64 {
    oldest.map_or(0, |at| (now - at).num_seconds().max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(4), Duration::from_secs(16));
        assert_eq!(backoff(20), MAX_BACKOFF);
        assert_eq!(backoff(i32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(0), Duration::from_secs(2));
    }

    #[test]
    fn links_carry_the_purpose_code_and_escaped_email() {
        let letters = LetterSettings {
            app_name: "Latchkey".into(),
            link_url: "https://auth.example.com/#{purpose}?code={code}&email={email}".into(),
        };
        assert_eq!(
            letters.link(Purpose::PasswordReset, "ABCD1234", "a+b&c=d@example.com"),
            "https://auth.example.com/#reset?code=ABCD1234&email=a%2Bb%26c%3Dd%40example.com"
        );
        assert!(
            letters
                .link(Purpose::EmailChange, "X", "e")
                .starts_with("https://auth.example.com/#verify?")
        );
    }
}
