//! The database going away and coming back. PostgreSQL is cut off in the middle of a test
//! through a TCP proxy the test controls (so every other test keeps its database): requests
//! answer `503 service_unavailable` within a bounded time, never a hang, a crash or a `500`,
//! and the same process serves again once the database is back, having lost nothing it
//! acknowledged. And on either backend, many concurrent writers never fail ("database is
//! locked" on SQLite).

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::rt::time::{sleep, timeout};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, PASSWORD, TestApp, TestDatabase, Tokens, unique_email};

backend_tests!(concurrent_mixed_writers_never_fail);

/// The longest a request may take to answer while the database is away. The pool gives up
/// after LATCHKEY_DB_TIMEOUT (2 s here); the rest is slack for a busy machine.
const OUTAGE_BOUND: Duration = Duration::from_secs(8);
/// The same while the database does not answer at all: the pool's wait, then the work's
/// budget (`Db::run`), plus slack.
const FROZEN_BOUND: Duration = Duration::from_secs(15);
/// How long the same process may take to serve again once the database is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

const CHEAP_HASHING: [(&str, &str); 2] = [
    ("LATCHKEY_ARGON2_MEMORY_KIB", "8192"),
    ("LATCHKEY_ARGON2_ITERATIONS", "1"),
];

/// A TCP proxy to PostgreSQL that the test can switch off (every connection cut, new ones
/// closed at once: the server is gone) or freeze (bytes held, nothing closed: the network
/// stopped answering). It runs on plain threads, so it keeps forwarding whatever the test's
/// single-threaded runtime is busy with.
struct Proxy {
    port: u16,
    shared: Arc<ProxyShared>,
}

struct ProxyShared {
    upstream: SocketAddr,
    /// One lock for the switches and the live sockets: a connection accepted while the
    /// switch flips is either registered before the cut (and cut with the others) or refused.
    state: Mutex<ProxyState>,
}

struct ProxyState {
    on: bool,
    frozen: bool,
    stopped: bool,
    /// Both ends of every proxied connection, to cut them.
    live: Vec<TcpStream>,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let upstream = upstream
            .to_socket_addrs()
            .expect("resolving the PostgreSQL address")
            .next()
            .expect("an address for PostgreSQL");
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(ProxyShared {
            upstream,
            state: Mutex::new(ProxyState {
                on: true,
                frozen: false,
                stopped: false,
                live: Vec::new(),
            }),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !accepting.forward(client) {
                    break;
                }
            }
        });
        Self { port, shared }
    }

    /// Cuts every live connection and closes each new one as soon as it is accepted.
    fn switch_off(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.on = false;
        for socket in state.live.drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn switch_on(&self) {
        self.shared.state.lock().unwrap().on = true;
    }

    /// Holds every byte in either direction, on live and new connections, closing nothing.
    fn freeze(&self) {
        self.shared.state.lock().unwrap().frozen = true;
    }

    /// Delivers what was held, and forwards again.
    fn thaw(&self) {
        self.shared.state.lock().unwrap().frozen = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Stop accepting, but leave live connections alone: cutting TLS connections while
        // the test binary exits races libcrypto's exit handlers against the application's
        // threads closing them, which aborts the process ("double free") after the tests
        // have passed. Dropping the test database ends them, as in every other test.
        self.shared.state.lock().unwrap().stopped = true;
        // Wake the accepting thread so that it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl ProxyShared {
    /// Forwards one accepted connection, or closes it while switched off. False once stopped.
    fn forward(self: &Arc<Self>, client: TcpStream) -> bool {
        {
            let state = self.state.lock().unwrap();
            if state.stopped || !state.on {
                let _ = client.shutdown(Shutdown::Both);
                return !state.stopped;
            }
        }
        let Ok(server) = TcpStream::connect_timeout(&self.upstream, Duration::from_secs(3)) else {
            let _ = client.shutdown(Shutdown::Both);
            return true;
        };
        let mut state = self.state.lock().unwrap();
        if !state.on {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return !state.stopped;
        }
        for socket in [&client, &server] {
            let _ = socket.set_nodelay(true);
            state
                .live
                .push(socket.try_clone().expect("cloning a socket"));
        }
        drop(state);
        self.pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
        self.pipe(server, client);
        true
    }

    /// Copies one direction, holding the bytes while frozen; when the direction ends, ends
    /// the whole connection, as a server would.
    fn pipe(self: &Arc<Self>, mut from: TcpStream, mut to: TcpStream) {
        let shared = self.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            while let Ok(read) = from.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                while shared.state.lock().unwrap().frozen {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}

/// `postgres://user@host:port/name?query` gives `host:port` and the same URL with the
/// address replaced by the proxy's.
fn through_proxy(url: &str, proxy_port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, address) = match authority.rsplit_once('@') {
        Some((user, address)) => (format!("{user}@"), address),
        None => (String::new(), authority),
    };
    let address = if address
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']'))
    {
        address.to_owned()
    } else {
        format!("{address}:5432")
    };
    let proxied = format!("{scheme}://{user}127.0.0.1:{proxy_port}/{path}");
    (address, proxied)
}

/// Awaits a request, failing if it takes `bound` or longer (and not waiting forever).
async fn within(bound: Duration, what: &str, request: impl Future<Output = Response>) -> Response {
    let started = Instant::now();
    let response = timeout(bound * 2, request)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer after {:?}", bound * 2));
    let elapsed = started.elapsed();
    assert!(
        elapsed < bound,
        "{what}: answered after {elapsed:?}, not within {bound:?}"
    );
    response
}

async fn assert_unavailable(what: &str, response: Response) {
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|seconds| seconds > 0),
        "{what}: a 503 carries Retry-After in seconds: {:?}",
        response.headers()
    );
    crate::support::assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
}

async fn get(app: &TestApp, path: &str) -> Response {
    app.send(Method::GET, path, None, None).await
}

/// Polls `/readyz` until it answers `200`, failing after `RECOVERY_BOUND`.
async fn wait_until_ready(app: &TestApp) {
    let started = Instant::now();
    loop {
        let status = within(
            OUTAGE_BOUND,
            "/readyz while recovering",
            get(app, "/readyz"),
        )
        .await
        .status();
        match status {
            StatusCode::OK => return,
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("/readyz while recovering answered {other}"),
        }
        assert!(
            started.elapsed() < RECOVERY_BOUND,
            "still not ready {RECOVERY_BOUND:?} after the database came back"
        );
        sleep(Duration::from_millis(200)).await;
    }
}

/// A fresh PostgreSQL database, and the application reaching it through a proxy, with a
/// short pool timeout.
async fn spawn_behind_proxy(env: &[(&str, &str)]) -> (Proxy, TestApp) {
    let database = Arc::new(TestDatabase::create(Backend::Postgres));
    let (upstream, _) = through_proxy(&database.url, 0);
    let proxy = Proxy::start(&upstream);
    let (_, proxied_url) = through_proxy(&database.url, proxy.port);
    let mut settings = vec![
        ("DATABASE_URL", proxied_url.as_str()),
        ("LATCHKEY_DB_TIMEOUT", "2"),
    ];
    settings.extend(CHEAP_HASHING);
    settings.extend(env);
    // The application's own handle on the database (`app.db`) connects directly.
    let app = TestApp::spawn_on(database, &settings).await;
    (proxy, app)
}

#[actix_web::test]
async fn a_postgres_outage_answers_503_and_the_same_process_recovers() {
    if !crate::support::postgres_available() {
        return;
    }
    let (proxy, app) = spawn_behind_proxy(&[]).await;

    // Acknowledged before the outage: two signups, a refresh, a logout of a second session.
    let ada = app.signup_user().await;
    let bea = app.signup_user().await;
    let second = app.login_user(&ada.email).await;
    let refreshed = app.refresh(&ada.refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let ada = Tokens::from(refreshed.json::<Value>().await.unwrap());
    assert_eq!(
        app.logout(&second.access_token, None).await.status(),
        StatusCode::NO_CONTENT
    );

    proxy.switch_off();

    let health = within(Duration::from_secs(3), "/healthz", get(&app, "/healthz")).await;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = within(OUTAGE_BOUND, "/readyz", get(&app, "/readyz")).await;
    assert_unavailable("/readyz", ready).await;
    let me = within(OUTAGE_BOUND, "/me", app.me(&ada.access_token)).await;
    assert_unavailable("/me", me).await;
    let login = within(
        OUTAGE_BOUND,
        "/login",
        app.login(&json!({"email": ada.email, "password": PASSWORD})),
    )
    .await;
    assert_unavailable("/login", login).await;
    let refresh = within(OUTAGE_BOUND, "/refresh", app.refresh(&ada.refresh_token)).await;
    assert_unavailable("/refresh", refresh).await;
    let signup = within(
        OUTAGE_BOUND,
        "/signup",
        app.signup(&json!({"email": unique_email(), "password": PASSWORD})),
    )
    .await;
    assert_unavailable("/signup", signup).await;
    let logout = within(OUTAGE_BOUND, "/logout", app.logout(&ada.access_token, None)).await;
    assert_unavailable("/logout", logout).await;

    // Many at once, still each within the bound: nothing queues behind a dead connection.
    let burst = (0..16).map(|i| {
        let (app, ada) = (&app, &ada);
        async move {
            let request = async move {
                match i % 4 {
                    0 => get(app, "/readyz").await,
                    1 => app.me(&ada.access_token).await,
                    2 => app.refresh(&ada.refresh_token).await,
                    _ => {
                        app.login(&json!({"email": ada.email, "password": PASSWORD}))
                            .await
                    }
                }
            };
            within(OUTAGE_BOUND, "a request of a burst", request).await
        }
    });
    for response in futures_util::future::join_all(burst).await {
        assert_unavailable("a request of a burst", response).await;
    }
    assert_eq!(get(&app, "/healthz").await.status(), StatusCode::OK);

    proxy.switch_on();
    wait_until_ready(&app).await;

    // The same process serves again, and everything acknowledged before the outage holds.
    let me = app.me(&ada.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap()["email"], ada.email);
    crate::support::assert_invalid_token(app.me(&second.access_token).await).await;
    assert_eq!(
        app.refresh(&second.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "the session logged out before the outage stays logged out"
    );
    let refreshed = app.refresh(&ada.refresh_token).await;
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "the refresh token rotated before the outage is the live one, and the refresh \
         refused during the outage did not consume it"
    );
    let ada = Tokens::from(refreshed.json::<Value>().await.unwrap());
    app.login_user(&bea.email).await;
    let again = app.login_user(&ada.email).await;
    let sessions: Value = app
        .sessions(&again.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        sessions.as_array().map(Vec::len),
        Some(2),
        "ada's first session and this login, not the one she logged out of: {sessions}"
    );

    // Cut again while requests are in flight: whatever they answer, it is never a 500 and
    // never late. Then the process recovers once more.
    let chains: Vec<Tokens> = [
        app.login_user(&ada.email).await,
        app.login_user(&ada.email).await,
        app.login_user(&bea.email).await,
    ]
    .into();
    let statuses = Mutex::new(Vec::new());
    let until = Instant::now() + Duration::from_millis(1500);
    let workers = (0..6).map(|worker| {
        let (app, chains, statuses, ada) = (&app, &chains, &statuses, &ada);
        async move {
            let mut refresh_token = chains[worker % 3].refresh_token.clone();
            while Instant::now() < until {
                let response = match worker {
                    0..=2 => within(OUTAGE_BOUND, "/refresh", app.refresh(&refresh_token)).await,
                    3 => within(OUTAGE_BOUND, "/me", app.me(&ada.access_token)).await,
                    4 => {
                        let body = json!({"email": ada.email, "password": PASSWORD});
                        within(OUTAGE_BOUND, "/login", app.login(&body)).await
                    }
                    _ => {
                        let body = json!({"email": unique_email(), "password": PASSWORD});
                        within(OUTAGE_BOUND, "/signup", app.signup(&body)).await
                    }
                };
                let status = response.status();
                if status == StatusCode::OK && worker <= 2 {
                    let body: Value = response.json().await.unwrap();
                    refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
                } else if status == StatusCode::SERVICE_UNAVAILABLE {
                    assert_unavailable("a request during the cut", response).await;
                }
                statuses.lock().unwrap().push((worker, status));
            }
        }
    });
    let cut = async {
        sleep(Duration::from_millis(400)).await;
        proxy.switch_off();
    };
    futures_util::future::join(futures_util::future::join_all(workers), cut).await;
    let statuses = statuses.into_inner().unwrap();
    for (worker, status) in &statuses {
        // A refresh whose commit was cut off may have landed without its answer: the next
        // one with the same token is then a reuse (401). Nothing else may go wrong.
        let expected: &[StatusCode] = match worker {
            0..=2 => &[
                StatusCode::OK,
                StatusCode::UNAUTHORIZED,
                StatusCode::SERVICE_UNAVAILABLE,
            ],
            5 => &[StatusCode::CREATED, StatusCode::SERVICE_UNAVAILABLE],
            _ => &[StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE],
        };
        assert!(
            expected.contains(status),
            "worker {worker} got {status}: {statuses:?}"
        );
    }
    assert!(
        statuses
            .iter()
            .any(|(_, status)| *status == StatusCode::SERVICE_UNAVAILABLE),
        "the cut showed: {statuses:?}"
    );
    proxy.switch_on();
    wait_until_ready(&app).await;
    assert_eq!(app.me(&ada.access_token).await.status(), StatusCode::OK);
    app.login_user(&bea.email).await;
}

/// The network stops answering (a partition, a frozen server): nothing is closed, nothing
/// comes back. Requests still answer 503 in bounded time, and the work they gave up on is
/// not done behind their back once the database answers again.
#[actix_web::test]
async fn a_postgres_that_stops_answering_gives_503_not_a_hang() {
    if !crate::support::postgres_available() {
        return;
    }
    // No grace window: a refresh done behind a 503 would make the next one a reuse.
    let (proxy, app) = spawn_behind_proxy(&[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await;
    let ada = app.signup_user().await;
    // Open several connections, so that the first requests below each take one that then
    // freezes under them, instead of waiting in vain for a new one.
    let warm_up = (0..8).map(|_| app.me(&ada.access_token));
    for response in futures_util::future::join_all(warm_up).await {
        assert_eq!(response.status(), StatusCode::OK);
    }

    proxy.freeze();
    let health = within(Duration::from_secs(3), "/healthz", get(&app, "/healthz")).await;
    assert_eq!(health.status(), StatusCode::OK);
    // The writes first, on the frozen connections; then everything else.
    let writes = futures_util::future::join(
        within(FROZEN_BOUND, "/refresh", app.refresh(&ada.refresh_token)),
        within(FROZEN_BOUND, "/logout", app.logout(&ada.access_token, None)),
    );
    let others = async {
        sleep(Duration::from_millis(300)).await;
        let login = json!({"email": ada.email, "password": PASSWORD});
        let signup = json!({"email": unique_email(), "password": PASSWORD});
        futures_util::future::join4(
            within(FROZEN_BOUND, "/readyz", get(&app, "/readyz")),
            within(FROZEN_BOUND, "/me", app.me(&ada.access_token)),
            within(FROZEN_BOUND, "/login", app.login(&login)),
            within(FROZEN_BOUND, "/signup", app.signup(&signup)),
        )
        .await
    };
    let ((refresh, logout), (ready, me, login, signup)) =
        futures_util::future::join(writes, others).await;
    for (what, response) in [
        ("/refresh", refresh),
        ("/logout", logout),
        ("/readyz", ready),
        ("/me", me),
        ("/login", login),
        ("/signup", signup),
    ] {
        assert_unavailable(what, response).await;
    }
    // Again, now that every pooled connection is stuck.
    let again = within(FROZEN_BOUND, "/me again", app.me(&ada.access_token)).await;
    assert_unavailable("/me again", again).await;

    proxy.thaw();
    wait_until_ready(&app).await;
    let me = app.me(&ada.access_token).await;
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the logout that answered 503 did not happen later"
    );
    assert_eq!(
        app.refresh(&ada.refresh_token).await.status(),
        StatusCode::OK,
        "the refresh that answered 503 did not consume the token later"
    );
    app.login_user(&ada.email).await;
}

/// Fifty-odd writers of every kind at once: on SQLite they queue for the write lock instead
/// of failing with "database is locked" (which would answer 503, or 500 if mapped wrong).
async fn concurrent_mixed_writers_never_fail(backend: Backend) {
    let app = TestApp::spawn_with(backend, &CHEAP_HASHING).await;
    let mut users = Vec::new();
    for _ in 0..8 {
        users.push(app.signup_user().await);
    }
    // Distinct sessions for the refreshes and the logouts, so that each outcome is certain.
    let mut sessions = Vec::new();
    for i in 0..20 {
        sessions.push(app.login_user(&users[i % 4].email).await);
    }
    let shared = app.login_user(&users[4].email).await;

    let mut requests: Vec<futures_util::future::LocalBoxFuture<'_, (&str, StatusCode)>> =
        Vec::new();
    let app = &app;
    for _ in 0..10 {
        requests.push(Box::pin(async move {
            let body = json!({"email": unique_email(), "password": PASSWORD});
            ("signup", app.signup(&body).await.status())
        }));
    }
    for session in &sessions[..10] {
        requests.push(Box::pin(async move {
            (
                "refresh",
                app.refresh(&session.refresh_token).await.status(),
            )
        }));
    }
    for _ in 0..5 {
        // One token refreshed by several tabs at once: all converge within the grace window.
        let shared = &shared;
        requests.push(Box::pin(async move {
            let status = app.refresh(&shared.refresh_token).await.status();
            ("shared refresh", status)
        }));
    }
    for session in &sessions[10..20] {
        requests.push(Box::pin(async move {
            (
                "logout",
                app.logout(&session.access_token, None).await.status(),
            )
        }));
    }
    for user in &users[..4] {
        requests.push(Box::pin(async move {
            let body = json!({"email": user.email, "password": PASSWORD});
            ("login", app.login(&body).await.status())
        }));
        requests.push(Box::pin(async move {
            let body = json!({"email": user.email, "password": "not the password at all"});
            ("failed login", app.login(&body).await.status())
        }));
        requests.push(Box::pin(async move {
            ("me", app.me(&user.access_token).await.status())
        }));
    }
    for user in &users[5..7] {
        requests.push(Box::pin(async move {
            let body =
                json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
            let response = app
                .send(
                    Method::POST,
                    "/me/password",
                    Some(&user.access_token),
                    Some(&body),
                )
                .await;
            ("password change", response.status())
        }));
    }
    let user = &users[7];
    requests.push(Box::pin(async move {
        let body = json!({"password": PASSWORD});
        let response = app
            .send(Method::DELETE, "/me", Some(&user.access_token), Some(&body))
            .await;
        ("account deletion", response.status())
    }));

    let outcomes = futures_util::future::join_all(requests).await;
    assert!(outcomes.len() >= 50);
    for (what, status) in &outcomes {
        let expected = match *what {
            "signup" => StatusCode::CREATED,
            "logout" | "password change" | "account deletion" => StatusCode::NO_CONTENT,
            "failed login" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::OK,
        };
        assert_eq!(*status, expected, "{what}: {outcomes:?}");
    }
}
