//! A real NGINX (Debian's package: found, or installed with apt-get as root) running a
//! site configuration — `upstream` and `server` blocks — on its own, in a temporary
//! directory, in the foreground.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::system::{apt_install_without_starting, is_root, temp_dir};

/// `nginx` on the PATH, or where Debian puts it.
fn nginx_binary() -> Option<PathBuf> {
    let answers = |p: &Path| {
        Command::new(p)
            .arg("-v")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ["nginx", "/usr/sbin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| answers(p))
}

pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Runs `site` (what one would include in nginx.conf's `http` block) and waits until
    /// `listen` (a port the site listens on) accepts connections.
    pub fn start(site: &str, listen: u16) -> Result<Nginx, String> {
        let binary = match nginx_binary() {
            Some(b) => b,
            None => {
                apt_install_without_starting(&["nginx"]).map_err(|why| format!(
                    "This test needs NGINX: nginx is not installed and installing it failed ({why}); install Debian's nginx package."
                ))?;
                nginx_binary().ok_or("This test needs NGINX, and apt-get installed no nginx.")?
            }
        };
        let dir = temp_dir("nginx");
        std::fs::write(dir.join("site.conf"), site).map_err(|e| e.to_string())?;
        let d = dir.display();
        // As root, workers would run as `nobody`, who cannot write the temporary directory.
        let user = if is_root() { "user root;" } else { "" };
        let main = format!(
            "{user}
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/site.conf;
}}
"
        );
        std::fs::write(dir.join("nginx.conf"), main).map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut nginx = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok() {
                return Ok(nginx);
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited ({status}): {}", nginx.error_log()));
            }
            if Instant::now() > deadline {
                return Err(format!("nginx did not listen: {}", nginx.error_log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What NGINX logged (warnings and errors).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
