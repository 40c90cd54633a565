//! IPVS absent: no `ip_vs` module. The source is unavailable (no series, no warning, no
//! failure of the scrape), and looking for IPVS never loads the module. Then the proof that the
//! last check could fail here: a lookup of the family *by name*, as ipvsadm does it, does make
//! the kernel load `ip_vs`; after which the same daemons report it available.

use crate::{Daemon, ip, module_loaded, wait_for};
use anyhow::{Context, Result, bail};
use std::time::Duration;

fn check_unavailable(body: &str, what: &str) -> Result<()> {
    for line in [
        "dataplane_collector_source_available{collector=\"ipvs\"} 0",
        "dataplane_collector_scrape_success{collector=\"ipvs\"} 0",
    ] {
        if !body.contains(line) {
            bail!("{what}: no `{line}` in\n{body}");
        }
    }
    if let Some(l) = body.lines().find(|l| l.starts_with("ipvs_")) {
        bail!("{what}: an ipvs series without IPVS: {l}");
    }
    Ok(())
}

/// Warnings or errors the daemon logged about IPVS.
fn complaints(d: &Daemon) -> Result<Vec<String>> {
    let log = std::fs::read_to_string(&d.log)?;
    Ok(log
        .lines()
        .filter(|l| l.contains("ipvs") && (l.contains("\"WARN\"") || l.contains("\"ERROR\"")))
        .map(str::to_owned)
        .collect())
}

pub fn run() -> Result<()> {
    if module_loaded("ip_vs") {
        bail!("ip_vs is loaded; this scenario needs it absent");
    }
    ip(&["netns", "add", "other"])?;
    let common = ["--log.format", "json", "--log.level", "debug"];
    let own = Daemon::start(9103, &common)?;
    let mut args = common.to_vec();
    args.extend([
        "--ipvs.netns",
        "/run/netns/other",
        "--ipvs.netns",
        "/run/netns/missing",
    ]);
    let netns = Daemon::start(9104, &args)?;
    for i in 0..5 {
        check_unavailable(&own.metrics()?, &format!("scrape {i}"))?;
        check_unavailable(&netns.metrics()?, &format!("scrape {i} with --ipvs.netns"))?;
    }
    for d in [&own, &netns] {
        let c = complaints(d)?;
        if !c.is_empty() {
            bail!(
                "the daemon complained about an absent IPVS:\n{}",
                c.join("\n")
            );
        }
        let log = std::fs::read_to_string(&d.log)?;
        if !log.contains("ip_vs module is not loaded") {
            bail!("no debug line saying why IPVS is unavailable:\n{log}");
        }
    }
    if module_loaded("ip_vs") {
        bail!("scraping loaded the ip_vs module");
    }
    println!(
        "ipvs-absent: 10 scrapes: unavailable, no ipvs_* series, no warning, ip_vs still not loaded"
    );

    // The check above means something only if a lookup could load the module here.
    use dataplane_collector::netlink::{Protocol, Socket, genl};
    use dataplane_collector::sources::ipvs::parse;
    let mut sock = Socket::open(Protocol::Generic, Duration::from_secs(10))?;
    let seq = sock.next_seq();
    let errno = sock.request(&genl::family_by_name_request(seq, parse::IPVS_FAMILY), seq)?;
    wait_for("the kernel to load ip_vs", Duration::from_secs(10), || {
        Ok(module_loaded("ip_vs").then_some(()))
    })
    .with_context(|| format!("a lookup by name did not load ip_vs (errno {errno})"))?;
    println!("ipvs-absent: a lookup of \"IPVS\" by name loaded ip_vs (errno {errno}), as expected");

    let body = own.metrics()?;
    for line in [
        "dataplane_collector_source_available{collector=\"ipvs\"} 1",
        "dataplane_collector_scrape_success{collector=\"ipvs\"} 1",
        "ipvs_up{namespace=\"\"} 1",
        "ipvs_services{namespace=\"\"} 0",
    ] {
        if !body.contains(line) {
            bail!("after loading ip_vs: no `{line}` in\n{body}");
        }
    }
    let body = netns.metrics()?;
    for line in [
        "dataplane_collector_source_available{collector=\"ipvs\"} 1",
        // A namespace path that does not exist is absent, not a failure.
        "dataplane_collector_scrape_success{collector=\"ipvs\"} 1",
        "ipvs_up{namespace=\"/run/netns/other\"} 1",
        "ipvs_services{namespace=\"/run/netns/other\"} 0",
        "ipvs_up{namespace=\"/run/netns/missing\"} 0",
    ] {
        if !body.contains(line) {
            bail!("after loading ip_vs, with --ipvs.netns: no `{line}` in\n{body}");
        }
    }
    println!("ipvs-absent: with ip_vs loaded the same daemons report IPVS available, 0 services");
    Ok(())
}
