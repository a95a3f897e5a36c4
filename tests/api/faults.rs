//! PostgreSQL or Redis dying under a running authd: 503s within about two seconds, the
//! process stays up, `/healthz` and the JWKS keep answering, `/readyz` names the failed
//! dependency, and everything recovers without a restart. Each test owns its servers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;

use crate::support::{block_on, Owned};
use crate::support::{spawn_app_on, Storage, TestApp, PASSWORD};

/// Owned servers are started and stopped from blocking code.
fn start(f: fn() -> Result<Owned, String>) -> Arc<Owned> {
    Arc::new(block_on(async move { f().unwrap() }))
}

async fn in_background(owned: &Arc<Owned>, op: fn(&Owned)) {
    let owned = owned.clone();
    tokio::task::spawn_blocking(move || op(&owned))
        .await
        .unwrap();
}

async fn restart(owned: &Arc<Owned>) {
    let owned = owned.clone();
    tokio::task::spawn_blocking(move || owned.start().unwrap())
        .await
        .unwrap();
}

/// Waits until `check` passes, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn assert_still_serving(app: &TestApp, down: &str) {
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(
        app.get("/.well-known/jwks.json").await.status,
        StatusCode::OK
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.problem_code(), "unavailable");
    assert!(
        ready.json()["detail"].as_str().unwrap().contains(down),
        "{}",
        ready.json()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_gives_quick_503s_and_recovery() {
    let pg = start(Owned::postgres);
    let redis = start(Owned::redis);
    let storage = Storage::on(&pg.url(), &redis.url()).await;
    let app = spawn_app_on(storage.clone(), &[]).await;
    app.verified_user("before@example.com").await;
    app.register("pending@example.com", PASSWORD).await;
    let link = app.verification_path("pending@example.com", 1).await;
    let (access, _) = app.session("bearer@example.com").await;
    let authz = || async {
        app.with_bearer(hyper::Method::GET, "/authz", &access)
            .await
            .status
    };
    assert_eq!(authz().await, StatusCode::OK);

    in_background(&pg, Owned::stop).await;
    // A click while PostgreSQL is down fails with 503 but must not spend the link.
    assert_eq!(app.get(&link).await.status, StatusCode::SERVICE_UNAVAILABLE);
    for what in ["register", "login"] {
        let started = Instant::now();
        let res = match what {
            "register" => app.register("during@example.com", PASSWORD).await,
            _ => app.login("before@example.com", PASSWORD).await,
        };
        let took = started.elapsed();
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert_eq!(res.problem_code(), "unavailable", "{what}");
        assert!(res.header("retry-after").is_some());
        assert!(took < Duration::from_millis(2500), "{what} took {took:?}");
    }
    assert_still_serving(&app, "postgres").await;
    // Revocations can no longer be read: bearer checks soon stop trusting what they know
    // rather than accept a session that may have ended meanwhile (SPEC §9).
    let stale = eventually(Duration::from_secs(6), || async {
        authz().await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(stale, "/authz kept answering from stale revocations");
    let metrics = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("authd_dependency_errors_total{dependency=\"postgres\""),
        "{metrics}"
    );

    restart(&pg).await;
    let recovered = eventually(Duration::from_secs(15), || async {
        app.register("after@example.com", PASSWORD).await.status == StatusCode::CREATED
    })
    .await;
    assert!(
        recovered,
        "authd did not recover after PostgreSQL came back"
    );
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    assert!(
        eventually(Duration::from_secs(3), || async {
            authz().await == StatusCode::OK
        })
        .await
    );
    assert_eq!(
        app.login("before@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&link).await.status,
        StatusCode::OK,
        "the link survived the outage"
    );
    drop(app);
    drop(storage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_quick_503s_and_recovery() {
    let pg = start(Owned::postgres);
    let redis = start(Owned::redis);
    let storage = Storage::on(&pg.url(), &redis.url()).await;
    let app = spawn_app_on(storage.clone(), &[]).await;
    app.register("waiting@example.com", PASSWORD).await;
    let link = app.verification_path("waiting@example.com", 1).await;

    in_background(&redis, Owned::stop).await;
    let started = Instant::now();
    let verify = app.get(&link).await;
    assert_eq!(verify.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(verify.problem_code(), "unavailable");
    let login = app.login("waiting@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "two requests took {:?}",
        started.elapsed()
    );
    assert_still_serving(&app, "redis").await;

    restart(&redis).await;
    // The token died with that Redis (it keeps nothing on disk); a new email brings a new one.
    let recovered = eventually(Duration::from_secs(15), || async {
        app.post_json(
            "/resend-verification",
            &serde_json::json!({"email": "waiting@example.com"}),
        )
        .await
        .status
            == StatusCode::NO_CONTENT
    })
    .await;
    assert!(recovered, "authd did not recover after Redis came back");
    let link = app.verification_path("waiting@example.com", 2).await;
    assert_eq!(app.get(&link).await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}
