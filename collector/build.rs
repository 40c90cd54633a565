//! Records the git revision and rustc version for `dataplane_collector_build_info`.
use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    embed_ebpf();
    compile_podresources();
    println!("cargo:rustc-env=DPC_GIT_REVISION={revision}");
    println!("cargo:rustc-env=DPC_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
}

/// Copies the eBPF object built by `cargo xtask build-ebpf` next to the build, or leaves an
/// empty one: the daemon then reports the eBPF source unavailable and everything else works.
fn embed_ebpf() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("collector-ebpf.o");
    let default = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/ebpf/bpfel-unknown-none/release/collector-ebpf");
    let object = std::env::var_os("DPC_EBPF_OBJECT")
        .map(std::path::PathBuf::from)
        .unwrap_or(default);
    println!("cargo:rerun-if-env-changed=DPC_EBPF_OBJECT");
    println!("cargo:rerun-if-changed={}", object.display());
    let bytes = std::fs::read(&object).unwrap_or_default();
    if bytes.is_empty() {
        println!(
            "cargo:warning=no eBPF object at {}: the ebpf collector will be unavailable (cargo xtask build-ebpf)",
            object.display()
        );
    }
    if let Err(e) = std::fs::write(&out, bytes) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
    }
}

/// Generates the kubelet pod-resources v1 client (and server, for the tests' fake kubelet) from
/// the vendored `proto/podresources/v1/api.proto`. `protox` parses the proto in Rust, so the
/// build needs no `protoc`.
fn compile_podresources() {
    let proto = "proto/podresources/v1/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = match protox::compile([proto], ["proto/podresources/v1"]) {
        Ok(fds) => fds,
        Err(e) => panic!("cannot parse {proto}: {e}"),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_fds(fds)
    {
        panic!("cannot generate code from {proto}: {e}");
    }
}
