//! The views of `--format`.

pub mod cookie;
pub mod graph;
pub mod json;
pub mod logic;
pub mod table;
pub mod tree;

use clap::ValueEnum;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, colored on a terminal.
    Table,
    /// An array of {"orig","info","match","actions"}, as OVS's Python `ovs.flow` builds it.
    Json,
    /// The flows as given (after the filter): ovs-ofctl text.
    Text,
    /// Flows grouped by table, priority and match shape, with counts.
    Logic,
    /// Flows grouped by cookie, then table.
    Cookie,
    /// The pipeline as a DOT graph (SVG with `-o FILE.svg` when graphviz is installed).
    Graph,
    /// Datapath flows as a tree of recirculations.
    Tree,
}
