//! How load is applied: closed-loop connections, the request each scenario sends, and the
//! light probe of the isolation scenario.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;

use crate::load::{self, Conn, Progress, Samples, Stats};
use crate::target::PASSWORD;
use crate::Options;

/// Runs one closed-loop connection per state for `duration`; `step` sends one request on
/// a connection and returns its status.
pub async fn run_load<S, F, Fut>(
    name: &str,
    o: &Options,
    addr: std::net::SocketAddr,
    states: Vec<S>,
    step: F,
) -> Stats
where
    S: Send + 'static,
    F: Fn(Conn, S) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (Conn, S, u16)> + Send,
{
    let loads = states.into_iter().map(|s| (Conn::new(addr), s)).collect();
    run_load_on(name, o, loads, step).await
}

/// Like [`run_load`], each state with the connection it starts from (e.g. one from another
/// client address).
pub async fn run_load_on<S, F, Fut>(
    name: &str,
    o: &Options,
    loads: Vec<(Conn, S)>,
    step: F,
) -> Stats
where
    S: Send + 'static,
    F: Fn(Conn, S) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (Conn, S, u16)> + Send,
{
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let deadline = started + o.duration;
    let ticker = tokio::spawn(load::report_progress(
        name.to_string(),
        progress.clone(),
        started,
    ));
    let mut tasks = Vec::new();
    for (conn, state) in loads {
        let step = step.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut conn = conn;
            let mut state = state;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (c, s, status) = step(conn, state).await;
                conn = c;
                state = s;
                samples.record(t, status);
                progress.tick();
            }
            samples
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    ticker.abort();
    Stats::from(all, started.elapsed())
}

pub async fn get(mut conn: Conn, path: &'static str) -> (Conn, u16) {
    let status = conn
        .send(Method::GET, path, None)
        .await
        .map_or(0, |(s, _)| s);
    (conn, status)
}

fn login_body(email: &str) -> String {
    serde_json::json!({"email": email, "password": PASSWORD}).to_string()
}

async fn login(conn: &mut Conn, email: &str) -> Result<String, String> {
    match conn
        .send(Method::POST, "/login", Some(login_body(email)))
        .await
    {
        Ok((200, body)) => refresh_token_of(&body),
        other => Err(format!("login: {other:?}")),
    }
}

/// Logs `email` in; its access token.
async fn access_token(conn: &mut Conn, email: &str) -> Result<String, String> {
    match conn
        .send(Method::POST, "/login", Some(login_body(email)))
        .await
    {
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            v["access_token"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| "no access_token".into())
        }
        other => Err(format!("login: {other:?}")),
    }
}

/// One access token per connection, each from a login of its own (a session each).
pub async fn access_tokens(
    addr: std::net::SocketAddr,
    users: &[String],
    n: usize,
) -> Result<Vec<String>, String> {
    let mut conn = Conn::new(addr);
    let mut out = Vec::new();
    for i in 0..n {
        out.push(access_token(&mut conn, &users[i % users.len()]).await?);
    }
    Ok(out)
}

/// Asks `/authz` about `token`, as a reverse proxy does before every API call.
pub async fn authz_step(mut conn: Conn, token: String) -> (Conn, String, u16) {
    let status = conn
        .send_with(Method::GET, "/authz", Some(&token), None)
        .await
        .map_or(0, |(s, _)| s);
    (conn, token, status)
}

fn refresh_token_of(body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    v["refresh_token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| "no refresh_token".into())
}

/// Spends `token` for the next one; on failure the chain restarts with a fresh login.
pub async fn refresh_step(
    mut conn: Conn,
    (email, token): (String, String),
) -> (Conn, (String, String), u16) {
    let body = serde_json::json!({"refresh_token": token}).to_string();
    match conn.send(Method::POST, "/refresh", Some(body)).await {
        Ok((200, body)) => {
            let next = refresh_token_of(&body).unwrap_or_default();
            (conn, (email, next), 200)
        }
        Ok((status, _)) => {
            let next = login(&mut conn, &email).await.unwrap_or_default();
            (conn, (email, next), status)
        }
        Err(_) => (conn, (email, token), 0),
    }
}

pub async fn login_step(
    mut conn: Conn,
    (users, i): (Arc<Vec<String>>, usize),
) -> (Conn, (Arc<Vec<String>>, usize), u16) {
    let email = &users[i % users.len()];
    let status = conn
        .send(Method::POST, "/login", Some(login_body(email)))
        .await
        .map_or(0, |(s, _)| s);
    (conn, (users, i + 1), status)
}

/// Token chains, one per connection (each from its own user's login).
pub async fn chains(
    addr: std::net::SocketAddr,
    users: &[String],
    n: usize,
) -> Result<Vec<(String, String)>, String> {
    let mut conn = Conn::new(addr);
    let mut out = Vec::new();
    for i in 0..n {
        let email = users[i % users.len()].clone();
        let token = login(&mut conn, &email).await?;
        out.push((email, token));
    }
    Ok(out)
}

/// A light probe: one connection alternating JWKS and refresh with a 5 ms pause, about 150
/// of each per second — enough samples for a p99 that is not just the worst few.
/// Returns (jwks, refresh) latencies.
pub async fn probe(
    addr: std::net::SocketAddr,
    duration: Duration,
    chain: (String, String),
) -> (Stats, Stats) {
    let started = Instant::now();
    let (mut jwks, mut refresh) = (Samples::default(), Samples::default());
    let mut conn = Conn::new(addr);
    let mut chain = chain;
    while started.elapsed() < duration {
        let t = Instant::now();
        let (c, status) = get(conn, "/.well-known/jwks.json").await;
        jwks.record(t, status);
        let t = Instant::now();
        let (c, next, status) = refresh_step(c, chain).await;
        refresh.record(t, status);
        conn = c;
        chain = next;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    (Stats::from(jwks, elapsed), Stats::from(refresh, elapsed))
}
