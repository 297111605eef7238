//! Storage rules that HTTP alone cannot show: SQLite connection settings, cascades,
//! migrations on restart, and concurrent writers on SQLite.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use latchkey::auth::session_checks::SessionChecks;
use latchkey::db::schema::{refresh_tokens, sessions, users};
use latchkey::db::{self, DatabaseUrl, Db, DbConn, PoolOptions};
use latchkey::error::Error;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Backend, PASSWORD, TestApp, TestDatabase, unique_email};

backend_tests!(
    deleting_an_account_deletes_its_sessions_and_refresh_tokens,
    restarting_on_an_existing_database_keeps_everything,
    refresh_tokens_are_stored_only_as_digests,
    concurrent_writers_never_fail,
    a_write_whose_request_gave_up_is_rolled_back,
    session_checks_of_concurrent_requests_are_read_together,
);

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName)]
struct IntRow {
    #[diesel(sql_type = Integer)]
    value: i32,
}

#[actix_web::test]
async fn every_sqlite_connection_uses_wal_a_busy_timeout_and_foreign_keys() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let pragma = |name: &'static str| {
        app.db
            .run_now(move |conn: &mut DbConn| {
                let row: TextRow =
                    diesel::sql_query(format!("SELECT CAST(({}) AS TEXT) AS value", name))
                        .get_result(conn)?;
                Ok(row.value)
            })
            .unwrap()
    };
    // Pragmas are per connection: ask through the pool, as the application does.
    assert_eq!(
        pragma("SELECT journal_mode FROM pragma_journal_mode"),
        "wal"
    );
    assert_eq!(pragma("SELECT foreign_keys FROM pragma_foreign_keys"), "1");
    assert_eq!(pragma("SELECT timeout FROM pragma_busy_timeout"), "5000");
}

async fn deleting_an_account_deletes_its_sessions_and_refresh_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    app.login_user(&tokens.email).await;
    let refreshed = app.refresh(&tokens.refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let counts = |app: &TestApp, user_id: String| {
        app.db
            .run_now(move |conn| {
                let sessions: i64 = sessions::table
                    .filter(sessions::user_id.eq(&user_id))
                    .count()
                    .get_result(conn)?;
                let tokens: i64 = refresh_tokens::table
                    .inner_join(sessions::table)
                    .filter(sessions::user_id.eq(&user_id))
                    .count()
                    .get_result(conn)?;
                Ok((sessions, tokens))
            })
            .unwrap()
    };
    assert_eq!(counts(&app, tokens.user_id.clone()), (2, 3));

    let response = app
        .send(
            Method::DELETE,
            "/me",
            Some(&tokens.access_token),
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert_eq!(counts(&app, tokens.user_id.clone()), (0, 0));
    let orphans = app
        .db
        .run_now(|conn| {
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = BigInt)]
                n: i64,
            }
            let row: Count = diesel::sql_query(
                "SELECT COUNT(*) AS n FROM refresh_tokens r \
                 WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session_id)",
            )
            .get_result(conn)?;
            Ok(row.n)
        })
        .unwrap();
    assert_eq!(orphans, 0);
}

async fn restarting_on_an_existing_database_keeps_everything(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let tokens = first.signup_user().await;

    // Start-up applies migrations again (a no-op) and loads the same signing key.
    let second = TestApp::spawn_on(first.database.clone(), &[]).await;

    assert_eq!(
        second.me(&tokens.access_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        second.refresh(&tokens.refresh_token).await.status(),
        StatusCode::OK
    );
    second.login_user(&tokens.email).await;
    let migrations = second
        .db
        .run_now(|conn| {
            let row: IntRow = diesel::sql_query(
                "SELECT CAST(COUNT(*) AS INTEGER) AS value FROM __diesel_schema_migrations",
            )
            .get_result(conn)?;
            Ok(row.value)
        })
        .unwrap();
    let folder = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + folder)
        .unwrap()
        .count();
    assert_eq!(migrations as usize, shipped, "each migration applied once");
}

async fn refresh_tokens_are_stored_only_as_digests(backend: Backend) {
    use base64::Engine as _;
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&tokens.refresh_token)
        .unwrap();
    let refreshed: serde_json::Value = app
        .refresh(&tokens.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    let successor = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(refreshed["refresh_token"].as_str().unwrap())
        .unwrap();

    let stored: Vec<(Vec<u8>, Option<Vec<u8>>)> = app
        .db
        .run_now(|conn| {
            Ok(refresh_tokens::table
                .select((refresh_tokens::token_hash, refresh_tokens::successor))
                .load(conn)?)
        })
        .unwrap();
    assert_eq!(stored.len(), 2);
    for (hash, sealed) in stored {
        for token in [&raw, &successor] {
            assert_ne!(&hash, token);
            assert_ne!(
                sealed.as_ref(),
                Some(token),
                "a sealed successor is not the token"
            );
        }
    }
}

/// Many writers at once: on SQLite they queue for the write lock (BEGIN IMMEDIATE and a busy
/// timeout) instead of failing with "database is locked".
async fn concurrent_writers_never_fail(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LATCHKEY_ARGON2_MEMORY_KIB", "8192"),
            ("LATCHKEY_ARGON2_ITERATIONS", "1"),
        ],
    )
    .await;
    let signups = (0..16).map(|_| {
        let app = &app;
        async move {
            app.signup(&json!({"email": unique_email(), "password": PASSWORD}))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(signups).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );

    let tokens = app.signup_user().await;
    let mut chains = Vec::new();
    for _ in 0..8 {
        chains.push(app.login_user(&tokens.email).await.refresh_token);
    }
    let refreshes = chains.iter().map(|token| app.refresh(token));
    for response in futures_util::future::join_all(refreshes).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// Work that `Db::run` stopped waiting for (it answered `503` at its time limit: a frozen
/// connection, a long lock) and that then goes on is rolled back, not committed behind the
/// back of a client told it failed.
async fn a_write_whose_request_gave_up_is_rolled_back(backend: Backend) {
    let database = TestDatabase::create(backend);
    let url = DatabaseUrl::parse(&database.url).unwrap();
    let options = PoolOptions {
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_millis(100),
    };
    let db = Db::connect(&url, &options).unwrap();
    let (go_on, wait_for_it) = std::sync::mpsc::channel::<()>();
    let (finished, work_done) = std::sync::mpsc::channel();
    let email = unique_email();
    let outcome = db
        .run({
            let email = email.clone();
            move |conn| {
                let committed = db::write_transaction(conn, |conn| {
                    insert_user(conn, &email)?;
                    // Still working when the caller's time is up.
                    wait_for_it.recv().map_err(Error::internal)
                });
                finished.send(committed.is_ok()).unwrap();
                committed
            }
        })
        .await;
    assert!(matches!(outcome, Err(Error::Unavailable(_))), "{outcome:?}");
    go_on.send(()).unwrap();
    let committed = work_done
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert!(!committed, "the abandoned transaction reported a commit");
    let stored = users_with_email(&db, email);
    assert_eq!(stored, 0, "the abandoned write was committed");

    // The work of a caller still waiting commits as usual.
    let email = unique_email();
    db.run({
        let email = email.clone();
        move |conn| db::write_transaction(conn, |conn| Ok(insert_user(conn, &email)?))
    })
    .await
    .unwrap();
    let stored = users_with_email(&db, email);
    assert_eq!(stored, 1);
}

fn users_with_email(db: &Db, email: String) -> i64 {
    db.run_now(move |conn| {
        Ok(users::table
            .filter(users::email.eq(email))
            .count()
            .get_result(conn)?)
    })
    .unwrap()
}

fn insert_user(conn: &mut DbConn, email: &str) -> QueryResult<()> {
    let now = db::now();
    let id = latchkey::domain::UserId::generate();
    db::users::insert(
        conn,
        &db::users::NewUser {
            id: &id,
            email,
            username: None,
            password_hash: "not a real hash",
            created_at: now,
            updated_at: now,
        },
    )
}

/// Checks asked for at once are read by one query (on SQLite too: the ids travel as one
/// JSON array), and each gets its own session: unknown ids, one asked twice, and ids that
/// would break out of a hand-built JSON array or SQL string find nothing.
async fn session_checks_of_concurrent_requests_are_read_together(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut sessions_of = Vec::new();
    for _ in 0..5 {
        let user = app.signup_user().await;
        let user_id = user.user_id.clone();
        let session_id = app
            .db
            .run_now(move |conn| {
                Ok(sessions::table
                    .filter(sessions::user_id.eq(&user_id))
                    .select(sessions::id)
                    .get_result::<String>(conn)?)
            })
            .unwrap();
        sessions_of.push((session_id, Some(user.user_id)));
    }
    sessions_of.push((sessions_of[2].0.clone(), sessions_of[2].1.clone()));
    for unknown in ["no-such-session", "", "x\"]", "x', 'y", "[\"a\"]", "%"] {
        sessions_of.push((unknown.to_owned(), None));
    }
    let checks = SessionChecks::new(app.db.clone()).unwrap();

    let answers = futures_util::future::join_all(
        sessions_of
            .iter()
            .map(|(session_id, _)| checks.find_with_user(session_id.clone().into())),
    )
    .await;

    for ((session_id, user_id), answer) in sessions_of.iter().zip(answers) {
        let found = answer.unwrap();
        assert_eq!(
            found.as_ref().map(|(session, _)| session.id.as_str()),
            user_id.as_ref().map(|_| session_id.as_str()),
            "the check of {session_id:?}"
        );
        assert_eq!(found.map(|(_, user)| String::from(user.id)), *user_id);
    }
    let (batches, _) = checks.metrics();
    assert_eq!(
        batches.get_sample_count(),
        1,
        "one query for all the checks"
    );
    assert_eq!(batches.get_sample_sum() as usize, sessions_of.len());
}
