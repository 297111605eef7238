//! Tables do not grow without bound: ended sessions (with their refresh tokens) and login
//! attempts too old to count are pruned, by a background task on every instance.

use std::time::Duration;

use diesel::prelude::*;
use latchkey::auth::sessions::SessionPolicy;
use latchkey::maintenance::{self, PrunePolicy};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Backend, TestApp, unique_email};

backend_tests!(
    pruning_deletes_ended_sessions_and_keeps_live_ones,
    the_background_task_forgets_stale_login_attempts,
);

/// The number of rows in a table.
fn count(app: &TestApp, table: &'static str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    app.db
        .run_now(move |conn| {
            let row: Count =
                diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")).get_result(conn)?;
            Ok(row.n)
        })
        .unwrap()
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
    assert_eq!(count(&app, "sessions"), 2);
    assert_eq!(count(&app, "refresh_tokens"), 3);

    let policy = PrunePolicy {
        sessions: SessionPolicy {
            lifetime: Duration::from_secs(30 * 86_400),
            idle_timeout: Duration::from_secs(7 * 86_400),
            reuse_grace: Duration::from_secs(10),
        },
        login_window: Duration::from_secs(900),
        event_retention: Duration::from_secs(90 * 86_400),
    };
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
    assert_eq!(count(&app, "sessions"), 1);
    assert_eq!(count(&app, "refresh_tokens"), 1);
    assert_eq!(app.me(&live.access_token).await.status(), StatusCode::OK);

    // Past the absolute lifetime, every session has ended.
    let much_later = now + chrono::TimeDelta::days(40);
    let pruned = app
        .db
        .run_now(move |conn| maintenance::prune(conn, &policy, much_later))
        .unwrap();
    assert_eq!(pruned.sessions, 1);
    assert_eq!(count(&app, "refresh_tokens"), 0);
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
        count(&app, "login_failures"),
        2,
        "one for the account, one for the address"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(&app, "login_failures") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "stale attempts were never pruned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
