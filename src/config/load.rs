//! The whole configuration: every section, read and checked together.

use super::source::{ConfigError, Reader, Source};
use super::{
    BcryptConfig, HttpConfig, LimitConfig, LogConfig, MailConfig, StorageConfig, TokenConfig,
};

/// Everything authd reads from its environment, parsed.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub tokens: TokenConfig,
    pub bcrypt: BcryptConfig,
    pub limits: LimitConfig,
    pub mail: MailConfig,
    pub log: LogConfig,
}

impl Config {
    /// Reads and checks every variable. Returns every problem at once.
    pub fn load(source: &dyn Source) -> Result<Config, ConfigError> {
        let mut r = Reader::new(source);
        let config = Config {
            http: HttpConfig::read(&mut r),
            storage: StorageConfig::read(&mut r),
            tokens: TokenConfig::read(&mut r),
            bcrypt: BcryptConfig::read(&mut r),
            limits: LimitConfig::read(&mut r),
            mail: MailConfig::read(&mut r),
            log: LogConfig::read(&mut r),
        };
        if config.http.admin_secret.is_some() && config.http.admin_listen.is_none() {
            r.fail(
                "AUTH_ADMIN_TOKEN_FILE",
                "needs AUTH_ADMIN_LISTEN: the admin API is never served on the public listener",
            );
        }
        // A refresh on PostgreSQL waits for its rotation's outcome through up to three
        // database deadlines (its turn in the writer's queue, the write, settling a write
        // whose outcome is unknown), then signs: the request deadline must leave it that
        // and more, or a rotation that committed could be answered 408.
        let db_timeout = config.storage.db_timeout;
        let too_long = db_timeout
            .checked_mul(4)
            .is_none_or(|waits| waits > config.http.request_timeout);
        if config.storage.database.is_some() && too_long {
            r.fail(
                "AUTH_DB_TIMEOUT",
                format!(
                    "must be at most a quarter of AUTH_REQUEST_TIMEOUT ({}) on PostgreSQL, got {}",
                    humantime::format_duration(config.http.request_timeout),
                    humantime::format_duration(db_timeout)
                ),
            );
        }
        if r.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(r.problems))
        }
    }

    /// Warnings worth logging once logging is up (the config itself is valid).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.bcrypt.cost < 10 {
            out.push(format!(
                "AUTH_BCRYPT_COST={} is below 10: password hashes are cheap to brute-force",
                self.bcrypt.cost
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::config::LogFormat;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&map)
    }

    fn variables(err: &ConfigError) -> Vec<&'static str> {
        let mut names: Vec<_> = err.0.iter().map(|p| p.variable).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = load(&[]).unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.tokens.access_ttl, Duration::from_secs(1800));
        assert_eq!(c.tokens.refresh_ttl, Duration::from_secs(15 * 86_400));
        assert_eq!(c.tokens.verify_ttl, Duration::from_secs(4 * 3600));
        assert_eq!(c.tokens.reset_ttl, Duration::from_secs(1800));
        assert_eq!(c.tokens.refresh_reuse_grace, Duration::ZERO);
        assert_eq!(c.bcrypt.cost, 12);
        assert_eq!(
            (c.limits.resend.max, c.limits.resend.window),
            (3, Duration::from_secs(3600))
        );
        assert_eq!(c.limits.forgot, c.limits.resend);
        assert_eq!(
            (c.limits.login_failures.max, c.limits.login_failures.window),
            (10, Duration::from_secs(900))
        );
        assert_eq!(c.storage.redis_prefix, "authd:");
        assert_eq!(c.mail.from.to_string(), "authd <no-reply@localhost>");
        assert!(c.mail.smtp.is_none());
        assert!(c.http.cors_origins.is_empty());
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn refresh_tokens_may_not_die_before_their_access_tokens() {
        let err = load(&[("AUTH_REFRESH_TTL", "10m"), ("AUTH_ACCESS_TTL", "30m")]).unwrap_err();
        assert_eq!(variables(&err), ["AUTH_REFRESH_TTL"]);
        assert!(load(&[("AUTH_REFRESH_TTL", "30m"), ("AUTH_ACCESS_TTL", "30m")]).is_ok());
    }

    #[test]
    fn a_request_outlasts_the_database_waits_of_a_refresh() {
        let url = ("DATABASE_URL", "postgres://authd@127.0.0.1/authd");
        let err = load(&[
            url,
            ("AUTH_DB_TIMEOUT", "8s"),
            ("AUTH_REQUEST_TIMEOUT", "30s"),
        ])
        .unwrap_err();
        assert_eq!(variables(&err), ["AUTH_DB_TIMEOUT"]);
        assert!(
            err.to_string()
                .contains("at most a quarter of AUTH_REQUEST_TIMEOUT (30s)"),
            "{err}"
        );
        let ok = load(&[
            url,
            ("AUTH_DB_TIMEOUT", "7s"),
            ("AUTH_REQUEST_TIMEOUT", "30s"),
        ]);
        assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
        // The embedded store has no database deadline to leave room for.
        assert!(load(&[("AUTH_DB_TIMEOUT", "8s"), ("AUTH_REQUEST_TIMEOUT", "30s")]).is_ok());
    }

    #[test]
    fn every_bad_variable_is_reported_by_name() {
        let err = load(&[
            ("AUTH_ACCESS_TTL", "soon"),
            ("AUTH_BCRYPT_COST", "3"),
            ("AUTH_LISTEN", "nowhere"),
            ("AUTH_CORS_ORIGINS", "https://ok.example,ftp://bad"),
            ("AUTH_LOG_FORMAT", "xml"),
            ("AUTH_LOG", "authd=loud"),
        ])
        .unwrap_err();
        assert_eq!(
            variables(&err),
            [
                "AUTH_ACCESS_TTL",
                "AUTH_BCRYPT_COST",
                "AUTH_CORS_ORIGINS",
                "AUTH_LISTEN",
                "AUTH_LOG",
                "AUTH_LOG_FORMAT",
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
    fn no_value_can_make_a_request_overflow() {
        for (variable, value) in [
            ("AUTH_REFRESH_TTL", "18446744073709551615"),
            ("AUTH_ACCESS_TTL", "3651d"),
            ("AUTH_DB_TIMEOUT", "2h"),
            ("AUTH_RESEND_MAX", "4294967296"),
        ] {
            let err = load(&[(variable, value)]).unwrap_err();
            assert_eq!(variables(&err), [variable], "{value}");
        }
    }

    #[test]
    fn smtp_url_and_sender_are_parsed_and_never_printed() {
        let c = load(&[
            ("SMTP_URL", "smtps://user:s3cret@mail.example.com:465"),
            ("AUTH_MAIL_FROM", "no-reply@example.com"),
        ])
        .unwrap();
        assert!(c.mail.smtp.is_some());
        assert!(!format!("{c:?}").contains("s3cret"));
        let err = load(&[("SMTP_URL", "ftp://x"), ("AUTH_MAIL_FROM", "nobody")]).unwrap_err();
        assert_eq!(variables(&err), ["AUTH_MAIL_FROM", "SMTP_URL"]);
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
        assert!(c.storage.database.is_some() && c.storage.redis.is_some());
        assert!(!format!("{c:?}").contains("s3cret"));
        let err = load(&[
            ("DATABASE_URL", "not a url at all"),
            ("REDIS_URL", "http://x"),
        ])
        .unwrap_err();
        assert_eq!(variables(&err), ["DATABASE_URL", "REDIS_URL"]);
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn ca_files_and_keys_are_read_once_into_what_uses_them() {
        let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
        let c = load(&[
            ("AUTH_REDIS_CA", &format!("{testdata}/tls/ca.pem")),
            ("AUTH_SIGNING_KEY", &format!("{testdata}/signing-key.pem")),
            (
                "AUTH_JWKS_EXTRA_KEYS",
                &format!("{testdata}/retired-key.pub.pem, {testdata}/retired-key.pem"),
            ),
        ])
        .unwrap();
        assert_eq!(c.storage.redis_ca.unwrap().certs().len(), 1);
        assert!(c.tokens.signing_key.is_some());
        assert_eq!(c.tokens.retired_keys.len(), 2);
        let err = load(&[("AUTH_REDIS_CA", &format!("{testdata}/tls/server.key"))]).unwrap_err();
        assert_eq!(variables(&err), ["AUTH_REDIS_CA"]);
    }

    #[test]
    fn link_templates_need_the_token_placeholder() {
        assert!(load(&[("AUTH_VERIFY_URL", "https://app.example/verify")]).is_err());
        let c = load(&[("AUTH_VERIFY_URL", "https://app.example/verify#t={token}")]).unwrap();
        assert_eq!(
            c.mail.verify_url.unwrap().render("abc"),
            "https://app.example/verify#t=abc"
        );
    }

    #[test]
    fn low_bcrypt_cost_warns() {
        let c = load(&[("AUTH_BCRYPT_COST", "4")]).unwrap();
        assert_eq!(c.warnings().len(), 1);
        assert!(load(&[]).unwrap().warnings().is_empty());
    }
}
