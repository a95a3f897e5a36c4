//! The HTTP section: where authd listens, who may call it from a browser, and how long
//! clients may take.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use super::source::Reader;
use crate::http::admin_secret::AdminSecret;
use crate::http::client::TrustedProxies;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// External base URL without a trailing slash; `None` means "derive from the bound
    /// address", which is only known after binding (`AUTH_LISTEN` may ask for port 0).
    pub public_url: Option<String>,
    /// Allowed CORS origins, lower-cased.
    pub cors_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Second address, for `/metrics` (and the admin API): then not served publicly.
    pub admin_listen: Option<SocketAddr>,
    /// The admin API's secret (`AUTH_ADMIN_TOKEN_FILE`); `None`: no admin API.
    pub admin_secret: Option<AdminSecret>,
    pub max_connections: usize,
    /// Open connections per TCP peer (trusted proxies exempt).
    pub max_connections_per_client: usize,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// How long one request may take, body reading included.
    pub request_timeout: Duration,
    /// How long in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
}

impl HttpConfig {
    pub(super) fn read(r: &mut Reader) -> HttpConfig {
        HttpConfig {
            listen: r.parse(
                "AUTH_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
                parse_listen,
            ),
            public_url: r.parse("AUTH_PUBLIC_URL", None, |v| parse_base_url(v).map(Some)),
            cors_origins: r.list("AUTH_CORS_ORIGINS", parse_origin),
            trusted_proxies: TrustedProxies::new(
                r.list("AUTH_TRUSTED_PROXIES", TrustedProxies::parse),
            ),
            admin_listen: r.parse("AUTH_ADMIN_LISTEN", None, |v| parse_listen(v).map(Some)),
            admin_secret: r.parse("AUTH_ADMIN_TOKEN_FILE", None, |path| {
                AdminSecret::from_file(Path::new(path)).map(Some)
            }),
            max_connections: r.number("AUTH_MAX_CONNECTIONS", 4096usize, (1, 1_000_000)),
            max_connections_per_client: r.number(
                "AUTH_MAX_CONNECTIONS_PER_CLIENT",
                128usize,
                (1, 1_000_000),
            ),
            idle_timeout: r.positive_duration("AUTH_IDLE_TIMEOUT", Duration::from_secs(60)),
            header_read_timeout: r
                .positive_duration("AUTH_HEADER_READ_TIMEOUT", Duration::from_secs(10)),
            request_timeout: r.positive_duration("AUTH_REQUEST_TIMEOUT", Duration::from_secs(30)),
            shutdown_grace: r.duration("AUTH_SHUTDOWN_GRACE", Duration::from_secs(10)),
        }
    }
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

fn parse_origin(origin: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_accepts_the_port_only_form() {
        assert_eq!(parse_listen(":0"), Ok("0.0.0.0:0".parse().unwrap()));
        assert!(parse_listen("nowhere").is_err());
    }

    #[test]
    fn base_urls_and_origins_are_checked() {
        assert_eq!(
            parse_base_url("https://auth.example/"),
            Ok("https://auth.example".into())
        );
        assert!(parse_base_url("auth.example").is_err());
        assert!(parse_base_url("https://auth.example/?x").is_err());
        assert_eq!(
            parse_origin("https://App.Example"),
            Ok("https://app.example".into())
        );
        assert!(parse_origin("https://app.example/path").is_err());
        assert!(parse_origin("ftp://app.example").is_err());
    }
}
