//! The load generator: closed-loop HTTP/1.1 keep-alive connections, each sending its next
//! request when the previous answer is in, recording latency and status.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;

/// One HTTP/1.1 connection.
pub struct Conn {
    addr: SocketAddr,
    /// The loopback address to connect from (127.0.0.x plays another client).
    source: Option<IpAddr>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            source: None,
            sender: None,
        }
    }

    /// A connection from another loopback address: another client to authd.
    pub fn from_source(addr: SocketAddr, source: IpAddr) -> Conn {
        Conn {
            addr,
            source: Some(source),
            sender: None,
        }
    }

    async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        match self.source {
            None => tokio::net::TcpStream::connect(self.addr).await,
            Some(ip) => {
                let socket = match ip {
                    IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(self.addr).await
            }
        }
    }

    /// Sends a request, reconnecting if the connection was closed. Returns status and body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Bytes), String> {
        self.send_with(method, path, None, body).await
    }

    /// [`Conn::send`] with `Authorization: Bearer <bearer>` when given.
    pub async fn send_with(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
    ) -> Result<(u16, Bytes), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = self.connect().await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bench");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let result = async {
            let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = res.status().as_u16();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// What one connection saw.
#[derive(Default)]
pub struct Samples {
    pub latencies_us: Vec<u32>,
    pub statuses: BTreeMap<u16, u64>,
}

impl Samples {
    pub fn record(&mut self, started: Instant, status: u16) {
        self.latencies_us
            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        *self.statuses.entry(status).or_default() += 1;
    }

    pub fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
    }
}

/// A scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Responses other than 2xx, by status (0 = connection error).
    pub errors: BTreeMap<u16, u64>,
}

impl Stats {
    pub fn from(mut samples: Samples, elapsed: Duration) -> Stats {
        samples.latencies_us.sort_unstable();
        let n = samples.latencies_us.len();
        let pct = |p: f64| {
            if n == 0 {
                return 0.0;
            }
            let i = ((p / 100.0) * n as f64).ceil() as usize;
            f64::from(samples.latencies_us[i.clamp(1, n) - 1]) / 1000.0
        };
        let errors = samples
            .statuses
            .into_iter()
            .filter(|(s, _)| !(200..300).contains(s))
            .collect();
        Stats {
            requests: n as u64,
            seconds: elapsed.as_secs_f64(),
            rps: n as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: pct(100.0),
            errors,
        }
    }
}

/// Counts requests for the progress line.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
}

impl Progress {
    pub fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Prints a progress line to stderr every second, until aborted.
pub async fn report_progress(name: String, progress: Arc<Progress>, started: Instant) {
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let done = progress.done.load(Ordering::Relaxed);
        {
            eprintln!(
                "  [{name}] {:>4.0}s  {done:>8} requests  {:>8} req/s",
                started.elapsed().as_secs_f64(),
                done - last
            );
        }
        last = done;
    }
}
