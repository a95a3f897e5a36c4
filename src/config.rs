//! Configuration: every variable of SPEC §5, parsed and validated once at start-up.
//!
//! Variables are read through [`Source`] so tests pass a map instead of mutating the
//! process environment. [`Config::load`] reports *every* bad variable by name in one
//! error, so an operator fixes them all in one go.

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;

use crate::mail::smtp::parse_sender;
use crate::mail::SmtpUrl;

/// Where configuration values come from.
pub trait Source {
    /// The value of `key`, or `None` when it is unset. Empty values count as unset.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).filter(|v| !v.is_empty()).cloned()
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A link template containing `{token}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTemplate(String);

impl LinkTemplate {
    fn parse(raw: &str) -> Result<LinkTemplate, String> {
        if !raw.contains("{token}") {
            return Err("must contain {token}".into());
        }
        if !(raw.starts_with("http://") || raw.starts_with("https://")) {
            return Err("must be an http:// or https:// URL".into());
        }
        Ok(LinkTemplate(raw.to_string()))
    }

    /// A template built from the public URL, which the caller guarantees is http(s).
    pub fn parse_default(raw: &str) -> LinkTemplate {
        LinkTemplate(raw.to_string())
    }

    /// The link with the token in place.
    pub fn render(&self, token: &str) -> String {
        self.0.replace("{token}", token)
    }
}

/// A PostgreSQL URL. It may hold a password, so Debug never shows it.
///
/// `sslmode=require` and `sslmode=verify-full` both mean TLS with the server certificate
/// and host name verified (against the Mozilla roots, or the CA file in `sslrootcert`).
/// `disable`, `prefer` or no `sslmode` mean no TLS: authd never makes an unverified TLS
/// connection, which would protect against nobody who can tamper with the network.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Decodes `%XX` escapes in a URL query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<DatabaseUrl, String> {
        // tokio-postgres knows neither verify-full nor sslrootcert: take them out first.
        let (mut sslmode, mut rootcert) = (None, None);
        let rest = match raw.split_once('?') {
            Some((base, query))
                if raw.starts_with("postgres://") || raw.starts_with("postgresql://") =>
            {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| match pair.split_once('=') {
                        Some(("sslmode", v)) => {
                            sslmode = Some(percent_decode(v));
                            false
                        }
                        Some(("sslrootcert", v)) => {
                            rootcert = Some(PathBuf::from(percent_decode(v)));
                            false
                        }
                        _ => true,
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            _ => raw.to_string(),
        };
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| format!("is not a valid PostgreSQL URL ({e})"))?;
        if config.get_hosts().is_empty() {
            return Err("must name a host, e.g. postgres://user@127.0.0.1:5432/authd".into());
        }
        let verify = match sslmode.as_deref() {
            None => config.get_ssl_mode() == tokio_postgres::config::SslMode::Require,
            Some("disable" | "prefer") => false,
            Some("require" | "verify-full") => true,
            Some(other) => {
                return Err(format!("has sslmode={other}; use disable, require or verify-full (both verify the certificate)"))
            }
        };
        let tls = if verify {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let ca = rootcert
                .as_deref()
                .map(crate::tls::read_ca_file)
                .transpose()
                .map_err(|e| format!("sslrootcert: {e}"))?;
            Some(crate::tls::client_config(ca.as_deref())?)
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        };
        Ok(DatabaseUrl { config, tls })
    }

    /// The parsed connection settings.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        self.config.clone()
    }

    /// The TLS settings, when the URL asks for TLS.
    pub fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

/// One Redis URL (`rediss://` for TLS), or several comma-separated nodes of a Redis
/// Cluster. It may hold a password, so Debug never shows it.
#[derive(Clone)]
pub struct RedisUrl {
    nodes: Vec<String>,
    cluster: bool,
}

impl RedisUrl {
    /// `cluster` forces cluster mode for a single seed node.
    fn parse(raw: &str, cluster: bool) -> Result<RedisUrl, String> {
        let nodes: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        for node in &nodes {
            if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
                return Err("must start with redis:// or rediss:// (TLS)".into());
            }
            // The redis crate skips certificate checks for `#insecure`; authd never does.
            if node.contains('#') {
                return Err(
                    "must not have a #fragment (authd always verifies TLS certificates)".into(),
                );
            }
            redis::Client::open(node.as_str())
                .map_err(|e| format!("is not a valid Redis URL ({e})"))?;
        }
        if nodes.is_empty() {
            return Err("names no Redis node".into());
        }
        Ok(RedisUrl {
            cluster: cluster || nodes.len() > 1,
            nodes,
        })
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisUrl(<redacted>)")
    }
}

/// Everything authd reads from its environment, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL; `None` keeps users, sessions and the outbox in memory.
    pub database_url: Option<DatabaseUrl>,
    /// Redis; `None` keeps one-time tokens and rate limits in memory.
    pub redis_url: Option<RedisUrl>,
    pub db_pool_size: usize,
    /// Bound on one database operation, pool wait included.
    pub db_timeout: Duration,
    /// Bound on one Redis command, connecting included.
    pub redis_timeout: Duration,
    /// PEM certificates trusted for `rediss://` instead of the Mozilla roots.
    pub redis_ca: Option<Vec<u8>>,
    pub listen: SocketAddr,
    /// External base URL without a trailing slash; `None` means "derive from the bound
    /// address", which is only known after binding (`AUTH_LISTEN` may ask for port 0).
    pub public_url: Option<String>,
    /// SMTP server; `None` writes emails to the log instead.
    pub smtp_url: Option<SmtpUrl>,
    pub mail_from: Mailbox,
    pub verify_url: Option<LinkTemplate>,
    pub reset_url: Option<LinkTemplate>,
    pub signing_key: Option<PathBuf>,
    pub extra_keys: Vec<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub verify_ttl: Duration,
    pub reset_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub bcrypt_cost: u32,
    pub bcrypt_workers: usize,
    pub bcrypt_queue: usize,
    pub resend_max: u32,
    pub resend_window: Duration,
    pub login_max_failures: u32,
    pub login_window: Duration,
    pub redis_prefix: String,
    pub cors_origins: Vec<String>,
    pub jwks_max_age: Duration,
    pub max_connections: usize,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// How long one request may take, body reading included.
    pub request_timeout: Duration,
    /// How long in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// How long a worker's claim on an email lasts: after a crash, the email is sent by
    /// another worker this much later.
    pub outbox_lease: Duration,
    pub log: String,
    pub log_format: LogFormat,
}

/// One bad variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    pub message: String,
}

/// Every bad variable found, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems while reading variables one by one.
struct Reader<'a> {
    source: &'a dyn Source,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn fail(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            variable,
            message: message.into(),
        });
    }

    /// Reads `key` with `parse`, falling back to `default` when unset or invalid
    /// (an invalid value is recorded as a problem, so the fallback is never used for real).
    fn parse<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.source.get(key) {
            None => default,
            Some(raw) => match parse(raw.trim()) {
                Ok(v) => v,
                Err(msg) => {
                    self.fail(key, msg);
                    default
                }
            },
        }
    }

    fn string(&mut self, key: &'static str) -> Option<String> {
        self.source.get(key).map(|v| v.trim().to_string())
    }

    fn duration(&mut self, key: &'static str, default: Duration) -> Duration {
        self.parse(key, default, parse_duration)
    }

    fn number<T>(&mut self, key: &'static str, default: T, range: (T, T)) -> T
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.parse(key, default, |raw| {
            let v: T = raw
                .parse()
                .map_err(|_| format!("must be a whole number, got {raw:?}"))?;
            if v < range.0 || v > range.1 {
                return Err(format!(
                    "must be between {} and {}, got {v}",
                    range.0, range.1
                ));
            }
            Ok(v)
        })
    }
}

/// Parses `30m`, `15d`, `4h`, `90s`, `0s` or a plain number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let bad =
        || format!("must be a duration such as 90s, 30m, 4h, 15d or plain seconds, got {raw:?}");
    let (digits, unit) = match raw.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&raw[..i], c),
        Some(_) => (raw, 's'),
        None => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    // Go-style ":8080" means every interface, as operators coming from other services expect.
    let full = if raw.starts_with(':') {
        format!("0.0.0.0{raw}")
    } else {
        raw.to_string()
    };
    full.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("must be host:port (e.g. 127.0.0.1:8080 or :8080), got {raw:?}"))
}

fn parse_base_url(raw: &str) -> Result<String, String> {
    let url = raw.trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("must start with http:// or https://, got {raw:?}"))?;
    if rest.is_empty() || rest.contains(['?', '#']) || rest.chars().any(char::is_whitespace) {
        return Err(format!(
            "must be a base URL without query or fragment, got {raw:?}"
        ));
    }
    Ok(url.to_string())
}

fn parse_origin(raw: &str) -> Result<String, String> {
    let origin = raw.trim();
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("origin {origin:?} must start with http:// or https://"))?;
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '*'])
        || rest.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "origin {origin:?} must be scheme://host[:port] with no path"
        ));
    }
    Ok(origin.to_ascii_lowercase())
}

impl Config {
    /// Reads and validates every variable. Returns every problem at once.
    pub fn load(source: &dyn Source) -> Result<Config, ConfigError> {
        let mut r = Reader {
            source,
            problems: Vec::new(),
        };

        let database_url = r.parse("DATABASE_URL", None, |v| DatabaseUrl::parse(v).map(Some));
        let redis_cluster = r.parse("AUTH_REDIS_CLUSTER", false, |v| match v {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(format!("must be true or false, got {v:?}")),
        });
        let redis_url = r.parse("REDIS_URL", None, |v| {
            RedisUrl::parse(v, redis_cluster).map(Some)
        });
        let db_pool_size = r.number("AUTH_DB_POOL_SIZE", 16usize, (1, 10_000));
        let db_timeout = r.duration("AUTH_DB_TIMEOUT", Duration::from_secs(2));
        let redis_timeout = r.duration("AUTH_REDIS_TIMEOUT", Duration::from_secs(1));
        let redis_ca = r.parse("AUTH_REDIS_CA", None, |v| {
            crate::tls::read_ca_file(std::path::Path::new(v))?;
            std::fs::read(v)
                .map(Some)
                .map_err(|e| format!("cannot read {v}: {e}"))
        });
        for (key, timeout) in [
            ("AUTH_DB_TIMEOUT", db_timeout),
            ("AUTH_REDIS_TIMEOUT", redis_timeout),
        ] {
            if timeout.is_zero() {
                r.fail(key, "must be longer than 0s");
            }
        }
        let smtp_url = r.parse("SMTP_URL", None, |v| SmtpUrl::parse(v).map(Some));

        let listen = r.parse(
            "AUTH_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            parse_listen,
        );
        let public_url = r.parse("AUTH_PUBLIC_URL", None, |v| parse_base_url(v).map(Some));
        let default_sender = parse_sender("authd <no-reply@localhost>")
            .expect("the default sender is a valid mailbox");
        let mail_from = r.parse("AUTH_MAIL_FROM", default_sender, parse_sender);
        let verify_url = r.parse("AUTH_VERIFY_URL", None, |v| {
            LinkTemplate::parse(v).map(Some)
        });
        let reset_url = r.parse("AUTH_RESET_URL", None, |v| LinkTemplate::parse(v).map(Some));
        let signing_key = r.string("AUTH_SIGNING_KEY").map(PathBuf::from);
        let extra_keys: Vec<PathBuf> = r
            .string("AUTH_JWKS_EXTRA_KEYS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        // Key files are parsed at start-up; here we only make sure they can be read, so a
        // missing file is reported together with every other bad variable.
        for (key, path) in signing_key
            .iter()
            .map(|p| ("AUTH_SIGNING_KEY", p))
            .chain(extra_keys.iter().map(|p| ("AUTH_JWKS_EXTRA_KEYS", p)))
        {
            if let Err(e) = std::fs::File::open(path) {
                r.fail(key, format!("cannot read {}: {e}", path.display()));
            }
        }
        let issuer = r.string("AUTH_ISSUER");
        let audience = r.string("AUTH_AUDIENCE");
        let access_ttl = r.duration("AUTH_ACCESS_TTL", Duration::from_secs(30 * 60));
        let refresh_ttl = r.duration("AUTH_REFRESH_TTL", Duration::from_secs(15 * 86_400));
        let verify_ttl = r.duration("AUTH_VERIFY_TTL", Duration::from_secs(4 * 3600));
        let reset_ttl = r.duration("AUTH_RESET_TTL", Duration::from_secs(30 * 60));
        let refresh_reuse_grace = r.duration("AUTH_REFRESH_REUSE_GRACE", Duration::ZERO);
        for (key, ttl) in [
            ("AUTH_ACCESS_TTL", access_ttl),
            ("AUTH_REFRESH_TTL", refresh_ttl),
            ("AUTH_VERIFY_TTL", verify_ttl),
            ("AUTH_RESET_TTL", reset_ttl),
        ] {
            if ttl.is_zero() {
                r.fail(key, "must be longer than 0s");
            }
        }
        let bcrypt_cost = r.number("AUTH_BCRYPT_COST", 12u32, (4, 31));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let bcrypt_workers = r.number("AUTH_BCRYPT_WORKERS", cores, (1, 1024));
        let bcrypt_queue = r.number("AUTH_BCRYPT_QUEUE", 32 * bcrypt_workers, (1, 1_000_000));
        let resend_max = r.number("AUTH_RESEND_MAX", 3u32, (1, u32::MAX));
        let resend_window = r.duration("AUTH_RESEND_WINDOW", Duration::from_secs(3600));
        let login_max_failures = r.number("AUTH_LOGIN_MAX_FAILURES", 10u32, (1, u32::MAX));
        let login_window = r.duration("AUTH_LOGIN_WINDOW", Duration::from_secs(15 * 60));
        for (key, window) in [
            ("AUTH_RESEND_WINDOW", resend_window),
            ("AUTH_LOGIN_WINDOW", login_window),
        ] {
            if window.is_zero() {
                r.fail(key, "must be longer than 0s");
            }
        }
        let redis_prefix = r
            .string("AUTH_REDIS_PREFIX")
            .unwrap_or_else(|| "authd:".into());
        let cors_origins = r.parse("AUTH_CORS_ORIGINS", Vec::new(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(parse_origin)
                .collect()
        });
        let jwks_max_age = r.duration("AUTH_JWKS_MAX_AGE", Duration::from_secs(300));
        let max_connections = r.number("AUTH_MAX_CONNECTIONS", 4096usize, (1, 1_000_000));
        let header_read_timeout = r.duration("AUTH_HEADER_READ_TIMEOUT", Duration::from_secs(10));
        let request_timeout = r.duration("AUTH_REQUEST_TIMEOUT", Duration::from_secs(30));
        let shutdown_grace = r.duration("AUTH_SHUTDOWN_GRACE", Duration::from_secs(10));
        let outbox_lease = r.duration("AUTH_OUTBOX_LEASE", Duration::from_secs(60));
        if outbox_lease < Duration::from_secs(1) {
            r.fail("AUTH_OUTBOX_LEASE", "must be at least 1s");
        }
        for (key, value) in [
            ("AUTH_HEADER_READ_TIMEOUT", header_read_timeout),
            ("AUTH_REQUEST_TIMEOUT", request_timeout),
        ] {
            if value.is_zero() {
                r.fail(key, "must be longer than 0s");
            }
        }
        let log = r.string("AUTH_LOG").unwrap_or_else(|| "info".into());
        if log.parse::<tracing_subscriber::filter::Targets>().is_err() {
            r.fail(
                "AUTH_LOG",
                format!("must be a filter such as info or authd=debug,warn, got {log:?}"),
            );
        }
        let log_format = r.parse("AUTH_LOG_FORMAT", LogFormat::Text, |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("must be text or json, got {v:?}")),
        });

        if !r.problems.is_empty() {
            return Err(ConfigError(r.problems));
        }
        Ok(Config {
            database_url,
            redis_url,
            db_pool_size,
            db_timeout,
            redis_timeout,
            redis_ca,
            listen,
            public_url,
            smtp_url,
            mail_from,
            verify_url,
            reset_url,
            signing_key,
            extra_keys,
            issuer,
            audience,
            access_ttl,
            refresh_ttl,
            verify_ttl,
            reset_ttl,
            refresh_reuse_grace,
            bcrypt_cost,
            bcrypt_workers,
            bcrypt_queue,
            resend_max,
            resend_window,
            login_max_failures,
            login_window,
            redis_prefix,
            cors_origins,
            jwks_max_age,
            max_connections,
            header_read_timeout,
            request_timeout,
            shutdown_grace,
            outbox_lease,
            log,
            log_format,
        })
    }

    /// Warnings worth logging once logging is up (the config itself is valid).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.bcrypt_cost < 10 {
            out.push(format!(
                "AUTH_BCRYPT_COST={} is below 10: password hashes are cheap to brute-force",
                self.bcrypt_cost
            ));
        }
        out
    }
}

/// Formats a duration for people: "4 hours", "30 minutes", "90 seconds".
pub fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs % 86_400 == 0 && secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs % 3600 == 0 && secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 && secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&map)
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.access_ttl, Duration::from_secs(1800));
        assert_eq!(c.refresh_ttl, Duration::from_secs(15 * 86_400));
        assert_eq!(c.verify_ttl, Duration::from_secs(4 * 3600));
        assert_eq!(c.reset_ttl, Duration::from_secs(1800));
        assert_eq!(c.refresh_reuse_grace, Duration::ZERO);
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(
            (c.resend_max, c.resend_window),
            (3, Duration::from_secs(3600))
        );
        assert_eq!(
            (c.login_max_failures, c.login_window),
            (10, Duration::from_secs(900))
        );
        assert_eq!(c.redis_prefix, "authd:");
        assert_eq!(c.mail_from.to_string(), "authd <no-reply@localhost>");
        assert!(c.smtp_url.is_none());
        assert!(c.cors_origins.is_empty());
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn durations_accept_suffixes_and_plain_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(14_400)));
        assert_eq!(parse_duration("15d"), Ok(Duration::from_secs(1_296_000)));
        for bad in [
            "",
            "m",
            "-5s",
            "1.5h",
            "10x",
            "1h30m",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_bad_variable_is_reported_by_name() {
        let err = load(&[
            ("AUTH_ACCESS_TTL", "soon"),
            ("AUTH_BCRYPT_COST", "3"),
            ("AUTH_LISTEN", "nowhere"),
            ("AUTH_CORS_ORIGINS", "https://ok.example,ftp://bad"),
            ("AUTH_LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        let names: Vec<_> = err.0.iter().map(|p| p.variable).collect();
        assert_eq!(
            names,
            [
                "AUTH_LISTEN",
                "AUTH_ACCESS_TTL",
                "AUTH_BCRYPT_COST",
                "AUTH_CORS_ORIGINS",
                "AUTH_LOG_FORMAT"
            ]
        );
        let line = err.to_string();
        assert!(!line.contains('\n'));
        assert!(
            line.contains("AUTH_BCRYPT_COST must be between 4 and 31, got 3"),
            "{line}"
        );
    }

    #[test]
    fn smtp_url_and_sender_are_validated() {
        let c = load(&[
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
            ("AUTH_MAIL_FROM", "no-reply@example.com"),
        ])
        .unwrap();
        assert!(c.smtp_url.is_some());
        let err = load(&[("SMTP_URL", "ftp://x"), ("AUTH_MAIL_FROM", "nobody")]).unwrap_err();
        let names: Vec<_> = err.0.iter().map(|p| p.variable).collect();
        assert_eq!(names, ["SMTP_URL", "AUTH_MAIL_FROM"]);
    }

    #[test]
    fn storage_urls_are_parsed_and_never_printed() {
        let c = load(&[
            (
                "DATABASE_URL",
                "postgres://authd:s3cret@db.example:5432/authd",
            ),
            ("REDIS_URL", "redis://:s3cret@cache.example:6379/0"),
        ])
        .unwrap();
        assert!(c.database_url.is_some() && c.redis_url.is_some());
        assert!(!format!("{c:?}").contains("s3cret"));
        let err = load(&[
            ("DATABASE_URL", "not a url at all"),
            ("REDIS_URL", "http://x"),
        ])
        .unwrap_err();
        assert_eq!(err.0[0].variable, "DATABASE_URL");
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn database_tls_follows_sslmode_and_verifies() {
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tls/ca.pem");
        let plain = DatabaseUrl::parse("postgres://u@h:5432/db").unwrap();
        assert!(plain.tls().is_none());
        assert!(DatabaseUrl::parse("postgres://u@h/db?sslmode=prefer")
            .unwrap()
            .tls()
            .is_none());
        let full = DatabaseUrl::parse(&format!(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert={ca}&application_name=authd"
        ))
        .unwrap();
        assert!(full.tls().is_some());
        assert_eq!(full.pg_config().get_application_name(), Some("authd"));
        assert!(DatabaseUrl::parse("postgres://u@h/db?sslmode=require")
            .unwrap()
            .tls()
            .is_some());
        let missing =
            DatabaseUrl::parse("postgres://u@h/db?sslmode=require&sslrootcert=/nonexistent.pem");
        assert!(missing.unwrap_err().contains("sslrootcert"));
    }

    #[test]
    fn listen_accepts_port_only_form() {
        let c = load(&[("AUTH_LISTEN", ":0")]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:0".parse().unwrap());
    }

    #[test]
    fn link_templates_need_the_token_placeholder() {
        assert!(load(&[("AUTH_VERIFY_URL", "https://app.example/verify")]).is_err());
        let c = load(&[("AUTH_VERIFY_URL", "https://app.example/verify#t={token}")]).unwrap();
        assert_eq!(
            c.verify_url.unwrap().render("abc"),
            "https://app.example/verify#t=abc"
        );
    }

    #[test]
    fn low_bcrypt_cost_warns() {
        let c = load(&[("AUTH_BCRYPT_COST", "4")]).unwrap();
        assert_eq!(c.warnings().len(), 1);
        assert!(load(&[]).unwrap().warnings().is_empty());
    }

    #[test]
    fn humanize_picks_the_largest_whole_unit() {
        assert_eq!(humanize(Duration::from_secs(4 * 3600)), "4 hours");
        assert_eq!(humanize(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(humanize(Duration::from_secs(86_400)), "1 day");
        assert_eq!(humanize(Duration::from_secs(90)), "90 seconds");
    }
}
