//! A fixed set of long-lived threads for password hashing, behind a bounded queue.
//!
//! Not tokio's blocking pool: any of its (up to hundreds of) threads may run a hash, and
//! each keeps the Argon2 memory it freed in its own allocator arena. On a fixed set of
//! threads, memory stays at threads × Argon2 memory, queued jobs cost only a closure each,
//! and the threads run at a lower OS priority, so a login flood slows logins down, not
//! every other request.
//!
//! The queue is bounded: a caller takes a [`Ticket`] before it counts or writes anything,
//! and past the bound it is refused at once (`503`), instead of making every later login
//! wait behind thousands of hashes. A job whose caller has gone (the client hung up, the
//! request was dropped) is skipped when its turn comes.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

type Job = Box<dyn FnOnce() + Send>;

/// Niceness of the hashing threads: above the request workers' 0, so that they yield to them.
const NICENESS: i32 = 10;

pub struct HashPool {
    jobs: Sender<Job>,
    /// One permit per job the pool takes in: running on a thread or waiting for one.
    places: Arc<Semaphore>,
    metrics: QueueMetrics,
}

/// The queue's metrics, for `/metrics`.
#[derive(Clone)]
struct QueueMetrics {
    /// Jobs waiting for a thread.
    queued: IntGauge,
    /// Seconds each job waited for a thread.
    wait: Histogram,
    /// Callers refused because the queue was full.
    refused: IntCounter,
    /// Jobs skipped because their caller had gone.
    skipped: IntCounter,
}

/// A place in the pool, held from before a flow counts its attempt until its hash is done:
/// a flow refused for want of one has changed nothing.
pub struct Ticket {
    place: OwnedSemaphorePermit,
}

impl HashPool {
    /// `threads` hashing threads, and room for `queue_max` jobs waiting beyond those running.
    pub fn new(threads: usize, queue_max: usize) -> std::io::Result<Self> {
        return_large_blocks_to_the_os();
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("latchkey-hash-{index}"))
                .spawn(move || work_through(&queue))?;
        }
        let metrics = QueueMetrics::new().map_err(std::io::Error::other)?;
        Ok(Self {
            jobs,
            places: Arc::new(Semaphore::new(threads.saturating_add(queue_max))),
            metrics,
        })
    }

    /// The queue's metrics, to register with the application's.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        let QueueMetrics {
            queued,
            wait,
            refused,
            skipped,
        } = self.metrics.clone();
        vec![
            Box::new(queued),
            Box::new(wait),
            Box::new(refused),
            Box::new(skipped),
        ]
    }

    /// A place for one job, or `Unavailable` (`503` with `Retry-After`) when the queue is full.
    pub fn reserve(&self) -> Result<Ticket, Error> {
        match Arc::clone(&self.places).try_acquire_owned() {
            Ok(place) => Ok(Ticket { place }),
            Err(_) => {
                self.metrics.refused.inc();
                Err(Error::Unavailable(anyhow::anyhow!(
                    "the password hashing queue is full"
                )))
            }
        }
    }

    /// Runs `work` on a hashing thread once one is free, in the ticket's place. If this
    /// future is dropped before then, `work` never runs.
    pub async fn run<T: Send + 'static>(
        &self,
        ticket: Ticket,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let metrics = self.metrics.clone();
        let since = Instant::now();
        let job: Job = Box::new(move || {
            // The place is given back when the job ends, run, skipped or panicked; before its
            // answer is sent, so that a caller holding the answer finds the place free.
            let place = ticket.place;
            metrics.queued.dec();
            if done.is_closed() {
                metrics.skipped.inc();
                return;
            }
            metrics.wait.observe(since.elapsed().as_secs_f64());
            let answer = work();
            drop(place);
            let _ = done.send(answer);
        });
        self.metrics.queued.inc();
        self.jobs.send(job).map_err(|_| {
            self.metrics.queued.dec();
            Error::internal(anyhow::anyhow!("the hashing threads are gone"))
        })?;
        outcome
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("a hashing job panicked")))
    }
}

impl QueueMetrics {
    fn new() -> prometheus::Result<Self> {
        Ok(Self {
            queued: IntGauge::new(
                "latchkey_hash_queue_depth",
                "Password hashes and checks waiting for a hashing thread.",
            )?,
            wait: Histogram::with_opts(HistogramOpts::new(
                "latchkey_hash_wait_seconds",
                "Time a password hash or check waited for a hashing thread.",
            ))?,
            refused: IntCounter::new(
                "latchkey_hash_queue_refused_total",
                "Requests answered 503 because the password hashing queue was full \
                 (LATCHKEY_HASH_QUEUE_MAX).",
            )?,
            skipped: IntCounter::new(
                "latchkey_hash_skipped_total",
                "Password hashes and checks skipped because their request had gone.",
            )?,
        })
    }
}

/// A hashing thread's life: take jobs until the pool is dropped. A panicking job loses its
/// answer (its caller gets an internal error), not the thread.
fn work_through(queue: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let next = queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv();
        match next {
            Ok(job) => {
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// glibc serves a large allocation with its own mapping, unmapped when freed, until a free
/// raises that threshold to the freed size: from then on each Argon2 block comes from
/// whichever allocator arena the thread got and stays there when freed, and arenas pile up
/// several. Pinning the threshold keeps every large block a mapping of its own, returned to
/// the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks_to_the_os() {
    const THRESHOLD: libc::c_int = 1024 * 1024;
    // SAFETY: mallopt only sets an allocator tunable; any value is valid for M_MMAP_THRESHOLD
    // up to its maximum (32 MiB on 64-bit).
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_blocks_to_the_os() {}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments. On Linux, PRIO_PROCESS with
    // who = 0 applies to the calling thread alone.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICENESS) };
    if result != 0 {
        tracing::debug!("could not lower the hashing threads' priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn runs_jobs_and_survives_a_panicking_one() {
        let pool = HashPool::new(1, 4).unwrap();
        let ticket = || pool.reserve().unwrap();
        assert_eq!(pool.run(ticket(), || 6 * 7).await.unwrap(), 42);
        let panicking = pool.run(ticket(), || -> u8 { panic!("boom") });
        assert!(panicking.await.is_err());
        assert_eq!(
            pool.run(ticket(), || "still here").await.unwrap(),
            "still here"
        );
    }

    #[actix_web::test]
    async fn refuses_past_its_bound_and_frees_places_as_jobs_end() {
        let pool = HashPool::new(1, 1).unwrap();
        let first = pool.reserve().unwrap();
        let second = pool.reserve().unwrap();
        assert!(matches!(pool.reserve(), Err(Error::Unavailable(_))));
        assert_eq!(pool.metrics.refused.get(), 1);
        drop(first);
        assert_eq!(pool.run(second, || "ran").await.unwrap(), "ran");
        // Both places are free again: the dropped ticket's and the finished job's.
        let _two = (pool.reserve().unwrap(), pool.reserve().unwrap());
    }

    #[actix_web::test]
    async fn skips_a_job_whose_caller_has_gone() {
        let pool = Arc::new(HashPool::new(1, 4).unwrap());
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        // Holds the only thread until released.
        let holding = actix_web::rt::spawn({
            let (pool, ticket) = (Arc::clone(&pool), pool.reserve().unwrap());
            let hold = move || {
                let _ = started.send(());
                blocked.recv().is_ok()
            };
            async move { pool.run(ticket, hold).await }
        });
        running.await.unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ran_in_job = Arc::clone(&ran);
        let abandoned = pool.run(pool.reserve().unwrap(), move || {
            ran_in_job.store(true, std::sync::atomic::Ordering::SeqCst)
        });
        // Queued, then given up, as a request's future is when its client hangs up.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), abandoned)
                .await
                .is_err()
        );
        release.send(()).unwrap();
        assert!(holding.await.unwrap().unwrap());
        // The next job runs after the abandoned one's turn.
        assert_eq!(pool.run(pool.reserve().unwrap(), || 1).await.unwrap(), 1);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(pool.metrics.skipped.get(), 1);
    }
}
