//! Serving: the accept loops (public, and admin when configured), one hyper connection
//! per client with its idle timeout and eviction, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::connections::{Connections, Ticket};
use super::{housekeeping, App};
use crate::config::HttpConfig;
use crate::handlers::State;
use crate::http::body::{BodyReading, MAX_HEADER_BYTES};
use crate::router::{self, Listener};

/// How long a failed `accept` (typically: out of file descriptors) waits before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

impl App {
    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (bounded by `AUTH_SHUTDOWN_GRACE`) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let App {
            listener,
            admin,
            local_addr,
            state,
            worker,
            mail_wake,
            refresh_tokens,
            outbox,
            clock,
            http,
            connections,
            revocations,
            ..
        } = self;
        tracing::info!(address = %local_addr, "authd listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker_task = tokio::spawn(worker.run(mail_wake, stop_rx.clone()));
        tokio::spawn(housekeeping::run(
            refresh_tokens,
            outbox,
            clock,
            stop_rx.clone(),
        ));
        tokio::spawn(revocations.run(stop_rx.clone()));
        let http = Arc::new(http);
        let mut loops = vec![tokio::spawn(accept_loop(
            listener,
            Listener::Public,
            Arc::clone(&state),
            connections,
            Arc::clone(&http),
            stop_rx.clone(),
        ))];
        if let Some((listener, connections)) = admin {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "admin API and metrics listening");
            }
            loops.push(tokio::spawn(accept_loop(
                listener,
                Listener::Admin,
                state,
                connections,
                Arc::clone(&http),
                stop_rx,
            )));
        }
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
        for accept in loops {
            let _ = accept.await;
        }
        let _ = worker_task.await;
        tracing::info!("authd stopped");
    }
}

/// Accepts connections until `stop`, then lets the open ones finish (at most the grace).
async fn accept_loop(
    listener: TcpListener,
    kind: Listener,
    state: Arc<State>,
    connections: Arc<Connections>,
    http: Arc<HttpConfig>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let ticket = match connections.admit(peer.ip()) {
            Ok(ticket) => ticket,
            // Closed at once: the peer holds its share, or too much is still closing.
            Err(refused) => {
                tracing::debug!(?refused, "connection refused");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (state, http, stop) = (Arc::clone(&state), Arc::clone(&http), stop.clone());
        tokio::spawn(connection(stream, peer, kind, state, ticket, http, stop));
    }
    drop(listener);
    connections.close_all();
    let grace = http.shutdown_grace;
    if tokio::time::timeout(grace, connections.drained())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {grace:?}; closing them");
    }
}

/// Serves one connection until the client closes it, it has been idle for
/// `AUTH_IDLE_TIMEOUT`, it is asked to close (evicted, or authd is stopping), or it fails.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    state: Arc<State>,
    ticket: Ticket,
    http: Arc<HttpConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::clone(&ticket.activity);
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let state = Arc::clone(&state);
        let busy = activity.begin();
        req.extensions_mut()
            .insert(BodyReading(Arc::clone(&activity.reading)));
        async move {
            let response = router::handle(&state, req, peer, kind).await;
            drop(busy);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout)
        // Request line and headers over 16 KiB in all: 431 (SPEC §1).
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let activity = &ticket.activity;
    let mut closing = false;
    loop {
        // Idle since the last request ended (or since accepted); re-checked when it fires.
        let idle_until = if activity.is_idle() {
            activity.last() + http.idle_timeout
        } else {
            std::time::Instant::now() + http.idle_timeout
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = activity.close.notified(), if !closing => {
                if activity.close_now() {
                    break;
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = stop.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep_until(idle_until.into()), if !closing => {
                if activity.is_idle() && activity.last() + http.idle_timeout <= std::time::Instant::now() {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
    drop(ticket);
}
