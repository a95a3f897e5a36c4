//! HTTP in and out: routing, request bodies, problem responses, CORS, request ids.
//!
//! [`server::handle`] is the one entry point for a request; it wraps the router with what
//! every response needs (request id, CORS, HEAD, metrics, the access log line).

pub mod body;
pub mod cors;
pub mod problem;
pub mod request_id;
pub mod router;
pub mod server;

use bytes::Bytes;
use http_body_util::Full;

pub use problem::Problem;

/// Every response body is a buffer: authd never streams.
pub type Body = Full<Bytes>;
pub type Response = hyper::Response<Body>;
