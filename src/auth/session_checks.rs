//! The session check of every authenticated request: is the session an access token names
//! still live, and whose is it. It is read from the database on every request, so that a
//! logout or a revocation takes effect on the very next one, on every instance.
//!
//! The checks of concurrent requests are read together: a request joins a queue, and a
//! batch takes everything queued when it starts, in one query. A lone request starts a
//! batch at once (no timer, nothing added to its wait); under load the batches grow. Each
//! check still reads after its request arrived, so it sees every revocation committed
//! before. On PostgreSQL, a query and its trip to a pool thread for each request were most
//! of the database's and the kernel's work on `GET /me`; there is one queue for the process,
//! and a batch reads on a pool thread. On SQLite a batch reads right on the worker thread
//! that runs it ([`Db::read`]), so each worker thread has its own queue: a batch answers only
//! checks of its own thread, which needs no other thread woken; it saves each check a read
//! transaction's locking of the WAL index (a mutex and `fcntl` calls shared by the workers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;

use prometheus::{Histogram, HistogramOpts};
use tokio::sync::oneshot;

use crate::db::Db;
use crate::db::sessions::{self, Session};
use crate::db::users::User;
use crate::error::Error;

/// A session and its user, if the session exists.
pub type Found = Option<(Session, User)>;

/// Most checks one query reads.
const MAX_BATCH: usize = 128;
/// Batches on their way at once: while one's answer travels back, the next runs.
const BATCHES_AT_ONCE: usize = 2;

/// Reads sessions with their users, in batches.
#[derive(Clone)]
pub struct SessionChecks {
    db: Db,
    queues: Queues,
    /// Whether batches read on the thread that runs them (SQLite), one queue per thread.
    queue_per_thread: bool,
    /// Checks read by each query, for `GET /metrics`.
    batch_sizes: Histogram,
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
    session_id: String,
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
        Ok(Self {
            queue_per_thread: db.backend() == "sqlite",
            db,
            queues: Arc::default(),
            batch_sizes,
        })
    }

    /// The histogram of batch sizes, to register with the application's metrics.
    pub fn batch_size_metric(&self) -> Histogram {
        self.batch_sizes.clone()
    }

    /// The session with this id and its user, read now.
    pub async fn find_with_user(&self, session_id: String) -> Result<Found, Error> {
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
        let ids: Vec<String> = batch
            .iter()
            .map(|waiter| waiter.session_id.clone())
            .collect();
        let read = checks
            .db
            .read(move |conn| Ok(sessions::find_many_with_user(conn, &ids)?))
            .await;
        match read {
            Ok(rows) => {
                let by_id: HashMap<String, (Session, User)> = rows
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
