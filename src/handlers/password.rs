//! `/password/forgot`, `/password/reset`, `/password/change`.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Request, StatusCode};
use serde::Deserialize;

use crate::app::State;
use crate::domain::{Email, Password, ResetToken};
use crate::http::body::{no_content, read_json};
use crate::http::{Problem, Response};

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
pub async fn forgot(state: &State, req: Request<Incoming>) -> Result<Response, Problem> {
    let body: Forgot = read_json(req).await?;
    let email = Email::parse(&body.email).map_err(Problem::invalid_email)?;
    state.credentials.forgot(email).await?;
    let mut response = no_content();
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

pub async fn reset(state: &State, req: Request<Incoming>) -> Result<Response, Problem> {
    let body: Reset = read_json(req).await?;
    // The new password is checked before the token is looked at, so a typo costs nothing.
    let password = Password::new(body.password).map_err(Problem::invalid_password)?;
    let token = ResetToken::parse(&body.token)
        .map_err(|_| Problem::invalid_token(StatusCode::BAD_REQUEST))?;
    state.credentials.reset(token, password).await?;
    Ok(no_content())
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(value: Option<&HeaderValue>) -> Option<&str> {
    let text = value?.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub async fn change(state: &State, req: Request<Incoming>) -> Result<Response, Problem> {
    // Authentication comes first: without a valid token, nothing else is looked at.
    let token =
        bearer(req.headers().get(AUTHORIZATION)).ok_or_else(Problem::invalid_access_token)?;
    let user = state.credentials.authenticate(token)?;
    let body: Change = read_json(req).await?;
    let new = Password::new(body.new_password).map_err(Problem::invalid_password)?;
    // A current password outside 8-72 bytes cannot be the current password: 401, like any
    // other wrong one.
    let current = Password::new(body.current_password)
        .map_err(|_| Problem::from(crate::service::CredentialsError::WrongPassword))?;
    state.credentials.change(user, current, new).await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens_only() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer(Some(&v("Bearer abc.def.ghi"))), Some("abc.def.ghi"));
        assert_eq!(bearer(Some(&v("bearer xyz"))), Some("xyz"));
        assert_eq!(bearer(Some(&v("Basic dXNlcjpwYXNz"))), None);
        assert_eq!(bearer(Some(&v("Bearer "))), None);
        assert_eq!(bearer(None), None);
    }
}
