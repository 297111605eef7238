//! `GET /healthz`, `GET /readyz` and `GET /.well-known/jwks.json` (API.md "Endpoints"), and
//! the `503` of "General rules" when the database goes away.

use std::time::Duration;

use diesel::{Connection as _, PgConnection, RunQueryDsl as _};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, assert_problem};

backend_tests!(
    healthz_says_ok,
    head_healthz_answers_without_a_body,
    readyz_is_ready_when_the_database_answers,
    jwks_publishes_the_public_ed25519_key,
    jwks_never_publishes_a_shared_secret,
);

async fn healthz_says_ok(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}

async fn head_healthz_answers_without_a_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.send(Method::HEAD, "/healthz", None, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.bytes().await.unwrap().is_empty());
}

async fn readyz_is_ready_when_the_database_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

async fn jwks_publishes_the_public_ed25519_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let keys = body["keys"].as_array().expect("a `keys` array");
    assert!(!keys.is_empty(), "{body}");
    for key in keys {
        assert_eq!(key["kty"], "OKP", "{key}");
        assert_eq!(key["crv"], "Ed25519", "{key}");
        assert_eq!(key["use"], "sig", "{key}");
        assert_eq!(key["alg"], "EdDSA", "{key}");
        assert!(key["kid"].as_str().is_some_and(|kid| !kid.is_empty()));
        assert!(key["x"].as_str().is_some_and(|x| x.len() == 43), "{key}");
        assert!(key.get("d").is_none(), "a private key is published: {key}");
    }

    // The key that signs access tokens is among them.
    let tokens = app.signup_user().await;
    let header = tokens.access_token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert!(
        keys.iter().any(|key| key["kid"] == header["kid"]),
        "token kid {} not in {body}",
        header["kid"]
    );
}

async fn jwks_never_publishes_a_shared_secret(backend: Backend) {
    let secret = "an HS256 secret of at least 32 bytes, for tests";
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_JWT_SECRET", secret)]).await;
    let response = app
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let keys = body["keys"].as_array().expect("a `keys` array");
    assert!(
        keys.iter()
            .all(|key| key["kty"] != "oct" && key.get("k").is_none()),
        "{text}"
    );
    assert!(!text.contains(secret));
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        secret.as_bytes(),
    );
    assert!(!text.contains(&encoded[..20]));
}

/// Connects to the server's maintenance database, to act on the test's own.
fn admin_connection() -> PgConnection {
    PgConnection::establish(&format!("{}/postgres", crate::support::postgres_base_url()))
        .expect("connecting to PostgreSQL")
}

#[actix_web::test]
async fn a_lost_postgres_database_answers_503_not_500_or_a_hang() {
    if !crate::support::postgres_available() {
        return;
    }
    let app = TestApp::spawn_with(Backend::Postgres, &[("LATCHKEY_DB_TIMEOUT", "2")]).await;
    let tokens = app.signup_user().await;
    assert_eq!(
        app.send(Method::GET, "/readyz", None, None).await.status(),
        StatusCode::OK
    );

    // The database disappears under the running service: every connection to it is ended and
    // it is dropped, so no new connection can be made either.
    let name = app
        .database
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("latchkey_test_"), "{name}");
    let mut admin = admin_connection();
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .execute(&mut admin)
    .unwrap();
    diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .expect("dropping the test database");

    let timed = |method: Method, path: &str, token: Option<&str>| {
        let mut request = app
            .client
            .request(method, app.url(path))
            .timeout(Duration::from_secs(15));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let response = timed(Method::GET, "/readyz", None)
        .await
        .expect("/readyz answers within 15 s");
    let problem = assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    let text = problem.to_string();
    assert!(
        !text.contains(&name) && !text.contains("postgres"),
        "{text}"
    );

    let response = timed(Method::GET, "/healthz", None)
        .await
        .expect("/healthz answers");
    assert_eq!(response.status(), StatusCode::OK);

    for path in ["/me", "/sessions"] {
        let response = timed(Method::GET, path, Some(&tokens.access_token))
            .await
            .unwrap_or_else(|error| panic!("{path} answers within 15 s: {error}"));
        assert!(response.headers().contains_key("retry-after"));
        assert_problem(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
        )
        .await;
    }
    let response = app
        .client
        .post(app.url("/login"))
        .json(&json!({"email": tokens.email, "password": crate::support::PASSWORD}))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("/login answers within 15 s");
    assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
}
