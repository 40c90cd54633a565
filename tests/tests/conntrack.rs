//! Root-only: the `conntrack` source against this host's kernel, compared with what
//! `conntrack -S`, `conntrack -S expect` and `conntrack -C` print at the same moment.
//!
//! Conntrack's statistics belong to a network namespace and the source reads the daemon's own,
//! so the test runs on a thread of its own in a fresh namespace (`unshare(CLONE_NEWNET)`), where
//! it starts the daemon, so nothing else on the machine moves the figures. There conntrack
//! tracks nothing until a rule needs it: an nft table of ours counts `ct state new` on output
//! (and sends the daemon's own HTTP port through `notrack`, so scraping adds no entry). Then real
//! TCP connections over loopback (some held open: entries), and bare TCP ACKs of no connection
//! with `nf_conntrack_tcp_loose=0` (counted `invalid`). Counters are a sandwich (`conntrack -S`
//! before ≤ served ≤ after, per CPU and statistic); the table's fill is equal when idle.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use testbed::daemon::Daemon;
use testbed::prom;

fn run(prog: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {prog}"))?;
    if !out.status.success() {
        bail!(
            "{prog} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `(cpu, statistic) -> value` from `conntrack -S` (or `-S expect`).
type Stats = BTreeMap<(String, String), u64>;

fn conntrack_s(expect: bool) -> Result<Stats> {
    let args: &[&str] = if expect { &["-S", "expect"] } else { &["-S"] };
    let text = run("conntrack", args)?;
    let mut out = Stats::new();
    for line in text.lines() {
        let mut cpu = None;
        for w in line.split_whitespace() {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            if k == "cpu" {
                cpu = Some(v.to_owned());
            } else if let Some(c) = &cpu {
                out.insert((c.clone(), k.to_owned()), v.parse()?);
            }
        }
    }
    if out.is_empty() {
        bail!("conntrack {args:?} printed nothing: {text}");
    }
    Ok(out)
}

fn conntrack_count() -> Result<u64> {
    Ok(run("conntrack", &["-C"])?.trim().parse()?)
}

/// What the daemon served: `conntrack_<stat>_total{cpu}` for each statistic of `tool`'s, and
/// the entries and limit.
struct Served {
    stats: Stats,
    entries: Option<f64>,
    max_entries: Option<f64>,
}

fn scrape(d: &Daemon) -> Result<Served> {
    let (status, body) = d.get("/metrics")?;
    if status != 200 {
        bail!("/metrics answered {status}: {body}");
    }
    if !body.contains("dataplane_collector_scrape_success{collector=\"conntrack\"} 1") {
        bail!("the conntrack collector failed:\n{body}");
    }
    let samples = prom::parse(&body)?;
    let mut stats = Stats::new();
    for s in &samples {
        if let Some(stat) = s
            .name
            .strip_prefix("conntrack_")
            .and_then(|n| n.strip_suffix("_total"))
        {
            stats.insert((s.label("cpu").to_owned(), stat.to_owned()), s.value as u64);
        }
    }
    let one = |name: &str| prom::by_name(&samples, name).first().map(|s| s.value);
    Ok(Served {
        stats,
        entries: one("conntrack_entries"),
        max_entries: one("conntrack_max_entries"),
    })
}

/// Bare TCP ACKs from 127.0.0.1 to port 9, of no connection.
fn send_stray_acks(n: u16) -> Result<()> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, sendto, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )?;
    let dst = SockaddrIn::new(127, 0, 0, 1, 0);
    for i in 0..n {
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&(40000 + i).to_be_bytes()); // source port
        tcp[2..4].copy_from_slice(&9u16.to_be_bytes()); // destination port
        tcp[4..8].copy_from_slice(&1u32.to_be_bytes()); // seq
        tcp[8..12].copy_from_slice(&1u32.to_be_bytes()); // ack
        tcp[12] = 5 << 4; // data offset: 5 words
        tcp[13] = 0x10; // ACK
        tcp[14..16].copy_from_slice(&1024u16.to_be_bytes()); // window
        sendto(fd.as_raw_fd(), &tcp, &dst, MsgFlags::empty())?;
    }
    Ok(())
}

/// Checks `before ≤ served ≤ after` for every statistic the tool printed; returns how many.
fn sandwich(before: &Stats, served: &Stats, after: &Stats) -> Result<usize> {
    for (key, b) in before {
        let Some(a) = after.get(key) else {
            bail!("{key:?} gone from conntrack -S");
        };
        let Some(s) = served.get(key) else {
            bail!("{key:?} not served (served: {served:?})");
        };
        if !(b <= s && s <= a) {
            bail!("{key:?}: conntrack -S {b} before, {a} after, served {s}");
        }
    }
    Ok(before.len())
}

fn in_fresh_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
    run("ip", &["link", "set", "lo", "up"])?;
    let d = Daemon::start(&[
        "--collector.disable-defaults".to_owned(),
        "--collector.conntrack".to_owned(),
    ])?;

    // Nothing tracked yet: every counter zero, no entries, as conntrack says.
    let served = scrape(&d)?;
    let tool = conntrack_s(false)?;
    assert_eq!(sandwich(&tool, &served.stats, &tool)?, tool.len());
    assert_eq!(served.entries, Some(conntrack_count()? as f64));
    assert_eq!(served.entries, Some(0.0));
    let max: f64 = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")?
        .trim()
        .parse()?;
    assert_eq!(served.max_entries, Some(max));

    // Track the namespace's traffic, except the daemon's HTTP port.
    let port = d.addr.port().to_string();
    let ruleset = format!(
        "table inet dpc_conntrack_test {{
            chain raw_out {{ type filter hook output priority raw; tcp dport {port} notrack; tcp sport {port} notrack; }}
            chain raw_pre {{ type filter hook prerouting priority raw; tcp dport {port} notrack; tcp sport {port} notrack; }}
            chain out {{ type filter hook output priority filter; ct state new counter; }}
        }}"
    );
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), ruleset)?;
    run("nft", &["-f", &file.path().to_string_lossy()])?;
    std::fs::write("/proc/sys/net/netfilter/nf_conntrack_tcp_loose", "0")?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut held = Vec::new();
    for i in 0..8 {
        let c = TcpStream::connect(addr)?;
        let (a, _) = listener.accept()?;
        if i < 3 {
            held.push((c, a));
        }
    }
    const STRAY: u16 = 5;
    send_stray_acks(STRAY)?;

    // The sandwich, until an idle moment (the same count before and after) is seen.
    let mut checked = 0;
    for _ in 0..10 {
        let count_before = conntrack_count()?;
        let before = conntrack_s(false)?;
        let before_exp = conntrack_s(true)?;
        let served = scrape(&d)?;
        let after = conntrack_s(false)?;
        let after_exp = conntrack_s(true)?;
        let count_after = conntrack_count()?;
        let n = sandwich(&before, &served.stats, &after)?;
        let m = sandwich(&before_exp, &served.stats, &after_exp)?;
        // 10 statistics and 3 of expectations per CPU on this kernel.
        assert!(n >= 10 && n % 10 == 0, "{before:?}");
        assert!(m >= 3 && m % 3 == 0, "{before_exp:?}");
        let invalid: u64 = served
            .stats
            .iter()
            .filter(|((_, s), _)| s == "invalid")
            .map(|(_, v)| v)
            .sum();
        assert!(
            invalid >= u64::from(STRAY),
            "{STRAY} stray ACKs, invalid {invalid}"
        );
        if count_before == count_after {
            assert_eq!(served.entries, Some(count_before as f64));
            // Eight connections made, three held open: at least those three are tracked.
            assert!(count_before >= 3, "{count_before} entries");
            checked += 1;
            break;
        }
    }
    assert_eq!(checked, 1, "no idle moment in 10 tries");
    drop(held);
    Ok(())
}

#[test]
fn served_statistics_equal_conntrack_s_in_a_fresh_namespace() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    for tool in ["conntrack", "nft"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("{tool} is not installed (apt-get install conntrack nftables)");
        }
    }
    // A thread of its own, thrown away after: it is the one that leaves the host's namespace.
    std::thread::spawn(in_fresh_namespace)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}
