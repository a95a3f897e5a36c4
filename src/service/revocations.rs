//! Immediate revocation (SPEC §9): the sessions that have ended, as this replica knows
//! them, so that it refuses their access tokens although their signatures still verify.
//!
//! The store is the one truth: a session ends by a committed write, so nothing is lost if
//! authd stops right after answering. The replica that ends a session learns it from that
//! write ([`Revocations::ended_here`]) before it answers; every replica reads the ends
//! committed anywhere every [`POLL`], resuming from a horizon below every end not yet
//! visible ([`RefreshTokens::end_horizon`]), so an end that commits late is never skipped.
//! Bearer checks only consult memory: `/authz` makes no database round trip. Should the
//! store stop answering, after [`STALE_AFTER`] bearer checks answer `503` rather than
//! accept a token that may have been revoked meanwhile.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::clock::Clock;
use crate::domain::SessionId;
use crate::repo::{EndMark, RefreshTokens, RepoError};

/// How often every replica reads the sessions ended meanwhile.
pub const POLL: Duration = Duration::from_millis(250);
/// How long after the start of the last successful read bearer checks trust what they
/// know: with [`POLL`], a session ended on any replica is refused on every other within
/// 1 s — or the check answers `503`.
pub const STALE_AFTER: Duration = Duration::from_millis(750);
/// Ended sessions are remembered this long past the access-token lifetime: room for
/// clocks that disagree, and for a lifetime changed during a rolling restart.
const MARGIN: Duration = Duration::from_secs(300);
/// Ends read at most per query; more are read in further pages at once.
const BATCH: usize = 10_000;

struct Known {
    /// Ended sessions, each with when it may be forgotten (every token of it expired).
    ended: HashMap<SessionId, Instant>,
    /// The same sessions in the order they are forgotten (each is added once, with the
    /// same lifetime, so this is also the order they were learnt).
    forget: VecDeque<(Instant, SessionId)>,
    /// Where the next read resumes.
    from: EndMark,
    /// When the last successful read started.
    synced: Option<Instant>,
    /// Whether the last read failed (its failure is logged once).
    failing: bool,
}

impl Known {
    fn learn(&mut self, sessions: impl IntoIterator<Item = SessionId>, keep: Duration) {
        let now = Instant::now();
        let until = now + keep;
        for session in sessions {
            if let Entry::Vacant(entry) = self.ended.entry(session) {
                entry.insert(until);
                self.forget.push_back((until, session));
            }
        }
        while let Some(&(at, session)) = self.forget.front() {
            if at > now {
                break;
            }
            self.forget.pop_front();
            self.ended.remove(&session);
        }
    }
}

/// Whether a session has ended could not be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("revocations are stale: the store has not answered for a while")]
pub struct Stale;

pub struct Revocations {
    refresh_tokens: Arc<dyn RefreshTokens>,
    clock: Arc<dyn Clock>,
    /// An ended session's access tokens are all expired this long after it ended.
    keep: Duration,
    /// Tokens issued before this (Unix seconds) belong to sessions a store that forgets
    /// on restart (the embedded one) no longer knows: they count as ended.
    issued_after: Option<u64>,
    /// A std lock: held for a look-up or an update, never across an `.await`.
    known: RwLock<Known>,
    /// One read at a time.
    reading: tokio::sync::Mutex<()>,
}

impl Revocations {
    /// `forgets_on_restart`: the store keeps no sessions across a restart (in memory).
    pub fn new(
        refresh_tokens: Arc<dyn RefreshTokens>,
        access_ttl: Duration,
        clock: Arc<dyn Clock>,
        forgets_on_restart: bool,
    ) -> Revocations {
        Revocations {
            refresh_tokens,
            keep: access_ttl + MARGIN,
            issued_after: forgets_on_restart.then(|| clock.unix_now()),
            clock,
            known: RwLock::new(Known {
                ended: HashMap::new(),
                forget: VecDeque::new(),
                from: EndMark::default(),
                synced: None,
                failing: false,
            }),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Known> {
        self.known.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the session of a token issued at `issued_at` (Unix seconds) has ended, as
    /// far as this replica knows — which is at most `STALE_AFTER` (0.75 s) behind the store, or
    /// [`Stale`].
    pub fn has_ended(&self, session: SessionId, issued_at: u64) -> Result<bool, Stale> {
        if self.issued_after.is_some_and(|after| issued_at < after) {
            return Ok(true);
        }
        let known = self.read();
        match known.synced {
            Some(at) if at.elapsed() <= STALE_AFTER => Ok(known.ended.contains_key(&session)),
            _ => Err(Stale),
        }
    }

    /// This replica ended `sessions` (their ends are committed): it refuses their tokens
    /// from now on, without waiting for a read.
    pub fn ended_here(&self, sessions: impl IntoIterator<Item = SessionId>) {
        self.write().learn(sessions, self.keep);
    }

    /// Reads the sessions ended anywhere since the last read.
    pub async fn catch_up(&self) -> Result<(), RepoError> {
        let _one = self.reading.lock().await;
        let started = Instant::now();
        let horizon = self.refresh_tokens.end_horizon().await?;
        let from = self.read().from;
        // Older ends have no token left to refuse (this bounds the first read).
        let not_before = self
            .clock
            .now()
            .checked_sub(self.keep)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut after = None;
        loop {
            let page = self
                .refresh_tokens
                .ended_since(from, not_before, after, BATCH)
                .await?;
            after = page.last().copied();
            self.write()
                .learn(page.iter().map(|(_, session)| *session), self.keep);
            if page.len() < BATCH {
                break;
            }
        }
        let mut known = self.write();
        known.from = horizon;
        known.synced = Some(started);
        Ok(())
    }

    /// Reads every `POLL` (250 ms) until `stop`. A failing store is logged when it starts and
    /// stops failing, not at every read.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let result = self.catch_up().await;
            let was_failing = std::mem::replace(&mut self.write().failing, result.is_err());
            match result {
                Err(e) if !was_failing => {
                    tracing::warn!(error = %e, "cannot read ended sessions; bearer checks answer 503 until a read succeeds")
                }
                Ok(()) if was_failing => tracing::info!("reading ended sessions again"),
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::{Email, PasswordHash, Refresh, TokenHash, UserId};
    use crate::repo::memory::MemoryDb;
    use crate::repo::{NewRefreshToken, NewSession, NewUser, OutgoingEmail, Users};

    /// A user with `sessions` sessions, on a fresh embedded store.
    async fn user_with_sessions(db: &MemoryDb, sessions: usize) -> (UserId, Vec<SessionId>) {
        let user = UserId::random();
        let email = Email::parse("many@example.com").unwrap();
        let hash = PasswordHash::from_stored("h".into());
        let new = NewUser {
            id: user,
            email: email.clone(),
            password_hash: hash.clone(),
        };
        let first = OutgoingEmail::Verification {
            user,
            to: email.clone(),
        };
        db.create(new, first, SystemTime::now()).await.unwrap();
        let mut ids = Vec::new();
        for n in 0..sessions {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let id = SessionId::random();
            let session = NewSession {
                id,
                user,
                email: email.clone(),
                user_agent: None,
                first: NewRefreshToken {
                    hash: TokenHash::<Refresh>::from_bytes(bytes),
                    created_at: SystemTime::now(),
                    expires_at: SystemTime::now() + Duration::from_secs(3600),
                },
            };
            assert!(db.start_session(session, &hash).await.unwrap());
            ids.push(id);
        }
        (user, ids)
    }

    fn revocations(db: &Arc<MemoryDb>, forgets_on_restart: bool) -> Revocations {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let store: Arc<dyn RefreshTokens> = db.clone();
        Revocations::new(store, Duration::from_secs(60), clock, forgets_on_restart)
    }

    /// More ends in one statement than one read returns: every one is learnt, by pages,
    /// and later ends still are.
    #[tokio::test]
    async fn a_burst_of_ends_larger_than_a_page_is_read_whole() {
        let db = Arc::new(MemoryDb::default());
        let (user, ids) = user_with_sessions(&db, BATCH + 5).await;
        let other = revocations(&db, false);
        other.catch_up().await.unwrap();
        let ended = db
            .revoke_user_sessions(user, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(ended.len(), BATCH + 5);
        other.catch_up().await.unwrap();
        assert!(ids.iter().all(|id| other.has_ended(*id, 0) == Ok(true)));
        assert_eq!(other.read().ended.len(), BATCH + 5);
        // Reading again learns nothing twice.
        other.catch_up().await.unwrap();
        assert_eq!(other.read().forget.len(), BATCH + 5);
    }

    /// Until a read succeeds, and once the last one is older than STALE_AFTER, nothing
    /// can be told: bearer checks must answer 503, not guess.
    #[tokio::test]
    async fn without_a_recent_read_nothing_can_be_told() {
        let db = Arc::new(MemoryDb::default());
        let (_, ids) = user_with_sessions(&db, 1).await;
        let replica = revocations(&db, false);
        assert_eq!(replica.has_ended(ids[0], 0), Err(Stale));
        replica.catch_up().await.unwrap();
        assert_eq!(replica.has_ended(ids[0], 0), Ok(false));
        replica.write().synced = Instant::now().checked_sub(STALE_AFTER * 2);
        assert_eq!(replica.has_ended(ids[0], 0), Err(Stale));
        // What this replica ended itself it knows at once, once reads succeed again.
        replica.ended_here([ids[0]]);
        replica.catch_up().await.unwrap();
        assert_eq!(replica.has_ended(ids[0], 0), Ok(true));
    }

    /// The embedded store forgets every session on restart: tokens issued before the
    /// start count as ended, later ones do not.
    #[tokio::test]
    async fn a_store_that_forgets_on_restart_refuses_older_tokens() {
        let db = Arc::new(MemoryDb::default());
        let replica = revocations(&db, true);
        replica.catch_up().await.unwrap();
        let started = replica.issued_after.unwrap();
        assert_eq!(
            replica.has_ended(SessionId::random(), started - 1),
            Ok(true)
        );
        assert_eq!(replica.has_ended(SessionId::random(), started), Ok(false));
    }
}
