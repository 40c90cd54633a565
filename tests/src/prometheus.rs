//! A real Prometheus server (Debian's `/usr/bin/prometheus`) scraping a target every second,
//! with its data in a directory of the test's, and its HTTP API.

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`Prometheus::start`] returns when Prometheus is not installed and the root-only tests
/// are not required (`DPC_REQUIRE_ROOT_TESTS` unset): the caller skips.
pub const SKIP: &str = "SKIP";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second, with its data in `dir`.
    /// An error whose text is [`SKIP`] when it is not installed and not required.
    pub fn start(dir: &Path, target: &str) -> Result<Prometheus> {
        let bin = crate::ovs::which("prometheus");
        let required = std::env::var("DPC_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
        let bin: PathBuf = match bin {
            Some(b) => b,
            None if required => bail!("prometheus is not installed (apt-get install prometheus)"),
            None => bail!(SKIP),
        };
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: dataplane-collector\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )?;
        let port = free_port()?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log"))?)
            .spawn()
            .context("start prometheus")?;
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        for _ in 0..300 {
            if crate::daemon::get(&format!("{}/-/ready", p.url)).is_ok_and(|(s, _)| s == 200) {
                return Ok(p);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("prometheus did not get ready: {}", p.log())
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `/api/v1/query`: the result vector.
    pub fn query(&self, q: &str) -> Result<Vec<serde_json::Value>> {
        self.api("/api/v1/query", &[("query", q)])
            .map(|d| d["result"].as_array().cloned().unwrap_or_default())
    }

    /// `/api/v1/targets`: the active targets (each with `health`, `lastError`, `lastScrape`).
    pub fn targets(&self) -> Result<Vec<serde_json::Value>> {
        self.api("/api/v1/targets", &[])
            .map(|d| d["activeTargets"].as_array().cloned().unwrap_or_default())
    }

    fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<serde_json::Value> {
        let mut req = ureq::get(&format!("{}{path}", self.url));
        for (k, v) in query {
            req = req.query(k, v);
        }
        let r = req.call().map_err(|e| anyhow!("{path} {query:?}: {e}"))?;
        let v: serde_json::Value = serde_json::from_reader(r.into_reader())?;
        if v["status"] != "success" {
            bail!("{path} {query:?}: {v}");
        }
        Ok(v["data"].clone())
    }
}
