//! The admin API (SPEC §10), served only on `AUTH_ADMIN_LISTEN`; the router has checked
//! the admin secret before any of these runs.

use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::StatusCode;
use serde::Serialize;

use super::State;
use crate::domain::{Email, UserId};
use crate::http::body::{json, no_content, path_param, Request};
use crate::http::{Problem, Response};
use crate::service::{AdminError, UserView};

#[derive(Serialize)]
struct UserOut<'a> {
    user_id: String,
    email: &'a str,
    email_verified: bool,
    disabled: bool,
    created_at: String,
    sessions: usize,
}

fn user_response(view: &UserView) -> Response {
    let out = UserOut {
        user_id: view.user.id.to_string(),
        email: view.user.email.as_str(),
        email_verified: view.user.email_verified,
        disabled: view.user.disabled,
        created_at: humantime::format_rfc3339_seconds(view.user.created_at).to_string(),
        sessions: view.sessions,
    };
    let mut response = json(StatusCode::OK, &out);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The `{id}` of the path; anything that is not a UUID names no user.
fn user_id(req: &Request) -> Result<UserId, Problem> {
    path_param(req, 0)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .map(UserId::from_uuid)
        .ok_or_else(|| AdminError::NoSuchUser.into())
}

/// The `email` query parameter, percent-decoded (addresses may hold `+` and `%40`).
fn email_param(req: &Request) -> Result<Email, Problem> {
    let raw = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("email="))
        .ok_or_else(|| Problem::bad_request("the email query parameter is required"))?;
    let decoded =
        percent_decode(raw).ok_or_else(|| Problem::bad_request("bad percent-encoding"))?;
    Email::parse(&decoded).map_err(Problem::invalid_email)
}

/// `%XX` sequences as bytes, as UTF-8. A `+` stays a `+`: addresses hold them, never
/// spaces.
fn percent_decode(raw: &str) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

pub async fn find_by_email(state: &State, req: Request) -> Result<Response, Problem> {
    let email = email_param(&req)?;
    Ok(user_response(&state.admin.find_by_email(&email).await?))
}

pub async fn find(state: &State, req: Request) -> Result<Response, Problem> {
    Ok(user_response(&state.admin.find(user_id(&req)?).await?))
}

pub async fn disable(state: &State, req: Request) -> Result<Response, Problem> {
    state.admin.disable(user_id(&req)?).await?;
    Ok(no_content())
}

pub async fn enable(state: &State, req: Request) -> Result<Response, Problem> {
    state.admin.enable(user_id(&req)?).await?;
    Ok(no_content())
}

pub async fn revoke_sessions(state: &State, req: Request) -> Result<Response, Problem> {
    state.admin.revoke_sessions(user_id(&req)?).await?;
    Ok(no_content())
}

pub async fn verify(state: &State, req: Request) -> Result<Response, Problem> {
    state.admin.verify(user_id(&req)?).await?;
    Ok(no_content())
}

pub async fn delete(state: &State, req: Request) -> Result<Response, Problem> {
    state.admin.delete(user_id(&req)?).await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_percent_escapes_and_keeps_plus() {
        assert_eq!(
            percent_decode("a%2Bb%40example.com").as_deref(),
            Some("a+b@example.com")
        );
        assert_eq!(percent_decode("a+b@x.org").as_deref(), Some("a+b@x.org"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
