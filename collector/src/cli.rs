//! Command line. `serve` is the default subcommand: `dataplane-collector --web.listen-address=…`
//! runs the daemon. Flags follow the Prometheus exporters' dotted style.

use crate::registry::SOURCES;
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::flagvalue::{DEFAULT_LISTEN, parse_duration};

#[derive(Debug, Parser)]
#[command(
    name = "dataplane-collector",
    version,
    about = "Kernel-side network statistics for Kubernetes nodes: Open vSwitch, IPVS, SR-IOV and eBPF counters for Prometheus.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start-up; boxing would only obscure the clap derive"
)]
pub enum Command {
    /// Serve metrics over HTTP (the default).
    Serve(ServeArgs),
    /// Parse, filter, group and draw OpenFlow flow tables.
    Flows(crate::flows::FlowsArgs),
    /// What this kernel supports for the eBPF collector (TCX, clsact, kprobe, fentry, tp_btf,
    /// BTF, OVS and IPVS modules) and what the daemon will attach, with reasons.
    Probe(ProbeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Open vSwitch run directory.
    #[arg(
        long = "ovs.rundir",
        value_name = "DIR",
        default_value = "/var/run/openvswitch"
    )]
    pub ovs_rundir: PathBuf,
    /// ovsdb-server [default: unix:<--ovs.rundir>/db.sock].
    #[arg(long = "ovs.db", value_name = "ENDPOINT")]
    pub ovs_db: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on for HTTP (`:9477` means every address).
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen_address: String,

    /// Scrapes served at once; more get HTTP 503.
    #[arg(long = "web.max-requests", value_name = "N", default_value_t = 8)]
    pub max_requests: usize,

    /// Log format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Longest a source may take in one scrape. A Prometheus scrape timeout
    /// (X-Prometheus-Scrape-Timeout-Seconds) shorter than this wins, less half a second.
    #[arg(long = "scrape.timeout", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub scrape_timeout: Duration,

    /// Open vSwitch run directory, where ovs-vswitchd puts each bridge's <bridge>.mgmt socket.
    #[arg(
        long = "ovs.rundir",
        value_name = "DIR",
        default_value = "/var/run/openvswitch"
    )]
    pub ovs_rundir: PathBuf,

    /// ovsdb-server to monitor: unix:PATH or tcp:HOST:PORT [default: unix:<--ovs.rundir>/db.sock].
    #[arg(long = "ovs.db", value_name = "ENDPOINT")]
    pub ovs_db: Option<String>,

    /// Silence from ovsdb-server after which the daemon sends an echo probe; with no answer
    /// within as long again, the connection is dropped (ovs_ovsdb_up 0) and made anew.
    #[arg(long = "ovs.db-probe-interval", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub ovs_db_probe_interval: Duration,

    /// Largest JSON-RPC message accepted from ovsdb-server; a larger one drops the connection.
    #[arg(
        long = "ovs.db-max-message-bytes",
        value_name = "BYTES",
        default_value_t = crate::ovsdb::proto::DEFAULT_MAX_MESSAGE
    )]
    pub ovs_db_max_message_bytes: usize,

    /// Map an Interface (or Port) external_ids key to a label, for CNIs without a built-in
    /// convention: KEY=pod and KEY=namespace name the pod; other labels go on
    /// ovs_interface_info (repeatable).
    #[arg(long = "ovs.external-id-label", value_name = "KEY=LABEL")]
    pub ovs_external_id_labels: Vec<String>,

    /// Port for a bare ?target=HOST (the seed exporter's 16633).
    #[arg(long = "ovs.target-port", value_name = "PORT", default_value_t = crate::sources::openflow::DEFAULT_TARGET_PORT)]
    pub ovs_target_port: u16,

    /// Where ?target= may point: CIDRs, addresses, host names, unix:PATH or unix:DIR/
    /// (repeatable or comma-separated). The local *.mgmt sockets are always allowed; any other
    /// target gets HTTP 400.
    #[arg(
        long = "ovs.allowed-targets",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub ovs_allowed_targets: Vec<String>,

    /// Add an `actions` label to flow series (as `ovs-ofctl -O OpenFlow13 dump-flows` writes them).
    #[arg(long = "ovs.flow-actions")]
    pub ovs_flow_actions: bool,

    /// Flows per bridge with series of their own (those with the most bytes); the rest are summed
    /// per (table, cookie) with match="*". 0: no limit.
    #[arg(
        long = "ovs.max-flow-series",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub ovs_max_flow_series: usize,

    /// Flows read per bridge at most; a switch with more fails that bridge's scrape (and
    /// counts `dataplane_collector_limit_exceeded_total{limit="openflow_flows"}`).
    #[arg(long = "ovs.max-flows", value_name = "N", default_value_t = 1_000_000)]
    pub ovs_max_flows: usize,

    /// Bytes of OpenFlow replies read per bridge and scrape at most.
    #[arg(long = "ovs.max-reply-bytes", value_name = "BYTES",
          default_value_t = crate::openflow::client::DEFAULT_MAX_REPLY_BYTES)]
    pub ovs_max_reply_bytes: usize,

    /// Network namespace to read IPVS in, as a path like /var/run/docker/netns/ingress_sbox
    /// (repeatable). Without it, the daemon's own namespace.
    #[arg(long = "ipvs.netns", value_name = "PATH")]
    pub ipvs_netns: Vec<PathBuf>,

    /// Count per flow (5-tuple) as well as per port; `--ebpf.flows=false` counts per port only
    /// (cheaper).
    #[arg(long = "ebpf.flows", value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::value_parser!(bool))]
    pub ebpf_flows: bool,

    /// Size of the kernel's flow map (LRU), 1024 to 16777216.
    #[arg(long = "ebpf.max-flows", value_name = "N", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(crate::sources::ebpf::MAX_FLOWS_RANGE))]
    pub ebpf_max_flows: u32,

    /// Netdevs the kernel's per-port maps hold, 1 to 262144 (PORTS: two entries per port, one
    /// per direction; VPORTS: one). Ports past it are not counted, and
    /// dataplane_collector_ebpf_map_full_total{map="PORTS"} says so.
    #[arg(long = "ebpf.max-ports", value_name = "N",
          default_value_t = crate::sources::ebpf::DEFAULT_MAX_PORTS,
          value_parser = clap::value_parser!(u32).range(crate::sources::ebpf::MAX_PORTS_RANGE))]
    pub ebpf_max_ports: u32,

    /// Size of the kernel's map of new IPVS connections per (service, real server), an LRU
    /// map: the pairs not seen for the longest make room. 1024 to 16777216.
    #[arg(long = "ebpf.max-ipvs-conns", value_name = "N",
          default_value_t = crate::sources::ebpf::DEFAULT_MAX_IPVS_CONNS,
          value_parser = clap::value_parser!(u32).range(crate::sources::ebpf::MAX_IPVS_CONNS_RANGE))]
    pub ebpf_max_ipvs_conns: u32,

    /// Flows with series of their own (the most bytes); the rest are folded per port. 0: all.
    #[arg(long = "ebpf.max-flow-series", value_name = "N", default_value_t = 100)]
    pub ebpf_max_flow_series: usize,

    /// Pin the eBPF maps and links in this bpffs directory, so counters survive a restart or
    /// an upgrade (and programs stay attached across it). It must be a directory of the
    /// collector's own, such as /sys/fs/bpf/dataplane-collector (a bpffs root is refused); it
    /// is swept at start (links of gone netdevs, maps whose size or type changed).
    #[arg(long = "ebpf.pin-path", value_name = "DIR")]
    pub ebpf_pin_path: Option<PathBuf>,

    /// Flows idle this long leave the kernel's map for the per-port totals.
    #[arg(long = "ebpf.flow-idle-timeout", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub ebpf_flow_idle_timeout: Duration,

    /// Read VF counters over netlink; `--collector.netlink=false` reads the i40e sysfs
    /// counters instead (the SR-IOV exporter's flag).
    #[arg(long = "collector.netlink", value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::value_parser!(bool))]
    pub sriov_netlink: bool,

    /// Kubelet CPU manager checkpoint.
    #[arg(
        long = "path.cpucheckpoint",
        value_name = "FILE",
        default_value = "/var/lib/kubelet/cpu_manager_state"
    )]
    pub path_cpucheckpoint: PathBuf,

    /// Kubernetes cgroups on the host (cgroup v1 cpuset hierarchy, or the v2 root's kubepods).
    #[arg(
        long = "path.kubecgroup",
        value_name = "DIR",
        default_value = "/sys/fs/cgroup/cpuset/kubepods/"
    )]
    pub path_kubecgroup: PathBuf,

    /// Kubelet pod-resources socket.
    #[arg(
        long = "path.kubeletSocket",
        value_name = "FILE",
        default_value = "/var/lib/kubelet/pod-resources/kubelet.sock"
    )]
    pub path_kubelet_socket: PathBuf,

    /// System CPU and NUMA information.
    #[arg(
        long = "path.nodecpuinfo",
        value_name = "DIR",
        default_value = "/sys/devices/system/node/"
    )]
    pub path_nodecpuinfo: PathBuf,

    /// PCI devices on the host.
    #[arg(
        long = "path.sysbuspci",
        value_name = "DIR",
        default_value = "/sys/bus/pci/devices"
    )]
    pub path_sysbuspci: PathBuf,

    /// Network interfaces on the host.
    #[arg(
        long = "path.sysclassnet",
        value_name = "DIR",
        default_value = "/sys/class/net/"
    )]
    pub path_sysclassnet: PathBuf,

    /// Requests per second each client address is answered (a token bucket per address, for
    /// at most 4096 addresses); past it, HTTP 429. /healthz is exempt. 0: no limit.
    #[arg(long = "web.rate-limit", value_name = "N", default_value_t = 1)]
    pub rate_limit: u32,

    /// Requests the limiter lets through in a burst, per client address.
    #[arg(long = "web.rate-burst", value_name = "N", default_value_t = 10)]
    pub rate_burst: u32,

    /// Client addresses the rate limit never applies to, as CIDRs or addresses (repeatable or
    /// comma-separated): the Prometheus servers.
    #[arg(
        long = "web.rate-limit-exempt",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub rate_limit_exempt: Vec<String>,

    /// Connections open at once; a connection past it is closed as soon as it is accepted.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 64)]
    pub max_connections: usize,

    /// Time a client has to send a request's headers (and to finish the TLS handshake) once it
    /// connected or started the request; past it the connection is closed.
    #[arg(long = "web.header-timeout", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// A keep-alive connection with no request for this long is closed.
    #[arg(long = "web.idle-timeout", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Time a response may wait for the client to take more bytes; past it the connection is
    /// reset and the scrape's slot (--web.max-requests) freed.
    #[arg(long = "web.write-timeout", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// TLS, client certificates, basic auth and response headers, in the exporter-toolkit
    /// format (`tls_server_config`, `basic_auth_users`, `http_server_config`); reloaded on change.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<std::path::PathBuf>,

    /// Serve the read-only JSON flow API at /api/v1/flows (for `flows --node`).
    #[arg(long = "web.enable-flow-api")]
    pub enable_flow_api: bool,

    #[command(flatten)]
    pub collectors: CollectorFlags,
}

/// `--collector.NAME` / `--no-collector.NAME` for every source, and
/// `--collector.disable-defaults`. The last of a pair wins.
#[derive(Debug, Clone, Default)]
pub struct CollectorFlags {
    explicit: BTreeMap<&'static str, bool>,
    disable_defaults: bool,
}

impl CollectorFlags {
    /// Whether a source runs.
    pub fn enabled(&self, name: &str) -> bool {
        if let Some(&on) = self.explicit.get(name) {
            return on;
        }
        !self.disable_defaults && SOURCES.iter().any(|s| s.name == name && s.default_enabled)
    }
}

impl FromArgMatches for CollectorFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = CollectorFlags {
            disable_defaults: m.get_flag("collector.disable-defaults"),
            ..CollectorFlags::default()
        };
        for s in SOURCES {
            let on = format!("collector.{}", s.name);
            let off = format!("no-collector.{}", s.name);
            // The pair overrides each other: at most one is set, the last given.
            // `--collector.X=false` (the seed exporters' kingpin style) also works.
            if let Some(&v) = m.get_one::<bool>(&on) {
                flags.explicit.insert(s.name, v);
            } else if m.get_flag(&off) {
                flags.explicit.insert(s.name, false);
            }
        }
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for CollectorFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        cmd = cmd.arg(
            Arg::new("collector.disable-defaults")
                .long("collector.disable-defaults")
                .action(ArgAction::SetTrue)
                .help("Run only the collectors enabled with --collector.NAME"),
        );
        for s in SOURCES {
            let on = format!("collector.{}", s.name);
            let off = format!("no-collector.{}", s.name);
            let default = if s.default_enabled { "on" } else { "off" };
            cmd = cmd
                .arg(
                    Arg::new(on.clone())
                        .long(on.clone())
                        .num_args(0..=1)
                        .require_equals(true)
                        .default_missing_value("true")
                        .value_parser(clap::value_parser!(bool))
                        .value_name("BOOL")
                        .overrides_with(off.clone())
                        .help(format!(
                            "Enable the {} collector: {} (default {default})",
                            s.name, s.help
                        )),
                )
                .arg(
                    Arg::new(off.clone())
                        .long(off.clone())
                        .action(ArgAction::SetTrue)
                        .overrides_with(on.clone())
                        .help(format!("Disable the {} collector", s.name)),
                );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl Cli {
    /// The serve arguments, whether given at the top level or after `serve`; `None` for
    /// another subcommand.
    pub fn into_serve_args(self) -> Option<ServeArgs> {
        match self.command {
            Some(Command::Serve(a)) => Some(a),
            None => Some(self.serve),
            Some(_) => None,
        }
    }

    /// The serve arguments (for callers that only ever serve, like tests).
    ///
    /// # Panics
    /// If another subcommand was given.
    pub fn serve_args(self) -> ServeArgs {
        match self.into_serve_args() {
            Some(a) => a,
            None => panic!("not the serve subcommand"),
        }
    }
}

/// Parses a listen address; `:PORT` means every IPv4 address.
pub fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    full.parse().map_err(|_| {
        format!("--web.listen-address {s:?} is not HOST:PORT (like 0.0.0.0:9477 or :9477)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut full = vec!["dataplane-collector"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).map(Cli::serve_args)
    }

    #[test]
    fn serve_is_the_default_and_collectors_toggle() {
        let a = parse(&[]).map_err(|e| e.to_string());
        let Ok(a) = a else { panic!("{a:?}") };
        assert_eq!(a.listen_address, DEFAULT_LISTEN);
        assert_eq!(a.ovs_rundir, PathBuf::from("/var/run/openvswitch"));
        assert!(a.collectors.enabled("openflow"));
        assert!(!a.collectors.enabled("nonexistent"));

        let a = parse(&[
            "serve",
            "--no-collector.openflow",
            "--web.listen-address",
            ":1234",
        ]);
        let Ok(a) = a else { panic!("{a:?}") };
        assert!(!a.collectors.enabled("openflow"));
        assert_eq!(a.listen_address, ":1234");

        // The last of a pair wins.
        let a = parse(&["--no-collector.openflow", "--collector.openflow"]);
        assert!(a.map(|a| a.collectors.enabled("openflow")).unwrap_or(false));
        let a = parse(&["--collector.disable-defaults"]);
        assert!(
            a.map(|a| !a.collectors.enabled("openflow"))
                .unwrap_or(false)
        );
        let a = parse(&["--collector.disable-defaults", "--collector.openflow"]);
        assert!(a.map(|a| a.collectors.enabled("openflow")).unwrap_or(false));
        // The seed exporters' `--collector.X=false`.
        let a = parse(&["--collector.openflow=false"]);
        assert!(
            a.map(|a| !a.collectors.enabled("openflow"))
                .unwrap_or(false)
        );
        let a = parse(&["--collector.openflow=true", "--collector.kubepoddevice"]);
        let Ok(a) = a else { panic!("{a:?}") };
        assert!(a.collectors.enabled("openflow") && a.collectors.enabled("kubepoddevice"));
        assert!(!a.collectors.enabled("kubepodcpu"));
        assert!(parse(&["--collector.openflow=maybe"]).is_err());

        let a = parse(&[
            "--ovs.allowed-targets",
            "10.0.0.0/8,node1",
            "--ovs.allowed-targets",
            "unix:/x/",
        ]);
        assert_eq!(
            a.map(|a| a.ovs_allowed_targets).ok(),
            Some(vec![
                "10.0.0.0/8".to_owned(),
                "node1".to_owned(),
                "unix:/x/".to_owned()
            ])
        );
        assert!(parse(&["--log.format", "xml"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn durations_and_addresses() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("abc").is_err());
        assert_eq!(listen_addr(":9477").map(|a| a.port()), Ok(9477));
        assert!(listen_addr("[::1]:80").is_ok());
        assert!(listen_addr("nope").is_err());
    }

    #[test]
    fn ebpf_map_sizes_are_range_checked() {
        let a = parse(&[]).map_err(|e| e.to_string());
        let Ok(a) = a else { panic!("{a:?}") };
        assert_eq!(
            (a.ebpf_max_ports, a.ebpf_max_flows, a.ebpf_max_ipvs_conns),
            (4096, 65_536, 65_536)
        );
        let a = parse(&[
            "--ebpf.max-ports=2",
            "--ebpf.max-flows=1024",
            "--ebpf.max-ipvs-conns=16777216",
        ])
        .map_err(|e| e.to_string());
        let Ok(a) = a else { panic!("{a:?}") };
        assert_eq!(
            (a.ebpf_max_ports, a.ebpf_max_flows, a.ebpf_max_ipvs_conns),
            (2, 1024, 16_777_216)
        );
        for (bad, flag, range) in [
            ("--ebpf.max-ports=0", "--ebpf.max-ports", "1..=262144"),
            ("--ebpf.max-ports=262145", "--ebpf.max-ports", "1..=262144"),
            (
                "--ebpf.max-flows=1023",
                "--ebpf.max-flows",
                "1024..=16777216",
            ),
            (
                "--ebpf.max-flows=16777217",
                "--ebpf.max-flows",
                "1024..=16777216",
            ),
            (
                "--ebpf.max-ipvs-conns=10",
                "--ebpf.max-ipvs-conns",
                "1024..=16777216",
            ),
            ("--ebpf.max-ports=-1", "--ebpf.max-ports", ""),
            ("--ebpf.max-ports=lots", "--ebpf.max-ports", ""),
        ] {
            let e = parse(&[bad]).map(|_| ()).expect_err(bad).to_string();
            assert!(e.contains(flag) && e.contains(range), "{bad}: {e}");
        }
        // Engine::load callers other than the command line get the same check.
        let cfg = crate::sources::ebpf::Config {
            max_ports: 0,
            ..crate::sources::ebpf::Config::for_tests()
        };
        assert!(
            cfg.validate()
                .is_err_and(|e| e.contains("--ebpf.max-ports=0"))
        );
        assert_eq!(crate::sources::ebpf::Config::for_tests().validate(), Ok(()));
    }
}
