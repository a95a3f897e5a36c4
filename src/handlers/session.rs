//! `/login`, `/refresh`, `/logout`.

use hyper::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::State;
use crate::domain::{Email, Password, RefreshToken};
use crate::http::body::{client, json, no_content, read_json, Request};
use crate::http::{Problem, Response};
use crate::service::TokenPair;

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Serialize)]
struct Tokens<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

/// The token response, never cached (RFC 6749 §5.1).
fn tokens(pair: TokenPair) -> Response {
    let refresh = pair.refresh_token.expose();
    let body = Tokens {
        access_token: &pair.access_token,
        refresh_token: &refresh,
        token_type: "Bearer",
        expires_in: pair.expires_in,
    };
    let mut response = json(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub async fn login(state: &State, req: Request) -> Result<Response, Problem> {
    let body: Credentials = read_json(&req)?;
    let email = Email::parse(&body.email).map_err(Problem::invalid_email)?;
    // The same format rule as at registration (SPEC §3: longer than 72 bytes is a 400).
    // The answer depends only on the input, so it reveals nothing about the account.
    let password = Password::new(body.password).map_err(Problem::invalid_password)?;
    let pair = state.sessions.login(client(&req), email, password).await?;
    Ok(tokens(pair))
}

fn refresh_token(body: RefreshBody) -> Result<RefreshToken, Problem> {
    RefreshToken::parse(&body.refresh_token)
        .map_err(|_| Problem::bad_request("refresh_token is malformed"))
}

pub async fn refresh(state: &State, req: Request) -> Result<Response, Problem> {
    let token = refresh_token(read_json(&req)?)?;
    let pair = state.sessions.refresh(token).await?;
    Ok(tokens(pair))
}

pub async fn logout(state: &State, req: Request) -> Result<Response, Problem> {
    let token = refresh_token(read_json(&req)?)?;
    state.sessions.logout(token).await?;
    Ok(no_content())
}
