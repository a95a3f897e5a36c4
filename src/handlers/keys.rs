//! What verifiers fetch: `/.well-known/jwks.json` and the discovery documents, rendered
//! once at start-up and served from memory.

use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};

use super::{Prepared, State};
use crate::http::body::Request;
use crate::http::{Problem, Response};

fn serve(document: &Prepared) -> Response {
    let mut response = hyper::Response::new(Full::new(document.body.clone()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, document.cache_control.clone());
    response
}

pub async fn jwks(state: &State, _: Request) -> Result<Response, Problem> {
    Ok(serve(&state.jwks))
}

/// `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub async fn discovery(state: &State, _: Request) -> Result<Response, Problem> {
    Ok(serve(&state.discovery))
}
