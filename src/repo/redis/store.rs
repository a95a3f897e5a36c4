//! The connection (one server or a cluster), the deadline around every command, and the
//! [`KeyValue`] primitives as commands and Lua scripts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::Script;

use super::RedisUrl;
use crate::metrics::Metrics;
use crate::repo::{Counter, Dependency, KeyValue, RepoError};
use crate::tls::CaFile;

/// Increments the counter and starts its window if this is the first hit (or if the key
/// somehow lost its TTL), atomically. Returns the count and the milliseconds left.
const INCREMENT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// GET and DEL as one atomic step (GETDEL, but also on Redis before 6.2).
const TAKE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
";

/// Reads a counter and its remaining window in one step.
const COUNTER: &str = r"
local n = redis.call('GET', KEYS[1])
if not n then return false end
return {tonumber(n), redis.call('PTTL', KEYS[1])}
";

/// Adds a member to a set and makes the set live at least the given milliseconds more.
const ADD_MEMBER: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// SMEMBERS and DEL as one atomic step.
const TAKE_MEMBERS: &str = r"
local m = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return m
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
    increment: Script,
    counter: Script,
    take: Script,
    add_member: Script,
    take_members: Script,
    metrics: Arc<Metrics>,
}

impl RedisStore {
    /// Prepares a lazily connecting client: authd starts even while Redis is down, and
    /// requests that need Redis get a 503 until it answers. `ca` replaces the Mozilla roots
    /// for `rediss://` when the server has a private CA.
    pub fn new(
        metrics: Arc<Metrics>,
        url: &RedisUrl,
        ca: Option<&CaFile>,
        prefix: String,
        deadline: Duration,
    ) -> Result<RedisStore, redis::RedisError> {
        let certs = |ca: &CaFile| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.pem().to_vec()),
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
            if let Some(ca) = ca {
                builder = builder.certs(certs(ca));
            }
            let client = builder.build()?;
            Conn::Cluster(client.get_pending_async_connection_with_config(ClusterConfig::default()))
        } else {
            let node = url.nodes()[0].clone();
            let client = match ca {
                Some(ca) => redis::Client::build_with_tls(node, certs(ca))?,
                None => redis::Client::open(node)?,
            };
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(deadline))
                .set_response_timeout(Some(deadline))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            Conn::Single(ConnectionManager::new_lazy_with_config(client, config)?)
        };
        Ok(RedisStore {
            connection,
            prefix,
            deadline,
            increment: Script::new(INCREMENT),
            counter: Script::new(COUNTER),
            take: Script::new(TAKE),
            add_member: Script::new(ADD_MEMBER),
            take_members: Script::new(TAKE_MEMBERS),
            metrics,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
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
                Err(e.into())
            }
            Err(_) => {
                self.metrics.dependency_error("redis", "timeout");
                Err(RepoError::Timeout("redis"))
            }
        }
    }

    /// Runs one command within the deadline.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RepoError> {
        let mut connection = self.connection.clone();
        let result = tokio::time::timeout(self.deadline, cmd.query_async(&mut connection)).await;
        self.outcome(result)
    }

    /// Runs one script on `key` within the deadline.
    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[&str],
    ) -> Result<T, RepoError> {
        let mut connection = self.connection.clone();
        let mut invocation = script.key(self.key(key));
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

fn counter((count, ttl_ms): (u64, i64)) -> Counter {
    Counter {
        count,
        resets_in: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or_default()),
    }
}

#[async_trait]
impl KeyValue for RedisStore {
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("PX").arg(millis(ttl));
        self.run(&cmd).await
    }

    async fn get(&self, key: &str) -> Result<Option<String>, RepoError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        self.run(&cmd).await
    }

    async fn take(&self, key: &str) -> Result<Option<String>, RepoError> {
        self.script(&self.take, key, &[]).await
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<Counter, RepoError> {
        let window = millis(window).to_string();
        let found = self.script(&self.increment, key, &[&window]).await?;
        Ok(counter(found))
    }

    async fn counter(&self, key: &str) -> Result<Option<Counter>, RepoError> {
        let found: Option<(u64, i64)> = self.script(&self.counter, key, &[]).await?;
        Ok(found.map(counter))
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        self.run(&cmd).await
    }

    async fn add_member(&self, key: &str, member: &str, ttl: Duration) -> Result<(), RepoError> {
        let ttl = millis(ttl).to_string();
        self.script::<()>(&self.add_member, key, &[member, &ttl])
            .await
    }

    async fn take_members(&self, key: &str) -> Result<Vec<String>, RepoError> {
        self.script(&self.take_members, key, &[]).await
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
