use std::process::Command;

use authd::{App, Config};

use crate::support::{base_config, testdata};

/// Why authd refuses to start with `overrides`: a configuration error (key files are
/// parsed with the rest of the configuration) or a start-up error.
async fn start_error(overrides: &[(&str, &str)]) -> String {
    let mut env = base_config();
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    match Config::load(&env) {
        Err(e) => e.to_string(),
        Ok(config) => match App::build(config).await {
            Ok(_) => panic!("app should not build"),
            Err(e) => e.to_string(),
        },
    }
}

#[tokio::test]
async fn missing_or_weak_signing_keys_stop_start_up_with_the_variable_named() {
    let mut env = base_config();
    env.insert("AUTH_SIGNING_KEY".into(), "/nonexistent/key.pem".into());
    env.insert("AUTH_JWKS_EXTRA_KEYS".into(), "/nonexistent/old.pem".into());
    env.insert("AUTH_ACCESS_TTL".into(), "soon".into());
    let missing = Config::load(&env).unwrap_err().to_string();
    for expected in [
        "AUTH_SIGNING_KEY",
        "/nonexistent/key.pem",
        "AUTH_JWKS_EXTRA_KEYS",
        "AUTH_ACCESS_TTL",
    ] {
        assert!(missing.contains(expected), "{missing}");
    }
    let weak = start_error(&[("AUTH_SIGNING_KEY", &testdata("weak-1024-key.pem"))]).await;
    assert!(
        weak.contains("AUTH_SIGNING_KEY") && weak.contains("2048"),
        "{weak}"
    );
    let public_only = start_error(&[("AUTH_SIGNING_KEY", &testdata("retired-key.pub.pem"))]).await;
    assert!(public_only.contains("PRIVATE KEY"), "{public_only}");
    let extra = start_error(&[("AUTH_JWKS_EXTRA_KEYS", &testdata("weak-1024-key.pem"))]).await;
    assert!(
        extra.contains("AUTH_JWKS_EXTRA_KEYS") && extra.contains("2048"),
        "{extra}"
    );
}

#[test]
fn the_binary_reports_every_bad_variable_in_one_line_and_exits_non_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_authd"))
        .env_clear()
        .env("AUTH_ACCESS_TTL", "soon")
        .env("AUTH_BCRYPT_COST", "99")
        .env("DATABASE_URL", "not a url")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for name in ["AUTH_ACCESS_TTL", "AUTH_BCRYPT_COST", "DATABASE_URL"] {
        assert!(stderr.contains(name), "{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_binary_reports_a_bad_key_file_without_a_panic() {
    let output = Command::new(env!("CARGO_BIN_EXE_authd"))
        .env_clear()
        .env("AUTH_LISTEN", "127.0.0.1:0")
        .env("AUTH_BCRYPT_COST", "4")
        .env("AUTH_SIGNING_KEY", "/nonexistent/key.pem")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("AUTH_SIGNING_KEY"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
