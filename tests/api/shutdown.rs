//! Graceful shutdown of the real binary: on SIGTERM the server stops accepting, finishes the
//! requests in flight (a login here, made slow on purpose) and exits 0.

use std::fs::File;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use actix_web::rt::time::{sleep, timeout};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, unique_email};

/// The server process, killed if the test fails before it exits.
struct Server {
    child: Child,
    address: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        // A free port: the operating system picks it; the server binds it right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("finding a free port")
            .port();
        let log = dir.path().join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("latchkey.db").display()),
            )
            .env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
            // Any free port: the default 9090 may be taken by another test's server.
            .env("LATCHKEY_METRICS_BIND", "127.0.0.1:0")
            // Slow hashing, one at a time: a login takes a second or two.
            .env("LATCHKEY_ARGON2_ITERATIONS", "100")
            .env("LATCHKEY_HASH_WORKERS", "1")
            .env("LATCHKEY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("creating the log file"))
            .stderr(File::options().append(true).open(&log).unwrap())
            .spawn()
            .expect("starting latchkey");
        Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `/healthz` to answer, failing if the process exits or takes too long.
    async fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("latchkey exited at start-up ({status}):\n{}", self.log());
            }
            let probe = timeout(
                Duration::from_secs(2),
                client.get(self.url("/healthz")).send(),
            );
            if let Ok(Ok(response)) = probe.await
                && response.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "latchkey never came up:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(100)).await;
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, failing after `bound`.
    async fn wait_for_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "latchkey still running {bound:?} after SIGTERM:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A client that opens a new connection for every request.
fn fresh_client(request_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(request_timeout)
        .build()
        .unwrap()
}

#[actix_web::test]
async fn sigterm_finishes_the_login_in_flight_and_exits_0() {
    let mut server = Server::start();
    server.wait_until_up().await;

    let email = unique_email();
    // An ordinary client, whose idle keep-alive connection must not hold up the shutdown.
    let client = reqwest::Client::new();
    let started = Instant::now();
    let signup = client
        .post(server.url("/signup"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("signing up");
    assert_eq!(signup.status(), StatusCode::CREATED);
    let hashing = started.elapsed();

    let login = async {
        let response = fresh_client(Duration::from_secs(60))
            .post(server.url("/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await;
        (response, Instant::now())
    };
    let signal_and_probe = async {
        sleep(Duration::from_millis(200)).await;
        server.terminate();
        let signalled = Instant::now();
        // Give the server a moment to act on the signal, then knock on the door again.
        sleep(Duration::from_millis(300)).await;
        let probe = fresh_client(Duration::from_secs(2))
            .get(server.url("/healthz"))
            .send()
            .await;
        (signalled, probe)
    };
    let ((login, answered), (signalled, probe)) =
        futures_util::future::join(login, signal_and_probe).await;

    let login = login.expect("the login in flight gets its answer");
    assert!(
        answered > signalled,
        "the login (hashing took {hashing:?} at signup) finished before the signal; \
         nothing was in flight"
    );
    assert_eq!(login.status(), StatusCode::OK, "{}", server.log());
    let body: Value = login.json().await.expect("a token response");
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body["refresh_token"].is_string(), "{body}");
    if let Ok(response) = probe {
        panic!(
            "a connection made after SIGTERM was served: {}",
            response.status()
        );
    }

    let status = server.wait_for_exit(Duration::from_secs(20)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}:\n{}",
        server.log()
    );
    drop(client);
}
