//! Parsers for what `ipvsadm -Ln --exact` and `ipvsadm -Ln --stats --exact` print: the
//! reference the lab compares the daemon's series with.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

/// A service as the daemon labels it: `protocol`, `address`, `port`, `fwmark` (firewall-mark
/// services: no protocol, the family's unspecified address, port 0).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceId {
    pub protocol: String,
    pub address: String,
    pub port: u16,
    pub fwmark: u32,
}

/// A destination as the daemon labels it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestId {
    pub address: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDest {
    pub forward: String,
    pub weight: i64,
    pub active: u64,
    pub inactive: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedService {
    pub scheduler: String,
    pub dests: BTreeMap<DestId, ListedDest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsService {
    pub counters: Counters,
    pub dests: BTreeMap<DestId, Counters>,
}

/// `10.0.0.1:80`, `[fd00::1]:80` → (address, port).
fn split_addr_port(s: &str) -> Result<(String, u16)> {
    let (addr, port) = s
        .rsplit_once(':')
        .with_context(|| format!("no port in {s:?}"))?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let _: std::net::IpAddr = addr.parse().with_context(|| format!("address {addr:?}"))?;
    Ok((
        addr.to_owned(),
        port.parse().with_context(|| format!("port in {s:?}"))?,
    ))
}

/// Parses the head of a service line; returns the service and the remaining words.
fn service_head<'a>(words: &'a [&'a str]) -> Result<(ServiceId, &'a [&'a str])> {
    match words {
        ["FWM", mark, "IPv6", rest @ ..] => Ok((
            ServiceId {
                protocol: String::new(),
                address: "::".to_owned(),
                port: 0,
                fwmark: mark.parse()?,
            },
            rest,
        )),
        ["FWM", mark, rest @ ..] => Ok((
            ServiceId {
                protocol: String::new(),
                address: "0.0.0.0".to_owned(),
                port: 0,
                fwmark: mark.parse()?,
            },
            rest,
        )),
        [proto @ ("TCP" | "UDP" | "SCTP"), addr, rest @ ..] => {
            let (address, port) = split_addr_port(addr)?;
            Ok((
                ServiceId {
                    protocol: proto.to_lowercase(),
                    address,
                    port,
                    fwmark: 0,
                },
                rest,
            ))
        }
        _ => bail!("not a service line: {}", words.join(" ")),
    }
}

fn body(text: &str) -> Result<impl Iterator<Item = &str>> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    if !first.starts_with("IP Virtual Server version") {
        bail!("not ipvsadm output: {first:?}");
    }
    // The two title lines.
    let (Some(_), Some(_)) = (lines.next(), lines.next()) else {
        return Ok(Vec::new().into_iter());
    };
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .into_iter())
}

/// `ipvsadm -Ln --exact`: scheduler, and per destination forwarding, weight, active and
/// inactive connections.
pub fn parse_list(text: &str) -> Result<BTreeMap<ServiceId, ListedService>> {
    let mut out: BTreeMap<ServiceId, ListedService> = BTreeMap::new();
    let mut current: Option<ServiceId> = None;
    for line in body(text)? {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = words.strip_prefix(&["->"]) {
            let [dest, forward, weight, active, inactive] = rest else {
                bail!("destination line {line:?}");
            };
            let svc = current.as_ref().context("destination before any service")?;
            let (address, port) = split_addr_port(dest)?;
            out.entry(svc.clone()).or_default().dests.insert(
                DestId { address, port },
                ListedDest {
                    forward: (*forward).to_owned(),
                    weight: weight.parse()?,
                    active: active.parse()?,
                    inactive: inactive.parse()?,
                },
            );
        } else {
            let (id, rest) = service_head(&words)?;
            let scheduler = rest.first().context("no scheduler")?;
            out.insert(
                id.clone(),
                ListedService {
                    scheduler: (*scheduler).to_owned(),
                    dests: BTreeMap::new(),
                },
            );
            current = Some(id);
        }
    }
    Ok(out)
}

fn counters(words: &[&str]) -> Result<Counters> {
    let [c, ip, op, ib, ob] = words else {
        bail!("expected five counters, got {words:?}");
    };
    Ok(Counters {
        conns: c.parse()?,
        in_pkts: ip.parse()?,
        out_pkts: op.parse()?,
        in_bytes: ib.parse()?,
        out_bytes: ob.parse()?,
    })
}

/// `ipvsadm -Ln --stats --exact`: the cumulative counters of services and destinations.
pub fn parse_stats(text: &str) -> Result<BTreeMap<ServiceId, StatsService>> {
    let mut out: BTreeMap<ServiceId, StatsService> = BTreeMap::new();
    let mut current: Option<ServiceId> = None;
    for line in body(text)? {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = words.strip_prefix(&["->"]) {
            let svc = current.as_ref().context("destination before any service")?;
            let (dest, nums) = rest.split_first().context("empty destination line")?;
            let (address, port) = split_addr_port(dest)?;
            out.entry(svc.clone())
                .or_default()
                .dests
                .insert(DestId { address, port }, counters(nums)?);
        } else {
            let (id, rest) = service_head(&words)?;
            out.insert(
                id.clone(),
                StatsService {
                    counters: counters(rest)?,
                    dests: BTreeMap::new(),
                },
            );
            current = Some(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.10:80 rr
  -> 10.10.1.2:8080               Masq    1      2          11        
  -> 10.10.2.2:8080               Masq    0      0          0         
TCP  [fd00:96::10]:80 rr persistent 300
  -> [fd00:10:1::2]:8080          Masq    1      0          6         
FWM  7 IPv6 sh
  -> [fd00:10:2::2]:0             Masq    1      0          0         
FWM  7 rr
SCTP 10.96.0.12:9 rr
";

    const STATS: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.96.0.10:80                      26      182      130    14726 1234567890123
  -> 10.10.1.2:8080                     13       91       65     7363    52000
FWM  7                                   0        0        0        0        0
";

    #[test]
    fn list() -> Result<()> {
        let l = parse_list(LIST)?;
        assert_eq!(l.len(), 5);
        let tcp = &l[&ServiceId {
            protocol: "tcp".into(),
            address: "10.96.0.10".into(),
            port: 80,
            fwmark: 0,
        }];
        assert_eq!(tcp.scheduler, "rr");
        assert_eq!(tcp.dests.len(), 2);
        let d = &tcp.dests[&DestId {
            address: "10.10.1.2".into(),
            port: 8080,
        }];
        assert_eq!((d.weight, d.active, d.inactive), (1, 2, 11));
        let fw6 = &l[&ServiceId {
            protocol: String::new(),
            address: "::".into(),
            port: 0,
            fwmark: 7,
        }];
        assert_eq!(fw6.scheduler, "sh");
        assert!(fw6.dests.contains_key(&DestId {
            address: "fd00:10:2::2".into(),
            port: 0
        }));
        assert!(l.keys().any(|k| k.protocol == "sctp"));
        Ok(())
    }

    #[test]
    fn stats() -> Result<()> {
        let s = parse_stats(STATS)?;
        let tcp = s
            .values()
            .find(|v| v.counters.conns == 26)
            .context("tcp service")?;
        assert_eq!(tcp.counters.out_bytes, 1_234_567_890_123);
        assert_eq!(tcp.dests.values().next().map(|c| c.in_pkts), Some(91));
        assert!(parse_stats("garbage\n").is_err());
        assert!(parse_stats(&STATS.replace(" 52000", "")).is_err());
        Ok(())
    }
}
