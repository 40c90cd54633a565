//! An Open vSwitch daemon's control socket: what `ovs-appctl` speaks, natively, so that reading
//! ovs-vswitchd's own figures (`dpctl/show -s`, `coverage/show`, `upcall/show`…) costs one
//! connection and no process.
//!
//! The protocol is JSON-RPC 1.0 on a Unix socket, messages concatenated without a delimiter
//! (`lib/unixctl.c`, `lib/jsonrpc.c`): a request `{"id":N,"method":"coverage/show","params":[…]}`
//! (every parameter a string), a reply `{"id":N,"result":"text","error":null}`, or, when the
//! command fails or does not exist, `"result":null` and the message in `"error"`. One
//! connection carries any number of requests, one at a time.
//!
//! **Where the socket is.** A daemon started the usual way (`--pidfile`, no `--unixctl`)
//! listens on `<rundir>/<daemon>.<pid>.ctl`, the pid read from `<rundir>/<daemon>.pid`, which is
//! how `ovs-appctl -t ovs-vswitchd` finds it; one started with `--unixctl=<rundir>/<daemon>.ctl`
//! listens there. [`locate`] tries them in that order on every call, so a daemon restarted with
//! a new pid is followed at the next scrape.
//!
//! **Bounds.** A reply is framed by the same scanner as ovsdb-server's messages
//! ([`crate::ovsdb::proto::Framer`]) and refused past its byte bound (`unixctl_reply_bytes` in
//! docs/limits.md); every read and write waits until the caller's deadline, never longer; a
//! pidfile is read up to 64 bytes.

use crate::ovsdb::proto::{Framer, ProtoError};
use serde_json::Value;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::Instant;

/// The largest reply accepted by default: `dpctl/show -s` on a datapath with 10,000 ports is
/// about 3 MB, `coverage/show` a few KB.
pub const DEFAULT_MAX_REPLY: usize = 16 * 1024 * 1024;

/// A pidfile holds a decimal number and a newline; more than this is not a pidfile.
const MAX_PIDFILE: usize = 64;

/// Why a command could not be run or its reply not read.
#[derive(Debug, thiserror::Error)]
pub enum UnixctlError {
    /// Neither `<daemon>.pid` nor `<daemon>.ctl` in the run directory, or the socket they name
    /// is gone or refuses connections: the daemon is not running (here).
    #[error("{daemon} is not running: {reason}")]
    NotRunning { daemon: String, reason: String },
    #[error("cannot read {path}")]
    Pidfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not hold a process ID: {content:?}")]
    BadPidfile { path: PathBuf, content: String },
    #[error("cannot connect to {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{command}: cannot talk to {path}")]
    Io {
        path: PathBuf,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command}: no reply from {path} before the scrape's deadline")]
    Timeout { path: PathBuf, command: String },
    #[error("{command}: {path} closed the connection before replying")]
    Closed { path: PathBuf, command: String },
    #[error("{command}: the reply from {path}")]
    Protocol {
        path: PathBuf,
        command: String,
        #[source]
        source: ProtoError,
    },
    #[error("{command}: the reply from {path} is not a JSON-RPC reply to it: {detail}")]
    BadReply {
        path: PathBuf,
        command: String,
        detail: String,
    },
    /// The daemon ran the command and said it failed (or does not know it).
    #[error("{command}: {message}")]
    Command { command: String, message: String },
}

impl UnixctlError {
    /// The daemon is not running: the subsystem is unavailable, not broken.
    pub fn is_not_running(&self) -> bool {
        matches!(self, UnixctlError::NotRunning { .. })
    }

    /// The daemon answered that it has no such command (an older version).
    pub fn is_unknown_command(&self) -> bool {
        matches!(self, UnixctlError::Command { message, .. } if message.contains("is not a valid command"))
    }
}

/// Where `daemon`'s control socket in `rundir` is, and the pid its pidfile names (if it has
/// one): `<daemon>.<pid>.ctl` when that exists, else `<daemon>.ctl`.
pub async fn locate(rundir: &Path, daemon: &str) -> Result<(PathBuf, Option<u32>), UnixctlError> {
    let pidfile = rundir.join(format!("{daemon}.pid"));
    let pid = read_pidfile(&pidfile).await?;
    if let Some(pid) = pid {
        let path = rundir.join(format!("{daemon}.{pid}.ctl"));
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok((path, Some(pid)));
        }
    }
    let fixed = rundir.join(format!("{daemon}.ctl"));
    if tokio::fs::try_exists(&fixed).await.unwrap_or(false) {
        return Ok((fixed, pid));
    }
    Err(UnixctlError::NotRunning {
        daemon: daemon.to_owned(),
        reason: match pid {
            Some(pid) => format!(
                "{} names pid {pid}, and neither {daemon}.{pid}.ctl nor {daemon}.ctl is in {}",
                pidfile.display(),
                rundir.display()
            ),
            None => format!(
                "neither {daemon}.pid nor {daemon}.ctl is in {}",
                rundir.display()
            ),
        },
    })
}

/// The pid in a pidfile; `None` if there is no such file.
pub async fn read_pidfile(path: &Path) -> Result<Option<u32>, UnixctlError> {
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(UnixctlError::Pidfile {
                path: path.to_owned(),
                source,
            });
        }
    };
    // One byte past the bound is enough to refuse it: a pidfile is never read whole.
    let mut bytes = Vec::with_capacity(MAX_PIDFILE + 1);
    if let Err(source) = file
        .take(MAX_PIDFILE as u64 + 1)
        .read_to_end(&mut bytes)
        .await
    {
        return Err(UnixctlError::Pidfile {
            path: path.to_owned(),
            source,
        });
    }
    if bytes.len() > MAX_PIDFILE {
        crate::limits::exceeded("pidfile_bytes");
    }
    parse_pidfile(&bytes)
        .map(Some)
        .ok_or_else(|| UnixctlError::BadPidfile {
            path: path.to_owned(),
            content: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_PIDFILE)]).into_owned(),
        })
}

/// A pidfile's content: a positive decimal number, optionally followed by a newline.
pub fn parse_pidfile(bytes: &[u8]) -> Option<u32> {
    if bytes.len() > MAX_PIDFILE {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?.trim_end();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&p| p > 0)
}

/// One connection to a control socket.
#[derive(Debug)]
pub struct Conn {
    stream: UnixStream,
    framer: Framer,
    path: PathBuf,
    next_id: u64,
    max_reply: usize,
}

impl Conn {
    /// Connects to the socket at `path`. A socket that is gone or refuses connections means the
    /// daemon is not running ([`UnixctlError::NotRunning`]).
    pub async fn connect(
        path: &Path,
        daemon: &str,
        max_reply: usize,
        deadline: Instant,
    ) -> Result<Conn, UnixctlError> {
        let stream = match tokio::time::timeout_at(deadline, UnixStream::connect(path)).await {
            Err(_) => {
                return Err(UnixctlError::Timeout {
                    path: path.to_owned(),
                    command: "connect".to_owned(),
                });
            }
            Ok(Ok(s)) => s,
            Ok(Err(e))
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) =>
            {
                return Err(UnixctlError::NotRunning {
                    daemon: daemon.to_owned(),
                    reason: format!("{}: {e}", path.display()),
                });
            }
            Ok(Err(source)) => {
                return Err(UnixctlError::Connect {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Conn {
            stream,
            framer: Framer::new(max_reply),
            path: path.to_owned(),
            next_id: 0,
            max_reply,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `command` with `args` and returns its reply text.
    pub async fn call(
        &mut self,
        command: &str,
        args: &[&str],
        deadline: Instant,
    ) -> Result<String, UnixctlError> {
        let id = self.send(command, args, deadline).await?;
        self.receive(command, id, deadline).await
    }

    /// Runs every command at once: all requests are written before the first reply is read,
    /// so the whole batch costs one round trip to the daemon, not one per command (its
    /// unixctl server answers the requests of a connection in order). Each command's own
    /// failure ([`UnixctlError::Command`]) is its entry; a failure of the connection fails the
    /// batch.
    pub async fn call_all(
        &mut self,
        commands: &[(&str, Vec<&str>)],
        deadline: Instant,
    ) -> Result<Vec<Result<String, UnixctlError>>, UnixctlError> {
        let mut ids = Vec::with_capacity(commands.len());
        for (command, args) in commands {
            ids.push(self.send(command, args, deadline).await?);
        }
        let mut out = Vec::with_capacity(commands.len());
        for ((command, _), id) in commands.iter().zip(ids) {
            match self.receive(command, id, deadline).await {
                Err(e @ UnixctlError::Command { .. }) => out.push(Err(e)),
                Err(e) => return Err(e),
                Ok(text) => out.push(Ok(text)),
            }
        }
        Ok(out)
    }

    /// Writes one request; its id, for [`Conn::receive`].
    async fn send(
        &mut self,
        command: &str,
        args: &[&str],
        deadline: Instant,
    ) -> Result<u64, UnixctlError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = serde_json::json!({"id": id, "method": command, "params": args});
        let bytes = request.to_string().into_bytes();
        match tokio::time::timeout_at(deadline, self.stream.write_all(&bytes)).await {
            Err(_) => Err(self.timeout(command)),
            Ok(Err(source)) => Err(UnixctlError::Io {
                path: self.path.clone(),
                command: command.to_owned(),
                source,
            }),
            Ok(Ok(())) => Ok(id),
        }
    }

    /// Reads the reply to request `id` (the next value on the connection).
    async fn receive(
        &mut self,
        command: &str,
        id: u64,
        deadline: Instant,
    ) -> Result<String, UnixctlError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0usize;
        loop {
            match self.framer.next_value() {
                Ok(Some(v)) => return self.reply(command, id, v),
                Ok(None) => {}
                Err(source) => {
                    if matches!(source, ProtoError::TooLarge { .. }) {
                        crate::limits::exceeded("unixctl_reply_bytes");
                    }
                    return Err(UnixctlError::Protocol {
                        path: self.path.clone(),
                        command: command.to_owned(),
                        source,
                    });
                }
            }
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return Err(self.timeout(command)),
                Ok(Err(e)) => {
                    return Err(UnixctlError::Io {
                        path: self.path.clone(),
                        command: command.to_owned(),
                        source: e,
                    });
                }
                Ok(Ok(0)) => {
                    return Err(UnixctlError::Closed {
                        path: self.path.clone(),
                        command: command.to_owned(),
                    });
                }
                Ok(Ok(n)) => n,
            };
            received += n;
            if received > self.max_reply.saturating_mul(2) {
                // The framer refuses one oversized value; this refuses a stream of small
                // unsolicited ones.
                crate::limits::exceeded("unixctl_reply_bytes");
                return Err(UnixctlError::Protocol {
                    path: self.path.clone(),
                    command: command.to_owned(),
                    source: ProtoError::TooLarge {
                        limit: self.max_reply,
                    },
                });
            }
            self.framer.push(&buf[..n]);
        }
    }

    fn timeout(&self, command: &str) -> UnixctlError {
        UnixctlError::Timeout {
            path: self.path.clone(),
            command: command.to_owned(),
        }
    }

    fn reply(&self, command: &str, id: u64, v: Value) -> Result<String, UnixctlError> {
        let bad = |detail: String| UnixctlError::BadReply {
            path: self.path.clone(),
            command: command.to_owned(),
            detail,
        };
        let Value::Object(mut m) = v else {
            return Err(bad("not a JSON object".to_owned()));
        };
        if m.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(bad(format!(
                "id {} instead of {id}",
                m.get("id")
                    .map_or_else(|| "none".to_owned(), Value::to_string)
            )));
        }
        match (m.remove("result"), m.remove("error")) {
            (Some(Value::String(text)), None | Some(Value::Null)) => Ok(text),
            (None | Some(Value::Null), Some(Value::String(message))) => {
                Err(UnixctlError::Command {
                    command: command.to_owned(),
                    message: message.trim_end().to_owned(),
                })
            }
            (None | Some(Value::Null), Some(other)) if !other.is_null() => {
                Err(UnixctlError::Command {
                    command: command.to_owned(),
                    message: other.to_string(),
                })
            }
            _ => Err(bad("neither a text result nor an error".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfiles() {
        assert_eq!(parse_pidfile(b"8796\n"), Some(8796));
        assert_eq!(parse_pidfile(b"1"), Some(1));
        assert_eq!(parse_pidfile(b""), None);
        assert_eq!(parse_pidfile(b"0\n"), None);
        assert_eq!(parse_pidfile(b"-1\n"), None);
        assert_eq!(parse_pidfile(b"12 34\n"), None);
        assert_eq!(parse_pidfile(b"99999999999\n"), None);
        assert_eq!(parse_pidfile(&[b'1'; 65]), None);
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A control socket that answers each request with what `answer` makes of it.
    fn serve(
        path: &Path,
        answer: impl Fn(&Value) -> Vec<u8> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let listener = tokio::net::UnixListener::bind(path).unwrap_or_else(|e| panic!("bind: {e}"));
        tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut framer = Framer::default();
            let mut buf = vec![0u8; 4096];
            loop {
                while let Ok(Some(v)) = framer.next_value() {
                    let out = answer(&v);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => framer.push(&buf[..n]),
                }
            }
        })
    }

    #[test]
    fn calls_replies_errors_and_bounds() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("ovs-vswitchd.ctl");
            let _server = serve(&path, |req| {
                let id = req["id"].clone();
                let reply = match req["method"].as_str() {
                    Some("version") => serde_json::json!({"id": id, "result": "ovs-vswitchd (Open vSwitch) 3.1.0\n", "error": null}),
                    Some("echo") => serde_json::json!({"id": id, "result": req["params"][0], "error": null}),
                    Some("big") => serde_json::json!({"id": id, "result": "x".repeat(4096), "error": null}),
                    Some("wrong-id") => serde_json::json!({"id": 999, "result": "", "error": null}),
                    Some(m) => serde_json::json!({"id": id, "result": null, "error": format!("\"{m}\" is not a valid command (use list-commands to see a list of valid commands)\n")}),
                    None => serde_json::json!({}),
                };
                reply.to_string().into_bytes()
            });
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            let (located, pid) = locate(dir.path(), "ovs-vswitchd")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((located.as_path(), pid), (path.as_path(), None));
            let mut c = Conn::connect(&path, "ovs-vswitchd", 1024, deadline)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let v = c.call("version", &[], deadline).await;
            assert_eq!(v.ok().as_deref(), Some("ovs-vswitchd (Open vSwitch) 3.1.0\n"));
            // Several requests on one connection, parameters passed as strings.
            let v = c.call("echo", &["a \"quoted\" word"], deadline).await;
            assert_eq!(v.ok().as_deref(), Some("a \"quoted\" word"));
            let e = c.call("no/such", &[], deadline).await;
            assert!(
                e.as_ref().is_err_and(UnixctlError::is_unknown_command),
                "{e:?}"
            );
            // A pipelined batch: every reply in its request's place, an unknown command as its
            // own entry.
            let all = c
                .call_all(
                    &[
                        ("echo", vec!["one"]),
                        ("no/such", vec![]),
                        ("version", vec![]),
                        ("echo", vec!["two"]),
                    ],
                    deadline,
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(all.len(), 4);
            assert_eq!(all[0].as_deref().ok(), Some("one"));
            assert!(all[1].as_ref().is_err_and(UnixctlError::is_unknown_command));
            assert!(all[2].as_ref().is_ok_and(|v| v.starts_with("ovs-vswitchd")));
            assert_eq!(all[3].as_deref().ok(), Some("two"));
            let none = c.call_all(&[], deadline).await;
            assert!(none.is_ok_and(|v| v.is_empty()));
            let e = c.call("big", &[], deadline).await;
            assert!(
                matches!(e, Err(UnixctlError::Protocol { source: ProtoError::TooLarge { limit: 1024 }, .. })),
                "{e:?}"
            );
            assert!(crate::limits::count("unixctl_reply_bytes") >= 1);
        });
    }

    #[test]
    fn a_reply_to_another_request_is_refused() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("d.ctl");
            let _server = serve(&path, |_| br#"{"id":7,"result":"x","error":null}"#.to_vec());
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            let mut c = Conn::connect(&path, "d", 1024, deadline)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let e = c.call("anything", &[], deadline).await;
            assert!(matches!(e, Err(UnixctlError::BadReply { .. })), "{e:?}");
        });
    }

    #[test]
    fn silence_is_a_timeout_and_no_socket_is_not_running() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("d.ctl");
            let _server = serve(&path, |_| Vec::new());
            let deadline = Instant::now() + std::time::Duration::from_millis(300);
            let mut c = Conn::connect(&path, "d", 1024, deadline)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let e = c.call("anything", &[], deadline).await;
            assert!(matches!(e, Err(UnixctlError::Timeout { .. })), "{e:?}");

            let e = locate(&dir.path().join("nowhere"), "d").await;
            assert!(e.is_err_and(|e| e.is_not_running()));
            // A pidfile whose socket is gone (the daemon crashed): not running.
            std::fs::write(dir.path().join("gone.pid"), b"4242\n")
                .unwrap_or_else(|e| panic!("{e}"));
            let e = locate(dir.path(), "gone").await;
            assert!(e.is_err_and(|e| e.is_not_running()));
            // A socket file nobody listens on.
            let stale = dir.path().join("stale.ctl");
            drop(std::os::unix::net::UnixListener::bind(&stale).unwrap_or_else(|e| panic!("{e}")));
            let e = Conn::connect(&stale, "stale", 1024, deadline).await;
            assert!(e.is_err_and(|e| e.is_not_running()));
        });
    }
}
