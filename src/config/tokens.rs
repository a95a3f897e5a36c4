//! The tokens section: the keys access tokens are signed with and published under, their
//! claims, and every token lifetime.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::source::Reader;
use crate::jwt::{read_published_key, RsaPublicKey, SigningKey};

#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The key from `AUTH_SIGNING_KEY`; `None`: a throwaway one is generated at start-up.
    pub signing_key: Option<Arc<SigningKey>>,
    /// Retired keys still published (`AUTH_JWKS_EXTRA_KEYS`).
    pub retired_keys: Vec<RsaPublicKey>,
    /// `iss`; `None` means the public URL, known once the listener is bound.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub verify_ttl: Duration,
    pub reset_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    /// `max-age` of the JWKS response.
    pub jwks_max_age: Duration,
    /// Threads that sign access tokens.
    pub signing_workers: usize,
    /// Signatures that may wait for a thread; past it, logins and refreshes are refused
    /// with 503 before any change is made.
    pub signing_queue: usize,
}

impl TokenConfig {
    pub(super) fn read(r: &mut Reader) -> TokenConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let signing_key = r.parse("AUTH_SIGNING_KEY", None, |path| {
            SigningKey::from_pem_file(Path::new(path))
                .map(|key| Some(Arc::new(key)))
                .map_err(|e| format!("{path}: {e}"))
        });
        let retired_keys = r.list("AUTH_JWKS_EXTRA_KEYS", |path| {
            read_published_key(Path::new(path)).map_err(|e| format!("{path}: {e}"))
        });
        let access_ttl = r.positive_duration("AUTH_ACCESS_TTL", Duration::from_secs(30 * 60));
        let refresh_ttl = r.positive_duration("AUTH_REFRESH_TTL", Duration::from_secs(15 * 86_400));
        // An ended session is remembered (for its access tokens to be refused) only as
        // long as one of its refresh tokens is stored.
        if refresh_ttl < access_ttl {
            r.fail(
                "AUTH_REFRESH_TTL",
                "must be at least AUTH_ACCESS_TTL (a session's access tokens must not outlive its refresh tokens)",
            );
        }
        TokenConfig {
            signing_key,
            retired_keys,
            issuer: r.string("AUTH_ISSUER"),
            audience: r.string("AUTH_AUDIENCE"),
            access_ttl,
            refresh_ttl,
            verify_ttl: r.positive_duration("AUTH_VERIFY_TTL", Duration::from_secs(4 * 3600)),
            reset_ttl: r.positive_duration("AUTH_RESET_TTL", Duration::from_secs(30 * 60)),
            refresh_reuse_grace: r.duration("AUTH_REFRESH_REUSE_GRACE", Duration::ZERO),
            jwks_max_age: r.duration("AUTH_JWKS_MAX_AGE", Duration::from_secs(300)),
            signing_workers: r.number("AUTH_SIGNING_WORKERS", cores, (1, 1024)),
            signing_queue: r.number("AUTH_SIGNING_QUEUE", 4096usize, (1, 1_000_000)),
        }
    }
}
