use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::support::{spawn_app, spawn_app_with, testdata, Backend};

async fn jwks(app: &crate::support::TestApp) -> Value {
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("application/json"));
    res.json()
}

#[tokio::test]
async fn jwks_publishes_the_signing_key_with_every_member_and_cache_control() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_JWKS_MAX_AGE", "10m")]).await;
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.header("cache-control"), Some("public, max-age=600"));
    let set = res.json();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["e"], "AQAB");
    for member in ["n", "e", "kid"] {
        let v = key[member].as_str().unwrap();
        assert!(
            !v.contains(['=', '+', '/']),
            "{member} is not unpadded base64url: {v}"
        );
    }
    // kid is the RFC 7638 thumbprint of the key.
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        key["e"].as_str().unwrap(),
        key["n"].as_str().unwrap()
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    assert_eq!(key["kid"], URL_SAFE_NO_PAD.encode(digest.as_ref()));
}

/// `n` and `e` must equal what `openssl rsa -text` prints for the same key file.
#[tokio::test]
async fn modulus_and_exponent_match_openssl() {
    let text = std::fs::read_to_string(testdata("signing-key.openssl-text.txt")).unwrap();
    let modulus_hex: String = text
        .lines()
        .skip_while(|l| !l.starts_with("Modulus:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .flat_map(|l| {
            l.trim()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut expected_n: Vec<u8> = (0..modulus_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&modulus_hex[i..i + 2], 16).unwrap())
        .collect();
    // OpenSSL prints a leading 00 when the top bit is set; JWK `n` has no sign byte.
    while expected_n.first() == Some(&0) {
        expected_n.remove(0);
    }
    assert_eq!(expected_n.len(), 256);
    assert!(text.contains("Exponent: 65537 (0x10001)"));

    let app = spawn_app(Backend::Memory).await;
    let set = jwks(&app).await;
    let key = &set["keys"][0];
    assert_eq!(
        URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap(),
        expected_n
    );
    assert_eq!(
        URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap(),
        [1, 0, 1]
    );
}

#[tokio::test]
async fn access_token_verifies_with_an_independent_library_fed_only_the_jwks() {
    let app = spawn_app_with(
        Backend::Memory,
        &[
            ("AUTH_ISSUER", "https://auth.example"),
            ("AUTH_AUDIENCE", "my-api"),
            ("AUTH_ACCESS_TTL", "15m"),
        ],
    )
    .await;
    let user_id = app.verified_user("yuri@example.com").await;
    let access = app
        .login("yuri@example.com", crate::support::PASSWORD)
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks(&app).await).unwrap();
    let header = jsonwebtoken::decode_header(&access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&["https://auth.example"]);
    validation.set_audience(&["my-api"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(&access, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], user_id.as_str());
    assert!(
        !access.contains("yuri"),
        "the email must not be in the token"
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // A tampered token fails the same check.
    let mut parts: Vec<&str> = access.split('.').collect();
    let forged_claims = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&serde_json::json!({"sub": "someone-else", "iss": "https://auth.example", "aud": "my-api", "exp": 9999999999u64})).unwrap(),
    );
    parts[1] = &forged_claims;
    assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &key, &validation).is_err());
}

#[tokio::test]
async fn two_access_tokens_have_distinct_jti() {
    let app = spawn_app(Backend::Memory).await;
    app.verified_user("zoe@example.com").await;
    let a = app
        .login("zoe@example.com", crate::support::PASSWORD)
        .await
        .json();
    let b = app
        .login("zoe@example.com", crate::support::PASSWORD)
        .await
        .json();
    let jti = |t: &Value| {
        let payload = t["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .to_string();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["jti"].clone()
    };
    assert_ne!(jti(&a), jti(&b));
}

#[tokio::test]
async fn retired_keys_are_published_once_each() {
    let extra = format!(
        "{},{},{}",
        testdata("retired-key.pem"),
        testdata("retired-key.pub.pem"),
        testdata("signing-key.pem")
    );
    let app = spawn_app_with(Backend::Memory, &[("AUTH_JWKS_EXTRA_KEYS", &extra)]).await;
    let set = jwks(&app).await;
    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    // Signing key + the retired key (given as private and as public PEM, listed once).
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_ne!(kids[0], kids[1]);

    // Tokens are signed with the first (active) key.
    app.verified_user("rot@example.com").await;
    let access = app
        .login("rot@example.com", crate::support::PASSWORD)
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let header = jsonwebtoken::decode_header(&access).unwrap();
    assert_eq!(header.kid.as_deref(), Some(kids[0]));
}

#[tokio::test]
async fn head_on_jwks_has_headers_and_no_body() {
    let app = spawn_app(Backend::Memory).await;
    let get = app.get("/.well-known/jwks.json").await;
    let head = app
        .request(Method::HEAD, "/.well-known/jwks.json", &[], None)
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length").map(str::to_string),
        Some(get.body.len().to_string())
    );
    assert_eq!(head.header("cache-control"), get.header("cache-control"));
}

/// SPEC §9: discovery names authd's issuer byte for byte, and only endpoints authd serves.
#[tokio::test]
async fn discovery_names_the_issuer_of_the_tokens_and_only_served_endpoints() {
    for issuer in [None, Some("https://auth.example/tenant")] {
        let overrides: Vec<(&str, &str)> = issuer.map(|i| ("AUTH_ISSUER", i)).into_iter().collect();
        let app = spawn_app_with(Backend::Memory, &overrides).await;
        let openid = app.get("/.well-known/openid-configuration").await;
        assert_eq!(openid.status, StatusCode::OK);
        assert_eq!(openid.header("content-type"), Some("application/json"));
        assert_eq!(openid.header("cache-control"), Some("public, max-age=300"));
        let oauth = app.get("/.well-known/oauth-authorization-server").await;
        assert_eq!(oauth.body, openid.body, "RFC 8414 serves the same document");
        let doc = openid.json();

        let user = app.verified_user("disco@example.com").await;
        let access = app
            .login("disco@example.com", crate::support::PASSWORD)
            .await
            .json()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let payload = access.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(doc["issuer"], claims["iss"], "issuer is the tokens' iss");
        if let Some(issuer) = issuer {
            assert_eq!(doc["issuer"], issuer);
        }
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256"])
        );
        assert_eq!(
            doc["subject_types_supported"],
            serde_json::json!(["public"])
        );
        for claim in [
            "iss",
            "sub",
            "exp",
            "iat",
            "jti",
            "sid",
            "email",
            "email_verified",
        ] {
            assert!(
                doc["claims_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from(claim)),
                "{claim}"
            );
        }
        // Every URL it names is one authd serves, on its public URL.
        let base = format!("http://{}", app.addr);
        let mut named = 0;
        for (field, value) in doc.as_object().unwrap() {
            if !(field.ends_with("_endpoint") || field.ends_with("_uri")) {
                continue;
            }
            named += 1;
            let url = value.as_str().unwrap();
            let path = url
                .strip_prefix(&base)
                .unwrap_or_else(|| panic!("{field} {url} is not under {base}"));
            assert!(
                authd::router::ROUTES
                    .iter()
                    .any(|r| r.method == Method::GET && r.path == path),
                "{field} {url} is not served"
            );
        }
        assert_eq!(named, 2, "jwks_uri and userinfo_endpoint: {doc}");
        let res = app
            .request(
                Method::GET,
                "/userinfo",
                &[("authorization", &format!("Bearer {access}"))],
                None,
            )
            .await;
        assert_eq!(res.json()["sub"], user.as_str());
    }
}

/// The client libraries the discovery test drives, pinned.
const OIDC_CLIENT: [&str; 2] = ["openid-client@6.9.0", "jose@6.2.18"];

/// SPEC §9: a stock OIDC client library (node `openid-client`, with `jose` for the
/// signature) configured with nothing but the issuer URL finds authd's keys, verifies its
/// access token and reads `/userinfo`.
#[tokio::test]
async fn a_stock_oidc_client_discovers_authd_from_the_issuer_alone() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oidc-client");
    let install = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || crate::support::node_packages(&dir, &OIDC_CLIENT))
    };
    install.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    let script = dir.join("discover.mjs");
    std::fs::copy(testdata("oidc/discover.mjs"), &script).unwrap();

    let app = spawn_app(Backend::Memory).await;
    let user = app.verified_user("oidc@example.com").await;
    let access = app
        .login("oidc@example.com", crate::support::PASSWORD)
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let issuer = format!("http://{}", app.addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .arg(&issuer)
            .arg(&access)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "openid-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["issuer"], format!("http://{}", app.addr).as_str());
    assert_eq!(seen["alg"], "RS256");
    assert_eq!(seen["sub"], user.as_str());
    assert!(seen["sid"].is_string());
    assert_eq!(seen["userinfo"]["sub"], user.as_str());
    assert_eq!(seen["userinfo"]["email"], "oidc@example.com");
    assert_eq!(seen["userinfo"]["email_verified"], true);
}
