//! The system under test: an authd release binary started by the bench on storage of its
//! own (the tests' fixtures, from `authd-testkit`), with users seeded through the API; and
//! the trivial server used as the generator ceiling.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authd_testkit::Storage;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::load::Conn;

pub const PASSWORD: &str = "bench password 1234";

/// Fresh storage for a run on the local servers (found or started the way the tests find
/// them), or on those in `AUTHD_BENCH_POSTGRES` / `AUTHD_BENCH_REDIS`. Removed when dropped.
pub async fn real_storage() -> Arc<Storage> {
    match (
        std::env::var("AUTHD_BENCH_POSTGRES"),
        std::env::var("AUTHD_BENCH_REDIS"),
    ) {
        (Ok(postgres), Ok(redis)) => Storage::on(&postgres, &redis).await,
        _ => Storage::real().await,
    }
}

/// A running authd process.
pub struct Authd {
    pub addr: SocketAddr,
    child: Child,
    links: Arc<Mutex<Vec<String>>>,
}

/// The workspace root (where `testdata/` and `target/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is inside the workspace")
        .to_path_buf()
}

/// The release binary next to this one, built first so it is current.
pub fn authd_binary(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "--bin", "authd"])
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cannot run cargo to build authd: {e}"))?;
    if !status.success() {
        return Err("building authd (release) failed".into());
    }
    Ok(workspace_root().join("target/release/authd"))
}

impl Authd {
    pub async fn start(
        binary: &Path,
        storage: &Storage,
        cost: u32,
        extra: &[(String, String)],
    ) -> Result<Authd, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("AUTH_LISTEN", addr.to_string())
            .env(
                "AUTH_SIGNING_KEY",
                workspace_root().join("testdata/signing-key.pem"),
            )
            .env("AUTH_BCRYPT_COST", cost.to_string())
            // Warnings only, but keep the embedded mailer's lines: they carry the links.
            .env("AUTH_LOG", "warn,authd::mail=info")
            // The generator is one address standing for many clients; the attacks that
            // are about the per-client limit set it back.
            .env("AUTH_CLIENT_MAX", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in storage.env() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let links = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let sink = Arc::clone(&links);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(start) = line.find("/verify-email?token=") {
                    let token: String = line[start..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    sink.lock().unwrap().push(token);
                }
            }
        });
        let mut conn = Conn::new(addr);
        for _ in 0..300 {
            if let Ok((200, _)) = conn.send(Method::GET, "/healthz", None).await {
                return Ok(Authd { addr, child, links });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("authd did not become healthy within 30 s".into())
    }

    /// Registers and verifies `count` users; returns their emails.
    pub async fn seed(&self, count: usize) -> Result<Vec<String>, String> {
        let emails: Vec<String> = (0..count)
            .map(|i| format!("bench{i}-{}@example.com", uuid::Uuid::new_v4().simple()))
            .collect();
        let chunks: Vec<Vec<String>> = emails
            .chunks(count.div_ceil(8).max(1))
            .map(<[String]>::to_vec)
            .collect();
        let mut tasks = Vec::new();
        for chunk in chunks {
            let addr = self.addr;
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::new(addr);
                for email in chunk {
                    let body =
                        serde_json::json!({"email": email, "password": PASSWORD}).to_string();
                    loop {
                        match conn
                            .send(Method::POST, "/register", Some(body.clone()))
                            .await
                        {
                            Ok((201, _)) => break,
                            Ok((503, _)) => tokio::time::sleep(Duration::from_millis(50)).await,
                            other => return Err(format!("register {email}: {other:?}")),
                        }
                    }
                }
                Ok(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.links.lock().unwrap().len() < count {
            if tokio::time::Instant::now() > deadline {
                return Err("verification emails did not all arrive".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let links: Vec<String> = self.links.lock().unwrap().drain(..).collect();
        let mut conn = Conn::new(self.addr);
        for link in links {
            match conn.send(Method::GET, &link, None).await {
                Ok((200, _)) => {}
                other => return Err(format!("verify: {other:?}")),
            }
        }
        Ok(emails)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A fixed-response HTTP/1.1 server: the ceiling of what the generator can drive.
pub fn trivial_server(body: Bytes) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let body = body.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let body = body.clone();
                        async move {
                            let mut res = Response::new(Full::new(body));
                            res.headers_mut().insert(
                                "content-type",
                                "application/json".parse().expect("static"),
                            );
                            Ok::<_, std::convert::Infallible>(res)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}
