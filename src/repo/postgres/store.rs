//! The pool, the deadline around every operation, and the driver error kept typed.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::rotations::Rotations;
use super::DatabaseUrl;
use crate::metrics::Metrics;
use crate::repo::{Dependency, RepoError};

/// A driver error, kept whole for code that inspects it ([`PgError::code`]). Display and
/// Debug show the server's message and SQLSTATE, never its `detail`, which can quote row
/// values (an email, a hash); for other errors, the error and its cause (e.g. why a TLS
/// handshake failed). It has no `source()`, so no error reporter prints the detail either.
pub struct PgError(tokio_postgres::Error);

impl PgError {
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        self.0.code()
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> PgError {
        PgError(e)
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.as_db_error(), std::error::Error::source(&self.0)) {
            (Some(db), _) => write!(f, "{} ({})", db.message(), db.code().code()),
            (None, Some(cause)) => write!(f, "{}: {cause}", self.0),
            (None, None) => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgError({self})")
    }
}

impl std::error::Error for PgError {}

impl From<tokio_postgres::Error> for RepoError {
    fn from(e: tokio_postgres::Error) -> RepoError {
        RepoError::Postgres(PgError(e))
    }
}

/// Longest one housekeeping batch may take: longer than a request may, since it works
/// through many rows, but bounded.
const MAINTENANCE_DEADLINE: Duration = Duration::from_secs(30);

/// The rotation writer's session settings. Its statements join each input row to its
/// token by primary key, planned once per connection (again only when PostgreSQL drops the
/// plan, as after an ANALYZE):
/// - `plan_cache_mode`: left to itself, PostgreSQL plans these array-parameter statements
///   afresh for every batch (a custom plan looks cheaper than the generic one, whose
///   arrays it cannot see). Measured: about 0.15 ms of planning per batch, 40 % of
///   PostgreSQL's CPU for a lone refresh. The generic plan is the same index look-up.
/// - `enable_seqscan`: on a young database the generic plan is a sequential scan of
///   `refresh_tokens` (tiny when planned), kept while the table grows until autovacuum's
///   next ANALYZE — measured in the bench as every batch reading the whole table. Without
///   sequential scans the plan is the index look-up at any size.
///
/// Every statement run on that connection inherits both: only look-ups by key belong there
/// (and the writer's look-up of its own sessions, one scan of `pg_stat_activity`).
const ROTATING_SETTINGS: &str = "-c enable_seqscan=off -c plan_cache_mode=force_generic_plan";

/// The PostgreSQL store. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct PgStore {
    /// For requests and the outbox worker, bounded by `deadline`.
    pool: Pool,
    /// One connection of its own for housekeeping, whose statements may take
    /// [`MAINTENANCE_DEADLINE`]: a purge never waits for, nor holds, a request's connection.
    maintenance: Pool,
    /// One connection of its own for reading ended sessions (see
    /// [`crate::service::Revocations`]): a flood of requests holding every pooled
    /// connection must not stop replicas from learning of revocations.
    watching: Pool,
    /// One connection of its own for the rotation writer (see [`Rotations`]): refreshes
    /// never wait for a pooled connection behind other requests, and the writer's
    /// statements are planned as index look-ups whatever the tables' statistics say.
    rotating: Pool,
    /// The `application_name` of `rotating`'s sessions.
    writer_name: Arc<str>,
    /// Bound on one whole operation: pool wait, statements, commit.
    deadline: Duration,
    metrics: Arc<Metrics>,
    /// Where refresh-token rotations are combined into batches; set once the store
    /// exists (its writers write through the store).
    rotations: Arc<std::sync::OnceLock<Arc<Rotations>>>,
}

/// A pool whose server gives up on a statement, or a lock wait, when authd would: an
/// operation that timed out here must not leave its query running and its locks held.
/// `settings` are more server settings for its sessions (`-c name=value …`).
/// `name`, when given, replaces the URL's `application_name` for these sessions.
fn pool(
    url: &DatabaseUrl,
    size: usize,
    deadline: Duration,
    settings: &str,
    name: Option<&str>,
) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let mut config = url.pg_config().clone();
    if let Some(name) = name {
        config.application_name(name);
    }
    let ms = deadline.as_millis();
    let limits = format!("-c statement_timeout={ms} -c lock_timeout={ms} {settings}");
    let limits = limits.trim_end();
    let options = match config.get_options() {
        Some(existing) => format!("{existing} {limits}"),
        None => limits.to_owned(),
    };
    config.options(&options);
    let manager = match url.tls() {
        Some(tls) => Manager::from_config(
            config,
            MakeRustlsConnect::new((**tls).clone()),
            manager_config,
        ),
        None => Manager::from_config(config, NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(deadline))
        .create_timeout(Some(deadline))
        .recycle_timeout(Some(deadline))
        .runtime(Runtime::Tokio1)
        .build()
}

impl PgStore {
    /// Builds the pools and starts the rotation writer (so: call within a tokio runtime).
    /// Connections are opened on demand, so this does not touch the server.
    pub fn new(
        url: &DatabaseUrl,
        size: usize,
        deadline: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<PgStore, deadpool_postgres::BuildError> {
        let writer_name: Arc<str> =
            format!("authd-writer-{}", uuid::Uuid::new_v4().simple()).into();
        let store = PgStore {
            pool: pool(url, size, deadline, "", None)?,
            maintenance: pool(url, 1, MAINTENANCE_DEADLINE, "", None)?,
            watching: pool(url, 1, deadline, "", None)?,
            rotating: pool(url, 1, deadline, ROTATING_SETTINGS, Some(&writer_name))?,
            writer_name,
            deadline,
            metrics,
            rotations: Arc::new(std::sync::OnceLock::new()),
        };
        // The writer's own handle on the store holds no rotations: when the last store
        // that does is dropped, the queue closes and the writer ends.
        let writer = PgStore {
            rotations: Arc::new(std::sync::OnceLock::new()),
            ..store.clone()
        };
        let _ = store.rotations.set(Rotations::start(writer));
        Ok(store)
    }

    /// Bound on one whole operation.
    pub(super) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The rotation combiner, and the deadline a rotation must meet.
    pub(super) fn rotations(&self) -> (&Rotations, Duration) {
        let rotations = self.rotations.get().expect("set when the store is built");
        (rotations, self.deadline)
    }

    /// Runs `op` with a pooled connection, within the deadline, counting failures.
    pub(super) async fn with<'a, T, F, Fut>(&'a self, op: F) -> Result<T, RepoError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T, RepoError>> + 'a,
    {
        self.run_on(&self.pool, self.deadline, op).await
    }

    /// Runs `op` on the housekeeping connection, within [`MAINTENANCE_DEADLINE`].
    pub(super) async fn maintenance<'a, T, F, Fut>(&'a self, op: F) -> Result<T, RepoError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T, RepoError>> + 'a,
    {
        self.run_on(&self.maintenance, MAINTENANCE_DEADLINE, op)
            .await
    }

    /// The `application_name` of the rotation writer's sessions, unique to this store: what
    /// finds them on the server when one must be ended.
    pub(super) fn writer_name(&self) -> &str {
        &self.writer_name
    }

    /// Runs `op` on the rotation writer's connection, within the deadline. After a timeout
    /// or a broken connection that connection is closed: it may still be running the
    /// statement (or be half-open), and every later batch, including the look-up that
    /// settles the timed-out one, would queue behind it. The next call opens a fresh one
    /// (and the writer ends the old one's server session before it looks anything up).
    pub(super) async fn rotating<'a, T, F, Fut>(&'a self, op: F) -> Result<T, RepoError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T, RepoError>> + 'a,
    {
        let result = self.run_on(&self.rotating, self.deadline, op).await;
        let suspect = match &result {
            Err(RepoError::Timeout(_)) => true,
            Err(RepoError::Postgres(e)) => e.code().is_none(),
            _ => false,
        };
        if suspect {
            // The pool holds this one connection; it is back in the pool, idle, by now.
            self.rotating.retain(|_, _| false);
        }
        result
    }

    /// Runs `op` on the connection that reads ended sessions, within the deadline.
    pub(super) async fn watching<'a, T, F, Fut>(&'a self, op: F) -> Result<T, RepoError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T, RepoError>> + 'a,
    {
        self.run_on(&self.watching, self.deadline, op).await
    }

    async fn run_on<'a, T, F, Fut>(
        &'a self,
        pool: &'a Pool,
        deadline: Duration,
        op: F,
    ) -> Result<T, RepoError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T, RepoError>> + 'a,
    {
        let work = async {
            let client = pool.get().await.map_err(|e| match e {
                deadpool_postgres::PoolError::Timeout(_) => RepoError::PoolTimeout,
                deadpool_postgres::PoolError::Backend(e) => e.into(),
                other => RepoError::Pool(other),
            });
            match client {
                Ok(client) => op(client).await,
                Err(e) => Err(e),
            }
        };
        let result = tokio::time::timeout(deadline, work)
            .await
            .unwrap_or(Err(RepoError::Timeout("postgres")));
        if let Err(e) = &result {
            let kind = match e {
                RepoError::PoolTimeout => "pool_timeout",
                RepoError::Timeout(_) => "timeout",
                _ => "error",
            };
            self.metrics.dependency_error("postgres", kind);
        }
        result
    }
}

#[async_trait]
impl Dependency for PgStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.with(|client| async move {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }
}
