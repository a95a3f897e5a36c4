//! Per-client limits (SPEC §8): who the client is — the TCP peer, or behind a trusted
//! proxy the right-most untrusted `X-Forwarded-For` hop — and how many password and email
//! requests it may make.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::support::{spawn_app_on, spawn_app_with, Backend, Client, TestResponse, PASSWORD};

async fn login_from(client: &Client, forwarded_for: Option<&str>) -> TestResponse {
    let body = json!({"email": "someone@example.com", "password": PASSWORD});
    let mut headers = vec![("content-type", "application/json")];
    if let Some(xff) = forwarded_for {
        headers.push(("x-forwarded-for", xff));
    }
    client
        .request(
            Method::POST,
            "/login",
            &headers,
            Some(body.to_string().into_bytes()),
        )
        .await
}

both!(one_client_address_is_limited_others_are_not);
async fn one_client_address_is_limited_others_are_not(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_CLIENT_MAX", "3")]).await;
    let noisy = app.as_client_at("127.0.0.2");
    for _ in 0..3 {
        assert_eq!(
            login_from(&noisy, None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = login_from(&noisy, None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.problem_code(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Every limited route counts, not only /login.
    let forgot = noisy
        .post_json("/password/forgot", &json!({"email": "a@example.com"}))
        .await;
    assert_eq!(forgot.status, StatusCode::TOO_MANY_REQUESTS);
    // A header it made up does not make it somebody else: no proxy is trusted.
    assert_eq!(
        login_from(&noisy, Some("198.51.100.7")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client is served, and cheap routes are not limited for the noisy one.
    let quiet = app.as_client_at("127.0.0.3");
    assert_eq!(
        login_from(&quiet, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        noisy.get("/.well-known/jwks.json").await.status,
        StatusCode::OK
    );
}

both!(the_limit_is_decided_before_any_write);
async fn the_limit_is_decided_before_any_write(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_CLIENT_MAX", "1")]).await;
    let client = app.as_client_at("127.0.0.4");
    assert_eq!(
        client.register("first@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        client.register("second@example.com", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The refused registration stored nothing: the address is still free.
    let other = app.as_client_at("127.0.0.5");
    assert_eq!(
        other.register("second@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
}

both!(behind_a_trusted_proxy_the_forwarded_client_counts);
async fn behind_a_trusted_proxy_the_forwarded_client_counts(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("AUTH_CLIENT_MAX", "2"),
            ("AUTH_TRUSTED_PROXIES", "127.0.0.10, 127.0.0.11"),
        ],
    )
    .await;
    let proxy = app.as_client_at("127.0.0.10");
    for _ in 0..2 {
        login_from(&proxy, Some("198.51.100.1")).await;
    }
    assert_eq!(
        login_from(&proxy, Some("198.51.100.1")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy, or with a spoofed hop in front of the real one.
    assert_eq!(
        login_from(&proxy, Some("198.51.100.2")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&proxy, Some("198.51.100.2, 198.51.100.1"))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right-most untrusted hop is the client"
    );
    // Through a chain of two trusted proxies.
    let inner = app.as_client_at("127.0.0.11");
    assert_eq!(
        login_from(&inner, Some("198.51.100.1, 127.0.0.10"))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A client that writes junk in front of the hop the proxy appends is still itself.
    assert_eq!(
        login_from(&proxy, Some("x, 198.51.100.1")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A header the proxy passed on malformed counts as the proxy — limited like a client,
    // never exempt.
    let odd = app.as_client_at("127.0.0.11");
    for _ in 0..2 {
        login_from(&odd, Some("unknown")).await;
    }
    assert_eq!(
        login_from(&odd, Some("unknown")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The proxy itself, without a header, is never limited.
    for _ in 0..5 {
        assert_eq!(
            login_from(&proxy, None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

both!(the_limit_can_be_turned_off);
async fn the_limit_can_be_turned_off(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_CLIENT_MAX", "0")]).await;
    let client = app.as_client_at("127.0.0.6");
    for i in 0..70 {
        // A new address each time: the per-address failure limit is not what is tested.
        let res = client.login(&format!("n{i}@example.com"), PASSWORD).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
}

/// Counted in Redis, so every replica sees the same count.
#[tokio::test]
async fn replicas_share_the_count() {
    let storage = crate::support::Storage::real().await;
    let overrides = [("AUTH_CLIENT_MAX", "4")];
    let first = spawn_app_on(storage.clone(), &overrides).await;
    let second = spawn_app_on(storage.clone(), &overrides).await;
    let (a, b) = (
        first.as_client_at("127.0.0.7"),
        second.as_client_at("127.0.0.7"),
    );
    for i in 0..4 {
        let replica = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            login_from(replica, None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&a, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&b, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}
