//! Write transactions: one way to begin them on both backends, and none committed after
//! its request was answered `503`.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;

use super::connection::DbConn;

thread_local! {
    /// Whether the request whose work this blocking thread runs has stopped waiting for it.
    static CALLER_GAVE_UP: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Makes the flag of [`Db::run`]'s caller visible to [`write_transaction`] while the work
/// runs on this thread, and clears it after, whatever happens.
pub(super) struct CallerWatch;

impl CallerWatch {
    pub(super) fn install(abandoned: Arc<AtomicBool>) -> Self {
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

/// Serialises the transactions that take the lock named `key` until each ends: on
/// PostgreSQL a transaction-scoped advisory lock; SQLite's write transactions already run
/// one at a time.
pub fn lock_until_commit(conn: &mut DbConn, key: &str) -> QueryResult<()> {
    match conn {
        DbConn::Postgres(pg) => advisory_lock(pg, key),
        DbConn::Sqlite(_) => Ok(()),
    }
}

/// PostgreSQL's transaction-scoped advisory lock named `key`.
pub(super) fn advisory_lock(pg: &mut PgConnection, key: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<diesel::sql_types::Text, _>(key)
        .execute(pg)
        .map(drop)
}
