//! Connections (SPEC §8): nobody can hold authd's connections so that a newcomer waits —
//! not with many cheap keep-alive connections, not by exhausting the open-file limit —
//! and no single peer gets more than its share.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{spawn_app_with, AuthdProcess, Backend, Client, Storage};

/// A keep-alive connection that asks for `/healthz` every `every`, until dropped.
fn pinger(client: Client, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conn = client.connection().await;
        loop {
            if conn
                .request(Method::GET, "/healthz", &[], None)
                .await
                .is_none()
            {
                // Evicted: a real client would reconnect; this one comes back too.
                conn = client.connection().await;
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// How long a fresh client waits for `/healthz`.
async fn newcomer_wait(client: &Client) -> Duration {
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(10), client.get("/healthz"))
        .await
        .expect("the newcomer was not served within 10 s");
    assert_eq!(res.status, StatusCode::OK);
    started.elapsed()
}

#[tokio::test]
async fn keep_alive_pings_cannot_lock_a_newcomer_out() {
    // The reported lock-out: 64 connections that each ping every few seconds held every
    // slot, and a newcomer's request timed out.
    let app = spawn_app_with(Backend::Memory, &[("AUTH_MAX_CONNECTIONS", "64")]).await;
    let pingers: Vec<_> = (0..64)
        .map(|i| {
            pinger(
                app.as_client_at(&format!("127.0.1.{}", i % 8 + 1)),
                Duration::from_millis(500),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    for n in 0..5 {
        let wait = newcomer_wait(&app.as_client_at(&format!("127.0.2.{}", n + 1))).await;
        assert!(wait < Duration::from_secs(1), "a newcomer waited {wait:?}");
    }
    for p in pingers {
        p.abort();
    }
}

#[tokio::test]
async fn one_peer_gets_its_share_of_connections_and_no_more() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_MAX_CONNECTIONS_PER_CLIENT", "4")]).await;
    let greedy = app.as_client_at("127.0.3.1");
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = greedy.connection().await;
        assert!(conn
            .request(Method::GET, "/healthz", &[], None)
            .await
            .is_some());
        held.push(conn);
    }
    let mut fifth = greedy.connection().await;
    assert!(
        fifth
            .request(Method::GET, "/healthz", &[], None)
            .await
            .is_none(),
        "a fifth connection from one peer is closed at once"
    );
    assert!(newcomer_wait(&app.as_client_at("127.0.3.2")).await < Duration::from_secs(1));
    // A closed connection gives its place back.
    held.pop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = greedy.connection().await;
    assert!(again
        .request(Method::GET, "/healthz", &[], None)
        .await
        .is_some());
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_IDLE_TIMEOUT", "1s")]).await;
    let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    raw.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the idle connection was not closed");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed after {elapsed:?}"
    );
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn request_headers_over_16_kib_are_431() {
    let app = spawn_app_with(Backend::Memory, &[]).await;
    let big = "x".repeat(17 * 1024);
    let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    raw.write_all(format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:.200}");
    // Headers under the limit are fine.
    let res = app
        .request(
            Method::GET,
            "/healthz",
            &[("x-fine", &"y".repeat(8 * 1024))],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
}

/// The other lock-out: under a soft open-file limit of 1024 (a common service-manager
/// default), about 1,100 idle connections made `accept` fail and newcomers time out.
/// authd raises its soft limit to the hard one at start-up.
#[tokio::test]
async fn a_low_soft_open_file_limit_does_not_lock_a_newcomer_out() {
    let (soft, hard) = open_file_limits();
    if hard < 4096 || soft < 1400 {
        panic!("this test needs a hard open-file limit of at least 4096 and a soft one of 1400 for the test process (soft {soft}, hard {hard})");
    }
    let storage = Storage::memory();
    let authd = AuthdProcess::start_with_soft_nofile(&storage, &[], 1024).await;
    let client = authd.client();
    let mut idle = Vec::new();
    for i in 0..1200 {
        let source = format!("127.0.4.{}", i % 200 + 1);
        let stream = crate::support::connect(client.addr, Some(source.parse().unwrap())).await;
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wait = newcomer_wait(&client.as_client_at("127.0.5.1")).await;
    assert!(wait < Duration::from_secs(1), "a newcomer waited {wait:?}");
    // The soft limit was raised to the hard one, and said so.
    let output = authd.output();
    assert!(
        output.contains(&format!("open_file_limit={hard}")),
        "{output}"
    );
    drop(idle);
}

fn open_file_limits() -> (u64, u64) {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -Sn; ulimit -Hn"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap_or(u64::MAX));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

#[tokio::test]
async fn metrics_move_to_the_admin_listener() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_ADMIN_LISTEN", "127.0.0.1:0")]).await;
    let admin = app.admin.expect("an admin listener");
    assert_eq!(app.get("/metrics").await.status, StatusCode::NOT_FOUND);
    let metrics = admin.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&metrics.body).contains("authd_http_requests_total"));
    assert_eq!(
        admin.get("/.well-known/jwks.json").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/.well-known/jwks.json").await.status,
        StatusCode::OK
    );
    assert_eq!(admin.get("/readyz").await.status, StatusCode::OK);
}

/// Connections that trickle a request body hold their requests open: at the cap they are
/// the ones cut off (at once), and a newcomer is served.
#[tokio::test]
async fn bodies_trickled_in_cannot_lock_a_newcomer_out() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_MAX_CONNECTIONS", "32")]).await;
    let mut trickling = Vec::new();
    for i in 0..32 {
        let source = format!("127.0.9.{}", i % 4 + 1);
        let mut raw = crate::support::connect(app.addr, Some(source.parse().unwrap())).await;
        raw.write_all(
            b"POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
        trickling.push(raw);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // More newcomers than connections may wait to close: evicting gracefully — after the
    // trickled request — would soon leave no room at all.
    for n in 0..25 {
        let wait = newcomer_wait(&app.as_client_at(&format!("127.0.9.{}", 50 + n))).await;
        assert!(wait < Duration::from_secs(1), "a newcomer waited {wait:?}");
    }
    drop(trickling);
}
