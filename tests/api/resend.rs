use hyper::StatusCode;
use serde_json::json;

use crate::support::{spawn_app, spawn_app_with, Backend, PASSWORD};

both!(resend_sends_a_new_working_link);
async fn resend_sends_a_new_working_link(backend: Backend) {
    let app = spawn_app(backend).await;
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

both!(resend_for_a_verified_account_is_204_and_sends_nothing);
async fn resend_for_a_verified_account_is_204_and_sends_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.verified_user("erin@example.com").await;
    let res = app
        .post_json(
            "/resend-verification",
            &json!({"email": "erin@example.com"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    app.mail_barrier("after-erin@example.com").await;
    assert_eq!(app.mailer.sent_to("erin@example.com").len(), 1);
}

both!(resend_rejects_bad_and_unknown_emails);
async fn resend_rejects_bad_and_unknown_emails(backend: Backend) {
    let app = spawn_app(backend).await;
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

both!(resend_past_the_limit_is_429_with_retry_after);
async fn resend_past_the_limit_is_429_with_retry_after(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("AUTH_RESEND_MAX", "2"), ("AUTH_RESEND_WINDOW", "1h")],
    )
    .await;
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
    app.mail_barrier("after-frank@example.com").await;
    assert_eq!(app.mailer.sent_to("frank@example.com").len(), 3);
}

both!(resend_limit_window_ends);
async fn resend_limit_window_ends(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("AUTH_RESEND_MAX", "1"), ("AUTH_RESEND_WINDOW", "1s")],
    )
    .await;
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
    app.wait_out_ttl(std::time::Duration::from_millis(1100))
        .await;
    assert_eq!(
        app.post_json("/resend-verification", &body).await.status,
        StatusCode::NO_CONTENT
    );
}
