//! `DATABASE_URL`, parsed once: the connection settings and, when asked for, TLS.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_postgres::config::SslMode;

use crate::tls::CaFile;

/// A PostgreSQL URL, parsed. tokio-postgres' own Debug redacts the password.
///
/// `sslmode=require` and `sslmode=verify-full` both mean TLS with the server certificate
/// and host name verified (against the Mozilla roots, or the CA file in `sslrootcert`).
/// `disable`, `prefer` or no `sslmode` mean no TLS: authd never makes an unverified TLS
/// connection, which would protect against nobody who can tamper with the network.
#[derive(Debug, Clone)]
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
    /// Parses the URL; the message names what is wrong, never the password.
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
            None => config.get_ssl_mode() == SslMode::Require,
            Some("disable" | "prefer") => false,
            Some("require" | "verify-full") => true,
            Some(other) => {
                return Err(format!(
                    "has sslmode={other}; use disable, require or verify-full (both verify the certificate)"
                ))
            }
        };
        let tls = if verify {
            config.ssl_mode(SslMode::Require);
            let ca = rootcert
                .as_deref()
                .map(CaFile::read)
                .transpose()
                .map_err(|e| format!("sslrootcert: {e}"))?;
            Some(crate::tls::client_config(ca.as_ref())?)
        } else {
            config.ssl_mode(SslMode::Disable);
            None
        };
        Ok(DatabaseUrl { config, tls })
    }

    /// The parsed connection settings.
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS settings, when the URL asks for TLS.
    pub fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_follows_sslmode_and_verifies() {
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
    fn debug_never_shows_the_password() {
        let url = DatabaseUrl::parse("postgres://authd:s3cret@db.example:5432/authd").unwrap();
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
