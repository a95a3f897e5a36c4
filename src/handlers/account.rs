//! `/register`, `/verify-email`, `/resend-verification`, `/account/delete`.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::State;
use crate::domain::{CurrentPassword, Email, Password, VerificationToken};
use crate::http::body::{client, json, no_content, read_json, Request};
use crate::http::{bearer, Problem, Response};

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct EmailOnly {
    email: String,
}

#[derive(Deserialize)]
struct PasswordOnly {
    password: String,
}

#[derive(Serialize)]
struct Registered<'a> {
    user_id: String,
    email: &'a str,
    email_verified: bool,
}

pub async fn register(state: &State, req: Request) -> Result<Response, Problem> {
    let body: Credentials = read_json(&req)?;
    let email = Email::parse(&body.email).map_err(Problem::invalid_email)?;
    let password = Password::new(body.password).map_err(Problem::invalid_password)?;
    let user = state
        .accounts
        .register(client(&req), email, password)
        .await?;
    let out = Registered {
        user_id: user.id.to_string(),
        email: user.email.as_str(),
        email_verified: user.email_verified,
    };
    Ok(json(StatusCode::CREATED, &out))
}

/// The `token` query parameter. Tokens are base64url, so no percent-decoding is needed: any
/// `%` makes the token malformed anyway.
pub(super) fn token_param(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

pub async fn verify_email(state: &State, req: Request) -> Result<Response, Problem> {
    let req_is_head = req.method() == hyper::Method::HEAD;
    let token = token_param(req.uri().query())
        .and_then(|t| VerificationToken::parse(t).ok())
        .ok_or_else(|| Problem::invalid_token(StatusCode::BAD_REQUEST))?;
    // HEAD must be safe: link checkers and mail scanners send it, and must not spend the
    // user's single-use token. It reports whether the token would work.
    if req_is_head {
        return match state.accounts.verification_token_is_live(&token).await? {
            true => Ok(json(
                StatusCode::OK,
                &serde_json::json!({"email_verified": true}),
            )),
            false => Err(Problem::invalid_token(StatusCode::BAD_REQUEST)),
        };
    }
    state.accounts.verify_email(token).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"email_verified": true}),
    ))
}

pub async fn resend_verification(state: &State, req: Request) -> Result<Response, Problem> {
    let body: EmailOnly = read_json(&req)?;
    let email = Email::parse(&body.email).map_err(Problem::invalid_email)?;
    state.accounts.resend_verification(email).await?;
    Ok(no_content())
}

pub async fn delete(state: &State, req: Request) -> Result<Response, Problem> {
    // Authentication comes first: without a valid token, nothing else is looked at.
    let caller = state
        .access_tokens
        .authenticate(bearer::token(req.headers()))
        .await?;
    let body: PasswordOnly = read_json(&req)?;
    let password = CurrentPassword::parse(body.password);
    state
        .accounts
        .delete(client(&req), caller.user, password)
        .await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::token_param;

    #[test]
    fn finds_the_token_parameter() {
        assert_eq!(token_param(Some("token=abc")), Some("abc"));
        assert_eq!(token_param(Some("x=1&token=abc")), Some("abc"));
        assert_eq!(token_param(Some("tokens=abc")), None);
        assert_eq!(token_param(None), None);
    }
}
