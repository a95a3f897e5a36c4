//! What a run reports: one row per scenario, as a table or as JSON.

use serde::Serialize;

use crate::ceilings::Ceilings;
use crate::load::Stats;

/// One scenario's outcome as reported.
#[derive(Serialize)]
pub struct Row {
    pub scenario: String,
    #[serde(flatten)]
    pub stats: Stats,
    /// The ceiling this scenario is compared with, in requests (or operations) per second.
    pub ceiling_name: Option<&'static str>,
    pub ceiling_rps: Option<f64>,
    pub ratio: Option<f64>,
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Serialize)]
pub struct Report {
    pub date: String,
    pub machine: String,
    pub backend: &'static str,
    pub bcrypt_cost: u32,
    pub connections: usize,
    pub seconds_per_scenario: f64,
    pub ceilings: Ceilings,
    pub rows: Vec<Row>,
}

/// A row compared with a ceiling of `rps` and a target ratio.
pub fn row(scenario: &str, stats: Stats, ceiling: Option<(&'static str, f64, f64)>) -> Row {
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

/// A row whose target is a bound on its p99 (and no errors), in milliseconds.
pub fn p99_row(name: &str, stats: Stats, bound_ms: f64) -> Row {
    let met = stats.p99_ms <= bound_ms && stats.errors.is_empty();
    Row {
        scenario: name.into(),
        ratio: Some(stats.p99_ms / 1000.0),
        stats,
        ceiling_name: Some("s p99"),
        ceiling_rps: None,
        target: Some(format!("p99 <= {:.0} s, 0 errors", bound_ms / 1000.0)),
        met: Some(met),
    }
}

/// A row for one measured delay against a bound, in seconds.
pub fn delay_row(name: &str, stats: Stats, delay: f64, bound: f64) -> Row {
    Row {
        scenario: name.into(),
        stats,
        ceiling_name: Some("s to the email"),
        ceiling_rps: None,
        ratio: Some(delay),
        target: Some(format!("<= {bound:.0} s")),
        met: Some(delay <= bound),
    }
}

/// A probe's p99 under load compared with its p99 when idle.
pub fn ratio_row(name: &str, busy: Stats, idle: &Stats) -> Row {
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
}

pub fn print_table(r: &Report) {
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
            (Some(ratio), Some(name)) if row.ceiling_rps.is_some() => {
                format!("{ratio:.2} of {name}")
            }
            (Some(ratio), Some(name)) => format!("{ratio:.2} {name}"),
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
