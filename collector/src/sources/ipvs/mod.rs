//! The `ipvs` source: IPVS virtual services and their real servers, over generic netlink
//! (family "IPVS"), in the daemon's own network namespace or in each `--ipvs.netns`.
//!
//! fetch (`read_services`: one netlink socket per namespace, a service dump, then a destination
//! dump per service) → [`Snapshot`] → encode (`encode.rs`).
//!
//! **Netlink** is `crate::netlink`'s (socket, framing, dump loop and its bounds, the family
//! lookup); `parse.rs` decodes IPVS services and destinations from the attributes, in pure
//! functions tested on replies captured from a real kernel in the lab
//! (`collector/tests/fixtures/ipvs/`), on every truncation and byte flip of them, and on
//! constructed malformed messages. Why owned framing and not a crate: docs/netlink.md. The
//! family is found in a dump of every family, never by name, which would make the kernel load
//! `ip_vs` (see [`crate::netlink::genl`]).
//!
//! **Namespaces.** A netlink socket belongs to the network namespace it was created in. For each
//! `--ipvs.netns PATH` a dedicated thread opens `PATH`, enters it with `setns(CLONE_NEWNET)`,
//! creates its socket, reads, and exits; the thread is never reused, so no other work ever runs
//! in a foreign namespace. Without `--ipvs.netns` the daemon's own namespace is read on a
//! blocking-pool thread (no `setns`) and the `namespace` label is empty.
//!
//! **Absent is not an error.** No "IPVS" family (module not loaded) or a namespace path that
//! does not exist (yet) is "unavailable": no series, `dataplane_collector_source_available 0`,
//! a debug-level log line. Looking the family up never loads the module.

mod encode;
pub mod flags;
pub mod parse;

use crate::exposition::Writer;
use crate::netlink::{DumpError, NetlinkError, Protocol, Socket, genl};
use crate::registry::{ScrapeRequest, Source, SourceError, Status, error_chain};
use parse::{Destination, ParseError, Service, ServiceKey};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings of the source, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Network namespaces to read (`--ipvs.netns`); empty means the daemon's own.
    pub netns: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error("IPVS is not available: {reason}")]
    Unavailable { reason: String },
    #[error("network namespace {path} does not exist")]
    NamespaceAbsent { path: PathBuf },
    #[error("cannot open network namespace {path}")]
    OpenNamespace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}{hint}")]
    EnterNamespace {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot read {what}")]
    Netlink {
        what: String,
        #[source]
        source: NetlinkError,
    },
    #[error("cannot decode {what}")]
    Decode {
        what: String,
        #[source]
        source: ParseError,
    },
    #[error("the reader thread for {namespace:?} failed: {reason}")]
    Thread { namespace: String, reason: String },
}

impl SourceError for IpvsError {
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            IpvsError::Unavailable { .. } | IpvsError::NamespaceAbsent { .. }
        )
    }
}

/// A service and its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceData {
    pub service: Service,
    pub destinations: Vec<Destination>,
}

/// What was read in one namespace.
#[derive(Debug)]
pub struct NamespaceData {
    /// The `namespace` label: the `--ipvs.netns` path, or empty for the daemon's own.
    pub label: String,
    pub outcome: Result<Vec<ServiceData>, IpvsError>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub namespaces: Vec<NamespaceData>,
}

/// How the source reads one namespace's services: [`Kernel`] (netlink) in the daemon; a
/// captured dump in tests, given through [`crate::sources::build::Readers`] as an
/// `Arc<dyn Reader>`. `netns` is `None` for the daemon's own namespace (read on a blocking-pool
/// thread) and each `--ipvs.netns` path otherwise (read on a thread of its own, thrown away
/// after). Each receive may wait `timeout`.
pub trait Reader: Send + Sync + 'static {
    fn read(&self, netns: Option<&Path>, timeout: Duration) -> Result<Vec<ServiceData>, IpvsError>;
}

/// The kernel's IPVS over generic netlink, entering `netns` when there is one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl Reader for Kernel {
    fn read(&self, netns: Option<&Path>, timeout: Duration) -> Result<Vec<ServiceData>, IpvsError> {
        match netns {
            None => read_own_namespace(timeout),
            Some(path) => enter_and_read(path, timeout),
        }
    }
}

pub struct IpvsSource {
    cfg: Config,
    reader: std::sync::Arc<dyn Reader>,
}

impl IpvsSource {
    /// Reads the kernel.
    pub fn new(cfg: Config) -> Self {
        Self::with_reader(cfg, std::sync::Arc::new(Kernel))
    }

    /// Reads through `reader` (a fixture in tests).
    pub fn with_reader(cfg: Config, reader: std::sync::Arc<dyn Reader>) -> Self {
        IpvsSource { cfg, reader }
    }
}

/// Reads every service and its destinations through `sock`, in the namespace `sock` was opened
/// in.
pub fn read_services(sock: &mut Socket) -> Result<Vec<ServiceData>, IpvsError> {
    let family = resolve_family(sock)?.ok_or_else(|| IpvsError::Unavailable {
        reason: "no generic netlink family \"IPVS\" (the ip_vs module is not loaded)".to_owned(),
    })?;
    let mut services = Vec::new();
    let seq = sock.next_seq();
    sock.dump(&parse::services_request(family, seq), seq, |m| {
        services.push(parse::parse_service(m)?);
        Ok(())
    })
    .map_err(|e| dump_error("the IPVS services".to_owned(), e))?;
    let mut out = Vec::with_capacity(services.len());
    for service in services {
        let mut destinations = Vec::new();
        let seq = sock.next_seq();
        let af = service.key.af();
        // A service removed since the service dump has an empty destination dump.
        sock.dump(
            &parse::destinations_request(family, seq, &service.key),
            seq,
            |m| {
                destinations.push(parse::parse_destination(m, af)?);
                Ok(())
            },
        )
        .map_err(|e| dump_error(format!("the destinations of {}", describe(&service.key)), e))?;
        out.push(ServiceData {
            service,
            destinations,
        });
    }
    Ok(out)
}

/// Finds the "IPVS" family in a dump of every family (a lookup by name would load the module).
pub fn resolve_family(sock: &mut Socket) -> Result<Option<u16>, IpvsError> {
    genl::resolve_family(sock, parse::IPVS_FAMILY).map_err(|e| match e {
        DumpError::Netlink(source) => IpvsError::Netlink {
            what: "the generic netlink families".to_owned(),
            source,
        },
        DumpError::Decode { source } => IpvsError::Decode {
            what: "the generic netlink families".to_owned(),
            source: source.into(),
        },
    })
}

fn dump_error(what: String, e: DumpError<ParseError>) -> IpvsError {
    match e {
        DumpError::Netlink(source) => IpvsError::Netlink { what, source },
        DumpError::Decode { source } => IpvsError::Decode { what, source },
    }
}

/// `TCP 10.0.0.1:80`, `FWM 7 IPv6`: a service as `ipvsadm` names it, for error messages.
pub fn describe(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Address {
            protocol,
            addr,
            port,
            ..
        } => {
            let sa = std::net::SocketAddr::new(*addr, *port);
            format!("{} {sa}", encode::protocol_name(*protocol).to_uppercase())
        }
        ServiceKey::Fwmark { af, mark } if *af == parse::AF_INET6 => format!("FWM {mark} IPv6"),
        ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

/// A generic netlink socket in the calling thread's namespace, or in `netns` after entering it.
fn open_socket(timeout: Duration, netns: Option<&Path>) -> Result<Socket, IpvsError> {
    Socket::open_in(Protocol::Generic, timeout, netns).map_err(|e| match e {
        NetlinkError::NamespaceAbsent { path } => IpvsError::NamespaceAbsent { path },
        NetlinkError::OpenNamespace { path, source } => IpvsError::OpenNamespace { path, source },
        NetlinkError::EnterNamespace { path, hint, source } => {
            IpvsError::EnterNamespace { path, hint, source }
        }
        source => IpvsError::Netlink {
            what: "IPVS (no netlink socket)".to_owned(),
            source,
        },
    })
}

/// Reads the daemon's own namespace.
pub fn read_own_namespace(timeout: Duration) -> Result<Vec<ServiceData>, IpvsError> {
    read_services(&mut open_socket(timeout, None)?)
}

/// Enters the network namespace at `path` and reads it. Call only on a thread that is thrown
/// away afterwards: the thread stays in that namespace.
pub fn enter_and_read(path: &Path, timeout: Duration) -> Result<Vec<ServiceData>, IpvsError> {
    read_services(&mut open_socket(timeout, Some(path))?)
}

/// Reads the namespace at `path` through `reader` on a new thread of its own.
async fn read_namespace_thread(
    reader: std::sync::Arc<dyn Reader>,
    path: PathBuf,
    timeout: Duration,
) -> Result<Vec<ServiceData>, IpvsError> {
    let label = path.display().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("ipvs-netns".to_owned())
        .spawn(move || {
            let _ = tx.send(reader.read(Some(&path), timeout));
        });
    if let Err(e) = spawned {
        return Err(IpvsError::Thread {
            namespace: label,
            reason: e.to_string(),
        });
    }
    rx.await.unwrap_or_else(|_| {
        Err(IpvsError::Thread {
            namespace: label,
            reason: "it ended without an answer".to_owned(),
        })
    })
}

impl Source for IpvsSource {
    type Snapshot = Snapshot;
    type Error = IpvsError;

    fn name(&self) -> &'static str {
        "ipvs"
    }

    async fn fetch(&self, req: &ScrapeRequest) -> Result<Snapshot, IpvsError> {
        // Each receive may wait until the scrape's deadline, never longer.
        let timeout = req
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(100));
        let mut namespaces = Vec::new();
        if self.cfg.netns.is_empty() {
            let reader = self.reader.clone();
            let outcome = tokio::task::spawn_blocking(move || reader.read(None, timeout))
                .await
                .unwrap_or_else(|e| {
                    Err(IpvsError::Thread {
                        namespace: String::new(),
                        reason: e.to_string(),
                    })
                });
            namespaces.push(NamespaceData {
                label: String::new(),
                outcome,
            });
        } else {
            let reads = self
                .cfg
                .netns
                .iter()
                .map(|p| read_namespace_thread(self.reader.clone(), p.clone(), timeout));
            let outcomes = futures_util::future::join_all(reads).await;
            for (path, outcome) in self.cfg.netns.iter().zip(outcomes) {
                namespaces.push(NamespaceData {
                    label: path.display().to_string(),
                    outcome,
                });
            }
        }
        // Nothing read and nothing broken: the subsystem is simply not here.
        let any_read = namespaces.iter().any(|n| n.outcome.is_ok());
        let any_failed = namespaces
            .iter()
            .any(|n| n.outcome.as_ref().is_err_and(|e| !e.is_unavailable()));
        if !any_read && !any_failed {
            let mut reasons: Vec<String> = namespaces
                .iter()
                .filter_map(|n| n.outcome.as_ref().err().map(|e| error_chain(e)))
                .collect();
            reasons.dedup();
            return Err(IpvsError::Unavailable {
                reason: reasons
                    .join("; ")
                    .trim_start_matches("IPVS is not available: ")
                    .to_owned(),
            });
        }
        Ok(Snapshot { namespaces })
    }

    fn encode(&self, snapshot: &Snapshot, w: &mut Writer) {
        encode::encode(snapshot, w);
    }

    fn status(&self, snapshot: &Snapshot) -> Status {
        let failures: Vec<String> = snapshot
            .namespaces
            .iter()
            .filter_map(|n| match &n.outcome {
                Err(e) if !e.is_unavailable() => Some(if n.label.is_empty() {
                    error_chain(e)
                } else {
                    format!("{}: {}", n.label, error_chain(e))
                }),
                _ => None,
            })
            .collect();
        if failures.is_empty() {
            Status::Ok
        } else {
            Status::Failed(failures.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(label: &str, outcome: Result<Vec<ServiceData>, IpvsError>) -> NamespaceData {
        NamespaceData {
            label: label.to_owned(),
            outcome,
        }
    }

    #[test]
    fn status_fails_only_on_real_failures() {
        let src = IpvsSource::new(Config::default());
        let snap = Snapshot {
            namespaces: vec![
                ns("/run/netns/a", Ok(vec![])),
                ns(
                    "/run/netns/b",
                    Err(IpvsError::NamespaceAbsent {
                        path: "/run/netns/b".into(),
                    }),
                ),
            ],
        };
        assert_eq!(src.status(&snap), Status::Ok);
        let snap = Snapshot {
            namespaces: vec![ns(
                "/run/netns/c",
                Err(IpvsError::EnterNamespace {
                    path: "/run/netns/c".into(),
                    hint: " (not a network namespace)",
                    source: nix::errno::Errno::EINVAL,
                }),
            )],
        };
        let Status::Failed(msg) = src.status(&snap) else {
            panic!("not failed")
        };
        assert!(msg.starts_with("/run/netns/c: cannot enter network namespace /run/netns/c (not a network namespace)"), "{msg}");
    }

    #[test]
    fn missing_namespace_is_unavailable_and_not_a_network_namespace_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path();
        let missing = dir.join("missing");
        let not_ns = dir.join("plain-file");
        std::fs::write(&not_ns, b"x").unwrap_or_else(|e| panic!("{e}"));
        let req = ScrapeRequest::new(tokio::time::Instant::now() + Duration::from_secs(5));
        let src = IpvsSource::new(Config {
            netns: vec![missing.clone()],
        });
        let err = rt.block_on(src.fetch(&req)).err();
        assert!(matches!(&err, Some(e) if e.is_unavailable()), "{err:?}");
        let src = IpvsSource::new(Config {
            netns: vec![missing, not_ns.clone()],
        });
        match rt.block_on(src.fetch(&req)) {
            Ok(snap) => {
                let Status::Failed(msg) = src.status(&snap) else {
                    panic!("not failed")
                };
                // Without CAP_SYS_ADMIN setns fails with EPERM before it looks at the file.
                assert!(msg.contains("cannot enter network namespace"), "{msg}");
                let mut w = Writer::new();
                src.encode(&snap, &mut w);
                let text = w.into_string();
                assert!(
                    text.contains(&format!("ipvs_up{{namespace=\"{}\"}} 0", not_ns.display())),
                    "{text}"
                );
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn describe_names_services_like_ipvsadm() {
        use std::net::{IpAddr, Ipv6Addr};
        let k = ServiceKey::Address {
            af: parse::AF_INET6,
            protocol: 6,
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: 80,
        };
        assert_eq!(describe(&k), "TCP [::1]:80");
        assert_eq!(
            describe(&ServiceKey::Fwmark {
                af: parse::AF_INET6,
                mark: 3
            }),
            "FWM 3 IPv6"
        );
    }
}
