//! `flows diff A B`: which rules differ between two flow tables. A rule is identified by its
//! table, priority and match (whatever order the match was written in); counters, durations and
//! ages are ignored. Reported: rules only in A (removed), only in B (added), and rules in both
//! whose actions (or cookie) changed.

use super::{FlowsError, InputArgs, parse};
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The first table: a file, `-`, a node (http://HOST:PORT), a switch (unix:PATH,
    /// tcp:HOST:PORT) or a local bridge name.
    pub a: String,
    /// The second table, in the same forms.
    pub b: String,

    /// Compare only the flows that pass this filter.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// With nodes: the bridge to compare [default: the node's only bridge].
    #[arg(long = "bridge", value_name = "NAME")]
    pub bridge: Option<String>,

    /// Open vSwitch run directory (for local bridge names).
    #[arg(
        long = "ovs.rundir",
        value_name = "DIR",
        default_value = "/var/run/openvswitch"
    )]
    pub ovs_rundir: std::path::PathBuf,
}

/// What identifies a rule: table, priority, and the match items sorted.
pub type RuleKey = (u128, u128, String);

/// The match items of a flow, sorted, without priority/table/cookie.
pub fn match_key(f: &parse::Flow<'_>) -> String {
    let mut items: Vec<&str> = Vec::new();
    let b = f.match_text.as_bytes();
    let mut depth = 0usize;
    let mut start = 0;
    for i in 0..=b.len() {
        if i == b.len() || (b[i] == b',' && depth == 0) {
            let item = &f.match_text[start..i];
            let name = item.split(['=', ':']).next().unwrap_or("");
            if !item.is_empty() && !matches!(name, "priority" | "table" | "cookie") {
                items.push(item);
            }
            start = i + 1;
        } else if b[i] == b'(' {
            depth += 1;
        } else if b[i] == b')' {
            depth = depth.saturating_sub(1);
        }
    }
    items.sort_unstable();
    items.join(",")
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Removed {
        key: RuleKey,
        actions: String,
    },
    Added {
        key: RuleKey,
        actions: String,
    },
    Changed {
        key: RuleKey,
        from: String,
        to: String,
    },
}

fn rules<'a>(flows: &[&'a parse::Flow<'a>]) -> BTreeMap<RuleKey, (u128, &'a str)> {
    flows
        .iter()
        .map(|f| {
            (
                (f.table(), f.priority(), match_key(f)),
                (f.cookie(), f.actions_text),
            )
        })
        .collect()
}

/// The differences from `a` to `b`, in rule order.
pub fn diff(a: &[&parse::Flow<'_>], b: &[&parse::Flow<'_>]) -> Vec<Change> {
    let (ra, rb) = (rules(a), rules(b));
    let mut out = Vec::new();
    for (k, (cookie_a, act_a)) in &ra {
        match rb.get(k) {
            None => out.push(Change::Removed {
                key: k.clone(),
                actions: (*act_a).to_owned(),
            }),
            Some((cookie_b, act_b)) if act_a != act_b || cookie_a != cookie_b => {
                let show = |c: u128, a: &str| {
                    if cookie_a == cookie_b {
                        a.to_owned()
                    } else {
                        format!("{a} (cookie={c:#x})")
                    }
                };
                out.push(Change::Changed {
                    key: k.clone(),
                    from: show(*cookie_a, act_a),
                    to: show(*cookie_b, act_b),
                });
            }
            Some(_) => {}
        }
    }
    for (k, (_, act_b)) in &rb {
        if !ra.contains_key(k) {
            out.push(Change::Added {
                key: k.clone(),
                actions: (*act_b).to_owned(),
            });
        }
    }
    out.sort_by(|x, y| key_of(x).cmp(key_of(y)));
    out
}

fn key_of(c: &Change) -> &RuleKey {
    match c {
        Change::Removed { key, .. } | Change::Added { key, .. } | Change::Changed { key, .. } => {
            key
        }
    }
}

fn rule_text(k: &RuleKey) -> String {
    let (t, p, m) = k;
    if m.is_empty() {
        format!("table={t} priority={p}")
    } else {
        format!("table={t} priority={p} {m}")
    }
}

/// The report, like a unified diff's markers.
pub fn render(changes: &[Change], a: &str, b: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "--- {a}\n+++ {b}");
    let (mut added, mut removed, mut changed) = (0, 0, 0);
    for c in changes {
        match c {
            Change::Removed { key, actions } => {
                removed += 1;
                let _ = writeln!(s, "- {} actions={actions}", rule_text(key));
            }
            Change::Added { key, actions } => {
                added += 1;
                let _ = writeln!(s, "+ {} actions={actions}", rule_text(key));
            }
            Change::Changed { key, from, to } => {
                changed += 1;
                let _ = writeln!(
                    s,
                    "~ {}\n    - actions={from}\n    + actions={to}",
                    rule_text(key)
                );
            }
        }
    }
    let _ = writeln!(s, "{removed} removed, {added} added, {changed} changed");
    s
}

fn input_for(spec: &str, args: &DiffArgs) -> InputArgs {
    let mut i = InputArgs {
        ovs_rundir: args.ovs_rundir.clone(),
        timeout: std::time::Duration::from_secs(30),
        ..InputArgs::default()
    };
    if spec.starts_with("http://") || spec.starts_with("https://") {
        i.node.push(spec.to_owned());
        i.bridge.extend(args.bridge.clone());
    } else if spec.starts_with("unix:") || spec.starts_with("tcp:") {
        i.target.push(spec.to_owned());
    } else if spec == "-" || std::path::Path::new(spec).exists() {
        i.input.push(spec.to_owned());
    } else {
        i.bridge.push(spec.to_owned());
    }
    i
}

fn load_one(spec: &str, args: &DiffArgs) -> Result<String, FlowsError> {
    let sources = super::load(&input_for(spec, args))?;
    match sources.as_slice() {
        [one] => Ok(one.text.clone()),
        [] => Err(FlowsError::Node {
            node: spec.into(),
            reason: "no bridge".into(),
        }),
        many => Err(FlowsError::Node {
            node: spec.into(),
            reason: format!(
                "{} bridges ({}); choose one with --bridge",
                many.len(),
                many.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

pub fn run(args: DiffArgs) -> Result<(), FlowsError> {
    let filter = args
        .filter
        .as_deref()
        .map(super::filter::Filter::parse)
        .transpose()
        .map_err(|source| FlowsError::Filter { source })?;
    let ta = load_one(&args.a, &args)?;
    let tb = load_one(&args.b, &args)?;
    let (pa, pb) = (parse::parse_text(&ta), parse::parse_text(&tb));
    super::report_errors(&args.a, &pa.errors, true);
    super::report_errors(&args.b, &pb.errors, true);
    let keep = |f: &&parse::Flow<'_>| filter.as_ref().is_none_or(|flt| flt.matches(f));
    let fa: Vec<_> = pa.flows.iter().filter(keep).collect();
    let fb: Vec<_> = pb.flows.iter().filter(keep).collect();
    let changes = diff(&fa, &fb);
    print!("{}", render(&changes, &args.a, &args.b));
    if changes.is_empty() {
        Ok(())
    } else {
        Err(FlowsError::Differ {
            differences: changes.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_removed_changed_ignoring_counters_and_order() {
        let a = "\
 cookie=0x1, duration=5s, table=0, n_packets=10, n_bytes=100, priority=10,in_port=1,dl_src=02:00:00:00:00:01 actions=resubmit(,1)
 cookie=0x1, duration=5s, table=0, n_packets=0, n_bytes=0, priority=0 actions=drop
 cookie=0x1, duration=5s, table=1, n_packets=0, n_bytes=0, priority=5,ip actions=output:1
";
        let b = "\
table=0,priority=10,dl_src=02:00:00:00:00:01,in_port=1,actions=resubmit(,1)
 cookie=0x1, duration=9s, table=1, n_packets=7, n_bytes=70, priority=5,ip actions=output:2
 cookie=0x1, duration=9s, table=1, n_packets=7, n_bytes=70, priority=6,ipv6 actions=drop
";
        let (pa, pb) = (parse::parse_text(a), parse::parse_text(b));
        let fa: Vec<_> = pa.flows.iter().collect();
        let fb: Vec<_> = pb.flows.iter().collect();
        let changes = diff(&fa, &fb);
        // Line 1 of b is line 1 of a in add-flow syntax with its match reordered and a cookie of
        // 0: only the cookie differs.
        assert_eq!(changes.len(), 4, "{changes:?}");
        let text = render(&changes, "a", "b");
        let want = "\
--- a
+++ b
- table=0 priority=0 actions=drop
~ table=0 priority=10 dl_src=02:00:00:00:00:01,in_port=1
    - actions=resubmit(,1) (cookie=0x1)
    + actions=resubmit(,1) (cookie=0x0)
~ table=1 priority=5 ip
    - actions=output:1
    + actions=output:2
+ table=1 priority=6 ipv6 actions=drop
1 removed, 1 added, 2 changed
";
        assert_eq!(text, want);
    }
}
