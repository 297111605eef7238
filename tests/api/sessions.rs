//! `GET /sessions` and `DELETE /sessions/{id}`.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{
    Backend, TestApp, assert_invalid_token, assert_problem, claims_of, default_settings,
};

backend_tests!(
    lists_the_live_sessions_and_marks_the_current_one,
    ending_another_session_revokes_it_at_once,
    the_current_session_can_be_ended_too,
    sessions_of_others_unknown_and_ended_ones_are_not_found,
    past_the_limit_a_new_session_ends_the_oldest,
    a_login_flood_leaves_the_tables_bounded,
);

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.sessions(token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json::<Vec<Value>>().await.unwrap()
}

async fn end(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.send(
        Method::DELETE,
        &format!("/sessions/{id}"),
        Some(token),
        None,
    )
    .await
}

async fn lists_the_live_sessions_and_marks_the_current_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    let second = app.login_user(&first.email).await;
    let ended = app.login_user(&first.email).await;
    app.logout(&ended.access_token, None).await;

    let sessions = list(&app, &second.access_token).await;

    assert_eq!(sessions.len(), 2, "the ended session is not listed");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    for session in &sessions {
        let id = session["id"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().to_string(), id);
        for field in ["created_at", "last_used_at", "expires_at"] {
            let at = session[field].as_str().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'));
        }
        assert_eq!(session["ip"], "127.0.0.1");
        assert!(session["user_agent"].is_string() || session["user_agent"].is_null());
    }
    // The other user's sessions are not there.
    let stranger = app.signup_user().await;
    assert_eq!(list(&app, &stranger.access_token).await.len(), 1);
}

async fn ending_another_session_revokes_it_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    let second = app.login_user(&first.email).await;
    let sessions = list(&app, &first.access_token).await;
    let other_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = end(&app, &first.access_token, &other_id).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(app.me(&second.access_token).await).await;
    let refresh = app.refresh(&second.refresh_token).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_eq!(app.me(&first.access_token).await.status(), StatusCode::OK);
    assert_eq!(list(&app, &first.access_token).await.len(), 1);
}

async fn the_current_session_can_be_ended_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let sessions = list(&app, &tokens.access_token).await;
    let id = sessions[0]["id"].as_str().unwrap();

    assert_eq!(
        end(&app, &tokens.access_token, id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_invalid_token(app.me(&tokens.access_token).await).await;
}

async fn sessions_of_others_unknown_and_ended_ones_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.signup_user().await;
    let spare = app.login_user(&owner.email).await;
    let stranger = app.signup_user().await;
    let owner_sessions = list(&app, &owner.access_token).await;
    let owner_session = owner_sessions[0]["id"].as_str().unwrap();

    let theirs = end(&app, &stranger.access_token, owner_session).await;
    assert_problem(theirs, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        list(&app, &owner.access_token).await.len(),
        2,
        "nothing was revoked"
    );

    let unknown = end(&app, &owner.access_token, &uuid::Uuid::now_v7().to_string()).await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let malformed = end(&app, &owner.access_token, "not-a-uuid").await;
    assert_problem(malformed, StatusCode::NOT_FOUND, "not_found").await;

    let spare_id = list(&app, &spare.access_token)
        .await
        .into_iter()
        .find(|s| s["current"] == true)
        .unwrap();
    let spare_id = spare_id["id"].as_str().unwrap();
    app.logout(&spare.access_token, None).await;
    let ended = end(&app, &owner.access_token, spare_id).await;
    assert_problem(ended, StatusCode::NOT_FOUND, "not_found").await;
}

async fn past_the_limit_a_new_session_ends_the_oldest(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_MAX_SESSIONS", "3")]).await;
    let first = app.signup_user().await;
    let mut logins = Vec::new();
    for _ in 0..4 {
        logins.push(app.login_user(&first.email).await);
    }
    let newest = &logins[3];

    let mut listed: Vec<String> = list(&app, &newest.access_token)
        .await
        .iter()
        .map(|session| session["id"].as_str().unwrap().to_owned())
        .collect();
    let mut kept: Vec<String> = logins[1..]
        .iter()
        .map(|tokens| {
            claims_of(&tokens.access_token)["sid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    listed.sort();
    kept.sort();
    assert_eq!(listed, kept, "the three newest are kept");

    for ended in [&first, &logins[0]] {
        assert_invalid_token(app.me(&ended.access_token).await).await;
        let refreshed = app.refresh(&ended.refresh_token).await;
        assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
    }
    let events = app
        .send(Method::GET, "/me/events", Some(&newest.access_token), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let revoked = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "session_revoked")
        .count();
    assert_eq!(revoked, 2);
}

/// Logging in in a loop: the account keeps its limit of live sessions, and once the ended
/// ones have been kept their day for inspection, pruning leaves only those.
async fn a_login_flood_leaves_the_tables_bounded(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_MAX_SESSIONS", "5")]).await;
    let user = app.signup_user().await;
    let mut last = None;
    for _ in 0..40 {
        last = Some(app.login_user(&user.email).await);
    }
    let last = last.unwrap();
    assert_eq!(list(&app, &last.access_token).await.len(), 5);

    let policy = default_settings().prune_policy();
    let later = latchkey::db::now() + chrono::TimeDelta::days(2);
    app.db
        .run_now(move |conn| latchkey::maintenance::prune(conn, &policy, later))
        .unwrap();
    assert_eq!(app.rows("sessions"), 5);
    assert_eq!(app.rows("refresh_tokens"), 5);
    assert_eq!(app.me(&last.access_token).await.status(), StatusCode::OK);
}
