//! What PostgreSQL and Redis must guarantee beyond the contract: nothing secret at rest,
//! state that survives a restart, migrations applied once.

use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::StatusCode;

use crate::support::services;
use crate::support::{path_of_link, spawn_app_on, Storage, PASSWORD};

/// How many numbered migrations `sql/` holds.
fn migration_files() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql"))
        .unwrap()
        .count()
}

/// Every row of every table of the test database, as text.
pub(crate) async fn dump_database(storage: &Storage) -> String {
    let client = storage.database.as_ref().unwrap().client().await;
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap();
    let mut out = String::new();
    for table in tables {
        let name: String = table.get(0);
        for row in client
            .query(&format!("SELECT t::text FROM {name} t"), &[])
            .await
            .unwrap()
        {
            out.push_str(&row.get::<_, String>(0));
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn no_raw_token_or_password_is_stored() {
    let storage = Storage::real().await;
    let app = spawn_app_on(storage.clone(), &[]).await;
    app.register("secret@example.com", PASSWORD).await;
    // Two verification emails: one consumed, one still live in Redis.
    app.request(
        hyper::Method::POST,
        "/resend-verification",
        &[("content-type", "application/json")],
        Some(br#"{"email":"secret@example.com"}"#.to_vec()),
    )
    .await;
    let emails = app.mailer.wait_for("secret@example.com", 2).await;
    let verification_tokens: Vec<String> = emails
        .iter()
        .map(|m| {
            path_of_link(&m.text)
                .rsplit('=')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        app.get(&path_of_link(&emails[0].text)).await.status,
        StatusCode::OK
    );
    let login = app.login("secret@example.com", PASSWORD).await.json();
    let first_refresh = login["refresh_token"].as_str().unwrap().to_string();
    let second = app.refresh(&first_refresh).await.json();
    let second_refresh = second["refresh_token"].as_str().unwrap().to_string();
    app.login("secret@example.com", "wrong password").await;

    let mut at_rest = dump_database(&storage).await;
    let redis = storage.redis.as_ref().unwrap().dump().await;
    assert!(
        !redis.is_empty(),
        "the live verification token and a rate counter are in Redis"
    );
    for (key, value) in &redis {
        at_rest.push_str(&format!("{key} {value}\n"));
    }
    assert!(
        at_rest.contains("secret@example.com"),
        "the dump is of the right database"
    );

    let mut secrets = vec![PASSWORD.to_string(), first_refresh, second_refresh];
    secrets.extend(verification_tokens);
    for secret in &secrets {
        assert!(!at_rest.contains(secret.as_str()), "a raw secret is stored");
        // Nor the raw bytes behind a token (bytea prints as hex).
        if let Ok(bytes) = URL_SAFE_NO_PAD.decode(secret) {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!at_rest.contains(&hex), "raw token bytes are stored");
        }
    }
    // Rate-limit keys name the address only by its hash.
    assert!(
        redis.iter().all(|(k, _)| !k.contains("secret@example.com")),
        "{redis:?}"
    );
}

#[tokio::test]
async fn users_and_sessions_survive_a_restart() {
    let storage = Storage::real().await;
    let app = spawn_app_on(storage.clone(), &[]).await;
    app.verified_user("durable@example.com").await;
    let refresh = app.login("durable@example.com", PASSWORD).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.stop().await;

    let app = spawn_app_on(storage.clone(), &[]).await;
    assert_eq!(
        app.login("durable@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    let res = app.refresh(&refresh).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        app.register("durable@example.com", PASSWORD).await.status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn an_email_queued_before_a_restart_is_sent_after_it() {
    let storage = Storage::real().await;
    // An email queued while no authd runs (the schema applied by an earlier one)…
    spawn_app_on(storage.clone(), &[]).await.stop().await;
    let client = storage.database.as_ref().unwrap().client().await;
    client
        .batch_execute(
            "INSERT INTO users (id, email, password_hash) VALUES ('00000000-0000-4000-8000-000000000001', 'queued@example.com', 'x');
             INSERT INTO outbox (kind, user_id, recipient) VALUES ('verification', '00000000-0000-4000-8000-000000000001', 'queued@example.com');",
        )
        .await
        .unwrap();
    // …is sent by the next instance.
    let app = spawn_app_on(storage.clone(), &[]).await;
    let emails = app.mailer.wait_for("queued@example.com", 1).await;
    assert!(emails[0].text.contains("/verify-email?token="));
}

/// SPEC §6: emails go to the address stored on the account — whatever was written when the
/// email was queued.
#[tokio::test]
async fn an_email_goes_to_the_address_the_account_has_when_it_is_sent() {
    let storage = Storage::real().await;
    spawn_app_on(storage.clone(), &[]).await.stop().await;
    let client = storage.database.as_ref().unwrap().client().await;
    client
        .batch_execute(
            "INSERT INTO users (id, email, password_hash) VALUES ('00000000-0000-4000-8000-000000000002', 'stored@example.com', 'x');
             INSERT INTO outbox (kind, user_id, recipient) VALUES ('verification', '00000000-0000-4000-8000-000000000002', 'typed@example.com');",
        )
        .await
        .unwrap();
    let app = spawn_app_on(storage.clone(), &[]).await;
    app.mailer.wait_for("stored@example.com", 1).await;
    app.mail_barrier("barrier@example.com").await;
    assert!(app.mailer.sent_to("typed@example.com").is_empty());
}

#[tokio::test]
async fn replicas_starting_together_apply_each_migration_once() {
    let storage = Storage::real().await;
    let url = storage.database.as_ref().unwrap().url.clone();
    let config = authd::repo::postgres::DatabaseUrl::parse(&url).unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { authd::repo::postgres::migrate::run(&config).await.unwrap() })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.unwrap());
    }
    assert_eq!(applied.len(), migration_files(), "{applied:?}");
    let client = storage.database.as_ref().unwrap().client().await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM authd_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=migration_files() as i32).collect::<Vec<_>>());
}

#[tokio::test]
async fn authd_migrate_applies_the_schema_and_exits() {
    let storage = Storage::real().await;
    let url = storage.database.as_ref().unwrap().url.clone();
    let output = Command::new(env!("CARGO_BIN_EXE_authd"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let client = storage.database.as_ref().unwrap().client().await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM authd_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count as usize, migration_files());
    // Running it again is a no-op.
    let again = Command::new(env!("CARGO_BIN_EXE_authd"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(again.status.success());
    // Without a database it says so.
    let none = Command::new(env!("CARGO_BIN_EXE_authd"))
        .arg("migrate")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("DATABASE_URL"));
    let _ = services();
}
