use hyper::StatusCode;
use serde_json::json;

use crate::support::{spawn_app, Backend};

both!(logout_ends_the_session_family);
async fn logout_ends_the_session_family(backend: Backend) {
    let app = spawn_app(backend).await;
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

both!(logout_leaves_other_sessions_alone);
async fn logout_leaves_other_sessions_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, laptop) = app.session("walt@example.com").await;
    let phone = app
        .login("walt@example.com", crate::support::PASSWORD)
        .await
        .json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.logout(&laptop).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.refresh(&phone).await.status, StatusCode::OK);
}

both!(logout_is_idempotent);
async fn logout_is_idempotent(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = app.session("xena@example.com").await;
    assert_eq!(app.logout(&token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.logout(&token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.logout(&format!("{}A", "Q".repeat(42))).await.status,
        StatusCode::NO_CONTENT
    );
}

both!(logout_with_a_malformed_payload_is_400);
async fn logout_with_a_malformed_payload_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({}),
        json!({"refresh_token": "nope"}),
        json!({"refresh_token": null}),
    ] {
        let res = app.post_json("/logout", &body).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
    }
}
