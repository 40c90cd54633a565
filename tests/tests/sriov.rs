//! Root-only: the SR-IOV sources end to end.
//!
//! - The rtnetlink path on real links: an `RTM_GETLINK` dump with `IFLA_EXT_MASK =
//!   RTEXT_FILTER_VF` in the host namespace and in a namespace of our own (veths, lo),
//!   checked against sysfs and `ip`. No SR-IOV hardware exists here (Debian's 6.1 kernel has no
//!   netdevsim, QEMU 7.2 no SR-IOV NIC), so these links have no VFs: the decoder of VF
//!   attributes is proven on kernel-layout bytes in `collector/tests/sriov_netlink.rs`.
//! - `vfstats` in the daemon on the stored sysfs tree (`collector/tests/fixtures/sriov`).
//! - `kubepoddevice` against a real gRPC pod-resources server (tonic) on a unix socket; the
//!   socket missing, refusing (kubelet restarting), and back.
//! - A real `prometheus` scrapes the daemon and the seed's join, in our names, returns the
//!   pod of each VF through `/api/v1/query`.

use anyhow::{Context, Result, anyhow, bail};
use dataplane_collector::sources::sriov::netlink::{self, LinkResult};
use dataplane_collector::sources::sriov::podresources::proto::{
    self, pod_resources_lister_server::PodResourcesLister,
    pod_resources_lister_server::PodResourcesListerServer,
};
use dataplane_collector::sources::sriov::tree;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use testbed::daemon::Daemon;
use testbed::prom::{self, Sample};
use testbed::prometheus::Prometheus;

const TREE: &str = include_str!("../../collector/tests/fixtures/sriov/sys.tree");

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run ip")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ok_links(links: Vec<LinkResult>) -> Result<Vec<netlink::Link>> {
    links
        .into_iter()
        .map(|l| l.map_err(|(i, e)| anyhow!("link {i}: {e}")))
        .collect()
}

#[test]
fn host_link_dump_with_the_vf_mask() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let links = ok_links(netlink::dump_links(Duration::from_secs(5))?)?;
    let lo = links
        .iter()
        .find(|l| l.name == "lo")
        .context("no lo in the dump")?;
    assert_eq!(lo.index, 1);
    // Every link the dump names that is still there has the index sysfs gives it. No link has
    // VFs (no SR-IOV device on this machine), and the VF mask shows: the kernel adds
    // IFLA_NUM_VF (here 0) to exactly the links with a parent device (`device` in sysfs), and
    // only when RTEXT_FILTER_VF is asked for.
    let mut checked = 0;
    for l in &links {
        assert!(l.vfs.is_empty(), "{l:?}");
        let dir = format!("/sys/class/net/{}", l.name);
        if let Ok(text) = std::fs::read_to_string(format!("{dir}/ifindex")) {
            assert_eq!(text.trim().parse::<i32>()?, l.index, "{}", l.name);
            let has_parent = Path::new(&dir).join("device").exists();
            let want = if has_parent { Some(0) } else { None };
            assert_eq!(l.num_vf, want, "{l:?}");
            checked += 1;
        }
    }
    assert!(checked >= 1, "{links:?}");
    // And every link `ip` lists both before and after the dump (other tests may add and
    // remove links meanwhile) is in it.
    let names = |text: String| -> Vec<String> {
        text.lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or_default().to_owned())
            .collect()
    };
    let before = names(ip(&["-o", "link", "show"])?);
    let dumped = ok_links(netlink::dump_links(Duration::from_secs(5))?)?;
    let after = names(ip(&["-o", "link", "show"])?);
    for name in before.iter().filter(|n| after.contains(n)) {
        assert!(
            dumped.iter().any(|l| &l.name == name),
            "{name} not in the dump"
        );
    }
    Ok(())
}

/// Runs `f` on a thread of its own inside network namespace `/run/netns/<name>`.
fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || -> Result<T> {
        let file = std::fs::File::open(&path).with_context(|| path.clone())?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow!("netns thread panicked"))?
}

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

#[test]
fn namespace_link_dump_is_exactly_its_links() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let tag = testbed::topology::unique_tag();
    let ns = Netns(format!("dpc-sriov-{tag}"));
    ip(&["netns", "add", &ns.0])?;
    ip(&[
        "-n", &ns.0, "link", "add", "pfa", "type", "veth", "peer", "name", "pfb",
    ])?;
    ip(&[
        "-n", &ns.0, "link", "add", "pfc", "type", "veth", "peer", "name", "pfd",
    ])?;
    ip(&["-n", &ns.0, "link", "set", "pfa", "up"])?;
    let links = in_netns(&ns.0, || netlink::dump_links(Duration::from_secs(5)))??;
    let links = ok_links(links)?;
    let mut names: Vec<_> = links.iter().map(|l| l.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["lo", "pfa", "pfb", "pfc", "pfd"]);
    let shown = ip(&["-n", &ns.0, "-o", "link", "show", "pfc"])?;
    let index: i32 = shown.split(':').next().unwrap_or_default().trim().parse()?;
    let pfc = links.iter().find(|l| l.name == "pfc").context("pfc")?;
    assert_eq!(pfc.index, index);
    assert!(links.iter().all(|l| l.vfs.is_empty() && l.num_vf.is_none()));
    Ok(())
}

fn fixture() -> Result<tempfile::TempDir> {
    let tmp = tempfile::tempdir()?;
    tree::unpack(TREE, tmp.path())?;
    Ok(tmp)
}

fn sriov_args(root: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--collector.disable-defaults".to_owned(),
        "--collector.vfstats".to_owned(),
        format!(
            "--path.sysbuspci={}",
            root.join("bus/pci/devices").display()
        ),
        format!("--path.sysclassnet={}", root.join("class/net").display()),
    ];
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn scrape(d: &Daemon) -> Result<Vec<Sample>> {
    let (status, body) = d.get("/metrics")?;
    if status != 200 {
        bail!("HTTP {status}: {body}");
    }
    prom::parse(&body)
}

fn value(s: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    s.iter()
        .find(|x| x.name == name && want.iter().all(|(k, v)| x.label(k) == *v))
        .map(|x| x.value)
}

#[test]
fn daemon_vfstats_on_the_fixture_tree_and_on_this_host() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let tmp = fixture()?;
    // Netlink on (the default): the host has no links of these names, so each PF falls back
    // to sysfs, where only ens785f0 has counters.
    let d = Daemon::start(&sriov_args(tmp.path(), &[]))?;
    let s = scrape(&d)?;
    let vf0 = [
        ("pf", "ens785f0"),
        ("vf", "0"),
        ("pciAddr", "0000:3b:02.0"),
        ("numa_node", "0"),
    ];
    assert_eq!(value(&s, "sriov_vf_tx_errors_total", &vf0), Some(5.0));
    assert_eq!(
        value(&s, "sriov_vf_rx_bytes_total", &vf0),
        Some(123_456_789.0)
    );
    assert_eq!(
        value(
            &s,
            "sriov_pf_vfs",
            &[("pf", "ens801f0"), ("numa_node", "1")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            "dataplane_collector_source_available",
            &[("collector", "vfstats")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "vfstats")]
        ),
        Some(1.0)
    );
    drop(d);
    // The real sysfs of this machine: no SR-IOV device, so "unavailable" and no series.
    let d = Daemon::start(&[
        "--collector.disable-defaults".to_owned(),
        "--collector.vfstats".to_owned(),
    ])?;
    let s = scrape(&d)?;
    assert_eq!(
        value(
            &s,
            "dataplane_collector_source_available",
            &[("collector", "vfstats")]
        ),
        Some(0.0)
    );
    assert!(!s.iter().any(|x| x.name.starts_with("sriov_")), "{s:?}");
    Ok(())
}

/// A kubelet's pod-resources service with fixed answers.
#[derive(Clone)]
struct FakeKubelet {
    pods: Vec<proto::PodResources>,
    allocatable: Vec<proto::ContainerDevices>,
    mode: Mode,
}

/// How the fake kubelet answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    /// A kubelet before 1.21 (or with the feature gate off): no GetAllocatableResources.
    NoAllocatable,
    /// `List` fails with an internal error: broken, not absent.
    ListFails,
}

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _r: tonic::Request<proto::ListPodResourcesRequest>,
    ) -> Result<tonic::Response<proto::ListPodResourcesResponse>, tonic::Status> {
        if self.mode == Mode::ListFails {
            return Err(tonic::Status::internal("checkpoint corrupted"));
        }
        Ok(tonic::Response::new(proto::ListPodResourcesResponse {
            pod_resources: self.pods.clone(),
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _r: tonic::Request<proto::AllocatableResourcesRequest>,
    ) -> Result<tonic::Response<proto::AllocatableResourcesResponse>, tonic::Status> {
        if self.mode == Mode::NoAllocatable {
            return Err(tonic::Status::unimplemented("unknown method"));
        }
        Ok(tonic::Response::new(proto::AllocatableResourcesResponse {
            devices: self.allocatable.clone(),
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

const RESOURCE: &str = "intel.com/intel_sriov_netdevice";

/// (pod, namespace, container, VFs)
const ASSIGNMENTS: &[(&str, &str, &str, &[&str])] = &[
    ("cnf-a", "telco", "dpdk", &["0000:3b:02.0"]),
    ("cnf-b", "telco", "app", &["0000:3b:02.1"]),
    ("cnf-c", "edge", "fw", &["0000:af:02.0", "0000:af:02.1"]),
];

fn fake_kubelet(mode: Mode) -> FakeKubelet {
    let pods = ASSIGNMENTS
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
    let allocatable = vec![proto::ContainerDevices {
        resource_name: RESOURCE.to_owned(),
        device_ids: vec!["0000:af:02.0".to_owned(), "0000:af:02.1".to_owned()],
        topology: Some(proto::TopologyInfo {
            nodes: vec![proto::NumaNode { id: 1 }],
        }),
    }];
    FakeKubelet {
        pods,
        allocatable,
        mode,
    }
}

/// The fake kubelet serving on `socket` on a runtime of its own, until dropped.
struct KubeletServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl KubeletServer {
    fn start(socket: &Path) -> Result<KubeletServer> {
        KubeletServer::start_with(socket, Mode::Normal)
    }

    fn start_with(socket: &Path, mode: Mode) -> Result<KubeletServer> {
        let _ = std::fs::remove_file(socket);
        let std_listener = std::os::unix::net::UnixListener::bind(socket)?;
        std_listener.set_nonblocking(true)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(std_listener)?;
                tonic::transport::Server::builder()
                    .add_service(PodResourcesListerServer::new(fake_kubelet(mode)))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::UnixListenerStream::new(listener),
                        async {
                            let _ = rx.await;
                        },
                    )
                    .await?;
                anyhow::Ok(())
            })
        });
        Ok(KubeletServer {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for KubeletServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn device_pods(s: &[Sample]) -> BTreeMap<String, (String, String, String, String)> {
    s.iter()
        .filter(|x| x.name == "sriov_kubepoddevice")
        .map(|x| {
            (
                x.label("pciAddr").to_owned(),
                (
                    x.label("pod").to_owned(),
                    x.label("namespace").to_owned(),
                    x.label("container").to_owned(),
                    x.label("dev_type").to_owned(),
                ),
            )
        })
        .collect()
}

fn expected_pods() -> BTreeMap<String, (String, String, String, String)> {
    ASSIGNMENTS
        .iter()
        .flat_map(|(pod, ns, c, vfs)| {
            vfs.iter().map(move |vf| {
                (
                    (*vf).to_owned(),
                    (
                        (*pod).to_owned(),
                        (*ns).to_owned(),
                        (*c).to_owned(),
                        RESOURCE.to_owned(),
                    ),
                )
            })
        })
        .collect()
}

fn kubepoddevice_available(s: &[Sample]) -> Option<f64> {
    value(
        s,
        "dataplane_collector_source_available",
        &[("collector", "kubepoddevice")],
    )
}

#[test]
fn kubepoddevice_from_a_real_grpc_server_missing_and_restarting() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let tmp = fixture()?;
    let socket = tmp.path().join("kubelet.sock");
    let sock_arg = format!("--path.kubeletSocket={}", socket.display());
    let d = Daemon::start(&sriov_args(
        tmp.path(),
        &[
            "--collector.kubepoddevice",
            &sock_arg,
            "--collector.netlink=false",
        ],
    ))?;

    // No socket yet: unavailable, HTTP 200, other sources unaffected.
    let s = scrape(&d)?;
    assert_eq!(kubepoddevice_available(&s), Some(0.0));
    assert!(device_pods(&s).is_empty());
    assert!(
        value(
            &s,
            "sriov_vf_tx_errors_total",
            &[("pciAddr", "0000:3b:02.0")]
        )
        .is_some()
    );

    // The kubelet is up: every VF maps to its pod, namespace and container.
    let server = KubeletServer::start(&socket)?;
    let s = scrape(&d)?;
    assert_eq!(kubepoddevice_available(&s), Some(1.0));
    assert_eq!(
        value(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "kubepoddevice")]
        ),
        Some(1.0)
    );
    assert_eq!(device_pods(&s), expected_pods());
    assert_eq!(
        value(
            &s,
            "sriov_kubelet_allocatable_device",
            &[("pciAddr", "0000:af:02.1"), ("numa_node", "1")]
        ),
        Some(1.0)
    );

    // The kubelet restarts: first the socket file stays with nobody listening...
    drop(server);
    let _ = std::fs::remove_file(&socket);
    let stale = std::os::unix::net::UnixListener::bind(&socket)?;
    drop(stale); // the file remains; connecting is refused
    assert!(socket.exists());
    let s = scrape(&d)?;
    assert_eq!(kubepoddevice_available(&s), Some(0.0));
    assert!(device_pods(&s).is_empty(), "no stale series");
    // ...then it is gone...
    std::fs::remove_file(&socket)?;
    let s = scrape(&d)?;
    assert_eq!(kubepoddevice_available(&s), Some(0.0));
    // ...and it comes back on the same path.
    let _server = KubeletServer::start(&socket)?;
    let s = scrape(&d)?;
    assert_eq!(kubepoddevice_available(&s), Some(1.0));
    assert_eq!(device_pods(&s), expected_pods());
    Ok(())
}

#[test]
fn kubepoddevice_old_kubelet_and_failing_kubelet() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let tmp = fixture()?;
    let socket = tmp.path().join("kubelet.sock");
    let sock_arg = format!("--path.kubeletSocket={}", socket.display());
    let d = Daemon::start(&sriov_args(
        tmp.path(),
        &["--collector.kubepoddevice", &sock_arg],
    ))?;
    // No GetAllocatableResources: the assignments are still there, the allocatable family is
    // left out, and the scrape is a success.
    let server = KubeletServer::start_with(&socket, Mode::NoAllocatable)?;
    let s = scrape(&d)?;
    assert_eq!(device_pods(&s), expected_pods());
    assert!(
        !s.iter()
            .any(|x| x.name == "sriov_kubelet_allocatable_device")
    );
    assert_eq!(
        value(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "kubepoddevice")]
        ),
        Some(1.0)
    );
    drop(server);
    // List fails: the kubelet is there and broken, so available but not successful, and no
    // series.
    let _server = KubeletServer::start_with(&socket, Mode::ListFails)?;
    let s = scrape(&d)?;
    assert_eq!(kubepoddevice_available(&s), Some(1.0));
    assert_eq!(
        value(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "kubepoddevice")]
        ),
        Some(0.0)
    );
    assert!(device_pods(&s).is_empty());
    Ok(())
}

#[test]
fn prometheus_join_returns_the_pod_of_each_vf() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let tmp = fixture()?;
    let socket = tmp.path().join("kubelet.sock");
    let _server = KubeletServer::start(&socket)?;
    let sock_arg = format!("--path.kubeletSocket={}", socket.display());
    // The seed's rate limit (1 request/s, burst 10) as deployed: Prometheus scrapes once a
    // second, well within it.
    let d = Daemon::start(&sriov_args(
        tmp.path(),
        &[
            "--collector.kubepoddevice",
            &sock_arg,
            "--web.rate-limit=1",
            "--web.rate-burst=10",
        ],
    ))?;
    let prom = match Prometheus::start(tmp.path(), &d.addr.to_string()) {
        Err(e) if e.to_string() == testbed::prometheus::SKIP => {
            eprintln!("SKIPPED: prometheus not installed");
            return Ok(());
        }
        r => r?,
    };
    // The seed's query, `sriov_vf_tx_errors * on (pciAddr) group_left(pod,namespace)
    // sriov_kubepoddevice`, in our names.
    let join =
        "sriov_vf_tx_errors_total * on (pciAddr) group_left(pod,namespace) sriov_kubepoddevice";
    let mut result = Vec::new();
    for _ in 0..120 {
        result = prom.query(join)?;
        if !result.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(result.len(), 1, "{result:?}");
    let m = &result[0]["metric"];
    assert_eq!(m["pciAddr"], "0000:3b:02.0");
    assert_eq!(m["pod"], "cnf-a");
    assert_eq!(m["namespace"], "telco");
    assert_eq!(m["pf"], "ens785f0");
    assert_eq!(m["vf"], "0");
    assert_eq!(m["numa_node"], "0");
    assert_eq!(result[0]["value"][1], "5");
    // Both VFs of ens785f0 have byte counters: each gets its own pod.
    let bytes = prom.query(
        "sriov_vf_rx_bytes_total * on (pciAddr) group_left(pod,namespace) sriov_kubepoddevice",
    )?;
    let mut pods: Vec<(String, String)> = bytes
        .iter()
        .map(|r| {
            (
                r["metric"]["pciAddr"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["metric"]["pod"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    pods.sort();
    assert_eq!(
        pods,
        [
            ("0000:3b:02.0".to_owned(), "cnf-a".to_owned()),
            ("0000:3b:02.1".to_owned(), "cnf-b".to_owned())
        ]
    );
    // Prometheus scraped the daemon without a rate-limit refusal.
    let up = prom.query("up{job=\"dataplane-collector\"}")?;
    assert_eq!(up.first().map(|r| r["value"][1].clone()), Some("1".into()));
    Ok(())
}

#[test]
fn all_three_sources_in_one_scrape_are_promtool_clean() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let tmp = fixture()?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/fixtures/sriov");
    let node = tmp.path().join("node");
    let kubepods = tmp.path().join("kubepods.slice");
    std::fs::create_dir_all(&node)?;
    std::fs::create_dir_all(&kubepods)?;
    tree::unpack(&std::fs::read_to_string(fixtures.join("node.tree"))?, &node)?;
    tree::unpack(
        &std::fs::read_to_string(fixtures.join("cgroup-v2.tree"))?,
        &kubepods,
    )?;
    let checkpoint = tmp.path().join("cpu_manager_state");
    std::fs::copy(fixtures.join("cpu_manager_state.json"), &checkpoint)?;
    let socket = tmp.path().join("kubelet.sock");
    let _server = KubeletServer::start(&socket)?;
    let d = Daemon::start(&sriov_args(
        tmp.path(),
        &[
            "--collector.kubepoddevice",
            "--collector.kubepodcpu",
            &format!("--path.kubeletSocket={}", socket.display()),
            &format!("--path.nodecpuinfo={}", node.display()),
            &format!("--path.kubecgroup={}", kubepods.display()),
            &format!("--path.cpucheckpoint={}", checkpoint.display()),
        ],
    ))?;
    let (status, body) = d.get("/metrics")?;
    assert_eq!(status, 200);
    let s = prom::parse(&body)?;
    for c in ["vfstats", "kubepoddevice", "kubepodcpu"] {
        assert_eq!(
            value(
                &s,
                "dataplane_collector_scrape_success",
                &[("collector", c)]
            ),
            Some(1.0),
            "{c}"
        );
    }
    assert_eq!(
        value(
            &s,
            "sriov_kubepodcpu",
            &[
                ("cpu_id", "4"),
                ("numa_node", "1"),
                ("uid", "6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b")
            ]
        ),
        Some(1.0)
    );
    // Fails on anything but the one lint accepted on purpose: `pciAddr` is the seed's label
    // name and the key of its PromQL join, so it stays camelCase.
    testbed::promtool::check_metrics(&body).map_err(anyhow::Error::msg)?;
    Ok(())
}
