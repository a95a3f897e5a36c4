//! A small, bounded pool of OS threads for CPU-heavy work (bcrypt, RSA signing).
//!
//! Why not `spawn_blocking`: tokio's blocking pool grows to hundreds of threads and queues
//! without limit, so a login flood would both thrash the cores and build an unbounded
//! backlog. Here the thread count is fixed and the queue has a bound; past it, work is
//! refused at once ([`PoolError::Overloaded`]) and the caller sheds the request with a 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How the pool's threads compete for the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Normal,
    /// Linux's `SCHED_IDLE`: the threads run only when nothing else wants the CPU. For
    /// bcrypt, so a login flood cannot slow down refreshes, the JWKS, or the database and
    /// Redis servers on the same machine.
    Low,
}

/// Why pooled work produced no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full; try again later.
    #[error("the CPU pool is full")]
    Overloaded,
    /// The job panicked; the worker thread survives.
    #[error("a CPU pool job panicked")]
    Panicked,
}

pub struct CpuPool {
    sender: SyncSender<Job>,
    /// Jobs accepted but not yet picked up by a thread.
    queued: Arc<AtomicUsize>,
}

impl CpuPool {
    /// Starts `threads` workers named `name`, with room for `queue` waiting jobs.
    pub fn new(name: &str, threads: usize, queue: usize) -> CpuPool {
        CpuPool::with_priority(name, threads, queue, Priority::Normal)
    }

    /// Like [`CpuPool::new`], with the threads' scheduling priority set.
    pub fn with_priority(name: &str, threads: usize, queue: usize, priority: Priority) -> CpuPool {
        let (sender, receiver) = mpsc::sync_channel::<Job>(queue);
        // A std Mutex: only worker threads lock it, and only to take the next job.
        let receiver = Arc::new(Mutex::new(receiver));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let queued = Arc::clone(&queued);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    if priority == Priority::Low {
                        lower_priority();
                    }
                    loop {
                        let job = match receiver.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        // The pool was dropped: every sender is gone, so the thread ends.
                        let Ok(job) = job else { return };
                        queued.fetch_sub(1, Ordering::Relaxed);
                        job();
                    }
                })
                .expect("spawning a pool thread at start-up");
        }
        CpuPool { sender, queued }
    }

    /// Runs `work` on a pool thread and waits for its result without blocking the caller's
    /// async worker.
    pub async fn run<F, R>(&self, work: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            // The caller may have gone away (client disconnected): nothing to do then.
            let _ = tx.send(result);
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(PoolError::Overloaded);
            }
        }
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) | Err(_) => Err(PoolError::Panicked),
        }
    }

    /// How many jobs are waiting for a thread (a gauge for `/metrics`).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Gives the calling thread the lowest normal scheduling priority. Failing to is not
/// fatal: the pool still works, only without the isolation.
fn lower_priority() {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::ThreadPriority;
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
    {
        tracing::warn!(error = ?e, "cannot lower the priority of a CPU pool thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[tokio::test]
    async fn runs_work_and_returns_its_result() {
        let pool = CpuPool::new("t", 2, 4);
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
    }

    #[tokio::test]
    async fn refuses_work_past_the_queue_bound() {
        let pool = Arc::new(CpuPool::new("t", 1, 1));
        // Hold the only thread until the test releases it.
        let gate = Arc::new(Barrier::new(2));
        let g = Arc::clone(&gate);
        let p = Arc::clone(&pool);
        let busy = tokio::spawn(async move { p.run(move || g.wait()).await });
        // Wait until the thread has taken the first job.
        while pool.queued() != 0 || busy.is_finished() {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let p = Arc::clone(&pool);
        let waiting = tokio::spawn(async move { p.run(|| 1).await });
        while pool.queued() != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 2).await, Err(PoolError::Overloaded));
        gate.wait();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(waiting.await.unwrap(), Ok(1));
    }

    /// The scheduling policy of the calling thread (field 41 of /proc/thread-self/stat).
    fn policy_of_this_thread() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name, which is in parentheses and may contain spaces.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(38).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn low_priority_pools_run_at_idle_scheduling_priority() {
        const SCHED_OTHER: u32 = 0;
        const SCHED_IDLE: u32 = 5;
        let low = CpuPool::with_priority("t", 1, 4, Priority::Low);
        assert_eq!(low.run(policy_of_this_thread).await, Ok(SCHED_IDLE));
        let normal = CpuPool::new("t", 1, 4);
        assert_eq!(normal.run(policy_of_this_thread).await, Ok(SCHED_OTHER));
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_thread_survives() {
        let pool = CpuPool::new("t", 1, 4);
        assert_eq!(
            pool.run(|| panic!("boom")).await,
            Err::<(), _>(PoolError::Panicked)
        );
        assert_eq!(pool.run(|| 5).await, Ok(5));
    }
}
