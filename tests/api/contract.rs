//! One contract suite for the repository traits, run unchanged against the in-memory
//! implementations and against PostgreSQL + Redis.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authd::domain::{Email, PasswordHash, TokenHash, UserId};
use authd::repo::{
    CreateUserError, NewRefreshToken, NewUser, OutgoingEmail, Purpose, RateKey, Repos, Rotation,
    TokenSubject,
};
use authd::Config;

use crate::helpers::{base_config, Backend, Storage};

async fn repos(backend: Backend) -> (Repos, Arc<Storage>) {
    let storage = Storage::new(backend).await;
    let mut env = base_config();
    if let Some(db) = &storage.database {
        env.insert("DATABASE_URL".into(), db.url.clone());
    }
    if let Some(r) = &storage.redis {
        env.insert("REDIS_URL".into(), r.url.clone());
        env.insert("AUTH_REDIS_PREFIX".into(), r.prefix.clone());
    }
    let config = Config::load(&env).unwrap();
    let metrics = std::sync::Arc::new(authd::metrics::Metrics::default());
    (authd::repo::open(&config, metrics).await.unwrap(), storage)
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn hash(n: u8) -> TokenHash {
    TokenHash::from_bytes([n; 32])
}

fn verification_for(user: UserId, to: &str) -> OutgoingEmail {
    OutgoingEmail::Verification {
        user,
        to: email(to),
    }
}

/// The password hash every contract-test user is created with.
fn stored_hash() -> PasswordHash {
    PasswordHash::from_stored("$2b$04$x".into())
}

async fn new_user(repos: &Repos, address: &str) -> UserId {
    let id = UserId::random();
    let user = NewUser {
        id,
        email: email(address),
        password_hash: PasswordHash::from_stored("$2b$04$x".into()),
    };
    repos.users.create(user).await.unwrap();
    id
}

fn token(n: u8, ttl: Duration) -> NewRefreshToken {
    NewRefreshToken {
        hash: hash(n),
        expires_at: SystemTime::now() + ttl,
    }
}

const DAY: Duration = Duration::from_secs(86_400);

both!(users_are_unique_by_email_in_any_case);
async fn users_are_unique_by_email_in_any_case(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let id = new_user(&repos, "ann@example.com").await;
    let found = repos
        .users
        .by_email(&email("ANN@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id);
    assert!(!found.email_verified);
    assert_eq!(
        repos.users.by_id(id).await.unwrap().unwrap().email.as_str(),
        "ann@example.com"
    );
    let again = NewUser {
        id: UserId::random(),
        email: email("Ann@Example.com"),
        password_hash: PasswordHash::from_stored("h".into()),
    };
    let result = repos.users.create(again).await;
    assert!(matches!(result, Err(CreateUserError::EmailTaken)));
    assert!(repos
        .users
        .by_email(&email("nobody@example.com"))
        .await
        .unwrap()
        .is_none());
}

both!(creating_a_user_queues_their_first_email_and_only_then);
async fn creating_a_user_queues_their_first_email_and_only_then(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let id = new_user(&repos, "bea@example.com").await;
    // A refused duplicate must not queue anything.
    let dup = NewUser {
        id: UserId::random(),
        email: email("bea@example.com"),
        password_hash: PasswordHash::from_stored("h".into()),
    };
    let _ = repos.users.create(dup).await;
    let claimed = repos
        .outbox
        .claim(10, Duration::from_secs(60), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].email, verification_for(id, "bea@example.com"));
    assert_eq!(claimed[0].attempts, 0);
}

both!(verification_and_password_changes_stick);
async fn verification_and_password_changes_stick(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let id = new_user(&repos, "cid@example.com").await;
    repos.users.mark_verified(id).await.unwrap();
    repos.users.mark_verified(id).await.unwrap();
    assert!(repos.users.by_id(id).await.unwrap().unwrap().email_verified);

    repos
        .refresh_tokens
        .start_family(id, &stored_hash(), token(1, DAY))
        .await
        .unwrap();
    let old = PasswordHash::from_stored("$2b$04$x".into());
    // A change based on a password that is no longer current changes nothing.
    let stale = PasswordHash::from_stored("not the current hash".into());
    assert!(!repos
        .users
        .set_password(id, &stale, PasswordHash::from_stored("lost".into()), true)
        .await
        .unwrap());
    assert!(repos
        .users
        .set_password(id, &old, PasswordHash::from_stored("new".into()), true)
        .await
        .unwrap());
    assert_eq!(
        repos
            .users
            .by_id(id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_str(),
        "new"
    );
    // Every session of the user ended with the password change.
    let outcome = repos
        .refresh_tokens
        .rotate(&hash(1), token(2, DAY), SystemTime::now(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(outcome, Rotation::Revoked);
    assert!(!repos
        .users
        .set_password(
            UserId::random(),
            &old,
            PasswordHash::from_stored("x".into()),
            false
        )
        .await
        .unwrap());
}

both!(a_session_starts_only_under_the_password_that_was_checked);
async fn a_session_starts_only_under_the_password_that_was_checked(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "racer@example.com").await;
    let rt = &repos.refresh_tokens;
    let stale = PasswordHash::from_stored("changed meanwhile".into());
    assert!(!rt.start_family(user, &stale, token(1, DAY)).await.unwrap());
    let now = SystemTime::now();
    assert_eq!(
        rt.rotate(&hash(1), token(2, DAY), now, Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    assert!(!rt
        .start_family(UserId::random(), &stored_hash(), token(3, DAY))
        .await
        .unwrap());
    assert!(rt
        .start_family(user, &stored_hash(), token(4, DAY))
        .await
        .unwrap());
}

both!(rotation_classifies_every_presented_token);
async fn rotation_classifies_every_presented_token(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let rt = &repos.refresh_tokens;
    let user = new_user(&repos, "dan@example.com").await;
    let now = SystemTime::now;
    assert_eq!(
        rt.rotate(&hash(9), token(10, DAY), now(), Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Unknown
    );

    rt.start_family(user, &stored_hash(), token(1, DAY))
        .await
        .unwrap();
    assert_eq!(
        rt.rotate(&hash(1), token(2, DAY), now(), Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Rotated { user }
    );
    assert_eq!(
        rt.rotate(&hash(2), token(3, DAY), now(), Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Rotated { user }
    );
    // Token 1 again: reuse, the family (with live token 3) is revoked.
    assert_eq!(
        rt.rotate(&hash(1), token(4, DAY), now(), Duration::ZERO)
            .await
            .unwrap(),
        Rotation::ReuseDetected
    );
    assert_eq!(
        rt.rotate(&hash(3), token(5, DAY), now(), Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Revoked
    );

    // Within the grace, reuse is refused but the family lives on.
    rt.start_family(user, &stored_hash(), token(20, DAY))
        .await
        .unwrap();
    let grace = Duration::from_secs(60);
    assert!(matches!(
        rt.rotate(&hash(20), token(21, DAY), now(), grace)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    assert_eq!(
        rt.rotate(&hash(20), token(22, DAY), now(), grace)
            .await
            .unwrap(),
        Rotation::ReusedWithinGrace
    );
    assert!(matches!(
        rt.rotate(&hash(21), token(23, DAY), now(), grace)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    // Past the grace (seen from a later clock), reuse revokes.
    let later = now() + Duration::from_secs(120);
    assert_eq!(
        rt.rotate(&hash(20), token(24, DAY), later, grace)
            .await
            .unwrap(),
        Rotation::ReuseDetected
    );
    assert_eq!(
        rt.rotate(&hash(23), token(25, DAY), now(), grace)
            .await
            .unwrap(),
        Rotation::Revoked
    );

    // Expired.
    rt.start_family(user, &stored_hash(), token(30, Duration::from_secs(60)))
        .await
        .unwrap();
    let after_expiry = now() + Duration::from_secs(61);
    assert_eq!(
        rt.rotate(&hash(30), token(31, DAY), after_expiry, Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Expired
    );

    // Logout revokes the family of any of its tokens; unknown tokens are ignored.
    rt.start_family(user, &stored_hash(), token(40, DAY))
        .await
        .unwrap();
    assert!(matches!(
        rt.rotate(&hash(40), token(41, DAY), now(), Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    rt.revoke_family(&hash(40)).await.unwrap();
    rt.revoke_family(&hash(99)).await.unwrap();
    assert_eq!(
        rt.rotate(&hash(41), token(42, DAY), now(), Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Revoked
    );
}

both!(concurrent_rotations_of_one_token_have_one_winner);
async fn concurrent_rotations_of_one_token_have_one_winner(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "eve@example.com").await;
    repos
        .refresh_tokens
        .start_family(user, &stored_hash(), token(1, DAY))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32u8)
        .map(|i| {
            let rt = repos.refresh_tokens.clone();
            tokio::spawn(async move {
                rt.rotate(
                    &hash(1),
                    token(100 + i, DAY),
                    SystemTime::now(),
                    Duration::from_secs(60),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap() {
            Rotation::Rotated { .. } => rotated += 1,
            Rotation::ReusedWithinGrace => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rotated, 1);
}

both!(expired_refresh_tokens_are_purged);
async fn expired_refresh_tokens_are_purged(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "fay@example.com").await;
    repos
        .refresh_tokens
        .start_family(user, &stored_hash(), token(1, Duration::from_secs(60)))
        .await
        .unwrap();
    repos
        .refresh_tokens
        .start_family(user, &stored_hash(), token(2, DAY))
        .await
        .unwrap();
    let purged = repos
        .refresh_tokens
        .purge_expired(SystemTime::now() + Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let now = SystemTime::now();
    assert_eq!(
        repos
            .refresh_tokens
            .rotate(&hash(1), token(3, DAY), now, Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    assert!(matches!(
        repos
            .refresh_tokens
            .rotate(&hash(2), token(4, DAY), now, Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
}

both!(one_time_tokens_work_once_per_purpose_and_expire);
async fn one_time_tokens_work_once_per_purpose_and_expire(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let ot = &repos.one_time_tokens;
    let user = TokenSubject::from(UserId::random());
    ot.put(
        Purpose::VerifyEmail,
        &hash(1),
        user,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    // A verification token is not a reset token.
    assert_eq!(
        ot.peek(Purpose::ResetPassword, &hash(1)).await.unwrap(),
        None
    );
    assert_eq!(
        ot.take(Purpose::ResetPassword, &hash(1)).await.unwrap(),
        None
    );
    assert_eq!(
        ot.peek(Purpose::VerifyEmail, &hash(1)).await.unwrap(),
        Some(user)
    );
    assert_eq!(
        ot.take(Purpose::VerifyEmail, &hash(1)).await.unwrap(),
        Some(user)
    );
    assert_eq!(ot.take(Purpose::VerifyEmail, &hash(1)).await.unwrap(), None);
    assert_eq!(ot.peek(Purpose::VerifyEmail, &hash(1)).await.unwrap(), None);

    // Reset tokens carry a password stamp, stored and returned as it was.
    let stamped = TokenSubject {
        user: user.user,
        stamp: Some(u64::MAX - 7),
    };
    ot.put(
        Purpose::ResetPassword,
        &hash(3),
        stamped,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(
        ot.peek(Purpose::ResetPassword, &hash(3)).await.unwrap(),
        Some(stamped)
    );
    assert_eq!(
        ot.take(Purpose::ResetPassword, &hash(3)).await.unwrap(),
        Some(stamped)
    );

    ot.put(
        Purpose::ResetPassword,
        &hash(2),
        user,
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        ot.take(Purpose::ResetPassword, &hash(2)).await.unwrap(),
        None
    );
}

both!(concurrent_takes_of_one_token_have_one_winner);
async fn concurrent_takes_of_one_token_have_one_winner(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = TokenSubject::from(UserId::random());
    repos
        .one_time_tokens
        .put(
            Purpose::VerifyEmail,
            &hash(5),
            user,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let ot = repos.one_time_tokens.clone();
            tokio::spawn(async move { ot.take(Purpose::VerifyEmail, &hash(5)).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

both!(rate_counters_count_within_their_window);
async fn rate_counters_count_within_their_window(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let rl = &repos.rate_limits;
    let key = RateKey::Resend(email("gus@example.com"));
    let other = RateKey::LoginFailures(email("gus@example.com"));
    assert_eq!(rl.peek(&key).await.unwrap(), None);
    let window = Duration::from_millis(600);
    assert_eq!(rl.hit(&key, window).await.unwrap().count, 1);
    let second = rl.hit(&key, window).await.unwrap();
    assert_eq!(second.count, 2);
    assert!(second.resets_in <= window && second.resets_in > Duration::ZERO);
    assert_eq!(rl.peek(&key).await.unwrap().unwrap().count, 2);
    assert_eq!(rl.peek(&other).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(750)).await;
    assert_eq!(rl.peek(&key).await.unwrap(), None);
    assert_eq!(rl.hit(&key, window).await.unwrap().count, 1);
    rl.clear(&key).await.unwrap();
    assert_eq!(rl.peek(&key).await.unwrap(), None);
}

both!(concurrent_hits_are_all_counted);
async fn concurrent_hits_are_all_counted(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let tasks: Vec<_> = (0..25)
        .map(|_| {
            let rl = repos.rate_limits.clone();
            tokio::spawn(async move {
                rl.hit(
                    &RateKey::LoginFailures(email("hal@example.com")),
                    Duration::from_secs(60),
                )
                .await
                .unwrap()
                .count
            })
        })
        .collect();
    let mut counts = HashSet::new();
    for t in tasks {
        counts.insert(t.await.unwrap());
    }
    assert_eq!(counts, (1..=25).collect());
}

both!(outbox_claims_are_leases);
async fn outbox_claims_are_leases(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "ida@example.com").await;
    let ob = &repos.outbox;
    ob.enqueue(verification_for(user, "ida@example.com"))
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let t0 = SystemTime::now();
    let first = ob.claim(10, lease, t0).await.unwrap();
    assert_eq!(first.len(), 2);
    // Claimed rows are invisible until the lease ends…
    assert!(ob.claim(10, lease, t0).await.unwrap().is_empty());
    // …then due again (the sender died), with the attempt counted.
    let again = ob
        .claim(10, lease, t0 + lease + Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|i| i.attempts == 1));

    let (backlog, _) = ob.backlog(SystemTime::now()).await.unwrap();
    assert_eq!(backlog, 2);
    ob.mark_sent(again[0].id).await.unwrap();
    ob.mark_failed(again[1].id).await.unwrap();
    assert_eq!(ob.backlog(SystemTime::now()).await.unwrap().0, 0);
    assert!(ob
        .claim(10, lease, t0 + Duration::from_secs(3600))
        .await
        .unwrap()
        .is_empty());
}

both!(old_sent_and_failed_emails_are_purged);
async fn old_sent_and_failed_emails_are_purged(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "old@example.com").await;
    let ob = &repos.outbox;
    ob.enqueue(verification_for(user, "old@example.com"))
        .await
        .unwrap();
    ob.enqueue(verification_for(user, "old@example.com"))
        .await
        .unwrap();
    let items = ob
        .claim(10, Duration::from_secs(60), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(items.len(), 3);
    ob.mark_sent(items[0].id).await.unwrap();
    ob.mark_failed(items[1].id).await.unwrap();
    let now = SystemTime::now();
    // Nothing is old enough yet.
    assert_eq!(ob.purge(now - DAY, now - DAY).await.unwrap(), 0);
    let later = now + Duration::from_secs(5);
    ob.purge(later, later).await.unwrap();
    // The pending one stays, the others are gone for good.
    assert_eq!(ob.backlog(now).await.unwrap().0, 1);
    ob.retry_at(items[2].id, now).await.unwrap();
    let left = ob.claim(10, Duration::from_secs(60), later).await.unwrap();
    assert_eq!(left.iter().map(|i| i.id).collect::<Vec<_>>(), [items[2].id]);
}

both!(reset_requests_need_no_account_and_can_be_skipped);
async fn reset_requests_need_no_account_and_can_be_skipped(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let ob = &repos.outbox;
    ob.enqueue(OutgoingEmail::PasswordReset {
        to: email("nobody@example.com"),
    })
    .await
    .unwrap();
    let items = ob
        .claim(10, Duration::from_secs(60), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].email,
        OutgoingEmail::PasswordReset {
            to: email("nobody@example.com")
        }
    );
    ob.mark_skipped(items[0].id).await.unwrap();
    assert_eq!(ob.backlog(SystemTime::now()).await.unwrap().0, 0);
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert!(ob
        .claim(10, Duration::from_secs(60), later)
        .await
        .unwrap()
        .is_empty());
}

both!(outbox_retry_waits_until_due);
async fn outbox_retry_waits_until_due(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    new_user(&repos, "jon@example.com").await;
    let ob = &repos.outbox;
    let t0 = SystemTime::now();
    let item = ob
        .claim(1, Duration::from_secs(30), t0)
        .await
        .unwrap()
        .remove(0);
    ob.retry_at(item.id, t0 + Duration::from_secs(5))
        .await
        .unwrap();
    assert!(ob
        .claim(1, Duration::from_secs(30), t0 + Duration::from_secs(4))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ob.claim(1, Duration::from_secs(30), t0 + Duration::from_secs(6))
            .await
            .unwrap()
            .len(),
        1
    );
}

both!(concurrent_claims_never_share_an_email);
async fn concurrent_claims_never_share_an_email(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    for i in 0..20 {
        new_user(&repos, &format!("k{i}@example.com")).await;
    }
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let ob = repos.outbox.clone();
            tokio::spawn(async move {
                ob.claim(3, Duration::from_secs(60), SystemTime::now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        for item in t.await.unwrap() {
            assert!(seen.insert(item.id), "email {} claimed twice", item.id);
        }
    }
    assert_eq!(seen.len(), 15);
}

both!(dependencies_answer_pings);
async fn dependencies_answer_pings(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    assert_eq!(repos.dependencies.len(), 2);
    for dep in &repos.dependencies {
        dep.ping().await.unwrap();
    }
}
