//! The `latchkey` binary (API.md "Running it"): configuration errors, `migrate`,
//! `user create`, serving by default, `healthcheck`, and `--help`.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::{Connection as _, PgConnection, RunQueryDsl as _, SqliteConnection};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::cli::{assert_one_line_failure, latchkey, run, stderr_of};
use crate::support::{
    Backend, PASSWORD, TestApp, TestDatabase, assert_problem, free_ports, unique_email,
};

backend_tests!(
    user_create_makes_an_account_that_can_log_in,
    user_create_refuses_a_weak_password,
    user_create_refuses_an_invalid_email,
    user_create_refuses_a_duplicate_email,
);

#[actix_web::test]
async fn bad_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "tiny-s3cret";
    let cases = [
        ("LATCHKEY_ACCESS_TTL", "soon"),
        ("LATCHKEY_BIND", "nowhere"),
        ("LATCHKEY_METRICS_BIND", "nowhere"),
        ("LATCHKEY_JWT_SECRET", secret),
        ("LATCHKEY_LOG_FORMAT", "xml"),
        ("DATABASE_URL", "mysql://x"),
    ];
    for (variable, value) in cases {
        for args in [&[][..], &["serve"][..], &["migrate"][..]] {
            let output = run(latchkey(dir.path(), &[(variable, value)]), args, "").await;
            let stderr = assert_one_line_failure(&output);
            assert!(
                stderr.contains(variable),
                "{variable}={value} {args:?}: {stderr}"
            );
        }
    }
    let output = run(
        latchkey(dir.path(), &[("LATCHKEY_JWT_SECRET", secret)]),
        &[],
        "",
    )
    .await;
    assert!(!stderr_of(&output).contains(secret));
    assert!(!String::from_utf8_lossy(&output.stdout).contains(secret));
    // Nothing was started: no database was created in the working directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A port that is taken stops start-up with one line naming the variable that chose it,
/// the metrics listener's as the API's; nothing is left serving half the service.
#[actix_web::test]
async fn a_taken_port_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("x.db").display().to_string();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_address = taken.local_addr().unwrap().to_string();
    let [free] = free_ports();
    let free_address = format!("127.0.0.1:{free}");
    for (variable, other) in [
        ("LATCHKEY_METRICS_BIND", "LATCHKEY_BIND"),
        ("LATCHKEY_BIND", "LATCHKEY_METRICS_BIND"),
    ] {
        let env = [
            ("DATABASE_URL", database.as_str()),
            ("LATCHKEY_LOG", "warn"),
            // Keys encrypted and mail sent: no start-up warning beside the one line of the
            // failure.
            (
                "LATCHKEY_KEY_ENCRYPTION_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            ("LATCHKEY_SMTP_URL", "smtp://127.0.0.1:25"),
            (variable, &taken_address),
            (other, &free_address),
        ];
        // Bounded: were the taken port ignored, the server would run until killed.
        let output = actix_web::rt::time::timeout(
            Duration::from_secs(60),
            run(latchkey(dir.path(), &env), &["serve"], ""),
        )
        .await
        .unwrap_or_else(|_| panic!("latchkey served with {variable}={taken_address} taken"));
        let stderr = assert_one_line_failure(&output);
        assert!(
            stderr.contains(&format!("{variable}: cannot listen on {taken_address}")),
            "{stderr}"
        );
    }
    drop(taken);
}

#[actix_web::test]
async fn migrate_creates_a_fresh_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let url = path.display().to_string();
    let output = run(
        latchkey(dir.path(), &[("DATABASE_URL", &url)]),
        &["migrate"],
        "",
    )
    .await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(path.is_file(), "the database file exists");
    let mut conn = SqliteConnection::establish(&url).unwrap();
    assert!(migrations_applied(&mut conn) > 0);
    assert_eq!(table_rows(&mut conn, "users"), 0);

    // Applying them again is a no-op that succeeds.
    let output = run(
        latchkey(dir.path(), &[("DATABASE_URL", &format!("sqlite://{url}"))]),
        &["migrate"],
        "",
    )
    .await;
    assert!(output.status.success(), "{}", stderr_of(&output));
}

#[actix_web::test]
async fn migrate_prepares_a_fresh_postgres_database() {
    if !crate::support::postgres_available() {
        return;
    }
    let database = TestDatabase::create(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let mut conn = PgConnection::establish(&database.url).unwrap();
    let exists = "SELECT COUNT(*) AS count FROM information_schema.tables \
                  WHERE table_name = '__diesel_schema_migrations'";
    assert_eq!(count(&mut conn, exists), 0, "the database starts empty");

    let output = run(
        latchkey(dir.path(), &[("DATABASE_URL", &database.url)]),
        &["migrate"],
        "",
    )
    .await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(migrations_applied(&mut conn) > 0);
    assert_eq!(table_rows(&mut conn, "users"), 0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no SQLite file"
    );
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

fn count<C: diesel::Connection>(conn: &mut C, sql: &str) -> i64
where
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Count>,
{
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .unwrap()
        .count
}

fn migrations_applied<C: diesel::Connection>(conn: &mut C) -> i64
where
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Count>,
{
    count(
        conn,
        "SELECT COUNT(*) AS count FROM __diesel_schema_migrations",
    )
}

fn table_rows<C: diesel::Connection>(conn: &mut C, table: &str) -> i64
where
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Count>,
{
    count(conn, &format!("SELECT COUNT(*) AS count FROM {table}"))
}

/// `latchkey user create` against the test application's database.
async fn user_create(app: &TestApp, args: &[&str], password: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut full = vec!["user", "create"];
    full.extend_from_slice(args);
    run(
        latchkey(dir.path(), &[("DATABASE_URL", &app.database.url)]),
        &full,
        password,
    )
    .await
}

async fn user_create_makes_an_account_that_can_log_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let output = user_create(
        &app,
        &["--email", &email, "--username", "grace"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(stdout.contains(&email), "{stdout}");
    assert!(!stdout.contains(PASSWORD) && !stderr_of(&output).contains(PASSWORD));

    // The final line break is not part of the password; the rest is.
    let by_email = app
        .login(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(by_email.status(), StatusCode::OK);
    let body: serde_json::Value = by_email.json().await.unwrap();
    assert_eq!(body["user"]["email"], email);
    assert_eq!(body["user"]["username"], "grace");
    let by_username = app
        .login(&json!({"username": "grace", "password": PASSWORD}))
        .await;
    assert_eq!(by_username.status(), StatusCode::OK);
    let wrong = app
        .login(&json!({"email": email, "password": format!("{PASSWORD}\n")}))
        .await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // Without a username, and without a final line break.
    let other = unique_email();
    let output = user_create(&app, &["--email", &other], "another good passphrase").await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    let response = app
        .login(&json!({"email": other, "password": "another good passphrase"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], serde_json::Value::Null);
}

async fn user_create_refuses_a_weak_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let same_as_email = format!("{email}\n");
    // (standard input, a distinctive part that must not be repeated on standard error)
    let cases = [
        ("Xq7!zz\n", Some("Xq7!zz")),
        ("qwertyuiop\n", Some("qwertyuiop")),
        ("12345678", Some("12345678")),
        ("password\n", None),
        (same_as_email.as_str(), None),
        ("\n", None),
        ("", None),
    ];
    for (weak, secret) in cases {
        let output = user_create(&app, &["--email", &email], weak).await;
        let stderr = assert_one_line_failure(&output);
        assert!(stderr.contains("password"), "{weak:?}: {stderr}");
        if let Some(secret) = secret {
            assert!(!stderr.contains(secret), "{stderr}");
        }
    }
    // No account was made: the same email is still free for a good password.
    let output = user_create(&app, &["--email", &email], PASSWORD).await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    app.login_user(&email).await;
}

async fn user_create_refuses_an_invalid_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for email in [
        "not-an-email",
        "",
        "a@",
        &format!("{}@example.com", "a".repeat(260)),
    ] {
        let output = user_create(&app, &["--email", email], &format!("{PASSWORD}\n")).await;
        let stderr = assert_one_line_failure(&output);
        assert!(stderr.contains("email"), "{email:?}: {stderr}");
    }
    let output = user_create(
        &app,
        &[
            "--email",
            &unique_email(),
            "--username",
            "no spaces allowed",
        ],
        PASSWORD,
    )
    .await;
    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("username"), "{stderr}");
}

async fn user_create_refuses_a_duplicate_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let output = user_create(
        &app,
        &["--email", &tokens.email.to_uppercase()],
        "a different passphrase",
    )
    .await;
    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(!stderr.contains("a different passphrase"));

    // The existing account is untouched: its password still works, the new one does not.
    app.login_user(&tokens.email).await;
    let response = app
        .login(&json!({"email": tokens.email, "password": "a different passphrase"}))
        .await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A duplicate username, likewise.
    let output = user_create(
        &app,
        &["--email", &unique_email(), "--username", "ada"],
        PASSWORD,
    )
    .await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    let output = user_create(
        &app,
        &["--email", &unique_email(), "--username", "ADA"],
        PASSWORD,
    )
    .await;
    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("username"), "{stderr}");
}

/// Kills the child when the test ends, whichever way it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn with_no_subcommand_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let [port] = free_ports();
    let bind = format!("127.0.0.1:{port}");
    let database = dir.path().join("serve.db").display().to_string();
    let child = latchkey(
        dir.path(),
        &[
            ("LATCHKEY_BIND", &bind),
            ("LATCHKEY_METRICS_BIND", "127.0.0.1:0"),
            ("DATABASE_URL", &database),
            ("LATCHKEY_LOG", "warn"),
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("starting latchkey");
    let mut child = KillOnDrop(child);

    let client = reqwest::Client::new();
    let url = format!("http://{bind}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("latchkey exited before serving: {status}");
        }
        let answer = client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(response) = answer {
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.json::<serde_json::Value>().await.unwrap(),
                json!({"status": "ok"})
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "latchkey did not answer on {bind} within 20 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // It migrated the database it was given, and serves the API on it.
    assert!(Path::new(&database).is_file());
    let response = client
        .post(format!("http://{bind}/signup"))
        .json(&json!({"email": unique_email(), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(child.0.try_wait().unwrap().is_none(), "still serving");
}

#[actix_web::test]
async fn help_lists_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(latchkey(dir.path(), &[]), &["--help"], "").await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    for subcommand in [
        "serve",
        "migrate",
        "healthcheck",
        "user",
        "sessions",
        "keys",
        "mail",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.trim_start().starts_with(subcommand)),
            "{subcommand} missing from:\n{stdout}"
        );
    }
    for (command, subcommands) in [
        ("user", &["create", "list", "disable", "enable"][..]),
        ("sessions", &["revoke"][..]),
        ("keys", &["list", "rotate"][..]),
        ("mail", &["test"][..]),
    ] {
        let output = run(latchkey(dir.path(), &[]), &[command, "--help"], "").await;
        assert!(output.status.success(), "{}", stderr_of(&output));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        for subcommand in subcommands {
            assert!(
                stdout
                    .lines()
                    .any(|line| line.trim_start().starts_with(subcommand)),
                "{command} {subcommand} missing from:\n{stdout}"
            );
        }
    }

    // An unknown subcommand is a usage error, not a server start.
    let output = run(latchkey(dir.path(), &[]), &["frobnicate"], "").await;
    assert!(!output.status.success());
    assert!(!stderr_of(&output).contains("panicked"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[actix_web::test]
async fn healthcheck_passes_against_a_running_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let port = app.address.rsplit(':').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // LATCHKEY_BIND as the server has it, a wildcard bind (checked over loopback), or --url.
    // Nothing else is read: settings `serve` would refuse do not matter, and no database
    // is opened.
    let unusable = [
        ("DATABASE_URL", "mysql://x"),
        ("LATCHKEY_JWT_SECRET", "tiny-s3cret"),
    ];
    for bind in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let mut env = vec![("LATCHKEY_BIND", bind.as_str())];
        env.extend(unusable);
        let output = run(latchkey(dir.path(), &env), &["healthcheck"], "").await;
        assert!(output.status.success(), "{bind}: {}", stderr_of(&output));
    }
    let url = app.url("/healthz");
    let output = run(
        latchkey(dir.path(), &unusable),
        &["healthcheck", "--url", &url],
        "",
    )
    .await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // Any answer but 200 is a failure.
    let url = app.url("/no-such-page");
    let output = run(
        latchkey(dir.path(), &[]),
        &["healthcheck", "--url", &url],
        "",
    )
    .await;
    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("404"), "{stderr}");
}

#[actix_web::test]
async fn healthcheck_fails_within_seconds_when_nothing_answers() {
    let dir = tempfile::tempdir().unwrap();
    // A closed port: refused at once.
    let [port] = free_ports();
    let bind = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let output = run(
        latchkey(dir.path(), &[("LATCHKEY_BIND", &bind)]),
        &["healthcheck"],
        "",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let stderr = assert_one_line_failure(&output);
    // 1, not 2: container runtimes reserve exit code 2 of a health check.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&bind), "{stderr}");

    // A port that accepts connections but never answers: the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", silent.local_addr().unwrap());
    let started = Instant::now();
    let output = run(
        latchkey(dir.path(), &[]),
        &["healthcheck", "--url", &url],
        "",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = assert_one_line_failure(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no answer within"), "{stderr}");
    drop(silent);
}
