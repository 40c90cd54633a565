//! Command line. `serve` is the default subcommand: `dataplane-collector --web.listen-address=…`
//! runs the daemon. Flags follow the Prometheus exporters' dotted style.

use crate::sources::ALL as SOURCES;
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
    /// A live view of this node from the daemon's /metrics: ports and pods by traffic,
    /// OpenFlow flows with their cookies, drops and the datapath's health (plain text, one
    /// snapshot, when stdout is not a terminal).
    Top(crate::top::TopArgs),
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

    /// Open vSwitch flags several sources share (the OVSDB monitor, the run directory).
    #[command(flatten)]
    pub ovs: crate::sources::build::OvsArgs,

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
/// `--collector.disable-defaults` (the last of a pair wins); and every source's own flags
/// (`--collector.NAME.FLAG`, from its descriptor), kept as parsed for its constructor.
#[derive(Debug, Clone, Default)]
pub struct CollectorFlags {
    explicit: BTreeMap<&'static str, bool>,
    disable_defaults: bool,
    matches: ArgMatches,
}

impl CollectorFlags {
    /// Whether a source runs.
    pub fn enabled(&self, name: &str) -> bool {
        if let Some(&on) = self.explicit.get(name) {
            return on;
        }
        !self.disable_defaults && SOURCES.iter().any(|s| s.name == name && s.default_enabled)
    }

    /// The command line as parsed, for the sources' constructors to read their flags from.
    pub fn matches(&self) -> &ArgMatches {
        &self.matches
    }
}

impl FromArgMatches for CollectorFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = CollectorFlags {
            disable_defaults: m.get_flag("collector.disable-defaults"),
            matches: m.clone(),
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
        for s in SOURCES {
            cmd = (s.flags)(cmd);
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
        assert_eq!(a.ovs.rundir, PathBuf::from("/var/run/openvswitch"));
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
            a.ok().and_then(|a| {
                a.collectors
                    .matches()
                    .get_many::<String>("collector.openflow.allowed-targets")
                    .map(|v| v.cloned().collect::<Vec<_>>())
            }),
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
    fn every_source_flag_has_its_new_name_and_its_old_alias() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let longs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        let aliases: Vec<String> = cmd
            .get_arguments()
            .flat_map(|a| a.get_visible_aliases().unwrap_or_default())
            .map(str::to_owned)
            .collect();
        for (new, old) in [
            ("collector.openflow.allowed-targets", "ovs.allowed-targets"),
            ("collector.openflow.max-flows", "ovs.max-flows"),
            ("collector.ebpf.max-ports", "ebpf.max-ports"),
            ("collector.ebpf.pin-path", "ebpf.pin-path"),
            ("collector.ipvs.netns", "ipvs.netns"),
            ("collector.vfstats.netlink", "collector.netlink"),
            (
                "collector.kubepoddevice.kubelet-socket",
                "path.kubeletSocket",
            ),
            ("collector.kubepodcpu.cpucheckpoint", "path.cpucheckpoint"),
        ] {
            assert!(longs.iter().any(|l| l == new), "--{new}");
            assert!(aliases.iter().any(|l| l == old), "--{old}");
        }
        // Every source flag is named after its source.
        for a in cmd.get_arguments() {
            let Some(long) = a.get_long() else { continue };
            if let Some(rest) = long.strip_prefix("collector.")
                && let Some((source, _flag)) = rest.split_once('.')
            {
                assert!(SOURCES.iter().any(|s| s.name == source), "--{long}");
            }
        }
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("--collector.ebpf.max-ports"), "{help}");
        assert!(help.contains("--ebpf.max-ports"), "{help}");
        // The old and the new spelling set the same flag.
        let m = |argv: &[&str]| {
            parse(argv).ok().and_then(|a| {
                a.collectors
                    .matches()
                    .get_one::<u32>("collector.ebpf.max-ports")
                    .copied()
            })
        };
        assert_eq!(m(&["--ebpf.max-ports=7"]), Some(7));
        assert_eq!(m(&["--collector.ebpf.max-ports=8"]), Some(8));
        assert_eq!(m(&["serve", "--ebpf.max-ports=9"]), Some(9));
    }
}
