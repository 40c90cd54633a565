//! Root-only: the ovsprocess source against a real ovs-vswitchd and ovsdb-server. What it
//! serves for each daemon equals what procps (`ps -o`), util-linux (`prlimit`) and the kernel's
//! files say for the same pid, read just before and just after the scrape (between the two
//! where a figure moves); a killed ovs-vswitchd (its pidfile left behind) is `ovs_process_up 0`
//! with no other series while ovsdb-server's stay; a pidfile naming another program is down
//! too; a restarted ovs-vswitchd is followed to its new pid and start time.
//!
//! `/proc` is read here with code of its own (not the source's parsers), so a parser bug cannot
//! agree with itself.

use anyhow::{Context, Result, bail};
use std::process::Command;
use testbed::daemon::Daemon;
use testbed::ovs::Ovs;
use testbed::prom::{self, Sample};

fn scrape(d: &Daemon) -> Result<Vec<Sample>> {
    let (status, body) = d.get("/metrics")?;
    if status != 200 {
        bail!("HTTP {status}: {body}");
    }
    prom::parse(&body)
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && want.iter().all(|(k, v)| s.label(k) == *v))
        .map(|s| s.value)
}

fn start(ovs: &Ovs) -> Result<Daemon> {
    Daemon::start(&[
        "--collector.disable-defaults".to_owned(),
        "--collector.ovsprocess".to_owned(),
        "--ovs.rundir".to_owned(),
        ovs.rundir().to_string_lossy().into_owned(),
        format!(
            "--collector.ovsprocess.db-file={}",
            ovs.rundir().join("conf.db").display()
        ),
    ])
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn ps(pid: u32, field: &str) -> Result<String> {
    output(Command::new("ps").args(["-o", &format!("{field}="), "-p", &pid.to_string()]))
}

fn clk_tck() -> Result<f64> {
    Ok(output(Command::new("getconf").arg("CLK_TCK"))?.parse()?)
}

/// What the kernel and procps say about one pid at one moment.
#[derive(Debug, Clone, Copy)]
struct Seen {
    utime: u64,
    stime: u64,
    threads: u64,
    rss_kib: u64,
    vsz_kib: u64,
    fds: u64,
}

fn seen(pid: u32) -> Result<Seen> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after `comm`: state is field 3, utime 14, stime 15.
    let after = stat.rsplit(')').next().context("stat")?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let key = |k: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(k))
            .with_context(|| format!("{k} in status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("status value")?
            .parse()?)
    };
    Ok(Seen {
        utime: f.get(11).context("utime")?.parse()?,
        stime: f.get(12).context("stime")?.parse()?,
        threads: ps(pid, "nlwp")?.parse()?,
        rss_kib: key("VmRSS:")?,
        vsz_kib: ps(pid, "vsz")?.parse()?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64,
    })
}

/// `ps -o lstart=` (whole seconds, as procps computes it from btime and starttime) as Unix time.
fn lstart(pid: u32) -> Result<i64> {
    let text = ps(pid, "lstart")?;
    Ok(output(Command::new("date").args(["-d", &text, "+%s"]))?.parse()?)
}

fn between(what: &str, a: f64, got: f64, b: f64) -> Result<()> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    if got < lo || got > hi {
        bail!("{what}: served {got}, the host said {a} before and {b} after");
    }
    Ok(())
}

fn check_daemon(s: &[Sample], daemon: &str, pid: u32, before: Seen, after: Seen) -> Result<()> {
    let tck = clk_tck()?;
    let d = [("daemon", daemon)];
    let get = |name: &str| value(s, name, &d).with_context(|| format!("no {name} for {daemon}"));
    if get("ovs_process_up")? != 1.0 {
        bail!("{daemon} not up");
    }
    let cpu = |mode: &str| {
        value(
            s,
            "ovs_process_cpu_seconds_total",
            &[("daemon", daemon), ("mode", mode)],
        )
        .with_context(|| format!("no {mode} cpu for {daemon}"))
    };
    between(
        &format!("{daemon} user cpu"),
        before.utime as f64 / tck,
        cpu("user")?,
        after.utime as f64 / tck,
    )?;
    between(
        &format!("{daemon} system cpu"),
        before.stime as f64 / tck,
        cpu("system")?,
        after.stime as f64 / tck,
    )?;
    between(
        &format!("{daemon} threads (ps nlwp)"),
        before.threads as f64,
        get("ovs_process_threads")?,
        after.threads as f64,
    )?;
    between(
        &format!("{daemon} open fds (ls /proc/PID/fd)"),
        before.fds as f64,
        get("ovs_process_open_fds")?,
        after.fds as f64,
    )?;
    between(
        &format!("{daemon} RSS KiB (VmRSS)"),
        before.rss_kib as f64,
        get("ovs_process_resident_memory_bytes")? / 1024.0,
        after.rss_kib as f64,
    )?;
    between(
        &format!("{daemon} virtual KiB (ps vsz)"),
        before.vsz_kib as f64,
        (get("ovs_process_virtual_memory_bytes")? / 1024.0).floor(),
        after.vsz_kib as f64,
    )?;
    let soft: f64 = output(Command::new("prlimit").args([
        "--nofile",
        "--output=SOFT",
        "--noheadings",
        "-p",
        &pid.to_string(),
    ]))?
    .parse()?;
    assert_eq!(
        get("ovs_process_max_fds")?,
        soft,
        "{daemon} max fds (prlimit)"
    );
    let started = get("ovs_process_start_time_seconds")?;
    assert_eq!(
        started.floor() as i64,
        lstart(pid)?,
        "{daemon} start time (ps lstart) of {started}"
    );
    Ok(())
}

#[test]
fn figures_equal_what_ps_prlimit_and_proc_say() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    // Some work for both daemons, so the CPU times are not all zero.
    for i in 0..5 {
        ovs.add_bridge(&format!("brp{}{i}", testbed::topology::unique_tag()))?;
    }
    let d = start(&ovs)?;
    let pids = [
        ("ovs-vswitchd", ovs.vswitchd_pid().context("pid")?),
        ("ovsdb-server", ovs.ovsdb_pid().context("pid")?),
    ];
    let db = ovs.rundir().join("conf.db");

    let before: Vec<Seen> = pids.iter().map(|(_, p)| seen(*p)).collect::<Result<_>>()?;
    let db_before = std::fs::metadata(&db)?.len();
    let s = scrape(&d)?;
    let after: Vec<Seen> = pids.iter().map(|(_, p)| seen(*p)).collect::<Result<_>>()?;
    let db_after = std::fs::metadata(&db)?.len();

    for (i, (daemon, pid)) in pids.iter().enumerate() {
        check_daemon(&s, daemon, *pid, before[i], after[i])?;
    }
    let total: f64 = s
        .iter()
        .filter(|x| x.name == "ovs_process_cpu_seconds_total")
        .map(|x| x.value)
        .sum();
    assert!(
        total > 0.0,
        "every CPU time is 0: the comparison above proves little"
    );
    between(
        "database size",
        db_before as f64,
        value(
            &s,
            "ovs_ovsdb_database_size_bytes",
            &[("database", "Open_vSwitch")],
        )
        .context("no database size")?,
        db_after as f64,
    )?;
    assert_eq!(
        value(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "ovsprocess")]
        ),
        Some(1.0)
    );
    Ok(())
}

fn series_of<'a>(s: &'a [Sample], daemon: &str) -> Vec<&'a Sample> {
    s.iter()
        .filter(|x| x.name.starts_with("ovs_process_") && x.label("daemon") == daemon)
        .collect()
}

#[test]
fn a_killed_vswitchd_is_down_a_reused_pid_too_and_a_restarted_one_is_followed() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let mut ovs = Ovs::start()?;
    let d = start(&ovs)?;
    let first = ovs.vswitchd_pid().context("pid")?;
    let s = scrape(&d)?;
    let vs = [("daemon", "ovs-vswitchd")];
    let old_start =
        value(&s, "ovs_process_start_time_seconds", &vs).context("vswitchd start time")?;
    assert_eq!(old_start.floor() as i64, lstart(first)?);

    // SIGKILL leaves the pidfile behind, naming a dead pid.
    ovs.kill_vswitchd()?;
    let pidfile = ovs.rundir().join("ovs-vswitchd.pid");
    assert!(
        pidfile.exists(),
        "the killed ovs-vswitchd's pidfile is gone"
    );
    let s = scrape(&d)?;
    assert_eq!(value(&s, "ovs_process_up", &vs), Some(0.0));
    let left: Vec<&Sample> = series_of(&s, "ovs-vswitchd")
        .into_iter()
        .filter(|x| x.name != "ovs_process_up")
        .collect();
    assert!(left.is_empty(), "series of a dead ovs-vswitchd: {left:?}");
    let db = [("daemon", "ovsdb-server")];
    assert_eq!(value(&s, "ovs_process_up", &db), Some(1.0));
    let ovsdb = ovs.ovsdb_pid().context("ovsdb pid")?;
    assert_eq!(
        value(&s, "ovs_process_threads", &db),
        Some(ps(ovsdb, "nlwp")?.parse()?),
        "ovsdb-server's series stay"
    );
    assert_eq!(
        value(
            &s,
            "dataplane_collector_scrape_success",
            &[("collector", "ovsprocess")]
        ),
        Some(1.0),
        "a dead daemon is not a failed scrape"
    );

    // A pid reused by another program: this test's own process.
    std::fs::write(&pidfile, format!("{}\n", std::process::id()))?;
    let s = scrape(&d)?;
    assert_eq!(value(&s, "ovs_process_up", &vs), Some(0.0));
    assert_eq!(
        series_of(&s, "ovs-vswitchd").len(),
        1,
        "only ovs_process_up"
    );

    // No pidfile: no series for that daemon at all.
    std::fs::remove_file(&pidfile)?;
    let s = scrape(&d)?;
    assert!(series_of(&s, "ovs-vswitchd").is_empty());
    assert_eq!(value(&s, "ovs_process_up", &db), Some(1.0));

    ovs.start_vswitchd()?;
    let second = ovs.vswitchd_pid().context("pid")?;
    assert_ne!(first, second);
    let before = seen(second)?;
    let s = scrape(&d)?;
    let after = seen(second)?;
    check_daemon(&s, "ovs-vswitchd", second, before, after)?;
    let new_start = value(&s, "ovs_process_start_time_seconds", &vs).context("start time")?;
    assert!(
        new_start > old_start,
        "the restarted ovs-vswitchd started at {new_start}, not after {old_start}"
    );

    // Neither pidfile: Open vSwitch is not here.
    ovs.kill_vswitchd()?;
    ovs.kill_ovsdb()?;
    for f in ["ovs-vswitchd.pid", "ovsdb-server.pid"] {
        let _ = std::fs::remove_file(ovs.rundir().join(f));
    }
    let s = scrape(&d)?;
    assert_eq!(
        value(
            &s,
            "dataplane_collector_source_available",
            &[("collector", "ovsprocess")]
        ),
        Some(0.0)
    );
    assert!(s.iter().all(|x| !x.name.starts_with("ovs_")), "{s:?}");
    Ok(())
}
