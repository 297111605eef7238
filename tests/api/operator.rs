//! The operator commands through the real binary (API.md "Disabled accounts", "Running it"):
//! `latchkey user list|disable|enable` and `latchkey sessions revoke`, with their effects
//! checked over HTTP on an application running on the same database.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::cli::{assert_one_line_failure, assert_success};
use crate::support::{
    Backend, PASSWORD, TestApp, Tokens, assert_invalid_token, assert_problem, unique_email,
};

backend_tests!(
    disabling_ends_every_session_at_once_and_refuses_the_right_password,
    enabling_lets_the_account_log_in_again,
    revoking_sessions_ends_them_and_keeps_the_account_enabled,
    user_list_shows_each_account_with_its_live_sessions,
    unknown_emails_are_refused_with_one_line,
    a_disable_racing_logins_leaves_no_live_session,
);

/// The session is over: its access token is refused on the next request, and its refresh
/// token too.
async fn assert_ended(app: &TestApp, tokens: &Tokens) {
    let me = app.me(&tokens.access_token).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "the session is live");
    assert_invalid_token(me).await;
    let refresh = app.refresh(&tokens.refresh_token).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.login(&json!({"email": email, "password": password}))
        .await
}

async fn disabling_ends_every_session_at_once_and_refuses_the_right_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    let second = app.login_user(&first.email).await;
    let bystander = app.signup_user().await;

    // An operator types the address as it comes.
    let output = app
        .cli(&["user", "disable", "--email", &first.email.to_uppercase()])
        .await;

    let stdout = assert_success(&output);
    assert_eq!(
        stdout,
        format!("disabled {}, ended 2 sessions\n", first.email)
    );
    assert_ended(&app, &first).await;
    assert_ended(&app, &second).await;
    let right = login(&app, &first.email, PASSWORD).await;
    assert_problem(right, StatusCode::FORBIDDEN, "account_disabled").await;
    let wrong = login(&app, &first.email, "not the password at all").await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        app.me(&bystander.access_token).await.status(),
        StatusCode::OK,
        "other accounts are untouched"
    );

    // Again: nothing more to do, and it says so, keeping the first time.
    let output = app.cli(&["user", "disable", "--email", &first.email]).await;
    let stdout = assert_success(&output);
    assert!(
        stdout.starts_with(&format!("{} was already disabled (since ", first.email)),
        "{stdout}"
    );
    assert!(stdout.ends_with("; ended 0 sessions\n"), "{stdout}");
}

async fn enabling_lets_the_account_log_in_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    assert_success(
        &app.cli(&["user", "disable", "--email", &tokens.email])
            .await,
    );

    let output = app.cli(&["user", "enable", "--email", &tokens.email]).await;

    assert_eq!(
        assert_success(&output),
        format!("enabled {}\n", tokens.email)
    );
    let again = app.login_user(&tokens.email).await;
    assert_eq!(app.me(&again.access_token).await.status(), StatusCode::OK);
    // The sessions that the disable ended stay ended.
    assert_ended(&app, &tokens).await;

    let output = app.cli(&["user", "enable", "--email", &tokens.email]).await;
    assert_eq!(
        assert_success(&output),
        format!("{} was not disabled; nothing changed\n", tokens.email)
    );
}

async fn revoking_sessions_ends_them_and_keeps_the_account_enabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    let second = app.login_user(&first.email).await;
    let bystander = app.signup_user().await;

    let output = app
        .cli(&["sessions", "revoke", "--email", &first.email])
        .await;

    assert_eq!(
        assert_success(&output),
        format!("ended 2 sessions of {}\n", first.email)
    );
    assert_ended(&app, &first).await;
    assert_ended(&app, &second).await;
    assert_eq!(
        app.me(&bystander.access_token).await.status(),
        StatusCode::OK
    );
    let third = app.login_user(&first.email).await;
    assert_eq!(app.me(&third.access_token).await.status(), StatusCode::OK);

    let output = app
        .cli(&["sessions", "revoke", "--email", &first.email])
        .await;
    assert_eq!(
        assert_success(&output),
        format!("ended 1 session of {}\n", first.email)
    );
    assert_ended(&app, &third).await;
    let output = app
        .cli(&["sessions", "revoke", "--email", &first.email])
        .await;
    assert_eq!(
        assert_success(&output),
        format!("{} had no live session; nothing changed\n", first.email)
    );
}

async fn user_list_shows_each_account_with_its_live_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let busy = app.signup_user().await;
    app.login_user(&busy.email).await;
    app.login_user(&busy.email).await;
    let idle = app.signup_user().await;
    let logout = app.logout(&idle.access_token, None).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let named = app
        .signup(&json!({"email": unique_email(), "username": "grace", "password": PASSWORD}))
        .await;
    let named = Tokens::from(named.json::<Value>().await.unwrap());
    assert_success(&app.cli(&["user", "disable", "--email", &named.email]).await);

    let table = assert_success(&app.cli(&["user", "list"]).await);
    let json = assert_success(&app.cli(&["user", "list", "--json"]).await);

    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three users:\n{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "EMAIL", "USERNAME", "CREATED", "DISABLED", "SESSIONS"]
    );
    // Oldest first, one user per line, its cells where the header's columns start.
    let column = |name: &str| lines[0].find(name).unwrap();
    for (line, tokens, sessions) in [(1, &busy, "3"), (2, &idle, "0"), (3, &named, "0")] {
        let row = lines[line];
        assert_eq!(&row[..tokens.user_id.len()], tokens.user_id, "{table}");
        assert!(row[column("EMAIL")..].starts_with(&tokens.email), "{table}");
        assert_eq!(row.split_whitespace().last(), Some(sessions), "{table}");
    }
    assert!(lines[1][column("DISABLED")..].starts_with("no "), "{table}");
    assert!(
        lines[3][column("USERNAME")..].starts_with("grace "),
        "{table}"
    );
    assert!(
        lines[3][column("DISABLED")..].starts_with("since 20"),
        "{table}"
    );

    let users: Vec<Value> = serde_json::from_str(&json).expect("a JSON array");
    assert_eq!(users.len(), 3);
    assert_eq!(users[0]["id"], busy.user_id.as_str());
    assert_eq!(users[0]["email"], busy.email.as_str());
    assert_eq!(users[0]["username"], Value::Null);
    assert_eq!(users[0]["disabled_at"], Value::Null);
    assert_eq!(users[0]["live_sessions"], 3);
    assert_eq!(users[1]["live_sessions"], 0);
    assert_eq!(users[2]["username"], "grace");
    assert_eq!(users[2]["live_sessions"], 0);
    for user in &users {
        let created = user["created_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{user}"
        );
        assert!(created.ends_with('Z'), "{user}");
    }
    let disabled = users[2]["disabled_at"].as_str().expect("a time");
    assert!(chrono::DateTime::parse_from_rfc3339(disabled).is_ok());
}

async fn unknown_emails_are_refused_with_one_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let stranger = unique_email();

    for command in [
        &["user", "disable"][..],
        &["user", "enable"][..],
        &["sessions", "revoke"][..],
    ] {
        let mut args = command.to_vec();
        args.extend(["--email", &stranger]);
        let output = app.cli(&args).await;
        let stderr = assert_one_line_failure(&output);
        assert_eq!(
            stderr,
            format!("latchkey: no user with email {stranger}\n"),
            "{command:?}"
        );
        assert_eq!(output.stdout, b"");
    }
    // Nothing else was touched.
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

/// A login whose password check overlaps the disable must not leave a session behind: every
/// login that got tokens has them refused afterwards, and none is left live.
async fn a_disable_racing_logins_leaves_no_live_session(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LATCHKEY_HASH_WORKERS", "1"),
            ("LATCHKEY_LOGIN_MAX_FAILURES", "100"),
        ],
    )
    .await;
    let tokens = app.signup_user().await;
    let logins =
        futures_util::future::join_all((0..12).map(|_| login(&app, &tokens.email, PASSWORD)));
    let disable = async {
        // Let the first logins through before disabling, so that both outcomes occur.
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        app.cli(&["user", "disable", "--email", &tokens.email])
            .await
    };

    let (responses, output) = futures_util::future::join(logins, disable).await;

    assert_success(&output);
    let mut statuses = Vec::new();
    for response in responses {
        statuses.push(response.status());
        match response.status() {
            StatusCode::OK => {
                let body: Value = response.json().await.unwrap();
                assert_ended(&app, &Tokens::from(body)).await;
            }
            StatusCode::FORBIDDEN => {
                assert_problem(response, StatusCode::FORBIDDEN, "account_disabled").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(statuses.contains(&StatusCode::FORBIDDEN), "{statuses:?}");
    let listed = assert_success(&app.cli(&["user", "list", "--json"]).await);
    let users: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(users[0]["live_sessions"], 0, "{statuses:?}");
}
