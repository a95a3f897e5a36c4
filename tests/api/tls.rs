//! TLS to PostgreSQL (`sslmode=verify-full`/`require`) and Redis (`rediss://`), with the
//! server certificate verified: against the test CA when given, and refused otherwise
//! (the test CA is not among the Mozilla roots authd trusts by default).

use std::sync::Arc;

use hyper::StatusCode;

use crate::support::{
    base_config, spawn_app_on, testdata, Storage, TestDatabase, TestRedis, PASSWORD,
};
use crate::support::{block_on, services, Owned};

fn start(f: fn() -> Result<Owned, String>) -> Arc<Owned> {
    Arc::new(block_on(async move { f().unwrap() }))
}

#[tokio::test]
async fn postgres_over_verified_tls() {
    let pg = start(Owned::postgres_tls);
    let database = TestDatabase::create(&pg.url()).await;
    let name = database.url.rsplit('/').next().unwrap().to_string();
    let ca = testdata("tls/ca.pem");
    // The certificate names localhost: verify-full checks the host name too.
    let tls_url = format!(
        "postgres://postgres@localhost:{}/{name}?sslmode=verify-full&sslrootcert={ca}",
        pg.port
    );
    let storage = Arc::new(Storage {
        database: Some(database),
        redis: Some(TestRedis::new(&services().redis)),
    });
    let app = spawn_app_on(storage.clone(), &[("DATABASE_URL", &tls_url)]).await;
    assert_eq!(
        app.register("tls@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );

    // authd's connections to this database are encrypted.
    let client = storage.database.as_ref().unwrap().client().await;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .unwrap();
    let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(encrypted > 0, "no TLS connection from authd");
    assert_eq!(plain, 0, "authd opened an unencrypted connection");

    // Without the CA, the certificate is not trusted and start-up says so.
    let mut env = base_config();
    env.insert(
        "DATABASE_URL".into(),
        format!(
            "postgres://postgres@localhost:{}/{name}?sslmode=require",
            pg.port
        ),
    );
    let config = authd::Config::load(&env).unwrap();
    let err = authd::App::build(config)
        .await
        .err()
        .expect("an untrusted certificate must be refused")
        .to_string();
    assert!(err.starts_with("DATABASE_URL"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn redis_over_verified_tls() {
    let redis = start(Owned::redis_tls);
    let url = redis.url();
    let prefix = format!("authd-test-{}:", uuid::Uuid::new_v4().simple());
    let storage = Arc::new(Storage {
        database: None,
        redis: None,
    });
    let app = spawn_app_on(
        storage.clone(),
        &[
            ("REDIS_URL", &url),
            ("AUTH_REDIS_PREFIX", &prefix),
            ("AUTH_REDIS_CA", &testdata("tls/ca.pem")),
        ],
    )
    .await;
    app.register("tls@example.com", PASSWORD).await;
    let link = app.verification_path("tls@example.com", 1).await;
    assert_eq!(app.get(&link).await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);

    // Trusting only the Mozilla roots, the same server is refused: not ready, 503s.
    let untrusting = spawn_app_on(
        storage,
        &[("REDIS_URL", &url), ("AUTH_REDIS_PREFIX", &prefix)],
    )
    .await;
    let ready = untrusting.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.json()["detail"].as_str().unwrap().contains("redis"));
}
