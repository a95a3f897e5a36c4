//! `/login`, `/refresh`, `/logout`, and the caller's sessions: `/sessions`,
//! `/sessions/{id}`.

use hyper::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::State;
use crate::domain::{Email, Password, RefreshToken, SessionId, UserAgent};
use crate::http::body::{client, json, no_content, path_param, read_json, Request};
use crate::http::{bearer, Problem, Response};
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
    let user_agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| UserAgent::parse(&String::from_utf8_lossy(v.as_bytes())));
    let pair = state
        .sessions
        .login(client(&req), email, password, user_agent)
        .await?;
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

#[derive(Serialize)]
struct SessionView {
    id: String,
    created_at: String,
    last_used_at: String,
    user_agent: Option<String>,
    current: bool,
}

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionView>,
}

fn rfc3339(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

pub async fn list_sessions(state: &State, req: Request) -> Result<Response, Problem> {
    let caller = state
        .access_tokens
        .authenticate(bearer::token(req.headers()))
        .await?;
    let sessions = state.sessions.list(caller).await?;
    let list = SessionList {
        sessions: sessions
            .into_iter()
            .map(|(s, current)| SessionView {
                id: s.id.to_string(),
                created_at: rfc3339(s.created_at),
                last_used_at: rfc3339(s.last_used_at),
                user_agent: s.user_agent.map(|a| a.as_str().to_string()),
                current,
            })
            .collect(),
    };
    let mut response = json(StatusCode::OK, &list);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn end_session(state: &State, req: Request) -> Result<Response, Problem> {
    let caller = state
        .access_tokens
        .authenticate(bearer::token(req.headers()))
        .await?;
    // Not a session id at all: not one of the caller's either.
    let id = path_param(&req, 0)
        .and_then(SessionId::parse)
        .ok_or_else(|| Problem::from(crate::service::SessionError::NoSuchSession))?;
    state.sessions.end(caller, id).await?;
    Ok(no_content())
}

pub async fn end_sessions(state: &State, req: Request) -> Result<Response, Problem> {
    let caller = state
        .access_tokens
        .authenticate(bearer::token(req.headers()))
        .await?;
    state.sessions.end_all(caller).await?;
    Ok(no_content())
}
