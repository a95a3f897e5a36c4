//! Purges that keep the tables small — expired refresh tokens, old outbox rows — in
//! bounded batches, so each statement stays short however large the tables have grown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::repo::{Outbox, RefreshTokens, RepoError};

/// How often expired refresh tokens and old outbox rows are purged.
const EVERY: Duration = Duration::from_secs(3600);
/// How long sent emails stay in the outbox (to answer "did it go out?").
const KEEP_SENT_EMAILS: Duration = Duration::from_secs(7 * 86_400);
/// How long failed emails stay in the outbox, for investigation.
const KEEP_FAILED_EMAILS: Duration = Duration::from_secs(30 * 86_400);
/// Rows one purge statement deletes at most.
const BATCH: usize = 1000;
/// The pause between two batches, so that a large purge leaves the database to requests.
const BREATHER: Duration = Duration::from_millis(20);

/// Purges now and every [`EVERY`], until `stop`.
pub(super) async fn run(
    refresh_tokens: Arc<dyn RefreshTokens>,
    outbox: Arc<dyn Outbox>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let now = clock.now();
        let tokens = in_batches(&stop, || refresh_tokens.purge_expired(now, BATCH)).await;
        match tokens {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired refresh tokens purged"),
            Err(e) => tracing::warn!(error = %e, "refresh token purge failed"),
        }
        let (sent, failed) = (now - KEEP_SENT_EMAILS, now - KEEP_FAILED_EMAILS);
        match in_batches(&stop, || outbox.purge(sent, failed, BATCH)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "old outbox rows purged"),
            Err(e) => tracing::warn!(error = %e, "outbox purge failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Runs `batch` until it purges less than a full batch (or authd stops); the total.
async fn in_batches<F, Fut>(stop: &watch::Receiver<bool>, batch: F) -> Result<u64, RepoError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u64, RepoError>>,
{
    let mut total = 0;
    loop {
        let purged = batch().await?;
        total += purged;
        if purged < BATCH as u64 || *stop.borrow() {
            return Ok(total);
        }
        tokio::time::sleep(BREATHER).await;
    }
}
