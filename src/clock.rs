//! The time the services and the in-memory stores go by.
//!
//! Everything that compares a moment with a lifetime (refresh-token expiry, the reuse
//! grace, one-time token and rate-limit windows in memory, JWT `iat`/`exp`, outbox due
//! times) asks a [`Clock`] instead of `SystemTime::now()`, so tests move time forward
//! instead of sleeping through a TTL. (Redis keeps its own time: tests that move the clock
//! see TTLs kept in Redis run at the real pace.)

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Wall-clock time: what is stored and compared across processes (expiry dates, JWT
    /// claims, outbox due times).
    fn now(&self) -> SystemTime;

    /// Monotonic time, for lifetimes that only this process keeps (the in-memory store's
    /// TTLs): unaffected when the system clock is set back.
    fn instant(&self) -> Instant;

    /// Whole seconds since the Unix epoch, for JWT claims.
    fn unix_now(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// The operating system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// The system clock plus an offset that only grows: time runs as usual (timeouts and
/// retries behave), and [`ManualClock::advance`] jumps it forward. For tests and the bench.
#[derive(Default)]
pub struct ManualClock {
    /// A std Mutex: held for one addition, never across an `.await`.
    ahead: Mutex<Duration>,
}

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves this clock `by` into the future.
    pub fn advance(&self, by: Duration) {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        *ahead += by;
    }
}

impl ManualClock {
    fn ahead(&self) -> Duration {
        *self.ahead.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.ahead()
    }

    fn instant(&self) -> Instant {
        Instant::now() + self.ahead()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_jumps_forward_and_keeps_running() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now();
        assert!(after.duration_since(before).unwrap() >= Duration::from_secs(3600));
        assert!(clock.unix_now() >= SystemClock.unix_now() + 3599);
        assert!(clock.instant() >= Instant::now() + Duration::from_secs(3599));
    }
}
