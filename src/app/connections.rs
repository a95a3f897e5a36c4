//! The open connections (SPEC §8): at most `AUTH_MAX_CONNECTIONS_PER_CLIENT` per TCP peer
//! (trusted proxies exempt), and at the total cap the longest-idle connection is asked to
//! close to admit the newcomer, instead of the newcomer waiting for a slot that a client
//! pinging once every few seconds would never free.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use crate::domain::ClientAddr;
use crate::http::client::TrustedProxies;

/// One connection's state, shared by its task and its requests.
pub(super) struct Activity {
    /// Requests being answered on it now.
    busy: AtomicUsize,
    /// When a request last started or ended.
    last: Mutex<Instant>,
    /// It has been asked to close (evicted, or authd is stopping).
    closing: AtomicBool,
    /// Close at once rather than after the request in progress.
    now: AtomicBool,
    /// A request's body is being read (given to the router through the request).
    pub reading: Arc<AtomicBool>,
    /// Wakes the connection's task to close it.
    pub close: Notify,
}

impl Activity {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    pub fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Asked to close without finishing the request in progress.
    pub fn close_now(&self) -> bool {
        self.now.load(Ordering::Acquire)
    }

    /// Whom to evict first: idle connections (nothing lost), then those still reading a
    /// request's body (a client trickling it), then those being answered — each group
    /// oldest first.
    fn eviction_order(&self) -> (u8, Instant) {
        let class = if self.is_idle() {
            0
        } else if self.reading.load(Ordering::Acquire) {
            1
        } else {
            2
        };
        (class, self.last())
    }

    /// Marks a request as being answered until the guard is dropped.
    pub fn begin(self: &Arc<Activity>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(Arc::clone(self))
    }
}

/// A request in progress on a connection.
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Entry {
    peer: Option<ClientAddr>,
    activity: Arc<Activity>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    entries: HashMap<u64, Entry>,
    per_peer: HashMap<ClientAddr, usize>,
    /// Entries asked to close that have not closed yet.
    closing: usize,
}

pub(super) struct Connections {
    open: Mutex<Open>,
    max_total: usize,
    max_per_peer: usize,
    proxies: TrustedProxies,
    /// Signalled whenever a connection closes.
    closed: Notify,
}

/// An admitted connection; its place is given back when dropped.
pub(super) struct Ticket {
    id: u64,
    pub activity: Arc<Activity>,
    connections: Arc<Connections>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The peer holds its whole share.
    PeerFull,
    /// Too many connections are still closing to take one more.
    Saturated,
}

impl Connections {
    pub fn new(max_total: usize, max_per_peer: usize, proxies: TrustedProxies) -> Connections {
        Connections {
            open: Mutex::new(Open::default()),
            max_total: max_total.max(1),
            max_per_peer: max_per_peer.max(1),
            proxies,
            closed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `peer`. At the total cap, the connection idle longest (or,
    /// if none is idle, the one whose request started longest ago, after that request) is
    /// asked to close to make room.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refused> {
        // Trusted proxies carry many clients: their connections are not counted per peer.
        let counted = (!self.proxies.contains(peer)).then(|| ClientAddr::of(peer));
        let mut open = self.lock();
        if let Some(peer) = counted {
            if open.per_peer.get(&peer).copied().unwrap_or(0) >= self.max_per_peer {
                return Err(Refused::PeerFull);
            }
        }
        if open.entries.len() - open.closing >= self.max_total {
            // A little room for connections that were asked to close and have not yet.
            if open.closing >= self.max_total / 16 + 16 {
                return Err(Refused::Saturated);
            }
            let victim = open
                .entries
                .values()
                .filter(|e| !e.activity.closing.load(Ordering::Acquire))
                .min_by_key(|e| e.activity.eviction_order())
                .map(|e| Arc::clone(&e.activity));
            if let Some(victim) = victim {
                // One trickling its body gives nothing up by being cut off at once.
                if victim.eviction_order().0 == 1 {
                    victim.now.store(true, Ordering::Release);
                }
                victim.closing.store(true, Ordering::Release);
                victim.close.notify_one();
                open.closing += 1;
            }
        }
        open.next_id += 1;
        let id = open.next_id;
        let activity = Arc::new(Activity {
            busy: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
            closing: AtomicBool::new(false),
            now: AtomicBool::new(false),
            reading: Arc::new(AtomicBool::new(false)),
            close: Notify::new(),
        });
        if let Some(peer) = counted {
            *open.per_peer.entry(peer).or_default() += 1;
        }
        open.entries.insert(
            id,
            Entry {
                peer: counted,
                activity: Arc::clone(&activity),
            },
        );
        Ok(Ticket {
            id,
            activity,
            connections: Arc::clone(self),
        })
    }

    /// Asks every connection to close (authd is stopping).
    pub fn close_all(&self) {
        let mut open = self.lock();
        let mut newly = 0;
        for entry in open.entries.values() {
            if !entry.activity.closing.swap(true, Ordering::AcqRel) {
                newly += 1;
            }
            entry.activity.close.notify_one();
        }
        open.closing += newly;
    }

    /// Waits until no connection is open.
    pub async fn drained(&self) {
        loop {
            let closed = self.closed.notified();
            if self.lock().entries.is_empty() {
                return;
            }
            closed.await;
        }
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        if let Some(entry) = open.entries.remove(&self.id) {
            if entry.activity.closing.load(Ordering::Acquire) {
                open.closing -= 1;
            }
            if let Some(peer) = entry.peer {
                if let Some(n) = open.per_peer.get_mut(&peer) {
                    *n -= 1;
                    if *n == 0 {
                        open.per_peer.remove(&peer);
                    }
                }
            }
        }
        drop(open);
        self.connections.closed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_peer_gets_its_share_and_no_more() {
        let c = Arc::new(Connections::new(10, 2, TrustedProxies::default()));
        let _a = c.admit(ip("10.0.0.1")).unwrap();
        let _b = c.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(c.admit(ip("10.0.0.1")).err(), Some(Refused::PeerFull));
        // IPv6 peers share by /64.
        let _v6 = c.admit(ip("2001:db8::1")).unwrap();
        let _v6b = c.admit(ip("2001:db8::2")).unwrap();
        assert_eq!(c.admit(ip("2001:db8::3")).err(), Some(Refused::PeerFull));
        assert!(c.admit(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn trusted_proxies_are_not_capped_per_peer() {
        let proxies = TrustedProxies::new(vec![TrustedProxies::parse("10.0.0.1").unwrap()]);
        let c = Arc::new(Connections::new(10, 1, proxies));
        let held: Vec<_> = (0..5).map(|_| c.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(held.len(), 5);
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_is_asked_to_close() {
        let c = Arc::new(Connections::new(2, 10, TrustedProxies::default()));
        let oldest = c.admit(ip("10.0.0.1")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let busy = c.admit(ip("10.0.0.2")).unwrap();
        let request = busy.activity.begin();
        let newcomer = c.admit(ip("10.0.0.3")).unwrap();
        assert!(
            oldest.activity.closing.load(Ordering::Acquire),
            "the idle one goes"
        );
        assert!(!busy.activity.closing.load(Ordering::Acquire));
        assert!(!newcomer.activity.closing.load(Ordering::Acquire));
        drop(oldest);
        // Nobody idle: the busy one is asked to close after its request.
        let _next = c.admit(ip("10.0.0.4")).unwrap();
        assert!(
            busy.activity.closing.load(Ordering::Acquire)
                || newcomer.activity.closing.load(Ordering::Acquire)
        );
        drop(request);
        assert_eq!(c.count(), 3);
    }

    #[test]
    fn a_connection_trickling_its_body_goes_before_one_being_answered_and_at_once() {
        let c = Arc::new(Connections::new(2, 10, TrustedProxies::default()));
        let answered = c.admit(ip("10.0.0.1")).unwrap();
        let _answering = answered.activity.begin();
        let trickling = c.admit(ip("10.0.0.2")).unwrap();
        let _reading = trickling.activity.begin();
        trickling.activity.reading.store(true, Ordering::Release);
        let _newcomer = c.admit(ip("10.0.0.3")).unwrap();
        assert!(trickling.activity.closing.load(Ordering::Acquire));
        assert!(trickling.activity.close_now());
        assert!(!answered.activity.closing.load(Ordering::Acquire));
    }
}
