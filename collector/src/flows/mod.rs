//! `dataplane-collector flows`: parse, filter, group and draw OpenFlow tables.
//!
//! ```text
//! dataplane-collector flows -i dump.txt --filter 'nw_src~=10.0.0.5 and n_packets>0'
//! dataplane-collector flows --bridge br-int --format logic
//! dataplane-collector flows --node http://node-a:9477 --format json
//! dataplane-collector flows -i dump.txt --format graph -o pipeline.svg
//! dataplane-collector flows sync --node http://node-a:9477 --node http://node-b:9477 --dir /tmp/flows
//! dataplane-collector flows diff node-a.flows http://node-b:9477
//! ```
//!
//! Layout: [`source`] reads text (files, live bridges, other nodes); [`parse`] turns it into
//! typed flows (pure); [`filter`] selects; [`view`] writes; [`sync`] and [`diff`] work across
//! nodes; [`api`] is the format of the daemon's side of `--node`.

pub mod api;
pub mod diff;
pub mod filter;
pub mod parse;
pub mod source;
pub mod sync;
pub mod view;

use clap::{Args, Subcommand, ValueEnum};
use source::Source;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;
use view::Format;

/// Arguments of the `flows` subcommand.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FlowsArgs {
    #[command(subcommand)]
    pub command: Option<FlowsCommand>,
    #[command(flatten)]
    pub view: ViewArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum FlowsCommand {
    /// Write every node's flows into one file per node (like the k8s-ofparse monitor).
    Sync(sync::SyncArgs),
    /// Show which rules differ between two flow tables (files, nodes or bridges), ignoring
    /// counters.
    Diff(diff::DiffArgs),
}

/// Where flows are read from (any number of each).
#[derive(Debug, Clone, Default, Args)]
pub struct InputArgs {
    /// `ovs-ofctl dump-flows` or `ovs-dpctl dump-flows` text; `-` for standard input
    /// (repeatable).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Vec<String>,

    /// A local bridge, read live over its management socket in --ovs.rundir (repeatable).
    /// With --node: which bridges to ask the node for.
    #[arg(short = 'b', long = "bridge", value_name = "NAME")]
    pub bridge: Vec<String>,

    /// A switch to read live over OpenFlow 1.3: unix:PATH, tcp:HOST:PORT or HOST
    /// (repeatable).
    #[arg(long = "target", value_name = "TARGET")]
    pub target: Vec<String>,

    /// Another node's daemon (http://HOST:PORT, started with --web.enable-flow-api)
    /// (repeatable).
    #[arg(long = "node", value_name = "URL")]
    pub node: Vec<String>,

    /// Open vSwitch run directory, where each bridge's <bridge>.mgmt socket is.
    #[arg(
        long = "ovs.rundir",
        value_name = "DIR",
        default_value = "/var/run/openvswitch"
    )]
    pub ovs_rundir: PathBuf,

    /// How long to wait for a switch or a node.
    #[arg(long = "timeout", value_name = "DURATION", default_value = "30s", value_parser = crate::flagvalue::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub inputs: InputArgs,

    /// Keep the flows that pass, e.g. "nw_src~=10.0.0.5 and n_packets>0" (operators =, !=, <,
    /// >, ~=; and, or, not, parentheses; any match field, action or counter).
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// How to show the flows.
    #[arg(long = "format", value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Write here instead of standard output; with --format graph, a name ending in .svg is
    /// rendered by graphviz's `dot`.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Colors in the table view.
    #[arg(long = "color", value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    /// --format cookie: list each flow under its cookie and table.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Page the output through $PAGER (default `less -RS`) when writing to a terminal.
    #[arg(short = 'p', long = "paged")]
    pub paged: bool,

    /// Threads that parse [default: the CPUs, at most 8].
    #[arg(long = "threads", value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowsError {
    #[error("give flows to read: -i FILE, --bridge NAME, --target TARGET or --node URL")]
    NoInput,
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad --filter: {source}")]
    Filter {
        #[source]
        source: filter::FilterError,
    },
    #[error("target {target}: {reason}")]
    Target { target: String, reason: String },
    #[error(transparent)]
    Switch {
        #[from]
        source: crate::openflow::ClientError,
    },
    #[error("node {node}: {reason}")]
    Node { node: String, reason: String },
    #[error(
        "graphviz's `dot` is needed to render {path} (apt-get install graphviz); the DOT text is in {dot}"
    )]
    NoGraphviz { path: String, dot: String },
    #[error("dot failed on {path}: {reason}")]
    Graphviz { path: String, reason: String },
    #[error("{differences} rules differ")]
    Differ { differences: usize },
    #[error("cannot start the async runtime: {source}")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
}

/// Reads every input given; a failing one stops the command (its error names it).
pub fn load(inputs: &InputArgs) -> Result<Vec<Source>, FlowsError> {
    let mut out = Vec::new();
    for path in &inputs.input {
        out.push(source::read_input(path)?);
    }
    let live = !inputs.target.is_empty() || !inputs.node.is_empty();
    let bridges_live = if inputs.node.is_empty() {
        inputs.bridge.clone()
    } else {
        Vec::new()
    };
    if live || !bridges_live.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| FlowsError::Runtime { source })?;
        rt.block_on(async {
            let deadline = tokio::time::Instant::now() + inputs.timeout;
            for b in &bridges_live {
                let ep = source::bridge_endpoint(&inputs.ovs_rundir, b);
                let text = source::fetch_openflow(&ep, deadline).await?;
                out.push(Source {
                    name: b.clone(),
                    text,
                });
            }
            for t in &inputs.target {
                let ep = source::target_endpoint(t).await?;
                let text = source::fetch_openflow(&ep, deadline).await?;
                out.push(Source {
                    name: t.clone(),
                    text,
                });
            }
            for n in &inputs.node {
                for nb in source::fetch_node(n, &inputs.bridge, deadline).await? {
                    out.push(Source {
                        name: format!("{}/{}", nb.node, nb.bridge),
                        text: nb.text,
                    });
                }
            }
            Ok::<_, FlowsError>(())
        })?;
    }
    if out.is_empty()
        && inputs.input.is_empty()
        && inputs.bridge.is_empty()
        && inputs.target.is_empty()
        && inputs.node.is_empty()
    {
        return Err(FlowsError::NoInput);
    }
    Ok(out)
}

/// Prints the malformed lines of a source to standard error.
pub fn report_errors(name: &str, errors: &[parse::LineError], many: bool) {
    let mut err = std::io::stderr().lock();
    for e in errors.iter().take(50) {
        if many {
            let _ = writeln!(err, "{name}: {e}");
        } else {
            let _ = writeln!(err, "{e}");
        }
    }
    if errors.len() > 50 {
        let _ = writeln!(err, "{name}: {} more malformed lines", errors.len() - 50);
    }
    if !errors.is_empty() {
        let _ = writeln!(
            err,
            "{name}: {} malformed line{} skipped; the rest was processed",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        );
    }
}

/// Bytes of text parsed per parallel round (split across the threads).
const BLOCK: usize = 8 << 20;

/// Where the output goes: a file, standard output, or memory for the pager.
enum Sink {
    Mem(Vec<u8>),
    File(std::io::BufWriter<std::fs::File>),
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Mem(v) => v.write(b),
            Sink::File(f) => f.write(b),
            Sink::Stdout(s) => s.write(b),
        }
    }
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Mem(v) => v.write_all(b),
            Sink::File(f) => f.write_all(b),
            Sink::Stdout(s) => s.write_all(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Mem(_) => Ok(()),
            Sink::File(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
        }
    }
}

/// Runs the subcommand.
pub fn run(args: FlowsArgs) -> Result<(), FlowsError> {
    match args.command {
        Some(FlowsCommand::Sync(s)) => return sync::run(s),
        Some(FlowsCommand::Diff(d)) => return diff::run(d),
        None => {}
    }
    let v = args.view;
    let filter = v
        .filter
        .as_deref()
        .map(filter::Filter::parse)
        .transpose()
        .map_err(|source| FlowsError::Filter { source })?;
    let sources = load(&v.inputs)?;
    let many = sources.len() > 1;
    let keep = |f: &parse::Flow<'_>| filter.as_ref().is_none_or(|flt| flt.matches(f));

    let out_name = v
        .output
        .as_ref()
        .map_or_else(|| "standard output".to_owned(), |p| p.display().to_string());
    let write_err = |source: std::io::Error| FlowsError::Write {
        path: out_name.clone(),
        source,
    };
    let tty = std::io::stdout().is_terminal();
    let color = match v.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => v.output.is_none() && tty && std::env::var_os("NO_COLOR").is_none(),
    };
    let paged = v.paged && v.output.is_none() && tty;
    let threads = v
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)));
    let mut sink = match &v.output {
        _ if paged => Sink::Mem(Vec::new()),
        Some(p) if v.format != Format::Graph || p.extension().is_none_or(|e| e != "svg") => {
            Sink::File(std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(p).map_err(write_err)?,
            ))
        }
        _ => Sink::Stdout(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        )),
    };

    let result = (|| -> std::io::Result<Option<String>> {
        match v.format {
            // One pass, one flow in memory at a time.
            Format::Json | Format::Text => {
                let json = v.format == Format::Json;
                let mut buf = Vec::with_capacity(1 << 16);
                let mut first = true;
                if json {
                    buf.push(b'[');
                }
                for s in &sources {
                    let mut errors = Vec::new();
                    let mut io = Ok(());
                    parse::par_blocks(
                        &s.text,
                        threads,
                        BLOCK,
                        |part, offset| {
                            let mut out = Vec::new();
                            let mut errs = Vec::new();
                            parse::for_each_flow_from(part, offset, &mut errs, |f| {
                                if !keep(f) {
                                    return;
                                }
                                if json {
                                    if !out.is_empty() {
                                        out.extend_from_slice(b",\n");
                                    }
                                    view::json::write_flow(&mut out, f);
                                } else {
                                    out.extend_from_slice(f.orig.as_bytes());
                                    out.push(b'\n');
                                }
                            });
                            (out, errs)
                        },
                        |(out, errs)| {
                            errors.extend(errs);
                            if io.is_err() || out.is_empty() {
                                return;
                            }
                            if json {
                                buf.extend_from_slice(if first { b"\n" } else { b",\n" });
                            }
                            first = false;
                            buf.extend_from_slice(&out);
                            if buf.len() >= 1 << 16 {
                                io = sink.write_all(&buf);
                                buf.clear();
                            }
                        },
                    );
                    io?;
                    report_errors(&s.name, &errors, many);
                }
                if json {
                    buf.extend_from_slice(if first { b"]\n" } else { b"\n]\n" });
                }
                sink.write_all(&buf)?;
                Ok(None)
            }
            format => {
                let mut selected: Vec<(&str, Vec<parse::Flow<'_>>)> = Vec::new();
                for s in &sources {
                    let mut errors = Vec::new();
                    let flows = if filter.is_some() {
                        // Keep the lines that pass, then parse just those again: a filter
                        // that selects a few flows of 100k keeps memory small.
                        let mut lines = Vec::new();
                        parse::par_blocks(
                            &s.text,
                            threads,
                            BLOCK,
                            |part, offset| {
                                let mut kept = Vec::new();
                                let mut errs = Vec::new();
                                parse::for_each_flow_from(part, offset, &mut errs, |f| {
                                    if keep(f) {
                                        kept.push((f.line, f.orig));
                                    }
                                });
                                (kept, errs)
                            },
                            |(kept, errs)| {
                                lines.extend(kept);
                                errors.extend(errs);
                            },
                        );
                        lines
                            .into_iter()
                            .filter_map(|(n, l)| parse::parse_line(l, n).ok())
                            .collect()
                    } else {
                        let mut flows = Vec::new();
                        parse::par_blocks(
                            &s.text,
                            threads,
                            BLOCK,
                            |part, offset| {
                                let mut kept = Vec::new();
                                let mut errs = Vec::new();
                                for (i, line) in part.lines().enumerate() {
                                    if parse::is_noise(line) {
                                        continue;
                                    }
                                    match parse::parse_line(line, offset + i + 1) {
                                        Ok(f) => kept.push(f),
                                        Err(error) => errs.push(parse::LineError {
                                            line: offset + i + 1,
                                            error,
                                            text: line.to_owned(),
                                        }),
                                    }
                                }
                                (kept, errs)
                            },
                            |(kept, errs)| {
                                flows.extend(kept);
                                errors.extend(errs);
                            },
                        );
                        flows
                    };
                    report_errors(&s.name, &errors, many);
                    selected.push((s.name.as_str(), flows));
                }
                if format == Format::Graph {
                    let all: Vec<&parse::Flow<'_>> =
                        selected.iter().flat_map(|(_, f)| f.iter()).collect();
                    let name = selected
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join("+");
                    let dot = view::graph::dot(&all, &name);
                    if v.output
                        .as_ref()
                        .is_some_and(|p| p.extension().is_some_and(|e| e == "svg"))
                    {
                        return Ok(Some(dot));
                    }
                    sink.write_all(dot.as_bytes())?;
                    return Ok(None);
                }
                for (name, flows) in &selected {
                    let flows: Vec<&parse::Flow<'_>> = flows.iter().collect();
                    if many {
                        writeln!(sink, "== {name} ==")?;
                    }
                    match format {
                        Format::Table => view::table::render(&mut sink, &flows, color)?,
                        Format::Logic => view::logic::render(&mut sink, &flows)?,
                        Format::Cookie => view::cookie::render(&mut sink, &flows, v.verbose)?,
                        _ => view::tree::render(&mut sink, &flows)?,
                    }
                }
                Ok(None)
            }
        }
    })();
    let result = result.and_then(|svg| {
        sink.flush()?;
        Ok(svg)
    });
    match result {
        Ok(Some(dot)) => {
            let path = v
                .output
                .as_deref()
                .unwrap_or(std::path::Path::new("flows.svg"));
            render_svg(&dot, path)
        }
        Ok(None) => match sink {
            Sink::Mem(buf) => page(&buf).map_err(write_err),
            _ => Ok(()),
        },
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(write_err(e)),
    }
}

/// Shows `buf` through the pager; without one, writes it out.
fn page(buf: &[u8]) -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less -RS".to_owned());
    let mut words = pager.split_whitespace();
    let Some(prog) = words.next() else {
        return std::io::stdout().write_all(buf);
    };
    match Command::new(prog).args(words).stdin(Stdio::piped()).spawn() {
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                // The reader may quit early: a closed pipe is not an error.
                let _ = stdin.write_all(buf);
            }
            child.wait().map(|_| ())
        }
        Err(_) => std::io::stdout().write_all(buf),
    }
}

/// Renders DOT text to SVG with graphviz's `dot`.
pub fn render_svg(dot: &str, path: &std::path::Path) -> Result<(), FlowsError> {
    use std::process::{Command, Stdio};
    let spawned = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dot_path = path.with_extension("dot");
            std::fs::write(&dot_path, dot).map_err(|source| FlowsError::Write {
                path: dot_path.display().to_string(),
                source,
            })?;
            return Err(FlowsError::NoGraphviz {
                path: path.display().to_string(),
                dot: dot_path.display().to_string(),
            });
        }
        Err(e) => {
            return Err(FlowsError::Graphviz {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(dot.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| FlowsError::Graphviz {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(FlowsError::Graphviz {
            path: path.display().to_string(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
