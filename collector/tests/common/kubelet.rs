//! A fake kubelet pod-resources server (gRPC over a unix socket, like the kubelet's) with pods
//! holding the VFs of the SR-IOV sysfs fixture (`fixtures/sriov/sys.tree`).

use dataplane_collector::sources::sriov::podresources::proto::{
    self, pod_resources_lister_server::PodResourcesLister,
    pod_resources_lister_server::PodResourcesListerServer,
};
use std::path::Path;

pub const RESOURCE: &str = "intel.com/intel_sriov_netdevice";

/// (pod, namespace, container, VFs): VFs of `sys.tree`'s two i40e PFs.
pub const ASSIGNMENTS: &[(&str, &str, &str, &[&str])] = &[
    ("cnf-a", "telco", "dpdk", &["0000:3b:02.0"]),
    ("cnf-b", "telco", "app", &["0000:3b:02.1"]),
    ("cnf-c", "edge", "fw", &["0000:af:02.0", "0000:af:02.1"]),
];

struct FakeKubelet;

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _r: tonic::Request<proto::ListPodResourcesRequest>,
    ) -> Result<tonic::Response<proto::ListPodResourcesResponse>, tonic::Status> {
        let pod_resources = ASSIGNMENTS
            .iter()
            .map(|(pod, ns, container, vfs)| proto::PodResources {
                name: (*pod).to_owned(),
                namespace: (*ns).to_owned(),
                containers: vec![proto::ContainerResources {
                    name: (*container).to_owned(),
                    devices: vec![
                        proto::ContainerDevices {
                            resource_name: RESOURCE.to_owned(),
                            device_ids: vfs.iter().map(|v| (*v).to_owned()).collect(),
                            topology: None,
                        },
                        // Not a PCI device: never a kubepoddevice series.
                        proto::ContainerDevices {
                            resource_name: "nvidia.com/gpu".to_owned(),
                            device_ids: vec!["GPU-0f3c3b2e".to_owned()],
                            topology: None,
                        },
                    ],
                    ..Default::default()
                }],
            })
            .collect();
        Ok(tonic::Response::new(proto::ListPodResourcesResponse {
            pod_resources,
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _r: tonic::Request<proto::AllocatableResourcesRequest>,
    ) -> Result<tonic::Response<proto::AllocatableResourcesResponse>, tonic::Status> {
        Ok(tonic::Response::new(proto::AllocatableResourcesResponse {
            devices: vec![proto::ContainerDevices {
                resource_name: RESOURCE.to_owned(),
                device_ids: vec!["0000:af:02.0".to_owned(), "0000:af:02.1".to_owned()],
                topology: Some(proto::TopologyInfo {
                    nodes: vec![proto::NumaNode { id: 1 }],
                }),
            }],
            ..Default::default()
        }))
    }

    async fn get(
        &self,
        _r: tonic::Request<proto::GetPodResourcesRequest>,
    ) -> Result<tonic::Response<proto::GetPodResourcesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this fake"))
    }
}

/// Serves the fake kubelet at `socket` on the current runtime until it ends.
pub fn serve(socket: &Path) {
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)
        .unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PodResourcesListerServer::new(FakeKubelet))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
}
