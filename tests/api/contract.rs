//! One contract suite for the repositories, run unchanged against the in-memory
//! implementations and against PostgreSQL + Redis.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authd::clock::ManualClock;
use authd::domain::{
    classify, Email, EmailChangeGrant, PasswordHash, Refresh, ResetGrant, SessionId, TokenHash,
    TokenState, UserAgent, UserId, Verdict,
};
use authd::repo::{
    AddressChange, CreateUserError, EndMark, NewRefreshToken, NewSession, NewUser, OutgoingEmail,
    RateKey, Repos, Rotation,
};
use authd::Config;

use crate::support::{base_config, Backend, Storage};

/// The repositories on `backend`, the in-memory ones keeping time by a clock the test moves.
async fn repos_with_clock(backend: Backend) -> (Repos, Arc<ManualClock>, Arc<Storage>) {
    let storage = backend.storage().await;
    let mut env = base_config();
    for (k, v) in storage.env() {
        env.insert(k.into(), v);
    }
    let config = Config::load(&env).unwrap();
    let metrics = Arc::new(authd::metrics::Metrics::default());
    let clock = Arc::new(ManualClock::new());
    let repos = authd::repo::open(&config.storage, metrics, clock.clone())
        .await
        .unwrap();
    (repos, clock, storage)
}

async fn repos(backend: Backend) -> (Repos, Arc<Storage>) {
    let (repos, _, storage) = repos_with_clock(backend).await;
    (repos, storage)
}

/// Waits out a lifetime: the clock moves on the embedded backend; Redis keeps its own time.
async fn let_pass(backend: Backend, clock: &ManualClock, d: Duration) {
    match backend {
        Backend::Memory => clock.advance(d),
        Backend::Real => tokio::time::sleep(d).await,
    }
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn hash<K>(n: u8) -> TokenHash<K> {
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
        password_hash: stored_hash(),
    };
    let first = verification_for(id, address);
    repos
        .users
        .create(user, first, SystemTime::now())
        .await
        .unwrap();
    id
}

fn token(n: u8, ttl: Duration) -> NewRefreshToken {
    NewRefreshToken {
        hash: hash::<Refresh>(n),
        created_at: SystemTime::now(),
        expires_at: SystemTime::now() + ttl,
    }
}

fn new_session(id: SessionId, user: UserId, address: &str, first: NewRefreshToken) -> NewSession {
    NewSession {
        id,
        user,
        email: email(address),
        user_agent: UserAgent::parse("contract-test/1"),
        first,
    }
}

/// Starts a session whose first token is `first`.
async fn session(repos: &Repos, user: UserId, first: NewRefreshToken) -> SessionId {
    let id = SessionId::random();
    let address = repos.users.by_id(user).await.unwrap().unwrap().email;
    let started = repos
        .refresh_tokens
        .start_session(
            new_session(id, user, address.as_str(), first),
            &stored_hash(),
        )
        .await
        .unwrap();
    assert!(started);
    id
}

/// Presents token `n` at `now`: what the repository did, and what that means with `grace`
/// — reuse detected ends the session, as the session service does.
async fn present(repos: &Repos, n: u8, successor: u8, now: SystemTime, grace: Duration) -> Verdict {
    let rt = &repos.refresh_tokens;
    match rt
        .rotate(&hash(n), token(successor, DAY), now)
        .await
        .unwrap()
    {
        Rotation::Rotated { .. } => Verdict::Current,
        Rotation::Refused(state) => {
            let verdict = classify(state.as_ref(), now, grace);
            assert_ne!(verdict, Verdict::Current, "a current token was not rotated");
            if let (Verdict::ReuseDetected, Some(state)) = (verdict, state) {
                rt.revoke_session(state.session, now).await.unwrap();
            }
            verdict
        }
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
    let other = UserId::random();
    let again = NewUser {
        id: other,
        email: email("Ann@Example.com"),
        password_hash: PasswordHash::from_stored("h".into()),
    };
    let first = verification_for(other, "ann@example.com");
    let result = repos.users.create(again, first, SystemTime::now()).await;
    assert!(matches!(result, Err(CreateUserError::EmailTaken)));
    assert!(repos
        .users
        .by_email(&email("nobody@example.com"))
        .await
        .unwrap()
        .is_none());
}

both!(creating_a_user_queues_its_email_and_only_then);
async fn creating_a_user_queues_its_email_and_only_then(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let id = new_user(&repos, "bea@example.com").await;
    // A refused duplicate must not queue anything.
    let other = UserId::random();
    let dup = NewUser {
        id: other,
        email: email("bea@example.com"),
        password_hash: PasswordHash::from_stored("h".into()),
    };
    let first = verification_for(other, "bea@example.com");
    let _ = repos.users.create(dup, first, SystemTime::now()).await;
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

    let first_session = session(&repos, id, token(1, DAY)).await;
    // A change based on a password that is no longer current changes nothing.
    let stale = PasswordHash::from_stored("not the current hash".into());
    assert!(repos
        .users
        .set_password(
            id,
            &stale,
            PasswordHash::from_stored("lost".into()),
            true,
            SystemTime::now()
        )
        .await
        .unwrap()
        .is_none());
    let ended = repos
        .users
        .set_password(
            id,
            &stored_hash(),
            PasswordHash::from_stored("new".into()),
            true,
            SystemTime::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        ended,
        Some(vec![first_session]),
        "it names the sessions it ended"
    );
    let user = repos.users.by_id(id).await.unwrap().unwrap();
    assert_eq!(user.password_hash.as_str(), "new");
    // Every session of the user ended with the password change.
    let now = SystemTime::now();
    assert_eq!(
        present(&repos, 1, 2, now, Duration::ZERO).await,
        Verdict::Revoked
    );
    assert!(repos
        .users
        .set_password(
            UserId::random(),
            &stored_hash(),
            PasswordHash::from_stored("x".into()),
            false,
            SystemTime::now(),
        )
        .await
        .unwrap()
        .is_none());
}

both!(a_session_starts_only_under_the_password_that_was_checked);
async fn a_session_starts_only_under_the_password_that_was_checked(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "racer@example.com").await;
    let rt = &repos.refresh_tokens;
    let stale = PasswordHash::from_stored("changed meanwhile".into());
    assert!(!rt
        .start_session(
            new_session(
                SessionId::random(),
                user,
                "racer@example.com",
                token(1, DAY)
            ),
            &stale
        )
        .await
        .unwrap());
    let now = SystemTime::now();
    assert_eq!(
        present(&repos, 1, 2, now, Duration::ZERO).await,
        Verdict::Unknown
    );
    assert!(!rt
        .start_session(
            new_session(
                SessionId::random(),
                UserId::random(),
                "racer@example.com",
                token(3, DAY)
            ),
            &stored_hash(),
        )
        .await
        .unwrap());
    // Nor under an address the account no longer has (an email change committed).
    assert!(!rt
        .start_session(
            new_session(
                SessionId::random(),
                user,
                "racer.old@example.com",
                token(5, DAY)
            ),
            &stored_hash(),
        )
        .await
        .unwrap());
    session(&repos, user, token(4, DAY)).await;
}

both!(a_disabled_account_starts_no_session_and_disabling_ends_every_one);
async fn a_disabled_account_starts_no_session_and_disabling_ends_every_one(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let (users, rt) = (&repos.users, &repos.refresh_tokens);
    let user = new_user(&repos, "off@example.com").await;
    let live = session(&repos, user, token(1, DAY)).await;
    let now = SystemTime::now();
    assert_eq!(
        users.set_disabled(user, true, now).await.unwrap(),
        Some(vec![live])
    );
    assert!(users.by_id(user).await.unwrap().unwrap().disabled);
    // Nor does its password change (a reset link that escaped the disabling).
    let new = PasswordHash::from_stored("new".into());
    let current = stored_hash();
    let reset = users.set_password(user, &current, new, true, now);
    assert_eq!(reset.await.unwrap(), None);
    assert!(!rt
        .start_session(
            new_session(SessionId::random(), user, "off@example.com", token(2, DAY)),
            &stored_hash()
        )
        .await
        .unwrap());
    // The refused token names its user, whose account the caller may then look up.
    match rt.rotate(&hash(1), token(3, DAY), now).await.unwrap() {
        Rotation::Refused(Some(state)) => {
            assert!(state.session_revoked && state.account_disabled);
            assert_eq!(state.user, user);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        users.set_disabled(user, false, now).await.unwrap(),
        Some(vec![])
    );
    assert!(!users.by_id(user).await.unwrap().unwrap().disabled);
    session(&repos, user, token(4, DAY)).await;
    let nobody = UserId::random();
    assert_eq!(users.set_disabled(nobody, true, now).await.unwrap(), None);
    assert!(!users.mark_verified(nobody).await.unwrap());
    assert!(users.mark_verified(user).await.unwrap());
}

/// The notice a confirmed change queues to the address it leaves.
fn notice(user: UserId) -> OutgoingEmail {
    OutgoingEmail::EmailChanged {
        user,
        to: email("was@example.com"),
    }
}

both!(an_address_changes_only_from_where_it_was_and_only_to_a_free_one);
async fn an_address_changes_only_from_where_it_was_and_only_to_a_free_one(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let users = &repos.users;
    let ann = new_user(&repos, "ann@example.com").await;
    let bob = new_user(&repos, "bob@example.com").await;
    let live = session(&repos, ann, token(1, DAY)).await;
    let now = SystemTime::now();
    let (from, to) = (email("ann@example.com"), email("ann2@example.com"));
    assert_eq!(
        users
            .change_email(
                ann,
                &email("bob@example.com"),
                &to,
                &stored_hash(),
                notice(ann),
                now
            )
            .await
            .unwrap(),
        AddressChange::Stale,
        "not where it was"
    );
    assert_eq!(
        users
            .change_email(
                ann,
                &from,
                &email("BOB@example.com"),
                &stored_hash(),
                notice(ann),
                now
            )
            .await
            .unwrap(),
        AddressChange::Taken
    );
    let other_password = PasswordHash::from_stored("changed meanwhile".into());
    assert_eq!(
        users
            .change_email(ann, &from, &to, &other_password, notice(ann), now)
            .await
            .unwrap(),
        AddressChange::Stale,
        "not under the password it was checked against"
    );
    assert_eq!(
        users
            .change_email(ann, &from, &to, &stored_hash(), notice(ann), now)
            .await
            .unwrap(),
        AddressChange::Changed(vec![live])
    );
    let moved = users.by_id(ann).await.unwrap().unwrap();
    assert_eq!(
        (moved.email.as_str(), moved.email_verified),
        ("ann2@example.com", true)
    );
    assert!(users.by_email(&from).await.unwrap().is_none());
    assert_eq!(users.by_email(&to).await.unwrap().unwrap().id, ann);
    let queued = repos
        .outbox
        .claim(100, Duration::from_secs(60), now)
        .await
        .unwrap();
    let notices = queued
        .iter()
        .filter(|i| matches!(i.email, OutgoingEmail::EmailChanged { .. }))
        .count();
    assert_eq!(notices, 1, "queued with the change, not with the refusals");
    // A disabled account's address stays as it is.
    users.set_disabled(bob, true, now).await.unwrap();
    let bob_was = email("bob@example.com");
    assert_eq!(
        users
            .change_email(
                bob,
                &bob_was,
                &email("bob2@example.com"),
                &stored_hash(),
                notice(bob),
                now
            )
            .await
            .unwrap(),
        AddressChange::Stale
    );
    users.set_disabled(bob, false, now).await.unwrap();
    // Two accounts moving to one address at once: one wins.
    let prize = email("prize@example.com");
    let password = stored_hash();
    let (a, b) = tokio::join!(
        users.change_email(ann, &to, &prize, &password, notice(ann), now),
        users.change_email(bob, &bob_was, &prize, &password, notice(bob), now)
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, AddressChange::Taken));
    assert!(matches!(outcomes[0], AddressChange::Changed(_)));
    assert_eq!(outcomes[1], AddressChange::Taken);
}

both!(a_deleted_account_takes_everything_with_it_but_its_ends);
/// Its sessions' ends stay readable without it until `keep_ends_until`, then are purged.
async fn a_deleted_account_takes_everything_with_it_but_its_ends(backend: Backend) {
    let (repos, _clock, _s) = repos_with_clock(backend).await;
    let (users, rt, outbox) = (&repos.users, &repos.refresh_tokens, &repos.outbox);
    let gone = new_user(&repos, "gone@example.com").await;
    let stays = new_user(&repos, "stays@example.com").await;
    let live = session(&repos, gone, token(1, DAY)).await;
    let ended = session(&repos, gone, token(2, DAY)).await;
    let now = SystemTime::now();
    let horizon = rt.end_horizon().await.unwrap();
    assert!(rt.revoke_session(ended, now).await.unwrap());
    let other = session(&repos, stays, token(3, DAY)).await;
    outbox
        .request_reset(&email("gone@example.com"), now)
        .await
        .unwrap();
    let not_before = now - Duration::from_secs(60);
    let keep_until = now + Duration::from_secs(3600);

    assert_eq!(
        users.delete(gone, now, keep_until).await.unwrap(),
        Some((email("gone@example.com"), vec![live]))
    );
    assert!(users.by_id(gone).await.unwrap().is_none());
    assert!(users
        .by_email(&email("gone@example.com"))
        .await
        .unwrap()
        .is_none());
    assert!(rt.sessions(gone, now).await.unwrap().is_empty());
    assert_eq!(
        rt.rotate(&hash(1), token(9, DAY), now).await.unwrap(),
        Rotation::Refused(None),
        "its tokens are gone"
    );
    // Only the other account's email is left to send.
    let claimed = outbox
        .claim(10, Duration::from_secs(60), now)
        .await
        .unwrap();
    assert!(claimed.iter().all(|item| item.email.user() == stays));
    assert_eq!(claimed.len(), 1);
    let ends: Vec<SessionId> = rt
        .ended_since(horizon, not_before, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert!(ends.contains(&live) && ends.contains(&ended), "{ends:?}");
    assert!(!ends.contains(&other));
    assert_eq!(users.delete(gone, now, keep_until).await.unwrap(), None);
    // The address is free again.
    let again = NewUser {
        id: UserId::random(),
        email: email("gone@example.com"),
        password_hash: stored_hash(),
    };
    let first = verification_for(again.id, "gone@example.com");
    users.create(again, first, now).await.unwrap();

    // Once no reader needs them, the kept ends go.
    rt.purge_expired(keep_until, 100).await.unwrap();
    let left = rt
        .ended_since(horizon, not_before, None, 100)
        .await
        .unwrap();
    assert!(left.iter().all(|(_, id)| *id != live && *id != ended));
}

both!(sessions_list_only_the_live_ones_of_their_user);
/// `GET /sessions` reads this: a session's `last_used_at` moves with every rotation
/// (no write of its own), and ended or spent sessions are not listed.
async fn sessions_list_only_the_live_ones_of_their_user(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let rt = &repos.refresh_tokens;
    let ann = new_user(&repos, "lister@example.com").await;
    let bob = new_user(&repos, "other-lister@example.com").await;
    let first = session(&repos, ann, token(1, DAY)).await;
    let second = session(&repos, ann, token(2, DAY)).await;
    session(&repos, bob, token(3, DAY)).await;
    let listed = rt.sessions(ann, SystemTime::now()).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![first, second]);
    assert_eq!(
        listed[0].user_agent.as_ref().map(UserAgent::as_str),
        Some("contract-test/1")
    );
    let used_before = listed[0].last_used_at;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = NewRefreshToken {
        created_at: SystemTime::now(),
        ..token(4, DAY)
    };
    let rotated = rt.rotate(&hash(1), later, SystemTime::now()).await.unwrap();
    assert!(matches!(rotated, Rotation::Rotated { session, .. } if session == first));
    let listed = rt.sessions(ann, SystemTime::now()).await.unwrap();
    assert!(listed[0].last_used_at > used_before, "a rotation is a use");
    assert!(listed[0].created_at <= used_before);

    // Someone else's session is not the caller's to end.
    assert!(!rt
        .revoke_user_session(bob, first, SystemTime::now())
        .await
        .unwrap());
    assert!(rt
        .revoke_user_session(ann, first, SystemTime::now())
        .await
        .unwrap());
    assert!(!rt
        .revoke_user_session(ann, first, SystemTime::now())
        .await
        .unwrap());
    let ids: Vec<_> = rt
        .sessions(ann, SystemTime::now())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![second]);
    rt.revoke_user_sessions(ann, SystemTime::now())
        .await
        .unwrap();
    assert!(rt
        .sessions(ann, SystemTime::now())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(rt.sessions(bob, SystemTime::now()).await.unwrap().len(), 1);
    // A session whose every token has expired is over, even if never ended.
    let later = SystemTime::now() + 2 * DAY;
    assert!(rt.sessions(bob, later).await.unwrap().is_empty());
}

both!(every_way_a_session_ends_is_read_back_in_order);
/// What every replica polls to refuse ended sessions' access tokens (SPEC §9): each way a
/// session ends names what it ended and marks it, in order, at or above the horizon read
/// before it; reading resumes page by page.
async fn every_way_a_session_ends_is_read_back_in_order(backend: Backend) {
    let (repos, clock, _s) = repos_with_clock(backend).await;
    let rt = &repos.refresh_tokens;
    let now = || authd::clock::Clock::now(clock.as_ref());
    let not_before = now() - Duration::from_secs(60);
    let user = new_user(&repos, "ender@example.com").await;
    let logout = session(&repos, user, token(1, DAY)).await;
    let revoked = session(&repos, user, token(2, DAY)).await;
    let reused = session(&repos, user, token(3, DAY)).await;
    let by_password = session(&repos, user, token(4, DAY)).await;
    let other = new_user(&repos, "bystander@example.com").await;
    let live = session(&repos, other, token(5, DAY)).await;

    let horizon = rt.end_horizon().await.unwrap();
    assert_eq!(
        rt.revoke_session_of(&hash(1), now()).await.unwrap(),
        Some(logout)
    );
    assert!(rt.revoke_user_session(user, revoked, now()).await.unwrap());
    assert!(rt.revoke_session(reused, now()).await.unwrap());
    // Ending an ended or unknown session ends nothing, and says so.
    assert!(!rt.revoke_session(logout, now()).await.unwrap());
    assert_eq!(rt.revoke_session_of(&hash(1), now()).await.unwrap(), None);
    assert_eq!(rt.revoke_session_of(&hash(99), now()).await.unwrap(), None);
    let ended = repos
        .users
        .set_password(
            user,
            &stored_hash(),
            PasswordHash::from_stored("new".into()),
            false,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(ended, Some(vec![by_password]), "only the one still live");

    let read = rt
        .ended_since(horizon, not_before, None, 100)
        .await
        .unwrap();
    let ids: Vec<_> = read.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids, vec![logout, revoked, reused, by_password]);
    assert!(!ids.contains(&live));
    assert!(read.windows(2).all(|w| w[0] < w[1]), "in mark order");
    // In pages of two, resuming after the last of each, every end exactly once.
    let first = rt.ended_since(horizon, not_before, None, 2).await.unwrap();
    let second = rt
        .ended_since(horizon, not_before, first.last().copied(), 2)
        .await
        .unwrap();
    assert_eq!([first, second].concat(), read);
    // The horizon never goes back, though another open transaction anywhere in the
    // cluster may hold it below these ends; past the last mark there is nothing, nor
    // anything that ended before `not_before`.
    let later = rt.end_horizon().await.unwrap();
    assert!(later >= horizon);
    let (last, _) = *read.last().unwrap();
    assert!(rt
        .ended_since(EndMark(last.0 + 1), not_before, None, 100)
        .await
        .unwrap()
        .is_empty());
    let future = now() + Duration::from_secs(60);
    assert!(rt
        .ended_since(horizon, future, None, 100)
        .await
        .unwrap()
        .is_empty());
    // Ending all of a user's sessions names them; none is left to end.
    let more = [
        session(&repos, other, token(6, DAY)).await,
        session(&repos, other, token(7, DAY)).await,
    ];
    let mut all = rt.revoke_user_sessions(other, now()).await.unwrap();
    all.sort();
    let mut expected = vec![live, more[0], more[1]];
    expected.sort();
    assert_eq!(all, expected);
    assert!(rt
        .revoke_user_sessions(other, now())
        .await
        .unwrap()
        .is_empty());
}

/// An end that commits after a reader looked is not skipped: the horizon the reader took
/// before looking is below it (PostgreSQL orders ends by transaction, not by time).
#[tokio::test]
async fn an_end_that_commits_late_is_read_from_the_horizon_taken_before_it() {
    let (repos, _clock, storage) = repos_with_clock(Backend::Real).await;
    let rt = &repos.refresh_tokens;
    let user = new_user(&repos, "late@example.com").await;
    let slow = session(&repos, user, token(1, DAY)).await;
    let quick = session(&repos, user, token(2, DAY)).await;
    let not_before = SystemTime::now() - Duration::from_secs(60);

    // A transaction ends `slow` and stays open, as a slow commit would.
    let url = &storage.database.as_ref().unwrap().url;
    let (mut client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "UPDATE refresh_families SET revoked_at = now(),
             revoked_xid = pg_current_xact_id()::text::bigint WHERE id = $1",
        &[&slow.as_uuid()],
    )
    .await
    .unwrap();
    // Meanwhile another end commits, and a reader reads.
    let horizon = rt.end_horizon().await.unwrap();
    assert!(rt.revoke_session(quick, SystemTime::now()).await.unwrap());
    let read = rt
        .ended_since(horizon, not_before, None, 100)
        .await
        .unwrap();
    assert_eq!(read.iter().map(|(_, id)| *id).collect::<Vec<_>>(), [quick]);
    // The next read resumes from the horizon taken before that one…
    let next_horizon = rt.end_horizon().await.unwrap();
    tx.commit().await.unwrap();
    // …so the late commit is read, although `quick` ended (and was read) after it began.
    let read = rt
        .ended_since(next_horizon, not_before, None, 100)
        .await
        .unwrap();
    assert!(
        read.iter().any(|(_, id)| *id == slow),
        "the late end was skipped: {read:?}"
    );
}

both!(rotation_reports_the_state_of_every_token_it_refuses);
async fn rotation_reports_the_state_of_every_token_it_refuses(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let rt = &repos.refresh_tokens;
    let user = new_user(&repos, "dan@example.com").await;
    let now = SystemTime::now();
    assert_eq!(
        rt.rotate(&hash(9), token(10, DAY), now).await.unwrap(),
        Rotation::Refused(None)
    );
    let first = token(1, DAY);
    let id = session(&repos, user, first).await;
    assert_eq!(
        rt.rotate(&hash(1), token(2, DAY), now).await.unwrap(),
        Rotation::Rotated { user, session: id }
    );
    // Spent: refused, with when it was spent, in a live session.
    let Rotation::Refused(Some(state)) = rt.rotate(&hash(1), token(3, DAY), now).await.unwrap()
    else {
        panic!("a rotated token is known");
    };
    let close = |a: SystemTime, b: SystemTime| {
        a.duration_since(b).or(b.duration_since(a)).unwrap() < Duration::from_millis(1)
    };
    assert_eq!(state.session, id);
    assert!(close(state.rotated_at.unwrap(), now), "{state:?}");
    assert!(close(state.expires_at, first.expires_at), "{state:?}");
    assert!(!state.session_revoked);
    // Ending the session shows on every token of it.
    rt.revoke_session(id, now).await.unwrap();
    let refused = |r: Rotation| match r {
        Rotation::Refused(Some(state)) => state,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let revoked: TokenState = refused(rt.rotate(&hash(2), token(4, DAY), now).await.unwrap());
    assert!(revoked.session_revoked && revoked.rotated_at.is_none());
}

both!(rotation_classifies_every_presented_token);
async fn rotation_classifies_every_presented_token(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "dan@example.com").await;
    let now = SystemTime::now;
    let none = Duration::ZERO;
    assert_eq!(present(&repos, 9, 10, now(), none).await, Verdict::Unknown);

    session(&repos, user, token(1, DAY)).await;
    assert_eq!(present(&repos, 1, 2, now(), none).await, Verdict::Current);
    assert_eq!(present(&repos, 2, 3, now(), none).await, Verdict::Current);
    // Token 1 again: reuse, the session (with live token 3) is revoked.
    assert_eq!(
        present(&repos, 1, 4, now(), none).await,
        Verdict::ReuseDetected
    );
    assert_eq!(present(&repos, 3, 5, now(), none).await, Verdict::Revoked);

    // Within the grace, reuse is refused but the session lives on.
    session(&repos, user, token(20, DAY)).await;
    let grace = Duration::from_secs(60);
    assert_eq!(
        present(&repos, 20, 21, now(), grace).await,
        Verdict::Current
    );
    assert_eq!(
        present(&repos, 20, 22, now(), grace).await,
        Verdict::ReusedWithinGrace
    );
    assert_eq!(
        present(&repos, 21, 23, now(), grace).await,
        Verdict::Current
    );
    // Past the grace (seen from a later clock), reuse revokes.
    let later = now() + Duration::from_secs(120);
    assert_eq!(
        present(&repos, 20, 24, later, grace).await,
        Verdict::ReuseDetected
    );
    assert_eq!(
        present(&repos, 23, 25, now(), grace).await,
        Verdict::Revoked
    );

    // Expired.
    session(&repos, user, token(30, Duration::from_secs(60))).await;
    let after_expiry = now() + Duration::from_secs(61);
    assert_eq!(
        present(&repos, 30, 31, after_expiry, none).await,
        Verdict::Expired
    );

    // Logout revokes the session of any of its tokens; unknown tokens are ignored.
    session(&repos, user, token(40, DAY)).await;
    assert_eq!(present(&repos, 40, 41, now(), none).await, Verdict::Current);
    let rt = &repos.refresh_tokens;
    rt.revoke_session_of(&hash(40), now()).await.unwrap();
    rt.revoke_session_of(&hash(99), now()).await.unwrap();
    assert_eq!(present(&repos, 41, 42, now(), none).await, Verdict::Revoked);
}

both!(concurrent_rotations_of_one_token_have_one_winner);
async fn concurrent_rotations_of_one_token_have_one_winner(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "eve@example.com").await;
    session(&repos, user, token(1, DAY)).await;
    let tasks: Vec<_> = (0..32u8)
        .map(|i| {
            let rt = repos.refresh_tokens.clone();
            tokio::spawn(async move {
                rt.rotate(&hash(1), token(100 + i, DAY), SystemTime::now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap() {
            Rotation::Rotated { .. } => rotated += 1,
            Rotation::Refused(Some(state)) if state.rotated_at.is_some() => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rotated, 1);
}

/// A token hash of its own for each `(n, family)`, never one of `hash(n)`'s.
fn distinct_hash(n: u8, family: u8) -> TokenHash<Refresh> {
    let mut bytes = [family; 32];
    bytes[0] = n;
    bytes[1] = 0xa5 ^ family;
    TokenHash::from_bytes(bytes)
}

both!(a_burst_of_rotations_keeps_every_single_token_rule);
/// Many tokens rotated in the same instant — as PostgreSQL's combined writes take them
/// together — some presented twice, some unknown, expired or of an ended session: each
/// outcome is what that token alone would get.
async fn a_burst_of_rotations_keeps_every_single_token_rule(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let rt = &repos.refresh_tokens;
    let user = new_user(&repos, "burst@example.com").await;
    // Tokens 1..=40 are current; 41..=45 expired (a second), 46..=50 of ended sessions.
    for n in 1..=40u8 {
        session(&repos, user, token(n, DAY)).await;
    }
    for n in 41..=45u8 {
        session(&repos, user, token(n, Duration::from_secs(1))).await;
    }
    for n in 46..=50u8 {
        let id = session(&repos, user, token(n, DAY)).await;
        rt.revoke_session(id, SystemTime::now()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Every token once, the current ones 1..=20 twice, and five that were never issued.
    let mut presented: Vec<u8> = (1..=50).collect();
    presented.extend(1..=20);
    presented.extend(200..205);
    let tasks: Vec<_> = presented
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let rt = Arc::clone(&repos.refresh_tokens);
            let successor = NewRefreshToken {
                hash: distinct_hash(i as u8, 7),
                ..token(0, DAY)
            };
            tokio::spawn(async move {
                let now = SystemTime::now();
                let outcome = rt.rotate(&hash(n), successor, now).await.unwrap();
                (n, outcome, now, successor)
            })
        })
        .collect();
    let mut winners: HashSet<u8> = HashSet::new();
    let mut successors = Vec::new();
    for task in tasks {
        let (n, outcome, now, successor) = task.await.unwrap();
        let verdict = match outcome {
            Rotation::Rotated { user: u, .. } => {
                assert_eq!(u, user);
                assert!(winners.insert(n), "token {n} rotated twice");
                successors.push(successor.hash);
                Verdict::Current
            }
            Rotation::Refused(state) => classify(state.as_ref(), now, Duration::ZERO),
        };
        let expected: &[Verdict] = match n {
            1..=20 => &[Verdict::Current, Verdict::ReuseDetected],
            21..=40 => &[Verdict::Current],
            41..=45 => &[Verdict::Expired],
            46..=50 => &[Verdict::Revoked],
            _ => &[Verdict::Unknown],
        };
        assert!(expected.contains(&verdict), "token {n}: {verdict:?}");
    }
    assert_eq!(
        winners,
        (1..=40).collect::<HashSet<u8>>(),
        "each current token once"
    );
    // Every successor was stored in its session, and is current itself.
    for hash in successors {
        let next = NewRefreshToken {
            hash: distinct_hash(hash.as_bytes()[0], 8),
            ..token(0, DAY)
        };
        let outcome = rt.rotate(&hash, next, SystemTime::now()).await.unwrap();
        assert!(matches!(outcome, Rotation::Rotated { .. }), "{outcome:?}");
    }
}

both!(expired_refresh_tokens_are_purged);
async fn expired_refresh_tokens_are_purged(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "fay@example.com").await;
    session(&repos, user, token(1, Duration::from_secs(60))).await;
    session(&repos, user, token(2, DAY)).await;
    let purged = repos
        .refresh_tokens
        .purge_expired(SystemTime::now() + Duration::from_secs(120), 100)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let now = SystemTime::now();
    assert_eq!(
        present(&repos, 1, 3, now, Duration::ZERO).await,
        Verdict::Unknown
    );
    assert_eq!(
        present(&repos, 2, 4, now, Duration::ZERO).await,
        Verdict::Current
    );
}

both!(purges_go_in_batches_and_finish);
async fn purges_go_in_batches_and_finish(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = new_user(&repos, "batch@example.com").await;
    for n in 1..=5 {
        session(&repos, user, token(n, Duration::from_secs(60))).await;
    }
    session(&repos, user, token(9, DAY)).await;
    let later = SystemTime::now() + Duration::from_secs(120);
    let rt = &repos.refresh_tokens;
    assert_eq!(rt.purge_expired(later, 2).await.unwrap(), 2);
    assert_eq!(rt.purge_expired(later, 2).await.unwrap(), 2);
    assert_eq!(
        rt.purge_expired(later, 2).await.unwrap(),
        1,
        "fewer than a batch: done"
    );
    assert_eq!(rt.purge_expired(later, 2).await.unwrap(), 0);
    let now = SystemTime::now();
    assert_eq!(
        present(&repos, 9, 10, now, Duration::ZERO).await,
        Verdict::Current
    );

    // The outbox: two sent and two failed emails, one batch at a time.
    let ob = &repos.outbox;
    for _ in 0..3 {
        ob.enqueue(&[verification_for(user, "batch@example.com")], now)
            .await
            .unwrap();
    }
    let items = ob.claim(10, Duration::from_secs(60), now).await.unwrap();
    assert_eq!(items.len(), 4);
    ob.mark_sent(items[0].id).await.unwrap();
    ob.mark_sent(items[1].id).await.unwrap();
    ob.mark_failed(items[2].id).await.unwrap();
    ob.mark_failed(items[3].id).await.unwrap();
    let mut purged = Vec::new();
    loop {
        let n = ob.purge(later, later, 3).await.unwrap();
        purged.push(n);
        if n < 3 {
            break;
        }
    }
    // Memory drops sent emails at once; PostgreSQL keeps them until purged.
    let expected: &[u64] = match backend {
        Backend::Memory => &[2],
        Backend::Real => &[3, 1],
    };
    assert_eq!(purged, expected);
}

both!(one_time_tokens_work_once_per_kind_and_expire);
async fn one_time_tokens_work_once_per_kind_and_expire(backend: Backend) {
    let (repos, clock, _s) = repos_with_clock(backend).await;
    let (verify, reset) = (&repos.verification_tokens, &repos.reset_tokens);
    let user = UserId::random();
    verify
        .put(&hash(1), user, Duration::from_secs(60))
        .await
        .unwrap();
    // The same bytes as a reset token find nothing: each kind has its own key space.
    assert_eq!(reset.peek(&hash(1)).await.unwrap(), None);
    assert_eq!(reset.take(&hash(1)).await.unwrap(), None);
    assert_eq!(verify.peek(&hash(1)).await.unwrap(), Some(user));
    assert_eq!(verify.take(&hash(1)).await.unwrap(), Some(user));
    assert_eq!(verify.take(&hash(1)).await.unwrap(), None);
    assert_eq!(verify.peek(&hash(1)).await.unwrap(), None);

    // Reset tokens carry a password stamp, stored and returned as it was.
    let grant = ResetGrant {
        user,
        stamp: u64::MAX - 7,
    };
    reset
        .put(&hash(3), grant, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(reset.peek(&hash(3)).await.unwrap(), Some(grant));
    assert_eq!(reset.take(&hash(3)).await.unwrap(), Some(grant));

    reset
        .put(&hash(2), grant, Duration::from_millis(300))
        .await
        .unwrap();
    let_pass(backend, &clock, Duration::from_millis(450)).await;
    assert_eq!(reset.take(&hash(2)).await.unwrap(), None);
}

both!(an_accounts_one_time_tokens_are_forgotten_together);
async fn an_accounts_one_time_tokens_are_forgotten_together(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let (user, other) = (UserId::random(), UserId::random());
    let minute = Duration::from_secs(60);
    let to = email("next@example.com");
    let change = EmailChangeGrant {
        user,
        stamp: 7,
        to: to.clone(),
    };
    repos
        .verification_tokens
        .put(&hash(1), user, minute)
        .await
        .unwrap();
    let grant = ResetGrant { user, stamp: 1 };
    repos
        .reset_tokens
        .put(&hash(2), grant, minute)
        .await
        .unwrap();
    repos
        .email_change_tokens
        .put(&hash(3), change.clone(), minute)
        .await
        .unwrap();
    repos
        .verification_tokens
        .put(&hash(4), other, minute)
        .await
        .unwrap();
    assert_eq!(
        repos.email_change_tokens.peek(&hash(3)).await.unwrap(),
        Some(change)
    );
    repos.owned_tokens.forget(user).await.unwrap();
    assert_eq!(
        repos.verification_tokens.peek(&hash(1)).await.unwrap(),
        None
    );
    assert_eq!(repos.reset_tokens.peek(&hash(2)).await.unwrap(), None);
    assert_eq!(
        repos.email_change_tokens.peek(&hash(3)).await.unwrap(),
        None
    );
    assert_eq!(
        repos.verification_tokens.peek(&hash(4)).await.unwrap(),
        Some(other),
        "another account's are left"
    );
    repos.owned_tokens.forget(user).await.unwrap();
}

both!(concurrent_takes_of_one_token_have_one_winner);
async fn concurrent_takes_of_one_token_have_one_winner(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let user = UserId::random();
    repos
        .verification_tokens
        .put(&hash(5), user, Duration::from_secs(60))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let tokens = repos.verification_tokens.clone();
            tokio::spawn(async move { tokens.take(&hash(5)).await.unwrap() })
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
    let (repos, clock, _s) = repos_with_clock(backend).await;
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
    let_pass(backend, &clock, Duration::from_millis(750)).await;
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
    ob.enqueue(
        &[verification_for(user, "ida@example.com")],
        SystemTime::now(),
    )
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
    ob.enqueue(
        &[verification_for(user, "old@example.com")],
        SystemTime::now(),
    )
    .await
    .unwrap();
    ob.enqueue(
        &[verification_for(user, "old@example.com")],
        SystemTime::now(),
    )
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
    assert_eq!(ob.purge(now - DAY, now - DAY, 100).await.unwrap(), 0);
    let later = now + Duration::from_secs(5);
    ob.purge(later, later, 100).await.unwrap();
    // The pending one stays, the others are gone for good.
    assert_eq!(ob.backlog(now).await.unwrap().0, 1);
    ob.retry_at(items[2].id, now).await.unwrap();
    let left = ob.claim(10, Duration::from_secs(60), later).await.unwrap();
    assert_eq!(left.iter().map(|i| i.id).collect::<Vec<_>>(), [items[2].id]);
}

both!(reset_requests_without_an_account_are_never_claimed_and_dropped_in_bulk);
async fn reset_requests_without_an_account_are_never_claimed_and_dropped_in_bulk(backend: Backend) {
    let (repos, _s) = repos(backend).await;
    let ob = &repos.outbox;
    let user = new_user(&repos, "known@example.com").await;
    // The registration's own email, out of the way.
    let now = SystemTime::now();
    let first = ob.claim(10, Duration::from_secs(60), now).await.unwrap();
    ob.mark_sent(first[0].id).await.unwrap();
    for n in 0..3 {
        ob.request_reset(&email(&format!("nobody{n}@example.com")), now)
            .await
            .unwrap();
    }
    ob.request_reset(&email("KNOWN@example.com"), now)
        .await
        .unwrap();
    // Only the request for an account is claimed, as that account's.
    let items = ob.claim(10, Duration::from_secs(60), now).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].email,
        OutgoingEmail::PasswordReset {
            user,
            to: email("known@example.com")
        }
    );
    // The others wait for nobody, and go in bulk. None of them shows in the backlog,
    // which counts verification emails only.
    assert_eq!(ob.backlog(now).await.unwrap().0, 0);
    assert_eq!(ob.drop_orphans(2).await.unwrap(), 2);
    assert_eq!(ob.drop_orphans(10).await.unwrap(), 1);
    assert_eq!(ob.drop_orphans(10).await.unwrap(), 0);
    ob.mark_skipped(items[0].id).await.unwrap();
    // A verification email waiting does show.
    ob.enqueue(&[verification_for(user, "known@example.com")], now)
        .await
        .unwrap();
    assert_eq!(ob.backlog(now).await.unwrap().0, 1);
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
