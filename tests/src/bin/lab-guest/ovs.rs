//! The Open vSwitch kernel datapath, directly: a `datapath_type=system` bridge whose traffic
//! the kernel module switches (kernel flows with packets in `ovs-dpctl dump-flows`), and the
//! daemon's port counters for it equal to `ovs-ofctl dump-ports`. (The foundation's OpenFlow
//! tests run on this datapath too; the lab's init runs them before this.)

use crate::{module_loaded, wait_for};
use anyhow::{Context, Result, bail};
use std::time::Duration;
use testbed::daemon::Daemon;
use testbed::netns::Pod;
use testbed::ofctl;
use testbed::ovs::Ovs;
use testbed::prom;

pub fn run() -> Result<()> {
    if !module_loaded("openvswitch") {
        bail!("the openvswitch module is not loaded");
    }
    let ovs = Ovs::start()?;
    let br = "brk";
    ovs.vsctl(&[
        "add-br",
        br,
        "--",
        "set",
        "bridge",
        br,
        "datapath_type=system",
        "fail_mode=secure",
        "protocols=OpenFlow10,OpenFlow13",
    ])?;
    wait_for(
        "the bridge's management socket",
        Duration::from_secs(20),
        || Ok(ovs.mgmt(br).exists().then_some(())),
    )?;
    let dpif = ovs.appctl(&["dpif/show"])?;
    if !dpif.contains("system@ovs-system") {
        bail!("the bridge is not on the kernel datapath:\n{dpif}");
    }
    let mut pods = Vec::new();
    for i in 0..2u8 {
        let pod = Pod::create(
            &format!("kdp{i}"),
            Some(ovs.netns()),
            &format!("vkdp{i}"),
            &format!("10.244.9.{}", i + 2),
            &format!("02:00:00:00:09:{:02x}", i + 2),
        )?;
        ovs.vsctl(&["add-port", br, &pod.host_if])?;
        pods.push(pod);
    }
    ovs.add_flow(br, "priority=0,actions=NORMAL")?;
    pods[0].ping(&pods[1].ip, 20)?;
    // The kernel's flow table, read from the switch's namespace while the flows are fresh.
    let dp_flows = crate::ip(&[
        "netns",
        "exec",
        ovs.netns(),
        "/usr/bin/ovs-dpctl",
        "dump-flows",
    ])?;
    let kernel_packets: u64 = dp_flows
        .lines()
        .filter_map(|l| l.split("packets:").nth(1))
        .filter_map(|r| r.split(',').next())
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum();
    if kernel_packets == 0 {
        bail!("no packets in the kernel datapath's flows:\n{dp_flows}");
    }
    println!(
        "ovs-kernel: {} kernel flows carried {kernel_packets} packets",
        dp_flows.lines().count()
    );

    let daemon = Daemon::start(&[
        "--ovs.rundir".to_owned(),
        ovs.rundir().to_string_lossy().into_owned(),
    ])?;
    // Port counters move until OVS has pushed the datapath's stats; compare a settled state.
    let mut diffs = Vec::new();
    for _ in 0..10 {
        let before = ovs.ofctl(&[], "dump-ports", br, &[])?;
        let (status, body) = daemon.get("/metrics")?;
        let after = ovs.ofctl(&[], "dump-ports", br, &[])?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        if before != after {
            std::thread::sleep(Duration::from_millis(700));
            continue;
        }
        diffs.clear();
        let ports = ofctl::parse_ports(&before)?;
        let names = ofctl::parse_port_names(&ovs.ofctl(&[], "dump-ports-desc", br, &[])?);
        let samples = prom::parse(&body)?;
        for (port, counters) in &ports {
            let name = names.get(port).with_context(|| format!("port {port}"))?;
            for (theirs, ours) in [
                ("rx_pkts", "ovs_port_rx_packets_total"),
                ("tx_pkts", "ovs_port_tx_packets_total"),
                ("rx_bytes", "ovs_port_rx_bytes_total"),
                ("tx_bytes", "ovs_port_tx_bytes_total"),
            ] {
                let want = counters.get(theirs).copied().flatten().map(|v| v as f64);
                let got = samples
                    .iter()
                    .find(|s| s.name == ours && s.label("bridge") == br && s.label("port") == name)
                    .map(|s| s.value);
                if got != want {
                    diffs.push(format!(
                        "{ours} of {name}: served {got:?}, ovs-ofctl {want:?}"
                    ));
                }
            }
        }
        if diffs.is_empty() {
            let rx: f64 = samples
                .iter()
                .filter(|s| s.name == "ovs_port_rx_packets_total" && s.label("bridge") == br)
                .map(|s| s.value)
                .sum();
            if rx < 20.0 {
                bail!("only {rx} packets counted on the bridge's ports");
            }
            println!(
                "ovs-kernel: {} ports, counters equal ovs-ofctl dump-ports ({rx} packets received)",
                ports.len()
            );
            return Ok(());
        }
        break;
    }
    if diffs.is_empty() {
        bail!("port counters never settled");
    }
    bail!(
        "the daemon differs from ovs-ofctl:\n  {}",
        diffs.join("\n  ")
    )
}
