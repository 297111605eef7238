//! A fixed set of long-lived threads for password hashing.
//!
//! Not tokio's blocking pool: any of its (up to hundreds of) threads may run a hash, and
//! each keeps the Argon2 memory it freed in its own allocator arena. On a fixed set of
//! threads, memory stays at threads × Argon2 memory, queued jobs cost only a closure each,
//! and the threads run at a lower OS priority, so a login flood slows logins down, not
//! every other request.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntGauge};

use crate::error::Error;

type Job = Box<dyn FnOnce() + Send>;

/// Niceness of the hashing threads: above the request workers' 0, so that they yield to them.
const NICENESS: i32 = 10;

pub struct HashPool {
    jobs: Sender<Job>,
    /// Jobs waiting for a thread, for `GET /metrics`.
    queued: IntGauge,
    /// Seconds each job waited for a thread, for `GET /metrics`.
    wait: Histogram,
}

impl HashPool {
    pub fn new(threads: usize) -> std::io::Result<Self> {
        return_large_blocks_to_the_os();
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("latchkey-hash-{index}"))
                .spawn(move || work_through(&queue))?;
        }
        let queued = IntGauge::new(
            "latchkey_hash_queue_depth",
            "Password hashes and checks waiting for a hashing thread.",
        )
        .map_err(std::io::Error::other)?;
        let wait = Histogram::with_opts(HistogramOpts::new(
            "latchkey_hash_wait_seconds",
            "Time a password hash or check waited for a hashing thread.",
        ))
        .map_err(std::io::Error::other)?;
        Ok(Self { jobs, queued, wait })
    }

    /// The queue's gauge and wait histogram, to register with the application's metrics.
    pub fn metrics(&self) -> (IntGauge, Histogram) {
        (self.queued.clone(), self.wait.clone())
    }

    /// Runs `work` on a hashing thread once one is free.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let (queued, wait, since) = (self.queued.clone(), self.wait.clone(), Instant::now());
        let job: Job = Box::new(move || {
            queued.dec();
            wait.observe(since.elapsed().as_secs_f64());
            let _ = done.send(work());
        });
        self.queued.inc();
        self.jobs.send(job).map_err(|_| {
            self.queued.dec();
            Error::internal(anyhow::anyhow!("the hashing threads are gone"))
        })?;
        outcome
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("a hashing job panicked")))
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
        let pool = HashPool::new(1).unwrap();
        assert_eq!(pool.run(|| 6 * 7).await.unwrap(), 42);
        assert!(pool.run(|| -> u8 { panic!("boom") }).await.is_err());
        assert_eq!(pool.run(|| "still here").await.unwrap(), "still here");
    }
}
