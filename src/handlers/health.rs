//! `/healthz`, `/readyz`, `/metrics`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::StatusCode;

use crate::app::State;
use crate::http::body::{json, with_type};
use crate::http::{Problem, Response};
use crate::metrics::Gauges;

/// How long `/readyz` waits for each dependency.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The process is up and serving.
pub fn healthz() -> Response {
    let mut r = json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Every storage dependency answers, each within a short timeout.
pub async fn readyz(state: &State) -> Result<Response, Problem> {
    // Spawned so the checks run concurrently: one slow dependency costs one timeout, not n.
    let checks: Vec<_> = state
        .dependencies
        .iter()
        .map(|dep| {
            let dep = std::sync::Arc::clone(dep);
            tokio::spawn(async move {
                match tokio::time::timeout(PING_TIMEOUT, dep.ping()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_string()),
                }
            })
        })
        .collect();
    let mut report = serde_json::Map::new();
    let mut failed = Vec::new();
    for (dep, check) in state.dependencies.iter().zip(checks) {
        let result = check
            .await
            .unwrap_or_else(|_| Err("check panicked".to_string()));
        if let Err(cause) = &result {
            tracing::warn!(dependency = dep.name(), %cause, "readiness check failed");
            failed.push(dep.name());
        }
        report.insert(
            dep.name().to_string(),
            if result.is_ok() { "ok" } else { "unavailable" }.into(),
        );
    }
    if !failed.is_empty() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("not ready: {} unavailable", failed.join(", ")),
        ));
    }
    let mut r = json(
        StatusCode::OK,
        &serde_json::json!({"status": "ready", "checks": report}),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

pub async fn metrics(state: &State) -> Response {
    let backlog = tokio::time::timeout(PING_TIMEOUT, state.outbox.backlog(SystemTime::now())).await;
    let gauges = Gauges {
        bcrypt_queue: state.hasher.queued(),
        outbox_backlog: backlog.ok().and_then(Result::ok),
    };
    with_type(
        StatusCode::OK,
        Bytes::from(state.metrics.render(&gauges)),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}
