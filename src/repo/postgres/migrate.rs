//! Schema migrations: the numbered files of `sql/`, applied in order, each once.
//!
//! A session-level advisory lock serialises replicas that start together: the first applies
//! what is missing, the others wait and then find nothing left to do. The lock lives on a
//! dedicated connection, so it is released even if a migration fails midway.

use std::collections::HashSet;

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{DatabaseUrl, PgError};

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect: {0}")]
    Connect(PgError),
    #[error("migration failed: {0}")]
    Apply(PgError),
}

/// Every migration, in order. Adding a file means adding a line here.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_users.sql",
        include_str!("../../../sql/0001_users.sql"),
    ),
    (
        2,
        "0002_refresh_tokens.sql",
        include_str!("../../../sql/0002_refresh_tokens.sql"),
    ),
    (
        3,
        "0003_outbox.sql",
        include_str!("../../../sql/0003_outbox.sql"),
    ),
    (
        4,
        "0004_outbox_reset_requests.sql",
        include_str!("../../../sql/0004_outbox_reset_requests.sql"),
    ),
    (
        5,
        "0005_housekeeping_indexes.sql",
        include_str!("../../../sql/0005_housekeeping_indexes.sql"),
    ),
    (
        6,
        "0006_outbox_orphans.sql",
        include_str!("../../../sql/0006_outbox_orphans.sql"),
    ),
    (
        7,
        "0007_sessions.sql",
        include_str!("../../../sql/0007_sessions.sql"),
    ),
    (
        8,
        "0008_accounts.sql",
        include_str!("../../../sql/0008_accounts.sql"),
    ),
];

/// An arbitrary constant naming authd's migration lock.
const LOCK_KEY: i64 = 0x0061_7574_6864; // "authd" in ASCII

/// Applies missing migrations; returns the names of those applied now.
pub async fn run(url: &DatabaseUrl) -> Result<Vec<&'static str>, MigrateError> {
    match url.tls() {
        Some(tls) => run_with(url.pg_config(), MakeRustlsConnect::new((**tls).clone())).await,
        None => run_with(url.pg_config(), NoTls).await,
    }
}

async fn run_with<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<Vec<&'static str>, MigrateError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (mut client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| MigrateError::Connect(e.into()))?;
    let connection = tokio::spawn(connection);
    let result = apply(&mut client).await;
    drop(client);
    let _ = connection.await;
    result.map_err(|e| MigrateError::Apply(e.into()))
}

async fn apply(
    client: &mut tokio_postgres::Client,
) -> Result<Vec<&'static str>, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS authd_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let done: HashSet<i32> = client
        .query("SELECT version FROM authd_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO authd_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(migration = name, "migration applied");
        applied.push(*name);
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn migrations_are_numbered_in_order_and_match_their_files() {
        for (i, (version, name, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, i + 1);
            assert!(name.starts_with(&format!("{version:04}_")), "{name}");
            assert!(!sql.trim().is_empty());
        }
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql"))
            .unwrap()
            .count();
        assert_eq!(
            on_disk,
            MIGRATIONS.len(),
            "every file in sql/ must be listed in MIGRATIONS"
        );
    }
}
