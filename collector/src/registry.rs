//! The source trait and the registry that runs sources concurrently for each scrape.
//!
//! A source fetches (I/O) into a typed snapshot, then encodes the snapshot as constant metrics.
//! Every scrape reports, per source, `dataplane_collector_scrape_success`,
//! `dataplane_collector_scrape_duration_seconds` and `dataplane_collector_source_available`
//! (0 when the subsystem is absent on this node: no Open vSwitch, no IPVS module, no VFs).

use crate::exposition::{MetricType, Writer};
use futures_util::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one scrape asks for.
#[derive(Debug, Clone)]
pub struct ScrapeRequest {
    /// Every source must be done by then.
    pub deadline: tokio::time::Instant,
    /// Which parts of OpenFlow to read (the seed-compatible endpoints ask for one slice).
    pub openflow: OpenFlowSlice,
    /// A remote switch from `?target=`, already checked against the allowlist.
    pub target: Option<Arc<crate::sources::openflow::target::Target>>,
}

/// Parts of the OpenFlow source, so `/ports`, `/flows` and `/groups` fetch only what they show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFlowSlice {
    pub ports: bool,
    pub flows: bool,
    pub tables: bool,
    pub groups: bool,
}

impl OpenFlowSlice {
    pub const ALL: OpenFlowSlice = OpenFlowSlice {
        ports: true,
        flows: true,
        tables: true,
        groups: true,
    };
    pub const PORTS: OpenFlowSlice = OpenFlowSlice {
        ports: true,
        flows: false,
        tables: false,
        groups: false,
    };
    pub const FLOWS: OpenFlowSlice = OpenFlowSlice {
        ports: false,
        flows: true,
        tables: true,
        groups: false,
    };
    pub const GROUPS: OpenFlowSlice = OpenFlowSlice {
        ports: false,
        flows: false,
        tables: false,
        groups: true,
    };
}

/// How a source's part of the scrape went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The subsystem is not on this node. Not an error: logged at debug level.
    Unavailable(String),
    /// Something is there and broken; what could be read is still served.
    Failed(String),
    TimedOut,
}

/// Errors a source returns from `fetch`; the registry asks whether the subsystem is simply
/// absent.
pub trait SourceError: std::error::Error + Send + Sync + 'static {
    fn is_unavailable(&self) -> bool {
        false
    }
}

/// A data source: fetch (I/O) → typed snapshot → encode.
pub trait Source: Send + Sync + 'static {
    type Snapshot: Send + Sync + 'static;
    type Error: SourceError;

    /// The name in `--collector.NAME` and in the `collector` label.
    fn name(&self) -> &'static str;

    /// Reads the subsystem. Must not block the thread (spawn_blocking for blocking syscalls).
    fn fetch(
        &self,
        req: &ScrapeRequest,
    ) -> impl Future<Output = Result<Self::Snapshot, Self::Error>> + Send;

    /// Writes the snapshot's metric families.
    fn encode(&self, snapshot: &Self::Snapshot, w: &mut Writer);

    /// A snapshot can carry partial failures (one bridge of three down) or say the subsystem is
    /// absent.
    fn status(&self, _snapshot: &Self::Snapshot) -> Status {
        Status::Ok
    }
}

/// A fetched snapshot ready to encode, type-erased.
pub trait Encodable: Send + Sync {
    fn encode(&self, w: &mut Writer);
}

struct Fetched<S: Source> {
    source: Arc<S>,
    snapshot: S::Snapshot,
}

impl<S: Source> Encodable for Fetched<S> {
    fn encode(&self, w: &mut Writer) {
        self.source.encode(&self.snapshot, w);
    }
}

/// One source's result in a scrape.
pub struct Collected {
    pub name: &'static str,
    pub status: Status,
    pub duration: Duration,
    pub data: Option<Box<dyn Encodable>>,
}

trait DynSource: Send + Sync {
    fn name(&self) -> &'static str;
    fn collect(&self, req: ScrapeRequest) -> BoxFuture<'static, Collected>;
}

struct Erased<S: Source>(Arc<S>);

impl<S: Source> DynSource for Erased<S> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn collect(&self, req: ScrapeRequest) -> BoxFuture<'static, Collected> {
        let source = self.0.clone();
        Box::pin(async move {
            let name = source.name();
            let start = Instant::now();
            let result = tokio::time::timeout_at(req.deadline, source.fetch(&req)).await;
            let duration = start.elapsed();
            match result {
                Ok(Ok(snapshot)) => {
                    let status = source.status(&snapshot);
                    Collected {
                        name,
                        status,
                        duration,
                        data: Some(Box::new(Fetched { source, snapshot })),
                    }
                }
                Ok(Err(e)) if e.is_unavailable() => Collected {
                    name,
                    status: Status::Unavailable(error_chain(&e)),
                    duration,
                    data: None,
                },
                Ok(Err(e)) => Collected {
                    name,
                    status: Status::Failed(error_chain(&e)),
                    duration,
                    data: None,
                },
                Err(_) => Collected {
                    name,
                    status: Status::TimedOut,
                    duration,
                    data: None,
                },
            }
        })
    }
}

/// An error and its causes on one line: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// A source's name, description and default, for flags and docs.
#[derive(Debug, Clone, Copy)]
pub struct SourceInfo {
    pub name: &'static str,
    pub help: &'static str,
    pub default_enabled: bool,
}

/// Every source this build knows, in the order they are encoded.
pub const SOURCES: &[SourceInfo] = &[
    SourceInfo {
        name: "openflow",
        help: "Open vSwitch OpenFlow port, flow, table and group statistics (native OpenFlow 1.3)",
        default_enabled: true,
    },
    SourceInfo {
        name: "ovsdb",
        help: "Open vSwitch interface statistics and state, and the pod each interface belongs to (OVSDB monitor)",
        default_enabled: true,
    },
    SourceInfo {
        name: "ebpf",
        help: "eBPF counters: per-port and per-flow traffic at the OVS vports (TC), kernel datapath upcalls and IPVS connections (kprobes)",
        default_enabled: true,
    },
    SourceInfo {
        name: "ipvs",
        help: "IPVS virtual services and real servers (generic netlink)",
        default_enabled: true,
    },
    SourceInfo {
        name: "vfstats",
        help: "SR-IOV virtual function counters (netlink, or i40e sysfs)",
        default_enabled: true,
    },
    SourceInfo {
        name: "kubepoddevice",
        help: "which pod holds which VF (kubelet pod-resources API)",
        default_enabled: false,
    },
    SourceInfo {
        name: "kubepodcpu",
        help: "which CPUs a Guaranteed pod owns (CPU manager checkpoint and cpusets)",
        default_enabled: false,
    },
];

/// The enabled sources.
#[derive(Default)]
pub struct Registry {
    sources: Vec<Arc<dyn DynSource>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    pub fn add<S: Source>(&mut self, source: Arc<S>) {
        self.sources.push(Arc::new(Erased(source)));
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.sources.iter().map(|s| s.name()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.sources.iter().any(|s| s.name() == name)
    }

    /// Runs the named sources (all if `only` is `None`) concurrently, each on its own task and
    /// bounded by the request's deadline. Results come back in registry order.
    pub async fn collect(&self, req: &ScrapeRequest, only: Option<&[&str]>) -> Vec<Collected> {
        let handles: Vec<_> = self
            .sources
            .iter()
            .filter(|s| only.is_none_or(|names| names.contains(&s.name())))
            .map(|s| (s.name(), tokio::spawn(s.collect(req.clone()))))
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for (name, handle) in handles {
            out.push(match handle.await {
                Ok(c) => c,
                Err(e) => Collected {
                    name,
                    status: Status::Failed(format!("source task failed: {e}")),
                    duration: Duration::ZERO,
                    data: None,
                },
            });
        }
        out
    }
}

/// Writes the per-source scrape metrics and logs what failed.
pub fn encode_scrape_meta(results: &[Collected], w: &mut Writer) {
    w.family(
        "dataplane_collector_scrape_duration_seconds",
        "Time a source took to read its subsystem in this scrape.",
        MetricType::Gauge,
    );
    for r in results {
        w.sample("dataplane_collector_scrape_duration_seconds")
            .label("collector", r.name)
            .value_f64(r.duration.as_secs_f64());
    }
    w.family(
        "dataplane_collector_scrape_success",
        "1 if the source read everything it should in this scrape, 0 if it failed, timed out or is unavailable.",
        MetricType::Gauge,
    );
    for r in results {
        w.sample("dataplane_collector_scrape_success")
            .label("collector", r.name)
            .value_u64(u64::from(r.status == Status::Ok));
    }
    w.family(
        "dataplane_collector_source_available",
        "1 if the subsystem the source reads exists on this node, 0 if it is absent (no Open vSwitch, no IPVS module, no VFs).",
        MetricType::Gauge,
    );
    for r in results {
        w.sample("dataplane_collector_source_available")
            .label("collector", r.name)
            .value_u64(u64::from(!matches!(r.status, Status::Unavailable(_))));
    }
    crate::limits::encode(w);
    crate::webconfig::encode(w);
}

/// Logs each source's outcome at the level it deserves.
pub fn log_results(results: &[Collected]) {
    for r in results {
        let secs = r.duration.as_secs_f64();
        match &r.status {
            Status::Ok => tracing::debug!(collector = r.name, duration_seconds = secs, "source ok"),
            Status::Unavailable(why) => {
                tracing::debug!(collector = r.name, reason = %why, "source unavailable")
            }
            Status::Failed(why) => {
                tracing::warn!(collector = r.name, duration_seconds = secs, error = %why, "source failed")
            }
            Status::TimedOut => {
                tracing::warn!(
                    collector = r.name,
                    duration_seconds = secs,
                    "source timed out"
                )
            }
        }
    }
}

/// `dataplane_collector_build_info`.
pub fn encode_build_info(w: &mut Writer) {
    w.family(
        "dataplane_collector_build_info",
        "Build information of the running dataplane-collector; always 1.",
        MetricType::Gauge,
    );
    w.sample("dataplane_collector_build_info")
        .label("version", env!("CARGO_PKG_VERSION"))
        .label("revision", env!("DPC_GIT_REVISION"))
        .label("rustc_version", env!("DPC_RUSTC_VERSION"))
        .value_u64(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("not here")]
        Absent,
        #[error("broken")]
        Broken,
    }
    impl SourceError for TestError {
        fn is_unavailable(&self) -> bool {
            matches!(self, TestError::Absent)
        }
    }

    struct Fake {
        name: &'static str,
        delay: Duration,
        result: fn() -> Result<u64, TestError>,
    }

    impl Source for Fake {
        type Snapshot = u64;
        type Error = TestError;
        fn name(&self) -> &'static str {
            self.name
        }
        async fn fetch(&self, _req: &ScrapeRequest) -> Result<u64, TestError> {
            tokio::time::sleep(self.delay).await;
            (self.result)()
        }
        fn encode(&self, snapshot: &u64, w: &mut Writer) {
            w.family(self.name, "test", MetricType::Gauge);
            w.sample(self.name).value_u64(*snapshot);
        }
    }

    #[tokio::test]
    async fn concurrent_with_timeouts_and_statuses() {
        let mut reg = Registry::new();
        let slow = Duration::from_millis(300);
        reg.add(Arc::new(Fake {
            name: "ok_source",
            delay: slow,
            result: || Ok(7),
        }));
        reg.add(Arc::new(Fake {
            name: "absent",
            delay: Duration::ZERO,
            result: || Err(TestError::Absent),
        }));
        reg.add(Arc::new(Fake {
            name: "broken",
            delay: slow,
            result: || Err(TestError::Broken),
        }));
        reg.add(Arc::new(Fake {
            name: "stuck",
            delay: Duration::from_secs(3600),
            result: || Ok(1),
        }));
        let req = ScrapeRequest {
            deadline: tokio::time::Instant::now() + Duration::from_secs(1),
            openflow: OpenFlowSlice::ALL,
            target: None,
        };
        let start = Instant::now();
        let results = reg.collect(&req, None).await;
        // Run concurrently: well under the sum of the delays.
        assert!(start.elapsed() < Duration::from_secs(3));
        let statuses: Vec<_> = results.iter().map(|r| (r.name, r.status.clone())).collect();
        assert_eq!(
            statuses,
            vec![
                ("ok_source", Status::Ok),
                ("absent", Status::Unavailable("not here".into())),
                ("broken", Status::Failed("broken".into())),
                ("stuck", Status::TimedOut),
            ]
        );
        let mut w = Writer::new();
        encode_scrape_meta(&results, &mut w);
        for r in &results {
            if let Some(d) = &r.data {
                d.encode(&mut w);
            }
        }
        let text = w.into_string();
        assert!(text.contains("dataplane_collector_scrape_success{collector=\"ok_source\"} 1\n"));
        assert!(text.contains("dataplane_collector_scrape_success{collector=\"stuck\"} 0\n"));
        assert!(text.contains("dataplane_collector_source_available{collector=\"absent\"} 0\n"));
        assert!(text.contains("dataplane_collector_source_available{collector=\"broken\"} 1\n"));
        assert!(text.contains("ok_source 7\n"));
        assert!(!text.contains("\nstuck "));

        let only = reg.collect(&req, Some(&["absent"])).await;
        assert_eq!(only.len(), 1);
    }
}
