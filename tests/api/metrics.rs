//! `GET /metrics`: on its own listener only, in the Prometheus text format, with counters
//! that move by exactly what a flow did, route labels that are patterns, and no label value
//! that a made-up path can add.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Backend, TestApp, Tokens, assert_problem};

backend_tests!(
    the_public_listener_does_not_serve_metrics,
    serves_prometheus_text_without_the_database,
    a_flow_moves_each_counter_by_exactly_what_it_did,
    route_labels_are_patterns_and_made_up_paths_add_none,
    the_pool_and_the_hashing_queue_are_measured,
    metrics_off_listens_nowhere,
);

/// Every sample of a scrape, keyed by its name and labels as written (`name{a="b"}`).
pub async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = app
        .client
        .get(app.metrics_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    parse(&response.text().await.unwrap())
}

fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// How much each series moved between two scrapes.
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    value(after, series) - value(before, series)
}

/// The attack: `/metrics` answered on the public port, to anyone, with the service's traffic,
/// failure rates and load. On the public listener it is now an unknown path like any other:
/// the metrics answer on `LATCHKEY_METRICS_BIND` only.
async fn the_public_listener_does_not_serve_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    for method in [Method::HEAD, Method::POST] {
        let response = app
            .client
            .request(method.clone(), app.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method}");
    }
}

async fn serves_prometheus_text_without_the_database(backend: Backend) {
    let origin = "https://app.example.com";
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CORS_ORIGINS", origin)]).await;
    let response = app
        .client
        .get(app.metrics_url("/metrics"))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4");
    assert_eq!(headers["cache-control"], "no-store");
    // No page calls the metrics listener: it has no CORS, even for an allowed origin.
    assert!(
        !headers.contains_key("access-control-allow-origin"),
        "{headers:?}"
    );
    let text = response.text().await.unwrap();
    for name in [
        "latchkey_signups_total",
        "latchkey_logins_total",
        "latchkey_refreshes_total",
        "latchkey_refresh_token_reuse_total",
        "latchkey_logouts_total",
        "latchkey_hash_queue_depth",
        "latchkey_hash_wait_seconds",
        "latchkey_session_check_batch_size",
        "latchkey_session_check_hedges_total",
        "latchkey_db_connections",
        "latchkey_db_connections_max",
        "latchkey_db_permit_wait_seconds",
        "latchkey_mail_sent_total",
        "latchkey_mail_failed_attempts_total",
        "latchkey_mail_given_up_total",
        "latchkey_mail_queued",
        "latchkey_mail_oldest_waiting_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}:\n{text}");
    }
    // Every outcome is there from the first scrape, at 0.
    let samples = parse(&text);
    for outcome in [
        "success",
        "failure",
        "throttled",
        "disabled",
        "mfa_required",
    ] {
        let series = format!("latchkey_logins_total{{outcome=\"{outcome}\"}}");
        assert_eq!(samples.get(&series), Some(&0.0), "{series}");
    }
    let head = app
        .client
        .head(app.metrics_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let post = app
        .client
        .post(app.metrics_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_problem(post, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    // The metrics listener serves the metrics and nothing else.
    for path in ["/healthz", "/signup", "/", "/metrics/x"] {
        let response = app.client.get(app.metrics_url(path)).send().await.unwrap();
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

async fn a_flow_moves_each_counter_by_exactly_what_it_did(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = scrape(&app).await;

    let signed_up = app.signup_user().await;
    let logged_in = app.login_user(&signed_up.email).await;
    let wrong = app
        .login(&json!({"email": signed_up.email, "password": "not the password at all"}))
        .await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // Rotated, then the same token again within the grace window: converged.
    let first = app.refresh(&logged_in.refresh_token).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = Tokens::from(first.json::<serde_json::Value>().await.unwrap());
    let again = app.refresh(&logged_in.refresh_token).await;
    assert_eq!(again.status(), StatusCode::OK);
    // Rotated again; the first token is now two generations back: a reuse.
    let third = app.refresh(&second.refresh_token).await;
    assert_eq!(third.status(), StatusCode::OK);
    let reused = app.refresh(&logged_in.refresh_token).await;
    assert_problem(reused, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let logout = app.logout(&signed_up.access_token, None).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let after = scrape(&app).await;
    let expected = [
        ("latchkey_signups_total", 1.0),
        ("latchkey_logins_total{outcome=\"success\"}", 1.0),
        ("latchkey_logins_total{outcome=\"failure\"}", 1.0),
        ("latchkey_logins_total{outcome=\"throttled\"}", 0.0),
        ("latchkey_logins_total{outcome=\"disabled\"}", 0.0),
        ("latchkey_refreshes_total{outcome=\"rotated\"}", 2.0),
        ("latchkey_refreshes_total{outcome=\"converged\"}", 1.0),
        ("latchkey_refresh_token_reuse_total", 1.0),
        ("latchkey_logouts_total{scope=\"local\"}", 1.0),
        ("latchkey_logouts_total{scope=\"others\"}", 0.0),
        ("latchkey_logouts_total{scope=\"global\"}", 0.0),
        // The logout's session check, the flow's one bearer-authenticated request.
        ("latchkey_session_check_batch_size_count", 1.0),
        ("latchkey_session_check_batch_size_sum", 1.0),
        (
            "latchkey_http_requests_total{method=\"POST\",route=\"/signup\",status=\"201\"}",
            1.0,
        ),
        (
            "latchkey_http_requests_total{method=\"POST\",route=\"/login\",status=\"200\"}",
            1.0,
        ),
        (
            "latchkey_http_requests_total{method=\"POST\",route=\"/login\",status=\"401\"}",
            1.0,
        ),
        (
            "latchkey_http_requests_total{method=\"POST\",route=\"/refresh\",status=\"200\"}",
            3.0,
        ),
        (
            "latchkey_http_requests_total{method=\"POST\",route=\"/refresh\",status=\"401\"}",
            1.0,
        ),
        (
            "latchkey_http_requests_total{method=\"POST\",route=\"/logout\",status=\"204\"}",
            1.0,
        ),
        (
            "latchkey_http_request_duration_seconds_count{method=\"POST\",route=\"/refresh\",status=\"200\"}",
            3.0,
        ),
    ];
    for (series, moved) in expected {
        assert_eq!(delta(&before, &after, series), moved, "{series}");
    }
    // The scrapes are not API requests: no series counts them.
    assert!(
        !after.keys().any(|series| series.contains("/metrics")),
        "{after:?}"
    );
    let signup_seconds = value(
        &after,
        "latchkey_http_request_duration_seconds_sum{method=\"POST\",route=\"/signup\",status=\"201\"}",
    );
    assert!(signup_seconds > 0.0, "{signup_seconds}");

    // The hashing queue saw the signup, both logins: at least three waits, none queued now.
    assert!(delta(&before, &after, "latchkey_hash_wait_seconds_count") >= 3.0);
    assert_eq!(value(&after, "latchkey_hash_queue_depth"), 0.0);
}

async fn route_labels_are_patterns_and_made_up_paths_add_none(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let session = uuid::Uuid::now_v7().to_string();
    let ended = app
        .send(
            Method::DELETE,
            &format!("/sessions/{session}"),
            Some(&tokens.access_token),
            None,
        )
        .await;
    assert_eq!(ended.status(), StatusCode::NOT_FOUND);
    let first = app
        .client
        .get(app.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::NOT_FOUND);
    let before = scrape(&app).await;

    let random = format!("/{}", uuid::Uuid::now_v7().simple());
    let response = app.client.get(app.url(&random)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let made_up = app
        .client
        .request(Method::from_bytes(b"BREW").unwrap(), app.url(&random))
        .send()
        .await
        .unwrap();
    assert!(made_up.status().is_client_error());
    let after = scrape(&app).await;

    let text = format!("{:?}", after.keys().collect::<Vec<_>>());
    assert!(
        !text.contains(&random[1..]),
        "a path became a label: {text}"
    );
    assert!(
        !text.contains(&session),
        "a session id became a label: {text}"
    );
    assert!(
        !text.contains("BREW"),
        "a made-up method became a label: {text}"
    );
    assert_eq!(
        value(
            &after,
            "latchkey_http_requests_total{method=\"DELETE\",route=\"/sessions/{id}\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "latchkey_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    // The random path added no series: only the made-up method's did.
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(
        new.iter().all(|series| series.contains("method=\"other\"")),
        "{new:?}"
    );
}

async fn the_pool_and_the_hashing_queue_are_measured(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup_user().await;
    let samples = scrape(&app).await;
    // TestApp sets LATCHKEY_DB_POOL_SIZE=4.
    assert_eq!(value(&samples, "latchkey_db_connections_max"), 4.0);
    let open = value(&samples, "latchkey_db_connections{state=\"in_use\"}")
        + value(&samples, "latchkey_db_connections{state=\"idle\"}");
    assert!((1.0..=4.0).contains(&open), "{open}");
    assert!(value(&samples, "latchkey_db_permit_wait_seconds_count") >= 1.0);
    assert!(value(&samples, "latchkey_hash_wait_seconds_count") >= 1.0);
    // Another application in this process counts apart: the registry is its own.
    let other = TestApp::spawn(backend).await;
    let fresh = scrape(&other).await;
    assert_eq!(value(&fresh, "latchkey_signups_total"), 0.0);
    assert_eq!(value(&fresh, "latchkey_hash_wait_seconds_count"), 0.0);
}

/// `LATCHKEY_METRICS=off`: nothing listens on `LATCHKEY_METRICS_BIND`, not even a
/// listener that refuses; the public listener answers `404` as always.
async fn metrics_off_listens_nowhere(backend: Backend) {
    // The port is held while the application starts: were it to bind it, start-up would fail.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = held.local_addr().unwrap().to_string();
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LATCHKEY_METRICS", "off"),
            ("LATCHKEY_METRICS_BIND", &bind),
        ],
    )
    .await;
    assert_eq!(app.metrics_address, None);
    drop(held);
    let refused = std::net::TcpStream::connect(&bind).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
}
