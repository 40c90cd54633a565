//! dataplane-collector: network statistics from a Kubernetes node's data plane, for Prometheus.
//!
//! The daemon reads Open vSwitch (over OpenFlow, natively) at scrape time and serves what it
//! read; nothing is polled between scrapes and nothing outlives the device it describes.

pub mod cli;
pub mod exposition;
pub mod flagvalue;
pub mod flows;
pub mod fuzzing;
pub mod limits;
pub mod netlink;
pub mod openflow;
pub mod ovsdb;
pub mod probe;
pub mod registry;
pub mod server;
pub mod sources;
pub mod top;
pub mod unixctl;
pub mod webconfig;

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
        cli::LogFormat::Json => builder.json().flatten_event(true).with_target(false).init(),
        cli::LogFormat::Text => builder.with_target(false).init(),
    }
}

/// What to do when the daemon stops (detach eBPF programs…).
pub use registry::ShutdownHook;

/// Builds the registry of enabled sources from the flags: each source's descriptor
/// ([`sources::ALL`]) builds it from its own flags. Starts the OVSDB monitor (on the current
/// tokio runtime) when a source needs it.
pub fn build_registry(args: &cli::ServeArgs) -> Result<registry::Registry, StartError> {
    build_registry_with(args, sources::build::Readers::default())
}

/// [`build_registry`], with the sources whose reader is in `readers` reading through it
/// instead of the kernel (see [`sources::build::Readers`]).
pub fn build_registry_with(
    args: &cli::ServeArgs,
    readers: sources::build::Readers,
) -> Result<registry::Registry, StartError> {
    sources::build::build_all(
        sources::ALL,
        |name| args.collectors.enabled(name),
        args.collectors.matches(),
        &args.ovs,
        readers,
    )
    .map_err(|source| StartError::Collectors { source })
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A source could not be built from its flags.
    #[error("{source}")]
    Collectors {
        #[source]
        source: sources::build::BuildError,
    },
    #[error("{reason}")]
    ListenAddress { addr: String, reason: String },
    #[error("{reason}")]
    RateLimitExempt { reason: String },
    #[error("--web.config.file: {source}")]
    WebConfig {
        #[source]
        source: webconfig::WebConfigError,
    },
    #[error("{reason}")]
    OvsdbEndpoint { endpoint: String, reason: String },
    #[error("probe failed: {reason}")]
    Probe { reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("http server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Builds what the HTTP handlers share from the flags.
pub fn app_state(args: &cli::ServeArgs) -> Result<Arc<server::AppState>, StartError> {
    app_state_with(args, sources::build::Readers::default())
}

/// [`app_state`], with the sources whose reader is in `readers` reading through it (see
/// [`sources::build::Readers`]).
pub fn app_state_with(
    args: &cli::ServeArgs,
    readers: sources::build::Readers,
) -> Result<Arc<server::AppState>, StartError> {
    let exempt = server::RateLimiter::parse_exempt(&args.rate_limit_exempt)
        .map_err(|reason| StartError::RateLimitExempt { reason })?;
    let web = webconfig::WebConfigWatch::load(args.web_config_file.as_deref())
        .map_err(|source| StartError::WebConfig { source })?;
    let registry = build_registry_with(args, readers)?;
    Ok(Arc::new(server::AppState {
        registry,
        scrape_timeout: args.scrape_timeout,
        ovs_rundir: args.ovs.rundir.clone(),
        permits: Arc::new(tokio::sync::Semaphore::new(args.max_requests.max(1))),
        flow_api: args.enable_flow_api,
        limiter: server::RateLimiter::new(args.rate_limit, args.rate_burst, exempt.clone()),
        web,
        http: server::conn::HttpLimits {
            max_connections: args.max_connections.max(1),
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            write_timeout: args.write_timeout,
        },
        busy: server::Busy::default(),
        per_client: (args.max_requests.max(1) / 2).max(1),
        exempt,
    }))
}

/// Runs the HTTP server until SIGINT or SIGTERM.
pub async fn serve(args: cli::ServeArgs) -> Result<(), StartError> {
    let addr =
        cli::listen_addr(&args.listen_address).map_err(|reason| StartError::ListenAddress {
            addr: args.listen_address.clone(),
            reason,
        })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    serve_on(listener, args, shutdown_signal()).await
}

/// Serves on an already bound listener until `shutdown` completes.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    args: cli::ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = app_state(&args)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        collectors = ?state.registry.names(),
        address = %listener.local_addr().map_err(StartError::Serve)?,
        "starting dataplane-collector"
    );
    state.web.spawn_reload();
    server::conn::serve(
        listener,
        state.clone(),
        server::router(state.clone()),
        shutdown,
    )
    .await;
    state.registry.shutdown();
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

/// `dataplane-collector probe`: the report as text.
pub async fn probe(args: cli::ProbeArgs) -> Result<String, StartError> {
    let endpoint = match &args.ovs_db {
        Some(s) => ovsdb::DbEndpoint::parse(s).map_err(|reason| StartError::OvsdbEndpoint {
            endpoint: s.clone(),
            reason,
        })?,
        None => ovsdb::DbEndpoint::Unix(args.ovs_rundir.join("db.sock")),
    };
    let handle = ovsdb::Handle::spawn(endpoint);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    let interfaces = handle.synced(deadline).await.ok().map(|state| {
        let names: std::collections::HashSet<String> = state
            .replica
            .interfaces()
            .into_iter()
            .map(|v| v.iface.name.clone())
            .collect();
        sources::ebpf::engine::netdevs(&names)
            .into_keys()
            .collect::<Vec<_>>()
    });
    let checks = tokio::task::spawn_blocking(move || probe::probe(interfaces))
        .await
        .map_err(|e| StartError::Probe {
            reason: e.to_string(),
        })?;
    Ok(probe::render(&checks))
}
