//! Wiring and serving: [`App::build`] turns a [`Config`] into a bound listener with every
//! service ready; [`App::run`] serves until the shutdown future completes. `main`, the
//! tests and the bench all start authd this way.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use ring::rand::SystemRandom;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

use crate::config::{Config, LinkTemplate};
use crate::cpu_pool::{CpuPool, Priority};
use crate::handlers::keys::JwksDocument;
use crate::http::cors::Cors;
use crate::http::server;
use crate::jwt::{KeyRing, Signer, SigningKey, Verifier};
use crate::mail::worker::{Settings as MailSettings, Worker};
use crate::mail::{LogMailer, Mailer, SmtpMailer};
use crate::metrics::Metrics;
use crate::passwords::Hasher;
use crate::repo::{self, Dependency, Outbox, RefreshTokens};
use crate::service::{Accounts, Credentials, Sessions};

/// How often expired refresh tokens and old outbox rows are purged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);
/// How long sent emails stay in the outbox (to answer "did it go out?").
const KEEP_SENT_EMAILS: Duration = Duration::from_secs(7 * 86_400);
/// How long failed emails stay in the outbox, for investigation.
const KEEP_FAILED_EMAILS: Duration = Duration::from_secs(30 * 86_400);

/// Why authd could not start. One line, naming the variable or resource at fault.
#[derive(Debug)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// What every request handler can reach.
pub struct State {
    pub accounts: Accounts,
    pub sessions: Sessions,
    pub credentials: Credentials,
    pub jwks: JwksDocument,
    pub cors: Cors,
    pub metrics: Arc<Metrics>,
    pub hasher: Arc<Hasher>,
    pub outbox: Arc<dyn Outbox>,
    pub dependencies: Vec<Arc<dyn Dependency>>,
    /// Longest a request may take, body reading included; a stalled client is cut off.
    pub request_timeout: Duration,
}

/// Bounds on connections, from the configuration.
struct ConnectionLimits {
    max_connections: usize,
    header_read_timeout: Duration,
    shutdown_grace: Duration,
}

/// A built, bound, not yet serving authd.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    public_url: String,
    state: Arc<State>,
    worker: Worker,
    mail_wake: Arc<Notify>,
    refresh_tokens: Arc<dyn RefreshTokens>,
    limits: ConnectionLimits,
}

/// Runs CPU-heavy start-up work (key generation, the dummy bcrypt hash) off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StartError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StartError(format!("start-up task failed: {e}")))
}

impl App {
    /// Builds authd with the mailer the configuration asks for: SMTP when `SMTP_URL` is
    /// set, otherwise the log.
    pub async fn build(config: Config) -> Result<App, StartError> {
        let mailer: Arc<dyn Mailer> = match &config.smtp_url {
            Some(url) => {
                Arc::new(SmtpMailer::new(url, config.mail_from.clone()).map_err(StartError)?)
            }
            None => {
                tracing::warn!("SMTP_URL is not set: emails are written to the log, not sent");
                Arc::new(LogMailer)
            }
        };
        App::build_with_mailer(config, mailer).await
    }

    /// Builds authd sending email through `mailer` (tests capture emails this way).
    pub async fn build_with_mailer(
        config: Config,
        mailer: Arc<dyn Mailer>,
    ) -> Result<App, StartError> {
        let signing = match &config.signing_key {
            Some(path) => {
                let path = path.clone();
                blocking(move || SigningKey::from_pem_file(&path))
                    .await?
                    .map_err(|e| StartError(e.to_string()))?
            }
            None => {
                tracing::warn!("AUTH_SIGNING_KEY is not set: generated a throwaway RSA key; tokens die with the process");
                blocking(SigningKey::generate).await?.map_err(StartError)?
            }
        };
        let ring =
            KeyRing::new(signing, &config.extra_keys).map_err(|e| StartError(e.to_string()))?;

        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            StartError(format!(
                "AUTH_LISTEN: cannot listen on {}: {e}",
                config.listen
            ))
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| StartError(format!("AUTH_LISTEN: {e}")))?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| default_public_url(local_addr));
        let issuer = config.issuer.clone().unwrap_or_else(|| public_url.clone());

        match (&config.database_url, &config.redis_url) {
            (None, None) => tracing::warn!(
                "DATABASE_URL and REDIS_URL are not set: all state is in memory and is lost when authd stops"
            ),
            (None, Some(_)) => tracing::warn!("DATABASE_URL is not set: users and sessions are in memory and are lost when authd stops"),
            (Some(_), None) => tracing::warn!("REDIS_URL is not set: verification tokens and rate limits are in memory, per process"),
            (Some(_), Some(_)) => {}
        }
        let metrics = Arc::new(Metrics::default());
        let repos = repo::open(&config, Arc::clone(&metrics))
            .await
            .map_err(StartError)?;
        let bcrypt_pool = Arc::new(CpuPool::with_priority(
            "bcrypt",
            config.bcrypt_workers,
            config.bcrypt_queue,
            Priority::Low,
        ));
        let cost = config.bcrypt_cost;
        let pool = Arc::clone(&bcrypt_pool);
        let hasher = Arc::new(
            blocking(move || Hasher::new(pool, cost))
                .await?
                .map_err(StartError)?,
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let signing_pool = Arc::new(CpuPool::new("rsa", cores, 4096));

        let jwks = JwksDocument {
            body: Bytes::from(
                serde_json::to_vec(&ring.jwks)
                    .map_err(|e| StartError(format!("JWKS encoding: {e}")))?,
            ),
            cache_control: HeaderValue::from_str(&format!(
                "public, max-age={}",
                config.jwks_max_age.as_secs()
            ))
            .map_err(|e| StartError(format!("AUTH_JWKS_MAX_AGE: {e}")))?,
        };
        tracing::info!(
            kid = ring.signing.kid(),
            published = ring.jwks.keys.len(),
            "signing key loaded"
        );
        // authd checks its own tokens (on /password/change) against exactly what it publishes.
        let verifier = Verifier::new(
            Arc::new(ring.public_keys),
            issuer.clone(),
            config.audience.clone(),
        );
        let signer = Arc::new(Signer::new(
            Arc::new(ring.signing),
            issuer,
            config.audience.clone(),
            config.access_ttl.as_secs(),
        ));

        let mail_wake = Arc::new(Notify::new());
        let accounts = Accounts {
            users: Arc::clone(&repos.users),
            outbox: Arc::clone(&repos.outbox),
            tokens: Arc::clone(&repos.one_time_tokens),
            limits: Arc::clone(&repos.rate_limits),
            hasher: Arc::clone(&hasher),
            mail_wake: Arc::clone(&mail_wake),
            metrics: Arc::clone(&metrics),
            resend_max: config.resend_max,
            resend_window: config.resend_window,
        };
        let credentials = Credentials {
            users: Arc::clone(&repos.users),
            outbox: Arc::clone(&repos.outbox),
            tokens: Arc::clone(&repos.one_time_tokens),
            limits: Arc::clone(&repos.rate_limits),
            hasher: Arc::clone(&hasher),
            verifier,
            mail_wake: Arc::clone(&mail_wake),
            metrics: Arc::clone(&metrics),
            forgot_max: config.resend_max,
            forgot_window: config.resend_window,
            reset_ttl: config.reset_ttl,
            login_max_failures: config.login_max_failures,
            login_window: config.login_window,
        };
        let sessions = Sessions {
            users: Arc::clone(&repos.users),
            refresh_tokens: Arc::clone(&repos.refresh_tokens),
            limits: Arc::clone(&repos.rate_limits),
            hasher: Arc::clone(&hasher),
            signer,
            signing_pool,
            metrics: Arc::clone(&metrics),
            refresh_ttl: config.refresh_ttl,
            reuse_grace: config.refresh_reuse_grace,
            login_max_failures: config.login_max_failures,
            login_window: config.login_window,
            rng: SystemRandom::new(),
        };
        let default_link = |path: &str| {
            LinkTemplate::parse_default(&format!("{public_url}{path}?token={{token}}"))
        };
        let worker = Worker::new(
            Arc::clone(&repos.outbox),
            Arc::clone(&repos.users),
            Arc::clone(&repos.one_time_tokens),
            mailer,
            MailSettings {
                verify_url: config
                    .verify_url
                    .clone()
                    .unwrap_or_else(|| default_link("/verify-email")),
                reset_url: config
                    .reset_url
                    .clone()
                    .unwrap_or_else(|| default_link("/password/reset")),
                verify_ttl: config.verify_ttl,
                reset_ttl: config.reset_ttl,
                lease: config.outbox_lease,
                max_attempts: 10,
                poll: Duration::from_secs(1),
            },
            Arc::clone(&metrics),
        );
        let state = Arc::new(State {
            accounts,
            sessions,
            credentials,
            jwks,
            cors: Cors::new(config.cors_origins.clone()),
            metrics,
            hasher,
            outbox: Arc::clone(&repos.outbox),
            dependencies: repos.dependencies.clone(),
            request_timeout: config.request_timeout,
        });
        Ok(App {
            listener,
            local_addr,
            public_url,
            state,
            worker,
            mail_wake,
            refresh_tokens: repos.refresh_tokens,
            limits: ConnectionLimits {
                max_connections: config.max_connections,
                header_read_timeout: config.header_read_timeout,
                shutdown_grace: config.shutdown_grace,
            },
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The external base URL: `AUTH_PUBLIC_URL`, or `http://` + the bound address.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (bounded by `AUTH_SHUTDOWN_GRACE`) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let App {
            listener,
            local_addr,
            state,
            worker,
            mail_wake,
            refresh_tokens,
            limits:
                ConnectionLimits {
                    max_connections,
                    header_read_timeout,
                    shutdown_grace,
                },
            ..
        } = self;
        tracing::info!(address = %local_addr, "authd listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker_task = tokio::spawn(worker.run(mail_wake, stop_rx.clone()));
        tokio::spawn(housekeeping(
            refresh_tokens,
            Arc::clone(&state.outbox),
            stop_rx,
        ));

        let connections = Arc::new(Semaphore::new(max_connections));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            // Wait for a free connection slot first: past the bound, new clients wait in the
            // kernel's accept queue instead of consuming memory here.
            let permit = tokio::select! {
                permit = Arc::clone(&connections).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = Arc::clone(&state);
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(server::handle(&state, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }

        drop(listener);
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
        if tokio::time::timeout(shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "in-flight requests did not finish within {shutdown_grace:?}; closing them"
            );
        }
        let _ = worker_task.await;
        tracing::info!("authd stopped");
    }
}

/// `http://<bound address>`, with a wildcard address shown as `localhost`.
fn default_public_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// Purges expired refresh tokens now and then, until `stop`.
async fn housekeeping(
    refresh_tokens: Arc<dyn RefreshTokens>,
    outbox: Arc<dyn Outbox>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let now = SystemTime::now();
        match refresh_tokens.purge_expired(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired refresh tokens purged"),
            Err(e) => tracing::warn!(error = %e, "refresh token purge failed"),
        }
        match outbox
            .purge(now - KEEP_SENT_EMAILS, now - KEEP_FAILED_EMAILS)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "old outbox rows purged"),
            Err(e) => tracing::warn!(error = %e, "outbox purge failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
