use std::sync::atomic::AtomicBool;
use std::sync::Barrier;
use std::time::Duration;

use super::*;

const A: Lane = Lane(1);
const B: Lane = Lane(2);

/// Occupies the pool's only thread until the returned barrier is passed.
async fn hold_the_thread(pool: &Arc<CpuPool>) -> (Arc<Barrier>, tokio::task::JoinHandle<()>) {
    let gate = Arc::new(Barrier::new(2));
    let (g, p) = (Arc::clone(&gate), Arc::clone(pool));
    let busy = tokio::spawn(async move {
        let _ = p.run(Lane(99), move || g.wait()).await;
    });
    // Wait until the thread has taken the job.
    while pool.queued() != 0 || busy.is_finished() {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    (gate, busy)
}

/// Queues `work` in `lane` and waits until it is queued.
async fn queue<R: Send + 'static>(
    pool: &Arc<CpuPool>,
    lane: Lane,
    work: impl FnOnce() -> R + Send + 'static,
) -> tokio::task::JoinHandle<Result<R, PoolError>> {
    let before = pool.queued();
    let p = Arc::clone(pool);
    let task = tokio::spawn(async move { p.run(lane, work).await });
    while pool.queued() == before && !task.is_finished() {
        tokio::task::yield_now().await;
    }
    task
}

#[tokio::test]
async fn runs_work_and_returns_its_result() {
    let pool = CpuPool::new("t", 2, 4);
    assert_eq!(pool.run(A, || 6 * 7).await, Ok(42));
}

#[tokio::test]
async fn refuses_work_past_the_queue_bound() {
    let pool = Arc::new(CpuPool::new("t", 1, 1));
    let (gate, busy) = hold_the_thread(&pool).await;
    let waiting = queue(&pool, A, || 1).await;
    // Same lane, queue full: the newcomer is refused.
    assert_eq!(pool.run(A, || 2).await, Err(PoolError::Overloaded));
    gate.wait();
    busy.await.unwrap();
    assert_eq!(waiting.await.unwrap(), Ok(1));
}

#[tokio::test]
async fn lanes_take_turns() {
    let pool = Arc::new(CpuPool::new("t", 1, 16));
    let (gate, busy) = hold_the_thread(&pool).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (lane, name) in [(A, "a1"), (A, "a2"), (A, "a3"), (B, "b1")] {
        let order = Arc::clone(&order);
        tasks.push(queue(&pool, lane, move || order.lock().unwrap().push(name)).await);
    }
    gate.wait();
    busy.await.unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // b1 came last, but waits behind one job of A, not all of them.
    assert_eq!(*order.lock().unwrap(), ["a1", "b1", "a2", "a3"]);
}

#[tokio::test]
async fn a_full_queue_sheds_the_longest_lane_for_a_shorter_one() {
    let pool = Arc::new(CpuPool::new("t", 1, 3));
    let (gate, busy) = hold_the_thread(&pool).await;
    let flood: Vec<_> = [
        queue(&pool, A, || "a1").await,
        queue(&pool, A, || "a2").await,
        queue(&pool, A, || "a3").await,
    ]
    .into();
    let newcomer = {
        let p = Arc::clone(&pool);
        tokio::spawn(async move { p.run(B, || "b1").await })
    };
    while pool.queued() != 3 || !flood.last().unwrap().is_finished() {
        tokio::task::yield_now().await;
    }
    gate.wait();
    busy.await.unwrap();
    let results: Vec<_> = futures_results(flood).await;
    assert_eq!(
        results,
        [Ok("a1"), Ok("a2"), Err(PoolError::Overloaded)],
        "the flooding lane's newest job is shed"
    );
    assert_eq!(newcomer.await.unwrap(), Ok("b1"));
}

async fn futures_results<R>(
    tasks: Vec<tokio::task::JoinHandle<Result<R, PoolError>>>,
) -> Vec<Result<R, PoolError>> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn work_whose_caller_is_gone_is_skipped() {
    let pool = Arc::new(CpuPool::new("t", 1, 4));
    let (gate, busy) = hold_the_thread(&pool).await;
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    let abandoned = queue(&pool, A, move || r.store(true, Ordering::SeqCst)).await;
    abandoned.abort();
    let _ = abandoned.await;
    gate.wait();
    busy.await.unwrap();
    // A later job runs; the abandoned one before it did not.
    assert_eq!(pool.run(A, || 1).await, Ok(1));
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_reservation_is_never_refused_nor_shed() {
    let pool = Arc::new(CpuPool::new("t", 1, 2));
    let (gate, busy) = hold_the_thread(&pool).await;
    let reservation = pool.reserve(A).unwrap();
    let other = queue(&pool, B, || "b").await;
    // Full: one place reserved, one queued.
    assert!(matches!(pool.reserve(A), Err(PoolError::Overloaded)));
    assert_eq!(pool.run(Lane(7), || "c").await, Err(PoolError::Overloaded));
    let reserved = tokio::spawn(async move { reservation.run(|| "reserved").await });
    while pool.queued() != 2 {
        tokio::task::yield_now().await;
    }
    gate.wait();
    busy.await.unwrap();
    assert_eq!(reserved.await.unwrap(), Ok("reserved"));
    assert_eq!(other.await.unwrap(), Ok("b"));
    // An unused reservation gives its place back.
    drop(pool.reserve(A).unwrap());
    drop(pool.reserve(A).unwrap());
    assert!(pool.reserve(A).is_ok());
}

/// Field `n` (1-based, as in proc(5)) of /proc/thread-self/stat.
fn stat_field(n: usize) -> i64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(n - 3).unwrap().parse().unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn low_priority_pools_run_at_a_bounded_share() {
    const SCHED_OTHER: i64 = 0;
    let low = CpuPool::with_priority("t", 1, 4, Priority::Low);
    let read = || (stat_field(41), stat_field(19));
    assert_eq!(
        low.run(A, read).await,
        Ok((SCHED_OTHER, i64::from(LOW_NICENESS)))
    );
    let normal = CpuPool::new("t", 1, 4);
    assert_eq!(normal.run(A, read).await, Ok((SCHED_OTHER, 0)));
}

#[tokio::test]
async fn a_panicking_job_is_reported_and_the_thread_survives() {
    let pool = CpuPool::new("t", 1, 4);
    assert_eq!(
        pool.run(A, || panic!("boom")).await,
        Err::<(), _>(PoolError::Panicked)
    );
    assert_eq!(pool.run(A, || 5).await, Ok(5));
}

#[tokio::test]
async fn abandoned_work_gives_its_place_up_first() {
    let pool = Arc::new(CpuPool::new("t", 1, 1));
    let (gate, busy) = hold_the_thread(&pool).await;
    let abandoned = queue(&pool, A, || "gone").await;
    abandoned.abort();
    let _ = abandoned.await;
    // The queue is full of a job nobody waits for: a newcomer of the same lane is
    // admitted in its place instead of refused.
    let newcomer = {
        let p = Arc::clone(&pool);
        tokio::spawn(async move { p.run(A, || "kept").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.wait();
    busy.await.unwrap();
    assert_eq!(newcomer.await.unwrap(), Ok("kept"));
}

/// Threads are only signalled when one is waiting: jobs arriving in bursts, while threads
/// are busy, idle or just going idle, must all still be picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_arriving_while_threads_come_and_go_all_run() {
    let pool = Arc::new(CpuPool::new("t", 2, 4096));
    for round in 0..50u64 {
        let jobs: Vec<_> = (0..(round % 7) + 1)
            .map(|i| {
                let p = Arc::clone(&pool);
                let reservation = pool.reserve(A).unwrap();
                tokio::spawn(async move {
                    let spun = p.run(B, move || i * 2).await;
                    let reserved = reservation.run(move || i * 3).await;
                    (spun, reserved)
                })
            })
            .collect();
        for (i, job) in (0u64..).zip(jobs) {
            let outcome = tokio::time::timeout(Duration::from_secs(5), job)
                .await
                .expect("a job was never picked up")
                .unwrap();
            assert_eq!(outcome, (Ok(i * 2), Ok(i * 3)));
        }
        if round % 5 == 0 {
            // Let both threads go idle before the next burst.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
