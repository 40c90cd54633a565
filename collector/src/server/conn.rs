//! The accept loop and each connection's life: at most `--web.max-connections` at once, the
//! request headers within `--web.header-timeout`, an idle keep-alive connection closed after
//! `--web.idle-timeout`, and a client that takes no bytes for `--web.write-timeout` reset (its
//! response dropped, the scrape's permit freed). HTTP/1.1 only, with hyper; TLS when the web
//! configuration has it.

use super::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// `--web.max-connections`, `--web.header-timeout`, `--web.idle-timeout`, `--web.write-timeout`.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Each connection's kernel send buffer (`SO_SNDBUF`; Linux doubles it). Fixed rather than
/// autotuned (up to 4 MiB): it bounds the kernel memory a client that does not read can pin, and
/// makes `--web.write-timeout` mean "took less than about this much in that time" rather than
/// "took less than 2 MiB". 256 KiB is 500 MB/s at 0.5 ms round trip.
pub const SEND_BUFFER: usize = 256 * 1024;

/// How often a connection looks at its deadlines at the least (they are exact otherwise).
const WATCH_PERIOD: Duration = Duration::from_millis(500);

/// Accepts connections until `shutdown` completes, then lets the open ones finish their
/// request (for at most the scrape timeout plus the write timeout).
pub async fn serve(
    listener: TcpListener,
    app: Arc<AppState>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = app.http;
    let max = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX / 2);
    let slots = Arc::new(Semaphore::new(max as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            crate::limits::exceeded("http_connections");
            tracing::debug!(%peer, "connection closed: --web.max-connections reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        if let Err(e) =
            nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER)
        {
            tracing::debug!(%peer, error = %e, "cannot set SO_SNDBUF");
        }
        let (app, router, stop) = (app.clone(), router.clone(), stop_rx.clone());
        tokio::spawn(async move {
            connection(stream, peer, app, router, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = app.scrape_timeout + limits.write_timeout;
    if tokio::time::timeout(grace, slots.acquire_many(max))
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown were dropped");
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<AppState>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let limits = app.http;
    let watch = Arc::new(ConnWatch::new());
    let tracked = Tracked {
        inner: stream,
        watch: watch.clone(),
        write_timeout: limits.write_timeout,
        stall: None,
    };
    let io: Box<dyn Io> = match app.web.current().tls.clone() {
        None => Box::new(tracked),
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(tracked)).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    crate::limits::exceeded("http_header_timeout");
                    tracing::debug!(%peer, "TLS handshake timed out (--web.header-timeout)");
                    return;
                }
            }
        }
    };
    watch.reset();

    let svc_watch = watch.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let router = router.clone();
        let guard = RequestGuard::start(svc_watch.clone());
        req.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let response = router.oneshot(req.map(Body::new)).await;
            response.map(|r| {
                r.map(|body| {
                    Body::new(GuardedBody {
                        inner: body,
                        _guard: guard,
                    })
                })
            })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Our own watch below times headers from the first byte of each request, not from
        // the end of the last response (that is the idle timeout).
        .header_read_timeout(None::<Duration>)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let next = watch
            .deadline(&limits)
            .map_or(Instant::now() + WATCH_PERIOD, |(at, _)| {
                at.min(Instant::now() + WATCH_PERIOD)
            });
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(next) => {
                match watch.deadline(&limits) {
                    Some((at, Expiry::Header)) if at <= Instant::now() => {
                        crate::limits::exceeded("http_header_timeout");
                        tracing::debug!(%peer, "request headers timed out (--web.header-timeout)");
                        break;
                    }
                    Some((at, Expiry::Idle)) if at <= Instant::now() => {
                        tracing::debug!(%peer, "idle connection closed (--web.idle-timeout)");
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// What a connection's IO is once TLS (or not) is settled.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Header,
    Idle,
}

/// Where a connection is between requests.
#[derive(Debug)]
struct ConnState {
    /// Requests being answered (their response body not yet sent whole).
    active: usize,
    /// When the request now awaited started (the connection or its first byte).
    header_start: Option<Instant>,
    /// When the connection became idle.
    idle_since: Instant,
}

#[derive(Debug)]
struct ConnWatch(Mutex<ConnState>);

impl ConnWatch {
    fn new() -> Self {
        let now = Instant::now();
        ConnWatch(Mutex::new(ConnState {
            active: 0,
            header_start: Some(now),
            idle_since: now,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        match self.0.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The first request's headers are timed from now (after the TLS handshake).
    fn reset(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.header_start = Some(now);
        s.idle_since = now;
    }

    fn read_bytes(&self) {
        let mut s = self.lock();
        if s.active == 0 && s.header_start.is_none() {
            s.header_start = Some(Instant::now());
        }
    }

    fn request_started(&self) {
        let mut s = self.lock();
        s.active += 1;
        s.header_start = None;
    }

    fn request_done(&self) {
        let mut s = self.lock();
        s.active = s.active.saturating_sub(1);
        s.idle_since = Instant::now();
    }

    fn deadline(&self, limits: &HttpLimits) -> Option<(Instant, Expiry)> {
        let s = self.lock();
        if s.active > 0 {
            return None;
        }
        Some(match s.header_start {
            Some(start) => (start + limits.header_timeout, Expiry::Header),
            None => (s.idle_since + limits.idle_timeout, Expiry::Idle),
        })
    }
}

/// Marks a request answered when its response body is dropped (sent whole, or abandoned).
struct RequestGuard(Arc<ConnWatch>);

impl RequestGuard {
    fn start(watch: Arc<ConnWatch>) -> Self {
        watch.request_started();
        RequestGuard(watch)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The TCP stream, noting reads for the header timer and failing a write that waited
/// `--web.write-timeout` for the client (the socket is then reset, not closed: what was queued
/// for the client is dropped).
struct Tracked {
    inner: TcpStream,
    watch: Arc<ConnWatch>,
    write_timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
}

impl Tracked {
    fn on_write<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    crate::limits::exceeded("http_write_timeout");
                    tracing::info!(
                        peer = ?self.inner.peer_addr().ok(),
                        "client took no bytes for --web.write-timeout: connection reset"
                    );
                    let _ = self.inner.set_zero_linger();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "write timed out (--web.write-timeout)",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stall = None;
                ready
            }
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.read_bytes();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.on_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.on_write(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.on_write(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_idle_deadlines() {
        let limits = HttpLimits::default();
        let t0 = Instant::now();
        let w = ConnWatch::new();
        let (at, kind) = w.deadline(&limits).expect("a deadline");
        assert_eq!(
            kind,
            Expiry::Header,
            "the first request's headers are timed"
        );
        assert!(at >= t0 + limits.header_timeout && at <= Instant::now() + limits.header_timeout);
        w.request_started();
        assert_eq!(w.deadline(&limits), None, "no deadline while answering");
        w.read_bytes();
        assert_eq!(
            w.deadline(&limits),
            None,
            "reads during a request start nothing"
        );
        let t1 = Instant::now();
        w.request_done();
        let (at, kind) = w.deadline(&limits).expect("a deadline");
        assert_eq!(kind, Expiry::Idle);
        assert!(at >= t1 + limits.idle_timeout);
        w.read_bytes();
        let (at, kind) = w.deadline(&limits).expect("a deadline");
        assert_eq!(
            kind,
            Expiry::Header,
            "timed from the next request's first byte"
        );
        assert!(at <= Instant::now() + limits.header_timeout);
    }
}
