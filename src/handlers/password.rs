//! `/password/forgot`, `/password/reset`, `/password/change`.

use hyper::StatusCode;
use serde::Deserialize;

use super::State;
use crate::domain::{CurrentPassword, Email, Password, ResetToken};
use crate::http::body::{client, no_content, read_json, Request};
use crate::http::{bearer, Problem, Response};

#[derive(Deserialize)]
struct Forgot {
    email: String,
}

#[derive(Deserialize)]
struct Reset {
    token: String,
    password: String,
}

#[derive(Deserialize)]
struct Change {
    current_password: String,
    new_password: String,
}

/// `202 Accepted`, with no body: whether an email goes out is not the caller's to know.
pub async fn forgot(state: &State, req: Request) -> Result<Response, Problem> {
    let body: Forgot = read_json(&req)?;
    let email = Email::parse(&body.email).map_err(Problem::invalid_email)?;
    state.passwords.forgot(email).await?;
    let mut response = no_content();
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

pub async fn reset(state: &State, req: Request) -> Result<Response, Problem> {
    let body: Reset = read_json(&req)?;
    // The new password is checked before the token is looked at, so a typo costs nothing.
    let password = Password::new(body.password).map_err(Problem::invalid_password)?;
    let token = ResetToken::parse(&body.token)
        .map_err(|_| Problem::invalid_token(StatusCode::BAD_REQUEST))?;
    state.passwords.reset(client(&req), token, password).await?;
    Ok(no_content())
}

pub async fn change(state: &State, req: Request) -> Result<Response, Problem> {
    // Authentication comes first: without a valid token, nothing else is looked at.
    let user = state
        .access_tokens
        .authenticate(bearer::token(req.headers()))
        .await?;
    let body: Change = read_json(&req)?;
    let new = Password::new(body.new_password).map_err(Problem::invalid_password)?;
    let current = CurrentPassword::parse(body.current_password);
    state
        .passwords
        .change(client(&req), user.user, current, new)
        .await?;
    Ok(no_content())
}
