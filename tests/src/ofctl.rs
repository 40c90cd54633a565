//! Parsers for `ovs-ofctl` text: what the seed exporter scraped, and what we compare against.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

/// One `ovs-ofctl dump-flows` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub cookie: u64,
    pub table: u8,
    pub packets: u64,
    pub bytes: u64,
    pub priority: u16,
    /// The match, without `priority=`.
    pub matches: String,
    pub actions: String,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = rest.find([',', ' ']).unwrap_or(rest.len());
    Some(&rest[..end])
}

pub fn parse_flows(text: &str) -> Result<Vec<Flow>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with("cookie=") {
            continue;
        }
        let cookie = field(line, "cookie=").context("cookie")?;
        let cookie = u64::from_str_radix(cookie.trim_start_matches("0x"), 16)?;
        let table = field(line, "table=").context("table")?.parse()?;
        let packets = field(line, "n_packets=").context("n_packets")?.parse()?;
        let bytes = field(line, "n_bytes=").context("n_bytes")?.parse()?;
        // The match is everything between the last counter-ish field and " actions=".
        let (head, actions) = line.split_once(" actions=").context("actions")?;
        let last = head.rsplit(", ").next().context("match")?;
        const STATS: [&str; 10] = [
            "cookie=",
            "duration=",
            "table=",
            "n_packets=",
            "n_bytes=",
            "idle_timeout=",
            "hard_timeout=",
            "idle_age=",
            "hard_age=",
            "importance=",
        ];
        let (priority, matches) = match last.strip_prefix("priority=") {
            Some(rest) => match rest.split_once(',') {
                Some((p, m)) => (p.parse()?, m.to_owned()),
                None => (rest.parse()?, String::new()),
            },
            None if STATS.iter().any(|k| last.starts_with(k)) => (32768, String::new()),
            None => (32768, last.to_owned()),
        };
        out.push(Flow {
            cookie,
            table,
            packets,
            bytes,
            priority,
            matches,
            actions: actions.to_owned(),
        });
    }
    Ok(out)
}

/// `ovs-ofctl dump-ports`: per port (`LOCAL` or a number) the twelve counters, `None` for `?`.
pub fn parse_ports(text: &str) -> Result<BTreeMap<String, BTreeMap<String, Option<u64>>>> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        let (dir, rest) = if let Some(r) = t.strip_prefix("port ") {
            let (name, rest) = r.split_once(':').context("port line")?;
            current = Some(name.trim().trim_matches('"').to_owned());
            let rest = rest.trim();
            ("rx", rest.strip_prefix("rx ").context("rx")?)
        } else if let Some(r) = t.strip_prefix("tx ") {
            ("tx", r)
        } else {
            continue;
        };
        let Some(port) = current.clone() else {
            bail!("counters before a port line")
        };
        let entry: &mut BTreeMap<String, Option<u64>> = out.entry(port).or_default();
        for kv in rest.split(", ") {
            let (k, v) = kv.split_once('=').context("counter")?;
            let v = if v == "?" { None } else { Some(v.parse()?) };
            entry.insert(format!("{dir}_{k}"), v);
        }
    }
    Ok(out)
}

/// `ovs-ofctl dump-ports-desc`: port number (or `LOCAL`) to name.
pub fn parse_port_names(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some((num, rest)) = t.split_once('(')
            && let Some((name, _)) = rest.split_once("):")
        {
            let num = num.trim();
            if num.chars().all(|c| c.is_ascii_digit()) || num == "LOCAL" {
                out.insert(num.to_owned(), name.to_owned());
            }
        }
    }
    out
}

/// One `ovs-ofctl -O OpenFlow13 dump-group-stats` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packets: u64,
    pub bytes: u64,
    pub buckets: Vec<(u64, u64)>,
}

pub fn parse_group_stats(text: &str) -> Result<Vec<GroupStats>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if !t.starts_with("group_id=") {
            continue;
        }
        let mut g = GroupStats::default();
        let mut parts = t.split(':');
        let head = parts.next().context("group")?;
        for kv in head.split(',') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "group_id" => g.group_id = v.parse()?,
                "ref_count" => g.ref_count = v.parse()?,
                "packet_count" => g.packets = v.parse()?,
                "byte_count" => g.bytes = v.parse()?,
                _ => {}
            }
        }
        for bucket in parts {
            let mut p = 0;
            let mut b = 0;
            for kv in bucket.split(',') {
                match kv.split_once('=') {
                    Some(("packet_count", v)) => p = v.parse()?,
                    Some(("byte_count", v)) => b = v.parse()?,
                    _ => {}
                }
            }
            g.buckets.push((p, b));
        }
        out.push(g);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows() {
        let text = "NXST_FLOW reply (xid=0x4):\n cookie=0x1001, duration=1.5s, table=0, n_packets=3, n_bytes=294, idle_age=0, priority=90,ip actions=goto_table:1\n cookie=0x0, duration=2s, table=1, n_packets=0, n_bytes=0, idle_age=2, actions=drop\n cookie=0x0, duration=2s, table=1, n_packets=0, n_bytes=0, idle_age=2, ip actions=drop\n";
        let f = parse_flows(text).unwrap_or_default();
        assert_eq!(f.len(), 3);
        assert_eq!((f[2].priority, f[2].matches.as_str()), (32768, "ip"));
        assert_eq!(
            (f[0].cookie, f[0].priority, f[0].matches.as_str()),
            (0x1001, 90, "ip")
        );
        assert_eq!(
            (f[1].priority, f[1].matches.as_str(), f[1].actions.as_str()),
            (32768, "", "drop")
        );
    }

    #[test]
    fn ports_and_groups() {
        let text = "OFPST_PORT reply (xid=0x2): 2 ports\n  port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0\n           tx pkts=1, bytes=70, drop=?, errs=0, coll=0\n  port  1: rx pkts=5, bytes=10, drop=0, errs=0, frame=0, over=0, crc=0\n           tx pkts=0, bytes=0, drop=0, errs=0, coll=0\n";
        let p = parse_ports(text).unwrap_or_default();
        assert_eq!(p["LOCAL"]["tx_bytes"], Some(70));
        assert_eq!(p["LOCAL"]["tx_drop"], None);
        assert_eq!(p["1"]["rx_pkts"], Some(5));
        let g = parse_group_stats(" group_id=1,duration=0.017s,ref_count=1,packet_count=4,byte_count=40,bucket0:packet_count=1,byte_count=10,bucket1:packet_count=3,byte_count=30\n").unwrap_or_default();
        assert_eq!(g[0].buckets, vec![(1, 10), (3, 30)]);
        assert_eq!(g[0].ref_count, 1);
    }
}
