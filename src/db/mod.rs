//! Storage: one diesel connection type over SQLite and PostgreSQL, its pool, migrations, and
//! one repository module per table. This is the only place that writes SQL; it knows
//! nothing of HTTP or JWT.
//!
//! Lookups by a unique key use `get_result`, never `first`: `first` adds `LIMIT ?`, and
//! SQLite re-plans a statement whose `LIMIT` parameter is bound again, so the cached
//! statement was parsed and planned anew on every request (most of `GET /me`'s SQL work).

/// Runs `$body` with `$inner` bound to the backend's own connection instead of [`DbConn`]:
/// the derived multi-connection writes out the SQL text of a query again on every execution
/// (and converts every value it reads), which was a sixth of the server's time on `GET /me`;
/// the backends' own connections find the prepared statement by the query's type. For the
/// queries of every request; `$body` is compiled once per backend.
macro_rules! per_backend {
    ($conn:expr, |$inner:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres($inner) => $body,
            $crate::db::DbConn::Sqlite($inner) => $body,
        }
    };
}

pub mod login_failures;
pub mod refresh_tokens;
pub mod schema;
pub mod security_events;
pub mod sessions;
pub mod signing_keys;
pub mod users;

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend. Queries written once against `schema` run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Where the data lives, parsed from `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(String),
}

impl DatabaseUrl {
    /// `postgres://` and `postgresql://` select PostgreSQL; `sqlite://PATH` or a plain path
    /// selects SQLite.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err("is empty; give a file path, sqlite://PATH or postgres://...".into());
        }
        if path.contains(":memory:") || path.contains("mode=memory") {
            // Each pooled connection would open its own, empty database.
            return Err("an in-memory SQLite database is not supported; give a file path".into());
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(format!("the scheme `{scheme}://` is not supported"));
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// A pooled connection, and what the pool knows of its health.
pub struct PooledConn {
    conn: DbConn,
    /// When the server last answered on it.
    answered_at: Instant,
    /// Its last work failed as if the server had gone: it is tested before its next use.
    suspect: bool,
}

/// A PostgreSQL connection that answered this recently, and whose last work did not fail, is
/// not tested before its next use: a `SELECT 1` round trip before every request was half of
/// the database's work on `GET /me`. One the server cut in the meantime fails that request
/// (`503`) and is tested, then replaced, before its next.
const TRUSTED_AFTER_ANSWER: Duration = Duration::from_secs(1);

impl PooledConn {
    fn new(conn: DbConn) -> Self {
        Self {
            conn,
            answered_at: Instant::now(),
            suspect: false,
        }
    }

    /// Records how the work done on it ended: an error that may be the connection's own
    /// makes it suspect; anything else is an answer from the server.
    fn settle<T>(&mut self, outcome: &Result<T, Error>) {
        match outcome {
            Err(Error::Unavailable(_) | Error::Internal(_)) => self.suspect = true,
            _ => self.answered(),
        }
    }

    /// The server answered on it just now.
    fn answered(&mut self) {
        self.suspect = false;
        self.answered_at = Instant::now();
    }

    fn needs_test(&self) -> bool {
        match self.conn {
            DbConn::Postgres(_) => {
                self.suspect || self.answered_at.elapsed() >= TRUSTED_AFTER_ANSWER
            }
            // A file handle: nothing can cut it.
            DbConn::Sqlite(_) => false,
        }
    }
}

impl Deref for PooledConn {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

/// Opens connections for the pool, choosing the backend from the URL ourselves: the derived
/// `MultiConnection::establish` tries each backend in turn and hides the real error.
#[derive(Debug)]
struct ConnectionManager {
    url: DatabaseUrl,
}

#[derive(Debug, thiserror::Error)]
enum ManagerError {
    #[error(transparent)]
    Connect(#[from] ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PooledConn;
    type Error = ManagerError;

    fn connect(&self) -> Result<PooledConn, ManagerError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => Ok(PooledConn::new(DbConn::Postgres(
                PgConnection::establish(url)?,
            ))),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // The busy timeout comes first: switching to WAL itself needs a lock, which a
                // connection opened while others write must wait for, not fail on. WAL lets
                // readers proceed beside the one writer; SQLite leaves foreign keys off
                // unless asked on every connection.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))?;
                Ok(PooledConn::new(DbConn::Sqlite(conn)))
            }
        }
    }

    fn is_valid(&self, conn: &mut PooledConn) -> Result<(), ManagerError> {
        if conn.needs_test() {
            conn.conn.batch_execute("SELECT 1")?;
            conn.answered();
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut PooledConn) -> bool {
        <DbConn as Connection>::TransactionManager::is_broken_transaction_manager(&mut conn.conn)
    }
}

/// How long an SQLite writer waits for the write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pool settings; the defaults suit one process on a small machine.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// The connection pool. Every query runs on a blocking thread through [`Db::run`].
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<ConnectionManager>,
    /// One permit per connection: a request waits for a connection here, asynchronously,
    /// instead of on a blocking thread of its own (500 waiting requests held 100+ threads).
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    /// How long [`Db::run`] waits for the pool and the work before answering `Unavailable`.
    work_timeout: Duration,
    backend: &'static str,
    /// Seconds each query waited for a permit (a connection of its own), for `GET /metrics`.
    permit_wait: prometheus::Histogram,
}

/// How the pool's connections are used, for `GET /metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolUse {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

impl Db {
    /// Connects (failing fast when the database is unreachable) and applies migrations.
    pub fn connect(url: &DatabaseUrl, options: &PoolOptions) -> anyhow::Result<Self> {
        let url = with_network_timeouts(url, options.acquire_timeout);
        let pool = r2d2::Pool::builder()
            .max_size(options.max_connections)
            .min_idle(Some(1))
            .connection_timeout(options.acquire_timeout)
            // A pooled PostgreSQL connection may have been cut since its last use:
            // `PooledConn::needs_test` says when it is tested before the next.
            .test_on_check_out(true)
            .build(ConnectionManager { url: url.clone() })
            .with_context(|| format!("connecting to the {} database", url.backend()))?;
        let db = Self {
            pool,
            permits: Arc::new(Semaphore::new(options.max_connections as usize)),
            acquire_timeout: options.acquire_timeout,
            // The pool's wait, then as long as an SQLite writer may queue for the lock (or
            // the pool's wait again, if longer): legitimate work fits, a silent server not.
            work_timeout: options.acquire_timeout
                + options.acquire_timeout.max(SQLITE_BUSY_TIMEOUT),
            backend: url.backend(),
            permit_wait: prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
                "latchkey_db_permit_wait_seconds",
                "Time a database query waited for a connection of the pool.",
            ))
            .context("creating the pool's wait histogram")?,
        };
        db.migrate()?;
        Ok(db)
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// How long [`Db::run`] waits for the pool and the work before answering `Unavailable`.
    pub fn work_timeout(&self) -> Duration {
        self.work_timeout
    }

    /// The connections in use and idle now, and the pool's size.
    pub fn pool_use(&self) -> PoolUse {
        let state = self.pool.state();
        PoolUse {
            in_use: state.connections.saturating_sub(state.idle_connections),
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }

    /// The histogram of waits for a permit, to register with the application's metrics.
    pub fn permit_wait_metric(&self) -> prometheus::Histogram {
        self.permit_wait.clone()
    }

    /// Applies the pending migrations of this backend.
    pub fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.get().context("connecting to apply migrations")?;
        let applied = match &mut **conn {
            DbConn::Postgres(conn) => conn.run_pending_migrations(POSTGRES_MIGRATIONS),
            DbConn::Sqlite(conn) => conn.run_pending_migrations(SQLITE_MIGRATIONS),
        }
        .map_err(|error| anyhow::anyhow!("applying migrations: {error}"))?;
        for version in applied {
            tracing::info!(%version, "applied migration");
        }
        Ok(())
    }

    /// Runs `work` with a pooled connection on a blocking thread, so that neither the pool
    /// wait nor the query ever blocks an async worker.
    ///
    /// A server that stops answering without closing the connection (a network partition, a
    /// frozen host) would block the thread, and so the request, until TCP gives up: the
    /// wait is bounded by `work_timeout`, then answers `Unavailable`. The blocked thread
    /// stays behind with its permit; should it get a connection after all, it does not start
    /// the work that the client has already been told failed.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let waiting = std::time::Instant::now();
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| {
                    Error::Unavailable(anyhow::anyhow!("no database connection free in time"))
                })?
                .map_err(Error::internal)?;
        self.permit_wait.observe(waiting.elapsed().as_secs_f64());
        self.run_with(permit, work).await
    }

    /// Like [`Db::run`], but only if a connection is free right now; `None` if not. For work
    /// worth doing only with capacity to spare.
    pub fn run_if_free<T, F>(&self, work: F) -> Option<impl Future<Output = Result<T, Error>>>
    where
        F: FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        self.permit_wait.observe(0.0);
        Some(self.run_with(permit, work))
    }

    /// [`Db::run`] once its permit is held.
    async fn run_with<T, F>(&self, permit: OwnedSemaphorePermit, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let abandoned = Arc::new(AtomicBool::new(false));
        let task = tokio::task::spawn_blocking({
            let abandoned = abandoned.clone();
            move || {
                let _entered = span.enter();
                let mut conn = pool.get()?;
                if abandoned.load(Ordering::Acquire) {
                    return Err(Error::Unavailable(anyhow::anyhow!(
                        "the request stopped waiting for the database"
                    )));
                }
                let outcome = {
                    let _watch = CallerWatch::install(abandoned);
                    work(&mut conn)
                };
                conn.settle(&outcome);
                drop(permit);
                outcome
            }
        });
        match tokio::time::timeout(self.work_timeout, task).await {
            Ok(joined) => joined.map_err(|join_error| {
                Error::internal(anyhow::anyhow!("database task failed: {join_error}"))
            })?,
            Err(_) => {
                abandoned.store(true, Ordering::Release);
                Err(Error::Unavailable(anyhow::anyhow!(
                    "the database did not answer within {:?}",
                    self.work_timeout
                )))
            }
        }
    }

    /// Like [`Db::run`], once a slot of `lane` is free: a kind of work that may wait on a
    /// lock in the database holding its connection takes at most the lane's slots of the
    /// pool. A slot is waited for as long as the work itself may take (`work_timeout`): the
    /// lane is a queue, like the hashing threads', whose work is short; the wait for a
    /// connection after it is bounded as usual.
    pub async fn run_in_lane<T, F>(&self, lane: &Semaphore, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let _slot = tokio::time::timeout(self.work_timeout, lane.acquire())
            .await
            .map_err(|_| Error::Unavailable(anyhow::anyhow!("no database lane free in time")))?
            .map_err(Error::internal)?;
        self.run(work).await
    }

    /// Like [`Db::run`], for work that only reads: on SQLite, when a connection is free at
    /// once, it runs right here on the async worker. A read of a local WAL database never
    /// waits for a lock (readers and the writer do not block each other) and the per-request
    /// reads are lookups by key, so it costs less than the two thread switches of a trip to
    /// the blocking pool, which were most of `GET /me`'s time. Anything else takes that trip.
    pub async fn read<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        if self.backend == "sqlite"
            && let Ok(permit) = self.permits.clone().try_acquire_owned()
            && let Some(mut conn) = self.pool.try_get()
        {
            self.permit_wait.observe(0.0);
            let outcome = work(&mut conn);
            conn.settle(&outcome);
            drop(permit);
            return outcome;
        }
        self.run(work).await
    }

    /// Like [`Db::run`], for command-line use outside any async runtime.
    pub fn run_now<T>(
        &self,
        work: impl FnOnce(&mut DbConn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn = self.pool.get()?;
        let outcome = work(&mut conn);
        conn.settle(&outcome);
        outcome
    }
}

/// What `Debug` shows in place of a secret column (a password hash, a private key).
const REDACTED: &str = "<redacted>";

thread_local! {
    /// Whether the request whose work this blocking thread runs has stopped waiting for it.
    static CALLER_GAVE_UP: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Makes the flag of [`Db::run`]'s caller visible to [`write_transaction`] while the work
/// runs on this thread, and clears it after, whatever happens.
struct CallerWatch;

impl CallerWatch {
    fn install(abandoned: Arc<AtomicBool>) -> Self {
        CALLER_GAVE_UP.with(|flag| *flag.borrow_mut() = Some(abandoned));
        Self
    }
}

impl Drop for CallerWatch {
    fn drop(&mut self) {
        CALLER_GAVE_UP.with(|flag| *flag.borrow_mut() = None);
    }
}

fn caller_gave_up() -> bool {
    CALLER_GAVE_UP.with(|flag| {
        flag.borrow()
            .as_ref()
            .is_some_and(|abandoned| abandoned.load(Ordering::Acquire))
    })
}

/// Bounds what the network may take on PostgreSQL, unless the URL says otherwise:
/// connecting, so an unreachable server turns into a `503` instead of a hang; and noticing
/// a server that vanished without closing the connection (keepalives while awaiting an
/// answer, the TCP user timeout for data never acknowledged), so that a thread stuck on it
/// gives its connection back within about half a minute, not after hours: otherwise a few
/// such threads would keep the pool empty long after the database is back.
fn with_network_timeouts(url: &DatabaseUrl, connect_timeout: Duration) -> DatabaseUrl {
    let DatabaseUrl::Postgres(raw) = url else {
        return url.clone();
    };
    let seconds = connect_timeout.as_secs().max(1).to_string();
    let mut url = raw.clone();
    for (key, value) in [
        ("connect_timeout", seconds.as_str()),
        ("keepalives_idle", "10"),
        ("keepalives_interval", "5"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
    ] {
        if !raw.contains(key) {
            let separator = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{separator}{key}={value}");
        }
    }
    DatabaseUrl::Postgres(url)
}

/// Runs `work` in a transaction that takes the write lock up front. On SQLite a deferred
/// transaction that reads and then writes fails at once with "database is locked" when
/// another writer committed in between (the busy timeout does not apply to that upgrade);
/// `BEGIN IMMEDIATE` queues behind the other writer instead. PostgreSQL needs no such care.
///
/// Work whose request has stopped waiting for it ([`Db::run`] answered `503` meanwhile, say
/// on a connection that froze under it and came back) is rolled back, not committed: the
/// client was told it failed.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let work = |conn: &mut DbConn| {
        let value = work(conn)?;
        if caller_gave_up() {
            tracing::warn!("rolled back work whose request had already been answered 503");
            return Err(diesel::result::Error::RollbackTransaction.into());
        }
        Ok(value)
    };
    match conn {
        DbConn::Postgres(_) => conn.transaction(work),
        DbConn::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
            // The multi-connection's transaction state is the inner connection's, so the
            // outer manager commits or rolls back what was begun on the inner one.
            match work(conn) {
                Ok(value) => {
                    <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
                    Ok(value)
                }
                Err(error) => {
                    <DbConn as Connection>::TransactionManager::rollback_transaction(conn)?;
                    Err(error)
                }
            }
        }
    }
}

/// Answers whether the database responds, for `/readyz`.
pub fn ping(conn: &mut DbConn) -> QueryResult<()> {
    conn.batch_execute("SELECT 1")
}

/// A configured duration as a time span; durations are bounded at start-up (ten years), so
/// the saturation never shows.
pub fn span(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}

/// The current time as stored: UTC, truncated to microseconds, which PostgreSQL keeps and
/// SQLite would otherwise exceed, so that a value read back equals the value written.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}
