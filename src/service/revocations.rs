//! Immediate revocation (SPEC §9): the sessions that have ended, as this replica knows
//! them, so that it refuses their access tokens although their signatures still verify.
//!
//! The store is the one truth: a session ends by a committed write (its `revoked_at`), so
//! nothing is lost if authd stops right after answering. Every replica reads the sessions
//! ended since its last look, every [`POLL`]; one that ends a session itself catches up at
//! once, before it answers. Bearer checks only consult memory: `/authz` makes no database
//! round trip. Should the store stop answering, the knowledge goes stale, and after
//! [`STALE_AFTER`] bearer checks answer `503` rather than accept a token that may have
//! been revoked meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::clock::Clock;
use crate::domain::SessionId;
use crate::repo::{RefreshTokens, RepoError};

/// How often every replica reads the sessions ended meanwhile.
pub const POLL: Duration = Duration::from_millis(250);
/// How long without a successful read before bearer checks stop trusting what they know.
pub const STALE_AFTER: Duration = Duration::from_secs(3);
/// How far back each read looks past the latest end it has seen: an end stamped just
/// before another may commit just after it (statements are bounded by their timeout).
const OVERLAP: Duration = Duration::from_secs(5);
/// Ends read at most per query; more are read at once in further queries.
const BATCH: usize = 10_000;

struct Known {
    /// Ended sessions, each forgotten once every token of it has expired.
    ended: HashMap<SessionId, Instant>,
    /// The latest end read so far, by the store's clock.
    cursor: SystemTime,
    /// When a read last succeeded.
    synced: Option<Instant>,
}

/// Whether a session has ended could not be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("revocations are stale: the store has not answered for a while")]
pub struct Stale;

pub struct Revocations {
    refresh_tokens: Arc<dyn RefreshTokens>,
    /// An ended session's access tokens are all expired this long after it ended.
    keep: Duration,
    /// A std Mutex: held for a map look-up or insert, never across an `.await`.
    known: Mutex<Known>,
    /// One read at a time.
    reading: tokio::sync::Mutex<()>,
}

impl Revocations {
    pub fn new(
        refresh_tokens: Arc<dyn RefreshTokens>,
        access_ttl: Duration,
        clock: &dyn Clock,
    ) -> Revocations {
        let keep = access_ttl + Duration::from_secs(60);
        Revocations {
            refresh_tokens,
            keep,
            known: Mutex::new(Known {
                ended: HashMap::new(),
                cursor: clock.now() - keep,
                synced: None,
            }),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `session` has ended, as far as this replica knows — which is at most
    /// [`POLL`] behind the store, or [`Stale`].
    pub fn has_ended(&self, session: SessionId) -> Result<bool, Stale> {
        let known = self.lock();
        match known.synced {
            Some(at) if at.elapsed() <= STALE_AFTER => Ok(known.ended.contains_key(&session)),
            _ => Err(Stale),
        }
    }

    /// Reads the sessions ended since the last read (called after this replica ends one,
    /// so that it refuses the session's tokens before it answers).
    pub async fn catch_up(&self) -> Result<(), RepoError> {
        let _one = self.reading.lock().await;
        loop {
            let since = self.lock().cursor - OVERLAP;
            let ended = self.refresh_tokens.ended_since(since, BATCH).await?;
            let full = ended.len() == BATCH;
            let mut known = self.lock();
            let forget_at = Instant::now() + self.keep;
            for (session, at) in ended {
                known.ended.insert(session, forget_at);
                known.cursor = known.cursor.max(at);
            }
            let now = Instant::now();
            known.ended.retain(|_, forget| *forget > now);
            known.synced = Some(now);
            // A full batch of ends within one overlap would be read again and again.
            if !full || since >= known.cursor - OVERLAP {
                return Ok(());
            }
        }
    }

    /// Reads every [`POLL`] until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "cannot read ended sessions");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
