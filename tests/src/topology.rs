//! The demo and test topology: one OVS bridge, three "pods" on veth ports, a two-table pipeline
//! with cookies, and a select group behind a service VIP.
//!
//! ```text
//!  pod0 10.244.0.2 ─┐                        table 0                     table 1
//!  pod1 10.244.0.3 ─┼─ bridge ── arp → NORMAL (0x1000)        nw_dst=pod → output (0x2001..)
//!  pod2 10.244.0.4 ─┘             ip → goto_table:1 (0x1001)  nw_dst=VIP → group:1 (0x2100)
//!                                 else drop (0x10ff)          else drop (0x20ff)
//!  group 1 (select): bucket 0 → pod1, bucket 1 → pod2, with the VIP rewritten to the pod.
//! ```

use crate::netns::Pod;
use crate::ovs::Ovs;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU32, Ordering};

pub const VIP: &str = "10.96.0.10";
pub const VIP_MAC: &str = "02:00:00:00:00:fe";

/// Short names unique to this process and call, so tests can run side by side (interface names
/// are global and at most 15 bytes).
pub fn unique_tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{n:x}", std::process::id() % 0x10000)
}

pub struct Topology {
    pub pods: Vec<Pod>,
    pub ofports: Vec<u16>,
    pub bridge: String,
    pub tag: String,
    // Dropped last: the pods' veths go before the switch.
    pub ovs: Ovs,
}

impl Topology {
    /// Builds the topology on `ovs`. `pods` is at least 3.
    pub fn build(ovs: Ovs, pods: usize) -> Result<Topology> {
        let tag = unique_tag();
        let bridge = format!("br{tag}");
        ovs.add_bridge(&bridge)?;
        let mut t = Topology {
            pods: Vec::new(),
            ofports: Vec::new(),
            bridge,
            tag,
            ovs,
        };
        for i in 0..pods.max(3) {
            let host_if = format!("v{}p{i}", t.tag);
            let ns = format!("dpc-{}-pod{i}", t.tag);
            let ip = format!("10.244.0.{}", i + 2);
            let mac = format!("02:00:00:00:00:{:02x}", i + 2);
            let pod = Pod::create(&ns, t.ovs.switch_netns(), &host_if, &ip, &mac)?;
            t.ovs.vsctl(&["add-port", &t.bridge, &host_if])?;
            t.ofports.push(t.ovs.ofport(&host_if)?);
            t.pods.push(pod);
        }
        t.install_pipeline()?;
        // Pod 0 reaches the VIP through the bridge.
        t.pods[0].neigh(VIP, VIP_MAC)?;
        Ok(t)
    }

    fn install_pipeline(&self) -> Result<()> {
        let b = &self.bridge;
        let mut flows = vec![
            "table=0,priority=0,cookie=0x10ff,actions=drop".to_owned(),
            "table=0,priority=100,cookie=0x1000,arp,actions=NORMAL".to_owned(),
            "table=0,priority=90,cookie=0x1001,ip,actions=goto_table:1".to_owned(),
            "table=1,priority=0,cookie=0x20ff,actions=drop".to_owned(),
        ];
        for (i, (pod, port)) in self.pods.iter().zip(&self.ofports).enumerate() {
            flows.push(format!(
                "table=1,priority=200,cookie={:#x},ip,nw_dst={},actions=output:{port}",
                0x2001 + i,
                pod.ip
            ));
        }
        flows.push(format!(
            "table=1,priority=150,cookie=0x2100,ip,nw_dst={VIP},actions=group:1"
        ));
        let (p1, p2) = (&self.pods[1], &self.pods[2]);
        // Hash on the destination port: the datapath's default dp_hash sees one hash for all
        // of pod 0's UDP flows on veths, which would leave a bucket idle.
        let group = format!(
            "group_id=1,type=select,selection_method=hash,fields(ip_dst,udp_dst),\
             bucket=weight:100,actions=set_field:{}->ip_dst,set_field:{}->eth_dst,output:{},\
             bucket=weight:100,actions=set_field:{}->ip_dst,set_field:{}->eth_dst,output:{}",
            p1.ip, p1.mac, self.ofports[1], p2.ip, p2.mac, self.ofports[2]
        );
        self.ovs
            .ofctl(&["-O", "OpenFlow15"], "add-group", b, &[&group])
            .context("add group")?;
        for f in &flows {
            self.ovs
                .add_flow(b, f)
                .with_context(|| format!("add flow {f}"))?;
        }
        Ok(())
    }

    /// Sends traffic: pings between pods and UDP to the VIP from many source ports (so the
    /// select group uses both buckets).
    pub fn traffic(&self, rounds: u32) -> Result<()> {
        let p = &self.pods;
        p[0].ping(&p[1].ip, 3 * rounds)?;
        p[0].ping(&p[2].ip, 2 * rounds)?;
        p[1].ping(&p[2].ip, rounds)?;
        let script = format!(
            "import socket\n\
             for i in range({}):\n    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n    \
             s.sendto(b'x'*(64+i%64),('{VIP}',8000+i))\n    s.close()\n",
            40 * rounds
        );
        p[0].exec("python3", &["-c", &script])?;
        Ok(())
    }

    /// Waits until OVS's flow counters have caught up with the datapath (revalidators push
    /// stats about every 500 ms), i.e. two reads a second apart agree.
    pub fn settle(&self) -> Result<()> {
        let mut last = String::new();
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(700));
            let now = self
                .ovs
                .ofctl(&[], "dump-flows", &self.bridge, &["--no-stats"])
                .and_then(|_| self.ovs.ofctl(&[], "dump-aggregate", &self.bridge, &[]))?;
            let ports = self.ovs.ofctl(&[], "dump-ports", &self.bridge, &[])?;
            let snapshot = format!("{now}{ports}");
            if snapshot == last {
                return Ok(());
            }
            last = snapshot;
        }
        anyhow::bail!("counters did not settle")
    }
}
