//! `GET /me`, `POST /me/password` and `DELETE /me`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, PASSWORD, TestApp, assert_invalid_token, assert_problem, claims_of};

backend_tests!(
    me_returns_the_user,
    changing_the_password_ends_the_other_sessions,
    changing_the_password_needs_the_current_one,
    the_new_password_follows_the_signup_rules,
    deleting_the_account_ends_everything,
    deleting_the_account_needs_the_password,
    concurrent_checks_each_answer_their_own_caller,
    password_checks_are_throttled_with_the_login,
    concurrent_password_changes_commit_once,
    a_password_change_from_a_session_revoked_meanwhile_does_not_commit,
    a_deletion_from_a_session_revoked_meanwhile_does_not_commit,
);

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    let body = json!({"current_password": current, "new_password": new});
    app.send(Method::POST, "/me/password", Some(token), Some(&body))
        .await
}

async fn delete_me(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.send(
        Method::DELETE,
        "/me",
        Some(token),
        Some(&json!({"password": password})),
    )
    .await
}

async fn me_returns_the_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .signup(&json!({"email": "ken@example.com", "username": "ken", "password": PASSWORD}))
        .await;
    let signup: Value = response.json().await.unwrap();

    let response = app.me(signup["access_token"].as_str().unwrap()).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let user: Value = response.json().await.unwrap();
    assert_eq!(user, signup["user"]);
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "email",
            "email_verified",
            "id",
            "mfa",
            "username"
        ],
        "nothing else"
    );
    assert_eq!(user["email_verified"], false, "no code came back yet");
    assert_eq!(user["mfa"], json!([]), "no second factor");
}

async fn changing_the_password_ends_the_other_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let current = app.signup_user().await;
    let other = app.login_user(&current.email).await;

    let response = change_password(&app, &current.access_token, PASSWORD, NEW_PASSWORD).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&current.access_token).await.status(), StatusCode::OK);
    assert_invalid_token(app.me(&other.access_token).await).await;
    let refresh = app.refresh(&other.refresh_token).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let old = app
        .login(&json!({"email": current.email, "password": PASSWORD}))
        .await;
    assert_problem(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let new = app
        .login(&json!({"email": current.email, "password": NEW_PASSWORD}))
        .await;
    assert_eq!(new.status(), StatusCode::OK);
}

async fn changing_the_password_needs_the_current_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let other = app.login_user(&tokens.email).await;

    let response =
        change_password(&app, &tokens.access_token, "a wrong guess!", NEW_PASSWORD).await;

    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        app.me(&other.access_token).await.status(),
        StatusCode::OK,
        "nothing revoked"
    );
    app.login_user(&tokens.email).await;
}

async fn the_new_password_follows_the_signup_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let email = tokens.email.clone();
    for (new, code) in [
        ("tiny7", "password_too_short"),
        ("password1", "password_too_common"),
        (email.as_str(), "password_matches_identity"),
    ] {
        let response = change_password(&app, &tokens.access_token, PASSWORD, new).await;
        let body = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "new_password");
        assert_eq!(body["errors"][0]["code"], code);
        assert!(!body.to_string().contains(new), "no echo");
    }
    app.login_user(&tokens.email).await;
}

async fn deleting_the_account_ends_everything(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let other = app.login_user(&tokens.email).await;

    let response = delete_me(&app, &tokens.access_token, PASSWORD).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(app.me(&tokens.access_token).await).await;
    assert_invalid_token(app.me(&other.access_token).await).await;
    let refresh = app.refresh(&other.refresh_token).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let login = app
        .login(&json!({"email": tokens.email, "password": PASSWORD}))
        .await;
    assert_problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // The email is free again.
    let again = app
        .signup(&json!({"email": tokens.email, "password": PASSWORD}))
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
}

async fn deleting_the_account_needs_the_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;

    let response = delete_me(&app, &tokens.access_token, "a wrong guess!").await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let response = app
        .send(Method::DELETE, "/me", Some(&tokens.access_token), None)
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

/// Many token checks at once (on PostgreSQL they are read from the database together, in
/// batches): each answers its own caller, a revoked session fails in the middle of them, and
/// a logout during the load takes effect on the very next request.
async fn concurrent_checks_each_answer_their_own_caller(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LATCHKEY_ARGON2_MEMORY_KIB", "8192"),
            ("LATCHKEY_ARGON2_ITERATIONS", "1"),
        ],
    )
    .await;
    let mut users = Vec::new();
    for _ in 0..12 {
        users.push(app.signup_user().await);
    }
    for ended in users.iter().step_by(3) {
        assert_eq!(
            app.logout(&ended.access_token, None).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let checks = (0..8)
        .flat_map(|_| users.iter().enumerate())
        .map(|(i, user)| {
            let app = &app;
            async move { (i, app.me(&user.access_token).await) }
        });
    for (i, response) in futures_util::future::join_all(checks).await {
        if i % 3 == 0 {
            assert_invalid_token(response).await;
        } else {
            assert_eq!(response.status(), StatusCode::OK, "user {i}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["email"], users[i].email,
                "user {i} got another's account"
            );
            assert_eq!(body["id"], users[i].user_id);
        }
    }

    // A logout while the others keep checking: the next check of its token fails.
    let leaving = &users[1];
    let load = (0..64).map(|n| app.me(&users[[2, 4][n % 2]].access_token));
    let logout_then_check = async {
        let logout = app.logout(&leaving.access_token, None).await;
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        app.me(&leaving.access_token).await
    };
    let (others, after_logout) =
        futures_util::future::join(futures_util::future::join_all(load), logout_then_check).await;
    assert_invalid_token(after_logout).await;
    for response in others {
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// The event types of the caller's account, newest first, once there are at least `count`
/// (refusals are recorded just after their answer).
async fn event_types(app: &TestApp, token: &str, count: usize) -> Vec<String> {
    for _ in 0..100 {
        let response = app.send(Method::GET, "/me/events", Some(token), None).await;
        let page: Value = response.json().await.unwrap();
        let types: Vec<String> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["type"].as_str().unwrap().to_owned())
            .collect();
        if types.len() >= count {
            return types;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} events");
}

/// The attack: with a stolen access token, the password was guessed at hashing speed on
/// `POST /me/password` and `DELETE /me`, even while the account was locked out of `/login`,
/// and nothing was recorded. Those checks now count against the login's limits.
async fn password_checks_are_throttled_with_the_login(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "3")]).await;
    let tokens = app.signup_user().await;
    let token = tokens.access_token.as_str();
    for _ in 0..2 {
        let response = change_password(&app, token, "a wrong guess", NEW_PASSWORD).await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let response = delete_me(&app, token, "another wrong guess").await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // Locked: the right password is refused everywhere until Retry-After.
    let response = change_password(&app, token, PASSWORD, NEW_PASSWORD).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let response = delete_me(&app, token, PASSWORD).await;
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let response = app
        .login(&json!({"email": tokens.email, "password": PASSWORD}))
        .await;
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert_eq!(
        app.me(token).await.status(),
        StatusCode::OK,
        "nothing changed"
    );

    let types = event_types(&app, token, 5).await;
    let failed = types.iter().filter(|kind| *kind == "login_failed").count();
    assert_eq!(failed, 3, "{types:?}");
    assert!(types.iter().any(|kind| kind == "locked_out"), "{types:?}");

    // And an account locked out of /login cannot be guessed at through a token either.
    let other = app.signup_user().await;
    for _ in 0..3 {
        let response = app
            .login(&json!({"email": other.email, "password": "wrong"}))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = change_password(&app, &other.access_token, PASSWORD, NEW_PASSWORD).await;
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

/// Each hash takes this many Argon2 iterations in the race tests: long enough that a
/// concurrent request lands while the first is still hashing.
const SLOW_HASHES: &str = "40";

/// The attack: two changes with the same current password both answered `204`, the second
/// overwriting the first. The update now requires the hash that was verified.
async fn concurrent_password_changes_commit_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_ARGON2_ITERATIONS", SLOW_HASHES)]).await;
    let tokens = app.signup_user().await;
    let token = tokens.access_token.as_str();
    let (first, second) = tokio::join!(
        change_password(&app, token, PASSWORD, "the first new passphrase"),
        change_password(&app, token, PASSWORD, "the second new passphrase"),
    );
    let (winner, loser) = match (first.status(), second.status()) {
        (StatusCode::NO_CONTENT, _) => ("the first new passphrase", second),
        (_, StatusCode::NO_CONTENT) => ("the second new passphrase", first),
        statuses => panic!("no change committed: {statuses:?}"),
    };
    assert_problem(loser, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let login = |password: &str| json!({"email": tokens.email, "password": password});
    assert_eq!(app.login(&login(winner)).await.status(), StatusCode::OK);
    let others = [
        PASSWORD,
        "the first new passphrase",
        "the second new passphrase",
    ];
    for password in others.into_iter().filter(|password| *password != winner) {
        let response = app.login(&login(password)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{password}");
    }
}

/// Ends the session of `victim` from another device of the same user after `delay`.
async fn revoke_after(app: &TestApp, delay: Duration, device: &str, victim: &str) -> StatusCode {
    tokio::time::sleep(delay).await;
    let session_id = claims_of(victim)["sid"].as_str().unwrap().to_owned();
    let path = format!("/sessions/{session_id}");
    app.send(Method::DELETE, &path, Some(device), None)
        .await
        .status()
}

/// The attack: a password change from a session that another device revoked a few
/// milliseconds earlier (while the change was hashing) still committed. The change now
/// re-checks the caller's session in its transaction.
async fn a_password_change_from_a_session_revoked_meanwhile_does_not_commit(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_ARGON2_ITERATIONS", SLOW_HASHES)]).await;
    let stolen = app.signup_user().await;
    let owner = app.login_user(&stolen.email).await;
    let (change, revoked) = tokio::join!(
        change_password(&app, &stolen.access_token, PASSWORD, NEW_PASSWORD),
        revoke_after(
            &app,
            Duration::from_millis(100),
            &owner.access_token,
            &stolen.access_token
        ),
    );
    assert_eq!(revoked, StatusCode::NO_CONTENT);
    assert_invalid_token(change).await;
    let login = |password: &str| json!({"email": stolen.email, "password": password});
    assert_eq!(app.login(&login(PASSWORD)).await.status(), StatusCode::OK);
    assert_eq!(
        app.login(&login(NEW_PASSWORD)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&owner.access_token).await.status(), StatusCode::OK);
}

/// The same race for `DELETE /me`: the account outlives a deletion from a session revoked
/// while its password was being checked.
async fn a_deletion_from_a_session_revoked_meanwhile_does_not_commit(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_ARGON2_ITERATIONS", SLOW_HASHES)]).await;
    let stolen = app.signup_user().await;
    let owner = app.login_user(&stolen.email).await;
    let (deletion, revoked) = tokio::join!(
        delete_me(&app, &stolen.access_token, PASSWORD),
        revoke_after(
            &app,
            Duration::from_millis(100),
            &owner.access_token,
            &stolen.access_token
        ),
    );
    assert_eq!(revoked, StatusCode::NO_CONTENT);
    assert_invalid_token(deletion).await;
    assert_eq!(app.me(&owner.access_token).await.status(), StatusCode::OK);
    let response = app
        .login(&json!({"email": stolen.email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
