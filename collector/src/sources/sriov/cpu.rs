//! `kubepodcpu`: the CPUs that containers of Guaranteed pods own exclusively (CPU manager
//! `static` policy), from the pods' cpuset cgroups; and each CPU's NUMA node.
//!
//! Files read:
//!
//! | file | what it gives |
//! | --- | --- |
//! | `<nodecpuinfo>/node<N>/cpu<M>` | CPU `M` is on NUMA node `N` (`--path.nodecpuinfo`, `/sys/devices/system/node/`) |
//! | `<kubecgroup>/cpuset.cpus` (`cpuset.cpus.effective` if empty) | the CPUs of all pods |
//! | `<kubecgroup>/<pod>/<container>/cpuset.cpus` (or `.effective`) | a container's CPUs |
//! | `--path.cpucheckpoint` (`/var/lib/kubelet/cpu_manager_state`), JSON | `defaultCpuSet`: the shared pool |
//!
//! A container whose cpuset is neither the kubepods set nor the shared pool has CPUs of its own.
//! Guaranteed pods sit directly under the kubepods cgroup (Burstable and BestEffort pods, in
//! sub-groups, never get exclusive CPUs), in either layout:
//!
//! ```text
//! cgroup v1, cgroupfs driver:  /sys/fs/cgroup/cpuset/kubepods/pod<uid>/<container id>/
//! cgroup v1, systemd driver:   /sys/fs/cgroup/cpuset/kubepods.slice/kubepods-pod<uid_>.slice/cri-containerd-<id>.scope/
//! cgroup v2, systemd driver:   /sys/fs/cgroup/kubepods.slice/kubepods-pod<uid_>.slice/cri-containerd-<id>.scope/
//! cgroup v2, cgroupfs driver:  /sys/fs/cgroup/kubepods/pod<uid>/<container id>/
//! ```
//!
//! (`uid_`: the systemd driver writes the UID's dashes as underscores; the label has dashes.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("no NUMA information at {path}")]
    NoNodeInfo { path: PathBuf },
    #[error("no kubepods cgroup at {path} (no kubelet here, or set --path.kubecgroup)")]
    NoKubeCgroup { path: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: bad CPU list {text:?}")]
    CpuList { path: PathBuf, text: String },
    #[error("the reader task failed: {reason}")]
    Task { reason: String },
}

impl CpuError {
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CpuError::NoNodeInfo { .. } | CpuError::NoKubeCgroup { .. }
        )
    }
}

/// A CPU a container owns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodCpu {
    pub cpu: u32,
    pub pod_uid: String,
    pub container_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSnapshot {
    /// CPU number → NUMA node.
    pub cpus: BTreeMap<u32, String>,
    pub links: Vec<PodCpu>,
    pub problems: Vec<String>,
}

/// The kernel's CPU list format: `0-3,8,10-11` (empty: no CPUs).
pub fn parse_cpu_list(text: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    let t = text.trim();
    if t.is_empty() {
        return Some(out);
    }
    for part in t.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 65_536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.trim().parse().ok()?);
            }
        }
    }
    Some(out)
}

/// `defaultCpuSet` of a CPU manager checkpoint (`{"policyName":"static","defaultCpuSet":"0-1",
/// "entries":{...},"checksum":...}`).
pub fn checkpoint_default_set(json: &str) -> Option<BTreeSet<u32>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    parse_cpu_list(v.get("defaultCpuSet")?.as_str()?)
}

/// The pod UID in a pod cgroup's name: `pod<uid>` or `kubepods-pod<uid_>.slice`.
pub fn pod_uid(dir: &str) -> Option<String> {
    let uid = if let Some(rest) = dir.strip_prefix("kubepods-pod") {
        rest.strip_suffix(".slice")?.replace('_', "-")
    } else {
        dir.strip_prefix("pod")?.to_owned()
    };
    let ok = uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(uid)
}

/// The container ID in a container cgroup's name: `<id>` or `<runtime>-<id>.scope`.
pub fn container_id(dir: &str) -> Option<String> {
    let id = match dir.strip_suffix(".scope") {
        Some(scope) => {
            if scope.starts_with("crio-conmon-") {
                return None;
            }
            scope.rsplit_once('-')?.1
        }
        None => dir,
    };
    let ok = id.len() >= 20
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then(|| id.to_owned())
}

fn read_cpuset(dir: &Path) -> Result<Option<BTreeSet<u32>>, CpuError> {
    for file in ["cpuset.cpus", "cpuset.cpus.effective"] {
        let path = dir.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(CpuError::Read { path, source }),
        };
        let set = parse_cpu_list(&text).ok_or_else(|| CpuError::CpuList {
            path: path.clone(),
            text: text.trim().to_owned(),
        })?;
        if !set.is_empty() {
            return Ok(Some(set));
        }
    }
    Ok(None)
}

/// CPU → NUMA node from `node<N>/cpu<M>` entries.
pub fn node_cpus(node_cpu_info: &Path) -> Result<BTreeMap<u32, String>, CpuError> {
    let rd = std::fs::read_dir(node_cpu_info).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            CpuError::NoNodeInfo {
                path: node_cpu_info.to_owned(),
            }
        } else {
            CpuError::Read {
                path: node_cpu_info.to_owned(),
                source,
            }
        }
    })?;
    let mut out = BTreeMap::new();
    for node in rd.flatten() {
        let name = node.file_name().to_string_lossy().into_owned();
        let Some(n) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cpus) = std::fs::read_dir(node.path()) else {
            continue;
        };
        for c in cpus.flatten() {
            let cname = c.file_name().to_string_lossy().into_owned();
            if let Some(id) = cname
                .strip_prefix("cpu")
                .and_then(|c| c.parse::<u32>().ok())
            {
                out.insert(id, n.to_string());
            }
        }
    }
    Ok(out)
}

/// Reads the node's CPUs and the exclusive CPUs of every Guaranteed pod's containers.
pub fn read(
    node_cpu_info: &Path,
    kube_cgroup: &Path,
    checkpoint: &Path,
) -> Result<CpuSnapshot, CpuError> {
    let cpus = node_cpus(node_cpu_info)?;
    if !kube_cgroup.is_dir() {
        return Err(CpuError::NoKubeCgroup {
            path: kube_cgroup.to_owned(),
        });
    }
    let mut problems = Vec::new();
    let root = read_cpuset(kube_cgroup)?;
    let default_set = match std::fs::read_to_string(checkpoint) {
        Ok(text) => {
            let set = checkpoint_default_set(&text);
            if set.is_none() {
                problems.push(format!(
                    "{}: not a CPU manager checkpoint with a defaultCpuSet",
                    checkpoint.display()
                ));
            }
            set
        }
        // No checkpoint: only the kubepods set tells shared CPUs apart.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            problems.push(format!("{}: {e}", checkpoint.display()));
            None
        }
    };
    let mut links = Vec::new();
    let pods = std::fs::read_dir(kube_cgroup).map_err(|source| CpuError::Read {
        path: kube_cgroup.to_owned(),
        source,
    })?;
    for pod in pods.flatten() {
        let Some(uid) = pod_uid(&pod.file_name().to_string_lossy()) else {
            continue;
        };
        let Ok(containers) = std::fs::read_dir(pod.path()) else {
            continue;
        };
        for c in containers.flatten() {
            let Some(id) = container_id(&c.file_name().to_string_lossy()) else {
                continue;
            };
            let set = match read_cpuset(&c.path()) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    problems.push(crate::registry::error_chain(&e));
                    continue;
                }
            };
            if Some(&set) == root.as_ref() || Some(&set) == default_set.as_ref() {
                continue;
            }
            links.extend(set.into_iter().map(|cpu| PodCpu {
                cpu,
                pod_uid: uid.clone(),
                container_id: id.clone(),
            }));
        }
    }
    links.sort();
    Ok(CpuSnapshot {
        cpus,
        links,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let s = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(s(&[0, 1, 2, 3, 8, 10, 11]))
        );
        assert_eq!(parse_cpu_list(""), Some(s(&[])));
        assert_eq!(parse_cpu_list("5"), Some(s(&[5])));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
        assert_eq!(parse_cpu_list("0-4294967295"), None);
    }

    #[test]
    fn cgroup_names() {
        let uid = "0f3c3b2e-1d2a-4c55-a8f5-1b9e3c2d1a00";
        assert_eq!(pod_uid(&format!("pod{uid}")).as_deref(), Some(uid));
        assert_eq!(
            pod_uid("kubepods-pod0f3c3b2e_1d2a_4c55_a8f5_1b9e3c2d1a00.slice").as_deref(),
            Some(uid)
        );
        assert_eq!(pod_uid("burstable"), None);
        assert_eq!(pod_uid("kubepods-burstable.slice"), None);
        let id = "4b1f5e0f7c2a9d3e6b8a1c0d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f";
        assert_eq!(container_id(id).as_deref(), Some(id));
        assert_eq!(
            container_id(&format!("cri-containerd-{id}.scope")).as_deref(),
            Some(id)
        );
        assert_eq!(container_id(&format!("crio-conmon-{id}.scope")), None);
        assert_eq!(container_id("cpuset.cpus"), None);
    }

    #[test]
    fn checkpoint() {
        let j = r#"{"policyName":"static","defaultCpuSet":"0-1,6-7","entries":{"u":{"c":"2-5"}},"checksum":1}"#;
        assert_eq!(
            checkpoint_default_set(j),
            Some([0, 1, 6, 7].into_iter().collect())
        );
        assert_eq!(checkpoint_default_set("{}"), None);
        assert_eq!(checkpoint_default_set("not json"), None);
    }
}
