//! A PostgreSQL proxy that counts round trips: every `Sync` (the end of an extended-query
//! exchange) and every simple `Query` a client sends is one trip to the server and back.
//! For pinning how many statements a path costs without instrumenting authd. It can also
//! cut the connections open at a moment, as a failover leaves them half-open: they stay
//! open and carry nothing more, while new connections work. Or hold them: they carry
//! nothing until released, then deliver what was held, as a congested network does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The request codes of the untyped messages a session may start with (SSL, GSSAPI).
const NEGOTIATION_CODES: [u32; 2] = [80_877_103, 80_877_104];

pub struct PgProxy {
    /// A server URL without a database, like the one it stands in front of.
    pub url: String,
    round_trips: Arc<AtomicU64>,
    /// Raised by each cut: a connection opened before it carries nothing more.
    cuts: Arc<AtomicU64>,
    /// Raised by each hold: the connections opened before it wait while it lasts.
    holds: Arc<AtomicU64>,
    /// The hold in force (its number), 0 when none.
    held: Arc<watch::Sender<u64>>,
    /// Messages waiting for the hold's release.
    waiting: Arc<AtomicU64>,
}

impl PgProxy {
    /// Proxies to the server of `upstream` (`postgres://user@host:port`).
    pub async fn start(upstream: &str) -> PgProxy {
        let (user, address) = upstream
            .trim_start_matches("postgres://")
            .split_once('@')
            .expect("a postgres://user@host:port URL");
        let address = address.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("postgres://{user}@{}", listener.local_addr().unwrap());
        let round_trips = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let holds = Arc::new(AtomicU64::new(0));
        let held = Arc::new(watch::Sender::new(0));
        let waiting = Arc::new(AtomicU64::new(0));
        let (counter, cut) = (Arc::clone(&round_trips), Arc::clone(&cuts));
        let (hold, in_force, waits) = (Arc::clone(&holds), Arc::clone(&held), Arc::clone(&waiting));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (address, counter) = (address.clone(), Arc::clone(&counter));
                let life = Life {
                    cuts: Arc::clone(&cut),
                    born: cut.load(Ordering::SeqCst),
                    held: in_force.subscribe(),
                    born_holds: hold.load(Ordering::SeqCst),
                    waiting: Arc::clone(&waits),
                };
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&address).await {
                        relay(client, server, counter, life).await;
                    }
                });
            }
        });
        PgProxy {
            url,
            round_trips,
            cuts,
            holds,
            held,
            waiting,
        }
    }

    /// `database_url` (a URL on the proxied server) as reached through the proxy.
    pub fn in_front_of(&self, database_url: &str) -> String {
        let name = database_url.rsplit('/').next().unwrap_or_default();
        format!("{}/{name}", self.url)
    }

    /// From now on, the connections open now carry nothing in either direction, yet stay
    /// open: what a client sees of a half-open connection.
    pub fn cut_open_connections(&self) {
        self.cuts.fetch_add(1, Ordering::SeqCst);
    }

    /// From now on until [`PgProxy::release`], the connections open now carry nothing in
    /// either direction; what is sent meanwhile waits, and is delivered on release.
    pub fn hold_open_connections(&self) {
        let hold = self.holds.fetch_add(1, Ordering::SeqCst) + 1;
        self.held.send_replace(hold);
    }

    /// Ends the hold: what it held back is delivered, in order. Returns once every held
    /// message is on its way.
    pub async fn release(&self) {
        self.held.send_replace(0);
        while self.waiting.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Round trips sent through the proxy so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::SeqCst)
    }
}

/// Whether a connection has been cut, or is held, since it was opened.
#[derive(Clone)]
struct Life {
    cuts: Arc<AtomicU64>,
    born: u64,
    held: watch::Receiver<u64>,
    born_holds: u64,
    /// Messages waiting for a hold's release, over all connections.
    waiting: Arc<AtomicU64>,
}

impl Life {
    /// Never returns once the connection is cut: the halves it holds stay open, silent.
    /// While a hold made after the connection opened is in force, waits for its release.
    async fn go_on(&mut self) {
        self.unless_cut().await;
        if self.is_held() {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            while self.is_held() && self.held.changed().await.is_ok() {}
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.unless_cut().await;
        }
    }

    async fn unless_cut(&self) {
        if self.cuts.load(Ordering::SeqCst) != self.born {
            std::future::pending::<()>().await;
        }
    }

    fn is_held(&mut self) -> bool {
        let hold = *self.held.borrow_and_update();
        hold != 0 && hold > self.born_holds
    }
}

async fn relay(client: TcpStream, server: TcpStream, round_trips: Arc<AtomicU64>, mut life: Life) {
    // Messages are relayed as they come: Nagle would hold each back for a delayed ACK.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let mut answers = life.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match from_server.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            answers.go_on().await;
            if to_client.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut startup = true;
    loop {
        // Startup-phase messages have no type byte; every later one does.
        let mut kind = [0u8; 1];
        if !startup && from_client.read_exact(&mut kind).await.is_err() {
            return;
        }
        let mut length = [0u8; 4];
        if from_client.read_exact(&mut length).await.is_err() {
            return;
        }
        let mut rest = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
        if from_client.read_exact(&mut rest).await.is_err() {
            return;
        }
        if startup {
            let code = rest
                .get(..4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            startup = code.is_some_and(|c| NEGOTIATION_CODES.contains(&c));
        } else if matches!(kind[0], b'S' | b'Q') {
            round_trips.fetch_add(1, Ordering::SeqCst);
        }
        let frame = if kind[0] == 0 {
            [&length[..], &rest].concat()
        } else {
            [&kind[..], &length[..], &rest].concat()
        };
        life.go_on().await;
        if to_server.write_all(&frame).await.is_err() {
            return;
        }
    }
}
