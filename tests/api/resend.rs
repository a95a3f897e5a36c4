use hyper::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn resend_sends_a_new_working_link() {
    let app = spawn_app().await;
    app.register("dave@example.com", PASSWORD).await;
    app.mailer.wait_for("dave@example.com", 1).await;
    let res = app
        .post_json(
            "/resend-verification",
            &json!({"email": "Dave@Example.com"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty());
    let second = app.verification_path("dave@example.com", 2).await;
    let first = app.verification_path("dave@example.com", 1).await;
    assert_ne!(first, second);
    assert_eq!(app.get(&second).await.status, StatusCode::OK);
}

#[tokio::test]
async fn resend_for_a_verified_account_is_204_and_sends_nothing() {
    let app = spawn_app().await;
    app.verified_user("erin@example.com").await;
    let res = app
        .post_json(
            "/resend-verification",
            &json!({"email": "erin@example.com"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.mailer.sent_to("erin@example.com").len(), 1);
}

#[tokio::test]
async fn resend_rejects_bad_and_unknown_emails() {
    let app = spawn_app().await;
    let res = app
        .post_json("/resend-verification", &json!({"email": "nope"}))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.problem_code(), "invalid_email");
    let res = app
        .post_json(
            "/resend-verification",
            &json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.problem_code(), "not_found");
    let res = app.post_json("/resend-verification", &json!({})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn resend_past_the_limit_is_429_with_retry_after() {
    let app = spawn_app_with(&[("AUTH_RESEND_MAX", "2"), ("AUTH_RESEND_WINDOW", "1h")]).await;
    app.register("frank@example.com", PASSWORD).await;
    let body = json!({"email": "frank@example.com"});
    assert_eq!(
        app.post_json("/resend-verification", &body).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.post_json("/resend-verification", &body).await.status,
        StatusCode::NO_CONTENT
    );
    let res = app.post_json("/resend-verification", &body).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.problem_code(), "rate_limited");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&retry), "{retry}");
    // Registration's email plus two resends; the refused one sent nothing.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.mailer.sent_to("frank@example.com").len(), 3);
}

#[tokio::test]
async fn resend_limit_window_ends() {
    let app = spawn_app_with(&[("AUTH_RESEND_MAX", "1"), ("AUTH_RESEND_WINDOW", "1s")]).await;
    app.register("gina@example.com", PASSWORD).await;
    let body = json!({"email": "gina@example.com"});
    assert_eq!(
        app.post_json("/resend-verification", &body).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.post_json("/resend-verification", &body).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        app.post_json("/resend-verification", &body).await.status,
        StatusCode::NO_CONTENT
    );
}
