//! The monitor task: one long-lived connection to ovsdb-server that keeps a [`Replica`] of the
//! Bridge, Port and Interface tables current from pushed `update` notifications, answers the
//! server's `echo`, and reconnects with exponential backoff. Scrapes read the replica after a
//! barrier (an `echo` round trip), so a change committed before the scrape started is seen.

use super::message::{self, Message};
use super::proto::{self, Framer, ProtoError};
use super::replica::Replica;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Where ovsdb-server listens (`--ovs.db`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbEndpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for DbEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbEndpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            DbEndpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

impl DbEndpoint {
    /// Parses `unix:PATH` or `tcp:HOST:PORT`.
    pub fn parse(s: &str) -> Result<DbEndpoint, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.starts_with('/') {
                return Ok(DbEndpoint::Unix(PathBuf::from(p)));
            }
            return Err(format!("--ovs.db {s:?}: unix: needs an absolute path"));
        }
        if let Some(a) = s.strip_prefix("tcp:") {
            if a.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                return Ok(DbEndpoint::Tcp(a.to_owned()));
            }
            return Err(format!("--ovs.db {s:?}: expected tcp:HOST:PORT"));
        }
        Err(format!(
            "--ovs.db {s:?}: expected unix:PATH or tcp:HOST:PORT"
        ))
    }
}

/// What went wrong with the database connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OvsdbError {
    #[error("ovsdb-server at {endpoint} is not running (no socket)")]
    Absent { endpoint: String },
    #[error("not connected to ovsdb-server at {endpoint}: {reason}")]
    Down { endpoint: String, reason: String },
    #[error("ovsdb-server at {endpoint} did not answer in time")]
    Timeout { endpoint: String },
}

/// Why one connection ended (the text lands in [`State::last_error`] and the log).
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("sending the {what} request failed: {source}")]
    Write {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("sending the {what} request timed out after {after:?} (ovsdb-server not reading)")]
    WriteTimeout { what: &'static str, after: Duration },
    #[error("read failed: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("ovsdb-server sent nothing for {silent:?}, not even a reply to an echo probe: hung?")]
    Hung { silent: Duration },
    #[error("monitor refused: {0}")]
    MonitorRefused(String),
}

/// The state scrapes see.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub connected: bool,
    /// Whether a connection ever succeeded (before that, a missing socket means no OVS here).
    pub ever_connected: bool,
    /// Whether the first connection attempt has finished (scrapes wait for it at start-up).
    pub attempted: bool,
    pub last_error: Option<String>,
    /// Empty while disconnected: no stale rows are ever served.
    pub replica: Arc<Replica>,
    /// How long the last full sync took: from connecting to the monitor's initial rows applied.
    pub last_sync: Option<Duration>,
}

type Barrier = oneshot::Sender<()>;

/// Silence from ovsdb-server after which an `echo` is sent, and again after which the
/// connection is given up (`--ovs.db-probe-interval`). Not shorter: a busy ovsdb-server is
/// silent too (a 30,000-row commit on a loaded 2-core machine kept it quiet for over 10 s), and
/// dropping it makes it resend every row. Scrapes do not depend on it: each fails on its own
/// barrier's deadline.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// The shortest probe interval accepted.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// The longest one write to ovsdb-server may take (a request is a few hundred bytes: only a
/// server that stopped reading fills the socket buffer).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages this large are parsed off the async workers (`block_in_place`).
const BLOCKING_PARSE_BYTES: usize = 1024 * 1024;

/// How the monitor connection behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub probe_interval: Duration,
    pub max_message_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            probe_interval: DEFAULT_PROBE_INTERVAL,
            max_message_bytes: proto::DEFAULT_MAX_MESSAGE,
        }
    }
}

/// A handle on the monitor task.
#[derive(Debug)]
pub struct Handle {
    endpoint: DbEndpoint,
    options: Options,
    state: RwLock<Arc<State>>,
    barriers: mpsc::Sender<Barrier>,
    changed: tokio::sync::Notify,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Handle {
    /// Starts the monitor task on the current tokio runtime, with default [`Options`].
    pub fn spawn(endpoint: DbEndpoint) -> Arc<Handle> {
        Handle::spawn_with(endpoint, Options::default())
    }

    /// Starts the monitor task on the current tokio runtime.
    pub fn spawn_with(endpoint: DbEndpoint, options: Options) -> Arc<Handle> {
        let options = Options {
            probe_interval: options.probe_interval.max(MIN_PROBE_INTERVAL),
            ..options
        };
        let (tx, rx) = mpsc::channel(64);
        let handle = Arc::new(Handle {
            endpoint,
            options,
            state: RwLock::new(Arc::new(State::default())),
            barriers: tx,
            changed: tokio::sync::Notify::new(),
        });
        tokio::spawn(run(Arc::downgrade(&handle), rx));
        handle
    }

    pub fn endpoint(&self) -> &DbEndpoint {
        &self.endpoint
    }

    /// Completes at the next change of state (rows or connection).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The latest state, without waiting.
    pub fn state(&self) -> Arc<State> {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn publish(&self, f: impl FnOnce(&mut State)) {
        let mut guard = match self.state.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Cheap: the replica is behind an Arc (and its tables and rows too).
        let mut next = (**guard).clone();
        f(&mut next);
        next.attempted = true;
        *guard = Arc::new(next);
        drop(guard);
        self.changed.notify_waiters();
    }

    /// The state after every change committed before now has arrived (an `echo` round trip
    /// behind the updates), or an error if the database is not there or not answering.
    pub async fn synced(&self, deadline: Instant) -> Result<Arc<State>, OvsdbError> {
        let endpoint = self.endpoint.to_string();
        // Right after start-up, wait for the first connection attempt to finish.
        let state = loop {
            let changed = self.changed.notified();
            let state = self.state();
            if state.connected || state.attempted {
                break state;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(OvsdbError::Timeout { endpoint });
            }
        };
        if !state.connected {
            return Err(self.not_connected(&state));
        }
        let (tx, rx) = oneshot::channel();
        match tokio::time::timeout_at(deadline, self.barriers.send(tx)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(OvsdbError::Down {
                    endpoint,
                    reason: "monitor task stopped".to_owned(),
                });
            }
            // The monitor task is not taking barriers (64 already queued): not answering.
            Err(_) => return Err(OvsdbError::Timeout { endpoint }),
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(())) => {
                let state = self.state();
                if state.connected {
                    Ok(state)
                } else {
                    Err(self.not_connected(&state))
                }
            }
            Ok(Err(_)) => Err(self.not_connected(&self.state())),
            Err(_) => Err(OvsdbError::Timeout { endpoint }),
        }
    }

    fn not_connected(&self, state: &State) -> OvsdbError {
        let endpoint = self.endpoint.to_string();
        let absent = match &self.endpoint {
            DbEndpoint::Unix(p) => !p.exists(),
            DbEndpoint::Tcp(_) => false,
        };
        if absent && !state.ever_connected {
            OvsdbError::Absent { endpoint }
        } else {
            OvsdbError::Down {
                endpoint,
                reason: state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "connecting".to_owned()),
            }
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connect(endpoint: &DbEndpoint) -> std::io::Result<Box<dyn Stream>> {
    let connect = async {
        match endpoint {
            DbEndpoint::Unix(p) => {
                Ok(Box::new(tokio::net::UnixStream::connect(p).await?) as Box<dyn Stream>)
            }
            DbEndpoint::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a.as_str()).await?;
                s.set_nodelay(true)?;
                Ok(Box::new(s) as Box<dyn Stream>)
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        )),
    }
}

/// Connect, monitor, reconnect; ends when the handle is dropped.
async fn run(handle: std::sync::Weak<Handle>, mut barriers: mpsc::Receiver<Barrier>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(h) = handle.upgrade() else { return };
        let endpoint = h.endpoint.clone();
        let options = h.options;
        drop(h);
        let started = Instant::now();
        let result = match connect(&endpoint).await {
            Ok(stream) => {
                session(
                    &handle,
                    stream,
                    &mut barriers,
                    &mut backoff,
                    options,
                    started,
                )
                .await
            }
            Err(e) => Err(SessionError::Connect(e)),
        };
        let Some(h) = handle.upgrade() else { return };
        let reason = match result {
            Ok(()) => "connection closed by ovsdb-server".to_owned(),
            Err(e) => e.to_string(),
        };
        let was_connected = h.state().connected;
        if was_connected {
            tracing::warn!(endpoint = %endpoint, reason = %reason, "lost ovsdb-server; reconnecting");
        } else {
            tracing::debug!(endpoint = %endpoint, reason = %reason, retry_in = ?backoff, "ovsdb-server not reachable");
        }
        h.publish(|s| {
            s.connected = false;
            s.last_error = Some(reason);
            s.replica = Arc::new(Replica::default());
        });
        drop(h);
        // Wait out the backoff, answering barriers at once (nothing to wait for while down).
        let until = Instant::now() + backoff;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                b = barriers.recv() => match b {
                    Some(tx) => drop(tx),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Writes one request, within [`WRITE_TIMEOUT`].
async fn send(
    stream: &mut Box<dyn Stream>,
    what: &'static str,
    v: &Value,
) -> Result<(), SessionError> {
    let mut bytes = v.to_string().into_bytes();
    bytes.push(b'\n');
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(SessionError::Write { what, source }),
        Err(_) => Err(SessionError::WriteTimeout {
            what,
            after: WRITE_TIMEOUT,
        }),
    }
}

const MONITOR_ID: u64 = 1;

fn decode_message(bytes: &[u8]) -> Result<Message, SessionError> {
    Ok(message::decode(bytes, MONITOR_ID)?)
}

/// Parses a message; a large one with `block_in_place`, so the other tasks on this worker
/// (scrapes, the HTTP server) move to another while it is parsed.
fn decode_maybe_blocking(bytes: &[u8]) -> Result<Message, SessionError> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if bytes.len() >= BLOCKING_PARSE_BYTES && multi_thread {
        tokio::task::block_in_place(|| decode_message(bytes))
    } else {
        decode_message(bytes)
    }
}

/// One connection's life. Returns `Ok` on a clean close, `Err(reason)` otherwise.
async fn session(
    handle: &std::sync::Weak<Handle>,
    mut stream: Box<dyn Stream>,
    barriers: &mut mpsc::Receiver<Barrier>,
    backoff: &mut Duration,
    options: Options,
    started: Instant,
) -> Result<(), SessionError> {
    send(&mut stream, "monitor", &proto::monitor_request(MONITOR_ID)).await?;
    let mut framer = Framer::new(options.max_message_bytes);
    let mut replica = Arc::new(Replica::default());
    let mut waiting: HashMap<String, Barrier> = HashMap::new();
    let mut next_barrier = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut monitoring = false;
    let interval = options.probe_interval;
    // The inactivity probe: anything received proves the server alive; after `interval` of
    // silence an echo goes out, and after another one without anything back, we give up.
    let mut last_received = Instant::now();
    // For the log: when the monitor reply's first byte came, and how long decoding took.
    let mut first_byte: Option<Duration> = None;
    let mut decoding = Duration::ZERO;
    let mut probe_sent: Option<Instant> = None;
    loop {
        let probe_at = probe_sent.unwrap_or(last_received) + interval;
        tokio::select! {
            n = stream.read(&mut buf) => {
                let n = n.map_err(SessionError::Read)?;
                if n == 0 {
                    return Ok(());
                }
                last_received = Instant::now();
                if first_byte.is_none() {
                    first_byte = Some(started.elapsed());
                }
                probe_sent = None;
                framer.push(&buf[..n]);
                while let Some(bytes) = framer.next_slice()? {
                    let t = Instant::now();
                    let msg = decode_maybe_blocking(bytes)?;
                    if !monitoring {
                        decoding += t.elapsed();
                    }
                    match msg {
                        Message::MonitorRefused(error) => {
                            return Err(SessionError::MonitorRefused(error));
                        }
                        Message::Monitor(changes) => {
                            Arc::make_mut(&mut replica).apply_changes(changes);
                            monitoring = true;
                            *backoff = BACKOFF_MIN;
                            let Some(h) = handle.upgrade() else { return Ok(()) };
                            let r = replica.clone();
                            let took = started.elapsed();
                            h.publish(|s| {
                                s.connected = true;
                                s.ever_connected = true;
                                s.last_error = None;
                                s.replica = r;
                                s.last_sync = Some(took);
                            });
                            tracing::info!(endpoint = %h.endpoint, bridges = replica.bridges.len(),
                                interfaces = replica.interfaces.len(), sync = ?took,
                                first_byte = ?first_byte, decoding = ?decoding, "monitoring ovsdb-server");
                        }
                        Message::Update(changes) => {
                            Arc::make_mut(&mut replica).apply_changes(changes);
                            let Some(h) = handle.upgrade() else { return Ok(()) };
                            let r = replica.clone();
                            h.publish(|s| s.replica = r);
                        }
                        Message::Reply(id) => {
                            if let Some(tx) = id.as_str().and_then(|k| waiting.remove(k)) {
                                let _ = tx.send(());
                            }
                        }
                        Message::Echo { id, params } => {
                            send(&mut stream, "echo reply", &proto::echo_reply(id, params)).await?;
                        }
                        Message::Other { method } => {
                            tracing::debug!(?method, "ignoring ovsdb message");
                        }
                    }
                }
            }
            b = barriers.recv() => {
                let Some(tx) = b else { return Ok(()) };
                if !monitoring {
                    drop(tx);
                    continue;
                }
                next_barrier += 1;
                let id = format!("barrier-{next_barrier}");
                send(&mut stream, "echo (barrier)", &proto::echo_request(&id)).await?;
                waiting.insert(id, tx);
            }
            () = tokio::time::sleep_until(probe_at) => {
                if probe_sent.is_some() {
                    return Err(SessionError::Hung { silent: last_received.elapsed() });
                }
                send(&mut stream, "echo (inactivity probe)", &proto::echo_request("echo")).await?;
                probe_sent = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            DbEndpoint::parse("unix:/run/openvswitch/db.sock"),
            Ok(DbEndpoint::Unix("/run/openvswitch/db.sock".into()))
        );
        assert_eq!(
            DbEndpoint::parse("tcp:127.0.0.1:6640"),
            Ok(DbEndpoint::Tcp("127.0.0.1:6640".into()))
        );
        for bad in ["unix:db.sock", "tcp:host", "ssl:1.2.3.4:6640", "db.sock"] {
            assert!(DbEndpoint::parse(bad).is_err(), "{bad}");
        }
    }

    /// A fake ovsdb-server: sends the initial rows, then an update, answers echo.
    #[tokio::test]
    async fn monitors_updates_and_barriers() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = dir.path().join("db.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap_or_else(|e| panic!("{e}"));
        let server = tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut framer = Framer::default();
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok(n) = s.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                framer.push(&buf[..n]);
                while let Ok(Some(v)) = framer.next_value() {
                    let reply = match v["method"].as_str() {
                        Some("monitor") => {
                            serde_json::json!({"id": v["id"], "error": null, "result": {
                                "Bridge": {"b": {"new": {"name": "br0", "ports": ["uuid", "p"]}}},
                                "Port": {"p": {"new": {"name": "eth1", "interfaces": ["uuid", "i"]}}},
                                "Interface": {"i": {"new": {"name": "eth1", "statistics": ["map", [["rx_bytes", 1]]]}}}
                            }})
                        }
                        Some("echo") => {
                            // An update first, then the echo reply: the barrier must see it.
                            let upd = serde_json::json!({"id": null, "method": "update", "params": ["x", {
                                "Interface": {"i": {"new": {"name": "eth1", "statistics": ["map", [["rx_bytes", 2]]]}}}
                            }]});
                            let _ = s.write_all(upd.to_string().as_bytes()).await;
                            serde_json::json!({"id": v["id"], "result": [], "error": null})
                        }
                        _ => continue,
                    };
                    let _ = s.write_all(reply.to_string().as_bytes()).await;
                }
            }
        });
        let h = Handle::spawn(DbEndpoint::Unix(sock));
        let deadline = Instant::now() + Duration::from_secs(5);
        // Wait for the first connection.
        let mut state = h.state();
        while !state.connected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            state = h.state();
        }
        assert!(state.connected);
        let synced = h.synced(deadline).await;
        let Ok(synced) = synced else {
            panic!("{synced:?}")
        };
        let ifaces = synced.replica.interfaces();
        assert_eq!(ifaces.len(), 1);
        assert_eq!(ifaces[0].iface.statistics["rx_bytes"], 2);
        // The server goes away: down, empty replica, errors for scrapes.
        server.abort();
        drop(dir);
        let mut down = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if !h.state().connected {
                down = true;
                break;
            }
        }
        assert!(down);
        assert!(h.state().replica.interfaces().is_empty());
        assert!(
            h.synced(Instant::now() + Duration::from_secs(1))
                .await
                .is_err()
        );
    }

    /// A fake ovsdb-server that answers the monitor, probes the client with its own echo, then
    /// (when `hang`) once it has the reply, reads nothing and says nothing more, like a SIGSTOPped ovsdb-server.
    async fn fake_server(
        listener: tokio::net::UnixListener,
        hang: bool,
        echoed: tokio::sync::mpsc::Sender<Value>,
    ) {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let echoed = echoed.clone();
            tokio::spawn(async move {
                let mut framer = Framer::default();
                let mut buf = vec![0u8; 65536];
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    framer.push(&buf[..n]);
                    while let Ok(Some(v)) = framer.next_value() {
                        if v["method"] == "monitor" {
                            let reply = serde_json::json!({"id": v["id"], "error": null, "result": {
                                "Interface": {"i": {"new": {"name": "eth1"}}}
                            }});
                            let probe = serde_json::json!({"id": "srv-probe", "method": "echo", "params": ["hello"]});
                            let _ = s.write_all(format!("{reply}{probe}").as_bytes()).await;
                        } else if v["id"] == "srv-probe" {
                            let _ = echoed.send(v).await;
                            if hang {
                                // Keep the socket open and never read or write again.
                                std::future::pending::<()>().await;
                            }
                        } else if v["method"] == "echo" {
                            let reply =
                                serde_json::json!({"id": v["id"], "result": [], "error": null});
                            let _ = s.write_all(reply.to_string().as_bytes()).await;
                        }
                    }
                }
            });
        }
    }

    #[tokio::test]
    async fn answers_server_echo_and_drops_a_hung_server() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = dir.path().join("db.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap_or_else(|e| panic!("{e}"));
        let (tx, mut echoed) = tokio::sync::mpsc::channel(4);
        let server = tokio::spawn(fake_server(listener, true, tx));
        let h = Handle::spawn_with(
            DbEndpoint::Unix(sock),
            Options {
                probe_interval: Duration::from_millis(200),
                ..Options::default()
            },
        );
        // The server's echo is answered with its params.
        let reply = tokio::time::timeout(Duration::from_secs(10), echoed.recv()).await;
        let Ok(Some(reply)) = reply else {
            panic!("no echo reply: {reply:?}")
        };
        assert_eq!(reply["result"], serde_json::json!(["hello"]));
        assert!(reply["error"].is_null());
        // Connected, then the silence is noticed: disconnected with the reason, no stale rows.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen_connected = false;
        let state = loop {
            let s = h.state();
            seen_connected |= s.connected;
            if seen_connected && !s.connected {
                break s;
            }
            assert!(Instant::now() < deadline, "hung server never dropped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let reason = state.last_error.clone().unwrap_or_default();
        assert!(reason.contains("echo probe"), "{reason}");
        assert!(state.replica.interfaces.is_empty());
        assert!(state.last_sync.is_some());
        server.abort();
    }

    #[tokio::test]
    async fn a_live_server_is_not_dropped_by_the_probe() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = dir.path().join("db.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap_or_else(|e| panic!("{e}"));
        let (tx, _echoed) = tokio::sync::mpsc::channel(4);
        let server = tokio::spawn(fake_server(listener, false, tx));
        let h = Handle::spawn_with(
            DbEndpoint::Unix(sock),
            Options {
                probe_interval: Duration::from_millis(100),
                ..Options::default()
            },
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !h.state().connected {
            assert!(Instant::now() < deadline, "never connected");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Many probe intervals of silence from our side: the server answers each probe.
        let mut changes = 0;
        let watch = Instant::now() + Duration::from_secs(2);
        while Instant::now() < watch {
            if !h.state().connected {
                changes += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(changes, 0, "{:?}", h.state().last_error);
        server.abort();
    }
}
