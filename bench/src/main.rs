//! authd-bench: load-tests authd's login, refresh and JWKS paths and reports each as a
//! ratio to a ceiling measured in the same run on the same machine (bcrypt verifications/s,
//! RS256 signatures/s, the generator against a trivial server). See bench/README.md.

mod ceilings;
mod load;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde::Serialize;

use load::{Conn, Progress, Samples, Stats};
use target::{Authd, Storage, PASSWORD};

const USAGE: &str = "usage: authd-bench [options]
  --memory             run authd on the embedded default instead of PostgreSQL + Redis
  --duration SECS      seconds per scenario (default 10)
  --connections N      concurrent connections (default 32)
  --users N            seeded users (default 64)
  --cost N             bcrypt cost of the seeded users and of authd (default 12)
  --scenarios LIST     comma-separated: jwks,login,refresh,isolation (default all)
  --json               print the results as JSON on stdout
  --smoke              a few seconds in all: proves the bench runs, measures nothing
  --authd PATH         use this authd binary instead of building target/release/authd
  --env KEY=VALUE      extra environment for authd (repeatable), e.g. AUTH_DB_POOL_SIZE=8";

#[derive(Clone)]
struct Options {
    memory: bool,
    duration: Duration,
    connections: usize,
    users: usize,
    cost: u32,
    scenarios: Vec<String>,
    json: bool,
    smoke: bool,
    authd: Option<PathBuf>,
    env: Vec<(String, String)>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        memory: false,
        duration: Duration::from_secs(10),
        connections: 32,
        users: 64,
        cost: 12,
        scenarios: ["jwks", "login", "refresh", "isolation"]
            .map(String::from)
            .to_vec(),
        json: false,
        smoke: false,
        authd: None,
        env: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--memory" => o.memory = true,
            "--json" => o.json = true,
            "--smoke" => o.smoke = true,
            "--duration" => {
                o.duration = Duration::from_secs_f64(
                    value("--duration")?.parse().map_err(|_| "bad --duration")?,
                )
            }
            "--connections" => {
                o.connections = value("--connections")?
                    .parse()
                    .map_err(|_| "bad --connections")?
            }
            "--users" => o.users = value("--users")?.parse().map_err(|_| "bad --users")?,
            "--cost" => o.cost = value("--cost")?.parse().map_err(|_| "bad --cost")?,
            "--scenarios" => {
                o.scenarios = value("--scenarios")?.split(',').map(String::from).collect()
            }
            "--authd" => o.authd = Some(PathBuf::from(value("--authd")?)),
            "--env" => {
                let pair = value("--env")?;
                let (k, v) = pair.split_once('=').ok_or("--env needs KEY=VALUE")?;
                o.env.push((k.to_string(), v.to_string()));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if o.smoke {
        o.duration = Duration::from_millis(1500);
        o.connections = o.connections.min(8);
        o.users = o.users.min(8);
        o.cost = 4;
    }
    Ok(o)
}

/// One scenario's outcome as reported.
#[derive(Serialize)]
struct Row {
    scenario: String,
    #[serde(flatten)]
    stats: Stats,
    /// The ceiling this scenario is compared with, in requests (or operations) per second.
    ceiling_name: Option<&'static str>,
    ceiling_rps: Option<f64>,
    ratio: Option<f64>,
    target: Option<String>,
    met: Option<bool>,
}

#[derive(Serialize)]
struct Report {
    date: String,
    machine: String,
    backend: &'static str,
    bcrypt_cost: u32,
    connections: usize,
    seconds_per_scenario: f64,
    ceilings: ceilings::Ceilings,
    rows: Vec<Row>,
}

/// Runs `connections` closed-loop connections for `duration`; `step` sends one request on
/// a connection and returns its status.
async fn run_load<S, F, Fut>(
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
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let deadline = started + o.duration;
    let ticker = tokio::spawn(load::report_progress(
        name.to_string(),
        progress.clone(),
        started,
    ));
    let mut tasks = Vec::new();
    for state in states {
        let step = step.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut conn = Conn::new(addr);
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

async fn get(mut conn: Conn, path: &'static str) -> (Conn, u16) {
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

fn refresh_token_of(body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    v["refresh_token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| "no refresh_token".into())
}

/// Spends `token` for the next one; on failure the chain restarts with a fresh login.
async fn refresh_step(
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

async fn login_step(
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
async fn chains(
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
async fn probe(
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

fn row(scenario: &str, stats: Stats, ceiling: Option<(&'static str, f64, f64)>) -> Row {
    let (ceiling_name, ceiling_rps, ratio, target, met) = match ceiling {
        Some((name, rps, target)) => {
            let ratio = stats.rps / rps;
            (
                Some(name),
                Some(rps),
                Some(ratio),
                Some(format!(">= {target:.2}")),
                Some(ratio >= target),
            )
        }
        None => (None, None, None, None, None),
    };
    Row {
        scenario: scenario.into(),
        stats,
        ceiling_name,
        ceiling_rps,
        ratio,
        target,
        met,
    }
}

async fn run(o: Options) -> Result<Report, String> {
    let binary = target::authd_binary(o.authd.clone())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ceiling_time = if o.smoke {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };

    eprintln!("measuring ceilings on {cores} cores…");
    let ceilings = ceilings::measure(
        o.cost,
        cores,
        ceiling_time,
        o.connections,
        o.duration.min(Duration::from_secs(5)),
    )
    .await;
    eprintln!(
        "  bcrypt (cost {}): {:.1}/s   RS256: {:.0}/s   trivial server: {:.0} req/s",
        o.cost, ceilings.bcrypt_per_sec, ceilings.rs256_per_sec, ceilings.trivial_server_rps
    );

    let storage = if o.memory {
        Storage::Memory
    } else {
        Storage::real().await?
    };
    let result = async {
        let authd = Authd::start(&binary, &storage, o.cost, &o.env).await?;
        eprintln!(
            "seeding {} verified users at bcrypt cost {}…",
            o.users, o.cost
        );
        let users = Arc::new(authd.seed(o.users).await?);
        let addr = authd.addr;
        let mut rows = Vec::new();
        for scenario in &o.scenarios {
            eprintln!(
                "scenario {scenario}: {} connections, {:?}",
                o.connections, o.duration
            );
            match scenario.as_str() {
                "jwks" => {
                    let stats = run_load(
                        "jwks",
                        &o,
                        addr,
                        vec![(); o.connections],
                        |c, s| async move {
                            let (c, status) = get(c, "/.well-known/jwks.json").await;
                            (c, s, status)
                        },
                    )
                    .await;
                    rows.push(row(
                        "jwks",
                        stats,
                        Some(("trivial server", ceilings.trivial_server_rps, 0.7)),
                    ));
                }
                "login" => {
                    let states = (0..o.connections).map(|i| (users.clone(), i)).collect();
                    let stats = run_load("login", &o, addr, states, login_step).await;
                    rows.push(row(
                        "login",
                        stats,
                        Some(("bcrypt verifications", ceilings.bcrypt_per_sec, 0.85)),
                    ));
                }
                "refresh" => {
                    let states = chains(addr, &users, o.connections).await?;
                    let stats = run_load("refresh", &o, addr, states, refresh_step).await;
                    rows.push(row(
                        "refresh",
                        stats,
                        Some(("RS256 signatures", ceilings.rs256_per_sec, 0.6)),
                    ));
                }
                "isolation" => {
                    let chain = chains(addr, &users, 1).await?.remove(0);
                    let (idle_jwks, idle_refresh) = probe(addr, o.duration, chain.clone()).await;
                    let chain = chains(addr, &users, 1).await?.remove(0);
                    let states = (0..o.connections).map(|i| (users.clone(), i)).collect();
                    let flood = {
                        let o = o.clone();
                        let states: Vec<(Arc<Vec<String>>, usize)> = states;
                        tokio::spawn(async move {
                            run_load("isolation:login", &o, addr, states, login_step).await
                        })
                    };
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let (busy_jwks, busy_refresh) = probe(
                        addr,
                        o.duration.saturating_sub(Duration::from_millis(400)),
                        chain,
                    )
                    .await;
                    let flood = flood.await.map_err(|e| e.to_string())?;
                    let ratio_row = |name: &str, busy: Stats, idle: &Stats| {
                        let ratio = busy.p99_ms / idle.p99_ms.max(0.001);
                        Row {
                            scenario: name.into(),
                            stats: busy,
                            ceiling_name: Some("idle p99 (ms)"),
                            ceiling_rps: Some(idle.p99_ms),
                            ratio: Some(ratio),
                            target: Some("p99 <= 3x idle".into()),
                            met: Some(ratio <= 3.0),
                        }
                    };
                    rows.push(row(
                        "isolation: login flood",
                        flood,
                        Some(("bcrypt verifications", ceilings.bcrypt_per_sec, 0.85)),
                    ));
                    rows.push(ratio_row("isolation: jwks probe", busy_jwks, &idle_jwks));
                    rows.push(ratio_row(
                        "isolation: refresh probe",
                        busy_refresh,
                        &idle_refresh,
                    ));
                }
                other => return Err(format!("unknown scenario {other}")),
            }
        }
        authd.stop().await;
        Ok::<_, String>(rows)
    }
    .await;
    storage.remove().await;
    let rows = result?;
    Ok(Report {
        date: String::from_utf8_lossy(
            &std::process::Command::new("date")
                .arg("-u")
                .arg("+%Y-%m-%d")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default(),
        )
        .trim()
        .to_string(),
        machine: format!("{cores} cores"),
        backend: if o.memory {
            "embedded (memory)"
        } else {
            "PostgreSQL + Redis"
        },
        bcrypt_cost: o.cost,
        connections: o.connections,
        seconds_per_scenario: o.duration.as_secs_f64(),
        ceilings,
        rows,
    })
}

fn print_table(r: &Report) {
    println!(
        "authd-bench {}  {}  backend: {}  bcrypt cost {}  {} connections  {:.0}s per scenario",
        r.date, r.machine, r.backend, r.bcrypt_cost, r.connections, r.seconds_per_scenario
    );
    println!(
        "ceilings: bcrypt {:.1} verifications/s · RS256 {:.0} signatures/s · trivial server {:.0} req/s",
        r.ceilings.bcrypt_per_sec, r.ceilings.rs256_per_sec, r.ceilings.trivial_server_rps
    );
    println!(
        "{:<26} {:>9} {:>8} {:>8} {:>8} {:>8}  {:<30} {:<12} errors",
        "scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "ratio to ceiling", "target"
    );
    for row in &r.rows {
        let ratio = match (row.ratio, row.ceiling_name) {
            (Some(ratio), Some(name)) => format!("{ratio:.2} of {name}"),
            _ => "-".into(),
        };
        let target = match (&row.target, row.met) {
            (Some(t), Some(met)) => format!("{t} {}", if met { "met" } else { "MISSED" }),
            _ => "-".into(),
        };
        let errors: Vec<String> = row
            .stats
            .errors
            .iter()
            .map(|(s, n)| format!("{s}:{n}"))
            .collect();
        println!(
            "{:<26} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {:<30} {:<12} {}",
            row.scenario,
            row.stats.rps,
            row.stats.p50_ms,
            row.stats.p90_ms,
            row.stats.p99_ms,
            row.stats.max_ms,
            ratio,
            target,
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join(" ")
            }
        );
    }
}

fn main() -> std::process::ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(options.clone())) {
        Ok(report) => {
            if options.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serialises")
                );
            } else {
                print_table(&report);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("authd-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
