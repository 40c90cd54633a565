//! Root-only: `dataplane-collector top` against the daemon on a real Open vSwitch (the demo
//! topology, pod 0 tagged as OVN-Kubernetes tags it). Without a terminal it prints one snapshot:
//! every port of the bridge with its pod, and the flows with their cookies, whose packet
//! counts equal what `ovs-ofctl dump-flows` prints once the counters have settled. Under
//! `tmux` it draws the live view: the header and the rows are on screen, `s` changes the sort
//! column, traffic sent while it runs shows as a rate on the flow it hits, `q` quits.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;
use testbed::daemon::Daemon;
use testbed::ovs::Ovs;
use testbed::topology::Topology;

/// `ovs-ofctl dump-flows` as cookie → n_packets.
fn ofctl_packets(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let field = |name: &str| {
            line.split([',', ' '])
                .find_map(|w| w.trim().strip_prefix(name))
                .map(str::to_owned)
        };
        if let (Some(cookie), Some(n)) = (field("cookie="), field("n_packets="))
            && let Ok(n) = n.parse::<u64>()
        {
            *out.entry(cookie).or_insert(0) += n;
        }
    }
    out
}

/// The rows of one section of the plain output (`PORTS`, `FLOWS`…), header first, split on
/// whitespace.
fn section<'a>(text: &'a str, name: &str) -> Vec<Vec<&'a str>> {
    text.split("\n\n")
        .find(|s| s.starts_with(name))
        .map(|s| {
            s.lines()
                .skip(1)
                .map(|l| l.split_whitespace().collect())
                .collect()
        })
        .unwrap_or_default()
}

/// A private tmux server, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("tmux")
    }

    fn screen(&self) -> Result<String> {
        let out = self.run(&["capture-pane", "-p", "-t", "top"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits (up to 30 s) for the screen to satisfy `ok`; the last screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
        let mut last = String::new();
        for _ in 0..300 {
            last = self.screen()?;
            if ok(&last) {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the screen never showed {what}:\n{last}")
    }

    fn alive(&self) -> Result<bool> {
        Ok(self.run(&["has-session", "-t", "top"])?.status.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn plain_snapshot_and_live_view_on_a_real_switch() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    if testbed::ovs::which("tmux").is_none() {
        bail!("tmux is not installed (Debian package tmux)");
    }
    let bin = testbed::daemon::binary()?;
    let topo = Topology::build(Ovs::start()?, 3)?;
    let b = topo.bridge.clone();
    let p0 = &topo.pods[0];
    topo.ovs.vsctl(&[
        "set",
        "Interface",
        &p0.host_if,
        "external_ids:iface-id=shop_web-0",
        "external_ids:iface-id-ver=0d4a8d3e-1b2c-4d5e-8f90-123456789abc",
    ])?;
    let rundir = topo.ovs.rundir().to_string_lossy().into_owned();
    let daemon = Daemon::start(&[
        "--collector.disable-defaults".to_owned(),
        "--collector.openflow".to_owned(),
        "--collector.ovsdb".to_owned(),
        "--collector.vswitchd".to_owned(),
        "--collector.datapath".to_owned(),
        "--ovs.flow-actions".to_owned(),
        "--ovs.rundir".to_owned(),
        rundir,
    ])?;
    let url = daemon.url("/metrics");
    topo.traffic(2)?;
    topo.settle()?;

    // No terminal: one snapshot, two reads a second apart.
    let before = topo.ovs.ofctl(&[], "dump-flows", &b, &[])?;
    let out = Command::new(&bin)
        .args(["top", "--url", &url, "--interval", "1s", "--flows", "100"])
        .stdin(Stdio::null())
        .output()
        .context("dataplane-collector top")?;
    let after = topo.ovs.ofctl(&[], "dump-flows", &b, &[])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "top failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        text.starts_with(&format!("dataplane-collector top  {url}  rates over ")),
        "{text}"
    );
    let ports = section(&text, "PORTS");
    assert_eq!(
        ports.first().map(|h| h[..3].to_vec()),
        Some(vec!["BRIDGE", "PORT", "POD"]),
        "{text}"
    );
    for (i, pod) in topo.pods.iter().enumerate() {
        let row = ports
            .iter()
            .find(|r| r.first() == Some(&b.as_str()) && r.get(1) == Some(&pod.host_if.as_str()))
            .unwrap_or_else(|| panic!("no row for {} in\n{text}", pod.host_if));
        let want = if i == 0 { "shop/web-0" } else { "-" };
        assert_eq!(row[2], want, "{row:?}");
        assert_eq!(row.last(), Some(&"ovsdb"), "{row:?}");
    }
    // Every flow of the bridge, by cookie, with the packets ovs-ofctl counts (nothing moved
    // between the two dumps, which the sandwich checks).
    let want = ofctl_packets(&after);
    assert_eq!(
        ofctl_packets(&before),
        want,
        "counters moved during the read"
    );
    let flows = section(&text, "FLOWS");
    let header = flows.first().cloned().unwrap_or_default();
    assert_eq!(header.get(3), Some(&"COOKIE"), "{text}");
    let packets_col = header
        .iter()
        .position(|h| *h == "PACKETS")
        .context("PACKETS column")?;
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for r in flows.iter().skip(1).filter(|r| r[0] == b) {
        let n: u64 = r[packets_col]
            .parse()
            .with_context(|| format!("a packet count under 1000 is printed whole: {r:?}"))?;
        *got.entry(r[3].to_owned()).or_insert(0) += n;
    }
    assert_eq!(got, want, "{text}\n{after}");
    assert!(got.get("0x2100").is_some_and(|n| *n > 0), "{got:?}");
    let datapaths = section(&text, "DATAPATHS");
    assert!(datapaths.len() >= 2, "a datapath row:\n{text}");
    assert!(text.contains("\nDROPS ("), "{text}");

    // A terminal: the live view in a detached tmux session.
    let tmux = Tmux {
        socket: format!("dpc-top-{}", topo.tag),
    };
    let command = format!("{} top --url {url} --interval 1s", bin.display());
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "40",
        &command,
    ])?;
    if !started.status.success() {
        bail!(
            "tmux new-session: {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
    let screen = tmux.wait_for("the header and the rows", |s| {
        s.starts_with(&format!("dataplane-collector top  {url}"))
            && s.contains("sort: bytes/s")
            && s.contains(&p0.host_if)
            && s.contains("shop/web-0")
            && s.contains("0x2100")
            && s.contains("COOKIE")
    })?;
    for pod in &topo.pods {
        assert!(screen.contains(&pod.host_if), "{}:\n{screen}", pod.host_if);
    }
    tmux.run(&["send-keys", "-t", "top", "s"])?;
    tmux.wait_for("the next sort column", |s| s.contains("sort: packets/s"))?;
    // Traffic while it runs: the VIP flow's rate shows on screen.
    let moving = std::thread::scope(|scope| {
        let traffic = scope.spawn(|| topo.traffic(3));
        let screen = tmux.wait_for("a rate on the VIP flow (cookie 0x2100)", |s| {
            s.lines().any(|l| {
                let cells: Vec<&str> = l.trim_matches('│').split_whitespace().collect();
                cells.get(3) == Some(&"0x2100")
                    && cells.get(4).is_some_and(|r| *r != "-" && *r != "0B")
            })
        });
        let sent = traffic
            .join()
            .map_err(|_| anyhow::anyhow!("traffic panicked"));
        sent??;
        screen
    })?;
    // The README's screen: `DPC_TOP_SCREEN=FILE` keeps it.
    if let Ok(path) = std::env::var("DPC_TOP_SCREEN") {
        std::fs::write(&path, &moving).with_context(|| format!("write {path}"))?;
    }
    tmux.run(&["send-keys", "-t", "top", "j"])?;
    tmux.run(&["send-keys", "-t", "top", "q"])?;
    for _ in 0..300 {
        if !tmux.alive()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("top did not exit on q:\n{}", tmux.screen()?)
}
