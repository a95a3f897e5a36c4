//! `App::build`: storage, keys, pools, services and the mail worker, wired once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use ring::rand::SystemRandom;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::connections::Connections;
use crate::clock::{Clock, SystemClock};
use crate::config::{BcryptConfig, Config, HttpConfig, TokenConfig};
use crate::cpu_pool::{CpuPool, Priority};
use crate::handlers::{Prepared, State};
use crate::hasher::Hasher;
use crate::http::cors::Cors;
use crate::jwt::{KeyError, KeyRing, Signer, SigningKey, Verifier};
use crate::mail::worker::{Settings as MailSettings, Worker};
use crate::mail::{LinkTemplate, LogMailer, Mailer, SmtpMailer};
use crate::metrics::Metrics;
use crate::repo::{self, OpenError, RefreshTokens};
use crate::router::Serving;
use crate::service::{
    AccessTokens, Accounts, Admin, ClientLimits, EmailChanges, Health, Letters, Mailroom,
    Passwords, Removal, Revocations, Sessions, Shared,
};

/// Connections the admin listener holds at most: a few scrapers and operators.
const ADMIN_CONNECTIONS: usize = 64;
/// File descriptors kept for what is not a client connection: listeners, Redis, files, the
/// runtime — besides the PostgreSQL pools and the outbox's SMTP connections.
const FD_RESERVE: u64 = 128;

/// How many client connections authd serves: `AUTH_MAX_CONNECTIONS`, lowered to what the
/// open-file limit leaves after authd's own connections. The soft limit is first raised to
/// the hard one (as Go's runtime and nginx's `worker_rlimit_nofile` do): service managers
/// often start services with a soft limit of 1024.
fn connection_cap(config: &Config) -> usize {
    let wanted = config.http.max_connections;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            return wanted;
        }
    };
    // The request pool, and the housekeeping, revocation-reading and rotation-writing
    // connections.
    let own = FD_RESERVE
        + config.storage.db_pool_size as u64
        + 3
        + ADMIN_CONNECTIONS as u64
        + config.mail.outbox_concurrency as u64;
    // Connections asked to close may overstay the cap by a sixteenth (and 16) meanwhile.
    let room = limit.saturating_sub(own).saturating_sub(16) * 16 / 17;
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
    if room < wanted {
        tracing::warn!(
            open_file_limit = limit,
            reserved = own,
            max_connections = room,
            "AUTH_MAX_CONNECTIONS lowered to what the open-file limit allows"
        );
        return room;
    }
    tracing::info!(
        open_file_limit = limit,
        reserved = own,
        max_connections = wanted,
        "open-file limit"
    );
    wanted
}

/// How many times the outbox worker tries an email before giving up on it.
const MAIL_ATTEMPTS: u32 = 10;
/// How often the outbox worker looks for due emails when nothing wakes it.
const MAIL_POLL: Duration = Duration::from_secs(1);

/// Why authd could not start: one line, naming the variable or resource at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{variable}: cannot listen on {address}: {cause}")]
    Listen {
        variable: &'static str,
        address: SocketAddr,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] OpenError),
    #[error("AUTH_SIGNING_KEY: {0}")]
    Key(#[from] KeyError),
    #[error("AUTH_BCRYPT_COST: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What a test (or the bench) may put in place of the real thing.
#[derive(Default)]
pub struct Overrides {
    /// Instead of SMTP or the log (tests capture emails this way).
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Instead of the system clock (tests move time forward).
    pub clock: Option<Arc<dyn Clock>>,
}

/// A built, bound, not yet serving authd.
pub struct App {
    pub(super) listener: TcpListener,
    /// The admin listener (`AUTH_ADMIN_LISTEN`) and its connections.
    pub(super) admin: Option<(TcpListener, Arc<Connections>)>,
    pub(super) connections: Arc<Connections>,
    pub(super) revocations: Arc<Revocations>,
    pub(super) local_addr: SocketAddr,
    pub(super) public_url: String,
    pub(super) state: Arc<State>,
    pub(super) worker: Worker,
    pub(super) mail_wake: Arc<Notify>,
    pub(super) refresh_tokens: Arc<dyn RefreshTokens>,
    pub(super) outbox: Arc<dyn repo::Outbox>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) http: HttpConfig,
}

impl App {
    /// Builds authd as the configuration says: SMTP when `SMTP_URL` is set, otherwise the
    /// log; the system clock.
    pub async fn build(config: Config) -> Result<App, StartError> {
        App::build_with(config, Overrides::default()).await
    }

    pub async fn build_with(config: Config, overrides: Overrides) -> Result<App, StartError> {
        let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let keys = load_keys(&config.tokens).await?;
        let (listener, local_addr) = bind("AUTH_LISTEN", config.http.listen).await?;
        let admin = match config.http.admin_listen {
            Some(address) => Some(bind("AUTH_ADMIN_LISTEN", address).await?.0),
            None => None,
        };
        let max_connections = connection_cap(&config);
        let public_url = config
            .http
            .public_url
            .clone()
            .unwrap_or_else(|| default_public_url(local_addr));
        let issuer = config.tokens.issuer.clone().unwrap_or(public_url.clone());
        let discovery = discovery(&config.tokens, &issuer, &public_url);
        let (signer, verifier, jwks) = access_tokens(keys, &config.tokens, issuer);

        let metrics = Arc::new(Metrics::default());
        let repos = repo::open(&config.storage, Arc::clone(&metrics), Arc::clone(&clock)).await?;
        let mail_wake = Arc::new(Notify::new());
        let revocations = Arc::new(Revocations::new(
            Arc::clone(&repos.refresh_tokens),
            config.tokens.access_ttl,
            Arc::clone(&clock),
            config.storage.database.is_none(),
        ));
        // Best effort: bearer checks answer 503 until a read succeeds (the poller retries).
        if let Err(e) = revocations.catch_up().await {
            tracing::warn!(error = %e, "cannot read ended sessions yet");
        }
        let shared = Shared {
            revocations: Arc::clone(&revocations),
            mailroom: Arc::new(Mailroom::new(
                Arc::clone(&repos.outbox),
                Arc::clone(&mail_wake),
                Arc::clone(&metrics),
                Arc::clone(&clock),
            )),
            hasher: hasher(config.bcrypt).await?,
            repos,
            metrics: Arc::clone(&metrics),
            clock: Arc::clone(&clock),
        };
        let link = |template: &Option<LinkTemplate>, path| {
            template
                .clone()
                .unwrap_or_else(|| LinkTemplate::under(&public_url, path))
        };
        let (tokens, limits) = (&config.tokens, &config.limits);
        let removal = Arc::new(Removal::new(&shared, tokens.access_ttl));
        let verify_url = link(&config.mail.verify_url, "/verify-email");
        let accounts = Arc::new(Accounts::new(
            &shared,
            tokens,
            limits,
            verify_url,
            Arc::clone(&removal),
        ));
        let reset_url = link(&config.mail.reset_url, "/password/reset");
        let passwords = Arc::new(Passwords::new(&shared, tokens, limits, reset_url));
        let change_url = link(&config.mail.email_change_url, "/email/confirm");
        let email_changes = Arc::new(EmailChanges::new(&shared, tokens, limits, change_url));
        let letters = Letters {
            accounts: Arc::clone(&accounts),
            passwords: Arc::clone(&passwords),
            email_changes: Arc::clone(&email_changes),
            users: Arc::clone(&shared.repos.users),
            owned_tokens: shared.repos.owned_tokens.clone(),
        };
        let worker = outbox_worker(&config, &shared, letters, overrides.mailer);
        let signing_pool = Arc::new(CpuPool::new(
            "rsa",
            tokens.signing_workers,
            tokens.signing_queue,
        ));
        let repos = &shared.repos;
        let state = Arc::new(State {
            sessions: Sessions::new(&shared, tokens, limits, signer, signing_pool),
            accounts,
            passwords,
            email_changes,
            admin: Admin::new(&shared, removal, tokens.access_ttl),
            access_tokens: AccessTokens::new(
                verifier,
                Arc::clone(&revocations),
                repos.disabled_marks.clone(),
                Arc::clone(&clock),
            ),
            health: Health::new(
                repos.dependencies.clone(),
                Arc::clone(&repos.outbox),
                Arc::clone(&shared.hasher),
                Arc::clone(&clock),
            ),
            client_limits: ClientLimits::new(
                repos.rate_limits.clone(),
                limits.per_client,
                Arc::clone(&shared.metrics),
            ),
            trusted_proxies: config.http.trusted_proxies.clone(),
            jwks,
            discovery,
            cors: Cors::new(config.http.cors_origins.clone()),
            metrics,
            serving: Serving {
                admin_listener: config.http.admin_listen.is_some(),
                admin_api: config.http.admin_secret.is_some(),
            },
            admin_secret: config.http.admin_secret.clone(),
            request_timeout: config.http.request_timeout,
        });
        let connections = Arc::new(Connections::new(
            max_connections,
            config.http.max_connections_per_client,
            config.http.trusted_proxies.clone(),
        ));
        let admin = admin.map(|listener| {
            let proxies = config.http.trusted_proxies.clone();
            let connections = Connections::new(ADMIN_CONNECTIONS, ADMIN_CONNECTIONS, proxies);
            (listener, Arc::new(connections))
        });
        Ok(App {
            listener,
            admin,
            connections,
            local_addr,
            public_url,
            state,
            worker,
            mail_wake,
            refresh_tokens: Arc::clone(&repos.refresh_tokens),
            outbox: Arc::clone(&repos.outbox),
            clock,
            revocations,
            http: config.http,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the admin listener bound, when `AUTH_ADMIN_LISTEN` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The external base URL: `AUTH_PUBLIC_URL`, or `http://` + the bound address.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }
}

/// The configured keys, or a throwaway signing key when none is configured.
async fn load_keys(config: &TokenConfig) -> Result<KeyRing, StartError> {
    let signing = match &config.signing_key {
        Some(key) => Arc::clone(key),
        None => {
            tracing::warn!("AUTH_SIGNING_KEY is not set: generated a throwaway RSA key; tokens die with the process");
            Arc::new(tokio::task::spawn_blocking(SigningKey::generate).await??)
        }
    };
    let ring = KeyRing::new(signing, &config.retired_keys);
    tracing::info!(
        kid = ring.signing.kid(),
        published = ring.jwks.keys.len(),
        "signing key loaded"
    );
    Ok(ring)
}

/// What signs access tokens, what checks them (against exactly what is published), and
/// the published JWKS.
fn access_tokens(
    keys: KeyRing,
    config: &TokenConfig,
    issuer: String,
) -> (Arc<Signer>, Verifier, Prepared) {
    let jwks = Prepared {
        body: Bytes::from(serde_json::to_vec(&keys.jwks).expect("a JWKS always encodes")),
        cache_control: verifier_cache_control(config),
    };
    let verifier = Verifier::new(
        Arc::new(keys.public_keys),
        issuer.clone(),
        config.audience.clone(),
    );
    let signer = Signer::new(
        keys.signing,
        issuer,
        config.audience.clone(),
        config.access_ttl.as_secs(),
    );
    (Arc::new(signer), verifier, jwks)
}

/// How long verifiers may cache the JWKS and the discovery document.
fn verifier_cache_control(config: &TokenConfig) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "public, max-age={}",
        config.jwks_max_age.as_secs()
    ))
    .expect("a number is a valid header value")
}

/// The discovery metadata (OpenID Connect Discovery 1.0, RFC 8414): only what applies to
/// authd. There is no authorization or token endpoint in the OAuth sense, so none is listed.
fn discovery(config: &TokenConfig, issuer: &str, public_url: &str) -> Prepared {
    let base = public_url.trim_end_matches('/');
    let mut claims = vec![
        "iss",
        "sub",
        "iat",
        "exp",
        "jti",
        "sid",
        "email",
        "email_verified",
    ];
    if config.audience.is_some() {
        claims.push("aud");
    }
    let document = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "claims_supported": claims,
    });
    Prepared {
        body: Bytes::from(serde_json::to_vec(&document).expect("JSON always encodes")),
        cache_control: verifier_cache_control(config),
    }
}

/// bcrypt on its own low-priority threads. The dummy hash for unknown accounts is one
/// bcrypt: computed off the async workers.
async fn hasher(config: BcryptConfig) -> Result<Arc<Hasher>, StartError> {
    let pool = Arc::new(CpuPool::with_priority(
        "bcrypt",
        config.workers,
        config.queue,
        Priority::Low,
    ));
    let hasher = tokio::task::spawn_blocking(move || Hasher::new(pool, config.cost)).await??;
    Ok(Arc::new(hasher))
}

/// The outbox worker: sends what `letters` writes, through the chosen mailer.
fn outbox_worker(
    config: &Config,
    shared: &Shared,
    letters: Letters,
    mailer_override: Option<Arc<dyn Mailer>>,
) -> Worker {
    Worker {
        outbox: Arc::clone(&shared.repos.outbox),
        letters: Arc::new(letters),
        mailer: mailer(config, mailer_override),
        settings: MailSettings {
            lease: config.mail.outbox_lease,
            max_attempts: MAIL_ATTEMPTS,
            poll: MAIL_POLL,
            concurrency: config.mail.outbox_concurrency,
        },
        metrics: Arc::clone(&shared.metrics),
        clock: Arc::clone(&shared.clock),
        rng: SystemRandom::new(),
    }
}

async fn bind(
    variable: &'static str,
    address: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let fail = |cause| StartError::Listen {
        variable,
        address,
        cause,
    };
    let listener = TcpListener::bind(address).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?;
    Ok((listener, local))
}

/// `http://<bound address>`, with a wildcard address shown as `localhost`.
fn default_public_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// The mailer: the override, SMTP when configured, else the log.
fn mailer(config: &Config, chosen: Option<Arc<dyn Mailer>>) -> Arc<dyn Mailer> {
    if let Some(mailer) = chosen {
        return mailer;
    }
    match &config.mail.smtp {
        Some(url) => Arc::new(SmtpMailer::new(url, config.mail.from.clone())),
        None => {
            tracing::warn!("SMTP_URL is not set: emails are written to the log, not sent");
            Arc::new(LogMailer)
        }
    }
}
