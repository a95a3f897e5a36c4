//! PostgreSQL and Redis for the tests: found where they already run, or started as
//! throwaway instances ([`Owned`]) from the system's binaries (installed with apt-get when
//! missing and running as root). When none of that works, tests fail with one sentence
//! saying what is missing.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::owned::Owned;
use crate::system::block_on;

/// Where the shared test servers listen.
pub struct Services {
    /// A superuser URL without a database name, e.g. `postgres://postgres@127.0.0.1:5432`.
    pub postgres: String,
    pub redis: String,
}

static SERVICES: OnceLock<Result<Services, String>> = OnceLock::new();
/// Throwaway instances started because nothing was running; kept for the whole run.
static FALLBACKS: Mutex<Vec<Owned>> = Mutex::new(Vec::new());

/// The shared services, found or started on first use.
pub fn services() -> &'static Services {
    match SERVICES.get_or_init(discover) {
        Ok(s) => s,
        Err(why) => panic!("{why}"),
    }
}

fn discover() -> Result<Services, String> {
    let postgres = match std::env::var("AUTHD_TEST_POSTGRES") {
        Ok(url) => url,
        Err(_) if postgres_answers("postgres://postgres@127.0.0.1:5432") => {
            "postgres://postgres@127.0.0.1:5432".into()
        }
        Err(_) => {
            let owned = Owned::postgres()?;
            let url = owned.url();
            FALLBACKS.lock().unwrap().push(owned);
            url
        }
    };
    let redis = match std::env::var("AUTHD_TEST_REDIS") {
        Ok(url) => url,
        Err(_) if redis_answers("redis://127.0.0.1:6379") => "redis://127.0.0.1:6379".into(),
        Err(_) => {
            let owned = Owned::redis()?;
            let url = owned.url();
            FALLBACKS.lock().unwrap().push(owned);
            url
        }
    };
    Ok(Services { postgres, redis })
}

pub fn postgres_answers(base: &str) -> bool {
    let url = format!("{base}/postgres?connect_timeout=2");
    block_on(async move {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client.simple_query("SELECT 1").await.is_ok()
            }
            Err(_) => false,
        }
    })
}

pub fn redis_answers(url: &str) -> bool {
    let url = url.to_string();
    block_on(async move {
        let Ok(client) = redis::Client::open(url) else {
            return false;
        };
        let attempt = async {
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .ok()
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), attempt).await,
            Ok(Some(_))
        )
    })
}
