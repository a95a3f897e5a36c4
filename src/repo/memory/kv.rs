//! Keys with time-to-live, in memory: one-time tokens and rate-limit counters.
//!
//! Expiry works as in mini-redis: besides the map, a `BTreeSet<(Instant, key)>` orders keys
//! by expiry; a background task sleeps until the earliest one, removes what is due, and is
//! woken early through a `Notify` when a sooner expiry is set. Reads also ignore entries past
//! their deadline, so correctness never depends on the task's timing. The task ends when the
//! store is dropped (see [`Shutdown`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::domain::TokenHash;
use crate::repo::{
    Counter, Dependency, OneTimeTokens, Purpose, RateKey, RateLimits, RepoError, TokenSubject,
};

#[derive(Clone, Copy)]
enum Value {
    Subject(TokenSubject),
    Count(u64),
}

struct Entry {
    value: Value,
    expires_at: Instant,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    expirations: BTreeSet<(Instant, String)>,
    shutdown: bool,
}

impl State {
    fn live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.expires_at > now)
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.expirations
            .remove(&(entry.expires_at, key.to_string()));
        Some(entry)
    }

    /// Sets `key`; true when its expiry is now the earliest (the purge task must wake).
    fn set(&mut self, key: String, value: Value, expires_at: Instant) -> bool {
        self.remove(&key);
        let earliest = self
            .expirations
            .first()
            .is_none_or(|(first, _)| expires_at < *first);
        self.expirations.insert((expires_at, key.clone()));
        self.entries.insert(key, Entry { value, expires_at });
        earliest
    }

    /// Removes every due key; returns when the next one falls due.
    fn purge(&mut self, now: Instant) -> Option<Instant> {
        while let Some((when, key)) = self.expirations.first().cloned() {
            if when > now {
                return Some(when);
            }
            self.expirations.pop_first();
            self.entries.remove(&key);
        }
        None
    }
}

struct Shared {
    /// A std Mutex: never held across an `.await`.
    state: Mutex<State>,
    purge_task: Notify,
}

/// The in-memory stand-in for Redis.
pub struct MemoryKv {
    shared: Arc<Shared>,
    _shutdown: Shutdown,
}

/// Stops the purge task when the store is dropped.
struct Shutdown(Arc<Shared>);

impl Drop for Shutdown {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.shutdown = true;
        }
        self.0.purge_task.notify_one();
    }
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryKv {
    /// Creates the store and its purge task; call within a tokio runtime.
    pub fn new() -> MemoryKv {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            purge_task: Notify::new(),
        });
        tokio::spawn(purge_expired(Arc::clone(&shared)));
        MemoryKv {
            _shutdown: Shutdown(Arc::clone(&shared)),
            shared,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, RepoError> {
        self.shared
            .state
            .lock()
            .map_err(|_| RepoError::Unavailable("memory store poisoned".into()))
    }

    fn token_key(purpose: Purpose, hash: &TokenHash) -> String {
        format!("{}:{}", purpose.segment(), hash.to_hex())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shared.state.lock().unwrap().entries.len()
    }
}

async fn purge_expired(shared: Arc<Shared>) {
    loop {
        let next = {
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            if state.shutdown {
                return;
            }
            state.purge(Instant::now())
        };
        match next {
            Some(when) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(when) => {}
                    _ = shared.purge_task.notified() => {}
                }
            }
            None => shared.purge_task.notified().await,
        }
    }
}

#[async_trait]
impl OneTimeTokens for MemoryKv {
    async fn put(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
        subject: TokenSubject,
        ttl: Duration,
    ) -> Result<(), RepoError> {
        let wake = self.lock()?.set(
            Self::token_key(purpose, hash),
            Value::Subject(subject),
            Instant::now() + ttl,
        );
        if wake {
            self.shared.purge_task.notify_one();
        }
        Ok(())
    }

    async fn peek(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
    ) -> Result<Option<TokenSubject>, RepoError> {
        let key = Self::token_key(purpose, hash);
        Ok(match self.lock()?.live(&key, Instant::now()) {
            Some(Entry {
                value: Value::Subject(subject),
                ..
            }) => Some(*subject),
            _ => None,
        })
    }

    async fn take(
        &self,
        purpose: Purpose,
        hash: &TokenHash,
    ) -> Result<Option<TokenSubject>, RepoError> {
        let key = Self::token_key(purpose, hash);
        let mut state = self.lock()?;
        let now = Instant::now();
        let live = state.live(&key, now).is_some();
        match state.remove(&key) {
            Some(Entry {
                value: Value::Subject(subject),
                ..
            }) if live => Ok(Some(subject)),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl RateLimits for MemoryKv {
    async fn hit(&self, key: &RateKey, window: Duration) -> Result<Counter, RepoError> {
        let key = format!("rate:{}", key.key());
        let now = Instant::now();
        let mut state = self.lock()?;
        let (count, expires_at) = match state.live(&key, now) {
            Some(Entry {
                value: Value::Count(n),
                expires_at,
            }) => (n + 1, *expires_at),
            _ => (1, now + window),
        };
        let wake = state.set(key, Value::Count(count), expires_at);
        drop(state);
        if wake {
            self.shared.purge_task.notify_one();
        }
        Ok(Counter {
            count,
            resets_in: expires_at - now,
        })
    }

    async fn peek(&self, key: &RateKey) -> Result<Option<Counter>, RepoError> {
        let key = format!("rate:{}", key.key());
        let now = Instant::now();
        let state = self.lock()?;
        Ok(match state.live(&key, now) {
            Some(Entry {
                value: Value::Count(count),
                expires_at,
            }) => Some(Counter {
                count: *count,
                resets_in: *expires_at - now,
            }),
            _ => None,
        })
    }

    async fn clear(&self, key: &RateKey) -> Result<(), RepoError> {
        self.lock()?.remove(&format!("rate:{}", key.key()));
        Ok(())
    }
}

#[async_trait]
impl Dependency for MemoryKv {
    fn name(&self) -> &'static str {
        "cache"
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.lock().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    #[tokio::test(start_paused = true)]
    async fn expired_keys_are_purged_by_the_background_task() {
        let kv = MemoryKv::new();
        let hash = TokenHash::from_bytes([7; 32]);
        kv.put(
            Purpose::VerifyEmail,
            &hash,
            UserId::random().into(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(kv.len(), 1);
        tokio::time::sleep(Duration::from_secs(11)).await;
        // Let the purge task run.
        tokio::task::yield_now().await;
        assert_eq!(kv.len(), 0);
        assert_eq!(kv.take(Purpose::VerifyEmail, &hash).await.unwrap(), None);
    }
}
