//! Serving: the accept loop, one hyper connection per client, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{watch, Semaphore};

use super::{housekeeping, App};
use crate::router;

impl App {
    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (bounded by `AUTH_SHUTDOWN_GRACE`) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let App {
            listener,
            local_addr,
            state,
            worker,
            mail_wake,
            refresh_tokens,
            outbox,
            clock,
            http,
            ..
        } = self;
        tracing::info!(address = %local_addr, "authd listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker_task = tokio::spawn(worker.run(mail_wake, stop_rx.clone()));
        tokio::spawn(housekeeping::run(refresh_tokens, outbox, clock, stop_rx));

        let connections = Arc::new(Semaphore::new(http.max_connections));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            // Wait for a free connection slot first: past the bound, new clients wait in the
            // kernel's accept queue instead of consuming memory here.
            let permit = tokio::select! {
                permit = Arc::clone(&connections).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = Arc::clone(&state);
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(router::handle(&state, req, peer).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(http.header_read_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }

        drop(listener);
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
        let grace = http.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within {grace:?}; closing them");
        }
        let _ = worker_task.await;
        tracing::info!("authd stopped");
    }
}
