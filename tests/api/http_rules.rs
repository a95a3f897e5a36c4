use hyper::{Method, StatusCode};

use crate::support::{spawn_app, spawn_app_with, Backend, PASSWORD};

#[tokio::test]
async fn unknown_path_is_a_404_problem() {
    let app = spawn_app(Backend::Memory).await;
    let res = app.get("/nope").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.problem_code(), "not_found");
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let app = spawn_app(Backend::Memory).await;
    let res = app.get("/login").await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.problem_code(), "method_not_allowed");
    assert_eq!(res.header("allow"), Some("POST, OPTIONS"));
    let res = app
        .request(Method::POST, "/.well-known/jwks.json", &[], None)
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.header("allow"), Some("GET, HEAD, OPTIONS"));
}

#[tokio::test]
async fn body_over_16_kib_is_413() {
    let app = spawn_app(Backend::Memory).await;
    let big = format!(
        r#"{{"email":"a@example.com","password":"{}"}}"#,
        "x".repeat(16 * 1024)
    );
    let res = app
        .request(
            Method::POST,
            "/register",
            &[("content-type", "application/json")],
            Some(big.into_bytes()),
        )
        .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.problem_code(), "payload_too_large");
}

#[tokio::test]
async fn chunked_body_over_16_kib_is_413() {
    // No Content-Length: the limit must hold while reading.
    let app = spawn_app(Backend::Memory).await;
    let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let chunk = "x".repeat(20 * 1024);
    let req = format!(
        "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = raw.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn non_json_posts_are_415() {
    let app = spawn_app(Backend::Memory).await;
    let body = Some(br#"{"email":"a@example.com","password":"12345678"}"#.to_vec());
    for headers in [
        &[("content-type", "text/plain")][..],
        &[][..],
        &[("content-type", "application/x-www-form-urlencoded")][..],
    ] {
        let res = app
            .request(Method::POST, "/register", headers, body.clone())
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{headers:?}"
        );
        assert_eq!(res.problem_code(), "unsupported_media_type");
    }
    let res = app
        .request(
            Method::POST,
            "/register",
            &[("content-type", "application/json; charset=utf-8")],
            body,
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app(Backend::Memory).await;
    let echoed = app
        .request(
            Method::GET,
            "/healthz",
            &[("x-request-id", "trace-42.a_b:c")],
            None,
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-42.a_b:c"));
    let replaced = app
        .request(
            Method::GET,
            "/healthz",
            &[("x-request-id", "<script>")],
            None,
        )
        .await;
    let generated = replaced.header("x-request-id").unwrap();
    assert_ne!(generated, "<script>");
    assert!(!generated.is_empty());
    for res in [app.get("/nope").await, app.get("/login").await] {
        assert!(res.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn cors_preflight_and_headers_for_listed_origins_only() {
    let app = spawn_app_with(
        Backend::Memory,
        &[(
            "AUTH_CORS_ORIGINS",
            "https://app.example, http://localhost:3000",
        )],
    )
    .await;
    let preflight = app
        .request(
            Method::OPTIONS,
            "/login",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            None,
        )
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(preflight
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert!(preflight
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase()
        .contains("content-type"));
    assert!(preflight
        .header("access-control-allow-credentials")
        .is_none());

    let stranger = app
        .request(
            Method::OPTIONS,
            "/login",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert!(stranger.header("access-control-allow-origin").is_none());

    let simple = app
        .request(
            Method::GET,
            "/.well-known/jwks.json",
            &[("origin", "http://localhost:3000")],
            None,
        )
        .await;
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(simple.header("vary"), Some("Origin"));
    let res = app
        .request(
            Method::POST,
            "/login",
            &[
                ("origin", "https://app.example"),
                ("content-type", "application/json"),
            ],
            Some(format!(r#"{{"email":"a@example.com","password":"{PASSWORD}"}}"#).into_bytes()),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let app = spawn_app(Backend::Memory).await;
    let res = app
        .request(
            Method::GET,
            "/.well-known/jwks.json",
            &[("origin", "https://app.example")],
            None,
        )
        .await;
    assert!(res.header("access-control-allow-origin").is_none());
    let res = app
        .request(
            Method::OPTIONS,
            "/login",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert!(res.header("access-control-allow-origin").is_none());
    assert_eq!(res.header("allow"), Some("POST, OPTIONS"));
}

/// A body that is not a JSON object is refused on every route that takes one: serde would
/// otherwise read `["a@example.com","12345678"]` as the fields of a struct.
#[tokio::test]
async fn bodies_that_are_not_json_objects_are_400_everywhere() {
    let app = spawn_app(Backend::Memory).await;
    let (access, _) = app.session("objects@example.com").await;
    let bearer = format!("Bearer {access}");
    // `/authz/…` takes any method and ignores the body (Envoy's ext_authz sends none).
    for route in authd::router::ROUTES
        .iter()
        .filter(|r| r.method == Method::POST && r.label != "authz_forwarded")
        .filter(|r| r.scope != authd::router::Scope::Admin)
    {
        for body in [
            r#"["array@example.com","12345678"]"#,
            "null",
            r#""a string""#,
        ] {
            let res = app
                .request(
                    Method::POST,
                    route.path,
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &bearer),
                    ],
                    Some(body.as_bytes().to_vec()),
                )
                .await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "{} {body}", route.path);
            assert_eq!(res.problem_code(), "bad_request");
        }
    }
    assert_eq!(
        app.login("array@example.com", "12345678").await.status,
        StatusCode::UNAUTHORIZED,
        "no account was created from an array"
    );
}

/// Whatever the answer, the request's body is read first (or the connection is closed and
/// says so): the next request on a keep-alive connection is answered (RFC 9112 §9.6).
#[tokio::test]
async fn every_answer_leaves_a_keep_alive_connection_usable() {
    let app = spawn_app(Backend::Memory).await;
    let json = [("content-type", "application/json")];
    let change = br#"{"current_password":"correct horse","new_password":"a new passphrase"}"#;
    type Case<'a> = (
        Method,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [u8],
        StatusCode,
    );
    let cases: [Case; 6] = [
        (
            Method::POST,
            "/password/change",
            &json,
            change,
            StatusCode::UNAUTHORIZED,
        ),
        (Method::POST, "/nope", &json, b"{}", StatusCode::NOT_FOUND),
        (
            Method::PUT,
            "/login",
            &json,
            b"{}",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::POST,
            "/login",
            &[("content-type", "text/plain")],
            b"hi",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Method::POST,
            "/login",
            &json,
            b"{not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::OPTIONS,
            "/login",
            &json,
            b"{}",
            StatusCode::NO_CONTENT,
        ),
    ];
    for (method, path, headers, body, status) in cases {
        let mut conn = app.connection().await;
        let first = conn
            .request(method.clone(), path, headers, Some(body.to_vec()))
            .await
            .expect("an answer");
        assert_eq!(first.status, status, "{method} {path}");
        assert_eq!(first.header("connection"), None, "{method} {path}");
        let next = conn.request(Method::GET, "/healthz", &[], None).await;
        assert_eq!(
            next.map(|r| r.status),
            Some(StatusCode::OK),
            "the request after {method} {path} was lost"
        );
    }
    // A body too large to read is not read: the answer says the connection ends.
    let mut conn = app.connection().await;
    let big = vec![b'x'; 17 * 1024];
    let res = conn
        .request(Method::POST, "/login", &json, Some(big))
        .await
        .expect("an answer");
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.header("connection"), Some("close"));
}

/// The reported case: a client that sends the headers and the body in two writes, then its
/// next request on the same connection. An answer sent before the body arrived used to
/// close the connection without saying so, and the next request was lost.
#[tokio::test]
async fn a_body_sent_after_its_headers_does_not_cost_the_next_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(Backend::Memory).await;
    let body = br#"{"current_password":"correct horse","new_password":"a new passphrase"}"#;
    for path in ["/password/change", "/nope", "/login"] {
        let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        raw.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // A connection closed meanwhile shows as a lost second answer below.
        let _ = raw.write_all(body).await;
        let _ = raw
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while String::from_utf8_lossy(&seen).matches("HTTP/1.1 ").count() < 2 {
            match tokio::time::timeout_at(deadline, raw.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&seen);
        assert_eq!(
            text.matches("HTTP/1.1 ").count(),
            2,
            "{path}: the second request was lost:\n{text}"
        );
        assert!(text.contains("HTTP/1.1 200"), "{path}: {text}");
    }
}
