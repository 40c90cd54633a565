//! "Pods": network namespaces joined to a bridge by a veth pair, removed on drop.

use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run ip (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace with one interface (`eth0`) whose peer is `host_if` in the switch's
/// namespace.
pub struct Pod {
    pub netns: String,
    /// The namespace of the switch side (`None`: the host's).
    pub switch_netns: Option<String>,
    pub host_if: String,
    pub ip: String,
    pub mac: String,
}

impl Pod {
    /// Creates namespace `netns`, a veth pair `host_if` (in `switch_netns`, or the host's
    /// namespace) <-> `eth0` (inside), and gives `eth0` `ip/24` and `mac`.
    pub fn create(
        netns: &str,
        switch_netns: Option<&str>,
        host_if: &str,
        ip_addr: &str,
        mac: &str,
    ) -> Result<Pod> {
        let _ = ip(&["netns", "del", netns]);
        ip(&["netns", "add", netns])?;
        let pod = Pod {
            netns: netns.to_owned(),
            switch_netns: switch_netns.map(str::to_owned),
            host_if: host_if.to_owned(),
            ip: ip_addr.to_owned(),
            mac: mac.to_owned(),
        };
        let _ = pod.switch_ip(&["link", "del", host_if]);
        pod.switch_ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ])?;
        // No IPv6 autoconfiguration chatter (router and neighbour solicitations, MLD): counters
        // in tests move only with the traffic the tests send. `enable_ipv6` turns it back on.
        pod.sysctl_switch(&format!("net.ipv6.conf.{host_if}.disable_ipv6=1"));
        pod.sysctl(&[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        pod.switch_ip(&["link", "set", host_if, "up"])?;
        pod.exec_ip(&["link", "set", "lo", "up"])?;
        pod.exec_ip(&["link", "set", "eth0", "address", mac])?;
        pod.exec_ip(&["addr", "add", &format!("{ip_addr}/24"), "dev", "eth0"])?;
        pod.exec_ip(&["link", "set", "eth0", "up"])?;
        pod.exec_ip(&["route", "add", "default", "dev", "eth0"])?;
        Ok(pod)
    }

    fn sysctl_switch(&self, setting: &str) {
        let mut cmd = match &self.switch_netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "sysctl", "-q", "-w", setting]);
                c
            }
            None => {
                let mut c = Command::new("sysctl");
                c.args(["-q", "-w", setting]);
                c
            }
        };
        let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }

    fn sysctl(&self, settings: &[&str]) {
        for s in settings {
            let _ = Command::new("ip")
                .args(["netns", "exec", &self.netns, "sysctl", "-q", "-w", s])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Turns IPv6 on in the pod and gives `eth0` `addr/64` (no duplicate address detection).
    pub fn enable_ipv6(&self, addr: &str) -> Result<()> {
        self.sysctl(&[
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.eth0.disable_ipv6=0",
        ]);
        self.sysctl_switch(&format!("net.ipv6.conf.{}.disable_ipv6=0", self.host_if));
        self.exec_ip(&[
            "-6",
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .map(|_| ())
    }

    /// Runs `ip ARGS` in the switch's namespace.
    pub fn switch_ip(&self, args: &[&str]) -> Result<String> {
        match &self.switch_netns {
            Some(ns) => {
                let mut full = vec!["-n", ns.as_str()];
                full.extend_from_slice(args);
                ip(&full)
            }
            None => ip(args),
        }
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn exec_ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.netns.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, prog])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {prog} in {}", self.netns))?;
        if !out.status.success() {
            bail!(
                "{prog} {} in {} failed: {}{}",
                args.join(" "),
                self.netns,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sends `count` pings to `dst` (replies not required).
    pub fn ping(&self, dst: &str, count: u32) -> Result<()> {
        let c = count.to_string();
        // ping exits 1 when replies are missing; the packets were still sent.
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "ping",
                "-q",
                "-n",
                "-i",
                "0.01",
                "-W",
                "1",
            ])
            .args(["-c", &c, dst])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run ping (install iputils-ping)")?;
        Ok(())
    }

    /// Sends `count` UDP datagrams of `payload` bytes from this pod to `dst:port`.
    pub fn send_udp(&self, dst: &str, port: u16, count: u32, payload: usize) -> Result<()> {
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             for _ in range({count}): s.sendto(b'x'*{payload},('{dst}',{port}))\n"
        );
        self.exec("python3", &["-c", &script]).map(|_| ())
    }

    /// Adds a static ARP entry (for addresses no pod answers for, like a service VIP).
    pub fn neigh(&self, ip_addr: &str, mac: &str) -> Result<()> {
        self.exec_ip(&[
            "neigh",
            "replace",
            ip_addr,
            "lladdr",
            mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .map(|_| ())
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.switch_ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.netns]);
    }
}

/// True if we can create network namespaces (root, iproute2).
pub fn can_create_netns() -> bool {
    let name = format!("dpc-probe-{}", crate::topology::unique_tag());
    let ok = ip(&["netns", "add", &name]).is_ok();
    let _ = ip(&["netns", "del", &name]);
    ok
}
