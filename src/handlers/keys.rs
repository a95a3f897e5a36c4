//! `/.well-known/jwks.json`: rendered once at start-up, served from memory.

use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};

use super::State;
use crate::http::body::Request;
use crate::http::{Problem, Response};

pub async fn jwks(state: &State, _: Request) -> Result<Response, Problem> {
    let mut response = hyper::Response::new(Full::new(state.jwks.body.clone()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, state.jwks.cache_control.clone());
    Ok(response)
}
