//! Refresh-token rotations on PostgreSQL, combined: rotations that arrive while another
//! batch is being written go together in the next one — one statement and one commit
//! for many refreshes (group commit). Nothing waits on a timer: under light load every
//! batch holds one rotation and costs what a lone rotation did; under load, PostgreSQL's
//! per-statement and per-commit work is shared.
//!
//! Every guarantee of a lone rotation holds per token: a batch is one statement, so each
//! rotation in it commits, or none does, before any caller is answered; a token presented
//! twice is never twice in one batch — the second waits for the next batch, where it
//! finds the first one's rotation, exactly as if the two had come one after the other.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::domain::{Refresh, SessionId, TokenHash, TokenState, UserId};
use crate::repo::{NewRefreshToken, RepoError, Rotation};

/// Batches written at once.
const WRITERS: usize = 1;
/// How long a batch waits for company after its first rotation arrived: the bound on
/// what combining adds to a refresh's latency.
const LINGER: std::time::Duration = std::time::Duration::from_micros(1000);
/// Rotations in one batch at most.
const MAX_BATCH: usize = 64;
/// Rotations waiting for a batch at most; past it, callers wait to queue.
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

/// One rotation asked for, and where its outcome goes.
struct Job {
    presented: TokenHash<Refresh>,
    successor: NewRefreshToken,
    now: SystemTime,
    reply: oneshot::Sender<Result<Rotation, RepoError>>,
}

/// The queue rotations wait in, and the writers that empty it.
pub(super) struct Rotations {
    queue: mpsc::Sender<Job>,
}

impl Rotations {
    /// Starts the writers, which write through `store`'s request pool. Call within a
    /// tokio runtime.
    pub(super) fn start(store: &PgStore) -> Arc<Rotations> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(store.clone(), Arc::clone(&jobs)));
        }
        Arc::new(Rotations { queue })
    }

    /// Rotates `presented` into `successor` in the next batch.
    pub(super) async fn rotate(
        &self,
        presented: &TokenHash<Refresh>,
        successor: NewRefreshToken,
        now: SystemTime,
        deadline: std::time::Duration,
    ) -> Result<Rotation, RepoError> {
        let (reply, outcome) = oneshot::channel();
        let job = Job {
            presented: *presented,
            successor,
            now,
            reply,
        };
        let wait = async {
            self.queue
                .send(job)
                .await
                .map_err(|_| RepoError::Timeout("postgres"))?;
            outcome.await.map_err(|_| RepoError::Timeout("postgres"))?
        };
        tokio::time::timeout(deadline, wait)
            .await
            .unwrap_or(Err(RepoError::Timeout("postgres")))
    }
}

/// Takes whatever is queued (at most [`MAX_BATCH`], each token once) and writes it, for
/// as long as the queue lives.
async fn write_batches(store: PgStore, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut later: Vec<Job> = Vec::new();
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut tokens = HashSet::new();
        let mut next = std::mem::take(&mut later).into_iter();
        let mut admit = |job: Job, batch: &mut Vec<Job>, later: &mut Vec<Job>| {
            if batch.len() < MAX_BATCH && tokens.insert(job.presented) {
                batch.push(job);
            } else {
                later.push(job);
            }
        };
        for job in next.by_ref() {
            admit(job, &mut batch, &mut later);
        }
        // With work in hand, top it up only if the queue is free: the other writer may
        // hold it while it waits for a rotation to arrive.
        let queue = match batch.is_empty() {
            true => Some(jobs.lock().await),
            false => jobs.try_lock().ok(),
        };
        if let Some(mut queue) = queue {
            if batch.is_empty() {
                match queue.recv().await {
                    Some(job) => admit(job, &mut batch, &mut later),
                    None => return,
                }
            }
            let until = tokio::time::Instant::now() + LINGER;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(until, queue.recv()).await {
                    Ok(Some(job)) => admit(job, &mut batch, &mut later),
                    _ => break,
                }
            }
        }
        // Callers that gave up are not written for.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        match write(&store, &batch).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Nothing of the batch committed: every caller gets the failure (503),
                // each token still as it was.
                let cause = Arc::new(e);
                for job in batch {
                    let _ = job.reply.send(Err(RepoError::Batch(Arc::clone(&cause))));
                }
            }
        }
    }
}

/// One statement for the batch; for the rotations it refused, one more for their states.
/// Outcomes in the batch's order.
async fn write(store: &PgStore, batch: &[Job]) -> Result<Vec<Rotation>, RepoError> {
    let presented: Vec<&[u8]> = batch.iter().map(|j| &j.presented.as_bytes()[..]).collect();
    let nows: Vec<SystemTime> = batch.iter().map(|j| j.now).collect();
    let successors: Vec<&[u8]> = batch
        .iter()
        .map(|j| &j.successor.hash.as_bytes()[..])
        .collect();
    let expiries: Vec<SystemTime> = batch.iter().map(|j| j.successor.expires_at).collect();
    store
        .with(|client| async move {
            let rotate = client.prepare_cached(ROTATE_ALL).await?;
            let params: [&(dyn ToSql + Sync); 4] = [&presented, &nows, &successors, &expiries];
            let mut outcomes = vec![Rotation::Refused(None); presented.len()];
            let mut rotated = vec![false; presented.len()];
            for row in client.query(&rotate, &params).await? {
                let n: i64 = row.get(0);
                let i = usize::try_from(n - 1).map_err(|_| RepoError::Corrupt("batch order"))?;
                outcomes[i] = Rotation::Rotated {
                    session: SessionId::from_uuid(row.get(1)),
                    user: UserId::from_uuid(row.get(2)),
                };
                rotated[i] = true;
            }
            let refused: Vec<&[u8]> = presented
                .iter()
                .zip(&rotated)
                .filter(|(_, done)| !**done)
                .map(|(p, _)| *p)
                .collect();
            if refused.is_empty() {
                return Ok(outcomes);
            }
            let states = client.prepare_cached(STATES).await?;
            for row in client.query(&states, &[&refused]).await? {
                let hash: &[u8] = row.get(0);
                let state = TokenState {
                    session: SessionId::from_uuid(row.get(1)),
                    rotated_at: row.get(2),
                    expires_at: row.get(3),
                    session_revoked: row.get(4),
                    user: UserId::from_uuid(row.get(5)),
                    account_disabled: row.get(6),
                };
                for (i, p) in presented.iter().enumerate() {
                    if !rotated[i] && *p == hash {
                        outcomes[i] = Rotation::Refused(Some(state));
                    }
                }
            }
            Ok(outcomes)
        })
        .await
}
