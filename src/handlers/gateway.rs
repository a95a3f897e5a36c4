//! What gateways and APIs ask authd about a bearer token: `/authz` (forward-auth for
//! reverse proxies) and `/userinfo`.

use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::StatusCode;
use serde::Serialize;

use super::State;
use crate::http::body::{json, no_content, Request};
use crate::http::{bearer, Problem, Response};

#[derive(Serialize)]
struct UserInfo<'a> {
    sub: String,
    email: &'a str,
    email_verified: bool,
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `200` with `X-Auth-User-Id` and `X-Auth-Session-Id` for a valid token of a live
/// session; `401` + `WWW-Authenticate: Bearer` otherwise. No database round trip.
pub async fn authz(state: &State, req: Request) -> Result<Response, Problem> {
    let caller = state
        .access_tokens
        .authenticate(bearer::token(req.headers()))
        .await?;
    let mut response = no_content();
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let value = |v: String| HeaderValue::from_str(&v).expect("a UUID is a valid header value");
    headers.insert("x-auth-user-id", value(caller.user.to_string()));
    headers.insert("x-auth-session-id", value(caller.session.to_string()));
    Ok(no_store(response))
}

pub async fn userinfo(state: &State, req: Request) -> Result<Response, Problem> {
    let caller = state
        .access_tokens
        .authenticate(bearer::token(req.headers()))
        .await?;
    let user = state.accounts.profile(caller.user).await?;
    let info = UserInfo {
        sub: user.id.to_string(),
        email: user.email.as_str(),
        email_verified: user.email_verified,
    };
    Ok(no_store(json(StatusCode::OK, &info)))
}
