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
        let _ = std::fs::remove_file(d.join("ovs-vswitchd.ctl"));
        // `ip netns exec` enters the namespace and execs: the child is ovs-vswitchd itself.
        let mut cmd = if self.netns.is_empty() {
            Command::new("ovs-vswitchd")
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.netns, "ovs-vswitchd"]);
            c
        };
        self.envs(&mut cmd);
        cmd.arg(format!("unix:{}", d.join("db.sock").display()))
            .arg(format!(
                "--unixctl={}",
                d.join("ovs-vswitchd.ctl").display()
            ))
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
        self.vswitchd = Some(cmd.spawn().context("cannot start ovs-vswitchd")?);
        wait_for(&d.join("ovs-vswitchd.ctl"), "ovs-vswitchd")?;
        Ok(())
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
        c.arg("-t")
            .arg(self.dir.path().join("ovs-vswitchd.ctl"))
            .args(args);
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
