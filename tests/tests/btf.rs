//! The eBPF source's BTF reader on this kernel's own `/sys/kernel/btf/vmlinux`: the members of
//! `enum skb_drop_reason` it reads equal the `kfree_skb` tracepoint's table of reason names
//! (its `format` file, which the kernel generates from the same enum), value for value. Root:
//! tracefs is mounted if it is not.

use anyhow::{Context, Result, bail};
use dataplane_collector::sources::ebpf::btf::Btf;
use std::collections::BTreeMap;
use std::path::Path;

/// `{ 2, "NOT_SPECIFIED" }, ...` of the tracepoint's print format.
fn tracepoint_reasons(format: &str) -> Result<BTreeMap<i64, String>> {
    let table = format
        .split("__print_symbolic(REC->reason,")
        .nth(1)
        .context("no __print_symbolic of the reason in the format")?;
    let mut out = BTreeMap::new();
    for item in table.split('{').skip(1) {
        let Some((num, rest)) = item.split_once(',') else {
            continue;
        };
        let Some(name) = rest.split('"').nth(1) else {
            continue;
        };
        out.insert(num.trim().parse()?, name.to_owned());
    }
    Ok(out)
}

#[test]
fn skb_drop_reasons_equal_the_kfree_skb_tracepoint() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let vmlinux = Path::new("/sys/kernel/btf/vmlinux");
    if !vmlinux.exists() {
        bail!("this kernel has no BTF");
    }
    let tracing = Path::new("/sys/kernel/tracing");
    let format = tracing.join("events/skb/kfree_skb/format");
    if !format.exists() {
        let st = std::process::Command::new("mount")
            .args(["-t", "tracefs", "tracefs"])
            .arg(tracing)
            .status()?;
        if !st.success() {
            bail!("cannot mount tracefs");
        }
    }
    let want = tracepoint_reasons(&std::fs::read_to_string(&format)?)?;
    assert!(
        want.len() > 20,
        "only {} reasons in the tracepoint",
        want.len()
    );
    let btf = Btf::parse(&std::fs::read(vmlinux)?, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let got: BTreeMap<i64, String> = btf
        .enum_values("skb_drop_reason")
        .context("no enum skb_drop_reason in vmlinux's BTF")?
        .into_iter()
        .filter_map(|(name, v)| {
            name.strip_prefix("SKB_DROP_REASON_")
                .map(|n| (v, n.to_owned()))
        })
        .collect();
    // The tracepoint lists every reason (and the end marker, MAX) but the subsystem mask.
    let got: BTreeMap<i64, String> = got
        .into_iter()
        .filter(|(_, n)| n != "SUBSYS_MASK")
        .collect();
    assert_eq!(got, want);
    // And the struct offsets the drop program will need are there.
    for (s, m) in [("sk_buff", "dev"), ("net_device", "ifindex")] {
        assert!(
            btf.member_offset(s, m).is_some(),
            "no {s}.{m} in vmlinux's BTF"
        );
    }
    println!("{} drop reasons equal the tracepoint's", got.len());
    Ok(())
}
