//! A private Open vSwitch: its own ovsdb-server and ovs-vswitchd (userspace datapath) in a
//! temporary run directory and its own network namespace, stopped and removed on drop.
//!
//! The namespace matters: the userspace datapath creates a tap device named `ovs-netdev` and one
//! per bridge, so two instances in one namespace collide. The sockets live in the file system
//! and are reachable from anywhere.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Ovs {
    dir: tempfile::TempDir,
    /// Empty when ovs-vswitchd runs in the host's namespace ([`Ovs::start_in_host_netns`]).
    netns: String,
    /// Held while an instance runs in the host's namespace: only one at a time.
    _host_lock: Option<std::fs::File>,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for(path: &Path, what: &str) -> Result<()> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("{what} did not create {} within 20 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// True if the Open vSwitch programs are installed.
pub fn available() -> bool {
    [
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-ofctl",
        "ovsdb-tool",
    ]
    .iter()
    .all(|p| which(p).is_some())
}

pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

fn schema() -> Result<PathBuf> {
    for p in [
        "/usr/share/openvswitch/vswitch.ovsschema",
        "/usr/local/share/openvswitch/vswitch.ovsschema",
    ] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("vswitch.ovsschema not found (is openvswitch-switch installed?)")
}

impl Ovs {
    /// Starts ovsdb-server and ovs-vswitchd in a fresh directory.
    pub fn start() -> Result<Ovs> {
        Ovs::start_with(false)
    }

    /// Like [`Ovs::start`], but ovs-vswitchd runs in the host's network namespace, where the
    /// daemon under test can attach eBPF programs to its ports. Such instances run one at a
    /// time (a lock file), since the userspace datapath's tap devices have fixed names.
    pub fn start_in_host_netns() -> Result<Ovs> {
        Ovs::start_with(true)
    }

    fn start_with(host: bool) -> Result<Ovs> {
        let dir = tempfile::Builder::new()
            .prefix("dpc-ovs-")
            .tempdir()
            .context("cannot create a run directory")?;
        let (netns, host_lock) = if host {
            let lock = std::fs::File::create("/run/dataplane-collector-host-ovs.lock")
                .context("cannot create the host OVS lock file")?;
            lock.lock().context("cannot take the host OVS lock")?;
            (String::new(), Some(lock))
        } else {
            let netns = format!("dpc-ovs-{}", crate::topology::unique_tag());
            let _ = run(Command::new("ip").args(["netns", "del", &netns]));
            run(Command::new("ip").args(["netns", "add", &netns]))?;
            run(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]))?;
            (netns, None)
        };
        let mut ovs = Ovs {
            dir,
            netns,
            _host_lock: host_lock,
            ovsdb: None,
            vswitchd: None,
        };
        let d = ovs.dir.path().to_path_buf();
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(d.join("conf.db"))
            .arg(schema()?))?;
        ovs.start_ovsdb()?;
        run(ovs.vsctl_cmd().args(["--no-wait", "init"]))?;
        ovs.start_vswitchd()?;
        Ok(ovs)
    }

    fn envs(&self, cmd: &mut Command) {
        let d = self.dir.path();
        cmd.env("OVS_RUNDIR", d)
            .env("OVS_LOGDIR", d)
            .env("OVS_DBDIR", d)
            .env("OVS_SYSCONFDIR", d)
            .env("OVS_PKGDATADIR", "/usr/share/openvswitch");
    }

    pub fn start_ovsdb(&mut self) -> Result<()> {
        let d = self.dir.path().to_path_buf();
        let _ = std::fs::remove_file(d.join("db.sock"));
        let mut cmd = Command::new("ovsdb-server");
        self.envs(&mut cmd);
        cmd.arg(format!("--remote=punix:{}", d.join("db.sock").display()))
            .arg(format!(
                "--unixctl={}",
                d.join("ovsdb-server.ctl").display()
            ))
            .arg(format!(
                "--log-file={}",
                d.join("ovsdb-server.log").display()
            ))
            .arg(format!(
                "--pidfile={}",
                d.join("ovsdb-server.pid").display()
            ))
            .arg(d.join("conf.db"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.ovsdb = Some(cmd.spawn().context("cannot start ovsdb-server")?);
        wait_for(&d.join("db.sock"), "ovsdb-server")
    }

    pub fn start_vswitchd(&mut self) -> Result<()> {
        let d = self.dir.path().to_path_buf();
        // `ip netns exec` enters the namespace and execs: the child is ovs-vswitchd itself.
        let mut cmd = if self.netns.is_empty() {
            Command::new("ovs-vswitchd")
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.netns, "ovs-vswitchd"]);
            c
        };
        self.envs(&mut cmd);
        // No --unixctl: the control socket is where a packaged ovs-vswitchd puts it,
        // <OVS_RUNDIR>/ovs-vswitchd.<pid>.ctl, found through the pidfile (as ovs-appctl and the
        // daemon's vswitchd source find it).
        cmd.arg(format!("unix:{}", d.join("db.sock").display()))
            .arg(format!(
                "--log-file={}",
                d.join("ovs-vswitchd.log").display()
            ))
            .arg(format!(
                "--pidfile={}",
                d.join("ovs-vswitchd.pid").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().context("cannot start ovs-vswitchd")?;
        // `ip netns exec` execs ovs-vswitchd: the child's pid is the daemon's.
        let ctl = d.join(format!("ovs-vswitchd.{}.ctl", child.id()));
        self.vswitchd = Some(child);
        wait_for(&ctl, "ovs-vswitchd")?;
        Ok(())
    }

    /// ovs-vswitchd's pid, while it runs.
    pub fn vswitchd_pid(&self) -> Option<u32> {
        self.vswitchd.as_ref().map(Child::id)
    }

    /// ovs-vswitchd's control socket, while it runs.
    pub fn vswitchd_ctl(&self) -> Option<PathBuf> {
        self.vswitchd_pid()
            .map(|pid| self.dir.path().join(format!("ovs-vswitchd.{pid}.ctl")))
    }

    /// Kills ovs-vswitchd with SIGKILL (its *.mgmt sockets stay behind, as after a crash).
    pub fn kill_vswitchd(&mut self) -> Result<()> {
        if let Some(mut c) = self.vswitchd.take() {
            c.kill().context("cannot kill ovs-vswitchd")?;
            c.wait().context("cannot reap ovs-vswitchd")?;
        }
        Ok(())
    }

    /// Kills ovsdb-server with SIGKILL.
    pub fn kill_ovsdb(&mut self) -> Result<()> {
        if let Some(mut c) = self.ovsdb.take() {
            c.kill().context("cannot kill ovsdb-server")?;
            c.wait().context("cannot reap ovsdb-server")?;
        }
        Ok(())
    }

    /// The run directory (`--ovs.rundir`).
    pub fn rundir(&self) -> &Path {
        self.dir.path()
    }

    /// The network namespace ovs-vswitchd runs in (where its ports' host sides live).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The namespace of the switch's ports, `None` for the host's.
    pub fn switch_netns(&self) -> Option<&str> {
        (!self.netns.is_empty()).then_some(self.netns.as_str())
    }

    pub fn db_sock(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    pub fn mgmt(&self, bridge: &str) -> PathBuf {
        self.dir.path().join(format!("{bridge}.mgmt"))
    }

    fn vsctl_cmd(&self) -> Command {
        let mut c = Command::new("ovs-vsctl");
        self.envs(&mut c);
        c.arg(format!("--db=unix:{}", self.db_sock().display()))
            .arg("--timeout=20");
        c
    }

    /// Runs `ovs-vsctl ARGS` against this database.
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        run(self.vsctl_cmd().args(args))
    }

    /// Runs `ovs-ofctl [OPTS] CMD unix:<bridge.mgmt> [ARGS]`.
    pub fn ofctl(&self, opts: &[&str], cmd: &str, bridge: &str, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-ofctl");
        self.envs(&mut c);
        c.args(opts)
            .arg(cmd)
            .arg(format!("unix:{}", self.mgmt(bridge).display()))
            .args(args);
        run(&mut c)
    }

    /// Runs `ovs-appctl -t ovs-vswitchd ARGS`.
    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-appctl");
        self.envs(&mut c);
        // `-t ovs-vswitchd`: the pidfile in OVS_RUNDIR names the socket.
        c.args(["-t", "ovs-vswitchd"]).args(args);
        run(&mut c)
    }

    /// Links the switch's namespace to the host's with a veth pair and returns the switch-side
    /// address (a /30 out of 10.250.0.0/16), for OpenFlow over TCP from the host.
    pub fn link_to_host(&self) -> Result<String> {
        let n = std::process::id() % 16000 + 4;
        let tag = crate::topology::unique_tag();
        let (host_if, ovs_if) = (format!("h{tag}"), format!("o{tag}"));
        let base = n * 4;
        let host_ip = format!("10.250.{}.{}", base / 256, base % 256 + 1);
        let ovs_ip = format!("10.250.{}.{}", base / 256, base % 256 + 2);
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        let _ = ip(&["link", "del", &host_if]);
        ip(&[
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ovs_if,
            "netns",
            &self.netns,
        ])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        ip(&[
            "-n",
            &self.netns,
            "addr",
            "add",
            &format!("{ovs_ip}/30"),
            "dev",
            &ovs_if,
        ])?;
        ip(&["-n", &self.netns, "link", "set", &ovs_if, "up"])?;
        Ok(ovs_ip)
    }

    /// Adds a bridge on the userspace datapath and waits for its management socket.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
            "protocols=OpenFlow10,OpenFlow13,OpenFlow14,OpenFlow15",
            "fail_mode=secure",
        ])?;
        wait_for(&self.mgmt(name), "the new bridge")
    }

    /// Adds a flow with `ovs-ofctl -O OpenFlow13 add-flow`.
    pub fn add_flow(&self, bridge: &str, flow: &str) -> Result<()> {
        self.ofctl(&["-O", "OpenFlow13"], "add-flow", bridge, &[flow])
            .map(|_| ())
    }

    /// Adds flows from a file with `ovs-ofctl -O OpenFlow13 add-flows`.
    pub fn add_flows_file(&self, bridge: &str, file: &Path) -> Result<()> {
        let f = file.to_string_lossy().into_owned();
        self.ofctl(&["-O", "OpenFlow13"], "add-flows", bridge, &[&f])
            .map(|_| ())
    }

    pub fn add_group(&self, bridge: &str, group: &str) -> Result<()> {
        self.ofctl(&["-O", "OpenFlow13"], "add-group", bridge, &[group])
            .map(|_| ())
    }

    /// The pid of ovsdb-server (to stop and continue it).
    pub fn ovsdb_pid(&self) -> Option<u32> {
        self.ovsdb.as_ref().map(Child::id)
    }

    /// Runs one OVSDB transaction (`ops`, the operations after the database name) over the
    /// database socket, with no size limit on the command line (ovsdb-client takes the
    /// transaction as one argument, at most 128 KiB on Linux). Returns the result array.
    pub fn transact(&self, ops: Vec<serde_json::Value>) -> Result<serde_json::Value> {
        use std::io::{Read, Write};
        let mut params = vec![serde_json::Value::from("Open_vSwitch")];
        params.extend(ops);
        let req =
            serde_json::json!({"id": "testbed-transact", "method": "transact", "params": params});
        let mut s = std::os::unix::net::UnixStream::connect(self.db_sock())
            .context("cannot connect to ovsdb-server")?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        s.write_all(req.to_string().as_bytes())?;
        let mut framer = dataplane_collector::ovsdb::proto::Framer::default();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = s.read(&mut buf).context("reading the transact reply")?;
            if n == 0 {
                bail!("ovsdb-server closed the connection during transact");
            }
            framer.push(&buf[..n]);
            while let Some(v) = framer.next_value()? {
                if v["id"] != "testbed-transact" {
                    continue;
                }
                if !v["error"].is_null() {
                    bail!("transact failed: {}", v["error"]);
                }
                let result = v["result"].clone();
                for r in result.as_array().context("transact result")? {
                    if r.get("error").is_some() {
                        bail!("transact operation failed: {r}");
                    }
                }
                return Ok(result);
            }
        }
    }

    /// Adds a bridge `bridge` (datapath_type=netdev) with `n` ports of one interface each
    /// (`p0`…), OVN-Kubernetes-style external_ids and a dozen statistics per interface, in one
    /// transaction: as fast as the database takes it, with or without ovs-vswitchd.
    pub fn add_interfaces_bulk(&self, bridge: &str, n: usize) -> Result<()> {
        use serde_json::json;
        let mut ops = Vec::with_capacity(2 * n + 2);
        let mut ports = Vec::with_capacity(n);
        for i in 0..n {
            let stats: Vec<serde_json::Value> = [
                "rx_packets",
                "tx_packets",
                "rx_bytes",
                "tx_bytes",
                "rx_dropped",
                "tx_dropped",
                "rx_errors",
                "tx_errors",
                "collisions",
                "rx_crc_err",
                "rx_frame_err",
                "rx_over_err",
            ]
            .iter()
            .enumerate()
            .map(|(k, name)| json!([name, (i * 13 + k) as i64]))
            .collect();
            ops.push(
                json!({"op": "insert", "table": "Interface", "uuid-name": format!("i{i}"), "row": {
                    "name": format!("p{i}"),
                    "type": "internal",
                    "external_ids": ["map", [
                        ["iface-id", format!("ns{}_pod-{i}", i % 50)],
                        ["iface-id-ver", format!("uid-{i}")],
                    ]],
                    "statistics": ["map", stats],
                }}),
            );
            ops.push(
                json!({"op": "insert", "table": "Port", "uuid-name": format!("p{i}"), "row": {
                    "name": format!("p{i}"),
                    "interfaces": ["named-uuid", format!("i{i}")],
                }}),
            );
            ports.push(json!(["named-uuid", format!("p{i}")]));
        }
        ops.push(
            json!({"op": "insert", "table": "Bridge", "uuid-name": "br", "row": {
                "name": bridge, "datapath_type": "netdev", "ports": ["set", ports],
            }}),
        );
        ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
            "mutations": [["bridges", "insert", ["set", [["named-uuid", "br"]]]]]}));
        self.transact(ops).map(|_| ())
    }

    /// The OpenFlow port number OVS gave an interface.
    pub fn ofport(&self, iface: &str) -> Result<u16> {
        let out = self.vsctl(&["get", "Interface", iface, "ofport"])?;
        out.trim()
            .parse()
            .with_context(|| format!("ofport of {iface}: {out:?}"))
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for child in [self.vswitchd.take(), self.ovsdb.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.netns.is_empty() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.netns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
