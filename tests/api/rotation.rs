//! The key rotation runbook of the README, walked step by step: a token valid at any step
//! keeps verifying — with a JWKS fetched fresh, and with the one a client cached a step
//! earlier — until it expires.

use std::sync::Arc;

use hyper::StatusCode;
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

use crate::support::{spawn_app_on, testdata, Storage, TestApp, PASSWORD};

fn verify(token: &str, jwks: &JwkSet) -> Result<Value, String> {
    let kid = jsonwebtoken::decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("kid not published")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn jwks(app: &TestApp) -> JwkSet {
    serde_json::from_slice(&app.get("/.well-known/jwks.json").await.body).unwrap()
}

async fn start(storage: &Arc<Storage>, signing: &str, extra: &[&str]) -> TestApp {
    let extra: Vec<String> = extra.iter().map(|k| testdata(k)).collect();
    spawn_app_on(
        storage.clone(),
        &[
            ("AUTH_SIGNING_KEY", &testdata(signing)),
            ("AUTH_JWKS_EXTRA_KEYS", &extra.join(",")),
            ("AUTH_ISSUER", "https://auth.example"),
        ],
    )
    .await
}

fn tokens(res: &crate::support::TestResponse) -> (String, String) {
    assert_eq!(res.status, StatusCode::OK);
    let body = res.json();
    (
        body["access_token"].as_str().unwrap().into(),
        body["refresh_token"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn the_rotation_runbook_never_breaks_a_valid_token() {
    // Key A (signing-key.pem) signs today; key B (retired-key.pem) is the next one.
    let storage = Storage::real().await;
    let app = start(&storage, "signing-key.pem", &[]).await;
    app.verified_user("rotate@example.com").await;
    let (token_a, refresh) = tokens(&app.login("rotate@example.com", PASSWORD).await);
    let cached_before = jwks(&app).await;
    assert_eq!(cached_before.keys.len(), 1);
    verify(&token_a, &cached_before).unwrap();
    app.stop().await;

    // Step 1: publish B as an extra key. A still signs.
    let app = start(&storage, "signing-key.pem", &["retired-key.pem"]).await;
    let published = jwks(&app).await;
    assert_eq!(published.keys.len(), 2);
    verify(&token_a, &published).unwrap();
    let (token_a2, refresh) = tokens(&app.refresh(&refresh).await);
    verify(&token_a2, &cached_before).unwrap();
    // Step 2 is waiting AUTH_JWKS_MAX_AGE, so every client has fetched this set:
    let cached_step1 = published;
    app.stop().await;

    // Step 3: B signs; A stays published as an extra key.
    let app = start(&storage, "retired-key.pem", &["signing-key.pem"]).await;
    let (token_b, refresh) = tokens(&app.refresh(&refresh).await);
    let kid_b = jsonwebtoken::decode_header(&token_b).unwrap().kid.unwrap();
    assert_ne!(
        Some(kid_b.clone()),
        jsonwebtoken::decode_header(&token_a).unwrap().kid
    );
    // A client still holding the set it cached at step 1 verifies the new tokens…
    verify(&token_b, &cached_step1).unwrap();
    // …and tokens signed with A before the switch still verify against the served set.
    let served = jwks(&app).await;
    verify(&token_a, &served).unwrap();
    verify(&token_a2, &served).unwrap();
    verify(&token_b, &served).unwrap();
    assert_eq!(
        served.keys[0].common.key_id.as_deref(),
        Some(kid_b.as_str()),
        "the active key is listed first"
    );
    let (session_token_b, session_refresh) = tokens(&app.refresh(&refresh).await);
    // authd's own verifier accepts a token signed with the extra key, too (this ends the
    // sessions, so the last step logs in again).
    let change = app
        .request(
            hyper::Method::POST,
            "/password/change",
            &[("content-type", "application/json"), ("authorization", &format!("Bearer {token_a}"))],
            Some(serde_json::json!({"current_password": PASSWORD, "new_password": "rotated passphrase"}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(change.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh(&session_refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    verify(&session_token_b, &served).unwrap();
    app.stop().await;

    // Step 4, after AUTH_ACCESS_TTL: drop A. B's tokens and the session carry on.
    let app = start(&storage, "retired-key.pem", &[]).await;
    let served = jwks(&app).await;
    assert_eq!(served.keys.len(), 1);
    verify(&token_b, &served).unwrap();
    assert!(
        verify(&token_a, &served).is_err(),
        "A's tokens have expired by now in real life"
    );
    let (token_b2, _) = tokens(&app.login("rotate@example.com", "rotated passphrase").await);
    verify(&token_b2, &served).unwrap();
}
