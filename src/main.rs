//! The `authd` binary: read the configuration, start logging, serve until SIGTERM/SIGINT;
//! and the operator's subcommands (`migrate`, `keygen`, `admin-token`).

#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::process::ExitCode;

use authd::config::{Config, Env, LogConfig, LogFormat};
use authd::{operator, App};
use tracing_subscriber::prelude::*;

const USAGE: &str = "\
usage: authd                     serve (configured by environment variables, see README)
       authd migrate             apply the database migrations in DATABASE_URL and exit
       authd keygen [PATH]       write a new RSA-2048 signing key (PKCS#8 PEM, for
                                 AUTH_SIGNING_KEY) to PATH (mode 0600), or to stdout
       authd admin-token [PATH]  write a new admin secret (for AUTH_ADMIN_TOKEN_FILE) to
                                 PATH (mode 0600), or to stdout
       authd --version           print the version
       authd --help              print this";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let migrate_only = match args.as_slice() {
        [] => false,
        ["migrate"] => true,
        ["keygen", path @ ..] if path.len() <= 1 => {
            return match operator::signing_key_pem() {
                Ok(pem) => emit_secret("signing key", path.first(), &pem),
                Err(e) => {
                    eprintln!("authd keygen: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        ["admin-token", path @ ..] if path.len() <= 1 => {
            return emit_secret("admin secret", path.first(), &operator::admin_secret());
        }
        ["--version"] => {
            println!("authd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        ["--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    let config = match Config::load(&Env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("authd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if migrate_only {
        return runtime.block_on(migrate(&config));
    }
    runtime.block_on(async {
        match App::build(config).await {
            Ok(app) => {
                app.run(shutdown_signal()).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("authd: {e}");
                ExitCode::from(2)
            }
        }
    })
}

/// Writes a secret `what` to a new file at `path` (mode 0600, never over an existing
/// file), or to stdout.
fn emit_secret(what: &str, path: Option<&&str>, contents: &str) -> ExitCode {
    let Some(path) = path else {
        print!("{contents}");
        return ExitCode::SUCCESS;
    };
    match operator::write_secret_file(std::path::Path::new(path), contents) {
        Ok(()) => {
            eprintln!("authd: wrote a new {what} to {path}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("authd: cannot write {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `authd migrate`: applies the schema and exits, for deployments that migrate before
/// rolling out (start-up migrates too, so this is optional).
async fn migrate(config: &Config) -> ExitCode {
    let Some(url) = &config.storage.database else {
        eprintln!("authd: DATABASE_URL is not set: there is no database to migrate");
        return ExitCode::from(2);
    };
    let run = authd::repo::postgres::migrate::run(url);
    match tokio::time::timeout(std::time::Duration::from_secs(30), run).await {
        Ok(Ok(applied)) => {
            tracing::info!(applied = applied.len(), "database is up to date");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("authd: DATABASE_URL: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("authd: DATABASE_URL: PostgreSQL did not answer within 30s");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &LogConfig) {
    let registry = tracing_subscriber::registry().with(config.filter.clone());
    match config.format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json())
            .init(),
        LogFormat::Text => {
            // Colours only for a person at a terminal; files and pipes get plain text.
            let ansi = std::io::stdout().is_terminal();
            registry
                .with(tracing_subscriber::fmt::layer().with_ansi(ansi))
                .init()
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}
