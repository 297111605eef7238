//! Delivery over SMTP with `lettre`: what an `LATCHKEY_SMTP_URL` may say, how it is shown
//! without its credentials, and how the client's failures sort into worth-retrying or not.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use lettre::transport::smtp::{self, AsyncSmtpTransportBuilder, PoolConfig, response::Response};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use super::SendError;

/// How long opening a connection (TCP, and the TLS handshake of `smtps://`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one message may take from start to the server's answer. `lettre` bounds only
/// the connection with its timeout; a server that accepts and then says nothing would
/// otherwise hold a sender forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections kept open between messages: mail comes in small bursts from one worker.
const POOL_SIZE: u32 = 2;

/// An idle connection is closed after this long (servers drop idle clients after a few
/// minutes anyway, RFC 5321 § 4.5.3.2.7).
const POOL_IDLE: Duration = Duration::from_secs(60);

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Where mail goes, as an `LATCHKEY_SMTP_URL` says, with nothing secret in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    security: Security,
    /// As written in a URL: a name, an IPv4 address, or an IPv6 address in brackets.
    host: String,
    port: u16,
    authenticated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `smtp://`: plain text, STARTTLS never tried.
    Plain,
    /// `smtp://…?tls=opportunistic`: STARTTLS when the server offers it.
    StartTlsOpportunistic,
    /// `smtp://…?tls=required`: STARTTLS, or no mail.
    StartTlsRequired,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

impl Endpoint {
    /// Reads an `LATCHKEY_SMTP_URL`. Every problem is told without repeating the URL: it may
    /// hold a password.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::with_builder(raw).map(|(endpoint, _)| endpoint)
    }

    /// The endpoint, and lettre's transport builder for it.
    fn with_builder(raw: &str) -> Result<(Self, AsyncSmtpTransportBuilder), String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        let url = url::Url::parse(raw).map_err(|error| {
            format!("is not a URL ({error}); expected smtp://HOST[:PORT] or smtps://HOST[:PORT]")
        })?;
        let scheme = url.scheme();
        if scheme != "smtp" && scheme != "smtps" {
            return Err(format!(
                "must start with smtp:// or smtps://, not {scheme}:"
            ));
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err("names no host, like smtp://mail.example.com:587".into()),
        };
        let mut tls = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "tls" if tls.is_some() => return Err("gives `tls` more than once".into()),
                "tls" => tls = Some(value.into_owned()),
                other => {
                    return Err(format!(
                        "has an unknown parameter `{other}` (the only one is `tls`)"
                    ));
                }
            }
        }
        let security = match (scheme, tls.as_deref()) {
            ("smtp", None) => Security::Plain,
            ("smtp", Some("required")) => Security::StartTlsRequired,
            ("smtp", Some("opportunistic")) => Security::StartTlsOpportunistic,
            ("smtp", Some(_)) => {
                return Err("`tls` must be `required` or `opportunistic`".into());
            }
            _ if tls.is_some() => {
                return Err(
                    "`tls` has no meaning with smtps://, which always uses TLS; remove it".into(),
                );
            }
            _ => Security::Tls,
        };
        let authenticated = match (url.username().is_empty(), url.password()) {
            (true, None) => false,
            (false, Some(_)) => true,
            (false, None) => {
                return Err(
                    "has a user name but no password; write smtp://USER:PASSWORD@HOST (with \
                     URL escapes, like %40 for @)"
                        .into(),
                );
            }
            (true, Some(_)) => return Err("has a password but no user name".into()),
        };
        // What lettre itself makes of it (percent escapes in the credentials, a host a TLS
        // certificate can name): its errors are not repeated, lest they quote the URL.
        let builder = Transport::from_url(raw).map_err(|_| {
            "is not usable by the SMTP client: check the escapes in the user name and password, \
             and the host name"
                .to_owned()
        })?;
        let port = url.port().unwrap_or(match security {
            Security::Plain => smtp::SMTP_PORT,
            Security::StartTlsOpportunistic | Security::StartTlsRequired => smtp::SUBMISSION_PORT,
            Security::Tls => smtp::SUBMISSIONS_PORT,
        });
        let endpoint = Self {
            security,
            host,
            port,
            authenticated,
        };
        Ok((endpoint, builder))
    }
}

/// `smtp://mail.example.com:587 (STARTTLS required, with a user name and password)`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, security) = match self.security {
            Security::Plain => ("smtp", "plain text, no TLS"),
            Security::StartTlsOpportunistic => ("smtp", "STARTTLS when the server offers it"),
            Security::StartTlsRequired => ("smtp", "STARTTLS required"),
            Security::Tls => ("smtps", "TLS"),
        };
        write!(f, "{scheme}://{}:{} ({security}", self.host, self.port)?;
        if self.authenticated {
            f.write_str(", with a user name and password")?;
        }
        f.write_str(")")
    }
}

/// A pool of connections to one SMTP server.
pub struct Smtp {
    pub endpoint: Endpoint,
    builder: AsyncSmtpTransportBuilder,
    /// Replaced by a fresh pool after a send times out: the abandoned connection may be
    /// parked mid-conversation and must not carry the next message.
    transport: ArcSwap<Transport>,
}

impl Smtp {
    /// Must run inside a tokio runtime: the pool starts its clean-up task there.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let (endpoint, builder) = Endpoint::with_builder(url)
            .map_err(|problem| anyhow::anyhow!("LATCHKEY_SMTP_URL {problem}"))?;
        if tokio::runtime::Handle::try_current().is_err() {
            anyhow::bail!("the SMTP mailer must be created inside a tokio runtime");
        }
        let builder = builder.timeout(Some(CONNECT_TIMEOUT)).pool_config(
            PoolConfig::new()
                .max_size(POOL_SIZE)
                .idle_timeout(POOL_IDLE),
        );
        Ok(Self {
            endpoint,
            transport: ArcSwap::from_pointee(builder.clone().build()),
            builder,
        })
    }

    /// Sends `message`; answers the server's reply to it, like `250 2.0.0 Ok: queued`.
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        let transport = self.transport.load_full();
        match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
            Ok(Ok(response)) => Ok(reply(&response)),
            Ok(Err(error)) => Err(classify(&error)),
            Err(_elapsed) => {
                self.transport.store(Arc::new(self.builder.clone().build()));
                Err(SendError::Transient(format!(
                    "no answer from the server within {} s",
                    SEND_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

impl Drop for Smtp {
    /// The pool spawns its shutdown onto the current tokio runtime when dropped, and that
    /// panics outside one: a mailer dropped there (at the end of `main`, say) is leaked
    /// instead, which costs nothing as the process is ending.
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            std::mem::forget(self.transport.load_full());
        }
    }
}

/// The server's answer on one line: `250 2.0.0 Ok: queued as 1234`.
fn reply(response: &Response) -> String {
    let lines: Vec<&str> = response.message().map(str::trim).collect();
    one_line(&format!("{} {}", response.code(), lines.join(" ")))
}

/// A failure, sorted. A 5xx reply means the server will refuse this message again, except
/// the replies about authentication (RFC 4954: 530, 534, 535, 538): those refuse every
/// message until the configuration is mended, so the message is worth keeping. Anything
/// else (no connection, a timeout, TLS, a 4xx reply, a garbled answer) may pass later.
/// lettre's error texts carry the server's words, never the credentials.
fn classify(error: &smtp::Error) -> SendError {
    let text = one_line(&error.to_string());
    let about_authentication = error
        .status()
        .is_some_and(|code| matches!(code.to_string().as_str(), "530" | "534" | "535" | "538"));
    if error.is_permanent() && !about_authentication {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}

/// A server's multi-line answer as one line, for logs and the outbox's last error.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(raw: &str) -> String {
        Endpoint::parse(raw).unwrap().to_string()
    }

    #[test]
    fn the_urls_of_the_contract_are_accepted_and_shown_without_credentials() {
        assert_eq!(
            shown("smtp://mail.example.com:25"),
            "smtp://mail.example.com:25 (plain text, no TLS)"
        );
        assert_eq!(
            shown("smtps://user:pass@mail.example.com:465"),
            "smtps://mail.example.com:465 (TLS, with a user name and password)"
        );
        assert_eq!(
            shown("smtp://mail.example.com:587?tls=required"),
            "smtp://mail.example.com:587 (STARTTLS required)"
        );
        assert_eq!(
            shown(" smtp://127.0.0.1:2525?tls=opportunistic "),
            "smtp://127.0.0.1:2525 (STARTTLS when the server offers it)"
        );
    }

    #[test]
    fn ports_default_by_security() {
        assert_eq!(
            shown("smtp://mx.example.com"),
            "smtp://mx.example.com:25 (plain text, no TLS)"
        );
        assert_eq!(
            shown("smtp://u%40x.org:p%2Fw@mx.example.com?tls=required"),
            "smtp://mx.example.com:587 (STARTTLS required, with a user name and password)"
        );
        assert_eq!(
            shown("smtps://mx.example.com"),
            "smtps://mx.example.com:465 (TLS)"
        );
        assert_eq!(
            shown("smtp://[::1]:2525"),
            "smtp://[::1]:2525 (plain text, no TLS)"
        );
    }

    #[test]
    fn unusable_urls_are_refused_with_the_reason() {
        for (raw, reason) in [
            ("", "must not be empty"),
            ("   ", "must not be empty"),
            ("mail.example.com:25", "must start with smtp:// or smtps://"),
            (
                "http://mail.example.com",
                "must start with smtp:// or smtps://",
            ),
            ("smtp://", "names no host"),
            ("smtp:///path", "names no host"),
            (
                "smtp://mail.example.com?tls=yes",
                "`tls` must be `required` or",
            ),
            (
                "smtp://mail.example.com?tls=required&tls=required",
                "more than once",
            ),
            (
                "smtps://mail.example.com?tls=required",
                "no meaning with smtps://",
            ),
            (
                "smtp://mail.example.com?timeout=5",
                "unknown parameter `timeout`",
            ),
            (
                "smtp://user@mail.example.com",
                "a user name but no password",
            ),
            (
                "smtp://:secret@mail.example.com",
                "a password but no user name",
            ),
            ("smtp://mail.example.com:99999", "is not a URL"),
            (
                "smtp://u:%FF@mail.example.com",
                "not usable by the SMTP client",
            ),
        ] {
            let problem = Endpoint::parse(raw).unwrap_err();
            assert!(problem.contains(reason), "{raw:?}: {problem}");
        }
    }

    #[test]
    fn no_refusal_repeats_the_password() {
        for raw in [
            "smtp://user:hunter2@mail.example.com?tls=nope",
            "smtps://user:hunter2@mail.example.com?tls=required",
            "smtp://user:hunter2@mail.example.com?x=1",
            "ftp://user:hunter2@mail.example.com",
            "smtp://user:hunter2@mail.example.com:notaport",
            "smtp://user:hunter2%FF@mail.example.com",
            "smtp://:hunter2@mail.example.com",
            "smtp://user:hunter2@",
        ] {
            let problem = Endpoint::parse(raw).unwrap_err();
            assert!(!problem.contains("hunter2"), "{raw:?}: {problem}");
        }
    }

    #[test]
    fn multi_line_answers_become_one_line() {
        assert_eq!(
            one_line("550 5.1.1 no\n such\r\n  user"),
            "550 5.1.1 no such user"
        );
    }
}
