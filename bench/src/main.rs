//! authd-bench: load-tests authd's login, refresh and JWKS paths and reports each as a
//! ratio to a ceiling measured in the same run on the same machine (bcrypt verifications/s,
//! RS256 signatures/s, the generator against a trivial server). See bench/README.md.

mod attacks;
mod ceilings;
mod load;
mod report;
mod scenarios;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authd_testkit::Storage;
use report::{print_table, ratio_row, row, Report, Row};
use scenarios::{
    access_tokens, authz_step, chains, get, login_step, probe, refresh_step, run_load,
};
use target::Authd;

const USAGE: &str = "usage: authd-bench [options]
  --memory             run authd on the embedded default instead of PostgreSQL + Redis
  --duration SECS      seconds per scenario (default 10)
  --connections N      concurrent connections (default 32)
  --users N            seeded users (default 64)
  --cost N             bcrypt cost of the seeded users and of authd (default 12)
  --scenarios LIST     comma-separated: jwks,authz,login,refresh,isolation,slot-hold,forgot-flood,
                       login-flood,refresh-flood (default all)
  --json               print the results as JSON on stdout
  --smoke              a few seconds in all: proves the bench runs, measures nothing
  --authd PATH         use this authd binary instead of building target/release/authd
  --env KEY=VALUE      extra environment for authd (repeatable), e.g. AUTH_DB_POOL_SIZE=8";

/// The scenarios that run an authd of their own.
const ATTACKS: [&str; 4] = ["slot-hold", "forgot-flood", "login-flood", "refresh-flood"];

#[derive(Clone)]
pub struct Options {
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
        scenarios: [
            "jwks",
            "authz",
            "login",
            "refresh",
            "isolation",
            "slot-hold",
            "forgot-flood",
            "login-flood",
            "refresh-flood",
        ]
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
        Storage::memory()
    } else {
        target::real_storage().await
    };
    let (attack_names, core): (Vec<&String>, Vec<&String>) = o
        .scenarios
        .iter()
        .partition(|s| ATTACKS.contains(&s.as_str()));
    let result = async {
        let mut rows = Vec::new();
        if !core.is_empty() {
            rows.extend(core_scenarios(&o, &binary, &storage, &ceilings, &core).await?);
        }
        // Each attack runs its own authd, alone on the storage (an email claimed by another
        // process would not show its link to this one).
        for scenario in attack_names {
            eprintln!(
                "scenario {scenario}: {} connections, {:?}",
                o.connections, o.duration
            );
            rows.extend(match scenario.as_str() {
                "slot-hold" => attacks::slot_hold(&o, &binary, &storage).await?,
                "forgot-flood" => attacks::forgot_flood(&o, &binary, &storage).await?,
                "login-flood" => attacks::login_flood(&o, &binary, &storage).await?,
                _ => attacks::refresh_flood(&o, &binary, &storage).await?,
            });
        }
        Ok::<_, String>(rows)
    }
    .await;
    // Dropping the storage removes the database and the Redis keys.
    drop(storage);
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

/// The scenarios that measure authd against the machine's ceilings, on one authd with
/// seeded users.
async fn core_scenarios(
    o: &Options,
    binary: &std::path::Path,
    storage: &Storage,
    ceilings: &ceilings::Ceilings,
    scenarios: &[&String],
) -> Result<Vec<Row>, String> {
    let o = o.clone();
    let authd = Authd::start(binary, storage, o.cost, &o.env).await?;
    eprintln!(
        "seeding {} verified users at bcrypt cost {}…",
        o.users, o.cost
    );
    let users = Arc::new(authd.seed(o.users).await?);
    let addr = authd.addr;
    let mut rows = Vec::new();
    for scenario in scenarios {
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
            "authz" => {
                let states = access_tokens(addr, &users, o.connections).await?;
                let stats = run_load("authz", &o, addr, states, authz_step).await;
                rows.push(row(
                    "authz",
                    stats,
                    Some(("trivial server", ceilings.trivial_server_rps, 0.5)),
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
                    Some((
                        "RS256 signatures",
                        ceilings.rs256_per_sec,
                        refresh_target(&o),
                    )),
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
    Ok(rows)
}

/// The refresh scenario's target, as a share of the RS256 ceiling (issue 15): on the
/// embedded default the machine's RSA capacity is nearly all there is to spend; with
/// PostgreSQL and Redis on the same cores, their share of each rotation comes off it.
fn refresh_target(o: &Options) -> f64 {
    if o.memory {
        0.90
    } else {
        0.75
    }
}

fn main() -> std::process::ExitCode {
    // The slot-hold attack opens thousands of connections from this process.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
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
