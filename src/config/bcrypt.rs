//! The bcrypt section: how costly a hash is, and how many may run and wait at once.

use super::source::Reader;

#[derive(Debug, Clone, Copy)]
pub struct BcryptConfig {
    pub cost: u32,
    /// Threads that run bcrypt.
    pub workers: usize,
    /// Checks that may wait for a thread; past it logins are shed with 503.
    pub queue: usize,
}

impl BcryptConfig {
    pub(super) fn read(r: &mut Reader) -> BcryptConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cost = r.number("AUTH_BCRYPT_COST", 12u32, (4, 31));
        let workers = r.number("AUTH_BCRYPT_WORKERS", cores, (1, 1024));
        BcryptConfig {
            cost,
            workers,
            queue: r.number("AUTH_BCRYPT_QUEUE", 32 * workers, (1, 1_000_000)),
        }
    }
}
