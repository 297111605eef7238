//! `POST /logout` with its scopes (API.md: "Tokens and sessions").

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, Tokens, assert_invalid_token, assert_problem};

backend_tests!(
    local_is_the_default_and_ends_only_this_session,
    local_scope_in_a_body,
    others_scope_keeps_this_session,
    global_scope_ends_every_session,
    rejects_an_unknown_scope,
    an_empty_json_body_means_the_default_scope,
    a_second_logout_with_the_same_token_is_refused,
);

/// Three sessions of one user.
async fn three_sessions(app: &TestApp) -> [Tokens; 3] {
    let first = app.signup_user().await;
    let second = app.login_user(&first.email).await;
    let third = app.login_user(&first.email).await;
    [first, second, third]
}

async fn assert_alive(app: &TestApp, tokens: &Tokens) {
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

/// Both the access token and the refresh token of the session are refused at once.
async fn assert_ended(app: &TestApp, tokens: &Tokens) {
    assert_invalid_token(app.me(&tokens.access_token).await).await;
    let refresh = app.refresh(&tokens.refresh_token).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

async fn local_is_the_default_and_ends_only_this_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [first, second, third] = three_sessions(&app).await;

    let response = app.logout(&first.access_token, None).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_ended(&app, &first).await;
    assert_alive(&app, &second).await;
    assert_alive(&app, &third).await;
}

async fn local_scope_in_a_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [first, second, _] = three_sessions(&app).await;

    let response = app
        .logout(&second.access_token, Some(&json!({"scope": "local"})))
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_ended(&app, &second).await;
    assert_alive(&app, &first).await;
    // An empty JSON object means the default scope too.
    let response = app.logout(&first.access_token, Some(&json!({}))).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_ended(&app, &first).await;
}

async fn others_scope_keeps_this_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [first, second, third] = three_sessions(&app).await;

    let response = app
        .logout(&second.access_token, Some(&json!({"scope": "others"})))
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_alive(&app, &second).await;
    assert_ended(&app, &first).await;
    assert_ended(&app, &third).await;
    let sessions: Value = app
        .sessions(&second.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1);
}

async fn global_scope_ends_every_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sessions = three_sessions(&app).await;
    let other_user = app.signup_user().await;

    let response = app
        .logout(&sessions[0].access_token, Some(&json!({"scope": "global"})))
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for tokens in &sessions {
        assert_ended(&app, tokens).await;
    }
    assert_alive(&app, &other_user).await;
}

async fn rejects_an_unknown_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;

    let response = app
        .logout(&tokens.access_token, Some(&json!({"scope": "everything"})))
        .await;

    let body = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert!(!body.to_string().contains("everything"), "no echo: {body}");
    assert_alive(&app, &tokens).await;
}

async fn a_second_logout_with_the_same_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    assert_eq!(
        app.logout(&tokens.access_token, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_invalid_token(app.logout(&tokens.access_token, None).await).await;
}

/// Generated clients send `Content-Type: application/json` with an empty body when the
/// optional body is left out. A JSON `null` is not an object, so it is malformed.
async fn an_empty_json_body_means_the_default_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let post = |body: &'static str| {
        app.client
            .post(app.url("/logout"))
            .bearer_auth(&tokens.access_token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    let null = post("null").await.unwrap();
    assert_problem(null, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert_alive(&app, &tokens).await;

    let empty = post("").await.unwrap();
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
    assert_ended(&app, &tokens).await;
}
