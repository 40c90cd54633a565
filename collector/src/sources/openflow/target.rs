//! `?target=`: which switch to read, and whether we may connect there.
//!
//! Forms: `unix:PATH`, `tcp:HOST:PORT`, or a bare `HOST` (IPv4, IPv6, or a DNS name; the port is
//! `--ovs.target-port`). A target must be allowed by `--ovs.allowed-targets` (CIDRs, IPs, host
//! names, `unix:` paths or `unix:DIR/` prefixes); the local bridges' `*.mgmt` sockets in
//! `--ovs.rundir` are always allowed. A network entry takes an optional port
//! (`10.0.0.0/8:6653`, `[fd00::]/64:16633`, `switch.example:6653`); without one it allows only
//! `--ovs.target-port`, so an allowed address is not an open door to its other ports (kubelet,
//! etcd). Names are resolved first, on threads of their own (never the shared blocking pool),
//! and only addresses that are allowed are connected to: the exporter never connects where it
//! was not allowed. Errors name the target as given, never the addresses it resolved to.

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
    #[error(
        "target {target:?}: none of the addresses it resolves to is allowed by --ovs.allowed-targets"
    )]
    ResolvedNotAllowed { target: String },
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
    /// Networks, each with the one port it allows (`None`: `default_port`).
    nets: Vec<(IpNet, Option<u16>)>,
    names: Vec<(String, Option<u16>)>,
    unix_paths: Vec<PathBuf>,
    unix_dirs: Vec<PathBuf>,
    /// `--ovs.target-port`: the port of entries written without one.
    default_port: u16,
}

/// Splits `NET:PORT`, `[NET]:PORT` or `[NET]` off an allowlist entry. IPv6 with a port needs
/// brackets (`[fd00::]/64:6653`); bare IPv6 has none.
fn split_entry_port(entry: &str) -> Result<(&str, Option<u16>), ()> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or(());
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(())?;
        // `[fd00::]/64:6653`: the prefix length is written after the bracket.
        let (suffix, port_text) = match after.rsplit_once(':') {
            Some((suffix, p)) => (suffix, Some(p)),
            None => (after, None),
        };
        if !(suffix.is_empty() || suffix.starts_with('/')) {
            return Err(());
        }
        let net = &entry[..1 + host.len() + 1 + suffix.len()];
        return Ok((net, port_text.map(port).transpose()?));
    }
    match entry.matches(':').count() {
        1 => {
            let (host, p) = entry.split_once(':').ok_or(())?;
            Ok((host, Some(port(p)?)))
        }
        _ => Ok((entry, None)),
    }
}

impl AllowList {
    /// Parses entries (each may itself be comma-separated); `default_port` is what an entry
    /// without a port allows.
    pub fn parse<S: AsRef<str>>(entries: &[S], default_port: u16) -> Result<AllowList, String> {
        let mut list = AllowList {
            default_port,
            ..AllowList::default()
        };
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
                continue;
            }
            let bad = || {
                format!(
                    "--ovs.allowed-targets: {entry:?} is not a CIDR, an address or a host name \
                     (each with an optional :PORT; IPv6 with a port in brackets, \
                     [fd00::]/64:6653), or unix:PATH"
                )
            };
            let (host, port) = split_entry_port(entry).map_err(|()| bad())?;
            let unbracketed = host.replacen('[', "", 1).replacen(']', "", 1);
            if let Ok(net) = IpNet::from_str(&unbracketed) {
                list.nets.push((net.trunc(), port));
            } else if let Ok(ip) = IpAddr::from_str(&unbracketed) {
                list.nets.push((IpNet::from(ip), port));
            } else if let Some(Host::Name(n)) = parse_host(host) {
                list.names.push((n, port));
            } else {
                return Err(bad());
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

    fn port_ok(&self, allowed: Option<u16>, port: u16) -> bool {
        allowed.unwrap_or(self.default_port) == port
    }

    fn allows_ip(&self, ip: IpAddr, port: u16) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets
            .iter()
            .any(|(n, p)| n.contains(&ip) && self.port_ok(*p, port))
    }

    fn allows_name(&self, name: &str, port: u16) -> bool {
        self.names
            .iter()
            .any(|(n, p)| n == name && self.port_ok(*p, port))
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

/// Look-ups in flight at once; more wait (each holds a thread of its own while it runs).
const MAX_LOOKUPS: usize = 4;
static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LOOKUPS);

/// Resolves `name` on a thread of its own, so a slow resolver never holds a thread of the
/// shared blocking pool (where scrapes encode). A look-up that outlives `timeout` is abandoned;
/// its thread keeps its permit until the resolver gives up, so at most [`MAX_LOOKUPS`] exist.
async fn resolve(
    name: &str,
    port: u16,
    timeout: std::time::Duration,
) -> Result<Vec<SocketAddr>, String> {
    let work = async {
        let permit = LOOKUPS
            .acquire()
            .await
            .map_err(|_| "resolver closed".to_owned())?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let host = name.to_owned();
        // The permit moves to the thread: it is released when the look-up really ends.
        permit.forget();
        let spawned = std::thread::Builder::new()
            .name("dns".to_owned())
            .spawn(move || {
                use std::net::ToSocketAddrs;
                let r = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect::<Vec<_>>)
                    .map_err(|e| e.to_string());
                LOOKUPS.add_permits(1);
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            LOOKUPS.add_permits(1);
            return Err(format!("cannot start a resolver thread: {e}"));
        }
        rx.await.map_err(|_| "resolver thread ended".to_owned())?
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err("timed out".to_owned()),
    }
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
            if allow.allows_ip(ip, port) {
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
            let name_allowed = allow.allows_name(&name, port);
            if !name_allowed && allow.nets.is_empty() {
                return Err(TargetError::NotAllowed(raw));
            }
            let addrs = resolve(&name, port, std::time::Duration::from_secs(2))
                .await
                .map_err(|reason| TargetError::Resolve {
                    target: raw.clone(),
                    reason,
                })?;
            let chosen = addrs
                .iter()
                .find(|a| name_allowed || allow.allows_ip(a.ip(), a.port()))
                .copied();
            match chosen {
                Some(addr) => Ok(Target {
                    raw,
                    endpoint: Endpoint::Tcp(addr),
                }),
                None => Err(TargetError::ResolvedNotAllowed { target: raw }),
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
        let allow = AllowList::parse(
            &["10.0.0.0/8,192.168.1.5", "localhost", "unix:/srv/ovs/"],
            16633,
        )
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
        let only_net = AllowList::parse(&["10.0.0.0/8"], 16633).unwrap_or_default();
        let spec = parse("localhost", 16633).unwrap_or(TargetSpec::Unix("/".into()));
        let r = authorize("localhost", spec, &only_net, rundir).await;
        assert!(
            matches!(r, Err(TargetError::ResolvedNotAllowed { .. })),
            "{r:?}"
        );
        // The refusal names the target, not what it resolved to.
        let msg = r.map(|_| String::new()).unwrap_or_else(|e| e.to_string());
        assert!(!msg.contains("127.0.0.1") && !msg.contains("::1"), "{msg}");
        // An empty list allows only the local management sockets.
        let none = AllowList::default();
        let spec = parse("10.0.0.1", 1).unwrap_or(TargetSpec::Unix("/".into()));
        assert!(authorize("10.0.0.1", spec, &none, rundir).await.is_err());

        assert!(AllowList::parse(&["not a thing!"], 1).is_err());
        assert!(AllowList::parse(&["unix:relative"], 1).is_err());
    }

    async fn check(allow: &AllowList, raw: &str) -> Result<Target, TargetError> {
        let spec = parse(raw, 16633)?;
        authorize(raw, spec, allow, Path::new("/var/run/openvswitch")).await
    }

    #[tokio::test]
    async fn allowlist_ports() {
        let allow = AllowList::parse(
            &[
                "10.0.0.0/8:6653",
                "[fd00::]/64:16640",
                "192.168.1.5",
                "[fd01::7]:6000",
                "fd02::/64",
                "172.16.0.1:6653",
                "localhost:6653",
            ],
            16633,
        )
        .unwrap_or_default();
        // With a port: only that port.
        assert!(check(&allow, "tcp:10.1.2.3:6653").await.is_ok());
        assert!(check(&allow, "10.1.2.3:6653").await.is_ok());
        assert_eq!(
            check(&allow, "tcp:10.1.2.3:10250").await,
            Err(TargetError::NotAllowed("tcp:10.1.2.3:10250".into()))
        );
        assert!(check(&allow, "10.1.2.3").await.is_err(), "16633 not listed");
        assert!(check(&allow, "tcp:[fd00::9]:16640").await.is_ok());
        assert!(check(&allow, "tcp:[fd00::9]:2379").await.is_err());
        assert!(check(&allow, "tcp:[fd01::7]:6000").await.is_ok());
        assert!(check(&allow, "tcp:[fd01::7]:6001").await.is_err());
        assert!(check(&allow, "tcp:172.16.0.1:6653").await.is_ok());
        assert!(check(&allow, "tcp:172.16.0.1:16633").await.is_err());
        // Without a port: only --ovs.target-port.
        assert!(check(&allow, "192.168.1.5").await.is_ok());
        assert!(check(&allow, "tcp:192.168.1.5:16633").await.is_ok());
        assert!(check(&allow, "tcp:192.168.1.5:2379").await.is_err());
        assert!(check(&allow, "tcp:[fd02::1]:16633").await.is_ok());
        assert!(check(&allow, "tcp:[fd02::1]:22").await.is_err());
        // Names too.
        assert!(check(&allow, "tcp:localhost:6653").await.is_ok());
        assert!(check(&allow, "tcp:localhost:6654").await.is_err());

        for bad in [
            "10.0.0.0/8:0",
            "10.0.0.0/8:x",
            "[fd00::]/64:99999",
            "[fd00::",
            "[::1]x",
        ] {
            assert!(AllowList::parse(&[bad], 1).is_err(), "{bad}");
        }
    }
}
