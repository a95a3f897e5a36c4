//! Keys with lifetimes, in memory: the [`KeyValue`] primitives one-time tokens and rate
//! limits are built on, as Redis offers them.
//!
//! Expiry works as in mini-redis: besides the map, a `BTreeSet<(deadline, key)>` orders keys
//! by expiry; a background task sleeps until the earliest one, removes what is due, and is
//! woken early through a `Notify` when a sooner expiry is set. Reads also ignore entries past
//! their deadline, so correctness never depends on the task's timing — nor on the clock
//! running steadily: monotonic time comes from a [`Clock`], which tests move forward. The task ends
//! when the store is dropped (see [`Shutdown`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::repo::{Counter, Dependency, KeyValue, RepoError};

#[derive(Clone)]
enum Value {
    Text(String),
    Count(u64),
    Members(HashSet<String>),
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
    clock: Arc<dyn Clock>,
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

impl MemoryKv {
    /// Creates the store and its purge task; call within a tokio runtime.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryKv {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            purge_task: Notify::new(),
            clock,
        });
        tokio::spawn(purge_expired(Arc::clone(&shared)));
        MemoryKv {
            _shutdown: Shutdown(Arc::clone(&shared)),
            shared,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, RepoError> {
        self.shared.state.lock().map_err(|_| RepoError::Poisoned)
    }

    fn now(&self) -> Instant {
        self.shared.clock.instant()
    }

    /// Sets a key and wakes the purge task if it must now wake sooner.
    fn set_value(&self, key: &str, value: Value, expires_at: Instant) -> Result<(), RepoError> {
        let wake = self.lock()?.set(key.to_string(), value, expires_at);
        if wake {
            self.shared.purge_task.notify_one();
        }
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shared.state.lock().unwrap().entries.len()
    }
}

async fn purge_expired(shared: Arc<Shared>) {
    loop {
        let now = shared.clock.instant();
        let next = {
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            if state.shutdown {
                return;
            }
            state.purge(now)
        };
        match next {
            Some(when) => {
                let wait = when.saturating_duration_since(now);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.purge_task.notified() => {}
                }
            }
            None => shared.purge_task.notified().await,
        }
    }
}

#[async_trait]
impl KeyValue for MemoryKv {
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError> {
        self.set_value(key, Value::Text(value.to_string()), self.now() + ttl)
    }

    async fn get(&self, key: &str) -> Result<Option<String>, RepoError> {
        Ok(match self.lock()?.live(key, self.now()) {
            Some(Entry {
                value: Value::Text(text),
                ..
            }) => Some(text.clone()),
            _ => None,
        })
    }

    async fn take(&self, key: &str) -> Result<Option<String>, RepoError> {
        let now = self.now();
        let mut state = self.lock()?;
        let live = state.live(key, now).is_some();
        match state.remove(key) {
            Some(Entry {
                value: Value::Text(text),
                ..
            }) if live => Ok(Some(text)),
            _ => Ok(None),
        }
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<Counter, RepoError> {
        let now = self.now();
        // Read and write under one lock: concurrent increments are all counted.
        let mut state = self.lock()?;
        let (count, expires_at) = match state.live(key, now) {
            Some(Entry {
                value: Value::Count(n),
                expires_at,
            }) => (n + 1, *expires_at),
            _ => (1, now + window),
        };
        let wake = state.set(key.to_string(), Value::Count(count), expires_at);
        drop(state);
        if wake {
            self.shared.purge_task.notify_one();
        }
        Ok(Counter {
            count,
            resets_in: expires_at.saturating_duration_since(now),
        })
    }

    async fn counter(&self, key: &str) -> Result<Option<Counter>, RepoError> {
        let now = self.now();
        Ok(match self.lock()?.live(key, now) {
            Some(Entry {
                value: Value::Count(count),
                expires_at,
            }) => Some(Counter {
                count: *count,
                resets_in: expires_at.saturating_duration_since(now),
            }),
            _ => None,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        self.lock()?.remove(key);
        Ok(())
    }

    async fn add_member(&self, key: &str, member: &str, ttl: Duration) -> Result<(), RepoError> {
        let now = self.now();
        let mut state = self.lock()?;
        let (mut members, expires_at) = match state.live(key, now) {
            Some(Entry {
                value: Value::Members(members),
                expires_at,
            }) => (members.clone(), (*expires_at).max(now + ttl)),
            _ => (HashSet::new(), now + ttl),
        };
        members.insert(member.to_string());
        let wake = state.set(key.to_string(), Value::Members(members), expires_at);
        drop(state);
        if wake {
            self.shared.purge_task.notify_one();
        }
        Ok(())
    }

    async fn take_members(&self, key: &str) -> Result<Vec<String>, RepoError> {
        let now = self.now();
        let mut state = self.lock()?;
        let live = state.live(key, now).is_some();
        match state.remove(key) {
            Some(Entry {
                value: Value::Members(members),
                ..
            }) if live => Ok(members.into_iter().collect()),
            _ => Ok(Vec::new()),
        }
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
    use crate::clock::ManualClock;

    #[tokio::test(start_paused = true)]
    async fn expired_keys_are_purged_by_the_background_task() {
        let clock = Arc::new(ManualClock::new());
        let kv = MemoryKv::new(clock.clone());
        kv.set("k", "v", Duration::from_secs(10)).await.unwrap();
        assert_eq!(kv.len(), 1);
        clock.advance(Duration::from_secs(11));
        assert_eq!(
            kv.get("k").await.unwrap(),
            None,
            "reads never see expired keys"
        );
        // The purge task wakes at the deadline it computed, and finds the key due.
        tokio::time::sleep(Duration::from_secs(11)).await;
        tokio::task::yield_now().await;
        assert_eq!(kv.len(), 0);
    }
}
