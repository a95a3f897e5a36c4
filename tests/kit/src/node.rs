//! Node.js packages from npm for tests that drive a real client library (e.g. an OIDC
//! client discovering authd): Node and npm found, or installed with apt-get as root.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use crate::system::{apt_install, run};

/// The oldest Node the scripts are written for (WebCrypto, fetch, top-level await).
const OLDEST_NODE: u32 = 18;

fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&out.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn has_npm() -> bool {
    Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes sure `dir/node_modules` holds `packages` (npm specs such as `jose@6.2.18`), so
/// that a script copied into `dir` can import them. Installs once per `dir` and spec list.
pub fn node_packages(dir: &Path, packages: &[&str]) -> Result<(), String> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if node_major().is_none() || !has_npm() {
        let _ = apt_install(&["nodejs", "npm"]);
    }
    match node_major() {
        Some(major) if major >= OLDEST_NODE && has_npm() => {}
        Some(major) if major < OLDEST_NODE => {
            return Err(format!(
                "This test needs Node.js {OLDEST_NODE} or newer, and found Node.js {major}."
            ))
        }
        _ => {
            return Err("This test needs Node.js and npm, and neither was found nor could be installed (apt-get install nodejs npm).".into())
        }
    }
    let stamp = dir.join(".installed");
    let wanted = packages.join(" ");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("installing {packages:?} from npm for the tests…");
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
        .arg(dir)
        .args(packages))
    .map_err(|e| {
        format!("This test needs {wanted} from npm, and npm could not install them: {e}")
    })?;
    std::fs::write(&stamp, &wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(())
}
