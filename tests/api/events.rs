//! `GET /me/events`: what each action records, paging, validation, privacy, and retention.

use std::time::Duration;

use diesel::prelude::*;
use latchkey::db::schema::security_events;
use latchkey::maintenance::{self, PrunePolicy};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::cli::assert_success;
use crate::support::{
    Backend, PASSWORD, TestApp, Tokens, assert_problem, claims_of, default_settings, unique_email,
};

backend_tests!(
    every_action_records_its_event_with_address_agent_and_session,
    pages_go_from_newest_to_oldest,
    limit_and_before_are_validated,
    nobody_sees_anybody_elses_events,
    failed_logins_and_lockouts_are_recorded_for_accounts_only,
    a_reused_refresh_token_is_recorded,
    deleting_the_account_deletes_its_events,
    events_older_than_the_retention_are_pruned,
    the_background_task_prunes_old_events,
    operator_revocations_are_recorded,
);

const AGENT: &str = "events-test/1.0";
const NEW_PASSWORD: &str = "a different horse battery";

/// An application whose client says who it is, as browsers and curl do.
async fn spawn(backend: Backend, env: &[(&str, &str)]) -> TestApp {
    let mut app = TestApp::spawn_with(backend, env).await;
    app.client = reqwest::Client::builder()
        .user_agent(AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    app
}

async fn get_events(app: &TestApp, token: &str, query: &str) -> Response {
    app.send(
        Method::GET,
        &format!("/me/events{query}"),
        Some(token),
        None,
    )
    .await
}

/// A page of events, checked for the shape and headers every page has.
async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let response = get_events(app, token, query).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let events = body["events"].as_array().expect("an events array");
    for event in events {
        let id = event["id"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().to_string(), id);
        let at = event["at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'));
        for field in ["ip", "user_agent", "session_id"] {
            assert!(
                event.get(field).is_some(),
                "{field} is always present: {event}"
            );
        }
    }
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(body["next"].is_null() || body["next"].is_string(), "{body}");
    body
}

/// The types of all the caller's events (up to 100), newest first.
async fn types(app: &TestApp, token: &str) -> Vec<String> {
    page(app, token, "?limit=100").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the caller has `count` events: failed logins and lockouts are recorded just
/// after the answer, not before it.
async fn wait_for_events(app: &TestApp, token: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = page(app, token, "?limit=100").await["events"]
            .as_array()
            .unwrap()
            .clone();
        if events.len() >= count || std::time::Instant::now() > deadline {
            assert_eq!(events.len(), count, "{events:#?}");
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sid(tokens: &Tokens) -> String {
    claims_of(&tokens.access_token)["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The number of events stored, for one user or for all.
fn stored(app: &TestApp, user_id: Option<&str>) -> i64 {
    let user_id = user_id.map(str::to_owned);
    app.db
        .run_now(move |conn| {
            let count = match user_id {
                Some(user_id) => security_events::table
                    .filter(security_events::user_id.eq(user_id))
                    .count()
                    .get_result(conn)?,
                None => security_events::table.count().get_result(conn)?,
            };
            Ok(count)
        })
        .unwrap()
}

async fn login_with(app: &TestApp, email: &str, password: &str) -> Tokens {
    let response = app
        .login(&json!({"email": email, "password": password}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    Tokens::from(response.json::<Value>().await.unwrap())
}

async fn every_action_records_its_event_with_address_agent_and_session(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let a = app.signup_user().await;
    let b = app.login_user(&a.email).await;
    let c = app.login_user(&a.email).await;
    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let changed = app
        .send(
            Method::POST,
            "/me/password",
            Some(&a.access_token),
            Some(&body),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let d = login_with(&app, &a.email, NEW_PASSWORD).await;
    let path = format!("/sessions/{}", sid(&d));
    let ended = app
        .send(Method::DELETE, &path, Some(&a.access_token), None)
        .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    let e = login_with(&app, &a.email, NEW_PASSWORD).await;
    let f = login_with(&app, &a.email, NEW_PASSWORD).await;
    let others = app
        .logout(&f.access_token, Some(&json!({"scope": "others"})))
        .await;
    assert_eq!(others.status(), StatusCode::NO_CONTENT);
    let g = login_with(&app, &a.email, NEW_PASSWORD).await;
    let global = app
        .logout(&f.access_token, Some(&json!({"scope": "global"})))
        .await;
    assert_eq!(global.status(), StatusCode::NO_CONTENT);
    let h = login_with(&app, &a.email, NEW_PASSWORD).await;
    let local = app.logout(&h.access_token, None).await;
    assert_eq!(local.status(), StatusCode::NO_CONTENT);
    let reader = login_with(&app, &a.email, NEW_PASSWORD).await;

    let body = page(&app, &reader.access_token, "?limit=100").await;

    assert_eq!(body["next"], Value::Null);
    let actual: Vec<(String, String)> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            assert_eq!(event["ip"], "127.0.0.1", "{event}");
            assert_eq!(event["user_agent"], AGENT, "{event}");
            let session = event["session_id"].as_str().expect("a session").to_owned();
            (event["type"].as_str().unwrap().to_owned(), session)
        })
        .collect();
    let expected: Vec<(&str, String)> = vec![
        ("login", sid(&reader)),
        ("logout", sid(&h)),
        ("login", sid(&h)),
        // A global logout: the caller's session logs out, the other one is revoked.
        ("session_revoked", sid(&g)),
        ("logout", sid(&f)),
        ("login", sid(&g)),
        // Scope `others`: the caller's session lives on, the others are revoked.
        ("session_revoked", sid(&e)),
        ("session_revoked", sid(&a)),
        ("login", sid(&f)),
        ("login", sid(&e)),
        ("session_revoked", sid(&d)),
        ("login", sid(&d)),
        // The password change revokes every other session.
        ("session_revoked", sid(&c)),
        ("session_revoked", sid(&b)),
        ("password_changed", sid(&a)),
        ("login", sid(&c)),
        ("login", sid(&b)),
        ("signup", sid(&a)),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(kind, session)| (kind.to_owned(), session))
        .collect();
    assert_eq!(actual, expected);
}

async fn pages_go_from_newest_to_oldest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.signup_user().await;
    for _ in 0..4 {
        app.login_user(&user.email).await;
    }
    let all = page(&app, &user.access_token, "").await;
    let ids: Vec<String> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 5, "the default page holds them all");
    assert_eq!(all["next"], Value::Null);

    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    let mut sizes = Vec::new();
    loop {
        let body = page(&app, &user.access_token, &query).await;
        let events = body["events"].as_array().unwrap();
        sizes.push(events.len());
        seen.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match body["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().map(String::as_str));
                query = format!("?limit=2&before={next}");
            }
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(seen, ids);

    // A page that ends exactly at the last event says so.
    let full = page(&app, &user.access_token, "?limit=5").await;
    assert_eq!(full["next"], Value::Null);
    let almost = page(&app, &user.access_token, "?limit=4").await;
    let next = almost["next"].as_str().unwrap();
    let last = page(&app, &user.access_token, &format!("?before={next}")).await;
    assert_eq!(last["events"].as_array().unwrap().len(), 1);
    assert_eq!(last["next"], Value::Null);
    assert_eq!(last["events"][0]["type"], "signup");
}

async fn limit_and_before_are_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.signup_user().await;
    let out_of_range = [
        "?limit=0",
        "?limit=101",
        "?limit=-1",
        "?limit=ten",
        "?limit=",
    ]
    .map(|query| (query, "limit", "out_of_range"));
    let not_an_event = ["?before=42", "?before=", "?before=not-an-id"]
        .map(|query| (query, "before", "invalid_event_id"));
    for (query, field, code) in out_of_range.into_iter().chain(not_an_event) {
        let response = get_events(&app, &user.access_token, query).await;
        let body = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
        assert_eq!(body["errors"][0]["code"], code, "{query}");
    }
    let both = get_events(&app, &user.access_token, "?limit=1000&before=x").await;
    let body = assert_problem(both, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");

    for query in ["?limit=1", "?limit=100", "?unknown=1"] {
        assert_eq!(
            page(&app, &user.access_token, query).await["events"][0]["type"],
            "signup"
        );
    }
    let response = app.client.get(app.url("/me/events")).send().await.unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn nobody_sees_anybody_elses_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup_user().await;
    let bob = app.signup_user().await;
    app.login_user(&ada.email).await;
    app.login_user(&bob.email).await;
    let ids_of = |body: &Value| -> Vec<String> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let ada_ids = ids_of(&page(&app, &ada.access_token, "").await);
    let bob_ids = ids_of(&page(&app, &bob.access_token, "").await);
    assert_eq!((ada_ids.len(), bob_ids.len()), (2, 2));
    assert!(ada_ids.iter().all(|id| !bob_ids.contains(id)));

    // Bob's newest event id as Ada's cursor: only Ada's events before that point in time.
    let query = format!("?before={}", bob_ids[0]);
    let via_bob = ids_of(&page(&app, &ada.access_token, &query).await);
    assert_eq!(
        via_bob, ada_ids,
        "all of Ada's events are older than Bob's login"
    );
    let query = format!("?before={}", bob_ids[1]);
    let via_bob = ids_of(&page(&app, &ada.access_token, &query).await);
    assert_eq!(via_bob, ada_ids[1..], "only Ada's signup came before Bob's");
    // Ids that are nobody's: positions in time, nothing more.
    let none = page(
        &app,
        &ada.access_token,
        "?before=00000000-0000-0000-0000-000000000000",
    )
    .await;
    assert_eq!(none["events"], json!([]));
    assert_eq!(none["next"], Value::Null);
    let max = "?before=ffffffff-ffff-ffff-ffff-ffffffffffff";
    assert_eq!(ids_of(&page(&app, &ada.access_token, max).await), ada_ids);
}

async fn failed_logins_and_lockouts_are_recorded_for_accounts_only(backend: Backend) {
    let env = [("LATCHKEY_LOGIN_MAX_FAILURES", "2")];
    let app = spawn(backend, &env).await;
    let user = app.signup_user().await;
    let before = stored(&app, None);

    // Unknown identifiers: the same answers, and nothing recorded anywhere.
    let stranger = json!({"email": unique_email(), "password": "not the password"});
    assert_eq!(
        app.login(&stranger).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(&stranger).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let locked = app.login(&stranger).await;
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let nobody = json!({"username": "nobody_here", "password": "not the password"});
    assert_eq!(app.login(&nobody).await.status(), StatusCode::UNAUTHORIZED);

    // The account: two wrong passwords, then refusals (the right password too).
    let wrong = json!({"email": user.email, "password": "not the password"});
    assert_eq!(app.login(&wrong).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&wrong).await.status(), StatusCode::UNAUTHORIZED);
    for password in ["not the password", PASSWORD, "again not it"] {
        let body = json!({"email": user.email, "password": password});
        let refused = app.login(&body).await;
        assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    }

    let events = wait_for_events(&app, &user.access_token, 4).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["locked_out", "login_failed", "login_failed", "signup"],
        "one lockout event per window, however many refusals"
    );
    for event in &events[..3] {
        assert_eq!(event["ip"], "127.0.0.1");
        assert_eq!(event["user_agent"], AGENT);
        assert_eq!(event["session_id"], Value::Null);
    }
    assert_eq!(
        stored(&app, None) - before,
        3,
        "the unknown identifiers recorded nothing"
    );
}

async fn a_reused_refresh_token_is_recorded(backend: Backend) {
    let app = spawn(backend, &[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await;
    let user = app.signup_user().await;
    let rotated = app.refresh(&user.refresh_token).await;
    assert_eq!(rotated.status(), StatusCode::OK);

    let reused = app.refresh(&user.refresh_token).await;
    assert_problem(reused, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;

    let reader = app.login_user(&user.email).await;
    let events = page(&app, &reader.access_token, "").await;
    let reuse = &events["events"][1];
    assert_eq!(reuse["type"], "refresh_reused");
    assert_eq!(
        reuse["session_id"],
        sid(&user).as_str(),
        "the revoked session"
    );
    assert_eq!(reuse["ip"], "127.0.0.1");
    assert_eq!(reuse["user_agent"], AGENT);
    assert_eq!(
        types(&app, &reader.access_token).await,
        ["login", "refresh_reused", "signup"]
    );
}

async fn deleting_the_account_deletes_its_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.signup_user().await;
    let other = app.signup_user().await;
    app.login_user(&user.email).await;
    assert_eq!(stored(&app, Some(&user.user_id)), 2);

    let body = json!({"password": PASSWORD});
    let deleted = app
        .send(Method::DELETE, "/me", Some(&user.access_token), Some(&body))
        .await;

    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(stored(&app, Some(&user.user_id)), 0);
    assert_eq!(stored(&app, Some(&other.user_id)), 1, "others' events stay");
}

fn prune_policy(event_retention: Duration) -> PrunePolicy {
    PrunePolicy {
        event_retention,
        ..default_settings().prune_policy()
    }
}

async fn events_older_than_the_retention_are_pruned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.signup_user().await;
    app.login_user(&user.email).await;
    let policy = prune_policy(Duration::from_secs(3600));
    let now = latchkey::db::now();

    let pruned = app
        .db
        .run_now(move |conn| maintenance::prune(conn, &policy, now))
        .unwrap();
    assert_eq!(
        pruned.security_events, 0,
        "an hour's retention keeps them for now"
    );

    let later = now + chrono::TimeDelta::minutes(61);
    let pruned = app
        .db
        .run_now(move |conn| maintenance::prune(conn, &policy, later))
        .unwrap();
    assert_eq!(pruned.security_events, 2);
    assert_eq!(stored(&app, None), 0);
}

async fn the_background_task_prunes_old_events(backend: Backend) {
    let env = [
        ("LATCHKEY_PRUNE_INTERVAL", "1"),
        ("LATCHKEY_EVENT_RETENTION", "1"),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    app.signup_user().await;
    assert_eq!(stored(&app, None), 1);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stored(&app, None) > 0 {
        assert!(std::time::Instant::now() < deadline, "not pruned in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn operator_revocations_are_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.signup_user().await;
    let second = app.login_user(&user.email).await;

    assert_success(
        &app.cli(&["sessions", "revoke", "--email", &user.email])
            .await,
    );
    let third = app.login_user(&user.email).await;
    assert_success(&app.cli(&["user", "disable", "--email", &user.email]).await);
    assert_success(&app.cli(&["user", "enable", "--email", &user.email]).await);
    let reader = app.login_user(&user.email).await;

    let events = page(&app, &reader.access_token, "").await;
    let summary: Vec<(&str, &str, Value, Value)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["session_id"].as_str().unwrap(),
                e["ip"].clone(),
                e["user_agent"].clone(),
            )
        })
        .filter(|(kind, ..)| *kind == "session_revoked")
        .collect();
    let (first_sid, second_sid, third_sid) = (sid(&user), sid(&second), sid(&third));
    assert_eq!(
        summary,
        [
            (
                "session_revoked",
                third_sid.as_str(),
                Value::Null,
                Value::Null
            ),
            (
                "session_revoked",
                second_sid.as_str(),
                Value::Null,
                Value::Null
            ),
            (
                "session_revoked",
                first_sid.as_str(),
                Value::Null,
                Value::Null
            ),
        ],
        "an operator has no address: {events}"
    );
}
