//! The source trait and the registry that runs sources concurrently for each scrape.
//!
//! A source fetches (I/O) into a typed snapshot, then encodes the snapshot as constant metrics.
//! Every scrape reports, per source, `dataplane_collector_scrape_success`,
//! `dataplane_collector_scrape_duration_seconds` and `dataplane_collector_source_available`
//! (0 when the subsystem is absent on this node: no Open vSwitch, no IPVS module, no VFs).

use crate::exposition::{MetricType, Writer};
use futures_util::future::BoxFuture;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one scrape asks for.
#[derive(Debug, Clone)]
pub struct ScrapeRequest {
    /// Every source must be done by then.
    pub deadline: tokio::time::Instant,
    /// What the HTTP request asked of particular sources, read by their
    /// [`Source::prepare`] hooks (typed, keyed by type: each source reads its own).
    pub params: Arc<RequestParams>,
}

impl ScrapeRequest {
    /// A scrape with no request parameters (every source does its default).
    pub fn new(deadline: tokio::time::Instant) -> Self {
        ScrapeRequest {
            deadline,
            params: Arc::new(RequestParams::default()),
        }
    }

    /// The parameter of type `T` a [`Source::prepare`] hook put there, if any.
    pub fn param<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.params.get::<T>()
    }
}

/// Per-request parameters, one value per type: a source's `prepare` inserts a type of its own
/// and its `fetch` reads it back, so the server and the registry never name a source's types.
#[derive(Default)]
pub struct RequestParams {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl RequestParams {
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }
}

impl std::fmt::Debug for RequestParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestParams")
            .field("values", &self.values.len())
            .finish()
    }
}

/// The HTTP request as a source's [`Source::prepare`] hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// One of the source's own [`Routes::endpoints`] (`/ports`), or `None` for `/metrics`.
    pub endpoint: Option<&'static str>,
    /// The query parameters as given.
    pub query: &'a [(String, String)],
}

/// Why a source refused what a request asked of it (HTTP 400; the message is the reason).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{reason}")]
    BadParameter {
        /// The query parameter (`target`).
        param: &'static str,
        reason: String,
    },
}

/// One HTTP endpoint of a source's own, besides `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// `/ports`.
    pub path: &'static str,
    /// A line for the index page.
    pub help: &'static str,
}

/// What of HTTP a source serves besides its part of `/metrics`, declared with the source
/// (known for a disabled source too, which then answers 404).
#[derive(Debug, Clone, Copy, Default)]
pub struct Routes {
    /// Endpoints that scrape this source alone.
    pub endpoints: &'static [Endpoint],
    /// Query parameters that, on `/metrics`, narrow the scrape to this source alone
    /// (`?target=`: another switch, so the sources describing this node do not apply).
    pub exclusive_params: &'static [&'static str],
}

impl Routes {
    /// Nothing but its part of `/metrics`.
    pub const NONE: Routes = Routes {
        endpoints: &[],
        exclusive_params: &[],
    };
}

/// What to do when the daemon stops (detach eBPF programs…).
pub type ShutdownHook = Box<dyn Fn() + Send + Sync>;

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

    /// Reads what an HTTP request asks of this source (its own endpoints, its query
    /// parameters) into `params`, for `fetch` to find in [`ScrapeRequest::params`]. Runs for
    /// each source a request scrapes, before any fetches; an error refuses the request (400).
    fn prepare(
        &self,
        _incoming: Incoming<'_>,
        _params: &mut RequestParams,
    ) -> impl Future<Output = Result<(), RequestError>> + Send {
        std::future::ready(Ok(()))
    }

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
    fn prepare<'a>(
        &'a self,
        incoming: Incoming<'a>,
        params: &'a mut RequestParams,
    ) -> BoxFuture<'a, Result<(), RequestError>>;
    fn collect(&self, req: ScrapeRequest) -> BoxFuture<'static, Collected>;
}

struct Erased<S: Source>(Arc<S>);

impl<S: Source> DynSource for Erased<S> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn prepare<'a>(
        &'a self,
        incoming: Incoming<'a>,
        params: &'a mut RequestParams,
    ) -> BoxFuture<'a, Result<(), RequestError>> {
        Box::pin(self.0.prepare(incoming, params))
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

/// The enabled sources, the routes of every known one, and what to run at shutdown.
#[derive(Default)]
pub struct Registry {
    sources: Vec<Arc<dyn DynSource>>,
    routes: Vec<(&'static str, Routes)>,
    shutdown: Vec<ShutdownHook>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds an enabled source.
    pub fn add<S: Source>(&mut self, source: Arc<S>) {
        self.sources.push(Arc::new(Erased(source)));
    }

    /// Declares what of HTTP the source `name` serves, whether or not it is enabled.
    pub fn declare(&mut self, name: &'static str, routes: Routes) {
        self.routes.push((name, routes));
    }

    /// Every declared source with its routes.
    pub fn routes(&self) -> &[(&'static str, Routes)] {
        &self.routes
    }

    /// The source that serves `path` alone.
    pub fn endpoint_owner(&self, path: &str) -> Option<&'static str> {
        self.routes
            .iter()
            .find(|(_, r)| r.endpoints.iter().any(|e| e.path == path))
            .map(|(name, _)| *name)
    }

    /// The sources whose exclusive query parameters (see [`Routes::exclusive_params`]) the
    /// query has, each once, with the parameter that claimed it.
    pub fn exclusive_claims(
        &self,
        query: &[(String, String)],
    ) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for (name, r) in &self.routes {
            if let Some(p) = r
                .exclusive_params
                .iter()
                .find(|p| query.iter().any(|(k, _)| k == *p))
            {
                out.push((name, p));
            }
        }
        out
    }

    /// Runs `hook` when the daemon stops.
    pub fn on_shutdown(&mut self, hook: ShutdownHook) {
        self.shutdown.push(hook);
    }

    /// Runs the shutdown hooks.
    pub fn shutdown(&self) {
        for hook in &self.shutdown {
            hook();
        }
    }

    /// Runs the [`Source::prepare`] hook of each source the request scrapes (all if `only`
    /// is `None`), in registry order; the first refusal ends it.
    pub async fn prepare(
        &self,
        only: Option<&[&str]>,
        incoming: Incoming<'_>,
    ) -> Result<RequestParams, RequestError> {
        let mut params = RequestParams::default();
        for s in self
            .sources
            .iter()
            .filter(|s| only.is_none_or(|names| names.contains(&s.name())))
        {
            s.prepare(incoming, &mut params).await?;
        }
        Ok(params)
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
        let req = ScrapeRequest::new(tokio::time::Instant::now() + Duration::from_secs(1));
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

    /// A source whose `prepare` hook reads `?n=` into a parameter its `fetch` returns.
    struct Echo;

    #[derive(Debug, PartialEq)]
    struct EchoParam(u64);

    impl Source for Echo {
        type Snapshot = u64;
        type Error = TestError;
        fn name(&self) -> &'static str {
            "echo"
        }
        async fn prepare(
            &self,
            incoming: Incoming<'_>,
            params: &mut RequestParams,
        ) -> Result<(), RequestError> {
            for (k, v) in incoming.query {
                if k == "n" {
                    let n = v.parse().map_err(|_| RequestError::BadParameter {
                        param: "n",
                        reason: format!("?n={v} is not a number"),
                    })?;
                    params.insert(EchoParam(n));
                }
            }
            Ok(())
        }
        async fn fetch(&self, req: &ScrapeRequest) -> Result<u64, TestError> {
            Ok(req.param::<EchoParam>().map_or(0, |p| p.0))
        }
        fn encode(&self, snapshot: &u64, w: &mut Writer) {
            w.family("echo", "test", MetricType::Gauge);
            w.sample("echo").value_u64(*snapshot);
        }
    }

    #[tokio::test]
    async fn request_parameters_reach_the_source_that_asked() {
        let mut reg = Registry::new();
        reg.add(Arc::new(Echo));
        reg.declare(
            "echo",
            Routes {
                endpoints: &[Endpoint {
                    path: "/echo",
                    help: "echo",
                }],
                exclusive_params: &["n"],
            },
        );
        reg.declare("other", Routes::default());
        assert_eq!(reg.endpoint_owner("/echo"), Some("echo"));
        assert_eq!(reg.endpoint_owner("/nope"), None);
        let query = vec![("n".to_owned(), "42".to_owned())];
        assert_eq!(reg.exclusive_claims(&query), vec![("echo", "n")]);
        assert!(reg.exclusive_claims(&[]).is_empty());

        let incoming = Incoming {
            endpoint: None,
            query: &query,
        };
        let params = reg.prepare(None, incoming).await.expect("a number");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let req = ScrapeRequest {
            deadline,
            params: Arc::new(params),
        };
        assert_eq!(req.param::<EchoParam>(), Some(&EchoParam(42)));
        let results = reg.collect(&req, None).await;
        let mut w = Writer::new();
        for r in &results {
            if let Some(d) = &r.data {
                d.encode(&mut w);
            }
        }
        assert!(w.into_string().contains("echo 42\n"));
        // Without the parameter, the source does its default.
        let results = reg.collect(&ScrapeRequest::new(deadline), None).await;
        let mut w = Writer::new();
        for r in &results {
            if let Some(d) = &r.data {
                d.encode(&mut w);
            }
        }
        assert!(w.into_string().contains("echo 0\n"));

        let bad = vec![("n".to_owned(), "x".to_owned())];
        let refused = reg
            .prepare(
                None,
                Incoming {
                    endpoint: None,
                    query: &bad,
                },
            )
            .await;
        assert!(
            matches!(&refused, Err(RequestError::BadParameter { param: "n", .. })),
            "{refused:?}"
        );
        // A source left out of the scrape is not asked.
        assert!(
            reg.prepare(
                Some(&["other"]),
                Incoming {
                    endpoint: None,
                    query: &bad,
                },
            )
            .await
            .is_ok()
        );
    }

    #[test]
    fn shutdown_hooks_run() {
        let mut reg = Registry::new();
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = ran.clone();
        reg.on_shutdown(Box::new(move || {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        reg.shutdown();
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
