//! Mail over real SMTP: the library's mailer against the test sink over TCP, how its
//! failures sort, and `latchkey mail test` as an operator runs it.

use std::time::{Duration, Instant};

use latchkey::config::MailSettings;
use latchkey::mail::{self, Letter, Mailer, SendError};

use crate::support::cli::{self, assert_one_line_failure, assert_success, stderr_of};
use crate::support::free_ports;
use crate::support::mail_sink::MailSink;

/// Long enough for a loaded machine; a delivery on loopback takes milliseconds.
const WAIT: Duration = Duration::from_secs(10);

fn mailer(smtp_url: Option<String>) -> Mailer {
    Mailer::new(&MailSettings {
        smtp_url: smtp_url.map(Into::into),
        from: "Acme <no-reply@acme.example>".into(),
        app_name: "Acme".into(),
    })
    .expect("a mailer")
}

fn test_message() -> mail::Rendered {
    mail::render(&Letter::Test, "Acme")
}

#[actix_web::test]
async fn a_rendered_letter_reaches_the_sink_with_its_code_and_link() {
    let sink = MailSink::start();
    let mailer = mailer(Some(sink.url()));
    let link = "http://localhost:8080/#reset?code=7K3M9QZP&email=ada%40example.com";
    let letter = Letter::PasswordReset {
        code: "7K3M9QZP".into(),
        link: link.into(),
        valid_for_minutes: 30,
    };

    let reply = mailer
        .send("ada@example.com", &mail::render(&letter, "Acme <b>&"))
        .await
        .unwrap();
    let notice = mail::render(&Letter::PasswordChanged, "Acme <b>&");
    mailer.send("bob@example.com", &notice).await.unwrap();

    assert_eq!(reply, "250 2.0.0 OK: queued as 1");
    let mails = sink.wait_for("ada@example.com", 1, WAIT).await;
    let mail = &mails[0];
    assert_eq!(mail.from, "Acme <no-reply@acme.example>");
    assert_eq!(mail.to, ["ada@example.com"]);
    assert_eq!(mail.subject, "Reset your Acme <b>& password");
    assert_eq!(mail.code(), "7K3M9QZP");
    assert_eq!(mail.link(), link);
    assert!(mail.text.contains("valid for 30 minutes"), "{}", mail.text);
    assert!(
        mail.text.trim_end().ends_with("— Acme <b>&"),
        "{:?}",
        mail.text
    );
    assert!(mail.html.contains(">7K3M9QZP</p>"), "{}", mail.html);
    assert!(
        mail.html.contains("— Acme &lt;b&gt;&amp;</p>"),
        "{}",
        mail.html
    );
    assert!(!mail.html.contains("<b>"), "{}", mail.html);
    assert!(mail.raw.contains("multipart/alternative"), "{}", mail.raw);
    assert!(
        mail.raw.contains("@acme.example>\r\n"),
        "a Message-ID: {}",
        mail.raw
    );
    // The second went over the same pooled connection, or a new one: both arrive.
    let notices = sink.wait_for("BOB@example.com", 1, WAIT).await;
    assert_eq!(notices[0].subject, "Your Acme <b>& password was changed");
    assert_eq!(sink.all().len(), 2);
    assert_eq!(sink.messages_to("ada@example.com").len(), 1);
}

#[actix_web::test]
async fn no_server_is_a_quick_temporary_failure_until_one_listens() {
    let [port] = free_ports::<1>();
    let mailer = mailer(Some(format!("smtp://127.0.0.1:{port}")));

    let started = Instant::now();
    let error = mailer
        .send("ada@example.com", &test_message())
        .await
        .unwrap_err();

    assert!(matches!(error, SendError::Transient(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let sink = MailSink::start_on(port);
    assert_eq!(sink.port(), port);
    let reply = mailer
        .send("ada@example.com", &test_message())
        .await
        .unwrap();
    assert!(reply.starts_with("250 "), "{reply}");
    sink.wait_for("ada@example.com", 1, WAIT).await;
}

#[actix_web::test]
async fn a_server_that_stopped_serving_is_a_temporary_failure() {
    let sink = MailSink::start();
    let mailer = mailer(Some(sink.url()));
    drop(sink);

    let error = mailer
        .send("ada@example.com", &test_message())
        .await
        .unwrap_err();

    assert!(
        matches!(error, SendError::Transient(ref text) if text.contains("421")),
        "{error:?}"
    );
}

#[actix_web::test]
async fn a_refused_recipient_or_a_non_address_is_a_permanent_failure() {
    let sink = MailSink::start();
    let mailer = mailer(Some(sink.url()));

    let refused = mailer
        .send("bounce@example.com", &test_message())
        .await
        .unwrap_err();
    let malformed = mailer
        .send("not an address", &test_message())
        .await
        .unwrap_err();

    assert!(
        matches!(refused, SendError::Permanent(ref text) if text.contains("550")),
        "{refused:?}"
    );
    assert!(
        matches!(malformed, SendError::Permanent(_)),
        "{malformed:?}"
    );
    // A refusal holds up nothing: the next message goes out.
    mailer
        .send("ada@example.com", &test_message())
        .await
        .unwrap();
    sink.wait_for("ada@example.com", 1, WAIT).await;
    assert_eq!(sink.all().len(), 1);
}

/// `latchkey mail test --to x@example.com` in a scratch directory, with `env` only.
async fn mail_test(env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let args = ["mail", "test", "--to", "x@example.com"];
    cli::run(cli::latchkey(dir.path(), env), &args, "").await
}

#[actix_web::test]
async fn mail_test_sends_through_the_configured_server_and_prints_its_answer() {
    let sink = MailSink::start();
    let url = sink.url();

    let output = mail_test(&[
        ("LATCHKEY_SMTP_URL", &url),
        ("LATCHKEY_APP_NAME", "Acme"),
        ("LATCHKEY_LOG", "warn"),
    ])
    .await;

    let stdout = assert_success(&output);
    assert!(
        stdout.contains(&format!(
            "through smtp://127.0.0.1:{} (plain text, no TLS)",
            sink.port()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("server answered: 250 2.0.0 OK: queued as 1\n"),
        "{stdout}"
    );
    let mails = sink.wait_for("x@example.com", 1, WAIT).await;
    assert_eq!(mails[0].subject, "Acme test message");
    assert_eq!(mails[0].from, "Latchkey <latchkey@localhost>");
}

#[actix_web::test]
async fn mail_test_without_smtp_says_mail_is_only_logged() {
    let output = mail_test(&[("LATCHKEY_LOG", "warn")]).await;

    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("LATCHKEY_SMTP_URL is not set"), "{stderr}");
    assert!(stderr.contains("only written to the log"), "{stderr}");
    // At `info` (the default), the log shows the message that would have gone.
    let output = mail_test(&[]).await;
    assert!(!output.status.success());
    assert!(
        stderr_of(&output).contains("This is a test message from Latchkey"),
        "{}",
        stderr_of(&output)
    );
}

#[actix_web::test]
async fn mail_test_reports_an_unreachable_server_in_one_line() {
    let [port] = free_ports::<1>();
    let url = format!("smtp://127.0.0.1:{port}");

    let output = mail_test(&[("LATCHKEY_SMTP_URL", &url), ("LATCHKEY_LOG", "warn")]).await;

    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("not sent"), "{stderr}");
    assert!(stderr.contains("temporary failure"), "{stderr}");
}

#[actix_web::test]
async fn an_unusable_smtp_url_stops_start_up_without_repeating_the_password() {
    let output = mail_test(&[(
        "LATCHKEY_SMTP_URL",
        "smtp://mailer:hunter2@mail.example.com?tls=sometimes",
    )])
    .await;

    let stderr = assert_one_line_failure(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("LATCHKEY_SMTP_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
