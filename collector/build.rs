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

#[path = "build_ebpf.rs"]
mod build_ebpf;

/// Embeds the eBPF programs. In order: the object `DPC_EBPF_OBJECT` names; else, when the eBPF
/// toolchain is installed (and `DPC_EBPF_BUILD` is not `0`), the programs built now, as `cargo
/// xtask build-ebpf` builds them (`build_ebpf.rs`); else an object an earlier `cargo xtask
/// build-ebpf` left in `target/ebpf`; else none, with a warning that says how to get them: the
/// daemon then reports the eBPF source unavailable and everything else works. A failed build
/// with the toolchain installed fails the daemon's build: it is a bug, not a missing tool.
fn embed_ebpf() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("collector-ebpf.o");
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    println!("cargo:rerun-if-env-changed=DPC_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=DPC_EBPF_BUILD");
    for dir in ["collector-ebpf", "collector-common"] {
        println!("cargo:rerun-if-changed=../{dir}");
    }
    println!("cargo:rerun-if-changed=build_ebpf.rs");
    let object = if let Some(o) = std::env::var_os("DPC_EBPF_OBJECT") {
        std::path::PathBuf::from(o)
    } else {
        let wanted = std::env::var("DPC_EBPF_BUILD").map_or(true, |v| v != "0");
        match build_ebpf::toolchain_missing() {
            None if wanted => {
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let built = build_ebpf::command(&cargo, &workspace).output();
                match built {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => panic!(
                        "building the eBPF programs failed (DPC_EBPF_BUILD=0 builds without them):\n{}",
                        String::from_utf8_lossy(&o.stderr)
                    ),
                    Err(e) => panic!("cannot run cargo to build the eBPF programs: {e}"),
                }
            }
            Some(why) if !build_ebpf::object_path(&workspace).exists() => {
                println!(
                    "cargo:warning=the eBPF programs are not built in: {why}; the ebpf collector \
                     will be unavailable. To build them in: {}",
                    build_ebpf::HOW_TO_GET_IT
                );
            }
            _ => {}
        }
        build_ebpf::object_path(&workspace)
    };
    println!("cargo:rerun-if-changed={}", object.display());
    let bytes = std::fs::read(&object).unwrap_or_default();
    if bytes.is_empty() && std::env::var_os("DPC_EBPF_OBJECT").is_some() {
        println!(
            "cargo:warning=no eBPF object at {} (DPC_EBPF_OBJECT): the ebpf collector will be unavailable",
            object.display()
        );
    }
    // Unchanged bytes keep their file (and mtime), so the crate is not rebuilt for nothing.
    if std::fs::read(&out).is_ok_and(|old| old == bytes) {
        return;
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
