//! `kubepoddevice`: a client of the kubelet pod-resources API v1 (`List`, and
//! `GetAllocatableResources` where the kubelet has it) over the kubelet's unix socket.
//!
//! Each scrape connects, asks, and closes, like the seed exporter: a kubelet restart costs at
//! most the scrapes while it is down, and nothing stale is kept. A socket that does not exist
//! (no kubelet here, or the path is not mounted) and one that refuses connections or drops
//! the call (the kubelet is restarting) are "unavailable", each with its own reason.

use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};

/// Code generated from `collector/proto/podresources/v1/api.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod proto {
    tonic::include_proto!("v1");
}

use proto::pod_resources_lister_client::PodResourcesListerClient;

/// The kubelet's own client allows 16 MiB replies (`defaultPodResourcesMaxSize`).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PodResourcesError {
    #[error("the socket does not exist (no kubelet on this node, or the path is not mounted)")]
    SocketMissing,
    #[error("nothing listens on the socket (the kubelet is restarting or stopped)")]
    NotListening {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the socket")]
    Connect {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the gRPC channel")]
    Channel {
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{method} failed: {code:?}: {message}")]
    Rpc {
        method: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("{method} did not answer within {timeout:?}")]
    TimedOut {
        method: &'static str,
        timeout: Duration,
    },
    #[error("{socket} is not a path the gRPC connector accepts")]
    BadPath { socket: PathBuf },
}

impl PodResourcesError {
    /// Missing, refusing, or gone mid-call (gRPC `UNAVAILABLE`): no kubelet to ask right now.
    pub fn is_unavailable(&self) -> bool {
        match self {
            PodResourcesError::SocketMissing | PodResourcesError::NotListening { .. } => true,
            PodResourcesError::Rpc { code, .. } => *code == tonic::Code::Unavailable,
            _ => false,
        }
    }
}

/// A device the kubelet assigned to a container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Assigned {
    pub pci_addr: String,
    /// The device plugin's resource name (`intel.com/intel_sriov_netdevice`): `dev_type`.
    pub resource: String,
    pub pod: String,
    pub namespace: String,
    pub container: String,
}

/// A device the kubelet can assign.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allocatable {
    pub pci_addr: String,
    pub resource: String,
    /// The device's NUMA node when the device plugin reports exactly one; else empty.
    pub numa_node: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSnapshot {
    pub assigned: Vec<Assigned>,
    /// `None`: the kubelet does not implement `GetAllocatableResources` (before 1.21, or the
    /// feature gate is off).
    pub allocatable: Option<Vec<Allocatable>>,
}

/// `0000:3b:02.0`: four hex digits, two, two, a dot and a digit (the seed's pattern). Device
/// plugins hand out other IDs too (GPUs by UUID, RDMA by name); those are not VFs.
pub fn is_pci_address(id: &str) -> bool {
    let b = id.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && b[11].is_ascii_digit()
}

/// Every PCI device in a `List` reply, with its pod, namespace and container; sorted.
pub fn assigned_devices(resp: &proto::ListPodResourcesResponse) -> Vec<Assigned> {
    let mut out = Vec::new();
    for pod in &resp.pod_resources {
        for c in &pod.containers {
            for d in &c.devices {
                for id in d.device_ids.iter().filter(|id| is_pci_address(id)) {
                    out.push(Assigned {
                        pci_addr: id.clone(),
                        resource: d.resource_name.clone(),
                        pod: pod.name.clone(),
                        namespace: pod.namespace.clone(),
                        container: c.name.clone(),
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every PCI device in a `GetAllocatableResources` reply; sorted.
pub fn allocatable_devices(resp: &proto::AllocatableResourcesResponse) -> Vec<Allocatable> {
    let mut out = Vec::new();
    for d in &resp.devices {
        let numa_node = match d.topology.as_ref().map(|t| t.nodes.as_slice()) {
            Some([one]) => one.id.to_string(),
            _ => String::new(),
        };
        for id in d.device_ids.iter().filter(|id| is_pci_address(id)) {
            out.push(Allocatable {
                pci_addr: id.clone(),
                resource: d.resource_name.clone(),
                numa_node: numa_node.clone(),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

async fn connect(socket: &Path) -> Result<UnixStream, PodResourcesError> {
    UnixStream::connect(socket).await.map_err(|source| {
        match source.kind() {
            std::io::ErrorKind::NotFound => PodResourcesError::SocketMissing,
            // A socket file with no listener: the kubelet removed nothing and has not
            // listened again yet.
            std::io::ErrorKind::ConnectionRefused => PodResourcesError::NotListening { source },
            _ => PodResourcesError::Connect { source },
        }
    })
}

fn rpc_error(method: &'static str, s: &tonic::Status) -> PodResourcesError {
    PodResourcesError::Rpc {
        method,
        code: s.code(),
        message: s.message().to_owned(),
    }
}

/// Connects to the kubelet at `socket` and reads the assigned (and allocatable) devices.
/// Every step is bounded by `timeout`.
pub async fn read(socket: &Path, timeout: Duration) -> Result<DeviceSnapshot, PodResourcesError> {
    let first = tokio::time::timeout(timeout, connect(socket))
        .await
        .map_err(|_| PodResourcesError::TimedOut {
            method: "connect",
            timeout,
        })??;
    // The first connection is the one just made (so its errors are classified above); a
    // reconnect by the channel dials the path again.
    let slot = Arc::new(Mutex::new(Some(first)));
    let path = socket.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let slot = slot.clone();
        let path = path.clone();
        async move {
            let ready = slot.lock().ok().and_then(|mut s| s.take());
            let stream = match ready {
                Some(s) => s,
                None => UnixStream::connect(&path).await?,
            };
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    // The authority is never resolved: the connector above dials the socket.
    let channel = Endpoint::from_static("http://kubelet.pod-resources")
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_with_connector(connector)
        .await
        .map_err(|source| PodResourcesError::Channel { source })?;
    let mut client = PodResourcesListerClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let list = tokio::time::timeout(
        timeout,
        client.list(proto::ListPodResourcesRequest::default()),
    )
    .await
    .map_err(|_| PodResourcesError::TimedOut {
        method: "List",
        timeout,
    })?
    .map_err(|s| rpc_error("List", &s))?;
    let assigned = assigned_devices(list.get_ref());
    let allocatable = match tokio::time::timeout(
        timeout,
        client.get_allocatable_resources(proto::AllocatableResourcesRequest::default()),
    )
    .await
    {
        Err(_) => {
            return Err(PodResourcesError::TimedOut {
                method: "GetAllocatableResources",
                timeout,
            });
        }
        Ok(Ok(r)) => Some(allocatable_devices(r.get_ref())),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => None,
        Ok(Err(s)) => return Err(rpc_error("GetAllocatableResources", &s)),
    };
    Ok(DeviceSnapshot {
        assigned,
        allocatable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{ContainerDevices, ContainerResources, NumaNode, PodResources, TopologyInfo};

    #[test]
    fn pci_addresses_only() {
        assert!(is_pci_address("0000:3b:02.0"));
        assert!(is_pci_address("0000:AF:1f.7"));
        assert!(!is_pci_address("0000:3b:02"));
        assert!(!is_pci_address("GPU-0f3c3b2e-1d2a-4c55-a8f5-1b9e3c2d1a00"));
        assert!(!is_pci_address("0000:3b:02.0 "));
        assert!(!is_pci_address("0000:3b:0g.0"));
        assert!(!is_pci_address("mlx5_0"));
    }

    #[test]
    fn list_maps_each_pci_device_to_its_container() {
        let resp = proto::ListPodResourcesResponse {
            pod_resources: vec![
                PodResources {
                    name: "cnf-a".into(),
                    namespace: "telco".into(),
                    containers: vec![ContainerResources {
                        name: "dpdk".into(),
                        devices: vec![
                            ContainerDevices {
                                resource_name: "intel.com/sriov_netdevice".into(),
                                device_ids: vec!["0000:3b:02.1".into(), "0000:3b:02.0".into()],
                                topology: None,
                            },
                            ContainerDevices {
                                resource_name: "nvidia.com/gpu".into(),
                                device_ids: vec!["GPU-1234".into()],
                                topology: None,
                            },
                        ],
                        ..Default::default()
                    }],
                },
                PodResources {
                    name: "idle".into(),
                    namespace: "default".into(),
                    containers: vec![ContainerResources {
                        name: "c".into(),
                        ..Default::default()
                    }],
                },
            ],
        };
        let got = assigned_devices(&resp);
        let addrs: Vec<_> = got.iter().map(|a| a.pci_addr.as_str()).collect();
        assert_eq!(addrs, ["0000:3b:02.0", "0000:3b:02.1"]);
        assert!(got.iter().all(|a| a.pod == "cnf-a"
            && a.namespace == "telco"
            && a.container == "dpdk"
            && a.resource == "intel.com/sriov_netdevice"));

        let alloc = allocatable_devices(&proto::AllocatableResourcesResponse {
            devices: vec![ContainerDevices {
                resource_name: "intel.com/sriov_netdevice".into(),
                device_ids: vec!["0000:af:02.0".into()],
                topology: Some(TopologyInfo {
                    nodes: vec![NumaNode { id: 1 }],
                }),
            }],
            ..Default::default()
        });
        assert_eq!(alloc[0].numa_node, "1");
    }
}
