//! The pool of connections, shared by every worker: its size, its health, its migrations.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tokio::sync::Semaphore;

use super::connection::{ConnectionManager, DbConn, SQLITE_BUSY_TIMEOUT};
use super::url::{Backend, DatabaseUrl, with_network_timeouts};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Pool settings; the defaults suit one process on a small machine.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// The connection pool. Every query runs on a blocking thread through [`Db::run`].
#[derive(Clone)]
pub struct Db {
    pub(super) pool: r2d2::Pool<ConnectionManager>,
    /// One permit per connection: a request waits for a connection here, asynchronously,
    /// not on a blocking thread of its own, so waiting requests hold no threads.
    pub(super) permits: Arc<Semaphore>,
    pub(super) acquire_timeout: Duration,
    /// How long [`Db::run`] waits for the pool and the work before answering `Unavailable`.
    pub(super) work_timeout: Duration,
    pub(super) backend: Backend,
    /// Seconds each query waited for a permit (a connection of its own), for `GET /metrics`.
    pub(super) permit_wait: prometheus::Histogram,
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
        if let DatabaseUrl::Sqlite(path) = url {
            create_owner_only(path)?;
        }
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

    pub fn backend(&self) -> Backend {
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
}
/// Creates the SQLite database file readable by its owner alone (`0600`), if it does not
/// exist yet: SQLite creates the `-wal` and `-shm` files with the database file's
/// permissions, so they are owner-only too, and a copy of them is as hard to come by as the
/// keys and hashes they hold. An existing file that others may read is left as its operator
/// made it, with a warning.
#[cfg(unix)]
fn create_owner_only(path: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    // A `file:` URI's parameters are not part of the file's name.
    let path = path.split('?').next().unwrap_or(path);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path,
                    mode = format!("{:o}", mode & 0o777),
                    "the SQLite database may be read by other users than its owner; \
                     chmod 600 it (and its -wal and -shm files)"
                );
            }
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("creating the SQLite database {path}")),
    }
}

#[cfg(not(unix))]
fn create_owner_only(_path: &str) -> anyhow::Result<()> {
    Ok(())
}
