//! Login throttling (API.md "POST /login"): per account and per client address, counted in
//! the database so every instance enforces one limit.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, PASSWORD, TestApp, assert_problem, unique_email};

backend_tests!(
    an_account_locks_after_its_failures_even_for_the_right_password,
    a_success_resets_the_accounts_count,
    unknown_accounts_lock_out_exactly_like_real_ones,
    spellings_of_an_identifier_do_not_tell_accounts_apart,
    a_client_address_is_limited_across_accounts,
    the_lockout_ends_with_the_window,
    forwarded_for_counts_only_behind_a_trusted_proxy,
    concurrent_failures_cannot_exceed_the_limit,
    a_lockout_holds_on_every_instance,
    a_login_flood_leaves_connections_for_other_routes,
);

const WRONG: &str = "not the password at all";

async fn login_as(app: &TestApp, body: Value, forwarded_for: Option<&str>) -> Response {
    let mut request = app.client.post(app.url("/login")).json(&body);
    if let Some(address) = forwarded_for {
        request = request.header("X-Forwarded-For", address);
    }
    request.send().await.unwrap()
}

async fn attempt(app: &TestApp, email: &str, password: &str) -> Response {
    login_as(app, json!({"email": email, "password": password}), None).await
}

/// Asserts a 429 and returns its Retry-After in seconds.
async fn assert_throttled(response: Response, window: u64) -> u64 {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=window).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    retry_after
}

async fn signup_named(app: &TestApp, username: &str) -> String {
    let email = unique_email();
    let response = app
        .signup(&json!({"email": email, "username": username, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    email
}

async fn an_account_locks_after_its_failures_even_for_the_right_password(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "3")]).await;
    let email = signup_named(&app, "locked_ada").await;

    for _ in 0..3 {
        let response = attempt(&app, &email, WRONG).await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    assert_throttled(attempt(&app, &email, PASSWORD).await, 900).await;
    let by_username = login_as(
        &app,
        json!({"username": "LOCKED_ADA", "password": PASSWORD}),
        None,
    );
    assert_throttled(by_username.await, 900).await;
    // Another account from the same address is not locked.
    let other = app.signup_user().await;
    assert_eq!(
        attempt(&app, &other.email, PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn a_success_resets_the_accounts_count(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "3")]).await;
    let tokens = app.signup_user().await;

    for _ in 0..2 {
        assert_eq!(
            attempt(&app, &tokens.email, WRONG).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt(&app, &tokens.email, PASSWORD).await.status(),
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            attempt(&app, &tokens.email, WRONG).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_throttled(attempt(&app, &tokens.email, PASSWORD).await, 900).await;
}

async fn unknown_accounts_lock_out_exactly_like_real_ones(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "2")]).await;
    let known = app.signup_user().await;
    let unknown = unique_email();

    let mut seen = Vec::new();
    for email in [&known.email, &unknown] {
        let mut answers = Vec::new();
        for _ in 0..3 {
            let response = attempt(&app, email, WRONG).await;
            answers.push((response.status(), response.json::<Value>().await.unwrap()));
        }
        seen.push(answers);
    }
    assert_eq!(
        seen[0], seen[1],
        "the lockout must not tell the accounts apart"
    );
    assert_eq!(seen[0][2].0, StatusCode::TOO_MANY_REQUESTS);
}

/// The attack: the lookup did not trim a username, but the lockout key of an unknown
/// identifier did (and lowercased it). Failures as `" ada"`, which names no account, then
/// counted together with `"ada"` only when no account `ada` existed: a lockout reached with
/// mixed spellings told real usernames from unknown ones. Both now read the identifier the
/// same way.
async fn spellings_of_an_identifier_do_not_tell_accounts_apart(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "2")]).await;
    let suffix = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let known = format!("ada{suffix}");
    signup_named(&app, &known).await;
    let unknown = format!("bob{suffix}");

    let mut seen = Vec::new();
    for name in [&known, &unknown] {
        let spellings = [
            format!(" {name}"),
            format!("{name} "),
            name.to_uppercase(),
            name.clone(),
            name.clone(),
        ];
        let mut answers = Vec::new();
        for spelling in spellings {
            let body = json!({"username": spelling, "password": WRONG});
            answers.push(login_as(&app, body, None).await.status());
        }
        seen.push(answers);
    }
    assert_eq!(
        seen[0], seen[1],
        "the lockout must not tell the accounts apart"
    );
    // The upper-case spelling and the last two name one account (or one unknown name).
    assert_eq!(seen[0][4], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(seen[0][3], StatusCode::UNAUTHORIZED);
}

async fn a_client_address_is_limited_across_accounts(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_IP_MAX_FAILURES", "4")]).await;
    let victim = app.signup_user().await;

    for _ in 0..4 {
        let response = attempt(&app, &unique_email(), WRONG).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    // The address is spent: even a right password for another account waits.
    assert_throttled(attempt(&app, &victim.email, PASSWORD).await, 900).await;
}

async fn the_lockout_ends_with_the_window(backend: Backend) {
    let env = [
        ("LATCHKEY_LOGIN_MAX_FAILURES", "2"),
        ("LATCHKEY_LOGIN_WINDOW", "2"),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    let tokens = app.signup_user().await;
    for _ in 0..2 {
        attempt(&app, &tokens.email, WRONG).await;
    }
    let retry_after = assert_throttled(attempt(&app, &tokens.email, PASSWORD).await, 2).await;

    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(300)).await;

    assert_eq!(
        attempt(&app, &tokens.email, PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn forwarded_for_counts_only_behind_a_trusted_proxy(backend: Backend) {
    let limit = [("LATCHKEY_LOGIN_IP_MAX_FAILURES", "2")];
    // Without a trusted proxy, a client cannot escape its limit by inventing addresses.
    let direct = TestApp::spawn_with(backend, &limit).await;
    for spoofed in ["203.0.113.1", "203.0.113.2"] {
        let body = json!({"email": unique_email(), "password": WRONG});
        assert_eq!(
            login_as(&direct, body, Some(spoofed)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let body = json!({"email": unique_email(), "password": WRONG});
    assert_throttled(login_as(&direct, body, Some("203.0.113.3")).await, 900).await;

    // Behind a trusted proxy (the test client is on 127.0.0.1), each forwarded client has
    // its own count, and the session records the client's address.
    let env = [limit[0], ("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1")];
    let proxied = TestApp::spawn_with(backend, &env).await;
    let tokens = proxied.signup_user().await;
    for _ in 0..2 {
        let body = json!({"email": unique_email(), "password": WRONG});
        login_as(&proxied, body, Some("203.0.113.1")).await;
    }
    let body = json!({"email": unique_email(), "password": WRONG});
    assert_throttled(login_as(&proxied, body, Some("203.0.113.1")).await, 900).await;
    let body = json!({"email": tokens.email, "password": PASSWORD});
    let response = login_as(&proxied, body, Some("1.2.3.4, 203.0.113.2")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions: Vec<Value> = proxied.sessions(&token).await.json().await.unwrap();
    let current = sessions.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(
        current["ip"], "203.0.113.2",
        "the spoofed left-most entry is ignored"
    );
}

/// Concurrent attempts cannot all take the last free slots: the count is checked and
/// recorded under a lock, before the password is.
async fn concurrent_failures_cannot_exceed_the_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "5")]).await;
    let tokens = app.signup_user().await;
    // Open the connections first so that the attempts really overlap.
    futures_util::future::join_all((0..8).map(|_| app.me(&tokens.access_token))).await;

    let attempts = (0..20).map(|_| attempt(&app, &tokens.email, WRONG));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(Response::status)
        .collect();

    let failed = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((failed, throttled), (5, 15), "{statuses:?}");
}

async fn a_lockout_holds_on_every_instance(backend: Backend) {
    let env = [("LATCHKEY_LOGIN_MAX_FAILURES", "2")];
    let first = TestApp::spawn_with(backend, &env).await;
    let second = TestApp::spawn_on(first.database.clone(), &env).await;
    let tokens = first.signup_user().await;

    attempt(&first, &tokens.email, WRONG).await;
    attempt(&second, &tokens.email, WRONG).await;

    assert_throttled(attempt(&first, &tokens.email, PASSWORD).await, 900).await;
    assert_throttled(attempt(&second, &tokens.email, PASSWORD).await, 900).await;
}

/// Logins from one address queue on one lock in the database. A flood of them is served, in
/// turn, and the other routes keep answering meanwhile, none with `503`. (Login admission
/// holds at most a quarter of the pool; bench/run.sh measures what that buys `GET /me`
/// under a flood.)
async fn a_login_flood_leaves_connections_for_other_routes(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LATCHKEY_DB_POOL_SIZE", "4"),
            ("LATCHKEY_DB_TIMEOUT", "2"),
            ("LATCHKEY_LOGIN_IP_MAX_FAILURES", "100000"),
            // Room for the whole flood: this is about connections, not the queue's bound.
            ("LATCHKEY_HASH_QUEUE_MAX", "1000"),
        ],
    )
    .await;
    let tokens = app.signup_user().await;
    let flood =
        futures_util::future::join_all((0..300).map(|_| attempt(&app, &tokens.email, PASSWORD)));
    let others = async {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        futures_util::future::join_all((0..20).map(|_| app.me(&tokens.access_token))).await
    };
    let (logins, others) = futures_util::future::join(flood, others).await;
    let me: Vec<StatusCode> = others.iter().map(Response::status).collect();
    assert!(
        me.iter().all(|s| *s == StatusCode::OK),
        "GET /me during the flood: {me:?}"
    );
    let unavailable = logins
        .iter()
        .filter(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(unavailable, 0, "logins answered 503");
}
