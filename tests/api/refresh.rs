use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;

use crate::support::{spawn_app, spawn_app_on, spawn_app_with, Backend, PgProxy};

fn refresh_token_of(res: &crate::support::TestResponse) -> String {
    res.json()["refresh_token"].as_str().unwrap().to_string()
}

both!(refresh_returns_a_new_pair_and_spends_the_old_token);
async fn refresh_returns_a_new_pair_and_spends_the_old_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, first) = app.session("olga@example.com").await;
    let res = app.refresh(&first).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let body = res.json();
    assert_eq!(body["token_type"], "Bearer");
    let second = refresh_token_of(&res);
    assert_ne!(second, first);
    assert_ne!(body["access_token"].as_str().unwrap(), access);
    assert_eq!(app.refresh(&second).await.status, StatusCode::OK);
}

both!(reusing_a_rotated_token_revokes_the_whole_family);
async fn reusing_a_rotated_token_revokes_the_whole_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, first) = app.session("pete@example.com").await;
    let second = refresh_token_of(&app.refresh(&first).await);
    let reuse = app.refresh(&first).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reuse.problem_code(), "invalid_token");
    // The legitimate successor died with the family.
    assert_eq!(app.refresh(&second).await.status, StatusCode::UNAUTHORIZED);
    let metrics = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("authd_refresh_total{outcome=\"reuse_detected\"} 1"),
        "{metrics}"
    );
}

both!(reuse_within_the_grace_is_refused_but_keeps_the_family);
async fn reuse_within_the_grace_is_refused_but_keeps_the_family(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_REFRESH_REUSE_GRACE", "30s")]).await;
    let (_, first) = app.session("quinn@example.com").await;
    let second = refresh_token_of(&app.refresh(&first).await);
    assert_eq!(app.refresh(&first).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&second).await.status, StatusCode::OK);
}

both!(reuse_after_the_grace_revokes_the_family);
async fn reuse_after_the_grace_revokes_the_family(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_REFRESH_REUSE_GRACE", "1s")]).await;
    let (_, first) = app.session("rita@example.com").await;
    let second = refresh_token_of(&app.refresh(&first).await);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(app.refresh(&first).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&second).await.status, StatusCode::UNAUTHORIZED);
}

both!(missing_or_malformed_refresh_token_is_400_unknown_is_401);
async fn missing_or_malformed_refresh_token_is_400_unknown_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({}),
        json!({"refresh_token": 7}),
        json!({"refresh_token": "short"}),
    ] {
        let res = app.post_json("/refresh", &body).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(res.problem_code(), "bad_request");
    }
    let res = app.refresh(&"A".repeat(43)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.problem_code(), "invalid_token");
}

both!(expired_refresh_token_is_401);
async fn expired_refresh_token_is_401(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("AUTH_REFRESH_TTL", "1s"), ("AUTH_ACCESS_TTL", "1s")],
    )
    .await;
    let (_, token) = app.session("sam@example.com").await;
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(app.refresh(&token).await.status, StatusCode::UNAUTHORIZED);
}

both!(thirty_two_concurrent_refreshes_of_one_token_succeed_exactly_once);
async fn thirty_two_concurrent_refreshes_of_one_token_succeed_exactly_once(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let (_, token) = app.session("tess@example.com").await;
    let token = Arc::new(token);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { app.refresh(&token).await })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let res = t.await.unwrap();
        match res.status {
            StatusCode::OK => winners.push(refresh_token_of(&res)),
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1);
    // The losers were reuse: with no grace, the family is gone, the winner's token too.
    assert_eq!(
        app.refresh(&winners[0]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

both!(a_refresh_chain_keeps_working);
async fn a_refresh_chain_keeps_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mut token) = app.session("uma@example.com").await;
    for _ in 0..10 {
        let res = app.refresh(&token).await;
        assert_eq!(res.status, StatusCode::OK);
        token = refresh_token_of(&res);
    }
}

/// The refresh success path is one statement, one round trip to PostgreSQL (the rotation
/// and its successor in one `UPDATE … RETURNING` + `INSERT`), counted on the wire.
#[tokio::test]
async fn a_successful_refresh_is_one_round_trip_to_postgres() {
    let storage = crate::support::Storage::real().await;
    let proxy = PgProxy::start(&crate::support::services().postgres).await;
    let through_proxy = proxy.in_front_of(&storage.database.as_ref().unwrap().url);
    let app = spawn_app_on(storage.clone(), &[("DATABASE_URL", &through_proxy)]).await;
    let (_, mut token) = app.session("counted@example.com").await;
    // Warm up every pooled connection's prepared statements.
    for _ in 0..8 {
        token = refresh_token_of(&app.refresh(&token).await);
    }
    let before = proxy.round_trips();
    let started = std::time::Instant::now();
    const REFRESHES: u64 = 50;
    for _ in 0..REFRESHES {
        let res = app.refresh(&token).await;
        assert_eq!(res.status, StatusCode::OK);
        token = refresh_token_of(&res);
    }
    let trips = proxy.round_trips() - before;
    // In the background, the outbox worker polls once a second (two statements: drop
    // orphans, claim) and the revocation poller four times a second (one statement):
    // allow for those meanwhile. Two statements per refresh would be 100.
    let background = (started.elapsed().as_secs_f64() * 6.0).ceil() as u64 + 4;
    assert!(
        background < REFRESHES,
        "the refreshes were too slow to count"
    );
    assert!(
        (REFRESHES..=REFRESHES + background).contains(&trips),
        "{REFRESHES} refreshes took {trips} round trips"
    );
}

/// An app on PostgreSQL reached through a [`PgProxy`], with a 1 s database deadline.
async fn app_behind_a_proxy() -> (PgProxy, crate::support::TestApp) {
    let storage = crate::support::Storage::real().await;
    let proxy = PgProxy::start(&crate::support::services().postgres).await;
    let through_proxy = proxy.in_front_of(&storage.database.as_ref().unwrap().url);
    let env = [
        ("DATABASE_URL", through_proxy.as_str()),
        ("AUTH_DB_TIMEOUT", "1s"),
    ];
    let app = spawn_app_on(storage.clone(), &env).await;
    (proxy, app)
}

/// The rotation writer has one connection. When it stops answering (half-open after a
/// failover), the refreshes on it fail with 503 and the connection is replaced: the next
/// refresh works, rather than queueing behind the dead one until TCP gives up.
#[tokio::test]
async fn a_dead_rotation_connection_is_replaced() {
    let (proxy, app) = app_behind_a_proxy().await;
    let (_, token) = app.session("cut@example.com").await;
    let res = app.refresh(&token).await;
    assert_eq!(res.status, StatusCode::OK);
    let token = refresh_token_of(&res);

    proxy.cut_open_connections();
    let res = app.refresh(&token).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    // Its rotation never reached the server: the token is still current, and the next
    // attempt goes out on a fresh connection.
    let res = app.refresh(&token).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "the refresh after a dead rotation connection"
    );
    let res = app.refresh(&refresh_token_of(&res)).await;
    assert_eq!(res.status, StatusCode::OK);
}

/// SPEC §6: no 503 after a commit. A rotation whose answer does not come in time (a
/// congested network, a stalled server) is answered 503 only once it can no longer
/// commit: its statement, delivered to the server after the 503, changes nothing, and the
/// token the 503 answered still works — its retry is not taken for a replay.
#[tokio::test]
async fn a_rotation_delivered_after_its_503_changes_nothing() {
    let (proxy, app) = app_behind_a_proxy().await;
    let (_, token) = app.session("late@example.com").await;
    let res = app.refresh(&token).await;
    assert_eq!(res.status, StatusCode::OK);
    let token = refresh_token_of(&res);

    proxy.hold_open_connections();
    let res = app.refresh(&token).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    // What the hold kept back reaches the server now: had the session it was sent on
    // lived, the rotation would commit here, after its 503 (within milliseconds; the
    // pause leaves it far more).
    proxy.release().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let res = app.refresh(&token).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "the token a 503 answered is still current"
    );
    let res = app.refresh(&refresh_token_of(&res)).await;
    assert_eq!(res.status, StatusCode::OK, "and its session lives");
}

both!(a_full_signing_pool_never_costs_a_successor);
/// SPEC §6: a rotation that committed is always answered with its successor. With the
/// signing pool full, a refresh is refused *before* it rotates — the presented token still
/// works — never after.
async fn a_full_signing_pool_never_costs_a_successor(backend: Backend) {
    let app = Arc::new(
        spawn_app_with(
            backend,
            &[("AUTH_SIGNING_WORKERS", "1"), ("AUTH_SIGNING_QUEUE", "1")],
        )
        .await,
    );
    let mut chains = Vec::new();
    for i in 0..12 {
        let (_, token) = app.session(&format!("chain{i}@example.com")).await;
        chains.push(token);
    }
    let shed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = chains
        .into_iter()
        .map(|mut token| {
            let (app, shed) = (app.clone(), shed.clone());
            tokio::spawn(async move {
                let mut done = 0;
                while done < 5 {
                    let res = app.refresh(&token).await;
                    match res.status {
                        StatusCode::OK => {
                            token = refresh_token_of(&res);
                            done += 1;
                        }
                        StatusCode::SERVICE_UNAVAILABLE => {
                            assert_eq!(res.problem_code(), "overloaded");
                            shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        other => {
                            panic!("a refresh chain broke with {other}: its successor was lost")
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        shed.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the signing pool never filled: the test proved nothing"
    );
}
