//! `POST /login` (API.md: "POST /login").

use std::time::{Duration, Instant};

use diesel::prelude::*;
use latchkey::db::schema::users;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Backend, PASSWORD, TestApp, assert_problem, unique_email};

backend_tests!(
    logs_in_by_email_case_insensitively,
    logs_in_by_username_ignoring_case,
    each_login_opens_a_new_session,
    wrong_password_and_unknown_account_get_the_same_answer,
    unknown_accounts_still_pay_for_a_hash,
    needs_exactly_one_of_email_and_username,
    a_disabled_account_is_refused_only_with_the_right_password,
    rehashes_a_password_stored_with_older_parameters,
);

async fn signup_with_username(app: &TestApp, email: &str, username: &str) {
    let response = app
        .signup(&json!({"email": email, "username": username, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn logs_in_by_email_case_insensitively(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    signup_with_username(&app, "edsger@example.com", "edsger").await;

    let response = app
        .login(&json!({"email": " Edsger@EXAMPLE.com", "password": PASSWORD}))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(body["user"]["email"], "edsger@example.com");
    assert_eq!(body["user"]["username"], "edsger");
    let me = app.me(body["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status(), StatusCode::OK);
}

async fn logs_in_by_username_ignoring_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    signup_with_username(&app, &unique_email(), "Barbara.Liskov").await;

    for username in ["Barbara.Liskov", "barbara.liskov", "BARBARA.LISKOV"] {
        let response = app
            .login(&json!({"username": username, "password": PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{username}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user"]["username"], "Barbara.Liskov");
    }
}

async fn each_login_opens_a_new_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    let second = app.login_user(&first.email).await;
    assert_ne!(first.refresh_token, second.refresh_token);

    let sessions: Value = app
        .sessions(&second.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 2);
}

async fn wrong_password_and_unknown_account_get_the_same_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let known = app.signup_user().await;

    let wrong_password = app
        .login(&json!({"email": known.email, "password": "not the password"}))
        .await;
    let unknown_account = app
        .login(&json!({"email": unique_email(), "password": PASSWORD}))
        .await;
    let unknown_username = app
        .login(&json!({"username": "nobody_here", "password": PASSWORD}))
        .await;

    let wrong_password = assert_problem(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown_account = assert_problem(
        unknown_account,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown_username = assert_problem(
        unknown_username,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        wrong_password, unknown_account,
        "the bodies must not tell them apart"
    );
    assert_eq!(wrong_password, unknown_username);
}

/// An unknown account is checked against a decoy hash, so it costs about what a wrong
/// password costs. Compared as medians of repeated attempts, with a generous bound: the
/// point is that no unknown-account answer comes back without a hash (far faster).
async fn unknown_accounts_still_pay_for_a_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let known = app.signup_user().await;
    let wrong = json!({"email": known.email, "password": "not the password"});
    let unknown = json!({"email": unique_email(), "password": "not the password"});

    let mut wrong_times = Vec::new();
    let mut unknown_times = Vec::new();
    for _ in 0..7 {
        for (body, times) in [(&wrong, &mut wrong_times), (&unknown, &mut unknown_times)] {
            let started = Instant::now();
            let response = app.login(body).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            times.push(started.elapsed());
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (wrong, unknown) = (median(&mut wrong_times), median(&mut unknown_times));
    assert!(
        unknown * 3 >= wrong && wrong * 3 >= unknown,
        "median wrong password {wrong:?} vs unknown account {unknown:?}"
    );
}

async fn needs_exactly_one_of_email_and_username(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let both = app
        .login(&json!({"email": unique_email(), "username": "someone", "password": PASSWORD}))
        .await;
    let neither = app.login(&json!({"password": PASSWORD})).await;

    let both = assert_problem(both, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let neither = assert_problem(
        neither,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(both["errors"][0]["code"], "email_and_username_given");
    assert_eq!(neither["errors"][0]["code"], "email_or_username_required");

    let no_password = app.login(&json!({"email": unique_email()})).await;
    assert_problem(no_password, StatusCode::BAD_REQUEST, "malformed_request").await;
}

async fn a_disabled_account_is_refused_only_with_the_right_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let email = tokens.email.clone();
    app.db
        .run_now(move |conn| {
            diesel::update(users::table.filter(users::email.eq(&email)))
                .set(users::disabled_at.eq(Some(latchkey::db::now())))
                .execute(conn)?;
            Ok(())
        })
        .unwrap();

    let right = app
        .login(&json!({"email": tokens.email, "password": PASSWORD}))
        .await;
    assert_problem(right, StatusCode::FORBIDDEN, "account_disabled").await;
    let wrong = app
        .login(&json!({"email": tokens.email, "password": "not the password"}))
        .await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

async fn rehashes_a_password_stored_with_older_parameters(backend: Backend) {
    let weak = [
        ("LATCHKEY_ARGON2_MEMORY_KIB", "8192"),
        ("LATCHKEY_ARGON2_ITERATIONS", "1"),
    ];
    let old = TestApp::spawn_with(backend, &weak).await;
    let tokens = old.signup_user().await;
    let stored_hash = |app: &TestApp| {
        let email = tokens.email.clone();
        app.db
            .run_now(move |conn| {
                Ok(users::table
                    .filter(users::email.eq(&email))
                    .select(users::password_hash)
                    .first::<String>(conn)?)
            })
            .unwrap()
    };
    assert!(stored_hash(&old).starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));

    // The operator raises the cost; the next successful login upgrades the stored hash.
    let upgraded = TestApp::spawn_on(old.database.clone(), &[]).await;
    let failed = upgraded
        .login(&json!({"email": tokens.email, "password": "not the password"}))
        .await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    assert!(
        stored_hash(&upgraded).contains("m=8192,t=1"),
        "a failed login changes nothing"
    );

    upgraded.login_user(&tokens.email).await;
    assert!(stored_hash(&upgraded).starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    upgraded.login_user(&tokens.email).await;
}
