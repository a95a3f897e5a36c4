//! Attacks (SPEC §8), each measured in the same run against what a legitimate client sees:
//!
//! - **slot hold**: 4,096 keep-alive connections from 64 addresses, each pinging `/healthz`
//!   once a second, hold every connection slot; a newcomer asks for the JWKS on a fresh
//!   connection. Target: its p99 ≤ 3× its idle p99, no errors.
//! - **forgot flood**: 10,000 `/password/forgot` for addresses without an account, from 100
//!   client addresses; then a registration. Target: its email at the SMTP server ≤ 5 s.
//! - **login flood**: random-email logins from 32 addresses saturate bcrypt (the per-client
//!   limit raised); a legitimate client logs in once a second. Target: all succeed, p99
//!   ≤ 2 s (at cost 10).
//! - **refresh flood**: refreshes at saturation instead; the same legitimate logins and
//!   target.
//!
//! Every client address is a loopback one (127.x.y.z): authd sees many clients, and the
//! load never leaves the machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authd_testkit::{SmtpSink, Storage};
use hyper::Method;

use crate::load::{Conn, Samples, Stats};
use crate::report::{delay_row, p99_row, ratio_row, Row};
use crate::scenarios::{chains, refresh_step, run_load, run_load_on};
use crate::target::{Authd, PASSWORD};
use crate::Options;

/// `127.<a>.<b>.<c>`, the `n`-th client address of a family.
fn client(family: u8, n: usize) -> IpAddr {
    let n = u16::try_from(n % 60_000).unwrap_or(0);
    IpAddr::V4(Ipv4Addr::new(
        127,
        family,
        (n / 250) as u8,
        (n % 250) as u8 + 1,
    ))
}

/// authd for one attack: the run's environment and `extra`.
async fn start(
    o: &Options,
    binary: &Path,
    storage: &Storage,
    extra: &[(&str, String)],
) -> Result<Authd, String> {
    let mut env = o.env.clone();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Authd::start(binary, storage, o.cost, &env).await
}

/// A fresh connection for every request, asking for the JWKS every 5 ms.
async fn newcomer_probe(addr: SocketAddr, duration: Duration) -> Stats {
    let started = Instant::now();
    let mut samples = Samples::default();
    let mut n = 0;
    while started.elapsed() < duration {
        let mut conn = Conn::from_source(addr, client(90, n));
        n += 1;
        let t = Instant::now();
        let status = match tokio::time::timeout(
            Duration::from_secs(5),
            conn.send(Method::GET, "/.well-known/jwks.json", None),
        )
        .await
        {
            Ok(Ok((status, _))) => status,
            _ => 0,
        };
        samples.record(t, status);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Stats::from(samples, started.elapsed())
}

pub async fn slot_hold(o: &Options, binary: &Path, storage: &Storage) -> Result<Vec<Row>, String> {
    let (holders, addresses) = if o.smoke { (128, 8) } else { (4096, 64) };
    let authd = start(
        o,
        binary,
        storage,
        &[("AUTH_MAX_CONNECTIONS", holders.to_string())],
    )
    .await?;
    let addr = authd.addr;
    let idle = newcomer_probe(addr, o.duration).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pingers: Vec<_> = (0..holders)
        .map(|i| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut conn = Conn::from_source(addr, client(80, i % addresses));
                // Spread the pings over the second.
                tokio::time::sleep(Duration::from_millis((i % 1000) as u64)).await;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = conn.send(Method::GET, "/healthz", None).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        })
        .collect();
    // Let every holder connect and send its first ping.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let busy = newcomer_probe(addr, o.duration).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in pingers {
        p.abort();
    }
    authd.stop().await;
    let mut row = ratio_row("slot hold: newcomer jwks", busy, &idle);
    row.met = row.met.map(|met| met && row.stats.errors.is_empty());
    row.target = Some("p99 <= 3x idle, 0 errors".into());
    Ok(vec![row])
}

pub async fn forgot_flood(
    o: &Options,
    binary: &Path,
    storage: &Storage,
) -> Result<Vec<Row>, String> {
    let (requests, addresses) = if o.smoke { (500, 10) } else { (10_000, 100) };
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(false))
        .await
        .map_err(|e| e.to_string())?;
    // The per-client limit at its default: it is part of the defence.
    let env = [("SMTP_URL", sink.url()), ("AUTH_CLIENT_MAX", "60".into())];
    let authd = start(o, binary, storage, &env).await?;
    let addr = authd.addr;
    let started = Instant::now();
    let per_address = requests / addresses;
    let floods: Vec<_> = (0..addresses)
        .map(|a| {
            tokio::spawn(async move {
                let mut conn = Conn::from_source(addr, client(70, a));
                let mut samples = Samples::default();
                for n in 0..per_address {
                    let body = format!(r#"{{"email":"nobody-{a}-{n}@example.com"}}"#);
                    let t = Instant::now();
                    let status = conn
                        .send(Method::POST, "/password/forgot", Some(body))
                        .await
                        .map_or(0, |(s, _)| s);
                    samples.record(t, status);
                }
                samples
            })
        })
        .collect();
    let mut all = Samples::default();
    for flood in floods {
        all.merge(flood.await.map_err(|e| e.to_string())?);
    }
    let flood = Stats::from(all, started.elapsed());
    // A real registration right after the burst, and the time until its email is at the
    // SMTP server.
    let email = format!("real-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = serde_json::json!({"email": email, "password": PASSWORD}).to_string();
    let registered = Instant::now();
    let mut conn = Conn::from_source(addr, client(71, 0));
    match conn.send(Method::POST, "/register", Some(body)).await {
        Ok((201, _)) => {}
        other => return Err(format!("register after the flood: {other:?}")),
    }
    let delay = loop {
        if sink.recipients().contains(&email) {
            break registered.elapsed();
        }
        if registered.elapsed() > Duration::from_secs(60) {
            break registered.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    authd.stop().await;
    Ok(vec![delay_row(
        "forgot flood: real email",
        flood,
        delay.as_secs_f64(),
        5.0,
    )])
}

/// One login a second with the right password, from an address of its own.
async fn legitimate_logins(addr: SocketAddr, email: String, duration: Duration) -> Stats {
    let started = Instant::now();
    let mut samples = Samples::default();
    let body = serde_json::json!({"email": email, "password": PASSWORD}).to_string();
    let mut conn = Conn::from_source(addr, client(60, 0));
    while started.elapsed() < duration {
        let t = Instant::now();
        let status = conn
            .send(Method::POST, "/login", Some(body.clone()))
            .await
            .map_or(0, |(s, _)| s);
        samples.record(t, status);
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(t.elapsed())).await;
    }
    Stats::from(samples, started.elapsed())
}

pub async fn login_flood(
    o: &Options,
    binary: &Path,
    storage: &Storage,
) -> Result<Vec<Row>, String> {
    let authd = start(o, binary, storage, &[("AUTH_CLIENT_MAX", "0".into())]).await?;
    let users = authd.seed(1).await?;
    let addr = authd.addr;
    // Each flooding connection is a client address of its own.
    let loads = (0..o.connections)
        .map(|i| (Conn::from_source(addr, client(50, i)), ()))
        .collect();
    let flood = tokio::spawn({
        let o = o.clone();
        async move {
            run_load_on("login flood", &o, loads, |mut conn: Conn, ()| async move {
                let body = serde_json::json!({
                    "email": format!("random-{}@example.com", uuid::Uuid::new_v4().simple()),
                    "password": PASSWORD,
                })
                .to_string();
                let status = conn
                    .send(Method::POST, "/login", Some(body))
                    .await
                    .map_or(0, |(s, _)| s);
                (conn, (), status)
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let legit = legitimate_logins(addr, users[0].clone(), o.duration).await;
    let _ = flood.await;
    authd.stop().await;
    Ok(vec![p99_row("login flood: legit logins", legit, 2000.0)])
}

pub async fn refresh_flood(
    o: &Options,
    binary: &Path,
    storage: &Storage,
) -> Result<Vec<Row>, String> {
    let authd = start(o, binary, storage, &[("AUTH_CLIENT_MAX", "0".into())]).await?;
    let users = authd.seed(o.users.min(8) + 1).await?;
    let addr = authd.addr;
    let states = chains(addr, &users[1..], o.connections).await?;
    let flood = tokio::spawn({
        let o = o.clone();
        async move { run_load("refresh flood", &o, addr, states, refresh_step).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let legit = legitimate_logins(addr, users[0].clone(), o.duration).await;
    let _ = flood.await;
    authd.stop().await;
    Ok(vec![p99_row("refresh flood: legit logins", legit, 2000.0)])
}
