//! The machine's own limits, measured in the same run: what authd's scenarios are compared
//! with, so a result means the same on a laptop and on a server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde::Serialize;

use crate::load::{Conn, Samples, Stats};
use crate::target::{trivial_server, workspace_root, PASSWORD};

#[derive(Debug, Clone, Serialize)]
pub struct Ceilings {
    /// bcrypt verifications per second at the run's cost, on every core.
    pub bcrypt_per_sec: f64,
    /// RS256 access tokens signed per second (ring, 2048-bit key), on every core.
    pub rs256_per_sec: f64,
    /// The generator against a server that answers every request with a fixed body.
    pub trivial_server_rps: f64,
}

/// Runs `work` on `threads` OS threads for `duration`; returns operations per second.
fn on_all_cores(
    threads: usize,
    duration: Duration,
    work: impl Fn() + Send + Sync + 'static,
) -> f64 {
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (work, stop, count) = (work.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    work();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

pub async fn measure(
    cost: u32,
    cores: usize,
    cpu_time: Duration,
    connections: usize,
    load_time: Duration,
) -> Ceilings {
    let hash = bcrypt::hash(PASSWORD, cost).expect("bcrypt cost is valid");
    let bcrypt_per_sec = tokio::task::spawn_blocking(move || {
        on_all_cores(cores, cpu_time.max(Duration::from_millis(200)), move || {
            let _ = bcrypt::verify(PASSWORD, &hash);
        })
    })
    .await
    .expect("bcrypt ceiling");

    let key =
        authd::jwt::SigningKey::from_pem_file(&workspace_root().join("testdata/signing-key.pem"))
            .expect("test key");
    let signer = authd::jwt::Signer::new(Arc::new(key), "https://bench".into(), None, 1800);
    let user = authd::domain::UserId::random();
    let session = authd::domain::SessionId::random();
    let rs256_per_sec = tokio::task::spawn_blocking(move || {
        on_all_cores(cores, cpu_time, move || {
            let _ = signer.issue(user, session, 1_700_000_000);
        })
    })
    .await
    .expect("RS256 ceiling");

    // A body the size of a one-key JWKS, so the byte counts match.
    let addr = trivial_server(Bytes::from(vec![b'x'; 462]));
    let started = Instant::now();
    let deadline = started + load_time;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(async move {
                let mut conn = Conn::new(addr);
                let mut samples = Samples::default();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let status = conn
                        .send(Method::GET, "/", None)
                        .await
                        .map_or(0, |(s, _)| s);
                    samples.record(t, status);
                }
                samples
            })
        })
        .collect();
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    let trivial = Stats::from(all, started.elapsed());
    Ceilings {
        bcrypt_per_sec,
        rs256_per_sec,
        trivial_server_rps: trivial.rps,
    }
}
