//! `?target=`: which switch to read, and whether we may connect there.
//!
//! Forms: `unix:PATH`, `tcp:HOST:PORT`, or a bare `HOST` (IPv4, IPv6, or a DNS name; the port is
//! `--ovs.target-port`). A target must be allowed by `--ovs.allowed-targets` (CIDRs, IPs, host
//! names, `unix:` paths or `unix:DIR/` prefixes); the local bridges' `*.mgmt` sockets in
//! `--ovs.rundir` are always allowed. Names are resolved first and only addresses that are
//! allowed are connected to: the exporter never connects where it was not allowed.

use crate::openflow::Endpoint;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// Why a target was refused (HTTP 400; the message is the one-line reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target is empty")]
    Empty,
    #[error("target {0:?} is too long")]
    TooLong(String),
    #[error("target {target:?} is not valid: {reason}")]
    Invalid {
        target: String,
        reason: &'static str,
    },
    #[error("target {0:?} is not allowed by --ovs.allowed-targets")]
    NotAllowed(String),
    #[error("target {target:?} resolves to {addrs}, none of them allowed by --ovs.allowed-targets")]
    ResolvedNotAllowed { target: String, addrs: String },
    #[error("target {target:?} could not be resolved: {reason}")]
    Resolve { target: String, reason: String },
}

/// A parsed target, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Unix(PathBuf),
    Tcp { host: Host, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

/// A target that passed the allowlist: where to connect, and the text it was given as (used as
/// the `bridge` label until the switch tells us its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub raw: String,
    pub endpoint: Endpoint,
}

const MAX_TARGET_LEN: usize = 512;

/// Parses a `?target=` value.
pub fn parse(raw: &str, default_port: u16) -> Result<TargetSpec, TargetError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(TargetError::Empty);
    }
    if raw.len() > MAX_TARGET_LEN {
        return Err(TargetError::TooLong(raw.chars().take(64).collect()));
    }
    let invalid = |reason| TargetError::Invalid {
        target: raw.to_owned(),
        reason,
    };
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("contains spaces or control characters"));
    }
    if let Some(path) = raw.strip_prefix("unix:") {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(invalid("unix: needs an absolute path"));
        }
        if p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(invalid("unix: path must not contain . or .."));
        }
        return Ok(TargetSpec::Unix(p.to_path_buf()));
    }
    if let Some(rest) = raw.strip_prefix("tcp:") {
        let (host, port) =
            split_host_port(rest).ok_or_else(|| invalid("expected tcp:HOST:PORT"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| invalid("port must be 1-65535"))?;
        return Ok(TargetSpec::Tcp {
            host: parse_host(host).ok_or_else(|| invalid("bad host name or address"))?,
            port,
        });
    }
    if raw.contains("://")
        || ["ssl:", "pssl:", "ptcp:", "punix:"]
            .iter()
            .any(|p| raw.starts_with(p))
    {
        return Err(invalid(
            "only unix:PATH, tcp:HOST:PORT or a bare host are supported",
        ));
    }
    // A bare host, optionally with a port (IPv6 with a port needs brackets).
    if let Ok(ip) = IpAddr::from_str(raw.trim_start_matches('[').trim_end_matches(']')) {
        return Ok(TargetSpec::Tcp {
            host: Host::Ip(ip),
            port: default_port,
        });
    }
    if let Some((host, port)) = split_host_port(raw) {
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| invalid("port must be 1-65535"))?;
        return Ok(TargetSpec::Tcp {
            host: parse_host(host).ok_or_else(|| invalid("bad host name or address"))?,
            port,
        });
    }
    Ok(TargetSpec::Tcp {
        host: parse_host(raw).ok_or_else(|| invalid("bad host name or address"))?,
        port: default_port,
    })
}

fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

fn parse_host(s: &str) -> Option<Host> {
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(Host::Ip(ip));
    }
    let valid = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    valid.then(|| Host::Name(s.to_ascii_lowercase()))
}

/// `--ovs.allowed-targets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
    names: Vec<String>,
    unix_paths: Vec<PathBuf>,
    unix_dirs: Vec<PathBuf>,
}

impl AllowList {
    /// Parses entries (each may itself be comma-separated).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for entry in entries.iter().flat_map(|e| e.as_ref().split(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            if let Some(path) = entry.strip_prefix("unix:") {
                if !path.starts_with('/') {
                    return Err(format!(
                        "--ovs.allowed-targets: {entry:?} needs an absolute path"
                    ));
                }
                if path.ends_with('/') {
                    list.unix_dirs.push(PathBuf::from(path));
                } else {
                    list.unix_paths.push(PathBuf::from(path));
                }
            } else if let Ok(net) = IpNet::from_str(entry) {
                list.nets.push(net.trunc());
            } else if let Ok(ip) = IpAddr::from_str(entry) {
                list.nets.push(IpNet::from(ip));
            } else if let Some(Host::Name(n)) = parse_host(entry) {
                list.names.push(n);
            } else {
                return Err(format!(
                    "--ovs.allowed-targets: {entry:?} is not a CIDR, an address, a host name or unix:PATH"
                ));
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
            && self.names.is_empty()
            && self.unix_paths.is_empty()
            && self.unix_dirs.is_empty()
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }

    fn allows_unix(&self, path: &Path, rundir: &Path) -> bool {
        let in_rundir =
            path.parent() == Some(rundir) && path.extension().is_some_and(|e| e == "mgmt");
        in_rundir
            || self.unix_paths.iter().any(|p| p == path)
            || self
                .unix_dirs
                .iter()
                .any(|d| path.parent() == Some(d.as_path()))
    }
}

/// Host-name look-ups running at once. Each runs on a thread of its own, not on tokio's small
/// blocking pool (which the eBPF loops and the sysfs readers share): a resolver that hangs
/// holds its thread until getaddrinfo gives up, and this bounds how many such threads there are.
/// Past it a `?target=HOST` is refused (`openflow_target_dns_lookups`).
pub const MAX_DNS_LOOKUPS: usize = 4;

static DNS_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_DNS_LOOKUPS);

/// Resolves `name` on a thread of its own (see [`MAX_DNS_LOOKUPS`]).
async fn resolve(name: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let Ok(slot) = DNS_SLOTS.try_acquire() else {
        crate::limits::exceeded("openflow_target_dns_lookups");
        return Err(std::io::Error::other(format!(
            "{MAX_DNS_LOOKUPS} host-name look-ups already running"
        )));
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = name.to_owned();
    std::thread::Builder::new()
        .name("dns-lookup".to_owned())
        .spawn(move || {
            let _slot = slot;
            let found = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port))
                .map(Iterator::collect);
            let _ = tx.send(found);
        })?;
    rx.await
        .unwrap_or_else(|_| Err(std::io::Error::other("the look-up thread ended")))
}

/// Checks a parsed target against the allowlist and resolves names; returns where to connect.
pub async fn authorize(
    raw: &str,
    spec: TargetSpec,
    allow: &AllowList,
    rundir: &Path,
) -> Result<Target, TargetError> {
    let raw = raw.trim().to_owned();
    match spec {
        TargetSpec::Unix(path) => {
            if allow.allows_unix(&path, rundir) {
                Ok(Target {
                    raw,
                    endpoint: Endpoint::Unix(path),
                })
            } else {
                Err(TargetError::NotAllowed(raw))
            }
        }
        TargetSpec::Tcp {
            host: Host::Ip(ip),
            port,
        } => {
            if allow.allows_ip(ip) {
                Ok(Target {
                    raw,
                    endpoint: Endpoint::Tcp(SocketAddr::new(ip, port)),
                })
            } else {
                Err(TargetError::NotAllowed(raw))
            }
        }
        TargetSpec::Tcp {
            host: Host::Name(name),
            port,
        } => {
            let name_allowed = allow.names.contains(&name);
            if !name_allowed && allow.nets.is_empty() {
                return Err(TargetError::NotAllowed(raw));
            }
            let lookup =
                tokio::time::timeout(std::time::Duration::from_secs(2), resolve(&name, port)).await;
            let addrs: Vec<SocketAddr> = match lookup {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    return Err(TargetError::Resolve {
                        target: raw,
                        reason: e.to_string(),
                    });
                }
                Err(_) => {
                    return Err(TargetError::Resolve {
                        target: raw,
                        reason: "timed out".to_owned(),
                    });
                }
            };
            let chosen = addrs
                .iter()
                .find(|a| name_allowed || allow.allows_ip(a.ip()))
                .copied();
            match chosen {
                Some(addr) => Ok(Target {
                    raw,
                    endpoint: Endpoint::Tcp(addr),
                }),
                None => Err(TargetError::ResolvedNotAllowed {
                    target: raw,
                    addrs: addrs
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn tcp(ip: [u8; 4], port: u16) -> TargetSpec {
        TargetSpec::Tcp {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::from(ip))),
            port,
        }
    }

    #[test]
    fn parses_forms() {
        assert_eq!(
            parse("192.168.0.10", 16633),
            Ok(tcp([192, 168, 0, 10], 16633))
        );
        assert_eq!(
            parse("tcp:10.0.0.1:6653", 16633),
            Ok(tcp([10, 0, 0, 1], 6653))
        );
        assert_eq!(parse("10.0.0.1:6653", 16633), Ok(tcp([10, 0, 0, 1], 6653)));
        assert_eq!(
            parse("tcp:[fd00::1]:6653", 1),
            Ok(TargetSpec::Tcp {
                host: Host::Ip("fd00::1".parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))),
                port: 6653
            })
        );
        assert!(matches!(
            parse("fd00::1", 7),
            Ok(TargetSpec::Tcp { port: 7, .. })
        ));
        assert_eq!(
            parse("Node-1.example", 16633),
            Ok(TargetSpec::Tcp {
                host: Host::Name("node-1.example".into()),
                port: 16633
            })
        );
        assert_eq!(
            parse("unix:/var/run/openvswitch/br-int.mgmt", 1),
            Ok(TargetSpec::Unix("/var/run/openvswitch/br-int.mgmt".into()))
        );
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        for bad in [
            "",
            "unix:relative.mgmt",
            "unix:/var/run/../etc/x",
            "tcp:10.0.0.1",
            "tcp:10.0.0.1:0",
            "tcp:10.0.0.1:99999",
            "ssl:10.0.0.1:6653",
            "http://x",
            "a b",
            "-bad-.example",
            "host:port",
        ] {
            let r = parse(bad, 16633);
            assert!(r.is_err(), "{bad:?} should be rejected, got {r:?}");
            if let Err(e) = r {
                assert!(!e.to_string().contains('\n'));
            }
        }
        assert!(matches!(
            parse(&"a".repeat(600), 1),
            Err(TargetError::TooLong(_))
        ));
    }

    #[tokio::test]
    async fn allowlist() {
        let allow = AllowList::parse(&["10.0.0.0/8,192.168.1.5", "localhost", "unix:/srv/ovs/"])
            .unwrap_or_default();
        let rundir = Path::new("/var/run/openvswitch");
        let ok = |raw: &str| {
            let allow = allow.clone();
            let raw = raw.to_owned();
            async move {
                let spec = parse(&raw, 16633)?;
                authorize(&raw, spec, &allow, rundir).await
            }
        };
        assert!(ok("10.1.2.3").await.is_ok());
        assert!(ok("192.168.1.5").await.is_ok());
        assert_eq!(
            ok("192.168.1.6").await,
            Err(TargetError::NotAllowed("192.168.1.6".into()))
        );
        assert!(ok("unix:/var/run/openvswitch/br0.mgmt").await.is_ok());
        assert!(ok("unix:/var/run/openvswitch/db.sock").await.is_err());
        assert!(ok("unix:/srv/ovs/br1.mgmt").await.is_ok());
        assert!(ok("unix:/srv/other/br1.mgmt").await.is_err());
        // A name on the list is resolved and connected to.
        let t = ok("localhost").await;
        assert!(
            matches!(
                t,
                Ok(Target {
                    endpoint: Endpoint::Tcp(_),
                    ..
                })
            ),
            "{t:?}"
        );
        // A name not on the list, with no CIDR covering what it resolves to.
        let only_net = AllowList::parse(&["10.0.0.0/8"]).unwrap_or_default();
        let spec = parse("localhost", 1).unwrap_or(TargetSpec::Unix("/".into()));
        let r = authorize("localhost", spec, &only_net, rundir).await;
        assert!(
            matches!(r, Err(TargetError::ResolvedNotAllowed { .. })),
            "{r:?}"
        );
        // An empty list allows only the local management sockets.
        let none = AllowList::default();
        let spec = parse("10.0.0.1", 1).unwrap_or(TargetSpec::Unix("/".into()));
        assert!(authorize("10.0.0.1", spec, &none, rundir).await.is_err());

        assert!(AllowList::parse(&["not a thing!"]).is_err());
        assert!(AllowList::parse(&["unix:relative"]).is_err());
    }
}
