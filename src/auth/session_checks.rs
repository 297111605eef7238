//! The session check of every authenticated request: is the session an access token names
//! still live, and whose is it. It is read from the database on every request, so that a
//! logout or a revocation takes effect on the very next one, on every instance.
//!
//! The checks of concurrent requests are read together: a request joins a queue, and a
//! batch takes everything queued when it starts, in one query. A lone request starts a
//! batch at once (no timer, nothing added to its wait); under load the batches grow. Each
//! check still reads after its request arrived, so it sees every revocation committed
//! before. On PostgreSQL this spares the database a query, and the kernel a thread switch,
//! for each request; there is one queue for the process, and a batch reads on a pool
//! thread. On SQLite a batch reads right on the worker thread that runs it ([`Db::read`]),
//! so each worker thread has its own queue: a batch answers only checks of its own thread,
//! which needs no other thread woken; it saves each check a read transaction's locking of
//! the WAL index (a mutex and `fcntl` calls shared by the workers).
//!
//! On PostgreSQL a batch waits for a server process, which the OS may leave without a CPU
//! far longer than a read takes when the machine is busy (a login flood, say), and every
//! check of the batch waits with it. So a batch whose read has not answered within
//! [`HEDGE_AFTER`] reads again on another connection, and the first answer wins: both read
//! after every request of the batch arrived, so either is fresh enough. A hedge runs only on
//! a connection free at that moment, and there are never more hedges than batches on their
//! way ([`BATCHES_AT_ONCE`]): a database slow for everyone gets at most that many extra
//! queries at a time, not twice the load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter};
use tokio::sync::{Semaphore, oneshot};

use crate::db::sessions::{self, Session};
use crate::db::users::User;
use crate::db::{Backend, Db, DbConn};
use crate::domain::SessionId;
use crate::error::Error;

/// A session and its user, if the session exists.
pub type Found = Option<(Session, User)>;

/// Most checks one query reads.
const MAX_BATCH: usize = 128;
/// Batches on their way at once: while one's answer travels back, the next runs.
const BATCHES_AT_ONCE: usize = 2;
/// How long a batch's read on a pool thread may take before it is hedged: a read answers in
/// well under a millisecond when its server process gets a CPU.
const HEDGE_AFTER: Duration = Duration::from_millis(4);

/// Reads sessions with their users, in batches.
#[derive(Clone)]
pub struct SessionChecks {
    db: Db,
    queues: Queues,
    /// Whether batches read on the thread that runs them (SQLite), one queue per thread.
    queue_per_thread: bool,
    /// Checks read by each query, for `GET /metrics`.
    batch_sizes: Histogram,
    /// At most one hedge per batch on its way.
    hedge_slots: Arc<Semaphore>,
    /// Hedged reads started, for `GET /metrics`.
    hedges: IntCounter,
}

/// Which queue a check joins: the worker thread's, or the process's one (`None`).
type QueueKey = Option<ThreadId>;

type Queues = Arc<Mutex<HashMap<QueueKey, Queue>>>;

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    batches_running: usize,
}

struct Waiter {
    session_id: SessionId,
    answer: oneshot::Sender<Result<Found, Error>>,
}

impl SessionChecks {
    pub fn new(db: Db) -> prometheus::Result<Self> {
        let batch_sizes = Histogram::with_opts(
            HistogramOpts::new(
                "latchkey_session_check_batch_size",
                "Session checks of concurrent requests read by one database query.",
            )
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 8)?),
        )?;
        let hedges = IntCounter::new(
            "latchkey_session_check_hedges_total",
            "Batches of session checks read again on a second connection because the first \
             had not answered in time.",
        )?;
        Ok(Self {
            queue_per_thread: db.backend() == Backend::Sqlite,
            db,
            queues: Arc::default(),
            batch_sizes,
            hedge_slots: Arc::new(Semaphore::new(BATCHES_AT_ONCE)),
            hedges,
        })
    }

    /// The histogram of batch sizes and the count of hedged reads, to register with the
    /// application's metrics.
    pub fn metrics(&self) -> (Histogram, IntCounter) {
        (self.batch_sizes.clone(), self.hedges.clone())
    }

    /// The session with this id and its user, read now.
    pub async fn find_with_user(&self, session_id: SessionId) -> Result<Found, Error> {
        let key = self.queue_per_thread.then(|| std::thread::current().id());
        let (answer, answered) = oneshot::channel();
        let start_batch = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = queues.entry(key).or_default();
            queue.waiting.push(Waiter { session_id, answer });
            let start = queue.batches_running < BATCHES_AT_ONCE;
            if start {
                queue.batches_running += 1;
            }
            start
        };
        if start_batch {
            // On the current worker thread: actix-web's workers are single-threaded runtimes.
            tokio::spawn(run_batches(self.clone(), key));
        }
        // The batch's own wait for the database is bounded; queued behind a stuck batch, a
        // request would wait twice that.
        match tokio::time::timeout(self.db.work_timeout(), answered).await {
            Ok(Ok(found)) => found,
            Ok(Err(_)) => Err(Error::internal(anyhow::anyhow!(
                "a session check's batch ended without answering it"
            ))),
            Err(_) => Err(Error::Unavailable(anyhow::anyhow!(
                "no session check answered within {:?}",
                self.db.work_timeout()
            ))),
        }
    }

    /// The sessions among `ids` with their users: on the worker thread on SQLite, else on a
    /// pool thread, hedged.
    async fn read(&self, ids: Vec<SessionId>) -> Result<Vec<(Session, User)>, Error> {
        let ids = Arc::new(ids);
        if self.queue_per_thread {
            return self.db.read(find_many_with_user(ids)).await;
        }
        let first = self.db.read(find_many_with_user(ids.clone()));
        hedged(first, HEDGE_AFTER, || {
            let slot = self.hedge_slots.clone().try_acquire_owned().ok()?;
            let find = find_many_with_user(ids);
            // The slot is held until the query ends, even if the first read wins meanwhile.
            let second = self.db.run_if_free(move |conn| {
                let _slot = slot;
                find(conn)
            })?;
            self.hedges.inc();
            Some(second)
        })
        .await
    }
}

fn find_many_with_user(
    ids: Arc<Vec<SessionId>>,
) -> impl FnOnce(&mut DbConn) -> Result<Vec<(Session, User)>, Error> + Send + 'static {
    move |conn| Ok(sessions::find_many_with_user(conn, &ids)?)
}

/// `first`'s outcome; but should it not be there within `after`, `second` is asked for
/// another try at the same work (it may decline: `None`), and the first success of the two
/// wins (or the later failure, if both fail).
async fn hedged<T, E, F, S>(
    first: F,
    after: Duration,
    second: impl FnOnce() -> Option<S>,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    S: Future<Output = Result<T, E>>,
{
    tokio::pin!(first);
    tokio::select! {
        biased;
        outcome = &mut first => return outcome,
        () = tokio::time::sleep(after) => {}
    }
    let Some(second) = second() else {
        return first.await;
    };
    tokio::pin!(second);
    tokio::select! {
        outcome = &mut first => match outcome {
            Ok(found) => Ok(found),
            Err(_) => second.await,
        },
        outcome = &mut second => match outcome {
            Ok(found) => Ok(found),
            Err(_) => first.await,
        },
    }
}

/// Reads the batches of one queue until nobody waits in it. Counted in `batches_running`
/// from the spawn to the moment it finds the queue empty (decided under the lock, so that no
/// waiter is left without a batch), or, should it panic, until it is dropped.
async fn run_batches(checks: SessionChecks, key: QueueKey) {
    let mut running = Running(Some((checks.queues.clone(), key)));
    loop {
        let batch: Vec<Waiter> = {
            let mut queues = checks.queues.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = queues.entry(key).or_default();
            if queue.waiting.is_empty() {
                queue.batches_running -= 1;
                running.0 = None;
                return;
            }
            let take = queue.waiting.len().min(MAX_BATCH);
            queue.waiting.drain(..take).collect()
        };
        checks.batch_sizes.observe(batch.len() as f64);
        let ids: Vec<SessionId> = batch
            .iter()
            .map(|waiter| waiter.session_id.clone())
            .collect();
        let read = checks.read(ids).await;
        match read {
            Ok(rows) => {
                let by_id: HashMap<SessionId, (Session, User)> = rows
                    .into_iter()
                    .map(|(session, user)| (session.id.clone(), (session, user)))
                    .collect();
                for waiter in batch {
                    // A waiter that stopped waiting has dropped its receiver: nothing to do.
                    let _ = waiter
                        .answer
                        .send(Ok(by_id.get(&waiter.session_id).cloned()));
                }
            }
            Err(error) => {
                for waiter in batch {
                    let _ = waiter.answer.send(Err(for_each_waiter(&error)));
                }
            }
        }
    }
}

/// The batch's error, once for each of its waiters (errors are not `Clone`): its kind, which
/// decides the answer, and the text of its causes, for the log.
fn for_each_waiter(error: &Error) -> Error {
    match error {
        Error::Unavailable(cause) => Error::Unavailable(anyhow::anyhow!("{cause:#}")),
        Error::Internal(cause) => Error::internal(anyhow::anyhow!("{cause:#}")),
        other => Error::internal(anyhow::anyhow!("{other}")),
    }
}

/// Gives the batch's place back if the batch task ends without doing so itself.
struct Running(Option<(Queues, QueueKey)>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some((queues, key)) = self.0.take() {
            let mut queues = queues.lock().unwrap_or_else(PoisonError::into_inner);
            queues.entry(key).or_default().batches_running -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{pending, ready};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const AFTER: Duration = Duration::from_millis(4);

    async fn answer_after(
        delay: Duration,
        outcome: Result<u8, &'static str>,
    ) -> Result<u8, &'static str> {
        tokio::time::sleep(delay).await;
        outcome
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_answer_starts_no_second_try() {
        let asked = AtomicBool::new(false);
        let outcome = hedged(answer_after(AFTER / 2, Ok(1)), AFTER, || {
            asked.store(true, Ordering::Relaxed);
            Some(ready(Ok(2)))
        })
        .await;
        assert_eq!(outcome, Ok(1));
        assert!(!asked.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_first_try_is_overtaken_by_the_second() {
        let started = tokio::time::Instant::now();
        let outcome = hedged(pending(), AFTER, || Some(answer_after(AFTER, Ok(2))));
        let outcome = tokio::time::timeout(Duration::from_secs(1), outcome).await;
        assert_eq!(
            outcome,
            Ok(Ok(2)),
            "answered by the second try, not stuck on the first"
        );
        assert_eq!(started.elapsed(), 2 * AFTER);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_success_wins_over_an_earlier_failure() {
        let first = answer_after(3 * AFTER, Ok(1));
        let outcome = hedged(first, AFTER, || Some(ready(Err("second failed")))).await;
        assert_eq!(outcome, Ok(1));

        let first = answer_after(AFTER + AFTER / 2, Err("first failed"));
        let outcome = hedged(first, AFTER, || Some(answer_after(AFTER, Ok(2)))).await;
        assert_eq!(outcome, Ok(2));
    }

    #[tokio::test(start_paused = true)]
    async fn two_failures_answer_the_later_one() {
        let first = answer_after(2 * AFTER, Err("first failed"));
        let outcome = hedged(first, AFTER, || Some(ready(Err("second failed")))).await;
        assert_eq!(outcome, Err("first failed"));
    }

    #[tokio::test(start_paused = true)]
    async fn without_spare_capacity_the_first_try_is_awaited() {
        let first = answer_after(10 * AFTER, Ok(1));
        let outcome = hedged(
            first,
            AFTER,
            || None::<std::future::Ready<Result<u8, &str>>>,
        )
        .await;
        assert_eq!(outcome, Ok(1));
    }
}
