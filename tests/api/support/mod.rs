//! Shared by every test module: spawn the real application on a random port
//! with a fresh database (a temporary SQLite file, or a uniquely named PostgreSQL
//! database dropped afterwards), and talk to it over real HTTP.
//!
//! Each test is written once, as `async fn name(backend: Backend)`, and `backend_tests!`
//! runs it on both backends. On a machine without PostgreSQL the PostgreSQL runs are
//! skipped with a notice; with `CI=true` they fail instead.

pub mod authenticator;
pub mod cli;
pub mod mail_sink;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;

use diesel::{Connection as _, PgConnection, RunQueryDsl as _};
use latchkey::config::Settings;
use latchkey::db::{DatabaseUrl, Db, PoolOptions};
use latchkey::startup::Application;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";
/// The cookie that holds the refresh token of a browser app (API.md, "Browser clients").
pub const REFRESH_COOKIE: &str = "__Host-latchkey_refresh";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` once per backend, as `name::sqlite` and
/// `name::postgres`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }

            #[actix_web::test]
            async fn postgres() {
                if $crate::support::postgres_available() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        }
    )*};
}

/// The server that PostgreSQL tests create their databases on.
pub fn postgres_base_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Whether PostgreSQL can be reached. Without it, CI fails and a developer's run says once,
/// past the test harness's output capture, that the PostgreSQL suite was skipped.
pub fn postgres_available() -> bool {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = AVAILABLE.get_or_init(|| {
        PgConnection::establish(&format!(
            "{}/postgres?connect_timeout=3",
            postgres_base_url()
        ))
        .map(drop)
        .map_err(|error| error.to_string())
    });
    match outcome {
        Ok(()) => true,
        Err(error) if std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1") => {
            panic!(
                "CI=true and PostgreSQL at {} is unreachable: {error}",
                postgres_base_url()
            )
        }
        Err(error) => {
            static NOTICE: OnceLock<()> = OnceLock::new();
            NOTICE.get_or_init(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\nNOTE: PostgreSQL suite skipped: {} is unreachable ({}). \
                     Set LATCHKEY_TEST_POSTGRES_URL, or start PostgreSQL, to run it.\n",
                    postgres_base_url(),
                    error.trim()
                );
            });
            false
        }
    }
}

/// The settings of an empty environment: every default.
pub fn default_settings() -> Settings {
    Settings::from_map(&HashMap::new()).expect("the defaults are valid")
}

/// A fresh database that disappears with the test.
pub struct TestDatabase {
    pub url: String,
    backend: Backend,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let path = dir.path().join("latchkey.db");
                Self {
                    url: format!("sqlite://{}", path.display()),
                    backend,
                    name: String::new(),
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("latchkey_test_{}", uuid::Uuid::now_v7().simple());
                let mut admin = admin_connection();
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("creating a test database");
                Self {
                    // No TLS on loopback: libpq's OpenSSL clean-up at process exit races
                    // with pool threads still connecting, and can crash a test binary
                    // (SIGSEGV) after all its tests have passed.
                    url: format!("{}/{name}?sslmode=disable", postgres_base_url()),
                    backend,
                    name,
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.backend == Backend::Postgres {
            let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = diesel::sql_query(drop_sql).execute(&mut admin_connection());
        }
    }
}

fn admin_connection() -> PgConnection {
    PgConnection::establish(&format!("{}/postgres", postgres_base_url()))
        .expect("connecting to PostgreSQL")
}

/// A running application and a client for it.
pub struct TestApp {
    pub address: String,
    /// The metrics listener, like `http://127.0.0.1:PORT`; `None` with `LATCHKEY_METRICS=off`.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    /// Direct access to the application's database, to arrange or inspect what HTTP cannot.
    pub db: Db,
    pub database: std::sync::Arc<TestDatabase>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// Spawns with extra environment settings, such as `("LATCHKEY_ACCESS_TTL", "2")`.
    pub async fn spawn_with(backend: Backend, env: &[(&str, &str)]) -> Self {
        let database = std::sync::Arc::new(TestDatabase::create(backend));
        Self::spawn_on(database, env).await
    }

    /// Spawns another application on the same database: a second instance, or a restart.
    pub async fn spawn_on(database: std::sync::Arc<TestDatabase>, env: &[(&str, &str)]) -> Self {
        let mut values: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), database.url.clone()),
            ("LATCHKEY_BIND".into(), "127.0.0.1:0".into()),
            // A port of its own too: many applications run at once, none on the default 9090.
            ("LATCHKEY_METRICS_BIND".into(), "127.0.0.1:0".into()),
            ("LATCHKEY_DB_POOL_SIZE".into(), "4".into()),
            ("LATCHKEY_LOG".into(), "warn".into()),
        ]);
        for (key, value) in env {
            values.insert((*key).to_owned(), (*value).to_owned());
        }
        let settings = Settings::from_map(&values).expect("test settings are valid");
        if std::env::var("TEST_LOG").is_ok() {
            latchkey::telemetry::init("info", settings.log_format);
        }
        let application = Application::build(settings)
            .await
            .expect("building the app");
        let address = format!("http://127.0.0.1:{}", application.port());
        let metrics_address = application
            .metrics_address()
            .map(|address| format!("http://{address}"));
        actix_web::rt::spawn(application.run_until_stopped());
        let url = DatabaseUrl::parse(&database.url).unwrap();
        let options = PoolOptions {
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        let db = Db::connect(&url, &options).expect("connecting to the test database");
        Self {
            address,
            metrics_address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db,
            database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A URL on the metrics listener.
    pub fn metrics_url(&self, path: &str) -> String {
        let address = self.metrics_address.as_ref().expect("metrics are on");
        format!("{address}{path}")
    }

    /// Sends a request with an optional JSON body and bearer token.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("sending a request")
    }

    /// The number of rows in a table of the application's database.
    pub fn rows(&self, table: &'static str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.db
            .run_now(move |conn| {
                let row: Count = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                    .get_result(conn)?;
                Ok(row.n)
            })
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Method::POST, path, None, Some(body)).await
    }

    pub async fn signup(&self, body: &Value) -> Response {
        self.post("/signup", body).await
    }

    /// Signs up a fresh user and returns the token response.
    pub async fn signup_user(&self) -> Tokens {
        let email = unique_email();
        let response = self
            .signup(&json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        Tokens::from(response.json::<Value>().await.unwrap())
    }

    pub async fn login(&self, body: &Value) -> Response {
        self.post("/login", body).await
    }

    /// Logs the user in again, opening another session.
    pub async fn login_user(&self, email: &str) -> Tokens {
        let response = self
            .login(&json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        Tokens::from(response.json::<Value>().await.unwrap())
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post("/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// `POST /refresh` as a browser app sends it: the refresh cookie, a JSON body and, when
    /// given, an `Origin`.
    pub async fn refresh_with_cookie(
        &self,
        cookie: &str,
        body: &Value,
        origin: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url("/refresh"))
            .header("Cookie", format!("{REFRESH_COOKIE}={cookie}"))
            .json(body);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send().await.expect("sending a request")
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.send(Method::GET, "/me", Some(access_token), None)
            .await
    }

    pub async fn logout(&self, access_token: &str, body: Option<&Value>) -> Response {
        self.send(Method::POST, "/logout", Some(access_token), body)
            .await
    }

    pub async fn sessions(&self, access_token: &str) -> Response {
        self.send(Method::GET, "/sessions", Some(access_token), None)
            .await
    }

    /// The JWK Set the application publishes now.
    pub async fn jwks(&self) -> Value {
        let response = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

/// One base64url part of a JWT, as JSON.
fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let encoded = token.split('.').nth(index).expect("a JWT part");
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .expect("base64url");
    serde_json::from_slice(&decoded).expect("a JSON part")
}

/// A JWT's header, unverified.
pub fn header_of(token: &str) -> Value {
    jwt_part(token, 0)
}

/// A JWT's claims, unverified.
pub fn claims_of(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The parts of a token response the tests use.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: String,
    pub email: String,
    pub body: Value,
}

impl From<Value> for Tokens {
    fn from(body: Value) -> Self {
        let text = |value: &Value| value.as_str().expect("a string field").to_owned();
        Self {
            access_token: text(&body["access_token"]),
            refresh_token: text(&body["refresh_token"]),
            user_id: text(&body["user"]["id"]),
            email: text(&body["user"]["email"]),
            body,
        }
    }
}

/// Ports that were free a moment ago, all different, for a server that cannot be told port 0
/// and then asked which port it took (a child process).
pub fn free_ports<const N: usize>() -> [u16; N] {
    // Held until all are chosen: a port just let go could otherwise be handed out twice.
    let held: [std::net::TcpListener; N] =
        std::array::from_fn(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    held.map(|listener| listener.local_addr().unwrap().port())
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// Asserts an RFC 9457 problem with this status and code, and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("a JSON problem body");
    assert_eq!(body["code"], code, "problem: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], "about:blank");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    if status != StatusCode::UNPROCESSABLE_ENTITY {
        assert!(body.get("errors").is_none(), "`errors` only on 422: {body}");
    }
    body
}

/// Asserts a `401 invalid_token` with its RFC 6750 challenge.
pub async fn assert_invalid_token(response: Response) {
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
