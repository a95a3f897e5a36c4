//! A Redis Cluster for the scale-out tests, started with `.ci/redis-cluster`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::owned::redis_server;
use crate::system::{apt_install, temp_dir};

/// A Redis Cluster (3 masters + 3 replicas) started with `.ci/redis-cluster` for one test,
/// removed when dropped or when the test process exits.
pub struct RedisCluster {
    /// `REDIS_URL` listing every node.
    pub url: String,
    pub base_port: u16,
    dir: PathBuf,
}

impl RedisCluster {
    pub fn start() -> Result<RedisCluster, String> {
        if redis_server().is_none() {
            apt_install(&["redis-server"])
                .map_err(|why| format!("The cluster tests need redis-server ({why})."))?;
        }
        // One cluster starts at a time in this process: otherwise two tests could both find
        // the same ports free before either cluster listens on them.
        static STARTING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let script = workspace_script();
        let dir = temp_dir("cluster");
        // Six consecutive free ports, and their cluster-bus ports (+10000), from a spot that
        // differs between test processes.
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        let offset = (uuid::Uuid::new_v4().as_u128() % 300) as u16;
        let base = (0..300u16)
            .map(|i| 20_000 + ((offset + i) % 300) * 100)
            .find(|b| (0..6).all(|i| free(b + i) && free(b + i + 10_000)))
            .ok_or("no free ports for a Redis Cluster")?;
        let watch = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; '{}' stop '{}'",
            std::process::id(),
            script.display(),
            dir.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &watch])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let out = Command::new("bash")
            .arg(&script)
            .args(["start", &base.to_string()])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run .ci/redis-cluster: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the Redis Cluster did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let url = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("REDIS_URL=").map(String::from))
            .ok_or("the cluster script printed no REDIS_URL")?;
        Ok(RedisCluster {
            url,
            base_port: base,
            dir,
        })
    }

    /// The ports of the current masters.
    pub fn masters(&self) -> Vec<u16> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.base_port.to_string(), "cluster", "nodes"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                l.split(' ')
                    .nth(1)?
                    .split('@')
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Kills the node on `port` abruptly.
    pub fn kill(&self, port: u16) {
        let pid_file = self.dir.join(format!("redis-{port}.pid"));
        if let Ok(pid) = std::fs::read_to_string(pid_file) {
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -9 {}", pid.trim())])
                .status();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let script = workspace_script();
        let _ = Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// `.ci/redis-cluster`, from the workspace root (two levels above this crate).
fn workspace_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/redis-cluster")
}
