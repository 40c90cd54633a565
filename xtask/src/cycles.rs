//! `cargo xtask cycles`: fails when modules of the collector's library depend on each other
//! in a cycle.
//!
//! Granularity: the crate root (`lib.rs`), each top-level module (`cli`, `flows`, `server`,
//! `openflow`…), and, inside [`SPLIT`] (`sources`), each child (`sources::ipvs`,
//! `sources::build`…) — the folder of one source is one node. Whatever a file refers to is
//! charged to the node of the file: `crate::…` paths, `super::…` and `self::…` (resolved,
//! inline `mod tests {}` blocks included), and relative paths through child modules
//! (`source::Source` in `flows/mod.rs`, `sources::build` in `lib.rs`). Comments and string
//! literals are skipped. Edges inside one node are not counted (a module and its own files
//! may refer to each other).
//!
//! (`cargo modules dependencies --acyclic` was tried: it checks the graph of items, where a
//! type and its own method already make a "cycle", so it cannot state this rule.)

use anyhow::{Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules split into their children.
pub const SPLIT: &[&str] = &["sources"];

/// The crate root's node.
const ROOT: &str = "crate";

/// One place a node refers to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub file: PathBuf,
    pub line: usize,
    pub path: String,
}

/// A cycle: the nodes that all reach each other (a strongly connected component), one way
/// around through them, and every edge between them with one use each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub members: Vec<String>,
    pub nodes: Vec<String>,
    pub edges: Vec<(String, String, Use)>,
}

/// Runs the check on the collector's library and prints what it found.
pub fn run(src: Option<&Path>) -> Result<()> {
    let src = src.map_or_else(
        || crate::workspace_root().join("collector/src"),
        Path::to_path_buf,
    );
    let files = read_tree(&src)?;
    let graph = graph(&files);
    let cycles = cycles(&graph);
    let nodes: BTreeSet<&String> = graph
        .keys()
        .chain(graph.values().flat_map(|m| m.keys()))
        .collect();
    if cycles.is_empty() {
        println!(
            "xtask cycles: no cycle between the {} modules of {} (granularity: top-level modules, {} split into children)",
            nodes.len(),
            src.display(),
            SPLIT.join(", ")
        );
        return Ok(());
    }
    for c in &cycles {
        println!(
            "module cycle among {}: {}",
            c.members.join(", "),
            c.nodes.join(" -> ")
        );
        for (from, to, u) in &c.edges {
            println!(
                "  {from} -> {to}: {}:{} ({})",
                u.file.display(),
                u.line,
                u.path
            );
        }
    }
    bail!("{} module cycle(s) in {}", cycles.len(), src.display())
}

/// Every `.rs` file of the library under `src` (not `main.rs` nor `bin/`), relative, with its
/// text.
fn read_tree(src: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let rel = path.strip_prefix(src)?.to_path_buf();
            if path.is_dir() {
                if rel != Path::new("bin") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") && rel != Path::new("main.rs") {
                out.push((rel, std::fs::read_to_string(&path)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The module path of a file: `lib.rs` → [], `a/mod.rs` and `a.rs` → [a], `a/b.rs` → [a, b].
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_owned());
        }
    }
    parts
}

/// The node a module path belongs to.
fn node_of(path: &[String], modules: &BTreeSet<Vec<String>>) -> String {
    let Some(first) = path.first() else {
        return ROOT.to_owned();
    };
    if !modules.contains(&vec![first.clone()]) {
        return ROOT.to_owned();
    }
    if SPLIT.contains(&first.as_str())
        && let Some(second) = path.get(1)
        && modules.contains(&vec![first.clone(), second.clone()])
    {
        return format!("{first}::{second}");
    }
    first.clone()
}

/// Node → node → the first use found of that edge.
pub type Graph = BTreeMap<String, BTreeMap<String, Use>>;

/// The dependency graph between nodes.
pub fn graph(files: &[(PathBuf, String)]) -> Graph {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(p, _)| module_of(p)).collect();
    let mut g = Graph::new();
    for (rel, text) in files {
        let module = module_of(rel);
        let from = node_of(&module, &modules);
        g.entry(from.clone()).or_default();
        for (line, path) in paths(&strip(text), &module, &modules) {
            let to = node_of(&path, &modules);
            if to != from {
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| Use {
                        file: rel.clone(),
                        line,
                        path: path.join("::"),
                    });
            }
        }
    }
    g
}

/// The text with comments and the contents of string and char literals blanked (newlines
/// kept, so line numbers hold).
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char(b.get(i.wrapping_sub(1)).copied())
        {
            // A raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push('"');
            for _ in i + 1..=j {
                out.push(' ');
            }
            out.pop();
            i = j + 1;
            while i < b.len() {
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    out.push('"');
                    for _ in 0..hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(b[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), else a lifetime.
            if next == Some('\\') {
                out.push('\'');
                i += 1;
                while i < b.len() && b[i] != '\'' {
                    out.push(' ');
                    i += 1;
                }
                out.push('\'');
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// A token of the stripped text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Star,
    Other(char),
}

fn tokens(text: &str) -> Vec<(usize, Tok)> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((line, Tok::Ident(b[start..i].iter().collect())));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push((line, Tok::Sep));
            i += 2;
        } else {
            out.push((
                line,
                match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    '*' => Tok::Star,
                    other => Tok::Other(other),
                },
            ));
            i += 1;
        }
    }
    out
}

/// The module paths (resolved from the crate root) that a file refers to, with their lines.
fn paths(
    text: &str,
    file_module: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Vec<(usize, Vec<String>)> {
    let toks = tokens(text);
    let mut out = Vec::new();
    // Inline modules: (name, brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let (line, tok) = &toks[i];
        match tok {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                while inline.last().is_some_and(|(_, d)| *d > depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some((_, Tok::Ident(name))), Some((_, Tok::Open))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
            }
            Tok::Ident(w) => {
                let after_sep = i > 0 && toks[i - 1].1 == Tok::Sep;
                let macro_var = i > 0 && toks[i - 1].1 == Tok::Other('$');
                let followed = toks.get(i + 1).is_some_and(|(_, t)| *t == Tok::Sep);
                if !after_sep && !macro_var && followed {
                    let mut here: Vec<String> = file_module.to_vec();
                    here.extend(inline.iter().map(|(n, _)| n.clone()));
                    let base: Option<Vec<String>> = match w.as_str() {
                        "crate" => Some(Vec::new()),
                        "self" => Some(here.clone()),
                        "super" => {
                            let mut p = here.clone();
                            p.pop();
                            Some(p)
                        }
                        _ => {
                            // A relative path through a child module of the file's module.
                            let mut p = file_module.to_vec();
                            p.push(w.clone());
                            (inline.is_empty() && modules.contains(&p))
                                .then_some(file_module.to_vec())
                        }
                    };
                    if let Some(base) = base {
                        let start = if matches!(w.as_str(), "crate" | "self" | "super") {
                            i + 2
                        } else {
                            i
                        };
                        let mut found = Vec::new();
                        let end = tree(&toks, start, base, &mut found);
                        out.extend(found.into_iter().map(|p| (*line, p)));
                        i = end.max(i + 1);
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Reads a path or use tree starting at `i` under `base`; `super` segments go up. Returns the
/// index after it.
fn tree(
    toks: &[(usize, Tok)],
    mut i: usize,
    mut base: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match toks.get(i).map(|(_, t)| t) {
            Some(Tok::Ident(w)) if w == "super" => {
                base.pop();
            }
            Some(Tok::Ident(w)) if w == "self" => {}
            Some(Tok::Ident(w)) => base.push(w.clone()),
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match toks.get(i).map(|(_, t)| t) {
                        Some(Tok::Close) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        None => return i,
                        _ => i = tree(toks, i, base.clone(), out),
                    }
                }
            }
            Some(Tok::Star) => {
                out.push(base);
                return i + 1;
            }
            _ => {
                out.push(base);
                return i;
            }
        }
        i += 1;
        if toks.get(i).map(|(_, t)| t) == Some(&Tok::Sep) {
            i += 1;
        } else {
            out.push(base);
            return i;
        }
    }
}

/// Every cycle: one per strongly connected component of more than one node, with a path
/// around it.
pub fn cycles(g: &Graph) -> Vec<Cycle> {
    let nodes: Vec<&String> = g
        .keys()
        .chain(g.values().flat_map(|m| m.keys()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in g.get(&n).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reaches[n].contains(*n) {
            continue;
        }
        let scc: BTreeSet<String> = reaches[n]
            .iter()
            .filter(|m| reaches.get(m).is_some_and(|r| r.contains(*n)))
            .cloned()
            .collect();
        done.extend(scc.iter().cloned());
        // A shortest way back from n to itself inside the component.
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([(*n).clone()]);
        let mut back = None;
        while let Some(cur) = queue.pop_front() {
            for next in g.get(&cur).into_iter().flat_map(|m| m.keys()) {
                if !scc.contains(next) {
                    continue;
                }
                if next == *n {
                    back = Some(cur.clone());
                    break;
                }
                if !prev.contains_key(next) {
                    prev.insert(next.clone(), cur.clone());
                    queue.push_back(next.clone());
                }
            }
            if back.is_some() {
                break;
            }
        }
        let mut ring = vec![(*n).clone()];
        let mut cur = back.unwrap_or_else(|| (*n).clone());
        while cur != **n {
            ring.push(cur.clone());
            cur = prev.get(&cur).cloned().unwrap_or_else(|| (*n).clone());
        }
        ring[1..].reverse();
        ring.push((*n).clone());
        let edges = scc
            .iter()
            .flat_map(|a| {
                g.get(a)
                    .into_iter()
                    .flatten()
                    .filter(|(b, _)| scc.contains(*b))
                    .map(move |(b, u)| (a.clone(), b.clone(), u.clone()))
            })
            .collect();
        out.push(Cycle {
            members: scc.into_iter().collect(),
            nodes: ring,
            edges,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        list.iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect()
    }

    fn edges(g: &Graph) -> Vec<(String, String)> {
        g.iter()
            .flat_map(|(a, m)| m.keys().map(move |b| (a.clone(), b.clone())))
            .collect()
    }

    #[test]
    fn finds_a_cycle_and_names_the_uses() {
        let f = files(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("a.rs", "use crate::b::Thing;\n"),
            ("b/mod.rs", "pub mod inner;\n"),
            ("b/inner.rs", "fn f() { crate::c::g(); }\n"),
            ("c.rs", "\n\nuse crate::{a::X, b};\n"),
        ]);
        let g = graph(&f);
        let c = cycles(&g);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].nodes, vec!["a", "b", "c", "a"]);
        assert_eq!(c[0].members, vec!["a", "b", "c"]);
        let (_, _, u) = &c[0].edges[2];
        assert_eq!((u.file.as_path(), u.line), (Path::new("c.rs"), 3));
    }

    #[test]
    fn no_cycle_without_one_and_no_false_edges() {
        let f = files(&[
            (
                "lib.rs",
                "pub mod a;\npub mod b;\npub mod sources;\nfn x() { sources::one::f(); a::g(); }\n",
            ),
            (
                "a.rs",
                "//! see crate::b\nuse crate::sources::two;\nconst S: &str = \"crate::b::x\";\nconst R: &str = r#\"crate::b\"#;\nfn l<'a>(x: &'a str) -> char { 'c' }\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
            ),
            (
                "b.rs",
                "/* crate::a */ use crate::sources::{one, two::T};\n",
            ),
            ("sources/mod.rs", "pub mod one;\npub mod two;\n"),
            ("sources/one.rs", "use super::two::T;\n"),
            (
                "sources/two.rs",
                "pub struct T;\nmacro_rules! m { () => { $crate::a::f() } }\n",
            ),
        ]);
        let g = graph(&f);
        assert!(cycles(&g).is_empty(), "{:?}", cycles(&g));
        let mut e = edges(&g);
        e.sort();
        assert_eq!(
            e,
            [
                ("a", "sources::two"),
                ("b", "sources::one"),
                ("b", "sources::two"),
                ("crate", "a"),
                ("crate", "sources::one"),
                ("sources::one", "sources::two"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn super_from_a_child_of_a_split_module_reaches_the_parent() {
        let f = files(&[
            ("lib.rs", "pub mod sources;\n"),
            (
                "sources/mod.rs",
                "pub mod one;\npub const ALL: u8 = one::X;\n",
            ),
            (
                "sources/one/mod.rs",
                "pub mod deep;\npub const X: u8 = 1;\n",
            ),
            ("sources/one/deep.rs", "use super::super::ALL;\n"),
        ]);
        let c = cycles(&graph(&f));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].nodes, vec!["sources", "sources::one", "sources"]);
    }

    #[test]
    fn the_collector_has_no_cycle() {
        let src = crate::workspace_root().join("collector/src");
        let files = read_tree(&src).expect("collector/src");
        assert!(files.len() > 20);
        let c = cycles(&graph(&files));
        assert!(c.is_empty(), "{c:#?}");
    }
}
