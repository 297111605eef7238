//! Tables do not grow without bound: ended sessions (with their refresh tokens), login
//! attempts too old to count, expired codes and old mail are pruned, by a background task on
//! every instance.

use std::time::Duration;

use latchkey::maintenance;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Backend, TestApp, default_settings, unique_email};

backend_tests!(
    pruning_deletes_ended_sessions_and_keeps_live_ones,
    the_background_task_forgets_stale_login_attempts,
    counted_signups_outlive_the_login_window_for_their_hour,
    expired_codes_and_old_mail_are_pruned,
);

async fn expired_codes_and_old_mail_are_pruned(backend: Backend) {
    // Without SMTP, the mail is "sent" into the log at once.
    let app = TestApp::spawn(backend).await;
    app.signup_user().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.rows("outbox WHERE outcome = 'sent'") < 1 {
        assert!(std::time::Instant::now() < deadline, "the mail never went");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.rows("one_time_codes"), 1);
    let policy = default_settings().prune_policy();
    let prune = |at| {
        app.db
            .run_now(move |conn| maintenance::prune(conn, &policy, at))
            .unwrap()
    };
    let now = latchkey::db::now();
    let pruned = prune(now);
    assert_eq!((pruned.one_time_codes, pruned.outbox), (0, 0));
    // The code lives 30 minutes; the message is kept a week.
    let pruned = prune(now + chrono::TimeDelta::hours(1));
    assert_eq!((pruned.one_time_codes, pruned.outbox), (1, 0));
    let pruned = prune(now + chrono::TimeDelta::days(8));
    assert_eq!(pruned.outbox, 1);
    assert_eq!(app.rows("outbox"), 0);
}

async fn pruning_deletes_ended_sessions_and_keeps_live_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let live = app.signup_user().await;
    let ended = app.login_user(&live.email).await;
    app.refresh(&ended.refresh_token).await;
    assert_eq!(
        app.logout(&ended.access_token, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.rows("sessions"), 2);
    assert_eq!(app.rows("refresh_tokens"), 3);

    // Sessions live 30 days, 7 idle; throttled attempts count for 15 minutes.
    let policy = default_settings().prune_policy();
    // Just ended: kept for a while for inspection.
    let now = latchkey::db::now();
    let pruned = app
        .db
        .run_now(move |conn| maintenance::prune(conn, &policy, now))
        .unwrap();
    assert_eq!(pruned.sessions, 0);

    // Two days on: the ended session and its tokens are gone, the live one is kept.
    let later = now + chrono::TimeDelta::days(2);
    let pruned = app
        .db
        .run_now(move |conn| maintenance::prune(conn, &policy, later))
        .unwrap();
    assert_eq!(pruned.sessions, 1);
    assert_eq!(app.rows("sessions"), 1);
    assert_eq!(app.rows("refresh_tokens"), 1);
    assert_eq!(app.me(&live.access_token).await.status(), StatusCode::OK);

    // Past the absolute lifetime, every session has ended.
    let much_later = now + chrono::TimeDelta::days(40);
    let pruned = app
        .db
        .run_now(move |conn| maintenance::prune(conn, &policy, much_later))
        .unwrap();
    assert_eq!(pruned.sessions, 1);
    assert_eq!(app.rows("refresh_tokens"), 0);
}

async fn the_background_task_forgets_stale_login_attempts(backend: Backend) {
    let env = [
        ("LATCHKEY_PRUNE_INTERVAL", "1"),
        ("LATCHKEY_LOGIN_WINDOW", "1"),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    let body = json!({"email": unique_email(), "password": "not the password"});
    assert_eq!(app.login(&body).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.rows("login_failures"),
        2,
        "one for the account, one for the address"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.rows("login_failures") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "stale attempts were never pruned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A signup counts against its address for an hour, whatever the login window: pruning
/// keeps it that long, and no longer.
async fn counted_signups_outlive_the_login_window_for_their_hour(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup_user().await;
    let body = json!({"email": unique_email(), "password": "not the password"});
    assert_eq!(app.login(&body).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.rows("login_failures"),
        3,
        "a signup, and a failure counted twice"
    );

    let policy = default_settings().prune_policy();
    let now = latchkey::db::now();
    let prune_at = |at| {
        app.db
            .run_now(move |conn| maintenance::prune(conn, &policy, at))
            .unwrap()
    };
    // Past the 15-minute login window: the failure's rows go, the signup's stays.
    assert_eq!(
        prune_at(now + chrono::TimeDelta::minutes(20)).login_failures,
        2
    );
    assert_eq!(app.rows("login_failures"), 1);
    assert_eq!(
        prune_at(now + chrono::TimeDelta::minutes(59)).login_failures,
        0
    );
    assert_eq!(
        prune_at(now + chrono::TimeDelta::minutes(61)).login_failures,
        1
    );
    assert_eq!(app.rows("login_failures"), 0);
}
