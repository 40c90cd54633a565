//! Root-only: a rich set of flows (every match field and action we claim to write like
//! `ovs-ofctl`) installed in a real ovs-vswitchd and read back both ways. With
//! `DPC_UPDATE_FIXTURES=1` the raw replies and ovs-ofctl's text are saved as fixtures for the
//! collector's pure tests (`collector/tests/flow_fixtures.rs`).

use anyhow::{Context, Result, bail};
use dataplane_collector::openflow::message::{FlowDecoder, MultipartType};
use dataplane_collector::openflow::{Client, Endpoint};
use std::collections::BTreeMap;
use std::path::PathBuf;
use testbed::ofctl;
use testbed::ovs::Ovs;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/fixtures")
}

pub fn corpus() -> Result<Vec<String>> {
    let text = std::fs::read_to_string(fixtures().join("flow-corpus.txt"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

#[test]
fn match_and_actions_text_equal_ovs_ofctl() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    let br = format!("br{}", testbed::topology::unique_tag());
    ovs.add_bridge(&br)?;
    ovs.add_group(&br, "group_id=1,type=all,bucket=actions=output:1")?;
    ovs.ofctl(
        &["-O", "OpenFlow13"],
        "add-meter",
        &br,
        &["meter=1,kbps,band=type=drop,rate=1000"],
    )?;
    let mut failed = Vec::new();
    for flow in corpus()? {
        if let Err(e) = ovs.ofctl(&["-O", "OpenFlow13"], "add-flow", &br, &[&flow]) {
            failed.push(format!("{flow}: {e}"));
        }
    }
    if !failed.is_empty() {
        bail!("ovs-ofctl refused corpus flows:\n{}", failed.join("\n"));
    }

    let of13 = ovs.ofctl(&["-O", "OpenFlow13"], "dump-flows", &br, &[])?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bodies: Vec<Vec<u8>> = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut c = Client::connect(&Endpoint::Unix(ovs.mgmt(&br)), deadline).await?;
        let mut bodies = Vec::new();
        c.multipart(MultipartType::Flow, &mut |b| {
            bodies.push(b.to_vec());
            Ok(())
        })
        .await?;
        anyhow::Ok(bodies)
    })?;

    if std::env::var("DPC_UPDATE_FIXTURES").is_ok_and(|v| v == "1") {
        let mut bin = Vec::new();
        for b in &bodies {
            bin.extend_from_slice(&(b.len() as u32).to_be_bytes());
            bin.extend_from_slice(b);
        }
        std::fs::write(fixtures().join("flow-corpus.of13-flow-stats.bin"), &bin)?;
        std::fs::write(fixtures().join("flow-corpus.dump-flows-of13.txt"), &of13)?;
    }

    let mut decoder = FlowDecoder::new(true);
    let mut ours = dataplane_collector::openflow::FlowTable::default();
    for b in &bodies {
        decoder
            .decode(b, &mut ours)
            .context("decoding the switch's reply")?;
    }
    let key = |table: u8, priority: u16, cookie: u64| (table, priority, cookie);
    // The match is printed the same whatever the OpenFlow version; OpenFlow 1.0 (ovs-ofctl's
    // default) cannot show flows with OpenFlow 1.1+ instructions at all, so 1.3 is compared.
    let matches: BTreeMap<_, _> = ofctl::parse_flows(&of13)?
        .into_iter()
        .map(|f| (key(f.table, f.priority, f.cookie), f.matches))
        .collect();
    let actions: BTreeMap<_, _> = ofctl::parse_flows(&of13)?
        .into_iter()
        .map(|f| (key(f.table, f.priority, f.cookie), f.actions))
        .collect();
    assert_eq!(ours.len(), matches.len(), "flow count");
    let mut diffs = Vec::new();
    for f in &ours {
        let k = key(f.table_id, f.priority, f.cookie);
        let want_match = matches
            .get(&k)
            .with_context(|| format!("ovs-ofctl lacks {k:?}"))?;
        if f.match_text != want_match.as_str() {
            diffs.push(format!(
                "match  {k:?}\n  ours:     {}\n  ovs-ofctl: {want_match}",
                f.match_text
            ));
        }
        let want_actions = actions
            .get(&k)
            .with_context(|| format!("ovs-ofctl lacks {k:?}"))?;
        let got = f.actions.unwrap_or("");
        if got != want_actions {
            diffs.push(format!(
                "actions {k:?}\n  ours:     {got}\n  ovs-ofctl: {want_actions}"
            ));
        }
    }
    if !diffs.is_empty() {
        bail!("{} differences:\n{}", diffs.len(), diffs.join("\n"));
    }
    Ok(())
}
