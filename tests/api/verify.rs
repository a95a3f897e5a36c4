use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;

use crate::support::{spawn_app, spawn_app_with, Backend, PASSWORD};

both!(verification_link_verifies_once_and_unlocks_login);
async fn verification_link_verifies_once_and_unlocks_login(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("carol@example.com", PASSWORD).await;
    assert_eq!(
        app.login("carol@example.com", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );

    let path = app.verification_path("carol@example.com", 1).await;
    let res = app.get(&path).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), serde_json::json!({"email_verified": true}));
    assert_eq!(
        app.login("carol@example.com", PASSWORD).await.status,
        StatusCode::OK
    );

    let again = app.get(&path).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.problem_code(), "invalid_token");
}

both!(missing_malformed_and_unknown_tokens_are_400);
async fn missing_malformed_and_unknown_tokens_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let unknown = format!("/verify-email?token={}", "A".repeat(43));
    for path in [
        "/verify-email",
        "/verify-email?token=",
        "/verify-email?token=abc",
        unknown.as_str(),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(res.problem_code(), "invalid_token");
    }
}

both!(expired_verification_token_is_400_and_leaves_the_account_unverified);
async fn expired_verification_token_is_400_and_leaves_the_account_unverified(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_VERIFY_TTL", "1s")]).await;
    app.register("late@example.com", PASSWORD).await;
    let path = app.verification_path("late@example.com", 1).await;
    app.wait_out_ttl(Duration::from_millis(1200)).await;
    assert_eq!(app.get(&path).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.login("late@example.com", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
}

both!(twenty_concurrent_verifications_of_one_token_succeed_exactly_once);
async fn twenty_concurrent_verifications_of_one_token_succeed_exactly_once(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    app.register("clicks@example.com", PASSWORD).await;
    let path = Arc::new(app.verification_path("clicks@example.com", 1).await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, path) = (app.clone(), path.clone());
            tokio::spawn(async move { app.get(&path).await.status })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        app.login("clicks@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

both!(head_reports_the_token_without_spending_it);
async fn head_reports_the_token_without_spending_it(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("scanner@example.com", PASSWORD).await;
    let path = app.verification_path("scanner@example.com", 1).await;
    for _ in 0..3 {
        let head = app.request(hyper::Method::HEAD, &path, &[], None).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
    }
    assert_eq!(
        app.login("scanner@example.com", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get(&path).await.status, StatusCode::OK);
    let head = app.request(hyper::Method::HEAD, &path, &[], None).await;
    assert_eq!(head.status, StatusCode::BAD_REQUEST);
}
