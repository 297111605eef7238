//! `POST /signup` (API.md: "POST /signup", "Objects").

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Backend, PASSWORD, TestApp, assert_problem, unique_email};

backend_tests!(
    creates_the_user_and_logs_them_in,
    stores_the_email_trimmed_and_lowercased,
    username_is_optional_and_null_without_one,
    reports_every_failing_field_at_once_without_echoing_values,
    password_length_counts_characters_not_bytes,
    rejects_common_passwords,
    rejects_a_password_equal_to_email_or_username,
    rejects_bad_usernames,
    email_is_unique_ignoring_case,
    look_alike_emails_are_one_mailbox,
    username_is_unique_ignoring_case,
    a_taken_username_tells_nothing_about_the_email,
    concurrent_signups_with_one_email_create_one_account,
    signups_are_limited_per_address_whatever_their_outcome,
    concurrent_signups_cannot_pass_the_address_limit,
    the_signup_limit_holds_on_every_instance,
);

/// Signs up from `address` (as named by a trusted proxy) with a fresh email.
async fn signup_from(app: &TestApp, address: &str, username: Option<&str>) -> reqwest::Response {
    let body = json!({"email": unique_email(), "password": PASSWORD, "username": username});
    app.client
        .post(app.url("/signup"))
        .header("X-Forwarded-For", address)
        .json(&body)
        .send()
        .await
        .unwrap()
}

const BEHIND_A_PROXY: (&str, &str) = ("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1");

/// Each answer, a taken username's `409` included, counts: the limit rations both new
/// accounts and guesses at which names are registered. Other addresses are not affected.
async fn signups_are_limited_per_address_whatever_their_outcome(backend: Backend) {
    let env = [("LATCHKEY_SIGNUP_IP_MAX", "3"), BEHIND_A_PROXY];
    let app = TestApp::spawn_with(backend, &env).await;
    let flooder = "203.0.113.7";
    assert_eq!(
        signup_from(&app, flooder, Some("taken")).await.status(),
        StatusCode::CREATED
    );
    let again = signup_from(&app, flooder, Some("taken")).await;
    assert_problem(again, StatusCode::CONFLICT, "username_taken").await;
    assert_eq!(
        signup_from(&app, flooder, None).await.status(),
        StatusCode::CREATED
    );

    let refused = signup_from(&app, flooder, Some("TAKEN")).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3500..=3600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let refused = signup_from(&app, flooder, None).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.rows("users"), 2, "a refused signup created nothing");

    let neighbour = signup_from(&app, "198.51.100.1", None).await;
    assert_eq!(neighbour.status(), StatusCode::CREATED);
}

/// Signups from one address at once take the last free places one at a time.
async fn concurrent_signups_cannot_pass_the_address_limit(backend: Backend) {
    let env = [("LATCHKEY_SIGNUP_IP_MAX", "3"), BEHIND_A_PROXY];
    let app = TestApp::spawn_with(backend, &env).await;
    let answers =
        futures_util::future::join_all((0..12).map(|_| signup_from(&app, "203.0.113.8", None)))
            .await;
    let created = answers
        .iter()
        .filter(|answer| answer.status() == StatusCode::CREATED)
        .count();
    let refused = answers
        .iter()
        .filter(|answer| answer.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, refused), (3, 9));
    assert_eq!(app.rows("users"), 3);
}

async fn the_signup_limit_holds_on_every_instance(backend: Backend) {
    let env = [("LATCHKEY_SIGNUP_IP_MAX", "2"), BEHIND_A_PROXY];
    let first = TestApp::spawn_with(backend, &env).await;
    let second = TestApp::spawn_on(first.database.clone(), &env).await;
    assert_eq!(
        signup_from(&first, "203.0.113.9", None).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        signup_from(&second, "203.0.113.9", None).await.status(),
        StatusCode::CREATED
    );
    for app in [&first, &second] {
        let refused = signup_from(app, "203.0.113.9", None).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

async fn creates_the_user_and_logs_them_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .signup(&json!({"email": "ada@example.com", "password": PASSWORD, "username": "ada"}))
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(refresh.len() >= 43, "at least 256 bits");
    let user = &body["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["username"], "ada");
    let id = user["id"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(id).unwrap().to_string(),
        id,
        "canonical lowercase UUID"
    );
    let created = user["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'));

    // The new user is logged in: the access token works at once.
    let me = app.me(body["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap(), *user);
}

async fn stores_the_email_trimmed_and_lowercased(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .signup(&json!({"email": "  Grace.Hopper@Example.COM ", "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "grace.hopper@example.com");
    app.login_user("GRACE.HOPPER@example.com").await;
}

async fn username_is_optional_and_null_without_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    assert_eq!(tokens.body["user"]["username"], Value::Null);
}

async fn reports_every_failing_field_at_once_without_echoing_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret_password = "hunter2";
    let response = app
        .signup(&json!({"email": "not-an-email", "password": secret_password, "username": "x!"}))
        .await;

    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let errors = body["errors"].as_array().unwrap();
    let fields: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("email", "invalid_email"),
            ("username", "invalid_username"),
            ("password", "password_too_short"),
        ]
    );
    assert!(errors.iter().all(|e| e["message"].is_string()));
    let text = body.to_string();
    for submitted in [secret_password, "not-an-email", "x!"] {
        assert!(
            !text.contains(submitted),
            "the problem echoes {submitted:?}: {text}"
        );
    }
}

async fn password_length_counts_characters_not_bytes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        ("ééééééé", Some("password_too_short")), // 7 characters, 14 bytes
        ("éééééééé", None),                      // 8 characters
        (&"ü".repeat(128), None),
        (&"ü".repeat(129), Some("password_too_long")),
    ];
    for (password, expected) in cases {
        let response = app
            .signup(&json!({"email": unique_email(), "password": password}))
            .await;
        match expected {
            None => assert_eq!(response.status(), StatusCode::CREATED, "{password}"),
            Some(code) => {
                let body = assert_problem(
                    response,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                )
                .await;
                assert_eq!(body["errors"][0]["code"], code, "{password}");
            }
        }
    }
}

async fn rejects_common_passwords(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for password in ["password", "12345678", "Iloveyou1", "qwertyuiop"] {
        let response = app
            .signup(&json!({"email": unique_email(), "password": password}))
            .await;
        let body = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "password");
        assert_eq!(
            body["errors"][0]["code"], "password_too_common",
            "{password}"
        );
    }
}

async fn rejects_a_password_equal_to_email_or_username(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        json!({"email": "lovelace@example.com", "password": "Lovelace@Example.com"}),
        json!({"email": unique_email(), "username": "countess_ada", "password": "COUNTESS_ADA"}),
    ];
    for body in cases {
        let response = app.signup(&body).await;
        let problem = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["code"], "password_matches_identity");
    }
}

async fn rejects_bad_usernames(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for username in [
        "ab",
        &"a".repeat(33),
        "has space",
        "émile",
        "semi;colon",
        "",
    ] {
        let response = app
            .signup(&json!({"email": unique_email(), "password": PASSWORD, "username": username}))
            .await;
        let body = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "username", "{username:?}");
    }
    for username in ["abc", "A.b-c_9", &"z".repeat(32)] {
        let response = app
            .signup(&json!({"email": unique_email(), "password": PASSWORD, "username": username}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{username:?}");
    }
}

async fn email_is_unique_ignoring_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app
        .signup(&json!({"email": "alan@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = app
        .signup(&json!({"email": "ALAN@example.com", "password": PASSWORD}))
        .await;
    assert_problem(second, StatusCode::CONFLICT, "email_taken").await;
}

/// The attack: fullwidth letters, a zero-width space or a soft hyphen made distinct accounts
/// for one mailbox, which look alike in a list. Look-alike spellings are now one address
/// (each logs in to it), and invisible characters are refused.
async fn look_alike_emails_are_one_mailbox(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let credentials = |email: &str| json!({"email": email, "password": PASSWORD});
    let first = app.signup(&credentials("grace@example.com")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    for twin in [
        "grace@ｅｘａｍｐｌｅ.com",
        "ｇｒａｃｅ@example.com",
        "GRACE@EXAMPLE.COM",
    ] {
        let response = app.signup(&credentials(twin)).await;
        assert_problem(response, StatusCode::CONFLICT, "email_taken").await;
        let response = app.login(&credentials(twin)).await;
        assert_eq!(response.status(), StatusCode::OK, "{twin}");
    }
    for invisible in [
        "grace\u{200B}@example.com",
        "grace@exam\u{00AD}ple.com",
        "gr\u{2060}ace@example.com",
    ] {
        let response = app.signup(&credentials(invisible)).await;
        let body = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["code"], "invalid_email", "{invisible:?}");
    }
    // A Unicode domain is stored as punycode.
    let response = app.signup(&credentials("grace@Bücher.example")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "grace@xn--bcher-kva.example");
}

async fn username_is_unique_ignoring_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app
        .signup(&json!({"email": unique_email(), "password": PASSWORD, "username": "Turing"}))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = app
        .signup(&json!({"email": unique_email(), "password": PASSWORD, "username": "tURING"}))
        .await;
    assert_problem(second, StatusCode::CONFLICT, "username_taken").await;
}

/// The attack: with a taken username, signup answered `email_taken` or `username_taken`
/// depending on whether the email was registered, at once and creating nothing: an oracle
/// for which emails have accounts. The username is checked first now.
async fn a_taken_username_tells_nothing_about_the_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let registered = unique_email();
    let owner = json!({"email": registered, "password": PASSWORD, "username": "hopper"});
    assert_eq!(app.signup(&owner).await.status(), StatusCode::CREATED);
    let mut answers = Vec::new();
    for email in [registered.clone(), unique_email()] {
        let probe = json!({"email": email, "password": PASSWORD, "username": "Hopper"});
        answers.push(
            assert_problem(
                app.signup(&probe).await,
                StatusCode::CONFLICT,
                "username_taken",
            )
            .await,
        );
    }
    assert_eq!(answers[0], answers[1]);
}

async fn concurrent_signups_with_one_email_create_one_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"email": "race@example.com", "password": PASSWORD});
    let responses = futures_util::future::join_all((0..20).map(|_| app.signup(&body))).await;
    let mut created = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => created += 1,
            _ => {
                assert_problem(response, StatusCode::CONFLICT, "email_taken").await;
            }
        }
    }
    assert_eq!(created, 1, "exactly one signup wins");
}
