//! Test bed for dataplane-collector: a private Open vSwitch, "pods" in network namespaces, the
//! daemon in-process, and parsers for what `ovs-ofctl` and the daemon print. Used by the
//! root-only integration tests in `tests/tests/` and by `cargo xtask demo` and `bench`.

pub mod daemon;
pub mod lab;
pub mod netns;
pub mod ofctl;
pub mod ovs;
pub mod prom;
pub mod prometheus;
pub mod promtool;
pub mod topology;

/// `bpftool -j ARGS` as JSON (`null` if it printed something else).
pub fn bpftool(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let out = std::process::Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .context("bpftool (apt-get install bpftool)")?;
    if !out.status.success() {
        anyhow::bail!("bpftool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
}

/// Root-only tests call this first. Without root, Open vSwitch or netns support they skip with
/// a message, unless `DPC_REQUIRE_ROOT_TESTS=1` (set by `cargo xtask test` and CI), where a skip
/// is a failure.
pub fn require_root_env() -> bool {
    let required = std::env::var("DPC_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root");
    }
    if !ovs::available() {
        missing.push("Open vSwitch (apt-get install openvswitch-switch)");
    }
    if ovs::which("ping").is_none() {
        missing.push("ping (apt-get install iputils-ping)");
    }
    if missing.is_empty() && !netns::can_create_netns() {
        missing.push("network namespaces");
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("root-only test needs: {}", missing.join(", "));
    assert!(!required, "{msg} (DPC_REQUIRE_ROOT_TESTS=1)");
    eprintln!("SKIPPED: {msg}");
    false
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
