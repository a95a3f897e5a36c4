//! Prometheus text exposition, written by hand: a few counters and one histogram family do
//! not justify a metrics framework, and every label value here comes from a fixed set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A metric's labels as `(name, value)` pairs.
type Labels = Vec<(&'static str, &'static str)>;

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    /// (metric name, labels) → count; labels are `(name, value)` pairs from fixed sets.
    events: BTreeMap<(&'static str, Labels), u64>,
}

/// The process's counters. Cheap to update: one uncontended lock per event.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Values read at scrape time rather than counted.
pub struct Gauges {
    pub bcrypt_queue: usize,
    pub outbox_backlog: Option<(u64, Duration)>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "authd_refresh_total",
        "counter",
        "Refresh attempts by outcome.",
    ),
    (
        "authd_rate_limited_total",
        "counter",
        "Requests refused by a rate limit.",
    ),
    (
        "authd_shed_total",
        "counter",
        "Requests shed with 503 because a CPU pool (bcrypt or RSA) was full, by route.",
    ),
    (
        "authd_emails_total",
        "counter",
        "Emails by outcome: queued, sent, retried, failed.",
    ),
    (
        "authd_dependency_errors_total",
        "counter",
        "Storage calls that failed.",
    ),
    (
        "authd_account_events_total",
        "counter",
        "Account lifecycle events: email_change_requested, email_changed, deleted.",
    ),
    (
        "authd_admin_actions_total",
        "counter",
        "Admin API actions by kind.",
    ),
];

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut inner) = self.inner.lock() {
            f(&mut inner);
        }
    }

    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.with(|m| {
            *m.requests.entry((route, status)).or_default() += 1;
            let h = m.latency.entry(route).or_default();
            let secs = elapsed.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        });
    }

    fn event(&self, metric: &'static str, labels: &[(&'static str, &'static str)]) {
        self.events(metric, labels, 1);
    }

    fn events(&self, metric: &'static str, labels: &[(&'static str, &'static str)], n: u64) {
        self.with(|m| *m.events.entry((metric, labels.to_vec())).or_default() += n);
    }

    /// A refresh outcome: rotated, reuse_detected, reuse_grace, unknown, expired, revoked.
    pub fn refresh(&self, outcome: &'static str) {
        self.event("authd_refresh_total", &[("outcome", outcome)]);
    }

    pub fn rate_limited(&self, limit: &'static str) {
        self.event("authd_rate_limited_total", &[("limit", limit)]);
    }

    /// A request refused because a CPU pool (bcrypt or RSA) was full, by route.
    pub fn shed(&self, route: &'static str) {
        self.event("authd_shed_total", &[("route", route)]);
    }

    pub fn email(&self, result: &'static str) {
        self.emails(result, 1);
    }

    pub fn emails(&self, result: &'static str, n: u64) {
        self.events("authd_emails_total", &[("result", result)], n);
    }

    /// An account lifecycle event: `email_change_requested`, `email_changed`, `deleted`.
    pub fn account(&self, event: &'static str) {
        self.event("authd_account_events_total", &[("event", event)]);
    }

    /// An admin action that did something, by kind (`lookup`, `disable`, `enable`,
    /// `revoke_sessions`, `verify`, `delete`).
    pub fn admin(&self, action: &'static str) {
        self.event("authd_admin_actions_total", &[("action", action)]);
    }

    /// A failed storage call: `kind` is `pool_timeout` (no pooled connection in time),
    /// `timeout` (the call took too long) or `error`.
    pub fn dependency_error(&self, dependency: &'static str, kind: &'static str) {
        self.event(
            "authd_dependency_errors_total",
            &[("dependency", dependency), ("kind", kind)],
        );
    }

    /// The exposition text (format 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let Ok(m) = self.inner.lock() else { return out };
        out.push_str("# HELP authd_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE authd_http_requests_total counter\n");
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "authd_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP authd_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE authd_http_request_duration_seconds histogram\n");
        for (route, h) in &m.latency {
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(out, "authd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "authd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "authd_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "authd_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((metric, labels), n) in m.events.iter().filter(|((metric, _), _)| metric == name) {
                let labels: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                let _ = writeln!(out, "{metric}{{{}}} {n}", labels.join(","));
            }
        }
        out.push_str(
            "# HELP authd_bcrypt_queue_depth Password checks waiting for a bcrypt thread.\n",
        );
        out.push_str("# TYPE authd_bcrypt_queue_depth gauge\n");
        let _ = writeln!(out, "authd_bcrypt_queue_depth {}", gauges.bcrypt_queue);
        if let Some((backlog, oldest)) = gauges.outbox_backlog {
            out.push_str("# HELP authd_outbox_backlog Emails queued and not yet sent or failed.\n");
            out.push_str("# TYPE authd_outbox_backlog gauge\n");
            let _ = writeln!(out, "authd_outbox_backlog {backlog}");
            out.push_str("# HELP authd_outbox_oldest_seconds Age of the oldest queued email.\n");
            out.push_str("# TYPE authd_outbox_oldest_seconds gauge\n");
            let _ = writeln!(out, "authd_outbox_oldest_seconds {}", oldest.as_secs_f64());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("login", 200, Duration::from_millis(3));
        m.request("login", 200, Duration::from_millis(300));
        m.refresh("rotated");
        let text = m.render(&Gauges {
            bcrypt_queue: 2,
            outbox_backlog: Some((1, Duration::from_secs(3))),
        });
        assert!(text.contains("authd_http_requests_total{route=\"login\",status=\"200\"} 2"));
        assert!(text.contains(
            "authd_http_request_duration_seconds_bucket{route=\"login\",le=\"0.005\"} 1"
        ));
        assert!(text
            .contains("authd_http_request_duration_seconds_bucket{route=\"login\",le=\"0.5\"} 2"));
        assert!(text.contains("authd_refresh_total{outcome=\"rotated\"} 1"));
        assert!(text.contains("authd_bcrypt_queue_depth 2"));
        assert!(text.contains("authd_outbox_backlog 1"));
    }
}
