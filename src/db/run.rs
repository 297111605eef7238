//! The ways of running work on a pooled connection. Each says when to use it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::OwnedSemaphorePermit;

use super::connection::DbConn;
use super::pool::Db;
use super::transaction::CallerWatch;
use super::url::Backend;
use crate::error::Error;

impl Db {
    /// **Use for any work that writes, or may wait on a lock.** Runs `work` with a pooled
    /// connection on a blocking thread, so that neither the pool wait nor the query ever
    /// blocks an async worker.
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

    /// **Use for work worth doing only with capacity to spare** (a hedged read): like
    /// [`Db::run`], but only if a connection is free right now; `None` if not.
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

    /// **Use for the lookups by key of a request that only reads.** Like [`Db::run`], but on
    /// SQLite, when a connection is free at once, it runs right here on the async worker. A read of a local WAL database never
    /// waits for a lock (readers and the writer do not block each other) and the per-request
    /// reads are lookups by key, so it costs less than the two thread switches of a trip to
    /// the blocking pool. Anything else takes that trip.
    pub async fn read<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        if self.backend == Backend::Sqlite
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

    /// **Use outside any async runtime** (tests arranging or inspecting the database): like
    /// [`Db::run`], on the calling thread.
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
