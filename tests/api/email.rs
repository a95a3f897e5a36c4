//! Email over SMTP through the durable outbox, against a real SMTP server (aiosmtpd).

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};

use crate::support::{free_port, SmtpSink};
use crate::support::{path_of_link, spawn_app_on, Storage, PASSWORD};

const SENDER: &str = "authd test <no-reply@example.com>";

async fn outbox_rows(storage: &Storage) -> Vec<(String, String, i32)> {
    let client = storage.database.as_ref().unwrap().client().await;
    client
        .query(
            "SELECT recipient, state, attempts FROM outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn the_email_arrives_with_both_parts_and_its_link_verifies() {
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(false))
        .await
        .unwrap();
    let storage = Storage::real().await;
    let app = spawn_app_on(
        storage.clone(),
        &[
            ("SMTP_URL", &sink.url()),
            ("AUTH_MAIL_FROM", SENDER),
            ("AUTH_VERIFY_TTL", "4h"),
        ],
    )
    .await;
    assert_eq!(
        app.register("Mail@Example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );

    let messages = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["to"], serde_json::json!(["mail@example.com"]));
    assert_eq!(m["from"], SENDER);
    assert_eq!(m["subject"], "Verify your email address");
    assert_eq!(m["content_type"], "multipart/alternative");
    let text = m["text"].as_str().expect("a text/plain part");
    let html = m["html"].as_str().expect("a text/html part");
    assert!(text.contains("expires in 4 hours"), "{text}");
    let path = path_of_link(text);
    assert!(html.contains(&path.replace('&', "&amp;")), "{html}");

    assert_eq!(app.get(&path).await.status, StatusCode::OK);
    assert_eq!(
        app.login("mail@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        outbox_rows(&storage).await,
        [("mail@example.com".to_string(), "sent".to_string(), 1)]
    );
}

#[tokio::test]
async fn an_email_queued_while_smtp_is_down_arrives_when_it_is_back() {
    let port = free_port();
    let sink = tokio::task::spawn_blocking(move || SmtpSink::on(port, false))
        .await
        .unwrap();
    let storage = Storage::real().await;
    let app = spawn_app_on(storage.clone(), &[("SMTP_URL", &sink.url())]).await;
    assert_eq!(
        app.register("patient@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    // Wait until the worker has tried, and failed, at least once.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while outbox_rows(&storage).await[0].2 == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sink.messages().is_empty());
    let pending = outbox_rows(&storage).await;
    assert_eq!(pending[0].1, "pending");
    assert!(
        pending[0].2 >= 1,
        "at least one attempt failed while SMTP was down"
    );

    let sink = Arc::new(sink);
    let s = sink.clone();
    tokio::task::spawn_blocking(move || s.resume())
        .await
        .unwrap();
    let messages = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1, "the email never arrived");
    assert_eq!(
        messages[0]["to"],
        serde_json::json!(["patient@example.com"])
    );
    assert_eq!(
        app.get(&path_of_link(messages[0]["text"].as_str().unwrap()))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_permanent_refusal_marks_the_email_failed_without_retrying() {
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(true))
        .await
        .unwrap();
    let storage = Storage::real().await;
    let app = spawn_app_on(storage.clone(), &[("SMTP_URL", &sink.url())]).await;
    assert_eq!(
        app.register("nobody-home@example.com", PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );

    let mut waited = Duration::ZERO;
    while outbox_rows(&storage).await[0].1 != "failed" && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(
        outbox_rows(&storage).await,
        [(
            "nobody-home@example.com".to_string(),
            "failed".to_string(),
            1
        )]
    );
    // No retry, ever: an hour later (any retry would be due by then), a second email
    // queued behind the first is attempted, and the first is not attempted again.
    assert_eq!(sink.attempts(), 1);
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        app.register("barrier@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let mut waited = Duration::ZERO;
    while sink.attempts() < 2 && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(sink.attempts(), 2, "the refused email was tried again");
    assert!(sink.messages().is_empty());
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    let metrics = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("authd_emails_total{result=\"failed\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn two_instances_on_one_database_send_each_email_once() {
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(false))
        .await
        .unwrap();
    let storage = Storage::real().await;
    let url = sink.url();
    let first = spawn_app_on(storage.clone(), &[("SMTP_URL", &url)]).await;
    let second = spawn_app_on(storage.clone(), &[("SMTP_URL", &url)]).await;
    for i in 0..12 {
        let app = if i % 2 == 0 { &first } else { &second };
        assert_eq!(
            app.register(&format!("once{i}@example.com"), PASSWORD)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    sink.wait_for(12, Duration::from_secs(15)).await;
    // Stopping waits for each worker to finish what it claimed: no duplicate can arrive
    // after this.
    first.stop().await;
    second.stop().await;
    let recipients = sink.recipients();
    let mut expected: Vec<String> = (0..12).map(|i| format!("once{i}@example.com")).collect();
    expected.sort();
    assert_eq!(recipients, expected);
}

/// SPEC §8: a burst of reset requests for addresses without an account — 10,000 from 100
/// client addresses — does not delay real email: a registration made right after has its
/// verification email at the SMTP server within 5 s, and none of the requests is left in
/// the outbox once the burst is over.
#[tokio::test]
async fn a_forgot_flood_does_not_delay_real_email() {
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(false))
        .await
        .unwrap();
    let storage = Storage::real().await;
    let app = spawn_app_on(storage.clone(), &[("SMTP_URL", &sink.url())]).await;
    let burst: Vec<_> = (0..100)
        .map(|client| {
            let from = app.as_client_at(&format!("127.0.7.{}", client + 1));
            tokio::spawn(async move {
                let mut conn = from.connection().await;
                for n in 0..100 {
                    let body = format!(r#"{{"email":"nobody-{client}-{n}@example.com"}}"#);
                    let json = [("content-type", "application/json")];
                    let answer = conn
                        .request(
                            Method::POST,
                            "/password/forgot",
                            &json,
                            Some(body.into_bytes()),
                        )
                        .await
                        .expect("an answer");
                    // 202, or 429 once this client is past its limit.
                    assert!(
                        matches!(answer.status.as_u16(), 202 | 429),
                        "{}",
                        answer.status
                    );
                }
            })
        })
        .collect();
    for client in burst {
        client.await.unwrap();
    }
    let registered = std::time::Instant::now();
    assert_eq!(
        app.register("real@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let delivered = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        delivered.len(),
        1,
        "the real email did not arrive within 5 s"
    );
    assert_eq!(delivered[0]["to"], serde_json::json!(["real@example.com"]));
    eprintln!(
        "registration to SMTP after the flood: {:?}",
        registered.elapsed()
    );
    let db = storage.database.as_ref().unwrap().client().await;
    let orphans = || async {
        let row = db
            .query_one("SELECT count(*) FROM outbox WHERE user_id IS NULL", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while orphans().await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(orphans().await, 0, "requests for unknown addresses remain");
    assert!(
        sink.messages().len() == 1,
        "nothing was sent for unknown addresses"
    );
}

/// One email at a time against a relay that takes 300 ms a message would take 30 s for
/// 100; sent concurrently, a burst of 100 registrations is delivered within 10 s.
#[tokio::test]
async fn a_slow_relay_does_not_hold_a_signup_burst() {
    let sink = Arc::new(
        tokio::task::spawn_blocking(|| SmtpSink::slow(300))
            .await
            .unwrap(),
    );
    let storage = Storage::real().await;
    // Room in the bcrypt queue for the whole burst: the email path is what is measured.
    let overrides = [
        ("SMTP_URL", sink.url()),
        ("AUTH_BCRYPT_QUEUE", "256".into()),
    ];
    let overrides: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = Arc::new(spawn_app_on(storage, &overrides).await);
    let started = std::time::Instant::now();
    let signups: Vec<_> = (0..100)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let from = app.as_client_at(&format!("127.0.8.{}", i % 5 + 1));
                from.register(&format!("burst{i}@example.com"), PASSWORD)
                    .await
                    .status
            })
        })
        .collect();
    for signup in signups {
        assert_eq!(signup.await.unwrap(), StatusCode::CREATED);
    }
    let delivered = sink.wait_for(100, Duration::from_secs(10)).await;
    let elapsed = started.elapsed();
    assert_eq!(
        delivered.len(),
        100,
        "{} of 100 in {elapsed:?}",
        delivered.len()
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    eprintln!("100 emails through a 300 ms relay: {elapsed:?}");
}
