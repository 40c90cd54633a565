//! Root-only: the daemon on a real Open vSwitch bridge with real traffic answers a scrape that
//! asks for OpenMetrics (Prometheus's own `Accept` header) with OpenMetrics text that a strict
//! parser (the Python `prometheus_client` OpenMetrics parser) reads whole, a scrape that does
//! not ask with the Prometheus text format, and a real Prometheus ingests the OpenMetrics
//! reply: its metadata names the counter families as only OpenMetrics names them (without
//! `_total`).

use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;
use testbed::daemon::Daemon;
use testbed::ovs::Ovs;
use testbed::prometheus::{self, Prometheus};
use testbed::topology::Topology;

/// What Prometheus 2.x sends (scrape.go's `acceptHeader`).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
     application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// GET with an `Accept` header (or none): status, `Content-Type`, body.
fn get(url: &str, accept: Option<&str>) -> Result<(u16, String, String)> {
    let mut req = ureq::get(url).timeout(Duration::from_secs(60));
    if let Some(a) = accept {
        req = req.set("Accept", a);
    }
    let r = req.call().map_err(|e| anyhow!("GET {url}: {e}"))?;
    let status = r.status();
    let ctype = r.header("content-type").unwrap_or_default().to_owned();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut r.into_reader(), &mut body)?;
    Ok((status, ctype, body))
}

/// The families a strict OpenMetrics parser reads from `text`: name to (type, samples).
/// Python's `prometheus_client` from the tests' venv (tests/requirements.txt).
fn strict_parse(text: &str) -> Result<BTreeMap<String, (String, usize)>> {
    let script = "import sys, json\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
        print(json.dumps({f.name: [f.type, len(f.samples)] for f in p(sys.stdin.read())}))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("python3")?;
    child
        .stdin
        .take()
        .context("python3 stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "the OpenMetrics parser refused the reply (is prometheus-client in the venv? \
             cargo xtask test makes it):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: BTreeMap<String, (String, usize)> = serde_json::from_slice(&out.stdout)?;
    Ok(v)
}

#[test]
fn openmetrics_when_asked_and_prometheus_ingests_it() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let topo = Topology::build(Ovs::start()?, 2)?;
    topo.traffic(2)?;
    topo.settle()?;
    let rundir = topo.ovs.rundir().to_string_lossy().into_owned();
    let argv: Vec<String> = ["--ovs.rundir", &rundir, "--ovs.flow-actions"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let daemon = Daemon::start(&argv)?;
    let url = daemon.url("/metrics");

    let (status, ctype, body) = get(&url, Some(PROMETHEUS_ACCEPT))?;
    assert_eq!(status, 200);
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("\n# EOF\n"), "no # EOF at the end");
    assert_eq!(body.matches("# EOF").count(), 1);
    let families = strict_parse(&body)?;
    let flows = families
        .get("ovs_flow_packets")
        .map(|(t, n)| (t.as_str(), *n));
    assert!(
        matches!(flows, Some(("counter", n)) if n > 0),
        "ovs_flow_packets: {flows:?}"
    );
    assert!(!families.contains_key("ovs_flow_packets_total"));
    let success = families.get("dataplane_collector_scrape_success");
    assert!(
        matches!(success, Some((t, n)) if t == "gauge" && *n > 0),
        "{success:?}"
    );
    // Every counter family of the text format is one here, under its OpenMetrics name.
    let (_, text_ctype, text) = get(&url, None)?;
    assert_eq!(text_ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"));
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|l| l.strip_suffix(" counter"))
        {
            let om = name.strip_suffix("_total").unwrap_or(name);
            let got = families.get(om).map(|(t, _)| t.as_str());
            assert_eq!(got, Some("counter"), "{name} in OpenMetrics as {om}");
        }
    }

    // A real Prometheus, which asks for OpenMetrics first.
    let dir = tempfile::tempdir()?;
    let prom = match Prometheus::start(dir.path(), &daemon.addr.to_string()) {
        Err(e) if e.to_string() == prometheus::SKIP => {
            eprintln!("SKIPPED: prometheus not installed");
            return Ok(());
        }
        r => r?,
    };
    let mut got = Vec::new();
    for _ in 0..120 {
        got = prom.query("ovs_flow_packets_total")?;
        if !got.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !got.is_empty(),
        "Prometheus has no ovs_flow_packets_total:\n{}",
        prom.log()
    );
    let target = prom.targets()?;
    assert_eq!(target.len(), 1);
    assert_eq!(target[0]["health"], "up", "{}", target[0]);
    assert_eq!(target[0]["lastError"], "", "{}", target[0]);
    // The scrape cache keeps metadata under the family's name as the reply wrote it: the
    // OpenMetrics name, so this scrape was OpenMetrics.
    let meta = ureq::get(&format!("{}/api/v1/targets/metadata", prom.url))
        .query("metric", "ovs_flow_packets")
        .call()
        .map_err(|e| anyhow!("metadata: {e}"))?;
    let meta: serde_json::Value = serde_json::from_reader(meta.into_reader())?;
    let types: Vec<&str> = meta["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(types, ["counter"], "{meta}");
    Ok(())
}
