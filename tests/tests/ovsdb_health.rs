//! Root-only: Open vSwitch's health settings and state from the OVSDB source, against a real
//! ovsdb-server and ovs-vswitchd (userspace datapath, in a private network namespace):
//! `other_config` datapath settings set and unset with `ovs-vsctl`; BFD and CFM on a veth pair
//! joining two bridges, up, then one end turned off (state, forwarding, flaps, fault, health),
//! compared with `ovs-vsctl get` and `ovs-appctl bfd/show`; geneve tunnels' egress carrier,
//! up, then the egress veth losing carrier, compared with `ovs-vsctl get Interface X status`.

use anyhow::{Result, bail};
use std::process::Command;
use std::time::{Duration, Instant};
use testbed::daemon::Daemon;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};

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

fn ip(netns: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// `ovs-vsctl get Interface IFACE COLUMN[:KEY]`, unquoted; empty when the key is absent.
fn get(ovs: &Ovs, iface: &str, column: &str) -> Result<String> {
    let v = ovs.vsctl(&["--if-exists", "get", "Interface", iface, column])?;
    Ok(v.trim().trim_matches('"').to_owned())
}

/// Waits until `ovs-vsctl get` says `want`.
fn wait_for(ovs: &Ovs, iface: &str, column: &str, want: impl Fn(&str) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(ovs, iface, column)?;
        if want(&v) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{iface} {column}: still {v:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What `ovs-vsctl` says of `columns`, and a scrape taken between two identical readings of
/// them (a sandwich: the values did not move while the scrape was taken).
fn sandwich(ovs: &Ovs, d: &Daemon, columns: &[(&str, &str)]) -> Result<(Vec<String>, Vec<Sample>)> {
    let read = || -> Result<Vec<String>> { columns.iter().map(|(i, c)| get(ovs, i, c)).collect() };
    for _ in 0..20 {
        let before = read()?;
        let s = scrape(d)?;
        if read()? == before {
            return Ok((before, s));
        }
    }
    bail!("{columns:?} never held still across a scrape")
}

fn num(s: &str) -> Result<f64> {
    s.parse::<f64>()
        .map_err(|e| anyhow::anyhow!("{s:?} from ovs-vsctl: {e}"))
}

const BFD_STATES: [&str; 4] = ["admin_down", "down", "init", "up"];

/// The BFD series for `iface` agree with `ovs-vsctl`'s bfd_status, and `ovs-appctl bfd/show`.
fn check_bfd(ovs: &Ovs, d: &Daemon, bridge: &str, iface: &str) -> Result<f64> {
    let (v, s) = sandwich(
        ovs,
        d,
        &[
            (iface, "bfd_status:state"),
            (iface, "bfd_status:forwarding"),
            (iface, "bfd_status:flap_count"),
            (iface, "bfd_status:remote_state"),
        ],
    )?;
    let l = [("bridge", bridge), ("interface", iface)];
    for st in BFD_STATES {
        let want = f64::from(u8::from(st == v[0]));
        let got = value(&s, "ovs_interface_bfd_state", &[l[0], l[1], ("state", st)]);
        assert_eq!(
            got,
            Some(want),
            "{iface} state {st}: ovs-vsctl says {}",
            v[0]
        );
        let want = f64::from(u8::from(st == v[3]));
        let got = value(
            &s,
            "ovs_interface_bfd_remote_state",
            &[l[0], l[1], ("state", st)],
        );
        assert_eq!(
            got,
            Some(want),
            "{iface} remote {st}: ovs-vsctl says {}",
            v[3]
        );
    }
    assert_eq!(
        value(&s, "ovs_interface_bfd_forwarding", &l),
        Some(f64::from(u8::from(v[1] == "true")))
    );
    let flaps = num(&v[2])?;
    assert_eq!(value(&s, "ovs_interface_bfd_flaps_total", &l), Some(flaps));
    let show = ovs.appctl(&["bfd/show", iface])?;
    assert!(
        show.contains(&format!("Local Session State: {}", v[0])),
        "{show}"
    );
    Ok(flaps)
}

#[test]
fn bfd_cfm_tunnels_and_datapath_settings() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let ns = ovs.netns().to_owned();
    ovs.add_bridge("bra")?;
    ovs.add_bridge("brb")?;
    // A veth pair joins the bridges; BFD and CFM (extended: health) on both ends.
    ip(
        &ns,
        &["link", "add", "hva", "type", "veth", "peer", "name", "hvb"],
    )?;
    ip(&ns, &["link", "set", "hva", "up"])?;
    ip(&ns, &["link", "set", "hvb", "up"])?;
    for (br, iface, mpid) in [("bra", "hva", "1"), ("brb", "hvb", "2")] {
        ovs.vsctl(&[
            "add-port",
            br,
            iface,
            "--",
            "set",
            "Interface",
            iface,
            "bfd:enable=true",
            "bfd:min_tx=100",
            "bfd:min_rx=100",
            &format!("cfm_mpid={mpid}"),
            "other_config:cfm_extended=true",
        ])?;
    }
    // Two geneve tunnels: to 127.0.0.1 (egress lo), and out of a veth whose peer we can take
    // down; a vxlan with no route (no egress: no series).
    ip(
        &ns,
        &["link", "add", "hea", "type", "veth", "peer", "name", "heb"],
    )?;
    ip(&ns, &["addr", "add", "10.77.0.1/24", "dev", "hea"])?;
    ip(&ns, &["link", "set", "hea", "up"])?;
    ip(&ns, &["link", "set", "heb", "up"])?;
    for (name, kind, remote) in [
        ("gnv0", "geneve", "127.0.0.1"),
        ("gnv1", "geneve", "10.77.0.3"),
        ("vx0", "vxlan", "10.99.0.1"),
    ] {
        ovs.vsctl(&[
            "add-port",
            "bra",
            name,
            "--",
            "set",
            "Interface",
            name,
            &format!("type={kind}"),
            &format!("options:remote_ip={remote}"),
        ])?;
    }
    let d = Daemon::start(&[
        "--ovs.rundir".to_owned(),
        ovs.rundir().to_string_lossy().into_owned(),
        "--collector.disable-defaults".to_owned(),
        "--collector.ovsdb".to_owned(),
    ])?;

    // Datapath settings: nothing set, OVS's defaults; thread counts absent (OVS picks).
    let s = scrape(&d)?;
    assert_eq!(value(&s, "ovs_ovsdb_up", &[]), Some(1.0));
    assert_eq!(
        ovs.vsctl(&["get", "Open_vSwitch", ".", "other_config"])?
            .trim(),
        "{}"
    );
    let defaults = |s: &[Sample]| {
        assert_eq!(value(s, "ovs_config_hw_offload", &[]), Some(0.0));
        assert_eq!(value(s, "ovs_config_flow_limit", &[]), Some(200_000.0));
        assert_eq!(value(s, "ovs_config_max_idle_seconds", &[]), Some(10.0));
        assert_eq!(
            value(s, "ovs_config_tc_policy_info", &[("policy", "none")]),
            Some(1.0)
        );
        assert_eq!(value(s, "ovs_config_handler_threads", &[]), None);
        assert_eq!(value(s, "ovs_config_revalidator_threads", &[]), None);
    };
    defaults(&s);
    ovs.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:flow-limit=12345",
        "other_config:max-idle=2500",
        "other_config:n-handler-threads=2",
        "other_config:n-revalidator-threads=1",
        "other_config:hw-offload=true",
        "other_config:tc-policy=skip_sw",
    ])?;
    // A scrape sees every change committed before it (an echo barrier): no waiting.
    let s = scrape(&d)?;
    let oc = |k: &str| -> Result<String> {
        Ok(ovs
            .vsctl(&["get", "Open_vSwitch", ".", &format!("other_config:{k}")])?
            .trim()
            .trim_matches('"')
            .to_owned())
    };
    assert_eq!(
        value(&s, "ovs_config_flow_limit", &[]),
        Some(num(&oc("flow-limit")?)?)
    );
    assert_eq!(
        value(&s, "ovs_config_max_idle_seconds", &[]),
        Some(num(&oc("max-idle")?)? / 1000.0)
    );
    assert_eq!(
        value(&s, "ovs_config_handler_threads", &[]),
        Some(num(&oc("n-handler-threads")?)?)
    );
    assert_eq!(
        value(&s, "ovs_config_revalidator_threads", &[]),
        Some(num(&oc("n-revalidator-threads")?)?)
    );
    assert_eq!(oc("hw-offload")?, "true");
    assert_eq!(value(&s, "ovs_config_hw_offload", &[]), Some(1.0));
    assert_eq!(oc("tc-policy")?, "skip_sw");
    assert_eq!(
        value(&s, "ovs_config_tc_policy_info", &[("policy", "skip_sw")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "ovs_config_tc_policy_info", &[("policy", "none")]),
        None
    );
    // Malformed values (ovsdb-server takes any string): no series, and the daemon carries on.
    ovs.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:flow-limit=-5",
        "other_config:max-idle=bogus",
        "other_config:hw-offload=yes",
        "other_config:tc-policy=skip_everything",
    ])?;
    let s = scrape(&d)?;
    for name in [
        "ovs_config_flow_limit",
        "ovs_config_max_idle_seconds",
        "ovs_config_hw_offload",
        "ovs_config_tc_policy_info",
    ] {
        assert_eq!(value(&s, name, &[]), None, "{name}");
    }
    assert_eq!(value(&s, "ovs_config_handler_threads", &[]), Some(2.0));
    // Unset again: back to the defaults.
    for k in [
        "flow-limit",
        "max-idle",
        "n-handler-threads",
        "n-revalidator-threads",
        "hw-offload",
        "tc-policy",
    ] {
        ovs.vsctl(&["remove", "Open_vSwitch", ".", "other_config", k])?;
    }
    defaults(&scrape(&d)?);

    // BFD up on both ends.
    for i in ["hva", "hvb"] {
        wait_for(&ovs, i, "bfd_status:state", |v| v == "up")?;
        wait_for(&ovs, i, "bfd_status:forwarding", |v| v == "true")?;
    }
    let flaps_up = check_bfd(&ovs, &d, "bra", "hva")?;
    check_bfd(&ovs, &d, "brb", "hvb")?;
    // The tunnels, no BFD: no BFD series for them.
    let s = scrape(&d)?;
    assert_eq!(
        value(&s, "ovs_interface_bfd_forwarding", &[("interface", "gnv0")]),
        None
    );

    // CFM: no fault, health once OVS computed it.
    wait_for(&ovs, "hva", "cfm_health", |v| !v.is_empty() && v != "[]")?;
    wait_for(&ovs, "hva", "cfm_fault", |v| v == "false")?;
    let cfm_cols = [
        ("hva", "cfm_fault"),
        ("hva", "cfm_health"),
        ("hva", "cfm_flap_count"),
        ("hva", "cfm_fault_status"),
    ];
    let (v, s) = sandwich(&ovs, &d, &cfm_cols)?;
    let l = [("bridge", "bra"), ("interface", "hva")];
    assert_eq!(value(&s, "ovs_interface_cfm_fault", &l), Some(0.0));
    assert_eq!(
        value(&s, "ovs_interface_cfm_health_ratio", &l),
        Some(num(&v[1])? / 100.0)
    );
    let cfm_flaps = num(&v[2])?;
    assert_eq!(
        value(&s, "ovs_interface_cfm_flaps_total", &l),
        Some(cfm_flaps)
    );
    assert_eq!(
        value(
            &s,
            "ovs_interface_cfm_fault_status",
            &[l[0], l[1], ("reason", "recv")]
        ),
        Some(0.0)
    );

    // Tunnels: carrier up; egress lo and hea.
    wait_for(&ovs, "gnv0", "status:tunnel_egress_iface_carrier", |v| {
        v == "up"
    })?;
    wait_for(&ovs, "gnv1", "status:tunnel_egress_iface_carrier", |v| {
        v == "up"
    })?;
    let tun_cols = [
        ("gnv0", "status:tunnel_egress_iface"),
        ("gnv1", "status:tunnel_egress_iface"),
        ("gnv1", "status:tunnel_egress_iface_carrier"),
    ];
    let (v, s) = sandwich(&ovs, &d, &tun_cols)?;
    assert_eq!((v[0].as_str(), v[1].as_str()), ("lo", "hea"));
    for (t, egress) in [("gnv0", "lo"), ("gnv1", "hea")] {
        assert_eq!(
            value(
                &s,
                "ovs_interface_tunnel_egress_carrier",
                &[("interface", t), ("egress_interface", egress)]
            ),
            Some(1.0),
            "{t}"
        );
    }
    assert_eq!(get(&ovs, "vx0", "status:tunnel_egress_iface_carrier")?, "");
    assert_eq!(
        value(
            &s,
            "ovs_interface_tunnel_egress_carrier",
            &[("interface", "vx0")]
        ),
        None
    );

    // Take things down: hvb's BFD and CFM off, heb down (hea loses carrier).
    ovs.vsctl(&["set", "Interface", "hvb", "bfd:enable=false"])?;
    ovs.vsctl(&["clear", "Interface", "hvb", "cfm_mpid"])?;
    ip(&ns, &["link", "set", "heb", "down"])?;
    wait_for(&ovs, "hva", "bfd_status:state", |v| v == "down")?;
    let flaps_down = check_bfd(&ovs, &d, "bra", "hva")?;
    assert!(flaps_down > flaps_up, "{flaps_up} -> {flaps_down}");
    let s = scrape(&d)?;
    assert_eq!(
        value(&s, "ovs_interface_bfd_forwarding", &[("interface", "hvb")]),
        None,
        "BFD off on hvb: no series"
    );
    assert_eq!(
        value(&s, "ovs_interface_cfm_fault", &[("interface", "hvb")]),
        None,
        "CFM off on hvb: no series"
    );

    wait_for(&ovs, "hva", "cfm_fault", |v| v == "true")?;
    let (v, s) = sandwich(&ovs, &d, &cfm_cols)?;
    assert_eq!(v[0], "true");
    assert_eq!(value(&s, "ovs_interface_cfm_fault", &l), Some(1.0));
    assert!(v[3].contains("recv"), "{}", v[3]);
    assert_eq!(
        value(
            &s,
            "ovs_interface_cfm_fault_status",
            &[l[0], l[1], ("reason", "recv")]
        ),
        Some(1.0)
    );
    let cfm_flaps_after = num(&v[2])?;
    assert!(
        cfm_flaps_after > cfm_flaps,
        "{cfm_flaps} -> {cfm_flaps_after}"
    );
    assert_eq!(
        value(&s, "ovs_interface_cfm_flaps_total", &l),
        Some(cfm_flaps_after)
    );

    wait_for(&ovs, "gnv1", "status:tunnel_egress_iface_carrier", |v| {
        v == "down"
    })?;
    let (v, s) = sandwich(&ovs, &d, &tun_cols)?;
    assert_eq!(v[2], "down");
    assert_eq!(
        value(
            &s,
            "ovs_interface_tunnel_egress_carrier",
            &[("interface", "gnv1"), ("egress_interface", "hea")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "ovs_interface_tunnel_egress_carrier",
            &[("interface", "gnv0")]
        ),
        Some(1.0)
    );
    Ok(())
}
