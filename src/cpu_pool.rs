//! Small, bounded pools of OS threads for CPU-heavy work (bcrypt, RSA signing).
//!
//! Why not `spawn_blocking`: tokio's blocking pool grows to hundreds of threads and queues
//! without limit, so a login flood would both thrash the cores and build an unbounded
//! backlog. Here the thread count is fixed and the queue has a bound.
//!
//! The queue is fair between callers: each job comes in a [`Lane`] (a client, for bcrypt),
//! threads take jobs from the lanes in turn, and when the queue is full the newest job of
//! the longest lane is shed ([`PoolError::Overloaded`]) to admit a job of a shorter one. So
//! one flooding client waits behind itself, not in front of everybody else. Jobs whose
//! caller has gone away (a disconnected client, a timed-out request) are skipped, not run.
//! A [`Reservation`] sets a place aside before work that must not be followed by a refusal
//! (a committed token rotation must be answered with its successor).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

/// What a queued job is told when a thread gets to it, or when it is shed.
enum Turn {
    Run,
    Shed,
}

type Job = Box<dyn FnOnce(Turn) + Send + 'static>;

/// Whose job it is, for fairness. Jobs of one lane run in order; lanes take turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lane(pub u64);

/// How the pool's threads compete for the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Normal,
    /// A bounded share: `nice` 10, so that under contention these threads get about a
    /// tenth of what normal ones get, and all of an otherwise idle CPU. For bcrypt: a login
    /// flood barely slows refreshes, the JWKS or the database on the same machine, and a
    /// flood of those does not stop logins (as `SCHED_IDLE` did).
    Low,
}

/// The niceness of [`Priority::Low`] threads.
pub const LOW_NICENESS: i32 = 10;

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

struct Queued {
    job: Job,
    /// Placed through a reservation: never shed.
    reserved: bool,
    /// The caller stopped waiting (disconnected, timed out): the first to go when full.
    abandoned: Arc<AtomicBool>,
}

#[derive(Default)]
struct Queue {
    lanes: HashMap<Lane, VecDeque<Queued>>,
    /// Lanes with jobs, in the order they get their next turn.
    turns: VecDeque<Lane>,
    queued: usize,
    /// Places set aside by reservations not yet used.
    reserved: usize,
    /// Threads waiting for a job: only then does a new job need a wake-up call (a
    /// system call each), so threads kept busy by a queue are never signalled.
    idle: usize,
    closed: bool,
}

impl Queue {
    fn push(&mut self, lane: Lane, queued: Queued) {
        let jobs = self.lanes.entry(lane).or_default();
        if jobs.is_empty() {
            self.turns.push_back(lane);
        }
        jobs.push_back(queued);
        self.queued += 1;
    }

    /// The next job: the first of the lane whose turn it is.
    fn pop(&mut self) -> Option<Job> {
        let lane = self.turns.pop_front()?;
        let jobs = self.lanes.get_mut(&lane)?;
        let next = jobs.pop_front()?;
        if jobs.is_empty() {
            self.lanes.remove(&lane);
        } else {
            self.turns.push_back(lane);
        }
        self.queued -= 1;
        Some(next.job)
    }

    /// Removes the jobs whose callers have stopped waiting; returns them.
    fn drop_abandoned(&mut self) -> Vec<Job> {
        let mut gone = Vec::new();
        for jobs in self.lanes.values_mut() {
            let mut i = 0;
            while i < jobs.len() {
                if jobs[i].abandoned.load(Ordering::Acquire) {
                    if let Some(q) = jobs.remove(i) {
                        gone.push(q.job);
                    }
                } else {
                    i += 1;
                }
            }
        }
        self.lanes.retain(|_, jobs| !jobs.is_empty());
        let lanes = &self.lanes;
        self.turns.retain(|lane| lanes.contains_key(lane));
        self.queued -= gone.len();
        gone
    }

    /// Takes the newest unreserved job of the longest lane, if that lane is longer than
    /// `than` (the length the newcomer's lane would have).
    fn shed_for(&mut self, than: usize) -> Option<Job> {
        let (lane, jobs) = self
            .lanes
            .iter_mut()
            .filter(|(_, jobs)| jobs.len() > than)
            .max_by_key(|(_, jobs)| jobs.len())?;
        let lane = *lane;
        let at = jobs.iter().rposition(|q| !q.reserved)?;
        let shed = jobs.remove(at)?;
        if jobs.is_empty() {
            self.lanes.remove(&lane);
            self.turns.retain(|l| *l != lane);
        }
        self.queued -= 1;
        Some(shed.job)
    }
}

struct Shared {
    /// A std Mutex and Condvar: worker threads block on them; async callers only hold the
    /// lock for a push.
    queue: Mutex<Queue>,
    available: Condvar,
    capacity: usize,
}

pub struct CpuPool {
    shared: Arc<Shared>,
    /// Jobs accepted but not yet picked up by a thread (a gauge for `/metrics`).
    waiting: Arc<AtomicUsize>,
}

/// A place in the queue set aside; [`Reservation::run`] uses it, dropping it gives it back.
pub struct Reservation {
    pool: Arc<Shared>,
    waiting: Arc<AtomicUsize>,
    lane: Lane,
    used: bool,
}

impl CpuPool {
    /// Starts `threads` workers named `name`, with room for `queue` waiting jobs.
    pub fn new(name: &str, threads: usize, queue: usize) -> CpuPool {
        CpuPool::with_priority(name, threads, queue, Priority::Normal)
    }

    /// Like [`CpuPool::new`], with the threads' scheduling priority set.
    pub fn with_priority(name: &str, threads: usize, queue: usize, priority: Priority) -> CpuPool {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            available: Condvar::new(),
            capacity: queue.max(1),
        });
        let waiting = Arc::new(AtomicUsize::new(0));
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            let waiting = Arc::clone(&waiting);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    if priority == Priority::Low {
                        lower_priority();
                    }
                    while let Some(job) = next_job(&shared) {
                        waiting.fetch_sub(1, Ordering::Relaxed);
                        job(Turn::Run);
                    }
                })
                .expect("spawning a pool thread at start-up");
        }
        CpuPool { shared, waiting }
    }

    /// Runs `work` on a pool thread, in `lane`, and waits for its result without blocking
    /// the caller's async worker. Refused (or shed later) when the queue is full.
    pub async fn run<F, R>(&self, lane: Lane, work: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (job, result) = job(work);
        let abandoned = Arc::new(AtomicBool::new(false));
        let wake = {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.queued + queue.reserved >= self.shared.capacity {
                for gone in queue.drop_abandoned() {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    gone(Turn::Shed);
                }
            }
            if queue.queued + queue.reserved >= self.shared.capacity {
                let length = queue.lanes.get(&lane).map_or(0, VecDeque::len);
                match queue.shed_for(length + 1) {
                    Some(shed) => {
                        self.waiting.fetch_sub(1, Ordering::Relaxed);
                        shed(Turn::Shed);
                    }
                    None => return Err(PoolError::Overloaded),
                }
            }
            let queued = Queued {
                job,
                reserved: false,
                abandoned: Arc::clone(&abandoned),
            };
            queue.push(lane, queued);
            self.waiting.fetch_add(1, Ordering::Relaxed);
            queue.idle > 0
        };
        if wake {
            self.shared.available.notify_one();
        }
        // Raised if this future is dropped before the result is in.
        let watch = Abandon(abandoned);
        let result = result.await;
        std::mem::forget(watch);
        result
    }

    /// Sets a place aside, so that work run with it later is never refused nor shed.
    pub fn reserve(&self, lane: Lane) -> Result<Reservation, PoolError> {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.queued + queue.reserved >= self.shared.capacity {
            return Err(PoolError::Overloaded);
        }
        queue.reserved += 1;
        Ok(Reservation {
            pool: Arc::clone(&self.shared),
            waiting: Arc::clone(&self.waiting),
            lane,
            used: false,
        })
    }

    /// How many jobs are waiting for a thread.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

impl Reservation {
    /// Runs `work` in the place set aside. Fails only if the work panics.
    pub async fn run<F, R>(mut self, work: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (job, result) = job(work);
        let wake = {
            let mut queue = self.pool.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.reserved -= 1;
            let queued = Queued {
                job,
                reserved: true,
                abandoned: Arc::new(AtomicBool::new(false)),
            };
            queue.push(self.lane, queued);
            self.waiting.fetch_add(1, Ordering::Relaxed);
            queue.idle > 0
        };
        self.used = true;
        if wake {
            self.pool.available.notify_one();
        }
        result.await
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.used {
            let mut queue = self.pool.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.reserved -= 1;
        }
    }
}

impl Drop for CpuPool {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.closed = true;
        drop(queue);
        self.shared.available.notify_all();
    }
}

/// Marks a job abandoned when the future waiting for it is dropped.
struct Abandon(Arc<AtomicBool>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Waits for the next job; `None` once the pool is dropped and its queue is empty.
fn next_job(shared: &Shared) -> Option<Job> {
    let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(job) = queue.pop() {
            return Some(job);
        }
        if queue.closed {
            return None;
        }
        // Counted under the lock a job is pushed under: a job pushed after this thread
        // found the queue empty sees it waiting, and signals.
        queue.idle += 1;
        queue = shared
            .available
            .wait(queue)
            .unwrap_or_else(|e| e.into_inner());
        queue.idle -= 1;
    }
}

/// `work` as a job, and the future of its result. A job whose caller is gone by the time
/// a thread gets to it is skipped.
fn job<F, R>(work: F) -> (Job, impl std::future::Future<Output = Result<R, PoolError>>)
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = oneshot::channel::<Result<R, PoolError>>();
    let job: Job = Box::new(move |turn| match turn {
        Turn::Shed => {
            let _ = tx.send(Err(PoolError::Overloaded));
        }
        Turn::Run if tx.is_closed() => {}
        Turn::Run => {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = tx.send(result.map_err(|_| PoolError::Panicked));
        }
    });
    let result = async move { rx.await.unwrap_or(Err(PoolError::Panicked)) };
    (job, result)
}

/// Gives the calling thread [`Priority::Low`]. Failing to is not fatal: the pool still
/// works, only without the isolation.
fn lower_priority() {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    // thread-priority maps 0..=99 onto niceness 19..=-20; 22 is niceness 10.
    let Ok(value) = ThreadPriorityValue::try_from(22u8) else {
        return;
    };
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    let priority = ThreadPriority::Crossplatform(value);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), priority, policy) {
        tracing::warn!(error = ?e, "cannot lower the priority of a CPU pool thread");
    }
}

#[cfg(test)]
mod tests;
