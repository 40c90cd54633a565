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
pub mod openflow;
pub mod ovsdb;
pub mod probe;
pub mod registry;
pub mod server;
pub mod sources;
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
pub type ShutdownHook = Box<dyn Fn() + Send + Sync>;

/// Builds the registry of enabled sources from the flags. Starts the OVSDB monitor (on the
/// current tokio runtime) when a source needs it.
pub fn build_registry(
    args: &cli::ServeArgs,
) -> Result<(registry::Registry, Vec<ShutdownHook>), StartError> {
    let mut reg = registry::Registry::new();
    let mut hooks: Vec<ShutdownHook> = Vec::new();
    let attributor = Arc::new(
        sources::ovsdb::attribution::Attributor::new(&args.ovs_external_id_labels)
            .map_err(StartError::Config)?,
    );
    let wants_ovsdb = ["ovsdb", "openflow", "ebpf"]
        .iter()
        .any(|c| args.collectors.enabled(c));
    let ovsdb = if wants_ovsdb {
        let endpoint = match &args.ovs_db {
            Some(s) => ovsdb::DbEndpoint::parse(s).map_err(StartError::Config)?,
            None => ovsdb::DbEndpoint::Unix(args.ovs_rundir.join("db.sock")),
        };
        Some(ovsdb::Handle::spawn_with(
            endpoint,
            ovsdb::client::Options {
                probe_interval: args.ovs_db_probe_interval,
                max_message_bytes: args.ovs_db_max_message_bytes,
            },
        ))
    } else {
        None
    };
    if args.collectors.enabled("openflow") {
        reg.add(Arc::new(sources::openflow::OpenFlowSource::new(
            sources::openflow::Config {
                rundir: args.ovs_rundir.clone(),
                flow_actions: args.ovs_flow_actions,
                max_flow_series: args.ovs_max_flow_series,
                max_flows: args.ovs_max_flows,
                max_reply_bytes: args.ovs_max_reply_bytes,
                ovsdb: ovsdb.clone(),
                attributor: attributor.clone(),
            },
        )));
    }
    if args.collectors.enabled("ovsdb")
        && let Some(handle) = &ovsdb
    {
        reg.add(Arc::new(sources::ovsdb::OvsdbSource::new(
            handle.clone(),
            attributor.clone(),
        )));
    }
    if args.collectors.enabled("ebpf") {
        let source = sources::ebpf::EbpfSource::start(
            sources::ebpf::Config {
                flows: args.ebpf_flows,
                noop: false,
                max_flows: args.ebpf_max_flows,
                max_ports: args.ebpf_max_ports,
                max_ipvs_conns: args.ebpf_max_ipvs_conns,
                max_flow_series: args.ebpf_max_flow_series,
                pin_path: args.ebpf_pin_path.clone(),
                idle_timeout: args.ebpf_flow_idle_timeout,
                rundir: args.ovs_rundir.clone(),
            },
            ovsdb.clone(),
            attributor.clone(),
        );
        let for_hook = source.clone();
        hooks.push(Box::new(move || for_hook.shutdown()));
        reg.add(source);
    }
    if args.collectors.enabled("ipvs") {
        reg.add(Arc::new(sources::ipvs::IpvsSource::new(
            sources::ipvs::Config {
                netns: args.ipvs_netns.clone(),
            },
        )));
    }
    let sriov = sources::sriov::Config {
        sysclassnet: args.path_sysclassnet.clone(),
        sysbuspci: args.path_sysbuspci.clone(),
        netlink: args.sriov_netlink,
        kubelet_socket: args.path_kubelet_socket.clone(),
        cpu_checkpoint: args.path_cpucheckpoint.clone(),
        kube_cgroup: args.path_kubecgroup.clone(),
        node_cpu_info: args.path_nodecpuinfo.clone(),
    };
    if args.collectors.enabled("vfstats") {
        reg.add(Arc::new(sources::sriov::VfStatsSource::new(sriov.clone())));
    }
    if args.collectors.enabled("kubepoddevice") {
        reg.add(Arc::new(sources::sriov::KubePodDeviceSource::new(
            sriov.clone(),
        )));
    }
    if args.collectors.enabled("kubepodcpu") {
        reg.add(Arc::new(sources::sriov::KubePodCpuSource::new(sriov)));
    }
    Ok((reg, hooks))
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
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
    let allowed = sources::openflow::target::AllowList::parse(
        &args.ovs_allowed_targets,
        args.ovs_target_port,
    )
    .map_err(StartError::Config)?;
    let exempt =
        server::RateLimiter::parse_exempt(&args.rate_limit_exempt).map_err(StartError::Config)?;
    let web = webconfig::WebConfigWatch::load(args.web_config_file.as_deref())
        .map_err(|e| StartError::Config(e.to_string()))?;
    let (registry, shutdown) = build_registry(args)?;
    Ok(Arc::new(server::AppState {
        registry,
        shutdown,
        scrape_timeout: args.scrape_timeout,
        allowed_targets: allowed,
        target_port: args.ovs_target_port,
        ovs_rundir: args.ovs_rundir.clone(),
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
    let addr = cli::listen_addr(&args.listen_address).map_err(StartError::Config)?;
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
    let result = Ok(());
    for hook in &state.shutdown {
        hook();
    }
    tracing::info!("stopped");
    result
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
        Some(s) => ovsdb::DbEndpoint::parse(s).map_err(StartError::Config)?,
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
        .map_err(|e| StartError::Config(format!("probe failed: {e}")))?;
    Ok(probe::render(&checks))
}
