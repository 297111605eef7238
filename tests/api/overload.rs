//! Password hashing under overload (API.md "General rules"): the queue is bounded, a request
//! past the bound answers `503` with `Retry-After` and costs its client nothing, and the
//! work of a client that has hung up is skipped.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use latchkey::db::schema::login_failures;
use reqwest::StatusCode;
use serde_json::json;

use crate::metrics::scrape;
use crate::support::{Backend, TestApp, assert_problem};

backend_tests!(
    past_the_queue_bound_logins_answer_503_and_count_no_attempt,
    the_hash_of_a_client_that_hung_up_is_skipped,
);

const WRONG: &str = "not the password at all";

/// One hashing thread and one waiting place: of many logins at once, most find no place.
async fn past_the_queue_bound_logins_answer_503_and_count_no_attempt(backend: Backend) {
    let env = [
        ("LATCHKEY_HASH_WORKERS", "1"),
        ("LATCHKEY_HASH_QUEUE_MAX", "1"),
        ("LATCHKEY_LOGIN_MAX_FAILURES", "1000"),
        ("LATCHKEY_LOGIN_IP_MAX_FAILURES", "1000"),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    let user = app.signup_user().await;
    let body = json!({"email": user.email, "password": WRONG});

    let answers = futures_util::future::join_all((0..30).map(|_| app.login(&body))).await;

    let mut refused = 0;
    let mut checked = 0;
    for answer in answers {
        match answer.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert!(answer.headers().contains_key("retry-after"));
                assert_problem(
                    answer,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                )
                .await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "the queue took all 30 logins");
    assert!(checked > 0, "no login was checked");
    // Only the checked attempts count against the account: a 503 used up none.
    let key = format!("user:{}", user.user_id);
    let counted: i64 = app
        .db
        .run_now(move |conn| {
            login_failures::table
                .filter(login_failures::throttle_key.eq(key))
                .count()
                .get_result(conn)
                .map_err(latchkey::error::Error::from)
        })
        .unwrap();
    assert_eq!(counted, checked);
    let samples = scrape(&app).await;
    assert_eq!(
        samples["latchkey_hash_queue_refused_total"],
        f64::from(refused)
    );
}

/// Clients that send a login and hang up at once: the logins queued behind the first are
/// skipped when their turn comes, instead of hashing for nobody.
async fn the_hash_of_a_client_that_hung_up_is_skipped(backend: Backend) {
    const CLIENTS: usize = 12;
    let env = [
        ("LATCHKEY_HASH_WORKERS", "1"),
        // About ten times the default cost: the first hash outlasts the hang-ups.
        ("LATCHKEY_ARGON2_ITERATIONS", "20"),
        ("LATCHKEY_LOGIN_MAX_FAILURES", "1000"),
        ("LATCHKEY_LOGIN_IP_MAX_FAILURES", "1000"),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    let user = app.signup_user().await;
    let body = json!({"email": user.email, "password": WRONG}).to_string();
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let address = app.address.trim_start_matches("http://").to_owned();
    let before = scrape(&app).await["latchkey_hash_skipped_total"];

    actix_web::rt::task::spawn_blocking(move || {
        let streams: Vec<TcpStream> = (0..CLIENTS)
            .map(|_| {
                let mut stream = TcpStream::connect(&address).unwrap();
                stream.write_all(request.as_bytes()).unwrap();
                stream
            })
            .collect();
        // Long enough for every request to be read and queued.
        std::thread::sleep(Duration::from_millis(300));
        drop(streams);
    })
    .await
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = scrape(&app).await;
        let skipped = samples["latchkey_hash_skipped_total"] - before;
        if samples["latchkey_hash_queue_depth"] == 0.0 && skipped > 0.0 {
            // Hashes that ran: the signup's, the first login's, any that started before
            // their client left; the rest were skipped.
            let ran = samples["latchkey_hash_wait_seconds_count"];
            assert!(
                skipped >= (CLIENTS / 2) as f64,
                "only {skipped} of {CLIENTS} skipped ({ran} ran)"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no abandoned hash was skipped: {skipped} skipped"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}
