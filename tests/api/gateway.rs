//! authd behind a real reverse proxy (SPEC §9): NGINX running the example configuration
//! the repository ships (testdata/nginx/authd.conf), with `auth_request` to `/authz` in
//! front of a small app.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::support::{
    free_port, spawn_app_with, testdata, Backend, Client, Nginx, TestResponse, PASSWORD,
};

/// The app behind NGINX: answers with what NGINX told it about the caller.
async fn start_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(String::from)
                    };
                    let body = json!({
                        "path": req.uri().path(),
                        "user": header("x-auth-user-id"),
                        "session": header("x-auth-session-id"),
                    });
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        body.to_string(),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The shipped example, pointed at this test's authd, app and a free port: the three
/// lines its header comment tells users to change.
fn site(authd: SocketAddr, app: SocketAddr, listen: u16) -> String {
    let example = std::fs::read_to_string(testdata("nginx/authd.conf")).unwrap();
    let mut site = example.clone();
    for (from, to) in [
        ("server 127.0.0.1:8080;", format!("server {authd};")),
        ("server 127.0.0.1:3000;", format!("server {app};")),
        (
            "listen 127.0.0.1:8000;",
            format!("listen 127.0.0.1:{listen};"),
        ),
    ] {
        assert!(site.contains(from), "the example no longer has `{from}`");
        site = site.replace(from, &to);
    }
    site
}

async fn through(nginx: &Client, path: &str, bearer: Option<&str>) -> TestResponse {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        // A client pretending to be someone: NGINX must never pass this on.
        ("x-auth-user-id", "00000000-0000-4000-8000-000000000000"),
    ];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    nginx.request(Method::GET, path, &headers, None).await
}

fn refused(res: &TestResponse, what: &str) {
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {:?}",
        res.body
    );
    assert!(
        res.header("www-authenticate")
            .unwrap_or_default()
            .starts_with("Bearer"),
        "{what}: NGINX passes authd's challenge on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_the_example_configuration_admits_only_live_sessions() {
    // authd as the README's walkthrough starts it behind NGINX.
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}/auth");
    let authd = spawn_app_with(
        Backend::Memory,
        &[
            ("AUTH_ACCESS_TTL", "10m"),
            ("AUTH_TRUSTED_PROXIES", "127.0.0.1"),
            ("AUTH_PUBLIC_URL", &public_url),
        ],
    )
    .await;
    let app = start_app().await;
    let config = site(authd.addr, app, port);
    let nginx = tokio::task::spawn_blocking(move || Nginx::start(&config, port))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let proxy = Client {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        source: None,
    };

    // A user signs up, follows the emailed link and logs in, all through NGINX.
    let res = proxy
        .post_json(
            "/auth/register",
            &json!({"email": "behind@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", nginx.error_log());
    let user = res.json()["user_id"].as_str().unwrap().to_string();
    let link = authd.verification_path("behind@example.com", 1).await;
    assert!(link.starts_with("/auth/verify-email?"), "{link}");
    assert_eq!(proxy.get(&link).await.status, StatusCode::OK);
    let login = proxy
        .post_json(
            "/auth/login",
            &json!({"email": "behind@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", nginx.error_log());
    let access = login.json()["access_token"].as_str().unwrap().to_string();

    // Discovery through NGINX names the issuer of the tokens, both ways; metrics stay in.
    let openid = proxy.get("/auth/.well-known/openid-configuration").await;
    assert_eq!(openid.json()["issuer"], public_url.as_str());
    let rfc8414 = proxy
        .get("/.well-known/oauth-authorization-server/auth")
        .await;
    assert_eq!(rfc8414.body, openid.body);
    assert_eq!(
        proxy.get("/auth/metrics").await.status,
        StatusCode::NOT_FOUND
    );

    // A valid token reaches the app, with who it is, as NGINX learnt it from authd.
    let res = through(&proxy, "/api/orders", Some(&access)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", nginx.error_log());
    let seen = res.json();
    assert_eq!(seen["path"], "/api/orders");
    assert_eq!(seen["user"], user.as_str());
    let sid = authd
        .with_bearer(Method::GET, "/authz", &access)
        .await
        .header("x-auth-session-id")
        .unwrap()
        .to_string();
    assert_eq!(seen["session"], sid.as_str());

    // Whatever the method: the subrequest is authd's GET /authz.
    let auth = format!("Bearer {access}");
    let res = proxy
        .request(
            Method::POST,
            "/api/orders",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(b"{\"item\": 1}".to_vec()),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", nginx.error_log());
    assert_eq!(res.json()["user"], user.as_str());

    // Missing and malformed tokens never reach the app.
    refused(&through(&proxy, "/api/orders", None).await, "no token");
    refused(
        &through(&proxy, "/api/orders", Some("not.a.token")).await,
        "malformed",
    );

    // Log out everywhere, through NGINX: the very next call is refused.
    let res = proxy
        .request(
            Method::DELETE,
            "/auth/sessions",
            &[("authorization", &format!("Bearer {access}"))],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    refused(
        &through(&proxy, "/api/orders", Some(&access)).await,
        "after DELETE /sessions",
    );

    // A new login works; once its token expires, NGINX refuses it.
    let login = proxy
        .post_json(
            "/auth/login",
            &json!({"email": "behind@example.com", "password": PASSWORD}),
        )
        .await;
    let fresh = login.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        through(&proxy, "/api/orders", Some(&fresh)).await.status,
        StatusCode::OK
    );
    authd.clock.advance(Duration::from_secs(601));
    refused(
        &through(&proxy, "/api/orders", Some(&fresh)).await,
        "expired",
    );
    drop(nginx);
}

/// Envoy's `ext_authz` (HTTP service) asks with the original request's method and its
/// path appended to the prefix, and without the body: `/authz/…` answers exactly as
/// `/authz` does.
#[tokio::test]
async fn envoy_style_checks_keep_the_method_and_path() {
    let authd = spawn_app_with(Backend::Memory, &[]).await;
    let user = authd.verified_user("envoy@example.com").await;
    let access = authd.login("envoy@example.com", PASSWORD).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let res = authd
            .with_bearer(method.clone(), "/authz/api/v1/orders/7", &access)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{method}");
        assert_eq!(
            res.header("x-auth-user-id"),
            Some(user.as_str()),
            "{method}"
        );
        assert!(res.header("x-auth-session-id").is_some());
        // The app's root, `/`, is asked about as `/authz/`.
        let root = authd.with_bearer(method.clone(), "/authz/", &access).await;
        assert_eq!(root.status, StatusCode::OK, "{method} /");
    }
    // No token, whatever the method — a preflight included — is refused, not waved on.
    for method in [Method::GET, Method::POST, Method::OPTIONS] {
        let res = authd
            .request(method.clone(), "/authz/api/v1/orders/7", &[], None)
            .await;
        refused(&res, method.as_str());
    }
    let res = authd
        .with_bearer(Method::DELETE, "/sessions", &access)
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = authd
        .with_bearer(Method::POST, "/authz/api/v1/orders/7", &access)
        .await;
    refused(&res, "after DELETE /sessions");
}
