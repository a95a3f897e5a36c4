//! What every request goes through, around the router: request id, CORS and preflight,
//! method checks, the request timeout, HEAD, metrics and one access-log line.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, StatusCode};

use super::problem::ProblemCode;
use super::router::{self, Route};
use super::{body, request_id, Problem, Response};
use crate::app::State;

/// Answers one request. Never fails: every error is a problem response.
pub async fn handle(state: &State, req: Request<Incoming>) -> Response {
    let started = Instant::now();
    let request_id = request_id::from_headers(req.headers());
    let origin = state.cors.allowed_origin(req.headers());
    let method = req.method().clone();
    let route = Route::from_path(req.uri().path());

    let mut response = match route {
        None => Problem::not_found().into_response(),
        Some(route) if method == Method::OPTIONS => {
            let mut r = body::no_content();
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(route.allow()));
            if origin.is_some() {
                state.cors.preflight(route.allow(), r.headers_mut());
            }
            r
        }
        Some(route) if !route.accepts(&method) => {
            Problem::method_not_allowed(route.allow()).into_response()
        }
        Some(route) => {
            match tokio::time::timeout(state.request_timeout, router::dispatch(state, route, req))
                .await
            {
                Ok(Ok(response)) => response,
                Ok(Err(problem)) => problem.into_response(),
                Err(_) => Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request took too long",
                )
                .into_response(),
            }
        }
    };

    state.cors.apply(origin, response.headers_mut());
    response
        .headers_mut()
        .insert(request_id::HEADER, request_id.clone());
    let label = route.map_or("unknown", Route::label);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state.metrics.request(label, status, elapsed);
    if response.extensions().get::<ProblemCode>() == Some(&ProblemCode("overloaded")) {
        state.metrics.shed(label);
    }
    tracing::info!(
        target: "authd::access",
        method = %method,
        route = label,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = request_id.to_str().unwrap_or_default(),
        "request"
    );
    // hyper sends no body for HEAD but keeps the headers, Content-Length included.
    response
}
