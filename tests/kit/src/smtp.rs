//! A real SMTP server for the email tests: Python's aiosmtpd running `smtp_sink.py`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::system::{apt_install, free_port, temp_dir};

/// Makes sure `python3` can import aiosmtpd: installs it with pip, or with apt-get as root.
fn ensure_aiosmtpd() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let importable = || {
                Command::new("python3")
                    .args(["-c", "import aiosmtpd"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if importable() {
                return Ok(());
            }
            let pip = |extra: &[&str]| {
                Command::new("python3")
                    .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                    .args(extra)
                    .arg("aiosmtpd")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if (pip(&[]) || pip(&["--break-system-packages"])) && importable() {
                return Ok(());
            }
            if apt_install(&["python3", "python3-aiosmtpd"]).is_ok() && importable() {
                return Ok(());
            }
            Err("The email tests need an SMTP server: Python 3 with aiosmtpd could not be found or installed (pip install aiosmtpd, or apt-get install python3-aiosmtpd).".into())
        })
        .clone()
}

/// A real SMTP server (Python's aiosmtpd, see `smtp_sink.py`) that records what it receives.
pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    reject: bool,
    /// Milliseconds each message takes to accept (a slow relay).
    delay_ms: u64,
    child: Mutex<Option<std::process::Child>>,
}

impl SmtpSink {
    /// A sink on a free port; `reject` refuses every recipient with 550.
    pub fn start(reject: bool) -> SmtpSink {
        let sink = SmtpSink::on(free_port(), reject);
        sink.resume();
        sink
    }

    /// A sink that takes `delay_ms` to accept each message, as a relay far away does.
    pub fn slow(delay_ms: u64) -> SmtpSink {
        let mut sink = SmtpSink::on(free_port(), false);
        sink.delay_ms = delay_ms;
        sink.resume();
        sink
    }

    /// A sink on `port`, not yet listening (see [`SmtpSink::resume`]).
    pub fn on(port: u16, reject: bool) -> SmtpSink {
        if let Err(why) = ensure_aiosmtpd() {
            panic!("{why}");
        }
        SmtpSink {
            port,
            dir: temp_dir("smtp"),
            reject,
            delay_ms: 0,
            child: Mutex::new(None),
        }
    }

    /// Starts listening and waits until the server is ready.
    pub fn resume(&self) {
        let _ = std::fs::remove_file(self.dir.join("ready"));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if self.reject {
            cmd.arg("--reject-rcpt");
        }
        if self.delay_ms > 0 {
            cmd.args(["--delay-ms", &self.delay_ms.to_string()]);
        }
        *self.child.lock().unwrap() = Some(cmd.spawn().expect("start the SMTP sink"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.dir.join("ready").exists() {
            assert!(Instant::now() < deadline, "the SMTP sink did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
            .collect()
    }

    /// The recipient of every message received, sorted.
    pub fn recipients(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .messages()
            .iter()
            .map(|m| m["to"][0].as_str().unwrap_or_default().to_string())
            .collect();
        all.sort();
        all
    }

    /// Recipients the server was offered (accepted or refused).
    pub fn attempts(&self) -> usize {
        std::fs::read_to_string(self.dir.join("attempts")).map_or(0, |t| t.lines().count())
    }

    /// Waits up to `limit` for `count` messages; returns all messages.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
