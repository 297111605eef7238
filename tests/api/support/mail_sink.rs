//! A real SMTP server for the mail tests: `mailin-embedded` on a loopback port, in a thread
//! of its own, keeping every message it is given, read back with `mail-parser`.
//!
//! Stopping: `mailin-embedded` serves until the process ends, with no way to stop it. A
//! dropped sink refuses every new conversation and every new message with `421` (which a
//! client takes for a temporary failure), but its port stays bound until the test process
//! exits. Its thread is detached and never holds the process up.
//!
//! Every recipient is accepted except `bounce@…`, refused with `550 Mailbox unavailable`.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::response::{NO_MAILBOX, NO_SERVICE, OK};
use mailin_embedded::{Response, Server};

/// One message as the sink got it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The `From` header: `Name <address>`, or the bare address.
    pub from: String,
    /// The envelope's recipients (`RCPT TO`), without angle brackets.
    pub to: Vec<String>,
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
    /// The message as it came over the wire, headers and all.
    pub raw: String,
}

impl Mail {
    /// The one-time code: the line `Your code: XXXXXXXX` of the text part (the template's
    /// `latchkey::mail::CODE_LABEL`), 8 characters of Crockford base32 in capitals.
    pub fn code(&self) -> String {
        let code = self
            .text
            .lines()
            .find_map(|line| line.strip_prefix(latchkey::mail::CODE_LABEL))
            .unwrap_or_else(|| panic!("no code line in: {}", self.text))
            .trim();
        assert!(
            code.len() == 8
                && code
                    .chars()
                    .all(|c| matches!(c, '0'..='9' | 'A'..='H' | 'J' | 'K' | 'M' | 'N' | 'P'..='T' | 'V'..='Z')),
            "not an 8-character Crockford base32 code: {code:?}"
        );
        code.to_owned()
    }

    /// The first http(s) URL of the text part.
    pub fn link(&self) -> String {
        let start = ["https://", "http://"]
            .iter()
            .filter_map(|scheme| self.text.find(scheme))
            .min()
            .unwrap_or_else(|| panic!("no link in: {}", self.text));
        self.text[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    /// Never panics: it runs on the server's thread, where a panic would only show as a
    /// message that never arrives.
    fn parse(raw: Vec<u8>, to: Vec<String>) -> Self {
        let parsed = mail_parser::MessageParser::default().parse(&raw);
        let from = parsed
            .as_ref()
            .and_then(|message| message.from())
            .and_then(|from| from.first())
            .map(|from| match (from.name(), from.address()) {
                (Some(name), Some(address)) => format!("{name} <{address}>"),
                (_, address) => address.unwrap_or_default().to_owned(),
            })
            .unwrap_or_default();
        let part = |text: Option<std::borrow::Cow<'_, str>>| text.unwrap_or_default().into_owned();
        Self {
            from,
            to,
            subject: parsed
                .as_ref()
                .and_then(|message| message.subject())
                .unwrap_or_default()
                .to_owned(),
            text: part(parsed.as_ref().and_then(|message| message.body_text(0))),
            html: part(parsed.as_ref().and_then(|message| message.body_html(0))),
            raw: String::from_utf8_lossy(&raw).into_owned(),
        }
    }
}

/// What the sink's threads share.
#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Mail>>,
    received: AtomicUsize,
    stopped: AtomicBool,
}

/// The SMTP conversation of one connection (`mailin-embedded` clones one per connection).
#[derive(Clone)]
struct Session {
    inbox: Arc<Inbox>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for Session {
    fn helo(&mut self, _ip: std::net::IpAddr, _domain: &str) -> Response {
        self.open()
    }

    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        self.open()
    }

    /// A recipient named `bounce@…` does not exist: the permanent refusal of real servers.
    fn rcpt(&mut self, to: &str) -> Response {
        if to.trim_start_matches('<').starts_with("bounce@") {
            NO_MAILBOX
        } else {
            OK
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to
            .iter()
            .map(|to| to.trim_matches(|c| c == '<' || c == '>').to_owned())
            .collect();
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = Mail::parse(std::mem::take(&mut self.data), std::mem::take(&mut self.to));
        self.inbox.messages.lock().unwrap().push(mail);
        let number = self.inbox.received.fetch_add(1, Ordering::SeqCst) + 1;
        Response::custom(250, format!("2.0.0 OK: queued as {number}"))
    }
}

impl Session {
    fn open(&self) -> Response {
        if self.inbox.stopped.load(Ordering::SeqCst) {
            NO_SERVICE
        } else {
            OK
        }
    }
}

/// A running SMTP server on 127.0.0.1 that keeps what it gets.
pub struct MailSink {
    port: u16,
    inbox: Arc<Inbox>,
}

impl MailSink {
    /// On a free port.
    pub fn start() -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").expect("binding the mail sink"))
    }

    /// On `port`: an application pointed there finds no SMTP server until the sink starts.
    pub fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|error| panic!("binding the mail sink to port {port}: {error}"));
        Self::serve(listener)
    }

    /// Already listening when this returns: connections wait in the backlog until the
    /// server's thread accepts them.
    fn serve(listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let inbox = Arc::new(Inbox::default());
        let mut server = Server::new(Session {
            inbox: Arc::clone(&inbox),
            to: Vec::new(),
            data: Vec::new(),
        });
        // One thread per live connection: a client's pool parks its idle connections here.
        server
            .with_name("mail-sink.test")
            .with_num_threads(16)
            .with_tcp_listener(listener);
        std::thread::Builder::new()
            .name(format!("mail-sink-{port}"))
            .spawn(move || {
                // Only opening a listener fails, and this one is open already.
                if let Err(error) = server.serve() {
                    eprintln!("the mail sink on port {port} stopped: {error}");
                }
            })
            .expect("starting the mail sink's thread");
        Self { port, inbox }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `LATCHKEY_SMTP_URL` that reaches this sink.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in order of arrival.
    pub fn all(&self) -> Vec<Mail> {
        self.inbox.messages.lock().unwrap().clone()
    }

    /// The messages received so far for `to` (case-insensitive), in order of arrival.
    pub fn messages_to(&self, to: &str) -> Vec<Mail> {
        self.all()
            .into_iter()
            .filter(|mail| mail.to.iter().any(|rcpt| rcpt.eq_ignore_ascii_case(to)))
            .collect()
    }

    /// Waits until at least `count` messages for `to` have arrived, and answers them all;
    /// panics after `timeout`, listing what did arrive.
    pub async fn wait_for(&self, to: &str, count: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages_to(to);
            if messages.len() >= count {
                return messages;
            }
            if Instant::now() >= deadline {
                let arrived: Vec<String> = self
                    .all()
                    .iter()
                    .map(|mail| format!("{:?} to {:?}", mail.subject, mail.to))
                    .collect();
                panic!(
                    "expected {count} message(s) to {to} within {timeout:?}, got {}; the sink on \
                     port {} has {}: {arrived:#?}",
                    messages.len(),
                    self.port,
                    arrived.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.inbox.stopped.store(true, Ordering::SeqCst);
    }
}
