//! PostgreSQL and Redis for the tests: found where they already run, or started as
//! throwaway instances from the system's binaries (installed with apt-get when missing and
//! running as root). When none of that works, tests fail with one sentence saying what is
//! missing.
//!
//! Throwaway instances live in a temporary directory and are watched by a small shell
//! loop that stops them and deletes the directory once the test process is gone, so they
//! never outlive the test run, even when it panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where the shared test services listen.
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> Result<(), String> {
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

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Installs Debian packages once per test run, when running as root.
fn apt_install(packages: &[&str]) -> Result<(), String> {
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
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// The directory holding `pg_ctl` and `initdb`, newest version first.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists() && p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().or_else(|| {
        let out = Command::new("sh")
            .args(["-c", "command -v pg_ctl"])
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        path.parent()
            .filter(|d| d.join("initdb").exists())
            .map(Path::to_path_buf)
    })
}

fn redis_server() -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    Redis,
}

/// A PostgreSQL or Redis server this test run started and may stop and start again.
pub struct Owned {
    kind: Kind,
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// PostgreSQL refuses to run as root: as root, it runs as the `postgres` user.
    as_user: Option<&'static str>,
    /// Serve TLS only (Redis) or also (PostgreSQL), with `testdata/tls/server.pem`.
    tls: bool,
}

impl Owned {
    /// Starts a throwaway PostgreSQL (installing it when missing and possible).
    pub fn postgres() -> Result<Owned, String> {
        Owned::postgres_with(false)
    }

    /// A throwaway PostgreSQL that also accepts TLS, with the test CA's server certificate.
    pub fn postgres_tls() -> Result<Owned, String> {
        Owned::postgres_with(true)
    }

    /// A throwaway Redis that speaks only TLS, with the test CA's server certificate.
    pub fn redis_tls() -> Result<Owned, String> {
        Owned::redis_with(true)
    }

    fn postgres_with(tls: bool) -> Result<Owned, String> {
        let bin = match postgres_bin_dir() {
            Some(b) => b,
            None => {
                apt_install(&["postgresql"]).map_err(|why| format!(
                    "The tests need PostgreSQL: none answers on 127.0.0.1:5432, no PostgreSQL binaries are installed, and installing them failed ({why}); install PostgreSQL or set AUTHD_TEST_POSTGRES to a superuser URL."
                ))?;
                postgres_bin_dir()
                    .ok_or("The tests need PostgreSQL, and apt-get installed no pg_ctl.")?
            }
        };
        let as_user = is_root().then_some("postgres");
        let owned = Owned {
            kind: Kind::Postgres,
            port: free_port(),
            dir: temp_dir("pg"),
            bin,
            as_user,
            tls,
        };
        let data = owned.dir.join("data");
        if tls {
            owned.copy_certificates()?;
        }
        if let Some(user) = as_user {
            run(Command::new("chown").arg(user).arg(&owned.dir)).map_err(|e| {
                format!("The tests need PostgreSQL and cannot prepare its directory: {e}")
            })?;
        }
        run(owned
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data))
        .map_err(|e| format!("The tests need PostgreSQL and initdb failed: {e}"))?;
        owned.watch();
        owned.start()?;
        Ok(owned)
    }

    /// Starts a throwaway Redis (installing it when missing and possible).
    pub fn redis() -> Result<Owned, String> {
        Owned::redis_with(false)
    }

    fn redis_with(tls: bool) -> Result<Owned, String> {
        let bin = match redis_server() {
            Some(b) => b,
            None => {
                apt_install(&["redis-server"]).map_err(|why| format!(
                    "The tests need Redis: none answers on 127.0.0.1:6379, redis-server is not installed, and installing it failed ({why}); install Redis or set AUTHD_TEST_REDIS to its URL."
                ))?;
                redis_server()
                    .ok_or("The tests need Redis, and apt-get installed no redis-server.")?
            }
        };
        let owned = Owned {
            kind: Kind::Redis,
            port: free_port(),
            dir: temp_dir("redis"),
            bin,
            as_user: None,
            tls,
        };
        if tls {
            owned.copy_certificates()?;
        }
        owned.watch();
        owned.start()?;
        Ok(owned)
    }

    pub fn url(&self) -> String {
        match (self.kind, self.tls) {
            (Kind::Postgres, _) => format!("postgres://postgres@127.0.0.1:{}", self.port),
            (Kind::Redis, false) => format!("redis://127.0.0.1:{}", self.port),
            (Kind::Redis, true) => format!("rediss://localhost:{}", self.port),
        }
    }

    /// The server certificate and key, readable only by the server's user.
    fn copy_certificates(&self) -> Result<(), String> {
        let tls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/tls");
        for file in ["server.pem", "server.key"] {
            std::fs::copy(tls.join(file), self.dir.join(file))
                .map_err(|e| format!("copy {file}: {e}"))?;
        }
        run(Command::new("chmod")
            .arg("600")
            .arg(self.dir.join("server.key")))?;
        if let Some(user) = self.as_user {
            run(Command::new("chown")
                .arg(user)
                .arg(self.dir.join("server.key"))
                .arg(self.dir.join("server.pem")))?;
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid", user, "--regid", user, "--clear-groups", "--"])
                    .arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// (Re)starts the server on its port and waits until it answers.
    pub fn start(&self) -> Result<(), String> {
        match self.kind {
            Kind::Postgres => {
                let mut options = format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
                    self.port,
                    self.dir.display()
                );
                if self.tls {
                    let d = self.dir.display();
                    options.push_str(&format!(
                        " -c ssl=on -c ssl_cert_file={d}/server.pem -c ssl_key_file={d}/server.key"
                    ));
                }
                run(self
                    .command("pg_ctl")
                    .arg("start")
                    .arg("-w")
                    .arg("-D")
                    .arg(self.dir.join("data"))
                    .arg("-l")
                    .arg(self.dir.join("log"))
                    .arg("-o")
                    .arg(options)
                    .stdout(Stdio::null()))
                .map_err(|e| format!("The tests need PostgreSQL and it did not start: {e}"))?;
            }
            Kind::Redis => {
                let port = self.port.to_string();
                let cert = self.dir.join("server.pem").display().to_string();
                let key = self.dir.join("server.key").display().to_string();
                let listen: Vec<&str> = if self.tls {
                    let tls = [
                        "--tls-port",
                        &port,
                        "--tls-cert-file",
                        &cert,
                        "--tls-key-file",
                        &key,
                    ];
                    [
                        ["--port", "0"].as_slice(),
                        &tls,
                        &["--tls-auth-clients", "no"],
                    ]
                    .concat()
                } else {
                    vec!["--port", &port]
                };
                run(Command::new(&self.bin)
                    .args(listen)
                    .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .args(["--daemonize", "yes", "--pidfile"])
                    .arg(self.dir.join("redis.pid"))
                    .arg("--dir")
                    .arg(&self.dir)
                    .arg("--logfile")
                    .arg(self.dir.join("log")))
                .map_err(|e| format!("The tests need Redis and it did not start: {e}"))?;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let up = match (self.kind, self.tls) {
                (Kind::Postgres, _) => postgres_answers(&self.url()),
                (Kind::Redis, false) => redis_answers(&self.url()),
                (Kind::Redis, true) => {
                    std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                }
            };
            if up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "a throwaway server in {} did not answer within 20 s",
            self.dir.display()
        ))
    }

    /// Stops the server abruptly, as a crash would (PostgreSQL: immediate shutdown, which
    /// also waits for its backends to go, so a restart finds no leftover shared memory).
    pub fn stop(&self) {
        if self.kind == Kind::Postgres {
            let _ = self
                .command("pg_ctl")
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(self.dir.join("data"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let pid_file = match self.kind {
            Kind::Postgres => self.dir.join("data/postmaster.pid"),
            Kind::Redis => self.dir.join("redis.pid"),
        };
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
        {
            // The shell's own kill: /usr/bin/kill (procps) may not be installed.
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -9 {}", pid.trim())])
                .status();
            // Wait until the port is free again so a restart can bind it.
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = std::fs::remove_file(&pid_file);
        }
    }

    /// Stops the server and removes its directory once this test process has exited.
    fn watch(&self) {
        let pid_file = match self.kind {
            Kind::Postgres => self.dir.join("data/postmaster.pid"),
            Kind::Redis => self.dir.join("redis.pid"),
        };
        // PostgreSQL gets an immediate shutdown first, which also frees its shared memory.
        let pg_stop = match (self.kind, self.as_user) {
            (Kind::Postgres, Some(user)) => format!(
                "setpriv --reuid {user} --regid {user} --clear-groups -- '{}' stop -m immediate -D '{}/data' >/dev/null 2>&1;",
                self.bin.join("pg_ctl").display(),
                self.dir.display()
            ),
            (Kind::Postgres, None) => format!(
                "'{}' stop -m immediate -D '{}/data' >/dev/null 2>&1;",
                self.bin.join("pg_ctl").display(),
                self.dir.display()
            ),
            (Kind::Redis, _) => String::new(),
        };
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; {pg_stop} \
             [ -f '{pid}' ] && kill -9 $(head -n 1 '{pid}') 2>/dev/null; sleep 0.5; rm -rf '{dir}'",
            parent = std::process::id(),
            pid = pid_file.display(),
            dir = self.dir.display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "authd-test-{what}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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
    child: Mutex<Option<std::process::Child>>,
}

impl SmtpSink {
    /// A sink on a free port; `reject` refuses every recipient with 550.
    pub fn start(reject: bool) -> SmtpSink {
        let sink = SmtpSink::on(free_port(), reject);
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
            child: Mutex::new(None),
        }
    }

    /// Starts listening and waits until the server is ready.
    pub fn resume(&self) {
        let _ = std::fs::remove_file(self.dir.join("ready"));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if self.reject {
            cmd.arg("--reject-rcpt");
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

/// A free loopback port nobody listens on (yet).
pub fn unused_port() -> u16 {
    free_port()
}

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
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/redis-cluster");
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
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/redis-cluster");
        let _ = Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
