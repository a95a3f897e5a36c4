use hyper::StatusCode;
use serde_json::json;

use crate::support::{spawn_app, Backend, PASSWORD};

both!(register_returns_201_with_normalised_email_and_sends_verification_email);
async fn register_returns_201_with_normalised_email_and_sends_verification_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app.register("  Alice@Example.COM ", PASSWORD).await;
    assert_eq!(res.status, StatusCode::CREATED);
    let body = res.json();
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["email_verified"], false);
    let id = body["user_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let emails = app.mailer.wait_for("alice@example.com", 1).await;
    assert_eq!(emails.len(), 1);
    assert!(emails[0].text.contains("/verify-email?token="));
    assert!(emails[0].html.contains("/verify-email?token="));
}

both!(register_rejects_invalid_emails_with_400);
async fn register_rejects_invalid_emails_with_400(backend: Backend) {
    let app = spawn_app(backend).await;
    for email in [
        "",
        "no-at-sign",
        "a@b@c.com",
        "alice@localhost",
        "al ice@example.com",
    ] {
        let res = app.register(email, PASSWORD).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{email:?}");
        assert_eq!(res.problem_code(), "invalid_email");
    }
}

both!(register_accepts_8_to_72_byte_passwords_and_rejects_others);
async fn register_accepts_8_to_72_byte_passwords_and_rejects_others(backend: Backend) {
    let app = spawn_app(backend).await;
    for (i, password) in ["1234567".to_string(), "x".repeat(73), "é".repeat(37)]
        .iter()
        .enumerate()
    {
        let res = app.register(&format!("p{i}@example.com"), password).await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{} bytes",
            password.len()
        );
        assert_eq!(res.problem_code(), "invalid_password");
    }
    assert_eq!(
        app.register("eight@example.com", "12345678").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.register("max@example.com", &"x".repeat(72))
            .await
            .status,
        StatusCode::CREATED
    );
    // Nothing was created for the refused ones.
    assert_eq!(
        app.register("p0@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
}

both!(register_twice_in_any_letter_case_is_409);
async fn register_twice_in_any_letter_case_is_409(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.register("bob@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let res = app.register("BOB@example.com", "another password").await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(res.problem_code(), "email_taken");
}

both!(concurrent_registrations_of_one_email_create_one_account);
async fn concurrent_registrations_of_one_email_create_one_account(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let app = app.clone();
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@Example.com"
            };
            tokio::spawn(async move { app.register(email, PASSWORD).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        9,
        "{statuses:?}"
    );
}

both!(register_with_missing_or_mistyped_fields_is_400_bad_request);
async fn register_with_missing_or_mistyped_fields_is_400_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({"email": "a@example.com"}),
        json!({"email": 5, "password": PASSWORD}),
        json!([1, 2]),
    ] {
        let res = app.post_json("/register", &body).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(res.problem_code(), "bad_request");
    }
    let extra = json!({"email": "extra@example.com", "password": PASSWORD, "name": "ignored"});
    assert_eq!(
        app.post_json("/register", &extra).await.status,
        StatusCode::CREATED
    );
}
