//! Fixtures: authd started in this process on port 0 with storage of its own, a mailer that
//! captures emails, a clock the test moves, and helpers that walk a user through the flows.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use authd::app::Overrides;
use authd::clock::ManualClock;
use authd::mail::{Mailer, Message, SendError};
use authd::{App, Config};
use hyper::StatusCode;
use tokio::sync::{oneshot, Notify};

use super::{Client, Storage};

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

impl Backend {
    pub async fn storage(self) -> Arc<Storage> {
        match self {
            Backend::Memory => Storage::memory(),
            Backend::Real => Storage::real().await,
        }
    }
}

/// Runs a test once per backend: `both!(name)` next to `async fn name(backend: Backend)`.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name($crate::support::Backend::Memory).await
            }

            #[tokio::test]
            async fn postgres_redis() {
                super::$name($crate::support::Backend::Real).await
            }
        }
    };
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

/// An authd serving in this test, and what the test holds on to.
pub struct TestApp {
    pub client: Client,
    pub mailer: Arc<CapturingMailer>,
    /// authd's clock: real time, which `clock.advance` jumps forward.
    pub clock: Arc<ManualClock>,
    /// The admin listener, when `AUTH_ADMIN_LISTEN` is set.
    pub admin: Option<Client>,
    /// Whether one-time tokens and rate limits live in Redis, which keeps its own time.
    on_redis: bool,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<()>>,
    /// Keeps the test's database and Redis keys alive while the app runs; last, so it is
    /// dropped after the app has been told to stop.
    _storage: Arc<Storage>,
}

impl Deref for TestApp {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_on(backend.storage().await, overrides).await
}

/// Starts authd on existing storage (e.g. a second instance, or after a restart).
pub async fn spawn_app_on(storage: Arc<Storage>, overrides: &[(&str, &str)]) -> TestApp {
    spawn_with_mailer(storage, overrides, Arc::new(CapturingMailer::default())).await
}

/// Starts another replica of `first` on the same storage, sharing its mailbox: an email
/// either replica's worker sends is found where the test looks.
pub async fn spawn_replica(first: &TestApp, overrides: &[(&str, &str)]) -> TestApp {
    spawn_with_mailer(first._storage.clone(), overrides, first.mailer.clone()).await
}

async fn spawn_with_mailer(
    storage: Arc<Storage>,
    overrides: &[(&str, &str)],
    mailer: Arc<CapturingMailer>,
) -> TestApp {
    let mut env = base_config();
    for (k, v) in storage.env() {
        env.insert(k.into(), v);
    }
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::load(&env).expect("test configuration is valid");
    let clock = Arc::new(ManualClock::new());
    // With SMTP_URL the app sends real email (see email.rs); otherwise tests read the
    // captured messages.
    let overrides = Overrides {
        mailer: (!env.contains_key("SMTP_URL")).then(|| mailer.clone() as Arc<dyn Mailer>),
        clock: Some(clock.clone()),
    };
    let app = App::build_with(config, overrides)
        .await
        .expect("app builds");
    let client = Client {
        addr: app.local_addr(),
        source: None,
    };
    let admin = app.admin_addr().map(|addr| Client { addr, source: None });
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    TestApp {
        client,
        mailer,
        clock,
        admin,
        on_redis: env.contains_key("REDIS_URL"),
        _storage: storage,
        shutdown: Some(tx),
        stopped: Some(stopped),
    }
}

impl TestApp {
    /// A client for an authd this test did not start in-process (a child process).
    pub fn external(addr: std::net::SocketAddr) -> TestApp {
        TestApp {
            client: Client { addr, source: None },
            mailer: Arc::new(CapturingMailer::default()),
            clock: Arc::new(ManualClock::new()),
            admin: None,
            on_redis: false,
            shutdown: None,
            stopped: None,
            _storage: Storage::memory(),
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

    /// Lets a lifetime kept by the ephemeral store (one-time tokens, rate-limit windows)
    /// run out: in memory the clock jumps; Redis keeps its own time, so there the test
    /// waits.
    pub async fn wait_out_ttl(&self, ttl: Duration) {
        if self.on_redis {
            tokio::time::sleep(ttl).await;
        } else {
            self.clock.advance(ttl);
        }
    }

    /// A barrier for "nothing (more) was sent to `to`": the worker sends in queue order,
    /// so once an email queued now for `witness` has arrived, every email queued before it
    /// has been dealt with.
    pub async fn mail_barrier(&self, witness: &str) {
        let before = self.mailer.sent_to(witness).len();
        assert_eq!(
            self.register(witness, PASSWORD).await.status,
            StatusCode::CREATED,
            "the barrier's address must be new"
        );
        self.mailer.wait_for(witness, before + 1).await;
    }
}

/// The path and query of the first http(s) link in a plain-text email.
pub fn path_of_link(text: &str) -> String {
    let start = text.find("http").expect("the email has a link");
    let link = text[start..].split_whitespace().next().unwrap();
    let after_scheme = &link[link.find("://").unwrap() + 3..];
    after_scheme[after_scheme.find('/').unwrap()..].to_string()
}
