//! `/.well-known/jwks.json`: rendered once at start-up, served from memory.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};

use crate::app::State;
use crate::http::Response;

/// The JWKS document and its `Cache-Control`, prepared once.
pub struct JwksDocument {
    pub body: Bytes,
    pub cache_control: HeaderValue,
}

pub fn jwks(state: &State) -> Response {
    let mut response = hyper::Response::new(Full::new(state.jwks.body.clone()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, state.jwks.cache_control.clone());
    response
}
