//! Small helpers about the machine: ports, commands, packages, temporary directories,
//! and running async code from sync code.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Runs `f` on a private runtime, from sync code that may itself be inside a runtime.
pub fn block_on<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

/// A free loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Installs Debian packages once per test run, when running as root.
pub(crate) fn apt_install(packages: &[&str]) -> Result<(), String> {
    apt_install_with(packages, &[])
}

/// As [`apt_install`], without letting the packages start their services (a web
/// server's would take port 80 and outlive the tests).
pub(crate) fn apt_install_without_starting(packages: &[&str]) -> Result<(), String> {
    // invoke-rc.d starts nothing in runlevel 1.
    apt_install_with(packages, &[("RUNLEVEL", "1")])
}

fn apt_install_with(packages: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    /// `apt-get update` runs once; each package list installs once.
    static UPDATED: Mutex<bool> = Mutex::new(false);
    let mut updated = UPDATED.lock().unwrap();
    if !is_root() || Command::new("apt-get").arg("--version").output().is_err() {
        return Err("not root or no apt-get".into());
    }
    eprintln!("installing {packages:?} with apt-get for the tests…");
    if !*updated {
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        *updated = true;
    }
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .envs(env.iter().copied())
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "authd-test-{what}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
