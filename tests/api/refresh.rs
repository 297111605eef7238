//! `POST /refresh`: rotation, the grace window, reuse detection and session lifetimes
//! (API.md: "Tokens and sessions").

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, Tokens, assert_invalid_token, assert_problem};

backend_tests!(
    rotates_to_a_new_refresh_token,
    the_just_retired_token_converges_within_the_grace_window,
    concurrent_refreshes_with_one_token_converge,
    concurrent_refreshes_on_two_instances_converge,
    reuse_without_grace_revokes_the_session,
    reuse_after_the_grace_window_revokes_the_session,
    an_older_token_is_reuse_even_within_the_grace_window,
    rotation_and_reuse_hold_across_instances,
    unknown_and_malformed_refresh_tokens_are_invalid,
    a_missing_or_mistyped_field_is_a_malformed_request,
    a_session_ends_at_its_absolute_lifetime,
    a_session_ends_after_its_idle_period,
    access_tokens_never_outlive_the_session,
    logout_ends_the_refresh_token_too,
    a_token_replayed_after_many_rotations_revokes_its_session,
    a_refresh_flood_keeps_two_generations,
    made_up_tokens_for_a_known_session_change_nothing,
    tokens_issued_before_families_still_rotate_and_detect_reuse,
);

/// Refreshes, asserting success, and returns the new pair.
async fn refreshed(app: &TestApp, refresh_token: &str) -> Tokens {
    let response = app.refresh(refresh_token).await;
    assert_eq!(response.status(), StatusCode::OK, "refresh refused");
    assert_eq!(response.headers()["cache-control"], "no-store");
    Tokens::from(response.json::<Value>().await.unwrap())
}

async fn assert_refresh_refused(app: &TestApp, refresh_token: &str, code: &str) {
    let response = app.refresh(refresh_token).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, code).await;
}

/// The payload of a JWT.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn session_id(tokens: &Tokens) -> String {
    claims_of(&tokens.access_token)["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn sessions(app: &TestApp, access_token: &str) -> Vec<Value> {
    let response = app.sessions(access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn sleep_secs(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}

async fn rotates_to_a_new_refresh_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;

    let response = app.refresh(&first.refresh_token).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"], first.body["user"]);
    let second = Tokens::from(body);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(second.refresh_token.len() >= 43, "at least 256 bits");
    assert!(
        second
            .refresh_token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "URL-safe"
    );
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(
        session_id(&second),
        session_id(&first),
        "the same session continues"
    );

    // The new access token works, and the new refresh token works in turn.
    let me = app.me(&second.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap(), first.body["user"]);
    let third = refreshed(&app, &second.refresh_token).await;
    assert_ne!(third.refresh_token, second.refresh_token);
    assert_ne!(third.refresh_token, first.refresh_token);
    assert_eq!(app.me(&third.access_token).await.status(), StatusCode::OK);
    assert_eq!(sessions(&app, &third.access_token).await.len(), 1);
}

async fn the_just_retired_token_converges_within_the_grace_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    let second = refreshed(&app, &first.refresh_token).await;

    // Another tab presents the token that was just retired.
    let again = refreshed(&app, &first.refresh_token).await;

    assert_eq!(
        again.refresh_token, second.refresh_token,
        "the same successor"
    );
    assert_ne!(
        again.access_token, second.access_token,
        "a fresh access token"
    );
    assert_eq!(session_id(&again), session_id(&first));
    assert_eq!(app.me(&again.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&second.access_token).await.status(), StatusCode::OK);
    assert_eq!(sessions(&app, &again.access_token).await.len(), 1);
    // The shared successor still rotates normally.
    let third = refreshed(&app, &second.refresh_token).await;
    assert_ne!(third.refresh_token, second.refresh_token);
    assert_eq!(app.me(&third.access_token).await.status(), StatusCode::OK);
}

async fn concurrent_refreshes_with_one_token_converge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    // Open the HTTP and database connections first, so that the refreshes really overlap.
    let warm_up = futures_util::future::join_all((0..8).map(|_| app.me(&first.access_token)));
    assert!(warm_up.await.iter().all(|r| r.status() == StatusCode::OK));

    let responses =
        futures_util::future::join_all((0..8).map(|_| app.refresh(&first.refresh_token))).await;

    let mut successors = Vec::new();
    for response in responses {
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "a concurrent refresh failed"
        );
        successors.push(Tokens::from(response.json::<Value>().await.unwrap()));
    }
    let successor = successors[0].refresh_token.clone();
    assert_ne!(successor, first.refresh_token);
    for tokens in &successors {
        assert_eq!(tokens.refresh_token, successor, "the session forked");
        assert_eq!(session_id(tokens), session_id(&first));
        assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
    }
    assert_eq!(
        sessions(&app, &first.access_token).await.len(),
        1,
        "one session"
    );
    assert_generations(&app, &session_id(&first), 2);
    let next = refreshed(&app, &successor).await;
    assert_ne!(next.refresh_token, successor);
}

async fn concurrent_refreshes_on_two_instances_converge(backend: Backend) {
    let one = TestApp::spawn(backend).await;
    let two = TestApp::spawn_on(one.database.clone(), &[]).await;
    let first = one.signup_user().await;
    let warm_up = (0..8).map(|i| [&one, &two][i % 2].me(&first.access_token));
    let warmed = futures_util::future::join_all(warm_up).await;
    assert!(warmed.iter().all(|r| r.status() == StatusCode::OK));

    let requests = (0..8).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        app.refresh(&first.refresh_token)
    });
    let responses = futures_util::future::join_all(requests).await;

    let mut successors = Vec::new();
    for response in responses {
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "a concurrent refresh failed"
        );
        let body: Value = response.json().await.unwrap();
        successors.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert!(
        successors.iter().all(|token| *token == successors[0]),
        "the session forked: {successors:?}"
    );
    assert_generations(&one, &session_id(&first), 2);
    refreshed(&two, &successors[0]).await;
}

/// The session has exactly `count` refresh-token generations in the database: no fork.
fn assert_generations(app: &TestApp, session_id: &str, count: i32) {
    let session_id = latchkey::domain::SessionId::from(session_id.to_owned());
    let stored = app
        .db
        .run_now(move |conn| {
            let mut stored = Vec::new();
            for generation in 0..=count {
                stored.push(
                    latchkey::db::refresh_tokens::find(conn, &session_id, generation)?.is_some(),
                );
            }
            Ok(stored)
        })
        .unwrap();
    let expected: Vec<bool> = (0..=count).map(|generation| generation < count).collect();
    assert_eq!(stored, expected, "generations present, 0..={count}");
}

async fn reuse_without_grace_revokes_the_session(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await;
    let first = app.signup_user().await;
    let other_session = app.login_user(&first.email).await;
    let second = refreshed(&app, &first.refresh_token).await;

    assert_refresh_refused(&app, &first.refresh_token, "refresh_token_reused").await;

    // The whole session is revoked: every access token and the newest refresh token.
    assert_invalid_token(app.me(&first.access_token).await).await;
    assert_invalid_token(app.me(&second.access_token).await).await;
    assert_refresh_refused(&app, &second.refresh_token, "invalid_refresh_token").await;
    // Presenting the reused token again changes nothing and still fails.
    let again = app.refresh(&first.refresh_token).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // The user's other session is not touched.
    assert_eq!(
        app.me(&other_session.access_token).await.status(),
        StatusCode::OK
    );
    let remaining = sessions(&app, &other_session.access_token).await;
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0]["id"], session_id(&other_session).as_str());
    refreshed(&app, &other_session.refresh_token).await;
}

async fn reuse_after_the_grace_window_revokes_the_session(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_REFRESH_REUSE_GRACE", "1")]).await;
    let first = app.signup_user().await;
    let second = refreshed(&app, &first.refresh_token).await;

    sleep_secs(2.0).await;

    assert_refresh_refused(&app, &first.refresh_token, "refresh_token_reused").await;
    assert_invalid_token(app.me(&second.access_token).await).await;
    assert_refresh_refused(&app, &second.refresh_token, "invalid_refresh_token").await;
}

async fn an_older_token_is_reuse_even_within_the_grace_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    let second = refreshed(&app, &first.refresh_token).await;
    let third = refreshed(&app, &second.refresh_token).await;

    // The immediate predecessor of the live token still converges...
    let converged = refreshed(&app, &second.refresh_token).await;
    assert_eq!(converged.refresh_token, third.refresh_token);

    // ...but generation n-2 is reuse, grace window or not.
    assert_refresh_refused(&app, &first.refresh_token, "refresh_token_reused").await;
    assert_invalid_token(app.me(&third.access_token).await).await;
    assert_invalid_token(app.me(&converged.access_token).await).await;
    assert_refresh_refused(&app, &third.refresh_token, "invalid_refresh_token").await;
}

async fn rotation_and_reuse_hold_across_instances(backend: Backend) {
    let one = TestApp::spawn_with(backend, &[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await;
    let two = TestApp::spawn_on(
        one.database.clone(),
        &[("LATCHKEY_REFRESH_REUSE_GRACE", "0")],
    )
    .await;
    let first = one.signup_user().await;
    let second = refreshed(&two, &first.refresh_token).await;

    // The token rotated on the second instance is reuse on the first.
    assert_refresh_refused(&one, &first.refresh_token, "refresh_token_reused").await;
    assert_invalid_token(two.me(&second.access_token).await).await;
    assert_refresh_refused(&two, &second.refresh_token, "invalid_refresh_token").await;
}

async fn unknown_and_malformed_refresh_tokens_are_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;

    let unknown = URL_SAFE_NO_PAD.encode(uuid::Uuid::now_v7().as_bytes().repeat(2));
    let mut altered = tokens.refresh_token.clone().into_bytes();
    altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let cases = [
        unknown.as_str(),
        altered.as_str(),
        "",
        "   ",
        "not a refresh token",
        "abc",
        &"A".repeat(44),
        &"+".repeat(43),
        &format!("{}=", tokens.refresh_token),
        &tokens.access_token,
    ];
    for token in cases {
        let response = app.refresh(token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    }
    // None of these attempts hurt the real session.
    refreshed(&app, &tokens.refresh_token).await;
}

async fn a_missing_or_mistyped_field_is_a_malformed_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    for body in [
        json!({}),
        json!({"token": tokens.refresh_token}),
        json!({"refresh_token": null}),
        json!({"refresh_token": 42}),
        json!({"refresh_token": [tokens.refresh_token]}),
        json!([tokens.refresh_token]),
    ] {
        let response = app.post("/refresh", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
        assert!(
            !problem.to_string().contains(&tokens.refresh_token),
            "the problem echoes the token: {problem}"
        );
    }
    // Unknown fields are ignored.
    let response = app
        .post(
            "/refresh",
            &json!({"refresh_token": tokens.refresh_token, "extra": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_session_ends_at_its_absolute_lifetime(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SESSION_TTL", "2")]).await;
    let first = app.signup_user().await;
    assert_eq!(app.me(&first.access_token).await.status(), StatusCode::OK);

    sleep_secs(1.5).await;
    // A refresh within the lifetime works, but does not extend it.
    let second = refreshed(&app, &first.refresh_token).await;
    assert!(second.body["expires_in"].as_i64().unwrap() <= 1);
    assert_eq!(app.me(&second.access_token).await.status(), StatusCode::OK);

    sleep_secs(1.5).await;
    assert_invalid_token(app.me(&second.access_token).await).await;
    assert_invalid_token(app.me(&first.access_token).await).await;
    assert_refresh_refused(&app, &second.refresh_token, "invalid_refresh_token").await;
}

async fn a_session_ends_after_its_idle_period(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SESSION_IDLE_TTL", "2")]).await;
    let kept = app.signup_user().await;
    let idle = app.login_user(&kept.email).await;

    sleep_secs(1.5).await;
    let kept = refreshed(&app, &kept.refresh_token).await;
    sleep_secs(1.5).await;

    // Three seconds after login, but refreshed 1.5 s ago: still alive.
    let kept = refreshed(&app, &kept.refresh_token).await;
    assert_eq!(app.me(&kept.access_token).await.status(), StatusCode::OK);
    // Left idle for three seconds: ended, both ways.
    assert_refresh_refused(&app, &idle.refresh_token, "invalid_refresh_token").await;
    assert_invalid_token(app.me(&idle.access_token).await).await;
    assert_eq!(sessions(&app, &kept.access_token).await.len(), 1);
}

async fn access_tokens_never_outlive_the_session(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LATCHKEY_SESSION_TTL", "60"),
            ("LATCHKEY_ACCESS_TTL", "900"),
        ],
    )
    .await;
    let first = app.signup_user().await;
    let second = refreshed(&app, &first.refresh_token).await;

    let listed = sessions(&app, &second.access_token).await;
    let session_end =
        chrono::DateTime::parse_from_rfc3339(listed[0]["expires_at"].as_str().unwrap())
            .unwrap()
            .timestamp();
    for tokens in [&first, &second] {
        let expires_in = tokens.body["expires_in"].as_i64().unwrap();
        assert!(
            (55..=60).contains(&expires_in),
            "expires_in {expires_in} with a 60 s session"
        );
        let claims = claims_of(&tokens.access_token);
        let exp = claims["exp"].as_i64().unwrap();
        assert!(
            exp <= session_end,
            "exp {exp} after the session's end {session_end}"
        );
        assert_eq!(exp - claims["iat"].as_i64().unwrap(), expires_in);
    }
}

async fn logout_ends_the_refresh_token_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.signup_user().await;
    let second = refreshed(&app, &first.refresh_token).await;

    let response = app
        .send(Method::POST, "/logout", Some(&second.access_token), None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert_refresh_refused(&app, &second.refresh_token, "invalid_refresh_token").await;
    // Nor does the retired token, within its grace window, bring the session back.
    let retired = app.refresh(&first.refresh_token).await;
    assert_eq!(retired.status(), StatusCode::UNAUTHORIZED);
    assert_invalid_token(app.me(&second.access_token).await).await;
}

/// The generations of a session's refresh token kept in the database.
fn generations_kept(app: &TestApp, session_id: &str) -> i64 {
    use diesel::prelude::*;
    use latchkey::db::schema::refresh_tokens;
    let session_id = session_id.to_owned();
    app.db
        .run_now(move |conn| {
            refresh_tokens::table
                .filter(refresh_tokens::session_id.eq(session_id))
                .count()
                .get_result(conn)
                .map_err(latchkey::error::Error::from)
        })
        .unwrap()
}

/// What reuse detection is for: a thief uses a stolen token first and keeps rotating; when
/// the victim's client comes back with the token it holds, generations old and its row long
/// pruned, the session is revoked, the thief's newest tokens with it.
async fn a_token_replayed_after_many_rotations_revokes_its_session(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await;
    let victim = app.signup_user().await;
    let mut thief = refreshed(&app, &victim.refresh_token).await;
    for _ in 0..5 {
        thief = refreshed(&app, &thief.refresh_token).await;
    }
    assert_eq!(generations_kept(&app, &session_id(&victim)), 2);

    assert_refresh_refused(&app, &victim.refresh_token, "refresh_token_reused").await;

    assert_invalid_token(app.me(&thief.access_token).await).await;
    assert_refresh_refused(&app, &thief.refresh_token, "invalid_refresh_token").await;
}

/// However often a session refreshes, it keeps two rows: the live token and its
/// predecessor, for the grace window.
async fn a_refresh_flood_keeps_two_generations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut tokens = app.signup_user().await;
    for _ in 0..100 {
        tokens = refreshed(&app, &tokens.refresh_token).await;
    }
    assert_eq!(app.rows("refresh_tokens"), 2);
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

/// A session's id is in every access token; a token made up from it, or of random bits of
/// the right length, is unknown, and the session is not touched.
async fn made_up_tokens_for_a_known_session_change_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await;
    let tokens = app.signup_user().await;
    let sid = uuid::Uuid::parse_str(&session_id(&tokens)).unwrap();
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).unwrap();
    let made_up = [
        URL_SAFE_NO_PAD.encode([sid.as_bytes().as_slice(), &random].concat()),
        URL_SAFE_NO_PAD.encode(sid.as_bytes().repeat(3)),
        URL_SAFE_NO_PAD.encode([random.as_slice(), &random[..16]].concat()),
    ];
    for token in &made_up {
        assert_refresh_refused(&app, token, "invalid_refresh_token").await;
    }
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
    refreshed(&app, &tokens.refresh_token).await;
}

/// A session opened before refresh tokens had families (its token the 256 random bits
/// alone, no family stored) keeps rotating, keeps every generation, and still detects reuse.
async fn tokens_issued_before_families_still_rotate_and_detect_reuse(backend: Backend) {
    use diesel::prelude::*;
    use latchkey::db::schema::{refresh_tokens, sessions};
    use sha2::Digest as _;

    let app = TestApp::spawn_with(backend, &[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await;
    let tokens = app.signup_user().await;
    let sid = session_id(&tokens);
    let mut legacy = [0u8; 32];
    getrandom::fill(&mut legacy).unwrap();
    let digest = sha2::Sha256::digest(legacy).to_vec();
    let session = sid.clone();
    app.db
        .run_now(move |conn| {
            diesel::update(sessions::table.find(&session))
                .set(sessions::refresh_family_hash.eq(None::<Vec<u8>>))
                .execute(conn)?;
            diesel::update(refresh_tokens::table.filter(refresh_tokens::session_id.eq(&session)))
                .set(refresh_tokens::token_hash.eq(digest))
                .execute(conn)?;
            Ok(())
        })
        .unwrap();
    let legacy = URL_SAFE_NO_PAD.encode(legacy);

    let second = refreshed(&app, &legacy).await;
    assert_eq!(
        second.refresh_token.len(),
        43,
        "still a token without a family"
    );
    let third = refreshed(&app, &second.refresh_token).await;
    assert_eq!(generations_kept(&app, &sid), 3);

    assert_refresh_refused(&app, &legacy, "refresh_token_reused").await;
    assert_invalid_token(app.me(&third.access_token).await).await;
}
