//! `kubepodcpu` on stored trees: `/sys/devices/system/node/`, the kubepods cpuset hierarchy in
//! cgroup v1 (cgroupfs driver) and v2 (systemd driver), and a CPU manager checkpoint.

use dataplane_collector::exposition::Writer;
use dataplane_collector::registry::SourceError;
use dataplane_collector::sources::sriov::cpu::{self, CpuError, PodCpu};
use dataplane_collector::sources::sriov::{encode, tree};
use std::path::Path;

const NODE: &str = include_str!("fixtures/sriov/node.tree");
const V1: &str = include_str!("fixtures/sriov/cgroup-v1.tree");
const V2: &str = include_str!("fixtures/sriov/cgroup-v2.tree");
const CHECKPOINT: &str = include_str!("fixtures/sriov/cpu_manager_state.json");

const POD_A: &str = "6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b";
const CONTAINER_A: &str = "4b1f5e0f7c2a9d3e6b8a1c0d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f";

struct Trees {
    tmp: tempfile::TempDir,
}

impl Trees {
    fn new(cgroup: &str) -> Trees {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let unpack = |text: &str, dir: &str| {
            let d = tmp.path().join(dir);
            std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
            tree::unpack(text, &d).unwrap_or_else(|e| panic!("{dir}: {e}"));
        };
        unpack(NODE, "node");
        unpack(cgroup, "kubepods");
        std::fs::write(tmp.path().join("cpu_manager_state"), CHECKPOINT)
            .unwrap_or_else(|e| panic!("{e}"));
        Trees { tmp }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.tmp.path().join(p)
    }

    fn read(&self) -> Result<cpu::CpuSnapshot, CpuError> {
        cpu::read(
            &self.path("node"),
            &self.path("kubepods"),
            &self.path("cpu_manager_state"),
        )
    }
}

fn links(cpus: &[u32]) -> Vec<PodCpu> {
    cpus.iter()
        .map(|&cpu| PodCpu {
            cpu,
            pod_uid: POD_A.to_owned(),
            container_id: CONTAINER_A.to_owned(),
        })
        .collect()
}

#[test]
fn numa_nodes_of_cpus() {
    let t = Trees::new(V1);
    let cpus = cpu::node_cpus(&t.path("node")).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<_> = cpus.iter().map(|(c, n)| (*c, n.as_str())).collect();
    assert_eq!(
        got,
        [
            (0, "0"),
            (1, "0"),
            (2, "0"),
            (3, "0"),
            (4, "1"),
            (5, "1"),
            (6, "1"),
            (7, "1")
        ]
    );
}

#[test]
fn cgroup_v1_cgroupfs_exclusive_cpus_only() {
    let t = Trees::new(V1);
    let snap = t.read().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snap.links, links(&[2, 3]));
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let mut w = Writer::new();
    encode::encode_cpus(&snap, &mut w);
    let text = w.into_string();
    assert!(text.contains(&format!(
        "sriov_kubepodcpu{{cpu_id=\"2\",numa_node=\"0\",uid=\"{POD_A}\",container_id=\"{CONTAINER_A}\"}} 1\n"
    )), "{text}");
    assert!(
        text.contains("sriov_cpu_info{cpu=\"cpu7\",numa_node=\"1\"} 1\n"),
        "{text}"
    );
    assert_eq!(text.matches("sriov_kubepodcpu{").count(), 2, "{text}");
}

#[test]
fn cgroup_v2_systemd_exclusive_cpus_only() {
    let t = Trees::new(V2);
    let snap = t.read().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snap.links, links(&[4, 5]));
    let mut w = Writer::new();
    encode::encode_cpus(&snap, &mut w);
    let text = w.into_string();
    assert!(text.contains(&format!(
        "sriov_kubepodcpu{{cpu_id=\"5\",numa_node=\"1\",uid=\"{POD_A}\",container_id=\"{CONTAINER_A}\"}} 1\n"
    )), "{text}");
}

#[test]
fn without_a_checkpoint_the_shared_pool_looks_exclusive_and_a_bad_one_is_reported() {
    let t = Trees::new(V1);
    std::fs::remove_file(t.path("cpu_manager_state")).unwrap_or_else(|e| panic!("{e}"));
    let snap = t.read().unwrap_or_else(|e| panic!("{e}"));
    // The sandbox's 0-1,6-7 is no longer known to be the shared pool.
    assert_eq!(snap.links.len(), 6, "{:?}", snap.links);
    assert!(snap.problems.is_empty());
    std::fs::write(t.path("cpu_manager_state"), "{\"policyName\":\"none\"}")
        .unwrap_or_else(|e| panic!("{e}"));
    let snap = t.read().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
}

#[test]
fn no_kubepods_cgroup_or_node_info_is_unavailable() {
    let t = Trees::new(V1);
    let missing = Path::new("/nonexistent/kubepods");
    let err = cpu::read(&t.path("node"), missing, &t.path("cpu_manager_state")).err();
    assert!(matches!(&err, Some(e) if e.is_unavailable()), "{err:?}");
    let err = cpu::read(missing, &t.path("kubepods"), &t.path("cpu_manager_state")).err();
    assert!(matches!(&err, Some(e) if e.is_unavailable()), "{err:?}");
    // And through the source's error type.
    let e = dataplane_collector::sources::sriov::SriovError::Cpu {
        source: CpuError::NoKubeCgroup {
            path: missing.to_owned(),
        },
    };
    assert!(e.is_unavailable());
}

#[test]
fn a_bad_cpu_list_is_a_problem_not_a_crash() {
    let t = Trees::new(V1);
    std::fs::write(
        t.path(&format!("kubepods/pod{POD_A}/{CONTAINER_A}/cpuset.cpus")),
        "2-x\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let snap = t.read().unwrap_or_else(|e| panic!("{e}"));
    assert!(snap.links.is_empty());
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
}
