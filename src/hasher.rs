//! bcrypt hashing and verification on the bounded CPU pool (SPEC §3).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::cpu_pool::{CpuPool, Lane, PoolError};
use crate::domain::{ClientAddr, Password, PasswordHash};

/// bcrypt operations done so far: what a login costs, counted rather than timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    pub hashes: u64,
    pub verifications: u64,
}

/// Hashes and checks passwords without blocking the async workers.
pub struct Hasher {
    pool: Arc<CpuPool>,
    cost: u32,
    /// Hash of a random password at the configured cost. Checking an unknown email's
    /// password against it costs the same work as a real check, so response time does not
    /// reveal whether an account exists.
    dummy: PasswordHash,
    hashes: AtomicU64,
    verifications: AtomicU64,
}

impl Hasher {
    /// Computes the dummy hash up front (one bcrypt at `cost`).
    /// bcrypt refuses only a cost outside 4..=31, which the configuration rules out.
    pub fn new(pool: Arc<CpuPool>, cost: u32) -> Result<Hasher, bcrypt::BcryptError> {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let dummy = bcrypt::hash(random, cost)?;
        Ok(Hasher {
            pool,
            cost,
            dummy: PasswordHash::from_stored(dummy),
            hashes: AtomicU64::new(0),
            verifications: AtomicU64::new(0),
        })
    }

    /// Hashes `password` for `client`: clients take turns on the bcrypt threads.
    pub async fn hash(
        &self,
        client: ClientAddr,
        password: Password,
    ) -> Result<PasswordHash, PoolError> {
        let cost = self.cost;
        self.hashes.fetch_add(1, Ordering::Relaxed);
        let hashed = self
            .pool
            .run(lane(client), move || bcrypt::hash(password.expose(), cost))
            .await?;
        // bcrypt::hash fails only for a cost outside 4..=31, which config rules out.
        hashed
            .map(PasswordHash::from_stored)
            .map_err(|_| PoolError::Panicked)
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no
    /// account, so both paths cost one bcrypt verification.
    pub async fn verify(
        &self,
        client: ClientAddr,
        password: Password,
        stored: Option<&PasswordHash>,
    ) -> Result<bool, PoolError> {
        let (hash, real) = match stored {
            Some(h) => (h.clone(), true),
            None => (self.dummy.clone(), false),
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = self
            .pool
            .run(lane(client), move || {
                bcrypt::verify(password.expose(), hash.as_str()).unwrap_or(false)
            })
            .await?;
        Ok(real && matched)
    }

    /// Jobs waiting for a bcrypt thread.
    pub fn queued(&self) -> usize {
        self.pool.queued()
    }

    /// The bcrypt work asked of this hasher so far.
    pub fn work(&self) -> Work {
        Work {
            hashes: self.hashes.load(Ordering::Relaxed),
            verifications: self.verifications.load(Ordering::Relaxed),
        }
    }
}

/// The lane of a client's bcrypt jobs.
fn lane(client: ClientAddr) -> Lane {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    Lane(BuildHasherDefault::<DefaultHasher>::default().hash_one(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone() -> ClientAddr {
        ClientAddr::of("127.0.0.1".parse().unwrap())
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_never_match() {
        let hasher = Hasher::new(Arc::new(CpuPool::new("b", 1, 8)), 4).unwrap();
        let hash = hasher
            .hash(someone(), Password::new("correct horse".into()).unwrap())
            .await
            .unwrap();
        assert!(hash.as_str().starts_with("$2"));
        let check = |p: &str| Password::new(p.to_string()).unwrap();
        assert!(hasher
            .verify(someone(), check("correct horse"), Some(&hash))
            .await
            .unwrap());
        assert!(!hasher
            .verify(someone(), check("wrong horse"), Some(&hash))
            .await
            .unwrap());
        assert!(!hasher
            .verify(someone(), check("correct horse"), None)
            .await
            .unwrap());
        assert_eq!(
            hasher.work(),
            Work {
                hashes: 1,
                verifications: 3
            }
        );
    }

    #[tokio::test]
    async fn all_72_bytes_count() {
        let hasher = Hasher::new(Arc::new(CpuPool::new("b", 1, 8)), 4).unwrap();
        let long = "a".repeat(71);
        let hash = hasher
            .hash(someone(), Password::new(format!("{long}b")).unwrap())
            .await
            .unwrap();
        let differs_in_last_byte = Password::new(format!("{long}c")).unwrap();
        assert!(!hasher
            .verify(someone(), differs_in_last_byte, Some(&hash))
            .await
            .unwrap());
    }
}
