//! Real `latchkey serve` processes: several instances on one PostgreSQL database agree on
//! every rule, and a whole flow leaves no secret in the logs.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::recovery::mail_about;
use crate::support::mail_sink::MailSink;
use crate::support::{
    Backend, PASSWORD, TestDatabase, Tokens, assert_problem, free_ports, unique_email,
};

/// A `latchkey serve` child process, killed when dropped. Its standard error (the logs) goes
/// to a file, read by [`ServerProcess::logs`].
struct ServerProcess {
    child: Child,
    url: String,
    metrics_url: String,
    log_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl ServerProcess {
    async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let [port, metrics_port] = free_ports();
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
            // Each instance its own: two on one host cannot share the default 9090.
            .env("LATCHKEY_METRICS_BIND", format!("127.0.0.1:{metrics_port}"))
            .env("LATCHKEY_DB_POOL_SIZE", "4")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting latchkey");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            metrics_url: format!("http://127.0.0.1:{metrics_port}/metrics"),
            log_path,
            _dir: dir,
            client: reqwest::Client::new(),
        };
        // Generous: a loaded CI machine may take a while to start a process.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = server.client.get(server.at("/healthz")).send().await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "latchkey did not start:\n{}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.at(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.send(Method::POST, path, None, Some(body)).await
    }

    async fn tokens(&self, path: &str, body: Value) -> Tokens {
        let response = self.post(path, body).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        Tokens::from(response.json::<Value>().await.unwrap())
    }

    async fn me(&self, token: &str) -> StatusCode {
        self.send(Method::GET, "/me", Some(token), None)
            .await
            .status()
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        std::fs::File::open(&self.log_path)
            .and_then(|mut file| file.read_to_string(&mut text))
            .unwrap();
        text
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two instances on one fresh PostgreSQL database, or `None` when PostgreSQL is skipped.
async fn two_instances(
    env: &[(&str, &str)],
) -> Option<(TestDatabase, ServerProcess, ServerProcess)> {
    if !crate::support::postgres_available() {
        return None;
    }
    let database = TestDatabase::create(Backend::Postgres);
    let first = ServerProcess::start(&database.url, env).await;
    let second = ServerProcess::start(&database.url, env).await;
    Some((database, first, second))
}

fn credentials(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

#[actix_web::test]
async fn logout_and_password_change_on_one_instance_hold_on_the_other() {
    let Some((_db, a, b)) = two_instances(&[]).await else {
        return;
    };
    let email = unique_email();
    let first = a.tokens("/signup", credentials(&email, PASSWORD)).await;
    let second = b.tokens("/login", credentials(&email, PASSWORD)).await;
    let third = a.tokens("/login", credentials(&email, PASSWORD)).await;
    assert_eq!(
        b.me(&first.access_token).await,
        StatusCode::OK,
        "one key for both"
    );

    let logout = a
        .send(Method::POST, "/logout", Some(&second.access_token), None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(b.me(&second.access_token).await, StatusCode::UNAUTHORIZED);
    let refresh = b
        .post("/refresh", json!({"refresh_token": second.refresh_token}))
        .await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;

    let change = json!({"current_password": PASSWORD, "new_password": "another fine passphrase"});
    let changed = b
        .send(
            Method::POST,
            "/me/password",
            Some(&first.access_token),
            Some(change),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(a.me(&third.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(a.me(&first.access_token).await, StatusCode::OK);
    let old = a.post("/login", credentials(&email, PASSWORD)).await;
    assert_problem(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    a.tokens("/login", credentials(&email, "another fine passphrase"))
        .await;
}

#[actix_web::test]
async fn rotation_and_reuse_detection_hold_across_instances() {
    let Some((_db, a, b)) = two_instances(&[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await else {
        return;
    };
    let tokens = a
        .tokens("/signup", credentials(&unique_email(), PASSWORD))
        .await;
    let rotated = b
        .tokens("/refresh", json!({"refresh_token": tokens.refresh_token}))
        .await;

    let replay = a
        .post("/refresh", json!({"refresh_token": tokens.refresh_token}))
        .await;

    assert_problem(replay, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    assert_eq!(b.me(&rotated.access_token).await, StatusCode::UNAUTHORIZED);
    let newest = b
        .post("/refresh", json!({"refresh_token": rotated.refresh_token}))
        .await;
    assert_problem(newest, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[actix_web::test]
async fn concurrent_refreshes_through_both_instances_converge() {
    let Some((_db, a, b)) = two_instances(&[]).await else {
        return;
    };
    let tokens = a
        .tokens("/signup", credentials(&unique_email(), PASSWORD))
        .await;
    let body = json!({"refresh_token": tokens.refresh_token});
    let refreshes = (0..8).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        server.post("/refresh", body.clone())
    });

    let mut successors = Vec::new();
    for response in futures_util::future::join_all(refreshes).await {
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        successors.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor for every caller");
}

#[actix_web::test]
async fn a_lockout_and_concurrent_signups_hold_across_instances() {
    let Some((_db, a, b)) = two_instances(&[("LATCHKEY_LOGIN_MAX_FAILURES", "2")]).await else {
        return;
    };
    let email = unique_email();
    let signups = (0..20).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        server.post("/signup", credentials(&email, PASSWORD))
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(signups)
        .await
        .iter()
        .map(Response::status)
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");

    assert_eq!(
        a.post("/login", credentials(&email, "wrong guess one"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.post("/login", credentials(&email, "wrong guess two"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let locked = a.post("/login", credentials(&email, PASSWORD)).await;
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let locked = b.post("/login", credentials(&email, PASSWORD)).await;
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

/// Two instances on one host, each with its metrics on a port of its own: each counts for
/// itself there, and neither answers `/metrics` on its public port.
#[actix_web::test]
async fn each_instance_serves_its_own_metrics_on_its_own_port() {
    let Some((_db, a, b)) = two_instances(&[]).await else {
        return;
    };
    a.tokens("/signup", credentials(&unique_email(), PASSWORD))
        .await;

    for (server, signups) in [(&a, 1), (&b, 0)] {
        let response = server.client.get(&server.metrics_url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        assert!(
            text.lines()
                .any(|line| line == format!("latchkey_signups_total {signups}")),
            "{text}"
        );
        let public = server.send(Method::GET, "/metrics", None, None).await;
        assert_problem(public, StatusCode::NOT_FOUND, "not_found").await;
    }
}

/// The attack: requests that cannot even be parsed (a garbage request line, a bad
/// `Content-Length`, both a length and chunked encoding) cost nothing to send and were each
/// logged as an `ERROR`, so anyone could fill the error log and page the operator. They are
/// logged at debug; the service keeps answering.
#[actix_web::test]
async fn unparsable_requests_are_not_logged_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("garbage.db").display());
    let env = [
        ("LATCHKEY_LOG", "info,actix_http=debug"),
        ("LATCHKEY_LOG_FORMAT", "json"),
    ];
    let server = ServerProcess::start(&url, &env).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let garbage: [&[u8]; 3] = [
        b"GARBAGE\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for request in garbage {
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }
    let response = server
        .client
        .get(server.at("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let parse_errors: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|message| message.contains("request parse error"))
        })
        .collect();
    assert_eq!(parse_errors.len(), garbage.len(), "{logs}");
    for line in &parse_errors {
        assert_eq!(line["level"], "DEBUG", "{line}");
    }
    assert!(
        !lines.iter().any(|line| line["level"] == "ERROR"),
        "no error logged:\n{logs}"
    );
}

/// A whole flow at debug level, in both log formats: no password, token, hash, secret or
/// email appears in any log line; every JSON line parses, each request has its line with
/// method, route, status, latency and request id, and a supplied `X-Request-Id` is echoed
/// and carried by the events logged while handling it.
#[actix_web::test]
async fn no_secret_ever_reaches_the_logs() {
    let secret = "a-shared-secret-that-must-never-be-logged-0123456789";
    for format in ["pretty", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("logs.db").display());
        // Mail goes out over SMTP: only without a server does the log carry messages.
        let sink = MailSink::start();
        let smtp_url = sink.url();
        let env = [
            ("LATCHKEY_LOG", "debug"),
            ("LATCHKEY_LOG_FORMAT", format),
            ("LATCHKEY_JWT_SECRET", secret),
            ("LATCHKEY_SMTP_URL", smtp_url.as_str()),
        ];
        let server = ServerProcess::start(&url, &env).await;
        let email = unique_email();
        let new_password = "the second passphrase";
        let mut seen = vec![
            PASSWORD.to_owned(),
            new_password.to_owned(),
            secret.to_owned(),
        ];

        let first = server
            .tokens("/signup", credentials(&email, PASSWORD))
            .await;
        let supplied_id = format!("client-chosen-id-{format}");
        let wrong = server
            .client
            .post(server.at("/login"))
            .header("X-Request-Id", &supplied_id)
            .json(&credentials(&email, "a wrong passphrase here"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.headers()["x-request-id"], supplied_id.as_str());
        seen.push("a wrong passphrase here".to_owned());
        // An id that is too long, or not visible ASCII, is replaced by a UUID of our own.
        for insane in ["x".repeat(129), "with space".to_owned()] {
            let answered = server
                .client
                .get(server.at("/healthz"))
                .header("X-Request-Id", insane.as_str())
                .send()
                .await
                .unwrap();
            let echoed = answered.headers()["x-request-id"].to_str().unwrap();
            assert!(uuid::Uuid::parse_str(echoed).is_ok(), "{echoed}");
        }
        let second = server.tokens("/login", credentials(&email, PASSWORD)).await;
        let refreshed = server
            .tokens("/refresh", json!({"refresh_token": second.refresh_token}))
            .await;
        let rotated_again = server
            .tokens(
                "/refresh",
                json!({"refresh_token": refreshed.refresh_token}),
            )
            .await;
        let replayed = server
            .post("/refresh", json!({"refresh_token": second.refresh_token}))
            .await;
        assert_problem(replayed, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
        let forged = format!("{}x", refreshed.access_token);
        assert_eq!(server.me(&forged).await, StatusCode::UNAUTHORIZED);
        let change = json!({"current_password": PASSWORD, "new_password": new_password});
        let changed = server
            .send(
                Method::POST,
                "/me/password",
                Some(&first.access_token),
                Some(change),
            )
            .await;
        assert_eq!(changed.status(), StatusCode::NO_CONTENT);
        server
            .send(Method::GET, "/sessions", Some(&first.access_token), None)
            .await;
        let bad_json = server
            .client
            .post(server.at("/login"))
            .header("Content-Type", "application/json")
            .body(format!(
                r#"{{"email": "{email}", "password": 31415926535897}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
        seen.push("31415926535897".to_owned());
        let third = server
            .tokens("/login", credentials(&email, new_password))
            .await;
        let logout = server
            .send(Method::POST, "/logout", Some(&third.access_token), None)
            .await;
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let delete = json!({"password": new_password});
        let deleted = server
            .send(
                Method::DELETE,
                "/me",
                Some(&first.access_token),
                Some(delete),
            )
            .await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        for tokens in [&first, &second, &refreshed, &rotated_again, &third] {
            seen.push(tokens.access_token.clone());
            seen.push(tokens.refresh_token.clone());
            // A signature alone, in case a token were logged cut or reformatted.
            seen.push(tokens.access_token.rsplit('.').next().unwrap().to_owned());
        }

        seen.push(email.clone());

        // A reset by mail, for another account: its code and link travel over SMTP only.
        let other = unique_email();
        server
            .tokens("/signup", credentials(&other, PASSWORD))
            .await;
        let forgot = server
            .post("/password/forgot", json!({"email": other}))
            .await;
        assert_eq!(forgot.status(), StatusCode::ACCEPTED);
        let mail = mail_about(&sink, &other, "reset", 1).await;
        let reset = json!({"email": other, "code": mail.code(), "new_password": new_password});
        let reset = server.post("/password/reset", reset).await;
        assert_eq!(reset.status(), StatusCode::NO_CONTENT);
        let verification = mail_about(&sink, &other, "confirm", 1).await;
        seen.extend([other.clone(), mail.code(), verification.code(), mail.link()]);
        // The notice, sent once the request has answered, before the logs are read.
        mail_about(&sink, &other, "changed", 1).await;

        let logs = server.logs();
        assert!(logs.lines().count() > 10, "the flow was logged:\n{logs}");
        assert!(logs.contains(&supplied_id), "{logs}");
        if format == "json" {
            check_json_lines(&logs, &supplied_id);
        }
        assert!(
            logs.contains("/signup") && logs.contains("logged in"),
            "{logs}"
        );
        for secret in &seen {
            assert!(
                !logs.contains(secret.as_str()),
                "{format} logs contain {secret:?}:\n{logs}"
            );
        }
        assert!(
            !logs.contains("$argon2"),
            "a password hash was logged:\n{logs}"
        );
        assert!(
            !logs.to_lowercase().contains("bearer ey"),
            "an Authorization header was logged"
        );
    }
}

/// Peak resident memory of a process, from `/proc` (Linux), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// 500 concurrent logins queue for the hashing pool, as far as its bound, instead of each
/// allocating the Argon2 memory, and the async workers stay free: `/healthz` keeps
/// answering quickly.
#[actix_web::test]
async fn a_login_flood_is_bounded_in_memory_and_does_not_starve_health_checks() {
    const HASH_WORKERS: u64 = 2;
    const ARGON2_MIB: u64 = 19;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("flood.db").display());
    let env = [
        ("LATCHKEY_HASH_WORKERS", "2"),
        ("LATCHKEY_LOGIN_IP_MAX_FAILURES", "100000"),
        ("LATCHKEY_LOGIN_MAX_FAILURES", "100000"),
        ("LATCHKEY_LOG", "warn"),
    ];
    let server = ServerProcess::start(&url, &env).await;
    let email = unique_email();
    server
        .tokens("/signup", credentials(&email, PASSWORD))
        .await;
    let flood_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    let flood = futures_util::future::join_all((0..500).map(|i| {
        let password = if i % 2 == 0 {
            PASSWORD
        } else {
            "a wrong passphrase"
        };
        flood_client
            .post(server.at("/login"))
            .json(&credentials(&email, password))
            .timeout(Duration::from_secs(120))
            .send()
    }));
    let probes = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut latencies = Vec::new();
        for _ in 0..40 {
            let started = Instant::now();
            let response = server
                .client
                .get(server.at("/healthz"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            latencies.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        latencies
    };
    let (responses, mut latencies) = futures_util::future::join(flood, probes).await;

    let mut refused = 0;
    for response in responses {
        let status = response.expect("every login is answered").status();
        match status {
            StatusCode::OK | StatusCode::UNAUTHORIZED => {}
            // Past the hashing queue's bound (64 per hashing thread).
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert!(refused < 500, "every login was refused");
    let peak = peak_rss(server.child.id());
    let bound = (HASH_WORKERS * ARGON2_MIB + 100) * 1024 * 1024;
    assert!(
        peak < bound,
        "peak RSS {} MiB over the bound {} MiB",
        peak >> 20,
        bound >> 20
    );
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    eprintln!(
        "peak RSS {} MiB; /healthz during the flood: median {median:?}, max {:?}",
        peak >> 20,
        latencies.last().unwrap()
    );
    assert!(
        median < Duration::from_millis(50),
        "median /healthz {median:?}: {latencies:?}"
    );
}

/// Every line is a JSON object; every request has its line; the supplied request id is on
/// the wrong login's request line and on the security event logged while handling it.
fn check_json_lines(logs: &str, supplied_id: &str) {
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let request_id = |line: &Value| {
        line["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|span| span["name"] == "request"))
            .and_then(|span| span["request_id"].as_str())
            .map(str::to_owned)
    };
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "request")
        .collect();
    assert!(requests.len() >= 15, "{logs}");
    for line in &requests {
        assert!(line["method"].is_string(), "{line}");
        assert!(line["route"].is_string(), "{line}");
        assert!(line["status"].is_u64(), "{line}");
        assert!(line["latency_ms"].is_f64(), "{line}");
        assert!(request_id(line).is_some(), "{line}");
    }
    let wrong_login = requests
        .iter()
        .find(|line| request_id(line).as_deref() == Some(supplied_id))
        .unwrap_or_else(|| panic!("no request line with {supplied_id}:\n{logs}"));
    assert_eq!(wrong_login["route"], "/login");
    assert_eq!(wrong_login["status"], 401);
    let failed = lines
        .iter()
        .find(|line| line["event"] == "login_failed")
        .unwrap_or_else(|| panic!("no login_failed event:\n{logs}"));
    assert_eq!(request_id(failed).as_deref(), Some(supplied_id), "{failed}");
    assert!(failed["user_id"].is_string(), "{failed}");
    for event in [
        "signed_up",
        "logged_in",
        "refresh_token_reused",
        "password_changed",
        "logged_out",
        "account_deleted",
    ] {
        let line = lines
            .iter()
            .find(|line| line["event"] == event)
            .unwrap_or_else(|| panic!("no {event} event:\n{logs}"));
        assert!(request_id(line).is_some(), "{line}");
    }
}
