//! `/healthz`, `/readyz`, `/metrics`.

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::StatusCode;

use super::State;
use crate::http::body::{json, with_type, Request};
use crate::http::{Problem, Response};

/// The process is up and serving.
pub async fn healthz(_: &State, _: Request) -> Result<Response, Problem> {
    let mut r = json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Every storage dependency answers, each within a short timeout.
pub async fn readyz(state: &State, _: Request) -> Result<Response, Problem> {
    let readiness = state.health.readiness().await;
    if !readiness.ready() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("not ready: {} unavailable", readiness.failed().join(", ")),
        ));
    }
    let checks: serde_json::Map<String, serde_json::Value> = readiness
        .checks
        .iter()
        .map(|(name, _)| (name.to_string(), "ok".into()))
        .collect();
    let mut r = json(
        StatusCode::OK,
        &serde_json::json!({"status": "ready", "checks": checks}),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

pub async fn metrics(state: &State, _: Request) -> Result<Response, Problem> {
    let gauges = state.health.gauges().await;
    Ok(with_type(
        StatusCode::OK,
        Bytes::from(state.metrics.render(&gauges)),
        "text/plain; version=0.0.4; charset=utf-8",
    ))
}
