//! The reply text of ovs-vswitchd's control commands, parsed. Pure: text in, values out, tested
//! on replies captured from a real ovs-vswitchd (`collector/tests/fixtures/vswitchd/`) and on
//! the formats of Open vSwitch's sources (`lib/dpctl.c`, `lib/coverage.c`,
//! `ofproto/ofproto-dpif-upcall.c`, `lib/dpif-netdev.c`, `ofproto/bond.c`, `lib/lacp.c`).
//!
//! Each parser takes what it knows and skips lines it does not, so a newer Open vSwitch that
//! adds a line still parses; a line it knows but cannot read is an error naming the line.

/// A line of a reply that has the shape of a known line but not its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}, line {line}: {reason}: {text:?}")]
pub struct ParseError {
    pub command: &'static str,
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

fn err(command: &'static str, line: usize, reason: &'static str, text: &str) -> ParseError {
    ParseError {
        command,
        line: line + 1,
        reason,
        text: text.chars().take(200).collect(),
    }
}

/// `a:1 b:2` → the value after `key:` among whitespace-separated items.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|item| item.strip_prefix(key)?.strip_prefix(':'))
}

/// A counter as dpctl prints it: a number, or `?` when the device does not keep it.
fn stat(v: &str) -> Result<Option<u64>, ()> {
    if v == "?" {
        Ok(None)
    } else {
        v.parse().map(Some).map_err(|_| ())
    }
}

// ---- dpctl/show -s ----

/// One datapath of `dpctl/show -s`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Datapath {
    /// The part after `@` of `netdev@ovs-netdev`, `system@ovs-system`.
    pub name: String,
    /// The part before it: `netdev` (userspace) or `system` (kernel).
    pub kind: String,
    pub hit: u64,
    pub missed: u64,
    pub lost: u64,
    pub flows: u64,
    /// `masks: hit:H total:T` (the kernel datapath).
    pub mask_hit: Option<u64>,
    pub masks: Option<u64>,
    /// `cache: hit:H` (the kernel's masks cache).
    pub cache_hit: Option<u64>,
    /// `caches:` then `NAME: size:N` lines.
    pub caches: Vec<(String, u64)>,
    pub ports: Vec<DpPort>,
}

impl Datapath {
    /// `netdev@ovs-netdev`, as commands that take a datapath want it.
    pub fn full_name(&self) -> String {
        format!("{}@{}", self.kind, self.name)
    }
}

/// A datapath port and, with `-s`, its counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DpPort {
    pub number: u32,
    pub name: String,
    /// `system` when dpctl prints none, else what it prints in parentheses (`internal`, `tap`,
    /// `vxlan`…).
    pub kind: String,
    pub stats: Option<PortStats>,
    /// Upcalls the kernel sent for packets of this port, (succeeded, failed): the kernel
    /// datapath of Linux 6.6 and later, over netlink only.
    pub upcalls: Option<(u64, u64)>,
}

/// A port's counters; `None` where the device keeps none (`?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    pub rx_packets: Option<u64>,
    pub rx_errors: Option<u64>,
    pub rx_dropped: Option<u64>,
    pub rx_overruns: Option<u64>,
    pub rx_frame: Option<u64>,
    pub rx_bytes: Option<u64>,
    pub tx_packets: Option<u64>,
    pub tx_errors: Option<u64>,
    pub tx_dropped: Option<u64>,
    pub tx_aborted: Option<u64>,
    pub tx_carrier: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub collisions: Option<u64>,
}

impl PortStats {
    fn slot(&mut self, dir: &str, key: &str) -> Option<&mut Option<u64>> {
        Some(match (dir, key) {
            ("RX", "packets") => &mut self.rx_packets,
            ("RX", "errors") => &mut self.rx_errors,
            ("RX", "dropped") => &mut self.rx_dropped,
            ("RX", "overruns") => &mut self.rx_overruns,
            ("RX", "frame") => &mut self.rx_frame,
            ("RX", "bytes") => &mut self.rx_bytes,
            ("TX", "packets") => &mut self.tx_packets,
            ("TX", "errors") => &mut self.tx_errors,
            ("TX", "dropped") => &mut self.tx_dropped,
            ("TX", "aborted") => &mut self.tx_aborted,
            ("TX", "carrier") => &mut self.tx_carrier,
            ("TX", "bytes") => &mut self.tx_bytes,
            (_, "collisions") => &mut self.collisions,
            _ => return None,
        })
    }
}

const DPCTL: &str = "dpctl/show";

/// Parses `dpctl/show -s` (or without `-s`: the ports have no counters).
pub fn dpctl_show(text: &str) -> Result<Vec<Datapath>, ParseError> {
    let mut out: Vec<Datapath> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            // `netdev@ovs-netdev:`
            let head = line.strip_suffix(':').unwrap_or(line);
            let (kind, name) = head
                .split_once('@')
                .ok_or_else(|| err(DPCTL, n, "a datapath without `type@name`", line))?;
            out.push(Datapath {
                name: name.to_owned(),
                kind: kind.to_owned(),
                ..Datapath::default()
            });
            continue;
        }
        let Some(dp) = out.last_mut() else {
            return Err(err(DPCTL, n, "a line before any datapath", line));
        };
        let t = line.trim_start();
        let num = |key: &str| -> Result<u64, ParseError> {
            field(t, key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| err(DPCTL, n, "a counter that is not a number", line))
        };
        if let Some(rest) = t.strip_prefix("lookups:") {
            dp.hit = num("hit")?;
            dp.missed = num("missed")?;
            dp.lost = num("lost")?;
            let _ = rest;
        } else if let Some(v) = t.strip_prefix("flows:") {
            dp.flows = v
                .trim()
                .parse()
                .map_err(|_| err(DPCTL, n, "a flow count that is not a number", line))?;
        } else if t.starts_with("masks:") {
            dp.mask_hit = Some(num("hit")?);
            dp.masks = Some(num("total")?);
        } else if t.starts_with("cache:") {
            dp.cache_hit = Some(num("hit")?);
        } else if t == "caches:" {
        } else if let Some(port) = t.strip_prefix("port ") {
            dp.ports
                .push(dp_port(port).ok_or_else(|| err(DPCTL, n, "a port line", line))?);
        } else if t.starts_with("RX ") || t.starts_with("TX ") || t.starts_with("collisions:") {
            let Some(p) = dp.ports.last_mut() else {
                return Err(err(DPCTL, n, "counters before any port", line));
            };
            let stats = p.stats.get_or_insert_with(PortStats::default);
            let mut dir = "";
            for item in t.split_whitespace() {
                if item == "RX" || item == "TX" {
                    dir = item;
                    continue;
                }
                let Some((key, value)) = item.split_once(':') else {
                    continue; // `(1.2 KiB)` after a byte count
                };
                if let Some(slot) = stats.slot(dir, key) {
                    *slot = stat(value)
                        .map_err(|()| err(DPCTL, n, "a counter that is not a number", line))?;
                }
            }
        } else if let Some((name, size)) = t.split_once(": size:") {
            // A cache of the `caches:` list: `masks-cache: size:256`.
            let size = size
                .trim()
                .parse()
                .map_err(|_| err(DPCTL, n, "a cache size that is not a number", line))?;
            dp.caches.push((name.to_owned(), size));
        }
    }
    Ok(out)
}

/// `2: vc2`, `0: ovs-netdev (tap)`, `3: vxlan_sys_4789 (vxlan: dst_port=4789)`.
fn dp_port(s: &str) -> Option<DpPort> {
    let (number, rest) = s.split_once(": ")?;
    let number = number.parse().ok()?;
    let (name, kind) = match rest.split_once(" (") {
        Some((name, k)) => {
            let k = k.strip_suffix(')').unwrap_or(k);
            let end = k.find([':', ',', ')']).unwrap_or(k.len());
            (name, &k[..end])
        }
        None => (rest, "system"),
    };
    Some(DpPort {
        number,
        name: name.to_owned(),
        kind: kind.to_owned(),
        stats: None,
        upcalls: None,
    })
}

// ---- coverage/show ----

/// `coverage/show`: every event that was ever hit, with its total, in the daemon's order, and
/// how many were never hit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coverage {
    pub events: Vec<(String, u64)>,
    pub never_hit: Option<u64>,
}

const COVERAGE: &str = "coverage/show";

pub fn coverage(text: &str) -> Result<Coverage, ParseError> {
    let mut out = Coverage::default();
    for (n, line) in text.lines().enumerate() {
        if let Some((head, total)) = line.rsplit_once("total: ") {
            let name = head
                .split_whitespace()
                .next()
                .ok_or_else(|| err(COVERAGE, n, "an event without a name", line))?;
            let total = total
                .trim()
                .parse()
                .map_err(|_| err(COVERAGE, n, "a total that is not a number", line))?;
            out.events.push((name.to_owned(), total));
        } else if let Some(count) = line.strip_suffix(" events never hit") {
            out.never_hit = Some(
                count
                    .trim()
                    .parse()
                    .map_err(|_| err(COVERAGE, n, "a count that is not a number", line))?,
            );
        }
    }
    Ok(out)
}

// ---- upcall/show ----

/// One datapath of `upcall/show`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Upcall {
    /// `netdev@ovs-netdev`, as dpif_name() prints it.
    pub datapath: String,
    pub flows: u64,
    pub flows_avg: u64,
    pub flows_max: u64,
    pub flow_limit: u64,
    pub offloaded_flows: Option<u64>,
    pub dump_duration_ms: u64,
    pub ufid_enabled: bool,
    /// (revalidator id, keys).
    pub revalidators: Vec<(u32, u64)>,
}

const UPCALL: &str = "upcall/show";

pub fn upcall(text: &str) -> Result<Vec<Upcall>, ParseError> {
    let mut out: Vec<Upcall> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            out.push(Upcall {
                datapath: line.strip_suffix(':').unwrap_or(line).to_owned(),
                ..Upcall::default()
            });
            continue;
        }
        let Some(u) = out.last_mut() else {
            return Err(err(UPCALL, n, "a line before any datapath", line));
        };
        let t = line.trim();
        let bad = |reason| err(UPCALL, n, reason, line);
        let Some((key, value)) = t.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "flows" => {
                // `(current 9) (avg 4) (max 8) (limit 10000)`
                let mut got = 0;
                for part in value.split(')') {
                    let part = part.trim().trim_start_matches('(');
                    let Some((k, v)) = part.split_once(' ') else {
                        continue;
                    };
                    let v: u64 = v
                        .trim()
                        .parse()
                        .map_err(|_| bad("a flow count that is not a number"))?;
                    got += 1;
                    match k {
                        "current" => u.flows = v,
                        "avg" => u.flows_avg = v,
                        "max" => u.flows_max = v,
                        "limit" => u.flow_limit = v,
                        _ => got -= 1,
                    }
                }
                if got < 4 {
                    return Err(bad("flows without current, avg, max and limit"));
                }
            }
            "offloaded flows" => {
                u.offloaded_flows = Some(
                    value
                        .parse()
                        .map_err(|_| bad("an offloaded flow count that is not a number"))?,
                );
            }
            "dump duration" => {
                u.dump_duration_ms = value
                    .strip_suffix("ms")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("a dump duration that is not N ms"))?;
            }
            "ufid enabled" => u.ufid_enabled = value == "true",
            id if id.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty() => {
                // `5: (keys 9)`
                let id = id
                    .parse()
                    .map_err(|_| bad("a revalidator id that is not a number"))?;
                let keys = value
                    .strip_prefix("(keys ")
                    .and_then(|v| v.strip_suffix(')'))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("a revalidator without `(keys N)`"))?;
                u.revalidators.push((id, keys));
            }
            _ => {}
        }
    }
    Ok(out)
}

// ---- memory/show ----

/// `memory/show`: `handlers:1 idl-cells-Open_vSwitch:210 ports:3 … udpif keys:9`, as
/// (name, count). A name may hold spaces (`udpif keys`).
pub fn memory(text: &str) -> Result<Vec<(String, u64)>, ParseError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut name = String::new();
        for item in line.split_whitespace() {
            match item.rsplit_once(':') {
                Some((k, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    if !name.is_empty() {
                        name.push(' ');
                    }
                    name.push_str(k);
                    let v = v
                        .parse()
                        .map_err(|_| err("memory/show", n, "a count too large", line))?;
                    out.push((std::mem::take(&mut name), v));
                }
                _ => {
                    if !name.is_empty() {
                        name.push(' ');
                    }
                    name.push_str(item);
                }
            }
        }
    }
    Ok(out)
}

// ---- dpif-netdev/pmd-stats-show ----

/// One thread of `dpif-netdev/pmd-stats-show`: the main thread or a PMD thread, and its integer
/// counters by the name the command prints (`packets received`, `emc hits`, `idle cycles`…).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PmdThread {
    /// `main` or `pmd`.
    pub thread: String,
    pub numa: Option<i32>,
    pub core: Option<u32>,
    pub counters: Vec<(String, u64)>,
}

impl PmdThread {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

const PMD: &str = "dpif-netdev/pmd-stats-show";

pub fn pmd_stats(text: &str) -> Result<Vec<PmdThread>, ParseError> {
    let mut out: Vec<PmdThread> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            // `main thread:`, `pmd thread numa_id 0 core_id 3:`
            let head = line.strip_suffix(':').unwrap_or(line);
            let mut words = head.split_whitespace();
            let thread = match (words.next(), words.next()) {
                (Some(t), Some("thread")) => t.to_owned(),
                _ => return Err(err(PMD, n, "a thread header", line)),
            };
            let mut t = PmdThread {
                thread,
                ..PmdThread::default()
            };
            while let Some(w) = words.next() {
                let v = words.next();
                match (w, v) {
                    ("numa_id", Some(v)) => t.numa = v.parse().ok(),
                    ("core_id", Some(v)) => t.core = v.parse().ok(),
                    _ => {}
                }
            }
            out.push(t);
            continue;
        }
        let Some(t) = out.last_mut() else {
            return Err(err(PMD, n, "a line before any thread", line));
        };
        let Some((key, value)) = line.trim().split_once(": ") else {
            continue;
        };
        if key.starts_with("avg") {
            continue; // ratios, computed from the counters
        }
        // `idle cycles: 1234 (56.00%)`
        let first = value.split_whitespace().next().unwrap_or("");
        if let Ok(v) = first.parse::<u64>() {
            t.counters.push((key.to_owned(), v));
        }
    }
    Ok(out)
}

// ---- dpctl/ct-get-limits ----

/// `dpctl/ct-get-limits`: the default zone limit and each zone with its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneLimits {
    pub default_limit: u64,
    /// (zone, limit, count).
    pub zones: Vec<(u16, u64, u64)>,
}

const CT_LIMITS: &str = "dpctl/ct-get-limits";

pub fn ct_limits(text: &str) -> Result<ZoneLimits, ParseError> {
    let mut out = ZoneLimits::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("default limit=") {
            out.default_limit = v
                .parse()
                .map_err(|_| err(CT_LIMITS, n, "a default limit that is not a number", line))?;
        } else if line.starts_with("zone=") {
            let mut zone = None;
            let mut limit = None;
            let mut count = None;
            for kv in line.split(',') {
                match kv.split_once('=') {
                    Some(("zone", v)) => zone = v.parse().ok(),
                    Some(("limit", v)) => limit = v.parse().ok(),
                    Some(("count", v)) => count = v.parse().ok(),
                    _ => {}
                }
            }
            match (zone, limit, count) {
                (Some(z), Some(l), Some(c)) => out.zones.push((z, l, c)),
                _ => {
                    return Err(err(
                        CT_LIMITS,
                        n,
                        "a zone without zone, limit and count",
                        line,
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// A reply that is one number (`dpctl/ct-get-nconns`, `dpctl/ct-get-maxconns`).
pub fn number(command: &'static str, text: &str) -> Result<u64, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| err(command, 0, "not a number", text))
}

// ---- version ----

/// `ovs-vswitchd (Open vSwitch) 3.1.0` → `3.1.0`; a DPDK build adds a `DPDK …` line.
pub fn version(text: &str) -> Option<(String, Option<String>)> {
    let mut lines = text.lines();
    let ovs = lines.next()?.rsplit(' ').next()?.to_owned();
    let dpdk = lines.find_map(|l| l.strip_prefix("DPDK ").map(|v| v.trim().to_owned()));
    Some((ovs, dpdk))
}

// ---- bond/show, lacp/show ----

/// One bond of `bond/show` with its members, merged with `lacp/show` where the bond runs LACP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bond {
    pub name: String,
    /// `active-backup`, `balance-slb`, `balance-tcp`.
    pub mode: String,
    /// `negotiated`, `configured`, `off`.
    pub lacp_status: String,
    pub members: Vec<BondMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BondMember {
    pub name: String,
    pub enabled: bool,
    pub active: bool,
    pub may_enable: bool,
    /// From `lacp/show`: `current`, `expired` or `defaulted`, and `attached` or `detached`.
    pub lacp_state: Option<(String, bool)>,
}

const BOND: &str = "bond/show";

/// `---- NAME ----` headers start a bond (and `---- NAME statistics ----` in lacp/show-stats).
fn section(line: &str) -> Option<&str> {
    line.strip_prefix("---- ")?.strip_suffix(" ----")
}

pub fn bonds(text: &str) -> Result<Vec<Bond>, ParseError> {
    let mut out: Vec<Bond> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(name) = section(line) {
            out.push(Bond {
                name: name.to_owned(),
                ..Bond::default()
            });
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let Some(b) = out.last_mut() else {
            return Err(err(BOND, n, "a line before any bond", line));
        };
        if let Some(v) = line.strip_prefix("bond_mode: ") {
            b.mode = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("lacp_status: ") {
            b.lacp_status = v.trim().to_owned();
        } else if let Some(m) = line.strip_prefix("member ") {
            // `member ba1: enabled`
            let (name, state) = m
                .rsplit_once(": ")
                .ok_or_else(|| err(BOND, n, "a member without a state", line))?;
            b.members.push(BondMember {
                name: name.to_owned(),
                enabled: state.trim() == "enabled",
                ..BondMember::default()
            });
        } else if let Some(m) = b.members.last_mut().filter(|_| line.starts_with("  ")) {
            let t = line.trim();
            if t == "active member" {
                m.active = true;
            } else if let Some(v) = t.strip_prefix("may_enable: ") {
                m.may_enable = v == "true";
            }
        }
    }
    Ok(out)
}

/// Adds `lacp/show`'s member states (`member: ba1: current attached`) to `bonds`.
pub fn merge_lacp(bonds: &mut [Bond], text: &str) -> Result<(), ParseError> {
    let mut bond: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(name) = section(line) {
            bond = bonds.iter().position(|b| b.name == name);
            continue;
        }
        let Some(rest) = line.strip_prefix("member: ") else {
            continue;
        };
        let Some(b) = bond else {
            continue;
        };
        let (name, state) = rest
            .rsplit_once(": ")
            .ok_or_else(|| err("lacp/show", n, "a member without a state", line))?;
        let mut words = state.split_whitespace();
        let timer = words.next().unwrap_or("").to_owned();
        let attached = words.any(|w| w == "attached");
        if let Some(m) = bonds[b].members.iter_mut().find(|m| m.name == name) {
            m.lacp_state = Some((timer, attached));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vswitchd/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIX}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn dpctl_show_userspace_captured() {
        let dps = dpctl_show(&fixture("dpctl-show-s.txt")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dps.len(), 1);
        let d = &dps[0];
        assert_eq!((d.kind.as_str(), d.name.as_str()), ("netdev", "ovs-netdev"));
        assert_eq!((d.hit, d.missed, d.lost, d.flows), (37, 35, 0, 6));
        assert_eq!(d.masks, None);
        let br0 = d
            .ports
            .iter()
            .find(|p| p.name == "br0")
            .unwrap_or_else(|| panic!("br0"));
        assert_eq!((br0.number, br0.kind.as_str()), (1, "tap"));
        assert_eq!(br0.stats.and_then(|s| s.tx_dropped), Some(21));
        let vc1 = d
            .ports
            .iter()
            .find(|p| p.name == "vc1")
            .unwrap_or_else(|| panic!("vc1"));
        assert_eq!(vc1.kind, "system");
        assert!(vc1.stats.and_then(|s| s.rx_bytes).is_some_and(|b| b > 0));
        assert!(d.ports.iter().all(|p| p.stats.is_some()));
    }

    /// The kernel datapath's shape, as `show_dpif` in lib/dpctl.c writes it (masks, the masks
    /// cache, `?` for counters a device lacks, a human size after a byte count, a tunnel port's
    /// configuration).
    #[test]
    fn dpctl_show_kernel_shape() {
        let text = "system@ovs-system:\n  lookups: hit:1203 missed:57 lost:2\n  flows: 4\n  masks: hit:1500 total:3 hit/pkt:1.19\n  cache: hit:1100 hit-rate:87.30%\n  caches:\n    masks-cache: size:256\n  port 0: ovs-system (internal)\n    RX packets:0 errors:0 dropped:0 overruns:0 frame:0\n    TX packets:0 errors:0 dropped:0 aborted:0 carrier:0\n    collisions:0\n    RX bytes:0  TX bytes:0\n  port 1: vxlan_sys_4789 (vxlan: packet_type=ptap, dst_port=4789)\n    RX packets:? errors:? dropped:? overruns:? frame:?\n    TX packets:12 errors:0 dropped:0 aborted:? carrier:?\n    collisions:?\n    RX bytes:?  TX bytes:1536000 (1.5 MiB)\n";
        let dps = dpctl_show(text).unwrap_or_else(|e| panic!("{e}"));
        let d = &dps[0];
        assert_eq!((d.hit, d.missed, d.lost, d.flows), (1203, 57, 2, 4));
        assert_eq!(
            (d.mask_hit, d.masks, d.cache_hit),
            (Some(1500), Some(3), Some(1100))
        );
        assert_eq!(d.caches, vec![("masks-cache".to_owned(), 256)]);
        assert_eq!(d.ports[0].kind, "internal");
        let vx = &d.ports[1];
        assert_eq!(
            (vx.name.as_str(), vx.kind.as_str()),
            ("vxlan_sys_4789", "vxlan")
        );
        let s = vx.stats.unwrap_or_default();
        assert_eq!(
            (s.rx_packets, s.tx_packets, s.tx_bytes, s.tx_aborted),
            (None, Some(12), Some(1_536_000), None)
        );
    }

    #[test]
    fn dpctl_show_refuses_garbage_counters() {
        let e = dpctl_show("system@ovs-system:\n  lookups: hit:x missed:1 lost:0\n");
        assert_eq!(e.map_err(|e| e.line), Err(2));
        assert!(dpctl_show("  flows: 3\n").is_err());
    }

    #[test]
    fn coverage_captured() {
        let c = coverage(&fixture("coverage-show.txt")).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.events.len() > 20, "{}", c.events.len());
        assert_eq!(c.never_hit, Some(107));
        assert!(
            c.events
                .iter()
                .any(|(k, v)| k == "netlink_sent" && *v == 1249)
        );
        assert!(coverage("bridge_reconfigure 0.0/sec 0.000/sec 0.0000/sec   total: x\n").is_err());
    }

    #[test]
    fn upcall_captured() {
        let u = upcall(&fixture("upcall-show.txt")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            u,
            vec![Upcall {
                datapath: "netdev@ovs-netdev".into(),
                flows: 6,
                flows_avg: 9,
                flows_max: 16,
                flow_limit: 16000,
                offloaded_flows: None,
                dump_duration_ms: 1,
                ufid_enabled: true,
                revalidators: vec![(5, 6)],
            }]
        );
        assert!(upcall("x:\n  flows         : (current 9) (avg 4)\n").is_err());
    }

    #[test]
    fn memory_captured() {
        let m = memory(&fixture("memory-show.txt")).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "handlers",
                "idl-cells-Open_vSwitch",
                "ports",
                "revalidators",
                "rules",
                "udpif keys"
            ]
        );
        assert_eq!(m[5].1, 6);
    }

    #[test]
    fn pmd_captured_and_pmd_threads() {
        let t =
            pmd_stats(&fixture("dpif-netdev-pmd-stats-show.txt")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].thread.as_str(), t[0].numa, t[0].core),
            ("main", None, None)
        );
        assert!(t[0].get("packets received").is_some_and(|v| v > 0));
        assert_eq!(t[0].get("miss with failed upcall"), Some(0));
        assert_eq!(t[0].get("avg. datapath passes per packet"), None);
        let text = "pmd thread numa_id 0 core_id 3:\n  packets received: 10\n  emc hits: 7\n  idle cycles: 900 (90.00%)\n  processing cycles: 100 (10.00%)\n  avg cycles per packet: 100.00 (1000/10)\n";
        let t = pmd_stats(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (t[0].thread.as_str(), t[0].numa, t[0].core),
            ("pmd", Some(0), Some(3))
        );
        assert_eq!(
            (t[0].get("idle cycles"), t[0].get("processing cycles")),
            (Some(900), Some(100))
        );
    }

    #[test]
    fn ct_limits_and_numbers() {
        assert_eq!(
            ct_limits(&fixture("dpctl-ct-get-limits.txt")),
            Ok(ZoneLimits::default())
        );
        let z = ct_limits("default limit=10\nzone=5,limit=100,count=3\nzone=7,limit=0,count=0\n");
        assert_eq!(
            z,
            Ok(ZoneLimits {
                default_limit: 10,
                zones: vec![(5, 100, 3), (7, 0, 0)]
            })
        );
        assert!(ct_limits("zone=5,limit=100\n").is_err());
        assert_eq!(
            number("n", &fixture("dpctl-ct-get-maxconns.txt")),
            Ok(3_000_000)
        );
        assert!(number("n", "lots").is_err());
    }

    #[test]
    fn version_captured() {
        assert_eq!(
            version(&fixture("version.txt")),
            Some(("3.1.0".into(), None))
        );
        assert_eq!(
            version("ovs-vswitchd (Open vSwitch) 3.3.0\nDPDK 23.11.0\n"),
            Some(("3.3.0".into(), Some("23.11.0".into())))
        );
    }

    #[test]
    fn bonds_and_lacp_captured() {
        let mut b = bonds(&fixture("bond-show.txt")).unwrap_or_else(|e| panic!("{e}"));
        merge_lacp(&mut b, &fixture("lacp-show.txt")).unwrap_or_else(|e| panic!("{e}"));
        b.sort_by(|x, y| x.name.cmp(&y.name));
        let a = &b[0];
        assert_eq!(
            (a.name.as_str(), a.mode.as_str(), a.lacp_status.as_str()),
            ("bondA", "active-backup", "negotiated")
        );
        let ba1 = &a
            .members
            .iter()
            .find(|m| m.name == "ba1")
            .unwrap_or_else(|| panic!("ba1"));
        let ba2 = &a
            .members
            .iter()
            .find(|m| m.name == "ba2")
            .unwrap_or_else(|| panic!("ba2"));
        assert!(ba1.enabled && ba1.active && ba1.may_enable);
        assert_eq!(ba1.lacp_state, Some(("current".into(), true)));
        assert!(!ba2.enabled && !ba2.active && !ba2.may_enable);
        assert_eq!(ba2.lacp_state, Some(("defaulted".into(), false)));
    }
}
