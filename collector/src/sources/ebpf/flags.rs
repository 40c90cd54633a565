//! The `ebpf` source's flags and descriptor.

use super::{Config, DEFAULT_MAX_IPVS_CONNS, DEFAULT_MAX_PORTS, EbpfSource, Maps};
use super::{MAX_DROP_ENTRIES_RANGE, MAX_FLOWS_RANGE, MAX_IPVS_CONNS_RANGE, MAX_PORTS_RANGE};
use crate::sources::build::{self, BuildError, Context, Descriptor};
use clap::{ArgAction, Args};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const NAME: &str = "ebpf";

/// `--collector.ebpf.*` (the former `--ebpf.*` spellings are aliases).
#[derive(Debug, Clone, Args)]
pub struct EbpfArgs {
    /// Count per flow (5-tuple) as well as per port; `--ebpf.flows=false` counts per port only
    /// (cheaper).
    #[arg(id = "collector.ebpf.flows", long = "collector.ebpf.flows", visible_alias = "ebpf.flows",
          value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::value_parser!(bool))]
    pub flows: bool,

    /// Size of the kernel's flow map (LRU), 1024 to 16777216.
    #[arg(id = "collector.ebpf.max-flows", long = "collector.ebpf.max-flows",
          visible_alias = "ebpf.max-flows", value_name = "N", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(MAX_FLOWS_RANGE))]
    pub max_flows: u32,

    /// Netdevs the kernel's per-port maps hold, 1 to 262144 (PORTS: two entries per port, one
    /// per direction; VPORTS: one). Ports past it are not counted, and
    /// dataplane_collector_ebpf_map_full_total{map="PORTS"} says so.
    #[arg(id = "collector.ebpf.max-ports", long = "collector.ebpf.max-ports",
          visible_alias = "ebpf.max-ports", value_name = "N",
          default_value_t = DEFAULT_MAX_PORTS,
          value_parser = clap::value_parser!(u32).range(MAX_PORTS_RANGE))]
    pub max_ports: u32,

    /// Size of the kernel's map of new IPVS connections per (service, real server), an LRU
    /// map: the pairs not seen for the longest make room. 1024 to 16777216.
    #[arg(id = "collector.ebpf.max-ipvs-conns", long = "collector.ebpf.max-ipvs-conns",
          visible_alias = "ebpf.max-ipvs-conns", value_name = "N",
          default_value_t = DEFAULT_MAX_IPVS_CONNS,
          value_parser = clap::value_parser!(u32).range(MAX_IPVS_CONNS_RANGE))]
    pub max_ipvs_conns: u32,

    /// Flows with series of their own (the most bytes); the rest are folded per port. 0: all.
    #[arg(
        id = "collector.ebpf.max-flow-series",
        long = "collector.ebpf.max-flow-series",
        visible_alias = "ebpf.max-flow-series",
        value_name = "N",
        default_value_t = 100
    )]
    pub max_flow_series: usize,

    /// Count the packets the kernel drops (the kfree_skb tracepoint), by reason (named from
    /// the running kernel's BTF), device, OVS port and pod: ebpf_drops_total.
    #[arg(id = "collector.ebpf.drops", long = "collector.ebpf.drops", visible_alias = "ebpf.drops",
          value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::value_parser!(bool))]
    pub drops: bool,

    /// Size of the kernel's drop map: distinct (reason, netns, device, protocol, direction)
    /// keys, 256 to 1048576. Past it, new keys are not counted and
    /// dataplane_collector_ebpf_map_full_total{map="DROPS"} says so; the daemon deletes the
    /// keys of namespaces and devices that are gone.
    #[arg(id = "collector.ebpf.max-drop-entries", long = "collector.ebpf.max-drop-entries",
          visible_alias = "ebpf.max-drop-entries", value_name = "N", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(MAX_DROP_ENTRIES_RANGE))]
    pub max_drop_entries: u32,

    /// Drop series of their own (the most drops); the rest are folded into one series per
    /// reason with device="other". 0: all.
    #[arg(
        id = "collector.ebpf.drops-max-series",
        long = "collector.ebpf.drops-max-series",
        visible_alias = "ebpf.drops-max-series",
        value_name = "N",
        default_value_t = 500
    )]
    pub drops_max_series: usize,

    /// Pin the eBPF maps and links in this bpffs directory, so counters survive a restart or
    /// an upgrade (and programs stay attached across it). It must be a directory of the
    /// collector's own, such as /sys/fs/bpf/dataplane-collector (a bpffs root is refused); it
    /// is swept at start (links of gone netdevs, maps whose size or type changed).
    #[arg(
        id = "collector.ebpf.pin-path",
        long = "collector.ebpf.pin-path",
        visible_alias = "ebpf.pin-path",
        value_name = "DIR"
    )]
    pub pin_path: Option<PathBuf>,

    /// Flows idle this long leave the kernel's map for the per-port totals.
    #[arg(id = "collector.ebpf.flow-idle-timeout", long = "collector.ebpf.flow-idle-timeout",
          visible_alias = "ebpf.flow-idle-timeout", value_name = "DURATION", default_value = "30s",
          value_parser = crate::flagvalue::parse_duration)]
    pub flow_idle_timeout: Duration,
}

impl EbpfArgs {
    /// The source's settings, with the OVS run directory.
    pub fn config(&self, rundir: PathBuf) -> Config {
        Config {
            flows: self.flows,
            noop: false,
            max_flows: self.max_flows,
            max_ports: self.max_ports,
            max_ipvs_conns: self.max_ipvs_conns,
            max_flow_series: self.max_flow_series,
            drops: self.drops,
            max_drop_entries: self.max_drop_entries,
            max_drop_series: self.drops_max_series,
            pin_path: self.pin_path.clone(),
            idle_timeout: self.flow_idle_timeout,
            rundir,
        }
    }
}

fn build(m: &clap::ArgMatches, ctx: &mut Context<'_>) -> Result<(), BuildError> {
    let a: EbpfArgs = build::args(NAME, m)?;
    let cfg = a.config(ctx.ovs_rundir().to_path_buf());
    let ovsdb = ctx.ovsdb()?;
    let attributor = crate::sources::ovsdb::flags::attributor(ctx)?;
    let source = match ctx.reader::<Arc<dyn Maps>>() {
        Some(maps) => EbpfSource::with_maps(&cfg, maps, Some(ovsdb), attributor),
        None => EbpfSource::start(cfg, Some(ovsdb), attributor),
    };
    let for_hook = source.clone();
    ctx.on_shutdown(Box::new(move || for_hook.shutdown()));
    ctx.add(source);
    Ok(())
}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: NAME,
    help: "eBPF counters: per-port and per-flow traffic at the OVS vports (TC), kernel datapath upcalls and IPVS connections (kprobes), and the kernel's packet drops by reason (the kfree_skb tracepoint)",
    default_enabled: true,
    routes: crate::registry::Routes::NONE,
    flags: <EbpfArgs as Args>::augment_args,
    build,
};

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    fn parse(args: &[&str]) -> Result<EbpfArgs, clap::Error> {
        let cmd = EbpfArgs::augment_args(clap::Command::new("t").no_binary_name(true));
        let m = cmd.try_get_matches_from(args)?;
        EbpfArgs::from_arg_matches(&m)
    }

    #[test]
    fn map_sizes_are_range_checked_under_both_spellings() {
        let a = parse(&[]).map_err(|e| e.to_string());
        let Ok(a) = a else { panic!("{a:?}") };
        assert_eq!(
            (a.max_ports, a.max_flows, a.max_ipvs_conns),
            (4096, 65_536, 65_536)
        );
        let a = parse(&[
            "--ebpf.max-ports=2",
            "--collector.ebpf.max-flows=1024",
            "--ebpf.max-ipvs-conns=16777216",
        ])
        .map_err(|e| e.to_string());
        let Ok(a) = a else { panic!("{a:?}") };
        assert_eq!(
            (a.max_ports, a.max_flows, a.max_ipvs_conns),
            (2, 1024, 16_777_216)
        );
        for (bad, flag, range) in [
            ("--ebpf.max-ports=0", "max-ports", "1..=262144"),
            (
                "--collector.ebpf.max-ports=262145",
                "max-ports",
                "1..=262144",
            ),
            ("--ebpf.max-flows=1023", "max-flows", "1024..=16777216"),
            ("--ebpf.max-flows=16777217", "max-flows", "1024..=16777216"),
            (
                "--ebpf.max-ipvs-conns=10",
                "max-ipvs-conns",
                "1024..=16777216",
            ),
            ("--ebpf.max-ports=-1", "max-ports", ""),
            ("--ebpf.max-ports=lots", "max-ports", ""),
        ] {
            let e = parse(&[bad]).map(|_| ()).expect_err(bad).to_string();
            assert!(e.contains(flag) && e.contains(range), "{bad}: {e}");
        }
        // Engine::load callers other than the command line get the same check.
        let cfg = Config {
            max_ports: 0,
            ..Config::for_tests()
        };
        assert!(
            cfg.validate()
                .is_err_and(|e| e.to_string().contains("--ebpf.max-ports=0"))
        );
        assert_eq!(Config::for_tests().validate(), Ok(()));
    }
}
