//! HTTP: `/metrics` (every enabled source), the endpoints sources declare for themselves
//! ([`crate::registry::Routes`]: OpenFlow's `/ports`, `/flows`, `/groups`), `/healthz`, and
//! the flow API ([`flow_api`]). The server knows no source: what a request asks of one (an
//! endpoint of its own, a query parameter) reaches it through its `prepare` hook.
//!
//! A scrape fetches every source concurrently, then encodes on a thread of its own (never the
//! shared blocking pool, which DNS look-ups and the eBPF loops need) into a bounded channel that
//! is the response body: memory stays flat however large the output, and a client that does not
//! read holds that thread and its `--web.max-requests` permit for `--web.write-timeout` at most.
//!
//! [`conn`] is the accept loop (connection cap, header, idle and write timeouts, TLS).

pub mod collect;
pub mod conn;
pub mod flow_api;

use crate::exposition::{ChunkSink, Format, Writer};
use crate::registry::{self, Incoming, Registry, ScrapeRequest};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What the HTTP handlers share.
pub struct AppState {
    pub registry: Registry,
    pub scrape_timeout: Duration,
    /// `--ovs.rundir`: the bridges the flow API reads.
    pub ovs_rundir: PathBuf,
    pub permits: Arc<Semaphore>,
    /// `--web.enable-flow-api`.
    pub flow_api: bool,
    /// `--web.rate-limit` / `--web.rate-burst` / `--web.rate-limit-exempt`.
    pub limiter: Option<RateLimiter>,
    /// `--web.config.file`.
    pub web: crate::webconfig::WebConfigWatch,
    /// `--web.max-connections` and the timeouts.
    pub http: conn::HttpLimits,
    /// When each `--web.max-requests` permit now held was taken (for /healthz), and by whom.
    pub busy: Busy,
    /// Permits one client address may hold at once: half of `--web.max-requests` (at least 1),
    /// so that no single client can take every slot from Prometheus.
    pub per_client: usize,
    /// `--web.rate-limit-exempt`: never rate limited, nor held to `per_client`.
    pub exempt: Vec<ipnet::IpNet>,
}

impl AppState {
    /// A `--web.max-requests` permit for a request from `client`; refused when all are taken,
    /// or when `client` (not in `--web.rate-limit-exempt`) already holds its share
    /// ([`AppState::per_client`]).
    pub fn try_permit(&self, client: Option<IpAddr>) -> Result<ScrapePermit, NoPermit> {
        let client = client
            .map(|c| c.to_canonical())
            .filter(|c| !self.exempt.iter().any(|net| net.contains(c)));
        let mut busy = self.busy.lock();
        if let Some(c) = client
            && busy.per_client.get(&c).copied().unwrap_or(0) >= self.per_client
        {
            drop(busy);
            crate::limits::exceeded("http_requests_per_client");
            return Err(NoPermit::ClientShare);
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Err(NoPermit::AllBusy);
        };
        busy.next += 1;
        let id = busy.next;
        busy.since.insert(id, std::time::Instant::now());
        if let Some(c) = client {
            *busy.per_client.entry(c).or_insert(0) += 1;
        }
        Ok(ScrapePermit {
            _permit: permit,
            id,
            client,
            busy: self.busy.clone(),
        })
    }

    /// False when every permit has been held longer than a scrape can take (the scrape timeout
    /// plus the write timeout, plus a second): scrapes are not making progress.
    pub fn healthy(&self) -> bool {
        if self.permits.available_permits() > 0 {
            return true;
        }
        let bound = self.scrape_timeout + self.http.write_timeout + Duration::from_secs(1);
        self.busy
            .youngest()
            .is_none_or(|since| since.elapsed() <= bound)
    }
}

/// Why a request got no `--web.max-requests` permit (HTTP 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoPermit {
    #[error("too many scrapes at once (--web.max-requests)")]
    AllBusy,
    #[error("too many requests at once from this address (half of --web.max-requests)")]
    ClientShare,
}

impl IntoResponse for NoPermit {
    fn into_response(self) -> Response {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{self}\n")).into_response()
    }
}

/// The permits held now, with when each was taken.
#[derive(Debug, Default, Clone)]
pub struct Busy(Arc<Mutex<BusyState>>);

#[derive(Debug, Default)]
struct BusyState {
    next: u64,
    since: HashMap<u64, std::time::Instant>,
    /// Permits held per client address (exempt addresses are not counted).
    per_client: HashMap<IpAddr, usize>,
}

impl Busy {
    fn lock(&self) -> std::sync::MutexGuard<'_, BusyState> {
        match self.0.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// When the most recent of the permits held now was taken.
    fn youngest(&self) -> Option<std::time::Instant> {
        self.lock().since.values().max().copied()
    }
}

/// A `--web.max-requests` permit; given back when dropped.
#[derive(Debug)]
pub struct ScrapePermit {
    _permit: OwnedSemaphorePermit,
    id: u64,
    client: Option<IpAddr>,
    busy: Busy,
}

impl Drop for ScrapePermit {
    fn drop(&mut self) {
        let mut busy = self.busy.lock();
        busy.since.remove(&self.id);
        if let Some(c) = self.client
            && let Some(n) = busy.per_client.get_mut(&c)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                busy.per_client.remove(&c);
            }
        }
    }
}

/// Client addresses the rate limiter keeps a bucket for at once; past it the least recently
/// seen address is forgotten (counted as `http_rate_limit_clients` when its bucket was not full,
/// i.e. when forgetting it gives that client a fresh burst).
pub const RATE_LIMIT_CLIENTS: usize = 4096;

/// A token bucket per client address: `rate` requests per second, bursts of `burst`; addresses
/// in `exempt` are never limited.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    exempt: Vec<ipnet::IpNet>,
    capacity: usize,
    /// Per address: tokens and when they were counted.
    clients: Mutex<HashMap<IpAddr, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, burst: u32, exempt: Vec<ipnet::IpNet>) -> Option<RateLimiter> {
        Self::with_capacity(rate, burst, exempt, RATE_LIMIT_CLIENTS)
    }

    fn with_capacity(
        rate: u32,
        burst: u32,
        exempt: Vec<ipnet::IpNet>,
        capacity: usize,
    ) -> Option<RateLimiter> {
        (rate > 0).then(|| RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            exempt,
            capacity: capacity.max(1),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// `--web.rate-limit-exempt`: CIDRs or bare addresses.
    pub fn parse_exempt(list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
        list.iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!("--web.rate-limit-exempt {s:?} is not a CIDR or an address")
                    })
            })
            .collect()
    }

    /// Takes a token from `client`'s bucket if there is one.
    pub fn allow(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        if self.exempt.iter().any(|net| net.contains(&client)) {
            return true;
        }
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = std::time::Instant::now();
        if !clients.contains_key(&client) && clients.len() >= self.capacity {
            self.evict(&mut clients, now);
        }
        let (tokens, last) = clients.entry(client).or_insert((self.burst, now));
        let refilled =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }

    /// Forgets the least recently seen client.
    fn evict(
        &self,
        clients: &mut HashMap<IpAddr, (f64, std::time::Instant)>,
        now: std::time::Instant,
    ) {
        let Some((&oldest, &(tokens, last))) = clients.iter().min_by_key(|(_, (_, last))| *last)
        else {
            return;
        };
        clients.remove(&oldest);
        let refilled = tokens + now.duration_since(last).as_secs_f64() * self.rate;
        if refilled < self.burst {
            crate::limits::exceeded("http_rate_limit_clients");
        }
    }
}

async fn rate_limit(
    State(app): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let exempt = req.uri().path() == "/healthz";
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if !exempt && app.limiter.as_ref().is_some_and(|l| !l.allow(client)) {
        crate::limits::exceeded("http_rate_limit");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded (--web.rate-limit, --web.rate-burst)\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// `--web.config.file`: basic auth (every path but /healthz, which kubelet probes) and the
/// configured response headers (on every response).
async fn web_config(
    State(app): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let active = app.web.current();
    let mut response = if req.uri().path() == "/healthz" {
        next.run(req).await
    } else {
        match app.web.authorize(req.headers()).await {
            Ok(()) => next.run(req).await,
            Err(e) => {
                tracing::debug!(error = ?e, "request refused: basic auth");
                (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        "Basic realm=\"dataplane-collector\"",
                    )],
                    "unauthorized\n",
                )
                    .into_response()
            }
        }
    };
    for (name, value) in &active.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/flows", get(flow_api));
    // Every declared source's endpoints, a disabled source's too (it answers 404).
    for (_, routes) in state.registry.routes() {
        for e in routes.endpoints {
            let path: &'static str = e.path;
            router = router.route(
                path,
                get(
                    move |State(app): State<Arc<AppState>>,
                          Query(q): Params,
                          h: HeaderMap,
                          peer: Peer| async move {
                        scrape(app, Endpoint::Source(path), q, h, peer_ip(&peer)).await
                    },
                ),
            );
        }
    }
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            web_config,
        ))
        .with_state(state)
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest),
        )
}

async fn index(State(app): State<Arc<AppState>>) -> Response {
    let mut page = String::from(concat!(
        "<html><head><title>dataplane-collector</title></head><body>",
        "<h1>dataplane-collector</h1><ul>",
        "<li><a href=\"metrics\">/metrics</a>: every enabled collector</li>",
    ));
    for (name, routes) in app.registry.routes() {
        for e in routes.endpoints {
            let path = e.path.trim_start_matches('/');
            page.push_str(&format!(
                "<li><a href=\"{path}\">{}</a>: {} ({name})</li>",
                e.path, e.help
            ));
        }
    }
    page.push_str("<li><a href=\"healthz\">/healthz</a></li></ul></body></html>\n");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// The client's address, from the accept loop (absent when the router is driven directly).
type Peer = Option<axum::Extension<axum::extract::ConnectInfo<SocketAddr>>>;

fn peer_ip(peer: &Peer) -> Option<IpAddr> {
    peer.as_ref().map(|p| p.0.0.ip())
}

async fn flow_api(
    State(app): State<Arc<AppState>>,
    Query(q): Params,
    h: HeaderMap,
    peer: Peer,
) -> Response {
    if !app.flow_api {
        return (
            StatusCode::NOT_FOUND,
            "the flow API is off (--web.enable-flow-api)\n",
        )
            .into_response();
    }
    let deadline = deadline(&app, &h);
    flow_api::handle(&app, &q, deadline, peer_ip(&peer)).await
}

/// 200 `ok`, or 503 when scrapes cannot make progress (see [`AppState::healthy`]).
async fn healthz(State(app): State<Arc<AppState>>) -> Response {
    if app.healthy() {
        "ok\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "every scrape slot (--web.max-requests) has been busy for longer than a scrape can take\n",
        )
            .into_response()
    }
}

type Params = Query<Vec<(String, String)>>;

async fn metrics(
    State(app): State<Arc<AppState>>,
    Query(q): Params,
    h: HeaderMap,
    peer: Peer,
) -> Response {
    scrape(app, Endpoint::Metrics, q, h, peer_ip(&peer)).await
}

#[derive(Clone, Copy)]
enum Endpoint {
    Metrics,
    /// A source's own endpoint (its path).
    Source(&'static str),
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
    client: Option<IpAddr>,
) -> Response {
    // `?collect[]=` / `?exclude[]=` (node_exporter's): which collectors `/metrics` runs.
    let filter = match endpoint {
        Endpoint::Source(_) => None,
        Endpoint::Metrics => {
            let declared: Vec<&'static str> = app
                .registry
                .routes()
                .iter()
                .map(|(name, _)| *name)
                .collect();
            match collect::select(&declared, &app.registry.names(), &query) {
                Ok(f) => f,
                Err(e) => {
                    tracing::info!(error = %e, "refused request");
                    return bad_request(e);
                }
            }
        }
    };
    let permit = match app.try_permit(client) {
        Ok(p) => p,
        Err(refused) => return refused.into_response(),
    };

    // A source's own endpoint, or a query parameter only one source takes (`?target=`),
    // scrapes that source alone.
    let alone: Option<&'static str> = match endpoint {
        Endpoint::Source(path) => app.registry.endpoint_owner(path),
        Endpoint::Metrics => {
            let claims = app.registry.exclusive_claims(&query);
            match claims.as_slice() {
                [] => None,
                [(name, _)] => Some(*name),
                [(_, a), (_, b), ..] => {
                    return bad_request(format!("?{a}= and ?{b}= cannot be given together"));
                }
            }
        }
    };
    if let Some(name) = alone
        && !app.registry.contains(name)
    {
        return (
            StatusCode::NOT_FOUND,
            format!("the {name} collector is disabled (--no-collector.{name})\n"),
        )
            .into_response();
    }
    if let (Some(name), Some(selected)) = (alone, &filter)
        && !selected.contains(&name)
    {
        return bad_request(format!(
            "this request scrapes the {name} collector alone, which collect[]/exclude[] leave out"
        ));
    }
    let only_names: Option<Vec<&str>> = match alone {
        Some(name) => Some(vec![name]),
        None => filter,
    };
    let only: Option<&[&str]> = only_names.as_deref();
    let incoming = Incoming {
        endpoint: match endpoint {
            Endpoint::Source(path) => Some(path),
            Endpoint::Metrics => None,
        },
        query: &query,
    };
    let params = match app.registry.prepare(only, incoming).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "refused request");
            return bad_request(e);
        }
    };

    let req = ScrapeRequest {
        deadline: deadline(&app, &headers),
        params: Arc::new(params),
    };
    let results = app.registry.collect(&req, only).await;
    registry::log_results(&results);

    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let with_build_info = matches!(endpoint, Endpoint::Metrics);
    let sink = ChannelSink {
        tx,
        runtime: tokio::runtime::Handle::current(),
        timeout: app.http.write_timeout,
        aborted: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let aborted = sink.aborted.clone();
    // A thread of its own: the blocking pool is small and shared with DNS and the eBPF loops,
    // and a slow client must not take it from them.
    let spawned = std::thread::Builder::new()
        .name("scrape-encode".to_owned())
        .spawn(move || {
            let _permit = permit;
            let mut w = Writer::streaming(sink).with_format(format);
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
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start an encoder thread");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot start an encoder thread\n",
        )
            .into_response();
    }
    let body = Body::from_stream(ReceiverStream { rx, aborted });
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The response body seen from the encoder thread: a chunk the connection has not taken within
/// `--web.write-timeout` ends the response (the connection's own write timeout resets it).
struct ChannelSink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    /// Set when encoding stopped early: the body then ends in an error, not a clean end.
    aborted: Arc<std::sync::atomic::AtomicBool>,
}

impl ChunkSink for ChannelSink {
    fn send(&mut self, chunk: Vec<u8>) -> bool {
        let (tx, timeout) = (&self.tx, self.timeout);
        // The timer is made inside block_on: it needs the runtime's context.
        let sent = self.runtime.block_on(async move {
            tokio::time::timeout(timeout, tx.send(Ok(Bytes::from(chunk)))).await
        });
        match sent {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!("response not taken for --web.write-timeout: encoding stopped");
                self.aborted
                    .store(true, std::sync::atomic::Ordering::Release);
                false
            }
        }
    }
}

/// The encoder's channel as a body `Stream`; an error at the end if encoding was cut short.
pub(crate) struct ReceiverStream {
    pub(crate) rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    pub(crate) aborted: Arc<std::sync::atomic::AtomicBool>,
}

impl futures_util::Stream for ReceiverStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(None)
                if self
                    .aborted
                    .swap(false, std::sync::atomic::Ordering::AcqRel) =>
            {
                std::task::Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "response cut short (--web.write-timeout)",
                ))))
            }
            other => other,
        }
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
    fn rate_limit_is_per_client_and_exempts() {
        let exempt = RateLimiter::parse_exempt(&["127.0.0.1/32".to_owned(), "10.1.2.3".to_owned()])
            .expect("exempt list");
        assert!(RateLimiter::parse_exempt(&["nope".to_owned()]).is_err());
        let l = RateLimiter::new(1, 3, exempt).expect("a limiter");
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "::ffff:127.0.0.3".parse().expect("ip");
        for _ in 0..3 {
            assert!(l.allow(a));
        }
        assert!(!l.allow(a), "past the burst");
        assert!(l.allow(b), "another client has its own bucket");
        for _ in 0..100 {
            assert!(l.allow("127.0.0.1".parse().expect("ip")), "exempt");
            assert!(
                l.allow("::ffff:10.1.2.3".parse().expect("ip")),
                "exempt (mapped)"
            );
        }
        assert!(RateLimiter::new(0, 3, Vec::new()).is_none());
    }

    #[test]
    fn rate_limit_table_is_bounded() {
        let l = RateLimiter::with_capacity(1, 2, Vec::new(), 3).expect("a limiter");
        let before = crate::limits::count("http_rate_limit_clients");
        for i in 1..=3u8 {
            assert!(l.allow(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))));
        }
        assert!(l.allow(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4))));
        let clients = l.clients.lock().expect("lock");
        assert_eq!(clients.len(), 3);
        assert!(
            !clients.contains_key(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            "oldest evicted"
        );
        drop(clients);
        assert!(crate::limits::count("http_rate_limit_clients") > before);
    }

    fn state(max_requests: usize, exempt: &[&str]) -> AppState {
        let exempt: Vec<String> = exempt.iter().map(|s| (*s).to_owned()).collect();
        AppState {
            registry: Registry::new(),
            scrape_timeout: Duration::from_secs(10),
            ovs_rundir: PathBuf::from("/nonexistent"),
            permits: Arc::new(Semaphore::new(max_requests)),
            flow_api: false,
            limiter: None,
            web: crate::webconfig::WebConfigWatch::default(),
            http: conn::HttpLimits::default(),
            busy: Busy::default(),
            per_client: (max_requests / 2).max(1),
            exempt: RateLimiter::parse_exempt(&exempt).expect("exempt"),
        }
    }

    #[test]
    fn permits_are_shared_fairly_and_tracked_for_healthz() {
        let app = state(4, &["127.0.0.1/32"]);
        let a = Some("10.0.0.1".parse().expect("ip"));
        let prom = Some("127.0.0.1".parse().expect("ip"));
        let before = crate::limits::count("http_requests_per_client");
        let a1 = app.try_permit(a).expect("first");
        let _a2 = app.try_permit(a).expect("second: half of 4");
        let refused = app.try_permit(a).expect_err("a third from one address");
        assert_eq!(refused, NoPermit::ClientShare);
        assert_eq!(crate::limits::count("http_requests_per_client"), before + 1);
        assert!(app.healthy(), "permits left");
        let _p1 = app
            .try_permit(prom)
            .expect("exempt address, not held to half");
        let _p2 = app
            .try_permit(prom)
            .expect("exempt address, not held to half");
        assert_eq!(
            app.try_permit(prom).err(),
            Some(NoPermit::AllBusy),
            "none left"
        );
        assert!(app.healthy(), "all held, but only just now");
        assert!(app.busy.youngest().is_some());
        drop(a1);
        assert!(
            app.try_permit(a).is_ok(),
            "its share back once one is dropped"
        );
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

    async fn get(app: Arc<AppState>, uri: &str) -> (StatusCode, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let req = axum::http::Request::get(uri)
            .body(Body::empty())
            .expect("request");
        let resp = router(app).oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn routes_declared_by_sources_are_served_generically() {
        const ROUTES: registry::Routes = registry::Routes {
            endpoints: &[registry::Endpoint {
                path: "/off-only",
                help: "a disabled source's endpoint",
            }],
            exclusive_params: &["remote"],
        };
        let mut app = state(4, &[]);
        app.registry.declare("off", ROUTES);
        let app = Arc::new(app);
        let (status, body) = get(app.clone(), "/off-only").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(
            body.contains("the off collector is disabled (--no-collector.off)"),
            "{body}"
        );
        // Its exclusive parameter narrows /metrics to it: disabled, so 404 too.
        let (status, _) = get(app.clone(), "/metrics?remote=x").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Other parameters are the sources' business; none here.
        let (status, body) = get(app.clone(), "/metrics?other=1").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("dataplane_collector_build_info"), "{body}");
        let (status, body) = get(app.clone(), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("/off-only"), "{body}");
        let (status, _) = get(app, "/undeclared").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
