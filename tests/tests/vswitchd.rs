//! Root-only: the vswitchd source against a real ovs-vswitchd (userspace datapath) with real
//! traffic: every datapath, port, coverage, upcall, memory and PMD figure it serves lies between
//! what `ovs-appctl` prints just before and just after the scrape (equal when nothing moved);
//! conntrack settings made with `ovs-appctl` are served; an LACP bond of two veths shows a
//! member going down; an ovs-vswitchd killed and restarted under the daemon is followed to its
//! new pid with no series of the old process left.
//!
//! The `ovs-appctl` text is read here with code of its own (not the source's parsers), so a
//! parser bug cannot agree with itself.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use testbed::daemon::Daemon;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};
use testbed::topology::Topology;

fn scrape(d: &Daemon) -> Result<Vec<Sample>> {
    let (status, body) = d.get("/metrics")?;
    if status != 200 {
        bail!("HTTP {status}: {body}");
    }
    prom::parse(&body)
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && want.iter().all(|(k, v)| s.label(k) == *v))
        .map(|s| s.value)
}

fn start(ovs: &Ovs) -> Result<Daemon> {
    Daemon::start(&[
        "--collector.disable-defaults".to_owned(),
        "--collector.vswitchd".to_owned(),
        // The datapaths' own figures (of the userspace datapath here, read from ovs-vswitchd).
        "--collector.datapath".to_owned(),
        "--ovs.rundir".to_owned(),
        ovs.rundir().to_string_lossy().into_owned(),
    ])
}

/// Every `NAME:NUMBER` on a line, with the `RX`/`TX` word before it as a prefix
/// (`RX packets:7` → `RX packets`).
fn numbers(line: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut prefix = "";
    for w in line.split_whitespace() {
        if w == "RX" || w == "TX" {
            prefix = w;
            continue;
        }
        if let Some((k, v)) = w.split_once(':')
            && let Ok(v) = v.parse::<u64>()
        {
            let k = if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix} {k}")
            };
            out.push((k, v));
        }
    }
    out
}

/// `dpctl/show -s` as (figure, value): `lookups hit`, `flows`, `port vc1 RX packets`…
fn dpctl_figures(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut port = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("port ") {
            // `port 2: vc2` / `port 0: ovs-netdev (tap)`
            let name = rest.split(": ").nth(1).unwrap_or("");
            port = name.split(" (").next().unwrap_or("").to_owned();
        } else if let Some(rest) = t.strip_prefix("lookups:") {
            for (k, v) in numbers(rest) {
                out.insert(format!("lookups {k}"), v);
            }
        } else if let Some(rest) = t.strip_prefix("flows:") {
            out.insert("flows".into(), rest.trim().parse().unwrap_or(u64::MAX));
        } else if !port.is_empty() {
            for (k, v) in numbers(t) {
                out.insert(format!("port {port} {k}"), v);
            }
        }
    }
    out
}

/// The same figures from the daemon's series.
fn served_figures(samples: &[Sample]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in samples {
        let v = s.value as u64;
        let key = match s.name.as_str() {
            "ovs_datapath_lookups_total" => format!("lookups {}", s.label("result")),
            "ovs_datapath_flows" => "flows".to_owned(),
            n => {
                let Some(rest) = n.strip_prefix("ovs_datapath_port_") else {
                    continue;
                };
                let rest = rest.trim_end_matches("_total");
                let (dir, what) = rest.split_once('_').unwrap_or(("", ""));
                let dir = if dir == "receive" { "RX" } else { "TX" };
                format!("port {} {dir} {what}", s.label("port"))
            }
        };
        out.insert(key, v);
    }
    out
}

/// `coverage/show`'s totals by event.
fn coverage(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (head, total) = l.split_once("total: ")?;
            Some((
                head.split(' ').next()?.to_owned(),
                total.trim().parse().ok()?,
            ))
        })
        .collect()
}

fn between(what: &str, before: u64, got: u64, after: u64) -> Result<()> {
    if got < before || got > after {
        bail!("{what}: served {got}, ovs-appctl printed {before} before and {after} after");
    }
    Ok(())
}

#[test]
fn figures_lie_between_ovs_appctl_before_and_after() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start()?, 3)?;
    topo.traffic(2)?;
    topo.settle()?;
    let ovs = &topo.ovs;
    ovs.appctl(&["dpctl/ct-set-maxconns", "123456"])?;
    ovs.appctl(&["dpctl/ct-set-limits", "zone=5,limit=77"])?;
    let d = start(ovs)?;

    let dp_before = ovs.appctl(&["dpctl/show", "-s"])?;
    let cov_before = ovs.appctl(&["coverage/show"])?;
    let pmd_before = ovs.appctl(&["dpif-netdev/pmd-stats-show"])?;
    let s = scrape(&d)?;
    let dp_after = ovs.appctl(&["dpctl/show", "-s"])?;
    let cov_after = ovs.appctl(&["coverage/show"])?;
    let pmd_after = ovs.appctl(&["dpif-netdev/pmd-stats-show"])?;

    assert_eq!(
        value(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "vswitchd")]
        ),
        Some(1.0)
    );
    // Datapath and port figures.
    let (before, after) = (dpctl_figures(&dp_before), dpctl_figures(&dp_after));
    let served = served_figures(&s);
    let mut checked = 0;
    for (k, b) in &before {
        let Some(got) = served.get(k) else {
            // dpctl prints counters the source does not serve (overruns, frame, carrier…).
            continue;
        };
        between(k, *b, *got, after.get(k).copied().unwrap_or(u64::MAX))?;
        checked += 1;
    }
    for k in served.keys() {
        assert!(
            before.contains_key(k),
            "served {k}, which ovs-appctl does not print"
        );
    }
    let pods = topo.pods.len();
    // lookups ×3, flows, and 8 counters for each pod port (and the bridge's own ports).
    assert!(checked >= 4 + 8 * pods, "only {checked} figures compared");
    let hit = served.get("lookups hit").copied().unwrap_or(0);
    assert!(hit > 0, "the traffic made no datapath hits: {dp_before}");
    let p0 = format!("port {} RX packets", topo.pods[0].host_if);
    assert!(served.get(&p0).is_some_and(|&v| v > 0), "{p0}: {served:?}");

    // Coverage: every event served, and every event ovs-appctl printed before, is served.
    let (cb, ca) = (coverage(&cov_before), coverage(&cov_after));
    assert!(cb.len() > 20, "{cov_before}");
    for (event, b) in &cb {
        let got = value(&s, "ovs_coverage_total", &[("event", event)])
            .with_context(|| format!("coverage event {event} not served"))?;
        between(
            event,
            *b,
            got as u64,
            ca.get(event).copied().unwrap_or(u64::MAX),
        )?;
    }

    // The PMD (here: main) thread.
    let pmd = |text: &str, key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key)?.trim().parse().ok())
            .unwrap_or(u64::MAX)
    };
    for (key, name, labels) in [
        (
            "packets received:",
            "ovs_pmd_packets_received_total",
            vec![],
        ),
        (
            "megaflow hits:",
            "ovs_pmd_hits_total",
            vec![("tier", "megaflow")],
        ),
        (
            "miss with success upcall:",
            "ovs_pmd_upcalls_total",
            vec![("result", "success")],
        ),
    ] {
        let mut want = vec![("thread", "main")];
        want.extend(labels);
        let got = value(&s, name, &want).with_context(|| format!("{name} {want:?}"))?;
        between(key, pmd(&pmd_before, key), got as u64, pmd(&pmd_after, key))?;
    }

    // Settings and gauges that do not move.
    let upcall = ovs.appctl(&["upcall/show"])?;
    let limit: f64 = upcall
        .split("(limit ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|v| v.parse().ok())
        .context("upcall/show limit")?;
    assert_eq!(
        value(&s, "ovs_upcall_flow_limit", &[("datapath", "ovs-netdev")]),
        Some(limit)
    );
    let memory = ovs.appctl(&["memory/show"])?;
    let ports: f64 = memory
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ports:")?.parse().ok())
        .context("memory/show ports")?;
    assert_eq!(
        value(&s, "ovs_vswitchd_objects", &[("kind", "ports")]),
        Some(ports)
    );
    assert_eq!(
        value(
            &s,
            "ovs_conntrack_max_connections",
            &[("datapath", "ovs-netdev")]
        ),
        Some(123_456.0)
    );
    assert_eq!(
        value(&s, "ovs_conntrack_zone_limit", &[("zone", "5")]),
        Some(77.0)
    );
    assert_eq!(
        value(&s, "ovs_conntrack_zone_connections", &[("zone", "5")]),
        Some(0.0)
    );
    // The next scrapes ask for the zones found with a limit by number (cheap for
    // ovs-vswitchd) instead of looking at all 65,536: the same series, and no others.
    ovs.appctl(&["dpctl/ct-set-limits", "default=900"])?;
    let s2 = scrape(&d)?;
    assert_eq!(
        value(&s2, "ovs_conntrack_zone_limit", &[("zone", "5")]),
        Some(77.0)
    );
    assert_eq!(
        value(&s2, "ovs_conntrack_zone_limit", &[("zone", "default")]),
        Some(900.0)
    );
    let zones: Vec<&str> = s2
        .iter()
        .filter(|x| x.name == "ovs_conntrack_zone_limit")
        .map(|x| x.label("zone"))
        .collect();
    assert_eq!(zones, ["default", "5"], "zones served");
    let version = ovs.appctl(&["version"])?;
    let v = version
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        value(&s, "ovs_vswitchd_info", &[("version", &v)]),
        Some(1.0),
        "{version}"
    );
    Ok(())
}

/// Scrapes until `ok` holds for the samples (LACP and bond state change on OVS's timers).
fn until(d: &Daemon, what: &str, ok: impl Fn(&[Sample]) -> bool) -> Result<Vec<Sample>> {
    let start = Instant::now();
    loop {
        let s = scrape(d)?;
        if ok(&s) {
            return Ok(s);
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("{what}: not within 60 s");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn an_lacp_bond_shows_a_member_going_down() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let tag = testbed::topology::unique_tag();
    let ip = |args: &[&str]| -> Result<()> {
        let st = std::process::Command::new("ip")
            .args(["-n", ovs.netns()])
            .args(args)
            .status()?;
        if !st.success() {
            bail!("ip {args:?} failed");
        }
        Ok(())
    };
    // Two bridges, bonded to each other over two veth pairs, LACP active on both sides.
    let (a1, a2, b1, b2) = (
        format!("a{tag}1"),
        format!("a{tag}2"),
        format!("b{tag}1"),
        format!("b{tag}2"),
    );
    for (x, y) in [(&a1, &b1), (&a2, &b2)] {
        ip(&["link", "add", x, "type", "veth", "peer", "name", y])?;
        ip(&["link", "set", x, "up"])?;
        ip(&["link", "set", y, "up"])?;
    }
    let (bra, brb) = (format!("bra{tag}"), format!("brb{tag}"));
    let (bonda, bondb) = (format!("bonda{tag}"), format!("bondb{tag}"));
    for (br, bond, m1, m2) in [(&bra, &bonda, &a1, &a2), (&brb, &bondb, &b1, &b2)] {
        ovs.add_bridge(br)?;
        ovs.vsctl(&[
            "add-bond",
            br,
            bond,
            m1,
            m2,
            "lacp=active",
            "other_config:lacp-time=fast",
        ])?;
    }
    let d = start(&ovs)?;
    let attached = |s: &[Sample], m: &str| {
        value(
            s,
            "ovs_bond_member_lacp_attached",
            &[("bond", &bonda), ("member", m)],
        ) == Some(1.0)
    };
    let s = until(&d, "LACP negotiated", |s| {
        value(s, "ovs_bond_lacp_negotiated", &[("bond", &bonda)]) == Some(1.0)
            && attached(s, &a1)
            && attached(s, &a2)
    })?;
    for m in [&a1, &a2] {
        assert_eq!(
            value(
                &s,
                "ovs_bond_member_enabled",
                &[("bond", &bonda), ("member", m)]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &s,
                "ovs_bond_member_lacp_state",
                &[("bond", &bonda), ("member", m), ("state", "current")]
            ),
            Some(1.0)
        );
    }
    let active: f64 = [&a1, &a2]
        .iter()
        .filter_map(|m| {
            value(
                &s,
                "ovs_bond_member_active",
                &[("bond", &bonda), ("member", m)],
            )
        })
        .sum();
    assert_eq!(active, 1.0, "an active-backup bond sends on one member");

    // One member's link goes down: disabled, detached, no longer in the current LACP state.
    ip(&["link", "set", &a2, "down"])?;
    let s = until(&d, "the member down", |s| {
        value(
            s,
            "ovs_bond_member_enabled",
            &[("bond", &bonda), ("member", &a2)],
        ) == Some(0.0)
            && value(
                s,
                "ovs_bond_member_lacp_attached",
                &[("bond", &bonda), ("member", &a2)],
            ) == Some(0.0)
    })?;
    assert_eq!(
        value(
            &s,
            "ovs_bond_member_lacp_state",
            &[("bond", &bonda), ("member", &a2), ("state", "current")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "ovs_bond_member_enabled",
            &[("bond", &bonda), ("member", &a1)]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "ovs_bond_member_active",
            &[("bond", &bonda), ("member", &a1)]
        ),
        Some(1.0)
    );
    // What ovs-appctl says at the same time.
    let show = ovs.appctl(&["bond/show", &bonda])?;
    assert!(show.contains(&format!("member {a2}: disabled")), "{show}");
    Ok(())
}

#[test]
fn a_restarted_vswitchd_is_followed_and_nothing_stale_is_served() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let mut ovs = Ovs::start()?;
    let br = format!("brr{}", testbed::topology::unique_tag());
    ovs.add_bridge(&br)?;
    // Thirty reconfigurations: the old process's bridge_reconfigure count is well above what
    // a fresh one counts, so serving anything of the old one shows below.
    for i in 0..30 {
        ovs.vsctl(&["set", "Bridge", &br, &format!("external_ids:n={i}")])?;
    }
    let d = start(&ovs)?;
    let reconf = |s: &[Sample]| value(s, "ovs_coverage_total", &[("event", "bridge_reconfigure")]);
    // Coverage totals are folded every few seconds.
    let s = until(&d, "30 reconfigurations counted", |s| {
        reconf(s).is_some_and(|v| v >= 30.0)
    })?;
    let old = reconf(&s).unwrap_or_default();
    let first = ovs.vswitchd_pid().context("pid")?;

    ovs.kill_vswitchd()?;
    let s = scrape(&d)?;
    assert_eq!(
        value(
            &s,
            "dataplane_collector_source_available",
            &[("collector", "vswitchd")]
        ),
        Some(0.0),
        "a killed ovs-vswitchd (its pidfile and socket file left behind) is unavailable"
    );
    let stale: Vec<&Sample> = s.iter().filter(|x| x.name.starts_with("ovs_")).collect();
    assert!(stale.is_empty(), "series of a dead ovs-vswitchd: {stale:?}");

    ovs.start_vswitchd()?;
    let second = ovs.vswitchd_pid().context("pid")?;
    assert_ne!(first, second);
    let s = until(&d, "the new ovs-vswitchd", |s| {
        value(
            s,
            "dataplane_collector_source_available",
            &[("collector", "vswitchd")],
        ) == Some(1.0)
            && reconf(s).is_some()
    })?;
    let before = coverage(&ovs.appctl(&["coverage/show"])?);
    let s2 = scrape(&d)?;
    let after = coverage(&ovs.appctl(&["coverage/show"])?);
    let _ = s;
    let got = reconf(&s2).context("bridge_reconfigure after the restart")? as u64;
    let (b, a) = (
        before.get("bridge_reconfigure").copied().unwrap_or(0),
        after.get("bridge_reconfigure").copied().unwrap_or(u64::MAX),
    );
    between("bridge_reconfigure of the new ovs-vswitchd", b, got, a)?;
    assert!(
        (a as f64) < old,
        "the new process counted {a}, not fewer than the old one's {old}: the check above proves nothing"
    );
    Ok(())
}
