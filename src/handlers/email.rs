//! `/email/change`, `/email/confirm`.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::account::token_param;
use super::State;
use crate::domain::{CurrentPassword, Email, EmailChangeToken};
use crate::http::body::{client, json, read_json, Request};
use crate::http::{bearer, Problem, Response};

#[derive(Deserialize)]
struct Change {
    new_email: String,
    password: String,
}

#[derive(Serialize)]
struct Confirmed<'a> {
    email: &'a str,
    email_verified: bool,
}

/// `202 Accepted`: the change happens when the link sent to the new address is used.
pub async fn change(state: &State, req: Request) -> Result<Response, Problem> {
    // Authentication comes first: without a valid token, nothing else is looked at.
    let caller = state
        .access_tokens
        .authenticate(bearer::token(req.headers()))
        .await?;
    let body: Change = read_json(&req)?;
    let new = Email::parse(&body.new_email).map_err(Problem::invalid_email)?;
    let password = CurrentPassword::parse(body.password);
    state
        .email_changes
        .request(client(&req), caller.user, new, password)
        .await?;
    let mut response = crate::http::body::no_content();
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

pub async fn confirm(state: &State, req: Request) -> Result<Response, Problem> {
    let token = token_param(req.uri().query())
        .and_then(|t| EmailChangeToken::parse(t).ok())
        .ok_or_else(|| Problem::invalid_token(StatusCode::BAD_REQUEST))?;
    // HEAD must be safe: link checkers and mail scanners send it, and must not spend the
    // user's single-use token. It reports whether the token would work.
    if req.method() == hyper::Method::HEAD {
        return match state.email_changes.token_is_live(&token).await? {
            true => Ok(json(
                StatusCode::OK,
                &serde_json::json!({"email_verified": true}),
            )),
            false => Err(Problem::invalid_token(StatusCode::BAD_REQUEST)),
        };
    }
    let email = state.email_changes.confirm(token).await?;
    let out = Confirmed {
        email: email.as_str(),
        email_verified: true,
    };
    Ok(json(StatusCode::OK, &out))
}
