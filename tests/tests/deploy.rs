//! The Kubernetes manifests and Prometheus configs in `deploy/`: valid for the tools that
//! consume them, and consistent with the daemon's flags.

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn required() -> bool {
    std::env::var("DPC_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1")
}

fn tool(name: &str) -> Option<PathBuf> {
    let found = testbed::ovs::which(name);
    assert!(
        found.is_some() || !required(),
        "{name} is not installed (cargo xtask test installs it)"
    );
    if found.is_none() {
        eprintln!("SKIPPED: {name} not installed");
    }
    found
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{text}");
    }
    Ok(text)
}

fn manifests() -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(deploy())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    Ok(v)
}

/// YAML to JSON with Python's PyYAML (a dependency of kubernetes-validate).
fn yaml_docs(path: &Path) -> Result<serde_json::Value> {
    let out = run(Command::new("python3").args([
        "-c",
        "import json,sys,yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        &path.to_string_lossy(),
    ]))?;
    Ok(serde_json::from_str(out.trim())?)
}

#[test]
fn manifests_pass_kubernetes_validate_strict() -> Result<()> {
    let Some(kv) = tool("kubernetes-validate") else {
        return Ok(());
    };
    let files = manifests()?;
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let out = run(Command::new(&kv).arg("--strict").arg(&f))?;
        assert!(out.contains("passed"), "{}: {out}", f.display());
        assert!(!out.contains("failed"), "{}: {out}", f.display());
    }
    Ok(())
}

#[test]
fn prometheus_config_passes_promtool() -> Result<()> {
    let config = deploy().join("prometheus/prometheus.yml");
    let config = config.to_string_lossy();
    let Some(report) =
        testbed::promtool::run(&["check", "config", &config], None).map_err(anyhow::Error::msg)?
    else {
        return Ok(());
    };
    assert!(
        report.success && report.output.contains("SUCCESS"),
        "{}",
        report.output
    );
    Ok(())
}

#[test]
fn manifests_agree_with_the_daemon_flags() -> Result<()> {
    if tool("python3").is_none() || tool("kubernetes-validate").is_none() {
        return Ok(());
    }
    let ds = yaml_docs(&deploy().join("daemonset.yaml"))?;
    let spec = &ds[0]["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    let c = &spec["containers"][0];
    let args: Vec<String> = c["args"]
        .as_array()
        .context("args")?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let mut argv = vec!["dataplane-collector".to_owned()];
    argv.extend(args);
    let serve = dataplane_collector::cli::Cli::try_parse_from(&argv)
        .map_err(|e| anyhow::anyhow!("the DaemonSet's args do not parse: {e}"))?
        .serve_args();
    let port = dataplane_collector::cli::listen_addr(&serve.listen_address)
        .map_err(anyhow::Error::msg)?
        .port();
    assert_eq!(c["ports"][0]["containerPort"], port);
    let mount = c["volumeMounts"]
        .as_array()
        .context("mounts")?
        .iter()
        .find(|m| m["name"] == "ovs-run")
        .context("ovs-run mount")?;
    assert_eq!(
        mount["mountPath"],
        serve.ovs.rundir.to_string_lossy().as_ref()
    );
    assert_eq!(mount["readOnly"], true);
    let sc = &c["securityContext"];
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    // Exactly what the comment in the file justifies: BPF, PERFMON, NET_ADMIN.
    let mut added: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .context("capabilities.add")?
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    added.sort_unstable();
    assert_eq!(added, ["BPF", "NET_ADMIN", "PERFMON"]);
    assert_eq!(sc["privileged"], false);
    let ebpf: dataplane_collector::sources::ebpf::flags::EbpfArgs =
        dataplane_collector::sources::build::args("ebpf", serve.collectors.matches())
            .map_err(anyhow::Error::msg)?;
    let pin = ebpf.pin_path.clone().context("--ebpf.pin-path")?;
    let bpffs = c["volumeMounts"]
        .as_array()
        .context("mounts")?
        .iter()
        .find(|m| m["name"] == "bpffs")
        .context("bpffs mount")?;
    assert!(pin.starts_with(bpffs["mountPath"].as_str().unwrap_or("?")));
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);

    let svc = yaml_docs(&deploy().join("service.yaml"))?;
    let ann = &svc[0]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], port.to_string());
    assert_eq!(svc[0]["spec"]["ports"][0]["port"], port);
    assert_eq!(svc[0]["spec"]["clusterIP"], "None");

    let sd = yaml_docs(&deploy().join("prometheus/prometheus-kubernetes-sd.yml"))?;
    let job = &sd[0]["scrape_configs"][0];
    assert_eq!(job["kubernetes_sd_configs"][0]["role"], "endpoints");
    assert_eq!(
        job["relabel_configs"][0]["regex"],
        "dataplane-collector;metrics"
    );
    assert_eq!(job["relabel_configs"][0]["action"], "keep");
    Ok(())
}
