//! Email verification and change (API.md "Account recovery and email verification"):
//! `POST /email/verify`, `POST /me/email/verification`, `POST /me/email`, `email_verified`
//! and `LATCHKEY_REQUIRE_VERIFIED_EMAIL`, with mail delivered over SMTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::recovery::{mail_about, mail_app, sign_up};
use crate::support::mail_sink::MailSink;
use crate::support::{Backend, PASSWORD, TestApp, assert_problem, unique_email};

backend_tests!(
    signup_mails_a_code_that_verifies_the_email,
    a_new_verification_code_replaces_the_older,
    verification_codes_are_no_reset_codes,
    an_unverified_email_can_be_required_at_login,
    the_email_changes_once_the_new_address_is_proven,
    an_email_change_needs_the_password_and_a_free_address,
    an_address_taken_before_the_code_comes_back_is_refused,
);

async fn verify(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    app.post("/email/verify", &json!({"email": email, "code": code}))
        .await
}

fn token(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

async fn event_types(app: &TestApp, access_token: &str) -> Vec<String> {
    let page: Value = app
        .send(Method::GET, "/me/events", Some(access_token), None)
        .await
        .json()
        .await
        .unwrap();
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn signup_mails_a_code_that_verifies_the_email(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    let tokens = sign_up(&app, &email).await;
    assert_eq!(tokens["user"]["email_verified"], false);
    let mail = mail_about(&sink, &email, "confirm", 1).await;
    assert!(mail.link().contains("#verify?code="), "{}", mail.link());

    let response = verify(&app, &email, &mail.code()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["email_verified"], true);
    let me: Value = app.me(token(&tokens)).await.json().await.unwrap();
    assert_eq!(me["email_verified"], true);
    assert!(
        event_types(&app, token(&tokens))
            .await
            .contains(&"email_verified".to_owned())
    );

    let again = verify(&app, &email, &mail.code()).await;
    assert_problem(again, StatusCode::BAD_REQUEST, "invalid_code").await;
    let resend = ask_for_a_new_code(&app, token(&tokens)).await;
    assert_problem(resend, StatusCode::CONFLICT, "email_already_verified").await;
}

async fn a_new_verification_code_replaces_the_older(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    let tokens = sign_up(&app, &email).await;
    let older = mail_about(&sink, &email, "confirm", 1).await.code();
    let response = ask_for_a_new_code(&app, token(&tokens)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "sent"})
    );
    let newer = mail_about(&sink, &email, "confirm", 2).await.code();
    let stale = verify(&app, &email, &older).await;
    assert_problem(stale, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_eq!(verify(&app, &email, &newer).await.status(), StatusCode::OK);
    // Without a token: 401.
    let anonymous = app.post("/me/email/verification", &json!({})).await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn verification_codes_are_no_reset_codes(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let code = mail_about(&sink, &email, "confirm", 1).await.code();
    let body = json!({"email": email, "code": code, "new_password": "a brand new passphrase"});
    let reset = app.post("/password/reset", &body).await;
    assert_problem(reset, StatusCode::BAD_REQUEST, "invalid_code").await;
    // That wrong try cost the reset codes a try, not this one.
    assert_eq!(verify(&app, &email, &code).await.status(), StatusCode::OK);
}

async fn an_unverified_email_can_be_required_at_login(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(
        backend,
        &sink,
        &[("LATCHKEY_REQUIRE_VERIFIED_EMAIL", "true")],
    )
    .await;
    let email = unique_email();
    sign_up(&app, &email).await;
    let right = app
        .login(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_problem(right, StatusCode::FORBIDDEN, "email_not_verified").await;
    // A wrong password still says only that.
    let wrong = app
        .login(&json!({"email": email, "password": "not the password at all"}))
        .await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let code = mail_about(&sink, &email, "confirm", 1).await.code();
    assert_eq!(verify(&app, &email, &code).await.status(), StatusCode::OK);
    let response = app
        .login(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn ask_for_a_new_code(app: &TestApp, access_token: &str) -> reqwest::Response {
    app.send(
        Method::POST,
        "/me/email/verification",
        Some(access_token),
        None,
    )
    .await
}

async fn change_email(
    app: &TestApp,
    access_token: &str,
    new_email: &str,
    password: &str,
) -> reqwest::Response {
    let body = json!({"new_email": new_email, "password": password});
    app.send(Method::POST, "/me/email", Some(access_token), Some(&body))
        .await
}

async fn the_email_changes_once_the_new_address_is_proven(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let old = unique_email();
    let new = unique_email();
    let tokens = sign_up(&app, &old).await;

    let response = change_email(&app, token(&tokens), &new.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let notice = mail_about(&sink, &old, "about to change", 1).await;
    assert!(
        notice.text.contains(&new),
        "the old address is told where to: {}",
        notice.text
    );
    let mail = mail_about(&sink, &new, "confirm", 1).await;
    assert!(
        !notice.text.contains(&mail.code()),
        "the old address gets no code"
    );
    // Nothing changed yet.
    let me: Value = app.me(token(&tokens)).await.json().await.unwrap();
    assert_eq!(me["email"], old.as_str());

    let response = verify(&app, &new, &mail.code()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["email"], new.as_str());
    assert_eq!(user["email_verified"], true);
    let by_new = app
        .login(&json!({"email": new, "password": PASSWORD}))
        .await;
    assert_eq!(by_new.status(), StatusCode::OK);
    let by_old = app
        .login(&json!({"email": old, "password": PASSWORD}))
        .await;
    assert_problem(by_old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let types = event_types(&app, token(&tokens)).await;
    for expected in ["email_change_requested", "email_changed"] {
        assert!(
            types.contains(&expected.to_owned()),
            "{expected} in {types:?}"
        );
    }
    // A reset code asked for the old address is no key to the account any more.
    let forgot = app.post("/password/forgot", &json!({"email": old})).await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
}

async fn an_email_change_needs_the_password_and_a_free_address(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    let tokens = sign_up(&app, &email).await;
    let taken = unique_email();
    sign_up(&app, &taken).await;

    let wrong = change_email(
        &app,
        token(&tokens),
        &unique_email(),
        "not the password at all",
    )
    .await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let same = change_email(&app, token(&tokens), &email, PASSWORD).await;
    let problem = assert_problem(same, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "new_email");
    let invalid = change_email(&app, token(&tokens), "not an address", PASSWORD).await;
    let problem = assert_problem(
        invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "new_email");
    let conflict = change_email(&app, token(&tokens), &taken, PASSWORD).await;
    assert_problem(conflict, StatusCode::CONFLICT, "email_taken").await;
    let anonymous = app
        .post(
            "/me/email",
            &json!({"new_email": unique_email(), "password": PASSWORD}),
        )
        .await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn an_address_taken_before_the_code_comes_back_is_refused(backend: Backend) {
    let sink = MailSink::start();
    let app = mail_app(backend, &sink, &[]).await;
    let email = unique_email();
    let tokens = sign_up(&app, &email).await;
    let wanted = unique_email();
    let response = change_email(&app, token(&tokens), &wanted, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let code = mail_about(&sink, &wanted, "confirm", 1).await.code();
    // Someone else signs up with it first (and gets their own verification mail).
    sign_up(&app, &wanted).await;
    let refused = verify(&app, &wanted, &code).await;
    assert_problem(refused, StatusCode::CONFLICT, "email_taken").await;
    let me: Value = app.me(token(&tokens)).await.json().await.unwrap();
    assert_eq!(me["email"], email.as_str());
}
