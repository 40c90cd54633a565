//! `--format graph`: the OpenFlow pipeline as a DOT graph. A node per table (with its flow
//! count), edges for `goto_table`, `resubmit` and `ct(table=…)` (labelled with how many flows
//! take them), and the exits: output ports, groups, the controller, `drop`. Rendered to SVG by
//! graphviz's `dot` when the output file ends in `.svg`.

use crate::flows::parse::{Flow, Kv, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Table(u128),
    Port(String),
    Group(String),
    Drop,
}

impl Node {
    fn id(&self) -> String {
        match self {
            Node::Table(t) => format!("table_{t}"),
            Node::Port(p) => format!("port_{}", sanitize(p)),
            Node::Group(g) => format!("group_{}", sanitize(g)),
            Node::Drop => "drop".to_owned(),
        }
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn value_text(v: &Value<'_>) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Str(s) => (*s).to_owned(),
        Value::Field(f) => f.field.to_owned(),
        Value::Map(m) if m.len() == 1 => value_text(&m[0].value),
        _ => "?".to_owned(),
    }
}

fn get<'v>(items: &'v [Kv<'v>], key: &str) -> Option<&'v Value<'v>> {
    items.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// The edges one flow's actions make, from its table.
pub fn edges(f: &Flow<'_>, table: u128, out: &mut Vec<(Node, &'static str)>) {
    walk(&f.actions, table, out);
    if f.actions.is_empty() {
        out.push((Node::Drop, "drop"));
    }
}

fn walk(actions: &[Kv<'_>], table: u128, out: &mut Vec<(Node, &'static str)>) {
    for kv in actions {
        match (kv.key.to_ascii_lowercase().as_str(), &kv.value) {
            ("goto_table", Value::Int(t)) => out.push((Node::Table(*t), "goto_table")),
            ("resubmit", Value::Map(m)) => {
                let t = match get(m, "table") {
                    Some(Value::Int(t)) => *t,
                    _ => table,
                };
                out.push((Node::Table(t), "resubmit"));
            }
            ("ct", Value::Map(m)) => {
                if let Some(Value::Int(t)) = get(m, "table") {
                    out.push((Node::Table(*t), "ct"));
                }
            }
            ("output", v) => out.push((Node::Port(value_text(v)), "output")),
            ("controller", _) => out.push((Node::Port("CONTROLLER".to_owned()), "controller")),
            ("enqueue", Value::Map(m)) => {
                if let Some(p) = get(m, "port") {
                    out.push((Node::Port(value_text(p)), "enqueue"));
                }
            }
            ("group", v) => out.push((Node::Group(value_text(v)), "group")),
            ("drop", _) => out.push((Node::Drop, "drop")),
            ("clone" | "write_actions", Value::List(inner)) => walk(inner, table, out),
            ("learn", Value::List(inner)) => {
                if let Some(Value::Int(t)) = get(inner, "table") {
                    out.push((Node::Table(*t), "learn"));
                }
            }
            _ => {}
        }
    }
}

/// The DOT text for the flows.
pub fn dot(flows: &[&Flow<'_>], name: &str) -> String {
    let mut tables: BTreeMap<u128, u64> = BTreeMap::new();
    let mut links: BTreeMap<(u128, Node, &'static str), u64> = BTreeMap::new();
    let mut scratch = Vec::new();
    for f in flows {
        let t = f.table();
        *tables.entry(t).or_default() += 1;
        scratch.clear();
        edges(f, t, &mut scratch);
        scratch.sort();
        scratch.dedup();
        for (node, how) in scratch.drain(..) {
            *links.entry((t, node, how)).or_default() += 1;
        }
    }
    let mut s = String::new();
    s.push_str(&format!("digraph \"{}\" {{\n", escape(name)));
    s.push_str("  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n");
    let mut exits: BTreeMap<Node, ()> = BTreeMap::new();
    for (t, n) in &tables {
        s.push_str(&format!(
            "  {} [shape=box, style=rounded, label=\"table {t}\\n{n} flow{}\"];\n",
            Node::Table(*t).id(),
            if *n == 1 { "" } else { "s" }
        ));
    }
    for (_, node, _) in links.keys() {
        match node {
            Node::Table(t) if !tables.contains_key(t) => {
                exits.insert(node.clone(), ());
            }
            Node::Table(_) => {}
            _ => {
                exits.insert(node.clone(), ());
            }
        }
    }
    for node in exits.keys() {
        let (shape, label) = match node {
            Node::Table(t) => ("box", format!("table {t}\\n(empty)")),
            Node::Port(p) => ("ellipse", format!("output {}", escape(p))),
            Node::Group(g) => ("diamond", format!("group {}", escape(g))),
            Node::Drop => ("octagon", "drop".to_owned()),
        };
        s.push_str(&format!(
            "  {} [shape={shape}, label=\"{label}\"];\n",
            node.id()
        ));
    }
    for ((from, node, how), n) in &links {
        let style = match *how {
            "learn" => ", style=dashed",
            "ct" => ", color=blue",
            "drop" => ", color=red",
            _ => "",
        };
        s.push_str(&format!(
            "  {} -> {} [label=\"{how} ({n})\"{style}];\n",
            Node::Table(*from).id(),
            node.id()
        ));
    }
    s.push_str("}\n");
    s
}

pub fn render<W: Write>(w: &mut W, flows: &[&Flow<'_>], name: &str) -> io::Result<()> {
    w.write_all(dot(flows, name).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::parse::parse_text;

    #[test]
    fn tables_edges_and_exits() {
        let text = "\
table=0,priority=10,in_port=1,actions=resubmit(,1)
table=0,priority=10,in_port=2,actions=goto_table:1
table=0,priority=0,actions=drop
table=1,priority=10,ip,actions=ct(table=2,zone=1)
table=1,priority=5,actions=group:7,output:3
table=2,priority=1,actions=NORMAL,learn(table=5,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])
";
        let p = parse_text(text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let flows: Vec<_> = p.flows.iter().collect();
        let d = dot(&flows, "br-int");
        for want in [
            "table_0 [shape=box, style=rounded, label=\"table 0\\n3 flows\"];",
            "table_0 -> table_1 [label=\"resubmit (1)\"];",
            "table_0 -> table_1 [label=\"goto_table (1)\"];",
            "table_0 -> drop [label=\"drop (1)\", color=red];",
            "table_1 -> table_2 [label=\"ct (1)\", color=blue];",
            "table_1 -> group_7 [label=\"group (1)\"];",
            "table_1 -> port_3 [label=\"output (1)\"];",
            "table_2 -> port_NORMAL [label=\"output (1)\"];",
            "table_2 -> table_5 [label=\"learn (1)\", style=dashed];",
            "table_5 [shape=box, label=\"table 5\\n(empty)\"];",
        ] {
            assert!(d.contains(want), "missing {want} in\n{d}");
        }
    }
}
