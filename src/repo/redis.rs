//! The Redis repositories: one-time tokens and rate-limit counters.
//!
//! Every key starts with `AUTH_REDIS_PREFIX`, and every operation touches exactly one key
//! (one hash slot), so all of them work unchanged on Redis Cluster, which `REDIS_URL`
//! selects by listing several nodes (or `AUTH_REDIS_CLUSTER=true`). Each command is bounded by a deadline;
//! the connection manager reconnects by itself when Redis comes back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::Script;

use crate::config::RedisUrl;
use crate::domain::TokenHash;
use crate::metrics::Metrics;
use crate::repo::{
    Counter, Dependency, OneTimeTokens, Purpose, RateKey, RateLimits, RepoError, TokenSubject,
};

fn unavailable(e: impl std::fmt::Display) -> RepoError {
    RepoError::Unavailable(format!("redis: {e}"))
}

/// Increments the counter and starts its window if this is the first hit (or if the key
/// somehow lost its TTL), atomically. Returns the count and the milliseconds left.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// GET and DEL as one atomic step.
const TAKE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
";

/// Reads a counter and its remaining window in one step.
const PEEK: &str = r"
local n = redis.call('GET', KEYS[1])
if not n then return false end
return {tonumber(n), redis.call('PTTL', KEYS[1])}
";

/// One Redis server, or a Redis Cluster. Both reconnect by themselves.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Clone)]
pub struct RedisStore {
    connection: Conn,
    prefix: String,
    deadline: Duration,
    hit: Script,
    peek: Script,
    take: Script,
    metrics: Arc<Metrics>,
}

impl RedisStore {
    /// Prepares a lazily connecting client: authd starts even while Redis is down, and
    /// requests that need Redis get a 503 until it answers.
    /// `ca` (PEM) replaces the Mozilla roots for `rediss://` when the server has a private CA.
    pub fn new(
        metrics: Arc<Metrics>,
        url: &RedisUrl,
        ca: Option<Vec<u8>>,
        prefix: String,
        deadline: Duration,
    ) -> Result<RedisStore, String> {
        let certs = |root_cert: Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        };
        let connection = if url.is_cluster() {
            // The cluster client follows MOVED/ASK redirections and refreshes its slot map
            // after a failover, within a bounded number of retries.
            let mut builder = ClusterClientBuilder::new(url.nodes().to_vec())
                .connection_timeout(deadline)
                .response_timeout(deadline)
                .retries(3)
                .min_retry_wait(50)
                .max_retry_wait(500);
            if let Some(root_cert) = ca {
                builder = builder.certs(certs(root_cert));
            }
            let client = builder
                .build()
                .map_err(|e| format!("invalid Redis Cluster nodes: {e}"))?;
            Conn::Cluster(client.get_pending_async_connection_with_config(ClusterConfig::default()))
        } else {
            let node = url.nodes()[0].as_str();
            let client = match ca {
                Some(root_cert) => redis::Client::build_with_tls(node, certs(root_cert)),
                None => redis::Client::open(node),
            }
            .map_err(|e| format!("invalid Redis URL: {e}"))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(deadline))
                .set_response_timeout(Some(deadline))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| format!("cannot set up the Redis connection: {e}"))?;
            Conn::Single(manager)
        };
        Ok(RedisStore {
            connection,
            prefix,
            deadline,
            hit: Script::new(HIT),
            peek: Script::new(PEEK),
            take: Script::new(TAKE),
            metrics,
        })
    }

    fn token_key(&self, purpose: Purpose, hash: &TokenHash) -> String {
        format!("{}{}:{}", self.prefix, purpose.segment(), hash.to_hex())
    }

    fn rate_key(&self, key: &RateKey) -> String {
        format!("{}rate:{}", self.prefix, key.key())
    }

    /// Maps a bounded call's result, counting failures.
    fn outcome<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, RepoError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.metrics.dependency_error("redis", "error");
                Err(unavailable(e))
            }
            Err(_) => {
                self.metrics.dependency_error("redis", "timeout");
                Err(unavailable("timed out"))
            }
        }
    }

    /// Runs one command within the deadline.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RepoError> {
        let mut connection = self.connection.clone();
        let result = tokio::time::timeout(self.deadline, cmd.query_async(&mut connection)).await;
        self.outcome(result)
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[u64],
    ) -> Result<T, RepoError> {
        let mut connection = self.connection.clone();
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        let result =
            tokio::time::timeout(self.deadline, invocation.invoke_async(&mut connection)).await;
        self.outcome(result)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl OneTimeTokens for RedisStore {
    async fn put(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
        subject: TokenSubject,
        ttl: Duration,
    ) -> Result<(), RepoError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.token_key(purpose, hash))
            .arg(subject.encode())
            .arg("PX")
            .arg(millis(ttl));
        self.run::<()>(&cmd).await
    }

    async fn peek(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
    ) -> Result<Option<TokenSubject>, RepoError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.token_key(purpose, hash));
        let value: Option<String> = self.run(&cmd).await?;
        Ok(value.as_deref().and_then(TokenSubject::decode))
    }

    async fn take(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
    ) -> Result<Option<TokenSubject>, RepoError> {
        // Read and delete in one atomic script (GETDEL, but also on Redis before 6.2), so a
        // token works once even when clicked many times at the same moment.
        let value: Option<String> = self
            .script(&self.take, &self.token_key(purpose, hash), &[])
            .await?;
        Ok(value.as_deref().and_then(TokenSubject::decode))
    }
}

#[async_trait]
impl RateLimits for RedisStore {
    async fn hit(&self, key: &RateKey, window: Duration) -> Result<Counter, RepoError> {
        let (count, ttl_ms): (u64, i64) = self
            .script(&self.hit, &self.rate_key(key), &[millis(window)])
            .await?;
        Ok(Counter {
            count,
            resets_in: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or_default()),
        })
    }

    async fn peek(&self, key: &RateKey) -> Result<Option<Counter>, RepoError> {
        let found: Option<(u64, i64)> = self.script(&self.peek, &self.rate_key(key), &[]).await?;
        Ok(found.map(|(count, ttl_ms)| Counter {
            count,
            resets_in: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or_default()),
        }))
    }

    async fn clear(&self, key: &RateKey) -> Result<(), RepoError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.rate_key(key));
        self.run::<()>(&cmd).await
    }
}

#[async_trait]
impl Dependency for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.run::<()>(&redis::cmd("PING")).await
    }
}
