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

pub struct TestApp {
    pub addr: SocketAddr,
    pub mailer: Arc<CapturingMailer>,
    _shutdown: oneshot::Sender<()>,
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
    env
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let mut env = base_config();
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::load(&env).expect("test configuration is valid");
    let mailer = Arc::new(CapturingMailer::default());
    let app = App::build_with_mailer(config, mailer.clone())
        .await
        .expect("app builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        mailer,
        _shutdown: tx,
    }
}

impl TestApp {
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
