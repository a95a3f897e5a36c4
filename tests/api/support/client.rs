//! A tiny HTTP client: one request per fresh connection, typed helpers for the routes.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// Talks to one authd, in this process or not.
#[derive(Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    /// The loopback address this client connects from (127.0.0.2, 127.0.0.3 … play other
    /// clients); `None`: whatever the system picks.
    pub source: Option<std::net::IpAddr>,
}

/// A TCP connection to `addr`, from `source` when given.
pub async fn connect(addr: SocketAddr, source: Option<std::net::IpAddr>) -> tokio::net::TcpStream {
    match source {
        None => tokio::net::TcpStream::connect(addr).await.expect("connect"),
        Some(ip) => {
            let socket = match ip {
                std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .expect("socket");
            socket
                .bind(SocketAddr::new(ip, 0))
                .expect("bind the source address");
            socket.connect(addr).await.expect("connect")
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

/// One keep-alive connection, for tests about what happens to the next request on it.
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    /// Sends a request on this connection; `None` when the server has closed it.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Option<TestResponse> {
        self.sender.ready().await.ok()?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let res = self.sender.send_request(req).await.ok()?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.ok()?.to_bytes();
        Some(TestResponse {
            status,
            headers,
            body,
        })
    }
}

impl Client {
    /// The same server, from another loopback address.
    pub fn as_client_at(&self, source: &str) -> Client {
        Client {
            addr: self.addr,
            source: Some(source.parse().expect("an IP address")),
        }
    }

    /// Opens a keep-alive connection.
    pub async fn connection(&self) -> Connection {
        let stream = connect(self.addr, self.source).await;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Connection {
            sender,
            host: self.addr.to_string(),
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
        let stream = connect(self.addr, self.source).await;
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

    /// `method path` with `Authorization: Bearer <token>`.
    pub async fn with_bearer(&self, method: Method, path: &str, token: &str) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.request(method, path, &[("authorization", auth.as_str())], None)
            .await
    }

    /// `POST path` with a JSON body and `Authorization: Bearer <token>`.
    pub async fn post_json_with_bearer(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.request(
            Method::POST,
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", auth.as_str()),
            ],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn logout(&self, token: &str) -> TestResponse {
        self.post_json("/logout", &json!({"refresh_token": token}))
            .await
    }
}
