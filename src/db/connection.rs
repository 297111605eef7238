//! The connection to either backend, and how the pool opens, tests and settles one.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::url::DatabaseUrl;
use crate::error::Error;

/// A connection to either backend. Queries written once against `schema` run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
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
/// not tested before its next use: a `SELECT 1` round trip per request is too dear. One the
/// server cut in the meantime fails that request (`503`) and is tested, then replaced,
/// before its next.
const TRUSTED_AFTER_ANSWER: Duration = Duration::from_secs(1);

impl PooledConn {
    pub(super) fn new(conn: DbConn) -> Self {
        Self {
            conn,
            answered_at: Instant::now(),
            suspect: false,
        }
    }

    /// Records how the work done on it ended: an error that may be the connection's own
    /// makes it suspect; anything else is an answer from the server.
    pub(super) fn settle<T>(&mut self, outcome: &Result<T, Error>) {
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
pub(super) struct ConnectionManager {
    pub(super) url: DatabaseUrl,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ManagerError {
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
pub(super) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
