//! Metrics of the `conntrack` source (docs/metrics.md maps them to node_exporter's
//! `node_nf_conntrack_*`).
//!
//! One family per statistic, `conntrack_<name>_total{cpu}`, with the kernel's name of it (as
//! `conntrack -S` prints it): node_exporter's `node_nf_conntrack_stat_<name>` is the sum over
//! CPUs. A statistic the kernel did not send (the obsolete `searched`, `new`, `ignore`,
//! `delete`, `delete_list` on current kernels) has no family.

use super::Snapshot;
use super::parse::{CT_STATS, CpuStats, EXP_STATS, Stat};
use crate::exposition::{MetricType, Writer};

fn per_cpu(w: &mut Writer, stats: &[Stat], cpus: &[CpuStats]) {
    for (i, s) in stats.iter().enumerate() {
        if !cpus
            .iter()
            .any(|c| c.values.get(i).copied().flatten().is_some())
        {
            continue;
        }
        let name = format!("conntrack_{}_total", s.name);
        w.family(&name, s.help, MetricType::Counter);
        for c in cpus {
            if let Some(v) = c.values.get(i).copied().flatten() {
                w.sample(&name)
                    .label_u64("cpu", u64::from(c.cpu))
                    .value_u64(u64::from(v));
            }
        }
    }
}

pub fn encode(s: &Snapshot, w: &mut Writer) {
    w.family(
        "conntrack_entries",
        "Entries in the connection tracking table.",
        MetricType::Gauge,
    );
    w.sample("conntrack_entries")
        .value_u64(u64::from(s.entries));
    if let Some(max) = s.max_entries {
        w.family(
            "conntrack_max_entries",
            "Size limit of the connection tracking table (nf_conntrack_max).",
            MetricType::Gauge,
        );
        w.sample("conntrack_max_entries").value_u64(max);
    }
    per_cpu(w, CT_STATS, &s.cpus);
    per_cpu(w, EXP_STATS, &s.expect);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_statistics_have_no_family() {
        let mut values = vec![None; CT_STATS.len()];
        values[1] = Some(5);
        let snap = Snapshot {
            cpus: vec![
                CpuStats {
                    cpu: 0,
                    values: values.clone(),
                },
                CpuStats { cpu: 3, values },
            ],
            expect: vec![CpuStats {
                cpu: 0,
                values: vec![Some(1), Some(2), Some(3)],
            }],
            entries: 4,
            max_entries: None,
        };
        let mut w = Writer::new();
        encode(&snap, &mut w);
        let text = w.into_string();
        assert!(text.contains("conntrack_entries 4\n"), "{text}");
        assert!(!text.contains("conntrack_max_entries"), "{text}");
        assert!(
            text.contains("conntrack_found_total{cpu=\"3\"} 5\n"),
            "{text}"
        );
        assert!(!text.contains("conntrack_searched"), "{text}");
        assert!(
            text.contains("conntrack_expect_delete_total{cpu=\"0\"} 3\n"),
            "{text}"
        );
    }
}
