//! Refresh-token rotations on PostgreSQL, combined: rotations that arrive together go
//! together — one statement and one commit for many refreshes. Under load, PostgreSQL's
//! per-statement and per-commit work is shared, and a batch waits about [`LINGER`] for
//! company; a rotation that arrives when the last batch had none is written at once
//! (see [`Company`]).
//!
//! Every guarantee of a lone rotation holds per token:
//! - a batch is one statement: its rotations all commit, or none does;
//! - a token presented twice in one batch is rotated once; the other copies are refused
//!   with the state they find after the commit — as if they had come one after the other;
//! - a rotation that committed is answered as rotated, never with a failure: the caller
//!   stops waiting only before its job is written, and a write whose outcome is unknown
//!   (a timeout, a lost connection) is settled by ending the server session it was sent
//!   on — once that session is gone, the write can neither still be running nor commit
//!   later — and then looking for the successors it stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::Object;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::domain::{Refresh, SessionId, TokenHash, TokenState, UserId};
use crate::repo::{NewRefreshToken, RepoError, Rotation};

/// How long a batch waits for company, when it waits (rounded up to the timer's
/// millisecond, so 1–2 ms): with the write before it, what combining adds to a
/// refresh's latency.
const LINGER: Duration = Duration::from_millis(1);
/// Rotations in one batch at most.
const MAX_BATCH: usize = 64;
/// Rotations waiting for a batch at most; past it, callers wait to queue (within their
/// deadline).
const QUEUE: usize = 4096;

/// Each row of the input is one rotation; the WHERE clause is `TokenState::is_current`
/// in SQL, with each rotation's own `now`. The UPDATE takes each row lock; a rotation of
/// the same token elsewhere (another replica) waits, re-checks `rotated_at IS NULL` and
/// claims nothing.
const ROTATE_ALL: &str = "
    WITH input AS (
        SELECT * FROM unnest($1::bytea[], $2::timestamptz[], $3::bytea[], $4::timestamptz[])
            WITH ORDINALITY AS i(presented, now, successor, expires_at, n)
    ), claimed AS (
        UPDATE refresh_tokens t SET rotated_at = i.now
        FROM refresh_families f, input i
        WHERE t.token_hash = i.presented AND f.id = t.family_id
          AND t.rotated_at IS NULL AND f.revoked_at IS NULL AND t.expires_at > i.now
        RETURNING i.n, t.family_id, f.user_id, i.successor, i.expires_at
    ), successors AS (
        INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
        SELECT successor, family_id, expires_at FROM claimed
    )
    SELECT n, family_id, user_id FROM claimed";

/// The tokens of a batch that could not be rotated, as they are now.
const STATES: &str = "
    SELECT t.token_hash, t.family_id, t.rotated_at, t.expires_at, f.revoked_at IS NOT NULL,
           f.user_id, u.disabled
    FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
    JOIN users u ON u.id = f.user_id
    WHERE t.token_hash = ANY($1)";

/// Which of a batch's successors were stored, with their sessions: after a write whose
/// outcome is unknown, a stored successor proves its rotation committed.
const STORED_SUCCESSORS: &str = "
    SELECT t.token_hash, t.family_id, f.user_id
    FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
    WHERE t.token_hash = ANY($1)";

/// Ends the writer's server sessions other than the one running it, and counts those
/// still there (ending, or not yet signalled). Only client sessions of authd's own role:
/// any role can see, and could copy, an `application_name`, and ending another role's
/// session is refused.
const END_EARLIER_WRITERS: &str = "
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE application_name = $1 AND pid <> pg_backend_pid()
      AND usename = session_user AND backend_type = 'client backend'";

/// How soon to look again for an earlier writer session that is ending.
const ENDING_POLL: Duration = Duration::from_millis(5);

/// One rotation asked for, and where its outcome goes.
struct Job {
    asked: Asked,
    /// Past it, the job is not written (its caller gets a 503, the token unchanged).
    deadline: Instant,
    reply: oneshot::Sender<Result<Rotation, RepoError>>,
}

/// What one rotation is to write.
struct Asked {
    presented: TokenHash<Refresh>,
    successor: NewRefreshToken,
    now: SystemTime,
}

/// The queue rotations wait in; one writer empties it.
pub(super) struct Rotations {
    queue: mpsc::Sender<Job>,
}

impl Rotations {
    /// Starts the writer, which writes on `store`'s rotation connection. `store` must not
    /// hold these rotations itself, so that the writer ends when the last store that
    /// does is dropped. Call within a tokio runtime.
    pub(super) fn start(store: PgStore) -> Arc<Rotations> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, jobs));
        Arc::new(Rotations { queue })
    }

    /// Rotates `presented` into `successor` in the next batch. Waits at most `deadline`
    /// for the job to be taken into a batch; once it is, waits for the outcome, however
    /// long the write takes (the statement, then, if its outcome is unknown, settling it:
    /// the store's deadline each, so twice that at most), so that a committed rotation is
    /// never answered with a failure.
    pub(super) async fn rotate(
        &self,
        presented: &TokenHash<Refresh>,
        successor: NewRefreshToken,
        now: SystemTime,
        deadline: Duration,
    ) -> Result<Rotation, RepoError> {
        let (reply, outcome) = oneshot::channel();
        let deadline = Instant::now() + deadline;
        let job = Job {
            asked: Asked {
                presented: *presented,
                successor,
                now,
            },
            deadline,
            reply,
        };
        match tokio::time::timeout_at(deadline, self.queue.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(RepoError::Timeout("postgres")),
            Err(_) => return Err(RepoError::Timeout("postgres")),
        }
        outcome.await.unwrap_or(Err(RepoError::Timeout("postgres")))
    }
}

/// Whether the writer waits for company: only when the last batch had some (counted as
/// taken, before late and abandoned jobs are dropped: how many came). A lone refresh on a
/// quiet replica is written at once instead of paying [`LINGER`] for company that is not
/// coming; under load, batches keep lingering. Rotations that queue while a batch is
/// written join the next one either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Company {
    last_batch_had_some: bool,
}

impl Company {
    fn worth_waiting_for(self) -> bool {
        self.last_batch_had_some
    }

    fn after(batch_len: usize) -> Company {
        Company {
            last_batch_had_some: batch_len > 1,
        }
    }
}

/// The next batch: the first queued job, those queued behind it, and — when `company`
/// says so — whatever arrives within [`LINGER`] after that, at most [`MAX_BATCH`] in all;
/// with what this batch says about the next. `None` once the queue is closed and empty.
async fn take_batch<T>(
    jobs: &mut mpsc::Receiver<T>,
    company: Company,
) -> Option<(Vec<T>, Company)> {
    let first = jobs.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            // Empty, or closed: what is taken is written either way.
            Err(_) => break,
        }
    }
    if company.worth_waiting_for() {
        let until = Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, jobs.recv()).await {
                Ok(Some(job)) => batch.push(job),
                _ => break,
            }
        }
    }
    let next = Company::after(batch.len());
    Some((batch, next))
}

/// Writes batches ([`take_batch`]) for as long as the queue lives.
async fn write_batches(store: PgStore, mut jobs: mpsc::Receiver<Job>) {
    let mut company = Company::default();
    loop {
        let Some((batch, next)) = take_batch(&mut jobs, company).await else {
            return;
        };
        company = next;
        // Not written: callers that gave up, and jobs whose time is up (their callers
        // get a 503 with the token unchanged).
        let now = Instant::now();
        let (batch, late): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .filter(|job| !job.reply.is_closed())
            .partition(|job| job.deadline > now);
        for job in late {
            let _ = job.reply.send(Err(RepoError::Timeout("postgres")));
        }
        if batch.is_empty() {
            continue;
        }
        let (asked, replies): (Vec<Asked>, Vec<_>) =
            batch.into_iter().map(|job| (job.asked, job.reply)).unzip();
        let asked: Arc<[Asked]> = asked.into();
        // In a task of its own, so that a bug panicking in one batch fails that batch and
        // the writer goes on with the next.
        let writing = {
            let (store, asked) = (store.clone(), Arc::clone(&asked));
            tokio::spawn(async move { write(&store, &asked).await })
        };
        let outcomes = match writing.await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, "a batch of refresh-token rotations failed");
                after_a_failed_writer(&store, &asked).await
            }
        };
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// Outcomes for a batch whose writer failed: whether its statement committed is unknown,
/// so the successors stored say which rotations did (answered as rotated); the others
/// rotated nothing and fail (503).
async fn after_a_failed_writer(
    store: &PgStore,
    batch: &[Asked],
) -> Vec<Result<Rotation, RepoError>> {
    let all: Vec<usize> = (0..batch.len()).collect();
    let mut outcomes: Vec<Result<Rotation, RepoError>> = batch
        .iter()
        .map(|_| Err(RepoError::Corrupt("the rotation writer failed")))
        .collect();
    if let Ok(rotated) = settled_successors(store, batch, &all).await {
        for (i, rotation) in rotated {
            outcomes[i] = Ok(rotation);
        }
    }
    outcomes
}

/// Writes a batch; one outcome per job, in the batch's order.
async fn write(store: &PgStore, batch: &[Asked]) -> Vec<Result<Rotation, RepoError>> {
    // Each token once in the statement; later copies are refused below.
    let mut first_of: HashMap<TokenHash<Refresh>, usize> = HashMap::new();
    let written: Vec<usize> = (0..batch.len())
        .filter(|&i| first_of.entry(batch[i].presented).or_insert(i) == &i)
        .collect();
    let mut outcomes: Vec<Option<Result<Rotation, RepoError>>> =
        batch.iter().map(|_| None).collect();
    let (rotated, unsettled) = match rotate_once_or_twice(store, batch, &written).await {
        Ok(rotated) => (rotated, None),
        Err(e) if is_ambiguous(&e) => match settled_successors(store, batch, &written).await {
            Ok(rotated) => (rotated, Some(e)),
            Err(_) => return fail_all(batch, e),
        },
        // The database refused the statement: nothing of it committed.
        Err(e) => return fail_all(batch, e),
    };
    for (i, rotation) in rotated {
        outcomes[i] = Some(Ok(rotation));
    }
    if let Some(e) = unsettled {
        // No successor of theirs is stored, so these rotated nothing and their tokens are
        // as they were: a 503 to retry, not a refusal (which would call a good token bad).
        let cause = Arc::new(e);
        return outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(RepoError::Batch(Arc::clone(&cause)))))
            .collect();
    }
    // Every job not rotated: refused, with its token's state as it is now (after the
    // commit, so a second copy of a token sees the first one's rotation).
    let refused: Vec<usize> = (0..batch.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();
    if !refused.is_empty() {
        match states(store, batch, &refused).await {
            Ok(states) => {
                for i in refused {
                    // Copies of one token share its state.
                    let state = states.get(&batch[i].presented).copied().flatten();
                    outcomes[i] = Some(Ok(Rotation::Refused(state)));
                }
            }
            Err(e) => {
                // These rotated nothing: a 503 leaves their tokens as they were.
                let cause = Arc::new(e);
                for i in refused {
                    outcomes[i] = Some(Err(RepoError::Batch(Arc::clone(&cause))));
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Err(RepoError::Corrupt("a rotation without an outcome"))))
        .collect()
}

fn fail_all(batch: &[Asked], e: RepoError) -> Vec<Result<Rotation, RepoError>> {
    let cause = Arc::new(e);
    batch
        .iter()
        .map(|_| Err(RepoError::Batch(Arc::clone(&cause))))
        .collect()
}

/// Whether a failed write may have committed anyway (it timed out, or the connection
/// went), as opposed to the database refusing it.
fn is_ambiguous(e: &RepoError) -> bool {
    match e {
        RepoError::Timeout(_) => true,
        RepoError::Postgres(pg) => pg.code().is_none(),
        _ => false,
    }
}

/// [`ROTATE_ALL`] for the jobs `written`; once more if PostgreSQL broke a deadlock with
/// another replica's batch by aborting this one (nothing of it committed).
async fn rotate_once_or_twice(
    store: &PgStore,
    batch: &[Asked],
    written: &[usize],
) -> Result<Vec<(usize, Rotation)>, RepoError> {
    match rotate(store, batch, written).await {
        Err(RepoError::Postgres(pg)) if pg.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => {
            rotate(store, batch, written).await
        }
        outcome => outcome,
    }
}

/// The hashes `of` the jobs at `positions`, as a statement's `bytea[]` parameter.
fn hashes<'a>(positions: &[usize], of: impl Fn(usize) -> &'a [u8; 32]) -> Vec<&'a [u8]> {
    positions.iter().map(|&i| &of(i)[..]).collect()
}

/// One statement rotating the jobs `written`: which of them it rotated.
async fn rotate(
    store: &PgStore,
    batch: &[Asked],
    written: &[usize],
) -> Result<Vec<(usize, Rotation)>, RepoError> {
    let presented = hashes(written, |i| batch[i].presented.as_bytes());
    let nows: Vec<SystemTime> = written.iter().map(|&i| batch[i].now).collect();
    let successors = hashes(written, |i| batch[i].successor.hash.as_bytes());
    let expiries: Vec<SystemTime> = written
        .iter()
        .map(|&i| batch[i].successor.expires_at)
        .collect();
    store
        .rotating(|client| async move {
            let stmt = client.prepare_cached(ROTATE_ALL).await?;
            let params: [&(dyn ToSql + Sync); 4] = [&presented, &nows, &successors, &expiries];
            let mut rotated = Vec::new();
            for row in client.query(&stmt, &params).await? {
                let n: i64 = row.try_get(0)?;
                let k = usize::try_from(n - 1)
                    .ok()
                    .and_then(|k| written.get(k))
                    .ok_or(RepoError::Corrupt("a rotation out of its batch"))?;
                let rotation = Rotation::Rotated {
                    session: SessionId::from_uuid(row.try_get(1)?),
                    user: UserId::from_uuid(row.try_get(2)?),
                };
                rotated.push((*k, rotation));
            }
            Ok(rotated)
        })
        .await
}

/// After a write whose outcome is unknown: the jobs whose rotation committed, as rotated.
/// The session the write went out on is ended first. Until then its statement may still
/// be on its way, running, or committing (a commit is not bounded by
/// `statement_timeout`), and a look-up would miss a rotation that commits after it: a 503
/// for a rotated token, whose retry would then read as a replay. If the session cannot be
/// confirmed gone, the look-up still runs, as the best answer there is. Both share one
/// deadline, on one connection.
async fn settled_successors(
    store: &PgStore,
    batch: &[Asked],
    written: &[usize],
) -> Result<Vec<(usize, Rotation)>, RepoError> {
    let name = store.writer_name();
    let deadline = store.deadline();
    let successors = hashes(written, |i| batch[i].successor.hash.as_bytes());
    store
        .rotating(|client| async move {
            // Half the deadline at most, so that the look-up has the rest.
            match tokio::time::timeout(deadline / 2, end_earlier_writers(&client, name)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(
                    error = %e,
                    "could not end the rotation writer's earlier session: a best guess follows"
                ),
                Err(_) => tracing::warn!(
                    "the rotation writer's earlier session outlived its wait: a best guess follows"
                ),
            }
            stored_successors(&client, batch, written, &successors).await
        })
        .await
}

/// Ends the writer's other server sessions, and waits until they are gone.
async fn end_earlier_writers(client: &Object, name: &str) -> Result<(), RepoError> {
    let stmt = client.prepare_cached(END_EARLIER_WRITERS).await?;
    loop {
        let left: i64 = client.query_one(&stmt, &[&name]).await?.try_get(0)?;
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(ENDING_POLL).await;
    }
}

/// The jobs whose successor is stored (so their rotation committed), as rotated.
async fn stored_successors(
    client: &Object,
    batch: &[Asked],
    written: &[usize],
    successors: &[&[u8]],
) -> Result<Vec<(usize, Rotation)>, RepoError> {
    let stmt = client.prepare_cached(STORED_SUCCESSORS).await?;
    let mut rotated = Vec::new();
    for row in client.query(&stmt, &[&successors]).await? {
        let hash: &[u8] = row.try_get(0)?;
        let k = written
            .iter()
            .find(|&&i| batch[i].successor.hash.as_bytes()[..] == *hash);
        if let Some(&i) = k {
            let rotation = Rotation::Rotated {
                session: SessionId::from_uuid(row.try_get(1)?),
                user: UserId::from_uuid(row.try_get(2)?),
            };
            rotated.push((i, rotation));
        }
    }
    Ok(rotated)
}

/// The states of the presented tokens of the jobs `refused`; `None` for unknown ones.
async fn states(
    store: &PgStore,
    batch: &[Asked],
    refused: &[usize],
) -> Result<HashMap<TokenHash<Refresh>, Option<TokenState>>, RepoError> {
    let presented = hashes(refused, |i| batch[i].presented.as_bytes());
    let mut found: HashMap<TokenHash<Refresh>, Option<TokenState>> = refused
        .iter()
        .map(|&i| (batch[i].presented, None))
        .collect();
    store
        .rotating(|client| async move {
            let stmt = client.prepare_cached(STATES).await?;
            for row in client.query(&stmt, &[&presented]).await? {
                let hash: &[u8] = row.try_get(0)?;
                let hash: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| RepoError::Corrupt("a token hash is not 32 bytes"))?;
                let state = TokenState {
                    session: SessionId::from_uuid(row.try_get(1)?),
                    rotated_at: row.try_get(2)?,
                    expires_at: row.try_get(3)?,
                    session_revoked: row.try_get(4)?,
                    user: UserId::from_uuid(row.try_get(5)?),
                    account_disabled: row.try_get(6)?,
                };
                found.insert(TokenHash::from_bytes(hash), Some(state));
            }
            Ok(found)
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::{
        rotate, settled_successors, take_batch, Company, PgStore, LINGER, MAX_BATCH, QUEUE,
        ROTATE_ALL, STATES, STORED_SUCCESSORS,
    };
    use crate::metrics::Metrics;
    use crate::repo::postgres::{migrate, DatabaseUrl};
    use crate::repo::RepoError;

    /// `n` jobs queued on a channel whose sender stays open (as the writer's does).
    fn queued(n: usize) -> (mpsc::Sender<usize>, mpsc::Receiver<usize>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        for i in 0..n {
            tx.try_send(i).expect("room in the queue");
        }
        (tx, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_without_company_takes_what_is_queued_and_waits_for_nothing() {
        let (tx, mut rx) = queued(3);
        let started = Instant::now();
        let (batch, next) = take_batch(&mut rx, Company::default())
            .await
            .expect("a batch");
        assert_eq!(batch, vec![0, 1, 2]);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no linger on a quiet writer"
        );
        assert!(next.worth_waiting_for(), "three came together");

        let arrives = LINGER * 5;
        send_later(&tx, 3, arrives);
        let started = Instant::now();
        let (batch, next) = take_batch(&mut rx, Company::after(1))
            .await
            .expect("a batch");
        assert_eq!(batch, vec![3]);
        assert!(
            started.elapsed() < arrives + LINGER,
            "written as soon as it came, not a linger later: {:?}",
            started.elapsed()
        );
        assert!(!next.worth_waiting_for(), "it came alone");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_batch_with_company_the_writer_waits_for_more() {
        let (tx, mut rx) = queued(1);
        // Arrives once the writer has taken what was queued: only a linger catches it.
        send_later(&tx, 1, Duration::ZERO);
        send_later(&tx, 2, LINGER * 3);
        let started = Instant::now();
        let (batch, next) = take_batch(&mut rx, Company::after(2))
            .await
            .expect("a batch");
        assert_eq!(
            batch,
            vec![0, 1],
            "what came within the linger joins, not what came after"
        );
        assert!(started.elapsed() >= LINGER && started.elapsed() < LINGER * 3);
        assert!(next.worth_waiting_for());
        let (batch, _) = take_batch(&mut rx, next).await.expect("the late one");
        assert_eq!(batch, vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_holds_at_most_max_batch_and_the_rest_waits_its_turn() {
        let (_tx, mut rx) = queued(MAX_BATCH + 36);
        let (batch, _) = take_batch(&mut rx, Company::after(2))
            .await
            .expect("a batch");
        assert_eq!(batch, (0..MAX_BATCH).collect::<Vec<_>>());
        let (batch, _) = take_batch(&mut rx, Company::default())
            .await
            .expect("the rest");
        assert_eq!(batch, (MAX_BATCH..MAX_BATCH + 36).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_queue_yields_what_it_held_then_ends_the_writer() {
        let (tx, mut rx) = queued(2);
        drop(tx);
        let started = Instant::now();
        let (batch, _) = take_batch(&mut rx, Company::after(2))
            .await
            .expect("what was queued");
        assert_eq!(batch, vec![0, 1]);
        assert_eq!(started.elapsed(), Duration::ZERO, "nothing more can come");
        assert!(take_batch(&mut rx, Company::after(2)).await.is_none());
    }

    /// Sends `job` on `tx` after `delay` (on the test's paused clock).
    fn send_later(tx: &mpsc::Sender<usize>, job: usize, delay: Duration) {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(job).await;
        });
    }

    /// The plan the writer's connection uses for `sql`: its generic plan, the one every
    /// batch runs (see the next test).
    async fn settled_plan(store: &PgStore, sql: &str, params: usize) -> String {
        let nulls = vec!["NULL"; params].join(", ");
        let sql = sql.to_owned();
        store
            .rotating(|client| async move {
                client
                    .batch_execute(&format!("PREPARE settled AS {sql}"))
                    .await?;
                let explained = client
                    .simple_query(&format!("EXPLAIN EXECUTE settled({nulls})"))
                    .await;
                client.batch_execute("DEALLOCATE settled").await?;
                let mut plan = String::new();
                for message in explained? {
                    if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                        plan.push_str(row.get(0).unwrap_or_default());
                        plan.push('\n');
                    }
                }
                Ok::<_, RepoError>(plan)
            })
            .await
            .expect("explain a rotation statement")
    }

    /// A store on a fresh, migrated test database, which lives as long as the `Storage` held.
    async fn store_on_a_test_database() -> (Arc<authd_testkit::Storage>, PgStore) {
        let storage = authd_testkit::Storage::real().await;
        let database = storage.database.as_ref().expect("a test database");
        let url = DatabaseUrl::parse(&database.url).expect("the test database's URL");
        migrate::run(&url).await.expect("migrate the test database");
        let store = PgStore::new(
            &url,
            1,
            Duration::from_secs(5),
            Arc::new(Metrics::default()),
        )
        .expect("a store on the test database");
        (storage, store)
    }

    /// Planning a batch cost more PostgreSQL CPU than running it (a lone refresh's
    /// rotation: about 0.15 ms of planning, 0.1 ms of execution): the writer's connection plans
    /// each of its statements once, not once per batch.
    #[tokio::test]
    async fn the_writer_plans_its_rotation_statement_once_not_per_batch() {
        let (_storage, store) = store_on_a_test_database().await;
        // PostgreSQL plans the first five runs afresh whatever it settles on later.
        let batches = 8;
        for _ in 0..batches {
            let rotated = rotate(&store, &[], &[]).await.expect("an empty batch");
            assert!(rotated.is_empty());
        }
        let (generic, custom) = store
            .rotating(|client| async move {
                let row = client
                    .query_one(
                        "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
                         WHERE statement = $1",
                        &[&ROTATE_ALL],
                    )
                    .await?;
                Ok::<_, RepoError>((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?))
            })
            .await
            .expect("the writer's prepared rotation statement");
        assert_eq!(
            (generic, custom),
            (batches, 0),
            "every batch runs the one generic plan"
        );
    }

    /// A session of the test database as `role` (the URL's own when `None`), named `name`.
    async fn session(url: &str, role: Option<&str>, name: &str) -> tokio_postgres::Client {
        let mut config: tokio_postgres::Config = url.parse().expect("the test database's URL");
        config.application_name(name);
        if let Some(role) = role {
            config.user(role);
        }
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("a session of the test database");
        tokio::spawn(connection);
        client
    }

    /// Before the look-up that settles an unknown outcome, the writer ends its own earlier
    /// sessions, and only those: a session of another role that copies the writer's
    /// `application_name` is left alone (authd may run as a role that could end it).
    #[tokio::test]
    async fn settling_ends_the_writers_earlier_sessions_and_no_one_elses() {
        let (storage, store) = store_on_a_test_database().await;
        let database = storage.database.as_ref().expect("a test database");
        let name = store.writer_name().to_owned();
        let role = format!("authd_other_{}", uuid::Uuid::new_v4().simple());
        let admin = session(&database.url, None, "admin").await;
        admin
            .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
            .await
            .expect("a second role");
        let earlier = session(&database.url, None, &name).await;
        let look_alike = session(&database.url, Some(&role), &name).await;

        let settled = settled_successors(&store, &[], &[]).await;
        let earlier_ended = earlier.simple_query("SELECT 1").await.is_err();
        let look_alike_lives = look_alike.simple_query("SELECT 1").await.is_ok();
        drop(look_alike);
        // The role goes once its session has.
        let dropped = async {
            loop {
                if admin
                    .batch_execute(&format!("DROP ROLE {role}"))
                    .await
                    .is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), dropped).await;

        assert!(settled.expect("settled").is_empty());
        assert!(earlier_ended, "the writer's earlier session is ended");
        assert!(look_alike_lives, "another role's session is left alone");
    }

    /// On a young database (empty tables, no statistics) a prepared join on
    /// `refresh_tokens` settles on a sequential scan, which it would keep as the table
    /// grows; the writer's connection must settle on the index look-up.
    #[tokio::test]
    async fn rotation_statements_look_tokens_up_by_index_on_a_young_database() {
        let (_storage, store) = store_on_a_test_database().await;
        for (name, sql, params) in [
            ("ROTATE_ALL", ROTATE_ALL, 4),
            ("STATES", STATES, 1),
            ("STORED_SUCCESSORS", STORED_SUCCESSORS, 1),
        ] {
            let plan = settled_plan(&store, sql, params).await;
            assert!(
                plan.contains("refresh_tokens_pkey")
                    && !plan.contains("Seq Scan on refresh_tokens"),
                "{name} must find tokens by their primary key:\n{plan}"
            );
        }
    }
}
