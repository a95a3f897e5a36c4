//! What `/readyz` and `/metrics` report about the process and its dependencies.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::hasher::Hasher;
use crate::metrics::Gauges;
use crate::repo::{Dependency, Outbox};

/// How long a readiness check or a gauge waits for each dependency.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Each dependency by name, and whether it answered.
pub struct Readiness {
    pub checks: Vec<(&'static str, bool)>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }

    /// The names of the dependencies that did not answer.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| *name)
            .collect()
    }
}

pub struct Health {
    dependencies: Vec<Arc<dyn Dependency>>,
    outbox: Arc<dyn Outbox>,
    hasher: Arc<Hasher>,
    clock: Arc<dyn Clock>,
}

impl Health {
    pub fn new(
        dependencies: Vec<Arc<dyn Dependency>>,
        outbox: Arc<dyn Outbox>,
        hasher: Arc<Hasher>,
        clock: Arc<dyn Clock>,
    ) -> Health {
        Health {
            dependencies,
            outbox,
            hasher,
            clock,
        }
    }

    /// Pings every dependency, concurrently: one slow dependency costs one timeout, not n.
    pub async fn readiness(&self) -> Readiness {
        let checks: Vec<_> = self
            .dependencies
            .iter()
            .map(|dep| {
                let dep = Arc::clone(dep);
                let span = tracing::Span::current();
                tokio::spawn(tracing::Instrument::instrument(
                    async move {
                        match tokio::time::timeout(PING_TIMEOUT, dep.ping()).await {
                            Ok(Ok(())) => true,
                            Ok(Err(cause)) => {
                                tracing::warn!(dependency = dep.name(), %cause, "readiness check failed");
                                false
                            }
                            Err(_) => {
                                tracing::warn!(dependency = dep.name(), "readiness check timed out");
                                false
                            }
                        }
                    },
                    span,
                ))
            })
            .collect();
        let mut report = Vec::with_capacity(checks.len());
        for (dep, check) in self.dependencies.iter().zip(checks) {
            report.push((dep.name(), check.await.unwrap_or(false)));
        }
        Readiness { checks: report }
    }

    /// The values `/metrics` reads at scrape time.
    pub async fn gauges(&self) -> Gauges {
        let backlog = tokio::time::timeout(PING_TIMEOUT, self.outbox.backlog(self.clock.now()));
        Gauges {
            bcrypt_queue: self.hasher.queued(),
            outbox_backlog: backlog.await.ok().and_then(Result::ok),
        }
    }
}
