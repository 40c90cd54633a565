//! The daemon, in-process, on an ephemeral port; and a tiny HTTP client.

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use dataplane_collector::cli::Cli;
use std::net::SocketAddr;

pub struct Daemon {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Daemon {
    /// Starts the daemon with command-line `args` (as after `dataplane-collector`).
    pub fn start(args: &[String]) -> Result<Daemon> {
        let mut argv = vec!["dataplane-collector".to_owned()];
        // Tests scrape far faster than Prometheus: no rate limit unless a test sets one.
        if !args.iter().any(|a| a.starts_with("--web.rate-limit")) {
            argv.push("--web.rate-limit=0".to_owned());
        }
        // Only the eBPF tests load eBPF programs (they ask with --collector.ebpf).
        if !args.iter().any(|a| a.contains("collector.ebpf")) {
            argv.push("--no-collector.ebpf".to_owned());
        }
        argv.extend_from_slice(args);
        let serve = Cli::try_parse_from(&argv)
            .map_err(|e| anyhow!("bad daemon args {argv:?}: {e}"))?
            .serve_args();
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("bind an ephemeral port")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)?;
                dataplane_collector::serve_on(listener, serve, async move {
                    let _ = rx.await;
                })
                .await?;
                anyhow::Ok(())
            })
        });
        let d = Daemon {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        };
        // Ready when /healthz answers.
        for _ in 0..100 {
            if d.get("/healthz").map(|(s, _)| s == 200).unwrap_or(false) {
                return Ok(d);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        bail!("daemon did not answer /healthz")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET `path`; returns the status and body (for any status).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        get(&self.url(path))
    }
}

pub fn get(url: &str) -> Result<(u16, String)> {
    let read = |r: ureq::Response| -> Result<String> {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut r.into_reader(), &mut s)?;
        Ok(s)
    };
    match ureq::get(url)
        .timeout(std::time::Duration::from_secs(60))
        .call()
    {
        Ok(r) => Ok((r.status(), read(r)?)),
        Err(ureq::Error::Status(code, r)) => Ok((code, read(r)?)),
        Err(e) => Err(anyhow!("GET {url}: {e}")),
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Builds the daemon binary, for tests that run it as a process (a no-op when it is up to date),
/// and returns its path.
pub fn binary() -> Result<std::path::PathBuf> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "dataplane-collector",
            "--bin",
            "dataplane-collector",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cargo build -p dataplane-collector")?;
    if !out.status.success() {
        bail!("cargo build -p dataplane-collector failed");
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["target"]["name"] == "dataplane-collector"
            && let Some(exe) = msg["executable"].as_str()
        {
            return Ok(std::path::PathBuf::from(exe));
        }
    }
    bail!("cargo build printed no executable for dataplane-collector")
}
