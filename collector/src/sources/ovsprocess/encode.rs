//! Metrics of the `ovsprocess` source, named as the Prometheus client libraries' process
//! collector names its own (`process_cpu_seconds_total`, `process_open_fds`, …) with an
//! `ovs_` prefix and a `daemon` label. docs/metrics.md maps them to OVN-Kubernetes' names.

use super::{Process, Snapshot};
use crate::exposition::{MetricType, Writer};

type Gauge = (
    &'static str,
    &'static str,
    fn(&super::Figures) -> Option<u64>,
);

const GAUGES: &[Gauge] = &[
    (
        "ovs_process_resident_memory_bytes",
        "Resident memory of the Open vSwitch daemon (VmRSS in /proc/PID/status).",
        |f| f.resident_bytes,
    ),
    (
        "ovs_process_virtual_memory_bytes",
        "Virtual memory size of the Open vSwitch daemon (vsize in /proc/PID/stat).",
        |f| f.virtual_bytes,
    ),
    (
        "ovs_process_open_fds",
        "File descriptors the Open vSwitch daemon has open (entries of /proc/PID/fd).",
        |f| f.open_fds,
    ),
    (
        "ovs_process_max_fds",
        "The Open vSwitch daemon's soft limit of open file descriptors (Max open files in /proc/PID/limits; no series when unlimited).",
        |f| f.max_fds,
    ),
    (
        "ovs_process_threads",
        "Threads of the Open vSwitch daemon (Threads in /proc/PID/status).",
        |f| f.threads,
    ),
];

fn running(s: &Snapshot) -> impl Iterator<Item = (&Process, &super::Figures)> {
    s.processes
        .iter()
        .filter_map(|p| p.figures.as_ref().map(|f| (p, f)))
}

pub fn encode(s: &Snapshot, w: &mut Writer) {
    w.family(
        "ovs_process_up",
        "1 if the Open vSwitch daemon named in its pidfile in --ovs.rundir is running, 0 if the pidfile names a dead process or another program (no series without a pidfile).",
        MetricType::Gauge,
    );
    for p in &s.processes {
        w.sample("ovs_process_up")
            .label("daemon", p.daemon)
            .value_u64(u64::from(p.figures.is_some()));
    }
    w.family(
        "ovs_process_cpu_seconds_total",
        "CPU time the Open vSwitch daemon used, by mode: user or system (utime and stime in /proc/PID/stat).",
        MetricType::Counter,
    );
    for (p, f) in running(s) {
        for (mode, v) in [("user", f.user_seconds), ("system", f.system_seconds)] {
            if let Some(v) = v {
                w.sample("ovs_process_cpu_seconds_total")
                    .label("daemon", p.daemon)
                    .label("mode", mode)
                    .value_f64(v);
            }
        }
    }
    for (name, help, get) in GAUGES {
        w.family(name, help, MetricType::Gauge);
        for (p, f) in running(s) {
            if let Some(v) = get(f) {
                w.sample(name).label("daemon", p.daemon).value_u64(v);
            }
        }
    }
    w.family(
        "ovs_process_start_time_seconds",
        "When the Open vSwitch daemon started, in seconds since the Unix epoch (starttime in /proc/PID/stat plus btime in /proc/stat).",
        MetricType::Gauge,
    );
    for (p, f) in running(s) {
        if let Some(v) = f.start_time {
            w.sample("ovs_process_start_time_seconds")
                .label("daemon", p.daemon)
                .value_f64(v);
        }
    }
    w.family(
        "ovs_ovsdb_database_size_bytes",
        "Size of ovsdb-server's database file (--collector.ovsprocess.db-file); it grows with transactions until ovsdb-server compacts it.",
        MetricType::Gauge,
    );
    if let Some(n) = s.db_size {
        w.sample("ovs_ovsdb_database_size_bytes")
            .label("database", "Open_vSwitch")
            .value_u64(n);
    }
}
