//! The real `authd` binary as a child process, for what only a process shows: its log
//! output, signals and exit status.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{base_config, Storage, TestApp};

pub struct AuthdProcess {
    child: Child,
    pub addr: SocketAddr,
    output: Arc<Mutex<Vec<u8>>>,
}

fn capture(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
}

impl AuthdProcess {
    /// Starts `authd` with the test configuration, `storage` and `overrides`, and waits
    /// until it answers `/healthz`.
    pub async fn start(storage: &Storage, overrides: &[(&str, &str)]) -> AuthdProcess {
        AuthdProcess::spawn(storage, overrides, None).await
    }

    /// Like [`AuthdProcess::start`], under a soft open-file limit of `soft` (the hard one
    /// left as it is), as a service manager would start it.
    pub async fn start_with_soft_nofile(
        storage: &Storage,
        overrides: &[(&str, &str)],
        soft: u64,
    ) -> AuthdProcess {
        AuthdProcess::spawn(storage, overrides, Some(soft)).await
    }

    async fn spawn(
        storage: &Storage,
        overrides: &[(&str, &str)],
        soft_nofile: Option<u64>,
    ) -> AuthdProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut env = base_config();
        env.insert("AUTH_LISTEN".into(), addr.to_string());
        for (k, v) in storage.env() {
            env.insert(k.into(), v);
        }
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        let binary = env!("CARGO_BIN_EXE_authd");
        let mut command = match soft_nofile {
            None => Command::new(binary),
            Some(soft) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -S -n {soft} && exec \"$0\""), binary]);
                sh
            }
        };
        let mut child = command
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start authd");
        let output = Arc::new(Mutex::new(Vec::new()));
        capture(child.stdout.take().unwrap(), output.clone());
        capture(child.stderr.take().unwrap(), output.clone());
        let process = AuthdProcess {
            child,
            addr,
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok()
                && process.client().get("/healthz").await.status == 200
            {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "authd did not start:\n{}",
                process.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client for this process.
    pub fn client(&self) -> TestApp {
        TestApp::external(self.addr)
    }

    /// Everything it wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Kills the process abruptly (SIGKILL), as a crashed machine would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the capture threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "authd did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AuthdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
