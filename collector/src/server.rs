//! HTTP: `/metrics` (every enabled source), `/ports`, `/flows`, `/groups` (one OpenFlow slice,
//! like the seed exporter, with `?target=`), `/healthz`.
//!
//! A scrape fetches every source concurrently, then encodes on a blocking thread into a bounded
//! channel that is the response body: memory stays flat however large the output.

use crate::exposition::{self, ChunkSink, Writer};
use crate::registry::{self, OpenFlowSlice, Registry, ScrapeRequest};
use crate::sources::openflow::target::{self, AllowList};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// What the HTTP handlers share.
pub struct AppState {
    pub registry: Registry,
    /// Run once when the server stops.
    pub shutdown: Vec<crate::ShutdownHook>,
    pub scrape_timeout: Duration,
    pub allowed_targets: AllowList,
    pub target_port: u16,
    pub ovs_rundir: PathBuf,
    pub permits: Arc<Semaphore>,
    /// `--web.enable-flow-api`.
    pub flow_api: bool,
    /// `--web.rate-limit` / `--web.rate-burst`.
    pub limiter: Option<RateLimiter>,
}

/// A token bucket for the whole server: `rate` requests per second, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl RateLimiter {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, burst: u32) -> Option<RateLimiter> {
        (rate > 0).then(|| {
            let burst = f64::from(burst.max(1));
            RateLimiter {
                rate: f64::from(rate),
                burst,
                state: std::sync::Mutex::new((burst, std::time::Instant::now())),
            }
        })
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = std::time::Instant::now();
        let (tokens, last) = *s;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            true
        } else {
            *s = (tokens, now);
            false
        }
    }
}

async fn rate_limit(
    State(app): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let exempt = req.uri().path() == "/healthz";
    if !exempt && app.limiter.as_ref().is_some_and(|l| !l.allow()) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded (--web.rate-limit, --web.rate-burst)\n",
        )
            .into_response();
    }
    next.run(req).await
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/ports", get(ports))
        .route("/flows", get(flows))
        .route("/groups", get(groups))
        .route("/healthz", get(healthz))
        .route("/api/v1/flows", get(flow_api))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit,
        ))
        .with_state(state)
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest),
        )
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        concat!(
            "<html><head><title>dataplane-collector</title></head><body>",
            "<h1>dataplane-collector</h1><ul>",
            "<li><a href=\"metrics\">/metrics</a>: every enabled collector</li>",
            "<li><a href=\"ports\">/ports</a>, <a href=\"flows\">/flows</a>, ",
            "<a href=\"groups\">/groups</a>: one OpenFlow slice (<code>?target=</code> for another switch)</li>",
            "<li><a href=\"healthz\">/healthz</a></li></ul></body></html>\n"
        ),
    )
}

async fn flow_api(State(app): State<Arc<AppState>>, Query(q): Params, h: HeaderMap) -> Response {
    if !app.flow_api {
        return (
            StatusCode::NOT_FOUND,
            "the flow API is off (--web.enable-flow-api)\n",
        )
            .into_response();
    }
    let deadline = deadline(&app, &h);
    crate::flows::api::handle(&app, &q, deadline).await
}

async fn healthz() -> impl IntoResponse {
    "ok\n"
}

type Params = Query<Vec<(String, String)>>;

async fn metrics(State(app): State<Arc<AppState>>, Query(q): Params, h: HeaderMap) -> Response {
    scrape(app, Endpoint::Metrics, q, h).await
}

async fn ports(State(app): State<Arc<AppState>>, Query(q): Params, h: HeaderMap) -> Response {
    scrape(app, Endpoint::OpenFlow(OpenFlowSlice::PORTS), q, h).await
}

async fn flows(State(app): State<Arc<AppState>>, Query(q): Params, h: HeaderMap) -> Response {
    scrape(app, Endpoint::OpenFlow(OpenFlowSlice::FLOWS), q, h).await
}

async fn groups(State(app): State<Arc<AppState>>, Query(q): Params, h: HeaderMap) -> Response {
    scrape(app, Endpoint::OpenFlow(OpenFlowSlice::GROUPS), q, h).await
}

#[derive(Clone, Copy)]
enum Endpoint {
    Metrics,
    OpenFlow(OpenFlowSlice),
}

fn bad_request(reason: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
}

/// The deadline for the sources: our own timeout, or Prometheus's less half a second.
fn deadline(app: &AppState, headers: &HeaderMap) -> tokio::time::Instant {
    tokio::time::Instant::now() + scrape_timeout(app.scrape_timeout, headers)
}

/// `--scrape.timeout`, or `X-Prometheus-Scrape-Timeout-Seconds` less half a second when that is
/// shorter (never under 0.1 s). A value that is not a positive finite number of seconds, or is
/// larger than any duration (`1e20`), leaves `--scrape.timeout` in force.
pub fn scrape_timeout(ours: Duration, headers: &HeaderMap) -> Duration {
    let prom = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .and_then(|v| Duration::try_from_secs_f64((v - 0.5).max(0.1)).ok());
    match prom {
        Some(prom) => ours.min(prom),
        None => ours,
    }
}

async fn scrape(
    app: Arc<AppState>,
    endpoint: Endpoint,
    query: Vec<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Ok(permit) = app.permits.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many scrapes at once (--web.max-requests)\n",
        )
            .into_response();
    };

    let targets: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "target")
        .map(|(_, v)| v.as_str())
        .collect();
    if targets.len() > 1 {
        return bad_request("give ?target= at most once");
    }
    let target = match targets.first() {
        None => None,
        Some(raw) => {
            let checked = match target::parse(raw, app.target_port) {
                Ok(spec) => {
                    target::authorize(raw, spec, &app.allowed_targets, &app.ovs_rundir).await
                }
                Err(e) => Err(e),
            };
            match checked {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    tracing::info!(error = %e, "refused target");
                    return bad_request(e);
                }
            }
        }
    };

    // With a target, only the OpenFlow source applies: the others describe this node.
    let (slice, only): (OpenFlowSlice, Option<&[&str]>) = match endpoint {
        Endpoint::Metrics if target.is_some() => (OpenFlowSlice::ALL, Some(&["openflow"])),
        Endpoint::Metrics => (OpenFlowSlice::ALL, None),
        Endpoint::OpenFlow(slice) => (slice, Some(&["openflow"])),
    };
    if only.is_some() && !app.registry.contains("openflow") {
        return (
            StatusCode::NOT_FOUND,
            "the openflow collector is disabled (--no-collector.openflow)\n",
        )
            .into_response();
    }

    let req = ScrapeRequest {
        deadline: deadline(&app, &headers),
        openflow: slice,
        target,
    };
    let results = app.registry.collect(&req, only).await;
    registry::log_results(&results);

    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let with_build_info = matches!(endpoint, Endpoint::Metrics);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut w = Writer::streaming(ChannelSink(tx));
        if with_build_info {
            registry::encode_build_info(&mut w);
        }
        registry::encode_scrape_meta(&results, &mut w);
        for r in &results {
            if w.is_closed() {
                break;
            }
            if let Some(data) = &r.data {
                data.encode(&mut w);
            }
        }
        w.finish();
    });
    let body = Body::from_stream(ReceiverStream(rx));
    ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], body).into_response()
}

struct ChannelSink(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl ChunkSink for ChannelSink {
    fn send(&mut self, chunk: Vec<u8>) -> bool {
        self.0.blocking_send(Ok(Bytes::from(chunk))).is_ok()
    }
}

/// An `mpsc::Receiver` as a `Stream`.
struct ReceiverStream<T>(mpsc::Receiver<T>);

impl<T> futures_util::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-prometheus-scrape-timeout-seconds",
            value.parse().expect("header value"),
        );
        h
    }

    #[test]
    fn scrape_timeout_header_is_clamped_never_panics() {
        let ours = Duration::from_secs(10);
        assert_eq!(scrape_timeout(ours, &HeaderMap::new()), ours);
        assert_eq!(
            scrape_timeout(ours, &with("3")),
            Duration::from_millis(2500)
        );
        assert_eq!(
            scrape_timeout(ours, &with("0.2")),
            Duration::from_millis(100)
        );
        assert_eq!(scrape_timeout(ours, &with("60")), ours);
        for silly in [
            "1e20",
            "1e308",
            "inf",
            "NaN",
            "-5",
            "0",
            "x",
            "18446744073709551616",
        ] {
            assert_eq!(scrape_timeout(ours, &with(silly)), ours, "{silly}");
        }
    }
}
