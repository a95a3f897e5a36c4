use hyper::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn logout_ends_the_session_family() {
    let app = spawn_app().await;
    let (_, first) = app.session("vera@example.com").await;
    let second = app.refresh(&first).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Logging out with any token of the session (here the already rotated first one)
    // ends the session: its current token stops working too.
    let res = app.logout(&first).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty());
    assert_eq!(app.refresh(&second).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_leaves_other_sessions_alone() {
    let app = spawn_app().await;
    let (_, laptop) = app.session("walt@example.com").await;
    let phone = app
        .login("walt@example.com", crate::helpers::PASSWORD)
        .await
        .json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.logout(&laptop).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.refresh(&phone).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_is_idempotent() {
    let app = spawn_app().await;
    let (_, token) = app.session("xena@example.com").await;
    assert_eq!(app.logout(&token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.logout(&token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.logout(&format!("{}A", "Q".repeat(42))).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn logout_with_a_malformed_payload_is_400() {
    let app = spawn_app().await;
    for body in [
        json!({}),
        json!({"refresh_token": "nope"}),
        json!({"refresh_token": null}),
    ] {
        let res = app.post_json("/logout", &body).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
    }
}
