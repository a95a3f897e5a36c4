//! A PostgreSQL or Redis server a test run starts itself, and may stop and start again.
//!
//! Throwaway instances live in a temporary directory and are watched by a small shell
//! loop that stops them and deletes the directory once the test process is gone, so they
//! never outlive the test run, even when it panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::{postgres_answers, redis_answers};
use crate::system::{apt_install, free_port, is_root, run, temp_dir};

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

pub(crate) fn redis_server() -> Option<PathBuf> {
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
        let tls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tls");
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
