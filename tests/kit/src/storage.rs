//! Storage of one's own: a fresh PostgreSQL database and Redis key prefix per test (or
//! bench run), removed when dropped.

use std::sync::Arc;
use std::time::Duration;

use crate::servers::services;
use crate::system::block_on;

/// A test's database and Redis prefix — or neither, for the embedded default. Several authd
/// instances may share one (restarts, replicas).
pub struct Storage {
    pub database: Option<TestDatabase>,
    pub redis: Option<TestRedis>,
}

impl Storage {
    /// No storage: authd's embedded default.
    pub fn memory() -> Arc<Storage> {
        Arc::new(Storage {
            database: None,
            redis: None,
        })
    }

    /// Fresh storage on the shared servers (found or started on first use).
    pub async fn real() -> Arc<Storage> {
        Storage::on(&services().postgres, &services().redis).await
    }

    /// Fresh storage on the given servers.
    pub async fn on(postgres: &str, redis: &str) -> Arc<Storage> {
        Arc::new(Storage {
            database: Some(TestDatabase::create(postgres).await),
            redis: Some(TestRedis::new(redis)),
        })
    }

    /// The variables that point authd at this storage.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(db) = &self.database {
            env.push(("DATABASE_URL", db.url.clone()));
        }
        if let Some(r) = &self.redis {
            env.push(("REDIS_URL", r.url.clone()));
            env.push(("AUTH_REDIS_PREFIX", r.prefix.clone()));
        }
        env
    }
}

/// A database created for one test and dropped after it.
pub struct TestDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    pub async fn create(server: &str) -> TestDatabase {
        let name = format!("authd_test_{}", uuid::Uuid::new_v4().simple());
        let admin = format!("{server}/postgres");
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} does not answer: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        TestDatabase {
            url: format!("{server}/{name}"),
            admin,
            name,
        }
    }

    /// A client on the test database, for looking at what authd stored.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        block_on(async move {
            if let Ok((client, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
            {
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    }
}

/// A Redis key prefix used by one test; its keys are deleted after it.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub fn new(url: &str) -> TestRedis {
        TestRedis {
            url: url.to_string(),
            prefix: format!("authd-test-{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Every key under this prefix with its value (a set's members joined by spaces).
    pub async fn dump(&self) -> Vec<(String, String)> {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut out = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let value = match kind.as_str() {
                "set" => {
                    let members: Vec<String> = redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    members.join(" ")
                }
                _ => {
                    let value: Option<String> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    value.unwrap_or_default()
                }
            };
            out.push((key, value));
        }
        out
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        block_on(async move {
            let Ok(client) = redis::Client::open(url) else {
                return;
            };
            let attempt = async {
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}*"))
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                if !keys.is_empty() {
                    let _: () = redis::cmd("DEL")
                        .arg(keys)
                        .query_async(&mut conn)
                        .await
                        .ok()?;
                }
                Some(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(3), attempt).await;
        });
    }
}
