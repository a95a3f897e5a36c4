//! What an SRE checks: logs without secrets, one JSON line per request, graceful shutdown,
//! stalled clients cut off, metrics that move.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::AuthdProcess;
use crate::support::SmtpSink;
use crate::support::{path_of_link, spawn_app_with, Backend, Storage, PASSWORD};

/// Every form in which a token could leak: itself, its raw bytes in hex, its SHA-256 in
/// hex and base64url.
fn forms_of_token(token: &str) -> Vec<String> {
    let mut forms = vec![token.to_string()];
    if let Ok(raw) = URL_SAFE_NO_PAD.decode(token) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let digest = ring::digest::digest(&ring::digest::SHA256, &raw);
        forms.push(hex(&raw));
        forms.push(hex(digest.as_ref()));
        forms.push(URL_SAFE_NO_PAD.encode(digest.as_ref()));
    }
    forms
}

#[tokio::test]
async fn a_whole_flow_logs_one_json_line_per_request_and_no_secret() {
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(false))
        .await
        .unwrap();
    let storage = Storage::real().await;
    let url = sink.url();
    let mut authd = AuthdProcess::start(
        &storage,
        &[
            ("SMTP_URL", &url),
            ("AUTH_LOG", "debug"),
            ("AUTH_LOG_FORMAT", "json"),
            ("AUTH_LOGIN_MAX_FAILURES", "2"),
        ],
    )
    .await;
    let app = authd.client();
    let email = "Secret.Person@Example.com";
    assert_eq!(
        app.register(email, PASSWORD).await.status,
        StatusCode::CREATED
    );
    let message = sink.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let link = path_of_link(message["text"].as_str().unwrap());
    let verification_token = link.rsplit('=').next().unwrap().to_string();
    assert_eq!(app.get(&link).await.status, StatusCode::OK);
    let first = app.login(email, PASSWORD).await.json();
    let second = app
        .refresh(first["refresh_token"].as_str().unwrap())
        .await
        .json();
    assert_eq!(
        app.login(email, "wrong password xyz").await.status,
        StatusCode::UNAUTHORIZED
    );
    app.post_json("/resend-verification", &json!({"email": email}))
        .await;
    assert_eq!(
        app.logout(second["refresh_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // The password routes too: forgot, reset with the emailed token, change with a bearer.
    app.post_json("/password/forgot", &json!({"email": email}))
        .await;
    let reset_mail = sink.wait_for(2, Duration::from_secs(10)).await.remove(1);
    let reset_token = path_of_link(reset_mail["text"].as_str().unwrap())
        .rsplit('=')
        .next()
        .unwrap()
        .to_string();
    let reset = json!({"token": reset_token, "password": "reset passphrase 42"});
    assert_eq!(
        app.post_json("/password/reset", &reset).await.status,
        StatusCode::NO_CONTENT
    );
    let third = app.login(email, "reset passphrase 42").await.json();
    let bearer = format!("Bearer {}", third["access_token"].as_str().unwrap());
    let change =
        json!({"current_password": "reset passphrase 42", "new_password": "changed passphrase 42"});
    let changed = app
        .request(
            Method::POST,
            "/password/change",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            Some(change.to_string().into_bytes()),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    let traced = app
        .request(
            Method::GET,
            "/healthz",
            &[("x-request-id", "trace-me-123")],
            None,
        )
        .await;
    assert_eq!(traced.status, StatusCode::OK);

    authd.terminate();
    assert!(
        authd.wait(Duration::from_secs(15)).success(),
        "authd must exit 0 on SIGTERM"
    );
    let logs = authd.output();

    let mut secrets = vec![
        PASSWORD.to_string(),
        "wrong password xyz".into(),
        "reset passphrase 42".into(),
        "changed passphrase 42".into(),
        "secret.person@example.com".into(),
    ];
    for token in [
        first["access_token"].as_str().unwrap(),
        first["refresh_token"].as_str().unwrap(),
        second["access_token"].as_str().unwrap(),
        second["refresh_token"].as_str().unwrap(),
        verification_token.as_str(),
        reset_token.as_str(),
        third["access_token"].as_str().unwrap(),
        third["refresh_token"].as_str().unwrap(),
    ] {
        secrets.extend(forms_of_token(token));
    }
    for secret in &secrets {
        assert!(
            !logs.to_lowercase().contains(&secret.to_lowercase()),
            "a secret is in the logs: {secret:.12}…"
        );
    }
    assert!(logs.contains("s***@example.com"), "emails appear masked");

    // Every line is JSON; every request has its access line.
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    for line in &access {
        for field in ["method", "route", "status", "latency_ms", "request_id"] {
            assert!(
                !line["fields"][field].is_null(),
                "access line without {field}: {line}"
            );
        }
    }
    let routes: Vec<&str> = access
        .iter()
        .map(|l| l["fields"]["route"].as_str().unwrap())
        .collect();
    for route in [
        "register",
        "verify_email",
        "login",
        "refresh",
        "resend_verification",
        "logout",
        "password_forgot",
        "password_reset",
        "password_change",
    ] {
        assert!(
            routes.contains(&route),
            "no access line for {route}: {routes:?}"
        );
    }
    assert!(access
        .iter()
        .any(|l| l["fields"]["request_id"] == "trace-me-123"));

    // Every line a service logs while answering sits in its request's span: its request id
    // and route are those of one access line.
    let answered: Vec<(&Value, &Value)> = access
        .iter()
        .map(|l| (&l["fields"]["request_id"], &l["fields"]["route"]))
        .collect();
    let from_services: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("authd::service"))
        })
        .collect();
    for expected in [
        "user registered",
        "login",
        "password reset; every session revoked",
    ] {
        assert!(
            from_services
                .iter()
                .any(|l| l["fields"]["message"] == expected),
            "no service line {expected:?}"
        );
    }
    for line in from_services {
        let span = &line["span"];
        assert_eq!(span["name"], "request", "outside a request span: {line}");
        assert!(
            answered.contains(&(&span["request_id"], &span["route"])),
            "no access line for the span of {line}"
        );
    }
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let storage = Storage::memory();
    let mut authd = AuthdProcess::start(
        &storage,
        &[("AUTH_BCRYPT_COST", "10"), ("AUTH_BCRYPT_WORKERS", "1")],
    )
    .await;
    let app = Arc::new(authd.client());
    // Six logins queue up behind one bcrypt thread: each takes tens of milliseconds.
    let in_flight: Vec<_> = (0..6)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.login(&format!("inflight{i}@example.com"), PASSWORD)
                    .await
                    .status
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    authd.terminate();
    for request in in_flight {
        assert_eq!(
            request.await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "an in-flight request failed"
        );
    }
    assert!(authd.wait(Duration::from_secs(15)).success());
    assert!(
        tokio::net::TcpStream::connect(authd.addr).await.is_err(),
        "still accepting after exit"
    );
    assert!(authd.output().contains("shutting down"));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_HEADER_READ_TIMEOUT", "1s")]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the stalled connection was not closed");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn a_client_that_stalls_its_body_gets_408() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_REQUEST_TIMEOUT", "1s")]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test]
async fn metrics_follow_a_flow() {
    let app = spawn_app_with(
        Backend::Memory,
        &[("AUTH_RESEND_MAX", "1"), ("AUTH_LOGIN_MAX_FAILURES", "1")],
    )
    .await;
    app.verified_user("counted@example.com").await;
    let refresh = app.login("counted@example.com", PASSWORD).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.refresh(&refresh).await;
    app.refresh(&refresh).await; // reuse
    app.register("unverified@example.com", PASSWORD).await;
    app.post_json(
        "/resend-verification",
        &json!({"email": "unverified@example.com"}),
    )
    .await;
    app.post_json(
        "/resend-verification",
        &json!({"email": "unverified@example.com"}),
    )
    .await; // limited
    app.mailer.wait_for("unverified@example.com", 2).await;
    let text = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    for expected in [
        "authd_refresh_total{outcome=\"rotated\"} 1",
        "authd_refresh_total{outcome=\"reuse_detected\"} 1",
        "authd_rate_limited_total{limit=\"resend\"} 1",
        "authd_emails_total{result=\"queued\"} 3",
        "authd_emails_total{result=\"sent\"} 3",
        "authd_http_requests_total{route=\"refresh\",status=\"401\"} 1",
        "authd_outbox_backlog 0",
        "authd_bcrypt_queue_depth 0",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
}
