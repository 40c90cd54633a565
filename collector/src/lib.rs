//! dataplane-collector: network statistics from a Kubernetes node's data plane, for Prometheus.
//!
//! The daemon reads Open vSwitch (over OpenFlow, natively) at scrape time and serves what it
//! read; nothing is polled between scrapes and nothing outlives the device it describes.

pub mod cli;
pub mod exposition;
pub mod openflow;
pub mod registry;
pub mod server;
pub mod sources;

use anyhow::Context as _;
use std::sync::Arc;

/// Sets up logging as the flags ask.
pub fn init_logging(format: cli::LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Json => builder.json().flatten_event(true).init(),
        cli::LogFormat::Text => builder.with_target(false).init(),
    }
}

/// Builds the registry of enabled sources from the flags.
pub fn build_registry(args: &cli::ServeArgs) -> registry::Registry {
    let mut reg = registry::Registry::new();
    if args.collectors.enabled("openflow") {
        reg.add(Arc::new(sources::openflow::OpenFlowSource::new(
            sources::openflow::Config {
                rundir: args.ovs_rundir.clone(),
                flow_actions: args.ovs_flow_actions,
                max_flow_series: args.ovs_max_flow_series,
            },
        )));
    }
    reg
}

/// Runs the HTTP server until SIGINT or SIGTERM.
pub async fn serve(args: cli::ServeArgs) -> anyhow::Result<()> {
    let addr = cli::listen_addr(&args.listen_address).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    serve_on(listener, args, shutdown_signal()).await
}

/// Serves on an already bound listener until `shutdown` completes.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    args: cli::ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let allowed = sources::openflow::target::AllowList::parse(&args.ovs_allowed_targets)
        .map_err(anyhow::Error::msg)?;
    let registry = build_registry(&args);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        collectors = ?registry.names(),
        address = %listener.local_addr().context("listener address")?,
        "starting dataplane-collector"
    );
    let state = Arc::new(server::AppState {
        registry,
        scrape_timeout: args.scrape_timeout,
        allowed_targets: allowed,
        target_port: args.ovs_target_port,
        ovs_rundir: args.ovs_rundir.clone(),
        permits: Arc::new(tokio::sync::Semaphore::new(args.max_requests.max(1))),
    });
    axum::serve(listener, server::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("http server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
