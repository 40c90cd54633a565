//! `bench-ipvs [SERVICES [DESTS [RUNS]]]`: the cost of one IPVS scrape with many services,
//! side by side with what node_exporter does (read and parse `/proc/net/ip_vs` and
//! `/proc/net/ip_vs_stats`), in one run on the same kernel. Prints `DPC-LAB-BENCH` lines the
//! host turns into a BENCHMARKS.md table.

use crate::{Daemon, ipvsadm, module_loaded, run_with_input};
use anyhow::{Context, Result, bail};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// What node_exporter's procfs library takes from one `/proc/net/ip_vs` backend line.
#[derive(Debug)]
#[allow(dead_code)] // Read only to make the parse real.
struct Backend {
    local: IpAddr,
    local_port: u16,
    local_mark: String,
    proto: String,
    remote: IpAddr,
    remote_port: u16,
    weight: u64,
    active: u64,
    inactive: u64,
}

fn hex_addr(s: &str) -> Result<(IpAddr, u16)> {
    let (addr, port) = s.rsplit_once(':').context("addr:port")?;
    let port = u16::from_str_radix(port, 16)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let ip = if addr.len() == 8 {
        IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16)?))
    } else {
        IpAddr::V6(addr.parse::<Ipv6Addr>()?)
    };
    Ok((ip, port))
}

/// `/proc/net/ip_vs` parsed as node_exporter's procfs does (`IPVSBackendStatus`).
fn parse_proc_ip_vs(text: &str) -> Result<Vec<Backend>> {
    let mut out = Vec::new();
    let (mut local, mut local_port, mut mark, mut proto) = (
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        0u16,
        String::new(),
        String::new(),
    );
    for line in text.lines().skip(3) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["TCP" | "UDP" | "SCTP", addr, ..] => {
                (local, local_port) = hex_addr(addr)?;
                proto = f[0].to_owned();
                mark.clear();
            }
            ["FWM", m, ..] => {
                local = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                local_port = 0;
                mark = (*m).to_owned();
                proto.clear();
            }
            ["->", remote, _fwd, weight, active, inactive] => {
                let (remote, remote_port) = hex_addr(remote)?;
                out.push(Backend {
                    local,
                    local_port,
                    local_mark: mark.clone(),
                    proto: proto.clone(),
                    remote,
                    remote_port,
                    weight: weight.parse()?,
                    active: active.parse()?,
                    inactive: inactive.parse()?,
                });
            }
            _ => bail!("unexpected /proc/net/ip_vs line {line:?}"),
        }
    }
    Ok(out)
}

/// `/proc/net/ip_vs_stats`: the totals (hexadecimal), as procfs's `IPVSStats`.
fn parse_proc_ip_vs_stats(text: &str) -> Result<[u64; 5]> {
    let line = text.lines().nth(2).context("ip_vs_stats: no totals line")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| u64::from_str_radix(v, 16))
        .collect::<Result<_, _>>()?;
    let [a, b, c, d, e] = f.as_slice() else {
        bail!("ip_vs_stats: {line:?}");
    };
    Ok([*a, *b, *c, *d, *e])
}

struct Timing {
    mean_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
}

fn measure(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    for _ in 0..3 {
        f()?;
    }
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    t.sort_by(f64::total_cmp);
    let at = |q: f64| t[((t.len() as f64 - 1.0) * q).round() as usize];
    Ok(Timing {
        mean_ms: t.iter().sum::<f64>() / t.len() as f64,
        p50_ms: at(0.5),
        p90_ms: at(0.9),
    })
}

fn report(name: &str, t: &Timing, extra: &str) {
    println!(
        "DPC-LAB-BENCH name={name} mean_ms={:.2} p50_ms={:.2} p90_ms={:.2} {extra}",
        t.mean_ms, t.p50_ms, t.p90_ms
    );
}

pub fn run(args: &[String]) -> Result<()> {
    let num = |i: usize, default: usize| -> Result<usize> {
        args.get(i)
            .map_or(Ok(default), |s| s.parse().context("number"))
    };
    let (services, dests, runs) = (num(0, 1000)?, num(1, 4)?, num(2, 20)?);
    if !module_loaded("ip_vs") {
        bail!("the ip_vs module is not loaded");
    }
    // One ipvsadm process restores the whole table.
    let mut rules = String::with_capacity(services * (dests + 1) * 48);
    for s in 0..services {
        let vip = format!("10.100.{}.{}:80", s / 250, s % 250 + 1);
        rules.push_str(&format!("-A -t {vip} -s rr\n"));
        for d in 0..dests {
            rules.push_str(&format!(
                "-a -t {vip} -r 10.200.{}.{}:{} -m -w {}\n",
                s / 250,
                s % 250 + 1,
                8080 + d,
                d + 1
            ));
        }
    }
    let start = Instant::now();
    run_with_input("/usr/sbin/ipvsadm", &["-R"], &rules)?;
    let listed = ipvsadm::parse_list(&crate::ipvsadm_in(None, &["-Ln", "--exact"])?)?;
    let n_dests: usize = listed.values().map(|l| l.dests.len()).sum();
    if listed.len() != services || n_dests != services * dests {
        bail!(
            "ipvsadm -R made {} services, {n_dests} destinations",
            listed.len()
        );
    }
    println!(
        "bench-ipvs: {services} services x {dests} destinations in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let daemon = Daemon::start(9105, &["--collector.disable-defaults", "--collector.ipvs"])?;
    let body = daemon.metrics()?;
    let series = body.lines().filter(|l| l.starts_with("ipvs_")).count();
    if !body.contains(&format!("ipvs_services{{namespace=\"\"}} {services}\n")) {
        bail!("the daemon does not see {services} services");
    }
    let scrape = measure(runs, || daemon.metrics().map(|_| ()))?;
    report(
        "scrape",
        &scrape,
        &format!("bytes={} series={series}", body.len()),
    );

    use dataplane_collector::sources::ipvs::read_own_namespace;
    let mut got = 0;
    let netlink = measure(runs, || {
        got = read_own_namespace(Duration::from_secs(10))?.len();
        Ok(())
    })?;
    if got != services {
        bail!("the netlink read found {got} services");
    }
    report("netlink", &netlink, &format!("services={got}"));

    // Where the netlink time goes: the one service dump, against the whole read.
    use dataplane_collector::netlink::{Protocol, Socket};
    use dataplane_collector::sources::ipvs::{parse, resolve_family};
    let mut sock = Socket::open(Protocol::Generic, Duration::from_secs(10))?;
    let family = resolve_family(&mut sock)?.context("no IPVS family")?;
    let services_only = measure(runs, || {
        let seq = sock.next_seq();
        let mut n = 0;
        sock.dump(&parse::services_request(family, seq), seq, |_| {
            n += 1;
            Ok::<(), std::convert::Infallible>(())
        })?;
        if n != services {
            bail!("{n} services in the dump");
        }
        Ok(())
    })?;
    report("netlink-services", &services_only, "");

    let mut proc_bytes = 0;
    let mut backends = 0;
    let procfs = measure(runs, || {
        let a = std::fs::read_to_string("/proc/net/ip_vs")?;
        let b = std::fs::read_to_string("/proc/net/ip_vs_stats")?;
        proc_bytes = a.len() + b.len();
        backends = parse_proc_ip_vs(&a)?.len();
        parse_proc_ip_vs_stats(&b)?;
        Ok(())
    })?;
    if backends != services * dests {
        bail!("/proc/net/ip_vs parsed to {backends} backends");
    }
    report(
        "procfs",
        &procfs,
        &format!("bytes={proc_bytes} backends={backends}"),
    );

    let ipvsadm_run = measure(runs.min(10), || {
        crate::ipvsadm_in(None, &["-Ln", "--stats", "--exact"]).map(|_| ())
    })?;
    report("ipvsadm", &ipvsadm_run, "");
    println!(
        "DPC-LAB-BENCH name=setup services={services} dests={dests} runs={runs} cpus={}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files() -> Result<()> {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
                    Prot LocalAddress:Port Scheduler Flags\n  \
                    -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
                    TCP  0A600001:0050 rr \n  \
                    -> 0A0A0102:1F90      Masq    1      2          3         \n\
                    TCP  [FD00:0096:0000:0000:0000:0000:0000:0010]:0050 rr \n  \
                    -> [FD00:0010:0001:0000:0000:0000:0000:0002]:1F90      Masq    1      0          0         \n\
                    FWM  00000007 rr \n  \
                    -> 0A0A0102:0000      Masq    1      0          0         \n";
        let b = parse_proc_ip_vs(text)?;
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].local, IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!((b[0].remote_port, b[0].active, b[0].inactive), (8080, 2, 3));
        assert_eq!(b[1].remote.to_string(), "fd00:10:1::2");
        assert_eq!(b[2].local_mark, "00000007");
        let stats = "   Total Incoming Outgoing         Incoming         Outgoing\n   \
                     Conns  Packets  Packets            Bytes            Bytes\n       \
                     1A       B6       82             3986            12D687\n";
        assert_eq!(
            parse_proc_ip_vs_stats(stats)?,
            [26, 182, 130, 0x3986, 0x12d687]
        );
        Ok(())
    }
}
