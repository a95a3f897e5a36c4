//! Purges that keep the tables small: expired refresh tokens, old outbox rows.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::repo::{Outbox, RefreshTokens};

/// How often expired refresh tokens and old outbox rows are purged.
const EVERY: Duration = Duration::from_secs(3600);
/// How long sent emails stay in the outbox (to answer "did it go out?").
const KEEP_SENT_EMAILS: Duration = Duration::from_secs(7 * 86_400);
/// How long failed emails stay in the outbox, for investigation.
const KEEP_FAILED_EMAILS: Duration = Duration::from_secs(30 * 86_400);

/// Purges now and every [`EVERY`], until `stop`.
pub(super) async fn run(
    refresh_tokens: Arc<dyn RefreshTokens>,
    outbox: Arc<dyn Outbox>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let now = clock.now();
        match refresh_tokens.purge_expired(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired refresh tokens purged"),
            Err(e) => tracing::warn!(error = %e, "refresh token purge failed"),
        }
        match outbox
            .purge(now - KEEP_SENT_EMAILS, now - KEEP_FAILED_EMAILS)
            .await
        {
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
