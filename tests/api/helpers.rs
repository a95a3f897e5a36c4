//! `spawn_app`, a tiny HTTP client and typed request helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use authd::mail::{Mailer, Message, SendError};
use authd::{App, Config};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

use crate::services::{block_on, services};

pub const PASSWORD: &str = "correct horse battery";

pub fn testdata(name: &str) -> String {
    format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Records every email instead of sending it, so tests can follow the links.
#[derive(Default)]
pub struct CapturingMailer {
    sent: Mutex<Vec<Message>>,
    arrived: Notify,
}

#[async_trait]
impl Mailer for CapturingMailer {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        self.sent.lock().unwrap().push(message.clone());
        self.arrived.notify_waiters();
        Ok(())
    }
}

impl CapturingMailer {
    pub fn sent_to(&self, to: &str) -> Vec<Message> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to.as_str() == to)
            .cloned()
            .collect()
    }

    /// Waits (up to 5 s) until `to` has received `count` emails; returns them all.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let notified = self.arrived.notified();
            let sent = self.sent_to(to);
            if sent.len() >= count {
                return sent;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {count} email(s) to {to}, got {}",
                    self.sent_to(to).len()
                );
            }
        }
    }
}

/// Which storage a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Memory,
    /// PostgreSQL and Redis.
    Real,
}

/// Runs a test once per backend: `both!(name)` next to `async fn name(backend: Backend)`.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name($crate::helpers::Backend::Memory).await
            }

            #[tokio::test]
            async fn postgres_redis() {
                super::$name($crate::helpers::Backend::Real).await
            }
        }
    };
}

/// A test's own storage: a fresh database and Redis prefix, removed when dropped. Several
/// app instances may share one (restarts, replicas).
pub struct Storage {
    pub database: Option<TestDatabase>,
    pub redis: Option<TestRedis>,
}

impl Storage {
    pub async fn new(backend: Backend) -> Arc<Storage> {
        match backend {
            Backend::Memory => Arc::new(Storage {
                database: None,
                redis: None,
            }),
            Backend::Real => Storage::on(&services().postgres, &services().redis).await,
        }
    }

    /// Fresh storage on the given servers.
    pub async fn on(postgres: &str, redis: &str) -> Arc<Storage> {
        Arc::new(Storage {
            database: Some(TestDatabase::create(postgres).await),
            redis: Some(TestRedis::new(redis)),
        })
    }

    fn configure(&self, env: &mut HashMap<String, String>) {
        if let Some(db) = &self.database {
            env.insert("DATABASE_URL".into(), db.url.clone());
        }
        if let Some(r) = &self.redis {
            env.insert("REDIS_URL".into(), r.url.clone());
            env.insert("AUTH_REDIS_PREFIX".into(), r.prefix.clone());
        }
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
            .expect("connect to PostgreSQL");
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

    /// Every key under this prefix with its value (strings only, which is all authd writes).
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
            let value: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.push((key, value.unwrap_or_default()));
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

pub struct TestApp {
    pub addr: SocketAddr,
    pub mailer: Arc<CapturingMailer>,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<()>>,
    /// Keeps the test's database and Redis keys alive while the app runs; last, so it is
    /// dropped after the app has been told to stop.
    _storage: Arc<Storage>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The problem's `code`, after checking the problem+json shape.
    pub fn problem_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["status"], self.status.as_u16());
        assert!(body["title"].is_string() && body["detail"].is_string());
        body["code"].as_str().unwrap().to_string()
    }
}

/// The configuration every test starts from: port 0, the test key, cheap bcrypt.
pub fn base_config() -> HashMap<String, String> {
    let mut env = HashMap::new();
    env.insert("AUTH_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("AUTH_SIGNING_KEY".into(), testdata("signing-key.pem"));
    env.insert("AUTH_BCRYPT_COST".into(), "4".into());
    // Many apps run at once against one PostgreSQL (max_connections is often 100).
    env.insert("AUTH_DB_POOL_SIZE".into(), "4".into());
    env
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_on(Storage::new(backend).await, overrides).await
}

/// Starts authd on existing storage (e.g. a second instance, or after a restart).
pub async fn spawn_app_on(storage: Arc<Storage>, overrides: &[(&str, &str)]) -> TestApp {
    let mut env = base_config();
    storage.configure(&mut env);
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::load(&env).expect("test configuration is valid");
    let mailer = Arc::new(CapturingMailer::default());
    // With SMTP_URL the app sends real email (see email.rs); otherwise tests read the
    // captured messages.
    let app = if env.contains_key("SMTP_URL") {
        App::build(config).await
    } else {
        App::build_with_mailer(config, mailer.clone()).await
    }
    .expect("app builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        mailer,
        _storage: storage,
        shutdown: Some(tx),
        stopped: Some(stopped),
    }
}

impl TestApp {
    /// A client for an authd this test did not start in-process (a child process).
    pub fn external(addr: SocketAddr) -> TestApp {
        TestApp {
            addr,
            mailer: Arc::new(CapturingMailer::default()),
            shutdown: None,
            stopped: None,
            _storage: Arc::new(Storage {
                database: None,
                redis: None,
            }),
        }
    }

    /// Stops serving, as SIGTERM would, and waits until authd has stopped.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }

    /// Sends one request on a fresh connection.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> TestResponse {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let res = sender.send_request(req).await.expect("response");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.request(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn register(&self, email: &str, password: &str) -> TestResponse {
        self.post_json("/register", &json!({"email": email, "password": password}))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.post_json("/login", &json!({"email": email, "password": password}))
            .await
    }

    pub async fn refresh(&self, token: &str) -> TestResponse {
        self.post_json("/refresh", &json!({"refresh_token": token}))
            .await
    }

    pub async fn logout(&self, token: &str) -> TestResponse {
        self.post_json("/logout", &json!({"refresh_token": token}))
            .await
    }

    /// The path and query of the `n`-th (1-based) verification link sent to `to`.
    pub async fn verification_path(&self, to: &str, n: usize) -> String {
        let emails = self.mailer.wait_for(to, n).await;
        path_of_link(&emails[n - 1].text)
    }

    /// Registers and verifies `email`; returns its user id.
    pub async fn verified_user(&self, email: &str) -> String {
        let res = self.register(email, PASSWORD).await;
        assert_eq!(res.status, StatusCode::CREATED);
        let path = self.verification_path(&email.to_lowercase(), 1).await;
        assert_eq!(self.get(&path).await.status, StatusCode::OK);
        res.json()["user_id"].as_str().unwrap().to_string()
    }

    /// A verified user's token pair: (access, refresh).
    pub async fn session(&self, email: &str) -> (String, String) {
        self.verified_user(email).await;
        let res = self.login(email, PASSWORD).await;
        assert_eq!(res.status, StatusCode::OK);
        let body = res.json();
        (
            body["access_token"].as_str().unwrap().into(),
            body["refresh_token"].as_str().unwrap().into(),
        )
    }
}

/// The path and query of the first http(s) link in a plain-text email.
pub fn path_of_link(text: &str) -> String {
    let start = text.find("http").expect("the email has a link");
    let link = text[start..].split_whitespace().next().unwrap();
    let after_scheme = &link[link.find("://").unwrap() + 3..];
    after_scheme[after_scheme.find('/').unwrap()..].to_string()
}
