//! Several authd replicas on one PostgreSQL database and one Redis Cluster (SPEC §7): every
//! guarantee holds across replicas, not per replica.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;

use crate::support::AuthdProcess;
use crate::support::{path_of_link, Storage, TestApp, TestDatabase, TestRedis, PASSWORD};
use crate::support::{services, RedisCluster, SmtpSink};

fn refresh_of(res: &crate::support::TestResponse) -> String {
    assert_eq!(res.status, StatusCode::OK);
    res.json()["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_database_and_one_redis_cluster() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start().unwrap())
        .await
        .unwrap();
    let sink = Arc::new(
        tokio::task::spawn_blocking(|| SmtpSink::start(false))
            .await
            .unwrap(),
    );
    let storage = Storage {
        database: Some(TestDatabase::create(&services().postgres).await),
        redis: Some(TestRedis::new(&cluster.url)),
    };
    let smtp = sink.url();
    let overrides = [
        ("SMTP_URL", smtp.as_str()),
        ("AUTH_RESEND_MAX", "2"),
        ("AUTH_LOGIN_MAX_FAILURES", "2"),
    ];
    // All three start at the same moment: the migrations are applied once.
    let (a, b, c) = tokio::join!(
        AuthdProcess::start(&storage, &overrides),
        AuthdProcess::start(&storage, &overrides),
        AuthdProcess::start(&storage, &overrides)
    );
    let applied: usize = [&a, &b, &c]
        .iter()
        .map(|p| p.output().matches("migration applied").count())
        .sum();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql"))
        .unwrap()
        .count();
    assert_eq!(
        applied, files,
        "each migration applied exactly once across the replicas"
    );
    let replicas: Vec<TestApp> = [&a, &b, &c].iter().map(|p| p.client()).collect();
    let on = |i: usize| &replicas[i % 3];

    // Register on one, verify on another, log in on the third.
    assert_eq!(
        on(0).register("roamer@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let email = sink.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(
        on(1)
            .get(&path_of_link(email["text"].as_str().unwrap()))
            .await
            .status,
        StatusCode::OK
    );
    let mut token = refresh_of(&on(2).login("roamer@example.com", PASSWORD).await);
    // A refresh chain hopping replicas.
    for i in 0..9 {
        token = refresh_of(&on(i).refresh(&token).await);
    }

    // 32 concurrent refreshes of one token, spread over the replicas: exactly one wins.
    let racers: Vec<_> = (0..32)
        .map(|i| {
            let (client, token) = (TestApp::external(replicas[i % 3].addr), token.clone());
            tokio::spawn(async move { client.refresh(&token).await.status })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        match racer.await.unwrap() {
            StatusCode::OK => winners += 1,
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners, 1);

    // Limits are counted across replicas.
    on(0).register("limited@example.com", PASSWORD).await;
    let resend = json!({"email": "limited@example.com"});
    assert_eq!(
        on(0)
            .post_json("/resend-verification", &resend)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        on(1)
            .post_json("/resend-verification", &resend)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        on(2)
            .post_json("/resend-verification", &resend)
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        on(0)
            .login("roamer@example.com", "wrong password 1")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        on(1)
            .login("roamer@example.com", "wrong password 2")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        on(2).login("roamer@example.com", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Every verification email is sent exactly once, whichever replica's worker sends it.
    for i in 0..6 {
        assert_eq!(
            on(i)
                .register(&format!("once{i}@example.com"), PASSWORD)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    // roamer 1, limited 1 + 2 resends, once0..5: 10 emails.
    sink.wait_for(10, Duration::from_secs(15)).await;
    // SIGTERM stops each outbox worker between two emails, and authd exits only once its
    // worker has: after this, no duplicate can arrive.
    let (mut a, mut b, mut c) = (a, b, c);
    for replica in [&mut a, &mut b, &mut c] {
        replica.terminate();
        assert!(replica.wait(Duration::from_secs(15)).success());
    }
    let recipients = sink.recipients();
    let mut expected: Vec<String> = (0..6).map(|i| format!("once{i}@example.com")).collect();
    expected.extend(std::iter::repeat_n("limited@example.com".to_string(), 3));
    expected.push("roamer@example.com".into());
    expected.sort();
    assert_eq!(recipients, expected);
    drop(cluster);
}

/// What the load saw, by outcome.
#[derive(Default, Debug)]
struct Counts {
    sent: u64,
    succeeded: u64,
    shed: u64,
    failed: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ride_out_a_dead_replica_a_redis_failover_and_a_postgres_restart() {
    use crate::support::{block_on, Owned};
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| RedisCluster::start().unwrap())
            .await
            .unwrap(),
    );
    let pg = Arc::new(block_on(async { Owned::postgres().unwrap() }));
    let sink = Arc::new(
        tokio::task::spawn_blocking(|| SmtpSink::start(false))
            .await
            .unwrap(),
    );
    let storage = Storage {
        database: Some(TestDatabase::create(&pg.url()).await),
        redis: Some(TestRedis::new(&cluster.url)),
    };
    let smtp = sink.url();
    // A short outbox lease: the killed replica's claimed emails are taken over quickly.
    let overrides = [
        ("SMTP_URL", smtp.as_str()),
        ("AUTH_LOGIN_MAX_FAILURES", "1000"),
        // The load comes from one address but stands for many clients.
        ("AUTH_CLIENT_MAX", "0"),
        ("AUTH_OUTBOX_LEASE", "2s"),
    ];
    let mut processes = [
        AuthdProcess::start(&storage, &overrides).await,
        AuthdProcess::start(&storage, &overrides).await,
        AuthdProcess::start(&storage, &overrides).await,
    ];
    let replicas: Vec<TestApp> = processes.iter().map(|p| p.client()).collect();
    // A session opened before the faults must survive them.
    replicas[0].register("steady@example.com", PASSWORD).await;
    let first = sink.wait_for(1, Duration::from_secs(10)).await.remove(0);
    replicas[1]
        .get(&path_of_link(first["text"].as_str().unwrap()))
        .await;
    let mut session = refresh_of(&replicas[2].login("steady@example.com", PASSWORD).await);

    let started = std::time::Instant::now();
    let mut counts = Counts::default();
    let mut accepted = Vec::new();
    let mut dead: Option<usize> = None;
    let (mut redis_killed, mut pg_restarted) = (false, false);
    let mut i = 0usize;
    // Bounded: about 14 s of traffic, loopback only.
    while started.elapsed() < Duration::from_secs(14) {
        let t = started.elapsed();
        if t > Duration::from_secs(2) && dead.is_none() {
            // Kill one replica; a load balancer would stop sending to it.
            processes[2].kill();
            dead = Some(2);
        }
        if t > Duration::from_secs(4) && !redis_killed {
            let master = cluster.masters()[0];
            cluster.kill(master);
            redis_killed = true;
        }
        if t > Duration::from_secs(8) && !pg_restarted {
            let pg = pg.clone();
            tokio::task::spawn_blocking(move || {
                pg.stop();
                pg.start().unwrap();
            })
            .await
            .unwrap();
            pg_restarted = true;
        }
        let live: Vec<&TestApp> = replicas
            .iter()
            .enumerate()
            .filter(|(n, _)| Some(*n) != dead)
            .map(|(_, r)| r)
            .collect();
        let app = live[i % live.len()];
        let email = format!("load{i}@example.com");
        let results = [
            app.register(&email, PASSWORD).await.status,
            app.login("steady@example.com", PASSWORD).await.status,
        ];
        if results[0] == StatusCode::CREATED {
            accepted.push(email);
        }
        for status in results {
            counts.sent += 1;
            match status.as_u16() {
                200..=299 => counts.succeeded += 1,
                503 => counts.shed += 1,
                _ => counts.failed += 1,
            }
        }
        i += 1;
        // Bounded load: about 25 iterations a second.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    eprintln!(
        "faults under load: {counts:?}; registrations accepted: {}",
        accepted.len()
    );
    assert_eq!(
        counts.failed, 0,
        "only 503s are allowed while a dependency fails over"
    );
    assert!(counts.succeeded > counts.shed, "{counts:?}");

    // Afterwards everything works again, on every live replica.
    for app in &replicas[..2] {
        // Recovery is by itself, but not instant: allow it a bounded moment.
        let mut ready = app.get("/readyz").await;
        for _ in 0..75 {
            if ready.status == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            ready = app.get("/readyz").await;
        }
        assert_eq!(
            ready.status,
            StatusCode::OK,
            "not ready again: {}",
            String::from_utf8_lossy(&ready.body)
        );
        assert_eq!(
            app.login("steady@example.com", PASSWORD).await.status,
            StatusCode::OK
        );
    }
    session = refresh_of(&replicas[0].refresh(&session).await);
    assert_eq!(
        replicas[1].refresh(&session).await.status,
        StatusCode::OK,
        "the session survived"
    );

    // Nothing accepted is lost: every accepted registration is stored and gets its email.
    let client = storage.database.as_ref().unwrap().client().await;
    for email in &accepted {
        let n: i64 = client
            .query_one("SELECT count(*) FROM users WHERE email = $1", &[email])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{email} was accepted but not stored");
    }
    sink.wait_for(accepted.len() + 1, Duration::from_secs(60))
        .await;
    let messages = sink.messages();
    for email in &accepted {
        let copies = messages
            .iter()
            .filter(|m| m["to"][0] == email.as_str())
            .count();
        assert!(copies >= 1, "{email} never got its verification email");
    }
    let duplicates = messages.len() - accepted.len() - 1;
    eprintln!(
        "emails: {} sent for {} registrations ({duplicates} duplicates)",
        messages.len(),
        accepted.len() + 1
    );
}
