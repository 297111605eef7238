//! `POST /password/forgot` and `POST /password/reset` (API.md "Account recovery and email
//! verification"), with mail delivered over SMTP to a real server the test runs.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::mail_sink::{Mail, MailSink};
use crate::support::{
    Backend, PASSWORD, TestApp, TestDatabase, assert_invalid_token, assert_problem, free_ports,
    unique_email,
};

backend_tests!(
    a_forgotten_password_is_reset_with_the_mailed_code,
    unknown_emails_get_the_same_answer_and_no_mail,
    wrong_used_and_expired_codes_are_refused,
    five_wrong_tries_end_a_code,
    two_concurrent_resets_with_one_code_commit_once,
    a_new_code_replaces_the_older,
    codes_are_read_like_crockford_base32,
    the_new_password_follows_the_signup_rules,
    a_reset_clears_the_login_lockout,
    mail_requests_are_throttled_per_email_and_per_address,
    code_checks_are_throttled_alike_for_known_and_unknown_emails,
    mail_queued_while_smtp_is_down_goes_out_when_it_comes_up,
    two_instances_send_each_message_once,
    the_link_names_the_form_and_opening_it_consumes_nothing,
);

pub const NEW_PASSWORD: &str = "a brand new passphrase";

/// How long a message may take to arrive.
pub const MAIL_WAIT: Duration = Duration::from_secs(20);

/// An application that sends its mail to `sink`.
pub async fn mail_app(backend: Backend, sink: &MailSink, env: &[(&str, &str)]) -> TestApp {
    let url = sink.url();
    let mut env = env.to_vec();
    env.push(("LATCHKEY_SMTP_URL", &url));
    TestApp::spawn_with(backend, &env).await
}

/// The newest message to `to` whose subject has `word` in it, waiting for at least `count`
/// such messages.
pub async fn mail_about(sink: &MailSink, to: &str, word: &str, count: usize) -> Mail {
    let deadline = Instant::now() + MAIL_WAIT;
    loop {
        let matching: Vec<Mail> = sink
            .messages_to(to)
            .into_iter()
            .filter(|mail| mail.subject.to_lowercase().contains(word))
            .collect();
        if matching.len() >= count {
            return matching.into_iter().last().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no {count} mail(s) about {word:?} to {to} within {MAIL_WAIT:?}; got {:?}",
            sink.all()
                .iter()
                .map(|mail| (&mail.to, &mail.subject))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs up a user with `email`; answers the token response.
pub async fn sign_up(app: &TestApp, email: &str) -> Value {
    let response = app
        .signup(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

pub async fn forgot(app: &TestApp, email: &str) -> reqwest::Response {
    app.post("/password/forgot", &json!({"email": email})).await
}

/// Asks for a reset code and answers the `count`th that arrives.
async fn reset_code(app: &TestApp, sink: &MailSink, email: &str, count: usize) -> String {
    let response = forgot(app, email).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    mail_about(sink, email, "reset", count).await.code()
}

async fn reset(app: &TestApp, email: &str, code: &str, new_password: &str) -> reqwest::Response {
    let body = json!({"email": email, "code": code, "new_password": new_password});
    app.post("/password/reset", &body).await
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.login(&json!({"email": email, "password": password}))
        .await
}

/// Runs one statement on the application's database, to arrange what HTTP cannot.
pub fn execute(app: &TestApp, sql: &'static str) {
    use diesel::RunQueryDsl as _;
    app.db
        .run_now(move |conn| Ok(diesel::sql_query(sql).execute(conn)?))
        .unwrap();
}

/// A code of the right shape that is not the one mailed.
fn other_code(code: &str) -> String {
    let first = if code.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &code[1..])
}

async fn a_forgotten_password_is_reset_with_the_mailed_code(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    let first = sign_up(&app, &email).await;
    let second = app.login_user(&email).await;

    let response = forgot(&app, &email).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "sent_if_registered"}));
    let mail = mail_about(&sink, &email, "reset", 1).await;
    let code = mail.code();
    assert_eq!(code.len(), 8);
    assert!(mail.html.contains(&code), "the HTML part has the code too");
    assert!(mail.link().contains(&code), "{}", mail.link());

    let response = reset(&app, &email, &code, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // Every session ended: access tokens at once, refresh tokens too.
    for access_token in [
        first["access_token"].as_str().unwrap(),
        &second.access_token,
    ] {
        assert_invalid_token(app.me(access_token).await).await;
    }
    let refreshed = app.refresh(&second.refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
    // The new password logs in; the old one no longer does.
    let old = login(&app, &email, PASSWORD).await;
    assert_problem(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let new = login(&app, &email, NEW_PASSWORD).await;
    assert_eq!(new.status(), StatusCode::OK);
    let tokens: Value = new.json().await.unwrap();
    assert_eq!(
        tokens["user"]["email_verified"], true,
        "the code came through the address"
    );

    // The notice, and the events.
    let notice = mail_about(&sink, &email, "changed", 1).await;
    assert!(!notice.text.contains(&code));
    let events = app
        .send(
            Method::GET,
            "/me/events",
            tokens["access_token"].as_str(),
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    for expected in [
        "password_reset_requested",
        "password_reset",
        "session_revoked",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    // The code was used once, and no sent message keeps its code.
    let again = reset(&app, &email, &code, "yet another passphrase").await;
    assert_problem(again, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_eq!(outbox_rows_with_a_code(&app), 0);
}

/// Messages whose code is still stored (once sent, none).
pub fn outbox_rows_with_a_code(app: &TestApp) -> i64 {
    use diesel::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    app.db
        .run_now(|conn| {
            let row: Count = diesel::sql_query(
                "SELECT COUNT(*) AS n FROM outbox WHERE code IS NOT NULL AND done_at IS NOT NULL",
            )
            .get_result(conn)?;
            Ok(row.n)
        })
        .unwrap()
}

async fn unknown_emails_get_the_same_answer_and_no_mail(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[("LATCHKEY_SIGNUP_IP_MAX", "1000")]).await;
    let known = unique_email();
    sign_up(&app, &known).await;
    let unknown = unique_email();

    let known_answer = forgot(&app, &known).await;
    let unknown_answer = forgot(&app, &unknown).await;
    assert_eq!(known_answer.status(), unknown_answer.status());
    let known_headers = known_answer.headers().clone();
    let unknown_headers = unknown_answer.headers().clone();
    for header in ["content-type", "content-length", "cache-control"] {
        assert_eq!(
            known_headers.get(header),
            unknown_headers.get(header),
            "{header}"
        );
    }
    assert_eq!(
        known_answer.bytes().await.unwrap(),
        unknown_answer.bytes().await.unwrap()
    );
    mail_about(&sink, &known, "reset", 1).await;
    // The unknown address's message was handled before or with the known one's (ids in
    // time order); give the worker a moment more all the same.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sink.messages_to(&unknown).is_empty(),
        "no mail to an unknown address"
    );

    // Time: the same work either way, so the medians of alternating requests differ by no
    // more than the noise of a shared machine.
    let mut known_times = Vec::new();
    let mut unknown_times = Vec::new();
    for round in 0..4 {
        // Each recipient may be sent 5 mails an hour: fresh addresses for each round.
        let known = unique_email();
        sign_up(&app, &known).await;
        let unknown = unique_email();
        for _ in 0..4 {
            for (email, times) in [(&known, &mut known_times), (&unknown, &mut unknown_times)] {
                let started = Instant::now();
                let response = forgot(&app, email).await;
                times.push(started.elapsed());
                assert_eq!(response.status(), StatusCode::ACCEPTED, "round {round}");
            }
        }
    }
    let (known, unknown) = (median(&mut known_times), median(&mut unknown_times));
    let slower = known.max(unknown);
    let faster = known.min(unknown);
    assert!(
        slower < faster * 3 + Duration::from_millis(5),
        "known {known:?} and unknown {unknown:?} differ past the noise"
    );
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

async fn wrong_used_and_expired_codes_are_refused(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let code = reset_code(&app, &sink, &email, 1).await;

    let wrong = reset(&app, &email, &other_code(&code), NEW_PASSWORD).await;
    let wrong = assert_problem(wrong, StatusCode::BAD_REQUEST, "invalid_code").await;
    // An unknown email: the same answer.
    let unknown = reset(&app, &unique_email(), &code, NEW_PASSWORD).await;
    let unknown = assert_problem(unknown, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_eq!(wrong, unknown);
    // Another account's address with this code: no.
    let other = unique_email();
    sign_up(&app, &other).await;
    let elsewhere = reset(&app, &other, &code, NEW_PASSWORD).await;
    assert_problem(elsewhere, StatusCode::BAD_REQUEST, "invalid_code").await;

    assert_eq!(
        reset(&app, &email, &code, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    let used = reset(&app, &email, &code, "yet another passphrase").await;
    assert_problem(used, StatusCode::BAD_REQUEST, "invalid_code").await;

    // Expired: the code's life is over (moved into the past rather than waited for).
    let code = reset_code(&app, &sink, &email, 2).await;
    execute(
        &app,
        "UPDATE one_time_codes SET expires_at = created_at WHERE purpose = 'password_reset'",
    );
    let expired = reset(&app, &email, &code, "yet another passphrase").await;
    assert_problem(expired, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_eq!(
        login(&app, &email, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn five_wrong_tries_end_a_code(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let code = reset_code(&app, &sink, &email, 1).await;
    for _ in 0..5 {
        let wrong = reset(&app, &email, &other_code(&code), NEW_PASSWORD).await;
        assert_problem(wrong, StatusCode::BAD_REQUEST, "invalid_code").await;
    }
    let right_too_late = reset(&app, &email, &code, NEW_PASSWORD).await;
    assert_problem(right_too_late, StatusCode::BAD_REQUEST, "invalid_code").await;
    // A new code starts afresh.
    let code = reset_code(&app, &sink, &email, 2).await;
    assert_eq!(
        reset(&app, &email, &code, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn two_concurrent_resets_with_one_code_commit_once(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let code = reset_code(&app, &sink, &email, 1).await;
    let (a, b) = tokio::join!(
        reset(&app, &email, &code, NEW_PASSWORD),
        reset(&app, &email, &code, "the other new passphrase"),
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::BAD_REQUEST]);
    let winner = if a.status() == StatusCode::NO_CONTENT {
        NEW_PASSWORD
    } else {
        "the other new passphrase"
    };
    assert_eq!(login(&app, &email, winner).await.status(), StatusCode::OK);
    assert_eq!(app.rows("security_events WHERE type = 'password_reset'"), 1);
}

async fn a_new_code_replaces_the_older(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let older = reset_code(&app, &sink, &email, 1).await;
    let newer = reset_code(&app, &sink, &email, 2).await;
    assert_ne!(older, newer);
    let stale = reset(&app, &email, &older, NEW_PASSWORD).await;
    assert_problem(stale, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_eq!(
        reset(&app, &email, &newer, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn codes_are_read_like_crockford_base32(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let code = reset_code(&app, &sink, &email, 1).await;
    // Lowercase, split in two with a hyphen, O for 0 and l for 1: the same code.
    let typed: String = code
        .to_lowercase()
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            other => other,
        })
        .collect();
    let typed = format!(" {}-{} ", &typed[..4], &typed[4..]);
    assert_eq!(
        reset(&app, &email.to_uppercase(), &typed, NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

async fn the_new_password_follows_the_signup_rules(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let code = reset_code(&app, &sink, &email, 1).await;
    for bad in ["short", "password123", email.as_str()] {
        let refused = reset(&app, &email, &code, bad).await;
        let problem = assert_problem(
            refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "new_password", "{bad}");
    }
    // The code survived the refusals.
    assert_eq!(
        reset(&app, &email, &code, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn a_reset_clears_the_login_lockout(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[("LATCHKEY_LOGIN_MAX_FAILURES", "3")]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    for _ in 0..3 {
        let wrong = login(&app, &email, "not the password at all").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = login(&app, &email, PASSWORD).await;
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    // The lockout, which anybody can cause, does not keep the owner from a reset...
    let code = reset_code(&app, &sink, &email, 1).await;
    assert_eq!(
        reset(&app, &email, &code, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    // ...and the reset ends it.
    assert_eq!(
        login(&app, &email, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn mail_requests_are_throttled_per_email_and_per_address(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[("LATCHKEY_SIGNUP_IP_MAX", "1000")]).await;
    let known = unique_email();
    sign_up(&app, &known).await;
    let unknown = unique_email();
    // Five mails an hour per recipient, registered or not.
    for email in [&known, &unknown] {
        for _ in 0..5 {
            assert_eq!(forgot(&app, email).await.status(), StatusCode::ACCEPTED);
        }
        let refused = forgot(&app, email).await;
        assert!(
            refused.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    }
    // Per client address: LATCHKEY_SIGNUP_IP_MAX an hour.
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[("LATCHKEY_SIGNUP_IP_MAX", "3")]).await;
    for _ in 0..3 {
        assert_eq!(
            forgot(&app, &unique_email()).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let refused = forgot(&app, &unique_email()).await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

async fn code_checks_are_throttled_alike_for_known_and_unknown_emails(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[("LATCHKEY_LOGIN_MAX_FAILURES", "4")]).await;
    let known = unique_email();
    sign_up(&app, &known).await;
    let unknown = unique_email();
    for email in [&known, &unknown] {
        for _ in 0..4 {
            let wrong = reset(&app, email, "AAAAAAAA", NEW_PASSWORD).await;
            assert_problem(wrong, StatusCode::BAD_REQUEST, "invalid_code").await;
        }
        let throttled = reset(&app, email, "AAAAAAAA", NEW_PASSWORD).await;
        assert_problem(
            throttled,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
        )
        .await;
    }
    // The owner's login is not locked by someone guessing codes.
    assert_eq!(login(&app, &known, PASSWORD).await.status(), StatusCode::OK);
    // Recorded for the account.
    assert!(app.rows("security_events WHERE type = 'code_failed'") >= 1);
}

async fn mail_queued_while_smtp_is_down_goes_out_when_it_comes_up(backend: Backend) {
    let [port] = free_ports();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SMTP_URL", &url)]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let started = Instant::now();
    let response = forgot(&app, &email).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the request does not wait on SMTP: {:?}",
        started.elapsed()
    );
    // Let the first deliveries fail: the metrics show the outage.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(app.rows("outbox WHERE done_at IS NULL AND last_error IS NOT NULL") >= 1);
    assert!(metric(&app, "latchkey_mail_failed_attempts_total").await >= 2.0);
    assert_eq!(metric(&app, "latchkey_mail_queued").await, 2.0);
    assert!(metric(&app, "latchkey_mail_oldest_waiting_seconds").await >= 1.0);

    let sink = MailSink::start_on(port);
    let mail = mail_about(&sink, &email, "reset", 1).await;
    mail_about(&sink, &email, "confirm", 1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&app, "latchkey_mail_queued").await > 0.0 {
        assert!(Instant::now() < deadline, "the queue gauge never emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&app, "latchkey_mail_sent_total").await, 2.0);
    assert_eq!(
        metric(&app, "latchkey_mail_oldest_waiting_seconds").await,
        0.0
    );
    assert_eq!(
        reset(&app, &email, &mail.code(), NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

/// The value of an unlabelled metric of the application.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .client
        .get(app.metrics_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .unwrap()
}

async fn two_instances_send_each_message_once(backend: Backend) {
    let sink = MailSink::start();
    let url = sink.url();
    let env = [
        ("LATCHKEY_SMTP_URL", url.as_str()),
        ("LATCHKEY_SIGNUP_IP_MAX", "1000"),
    ];
    let database = std::sync::Arc::new(TestDatabase::create(backend));
    let first = TestApp::spawn_on(database.clone(), &env).await;
    let second = TestApp::spawn_on(database, &env).await;
    let emails: Vec<String> = (0..12).map(|_| unique_email()).collect();
    for (n, email) in emails.iter().enumerate() {
        let app = if n % 2 == 0 { &first } else { &second };
        sign_up(app, email).await;
    }
    // Both instances' workers see every message: each goes once.
    let requests = emails.iter().enumerate().map(|(n, email)| {
        let app = if n % 2 == 0 { &second } else { &first };
        forgot(app, email)
    });
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    for email in &emails {
        mail_about(&sink, email, "reset", 1).await;
        mail_about(&sink, email, "confirm", 1).await;
    }
    // Time for a duplicate to show, were there one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for email in &emails {
        assert_eq!(
            sink.messages_to(email).len(),
            2,
            "{email}: one verification, one reset"
        );
    }
    assert_eq!(first.rows("outbox WHERE outcome = 'sent'"), 24);
}

async fn the_link_names_the_form_and_opening_it_consumes_nothing(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(
        backend,
        &sink,
        &[("LATCHKEY_PUBLIC_URL", "https://auth.example.com/")],
    )
    .await;
    let email = format!("o'brien+{}", unique_email());
    sign_up(&app, &email).await;
    let code = reset_code(&app, &sink, &email, 1).await;
    let mail = mail_about(&sink, &email, "reset", 1).await;
    let link = mail.link();
    let encoded = email
        .replace('\'', "%27")
        .replace('+', "%2B")
        .replace('@', "%40");
    assert_eq!(
        link,
        format!("https://auth.example.com/#reset?code={code}&email={encoded}")
    );
    // The page the link opens, as the server sees it (the fragment stays in the browser).
    let page = app.send(Method::GET, "/", None, None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        reset(&app, &email, &code, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT,
        "opening the link used nothing up"
    );
}
