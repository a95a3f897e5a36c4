//! Password reset (forgot → email → reset) and change (with an access token): every session
//! ends, the old password stops working, the new one works.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::SmtpSink;
use crate::support::{
    path_of_link, spawn_app_on, spawn_app_with, Backend, TestApp, TestResponse, PASSWORD,
};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn forgot(app: &TestApp, email: &str) -> TestResponse {
    app.post_json("/password/forgot", &json!({"email": email}))
        .await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> TestResponse {
    app.post_json(
        "/password/reset",
        &json!({"token": token, "password": password}),
    )
    .await
}

async fn change(app: &TestApp, bearer: Option<&str>, current: &str, new: &str) -> TestResponse {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = json!({"current_password": current, "new_password": new})
        .to_string()
        .into_bytes();
    app.request(Method::POST, "/password/change", &headers, Some(body))
        .await
}

/// The token of the latest reset email captured for `to`.
async fn reset_token(app: &TestApp, to: &str, count: usize) -> String {
    let emails = app.mailer.wait_for(to, count).await;
    let reset = emails
        .iter()
        .rev()
        .find(|m| m.subject == "Reset your password")
        .expect("a reset email");
    path_of_link(&reset.text)
        .rsplit('=')
        .next()
        .unwrap()
        .to_string()
}

fn refresh_of(res: &TestResponse) -> String {
    res.json()["refresh_token"].as_str().unwrap().to_string()
}

both!(the_whole_reset_flow_through_a_real_smtp_server);
async fn the_whole_reset_flow_through_a_real_smtp_server(backend: Backend) {
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(false))
        .await
        .unwrap();
    let url = sink.url();
    let app = spawn_app_on(
        backend.storage().await,
        &[("SMTP_URL", &url), ("AUTH_RESET_TTL", "30m")],
    )
    .await;
    app.register("forgetful@example.com", PASSWORD).await;
    let verify = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        app.get(&path_of_link(verify[0]["text"].as_str().unwrap()))
            .await
            .status,
        StatusCode::OK
    );
    let laptop = refresh_of(&app.login("forgetful@example.com", PASSWORD).await);
    let phone = refresh_of(&app.login("forgetful@example.com", PASSWORD).await);

    let res = forgot(&app, "Forgetful@Example.com").await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert!(res.body.is_empty());
    let messages = sink.wait_for(2, Duration::from_secs(10)).await;
    let m = &messages[1];
    assert_eq!(m["to"], json!(["forgetful@example.com"]));
    assert_eq!(m["subject"], "Reset your password");
    let text = m["text"].as_str().expect("a text part");
    let html = m["html"].as_str().expect("an HTML part");
    let link = path_of_link(text);
    assert!(link.starts_with("/password/reset?token="), "{link}");
    assert!(text.contains("expires in 30 minutes") && html.contains("expires in 30 minutes"));
    assert!(text.contains("If you did not ask for this, ignore this email"));
    let token = link.rsplit('=').next().unwrap();

    assert_eq!(
        reset(&app, token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    for session in [&laptop, &phone] {
        assert_eq!(
            app.refresh(session).await.status,
            StatusCode::UNAUTHORIZED,
            "a session survived the reset"
        );
    }
    assert_eq!(
        app.login("forgetful@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("forgetful@example.com", NEW_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

both!(a_reset_token_works_once);
async fn a_reset_token_works_once(backend: Backend) {
    let app = crate::support::spawn_app(backend).await;
    app.verified_user("once@example.com").await;
    assert_eq!(
        forgot(&app, "once@example.com").await.status,
        StatusCode::ACCEPTED
    );
    let token = reset_token(&app, "once@example.com", 2).await;
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    let again = reset(&app, &token, "yet another passphrase").await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.problem_code(), "invalid_token");
    assert_eq!(
        app.login("once@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

both!(an_expired_reset_token_fails);
async fn an_expired_reset_token_fails(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_RESET_TTL", "1s")]).await;
    app.verified_user("late@example.com").await;
    forgot(&app, "late@example.com").await;
    let token = reset_token(&app, "late@example.com", 2).await;
    app.wait_out_ttl(Duration::from_millis(1200)).await;
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login("late@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

both!(an_invalid_new_password_is_refused_before_the_token_is_spent);
async fn an_invalid_new_password_is_refused_before_the_token_is_spent(backend: Backend) {
    let app = crate::support::spawn_app(backend).await;
    app.verified_user("typo@example.com").await;
    forgot(&app, "typo@example.com").await;
    let token = reset_token(&app, "typo@example.com", 2).await;
    let res = reset(&app, &token, "short").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.problem_code(), "invalid_password");
    assert_eq!(
        reset(&app, &token, &"x".repeat(73)).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
}

both!(a_reset_verifies_the_email);
async fn a_reset_verifies_the_email(backend: Backend) {
    let app = crate::support::spawn_app(backend).await;
    app.register("unverified@example.com", PASSWORD).await;
    assert_eq!(
        app.login("unverified@example.com", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
    forgot(&app, "unverified@example.com").await;
    let token = reset_token(&app, "unverified@example.com", 2).await;
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.login("unverified@example.com", NEW_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

both!(forgot_for_an_unknown_email_is_202_and_sends_nothing);
async fn forgot_for_an_unknown_email_is_202_and_sends_nothing(backend: Backend) {
    let app = crate::support::spawn_app(backend).await;
    assert_eq!(
        forgot(&app, "ghost@example.com").await.status,
        StatusCode::ACCEPTED
    );
    let bad = forgot(&app, "not an email").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.problem_code(), "invalid_email");
    // A known address queued after it gets its email, so the worker has been past the first.
    app.verified_user("known@example.com").await;
    forgot(&app, "known@example.com").await;
    reset_token(&app, "known@example.com", 2).await;
    assert!(app.mailer.sent_to("ghost@example.com").is_empty());
}

both!(forgot_is_limited_per_address_without_telling);
async fn forgot_is_limited_per_address_without_telling(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_RESEND_MAX", "1")]).await;
    app.verified_user("spam@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            forgot(&app, "spam@example.com").await.status,
            StatusCode::ACCEPTED
        );
    }
    reset_token(&app, "spam@example.com", 2).await;
    app.mail_barrier("after-spam@example.com").await;
    let resets = app
        .mailer
        .sent_to("spam@example.com")
        .iter()
        .filter(|m| m.subject == "Reset your password")
        .count();
    assert_eq!(resets, 1);
}

#[tokio::test]
async fn verification_and_reset_tokens_are_not_interchangeable() {
    let app = crate::support::spawn_app(Backend::Memory).await;
    app.register("mixed@example.com", PASSWORD).await;
    let verify_path = app.verification_path("mixed@example.com", 1).await;
    let verification_token = verify_path.rsplit('=').next().unwrap().to_string();
    assert_eq!(
        reset(&app, &verification_token, NEW_PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
    forgot(&app, "mixed@example.com").await;
    let reset_token = reset_token(&app, "mixed@example.com", 2).await;
    assert_eq!(
        app.get(&format!("/verify-email?token={reset_token}"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Both still work for their own purpose.
    assert_eq!(app.get(&verify_path).await.status, StatusCode::OK);
    assert_eq!(
        reset(&app, &reset_token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
}

both!(a_password_change_ends_every_session);
async fn a_password_change_ends_every_session(backend: Backend) {
    let app = crate::support::spawn_app(backend).await;
    let (access, laptop) = app.session("changer@example.com").await;
    let phone = refresh_of(&app.login("changer@example.com", PASSWORD).await);
    let res = change(&app, Some(&access), PASSWORD, NEW_PASSWORD).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    for session in [&laptop, &phone] {
        assert_eq!(app.refresh(session).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.login("changer@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("changer@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// An access token signed with the test key, with `claims` as given.
fn signed(claims: &Value, key_file: &str, kid: &str) -> String {
    let pem = std::fs::read(crate::support::testdata(key_file)).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

both!(a_change_needs_a_genuine_current_access_token);
async fn a_change_needs_a_genuine_current_access_token(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("AUTH_ISSUER", "https://auth.example"),
            ("AUTH_AUDIENCE", "my-api"),
        ],
    )
    .await;
    let (access, _) = app.session("guarded@example.com").await;
    let parts: Vec<&str> = access.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap();

    // Tokens for the same real user, each wrong in exactly one way.
    let with = |field: &str, value: Value| {
        let mut c = claims.clone();
        c[field] = value;
        c
    };
    let now = claims["iat"].as_u64().unwrap();
    let mut forged_claims = claims.clone();
    forged_claims["exp"] = json!(now + 7200);
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged_claims), parts[2]);
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let alg_none = format!("{}.{}.", b64(&none_header), parts[1]);
    let wrong_issuer = signed(
        &with("iss", json!("https://evil.example")),
        "signing-key.pem",
        kid,
    );
    let wrong_audience = signed(&with("aud", json!("another-api")), "signing-key.pem", kid);
    let expired = signed(&with("exp", json!(now - 1)), "signing-key.pem", kid);
    let unknown_key = signed(&claims, "retired-key.pem", kid);
    // The control: the same construction with nothing wrong is accepted below.
    let genuine = signed(&claims, "signing-key.pem", kid);

    for (what, bearer) in [
        ("missing", None),
        ("garbage", Some("not-a-jwt")),
        ("tampered", Some(tampered.as_str())),
        ("alg none", Some(alg_none.as_str())),
        ("wrong issuer", Some(wrong_issuer.as_str())),
        ("wrong audience", Some(wrong_audience.as_str())),
        ("expired", Some(expired.as_str())),
        ("unknown key", Some(unknown_key.as_str())),
    ] {
        let res = change(&app, bearer, PASSWORD, NEW_PASSWORD).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(res.problem_code(), "invalid_token", "{what}");
        assert!(
            res.header("www-authenticate")
                .unwrap()
                .starts_with("Bearer"),
            "{what}"
        );
    }
    assert_eq!(
        app.login("guarded@example.com", PASSWORD).await.status,
        StatusCode::OK,
        "nothing changed"
    );
    assert_eq!(
        change(&app, Some(&genuine), PASSWORD, NEW_PASSWORD)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

both!(a_change_checks_the_current_password_with_the_login_limit);
async fn a_change_checks_the_current_password_with_the_login_limit(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_LOGIN_MAX_FAILURES", "2")]).await;
    let (access, _) = app.session("careful@example.com").await;
    let bad_format = change(&app, Some(&access), PASSWORD, "short").await;
    assert_eq!(bad_format.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_format.problem_code(), "invalid_password");
    // A current password that could never be right is simply wrong.
    let impossible = change(&app, Some(&access), "short", NEW_PASSWORD).await;
    assert_eq!(impossible.status, StatusCode::UNAUTHORIZED);
    assert_eq!(impossible.problem_code(), "invalid_credentials");
    for _ in 0..2 {
        let res = change(&app, Some(&access), "not my password", NEW_PASSWORD).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(res.problem_code(), "invalid_credentials");
    }
    let limited = change(&app, Some(&access), PASSWORD, NEW_PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
}

both!(older_reset_links_go_stale_when_the_password_changes);
async fn older_reset_links_go_stale_when_the_password_changes(backend: Backend) {
    let app = crate::support::spawn_app(backend).await;
    app.verified_user("stale@example.com").await;
    forgot(&app, "stale@example.com").await;
    let first = reset_token(&app, "stale@example.com", 2).await;
    forgot(&app, "stale@example.com").await;
    let second = reset_token(&app, "stale@example.com", 3).await;
    assert_ne!(first, second);
    assert_eq!(
        reset(&app, &second, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    // The first link was issued for the old password: it no longer works.
    let stale = reset(&app, &first, "an attacker's passphrase").await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST);
    assert_eq!(stale.problem_code(), "invalid_token");
    assert_eq!(
        app.login("stale@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );

    // Likewise after a change made with an access token.
    forgot(&app, "stale@example.com").await;
    let third = reset_token(&app, "stale@example.com", 4).await;
    let login = app.login("stale@example.com", NEW_PASSWORD).await.json();
    let access_now = login["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        change(&app, Some(&access_now), NEW_PASSWORD, "third passphrase!")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        reset(&app, &third, "an attacker's passphrase").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login("stale@example.com", "third passphrase!")
            .await
            .status,
        StatusCode::OK
    );
}
