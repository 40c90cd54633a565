//! `flows sync`: every node's flows into one file per node, like the k8s-ofparse monitor, so
//! `flows -i FILE` (or any tool that reads `ovs-ofctl dump-flows` text) can look at them.

use super::{FlowsError, source};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// A node's daemon (http://HOST:PORT, started with --web.enable-flow-api) (repeatable).
    #[arg(long = "node", value_name = "URL", required = true)]
    pub node: Vec<String>,

    /// Bridges to fetch from each node (repeatable) [default: every bridge].
    #[arg(short = 'b', long = "bridge", value_name = "NAME")]
    pub bridge: Vec<String>,

    /// Directory for the files: NODE.flows (NODE.BRIDGE.flows when a node has several).
    #[arg(long = "dir", value_name = "DIR", default_value = "flows")]
    pub dir: PathBuf,

    /// Keep the files current: fetch again after this long (e.g. 30s); without it, once.
    #[arg(long = "interval", value_name = "DURATION", value_parser = crate::flagvalue::parse_duration)]
    pub interval: Option<Duration>,

    /// How long to wait for each node.
    #[arg(long = "timeout", value_name = "DURATION", default_value = "30s", value_parser = crate::flagvalue::parse_duration)]
    pub timeout: Duration,
}

/// A file name made only of safe characters.
fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// Writes a file atomically (a reader never sees half a table).
fn write_atomic(path: &Path, text: &str) -> Result<(), FlowsError> {
    let tmp = path.with_extension("flows.tmp");
    let err = |source| FlowsError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// One round: fetch every node, write its files; returns (node, bridge, path) per file.
pub async fn sync_once(args: &SyncArgs) -> Result<Vec<(String, String, PathBuf)>, FlowsError> {
    std::fs::create_dir_all(&args.dir).map_err(|source| FlowsError::Write {
        path: args.dir.display().to_string(),
        source,
    })?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    let fetches = args
        .node
        .iter()
        .map(|n| source::fetch_node(n, &args.bridge, deadline));
    let results = futures_util::future::join_all(fetches).await;
    let mut written = Vec::new();
    let mut first_err = None;
    for (url, r) in args.node.iter().zip(results) {
        match r {
            Ok(bridges) => {
                let several = bridges.len() > 1;
                for b in bridges {
                    let name = if several {
                        format!("{}.{}.flows", file_part(&b.node), file_part(&b.bridge))
                    } else {
                        format!("{}.flows", file_part(&b.node))
                    };
                    let path = args.dir.join(name);
                    write_atomic(&path, &b.text)?;
                    written.push((b.node, b.bridge, path));
                }
            }
            Err(e) => {
                eprintln!("{url}: {e}");
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) if written.is_empty() => Err(e),
        _ => Ok(written),
    }
}

pub fn run(args: SyncArgs) -> Result<(), FlowsError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| FlowsError::Runtime { source })?;
    rt.block_on(async {
        loop {
            let written = sync_once(&args).await?;
            println!(
                "The flows from the following nodes are synchronized into files ({{node}} ==> {{file}}):"
            );
            for (node, bridge, path) in &written {
                println!(" - {node} ({bridge})  ==>  {}", path.display());
            }
            match args.interval {
                Some(i) => tokio::time::sleep(i).await,
                None => return Ok(()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_file_names() {
        assert_eq!(file_part("worker-1"), "worker-1");
        assert_eq!(file_part("../etc/x"), "_etc_x");
        assert_eq!(file_part("a b"), "a_b");
    }
}
