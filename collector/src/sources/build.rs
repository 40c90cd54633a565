//! How sources are described and built: each source's folder declares a [`Descriptor`] (its
//! name, default, flags, HTTP routes and constructor), [`super::ALL`] lists them, and the
//! daemon builds the enabled ones with a [`Context`] that makes the shared infrastructure
//! (the OVSDB monitor, values derived from the shared `--ovs.*` flags) once, when a source
//! first asks for it.

use crate::registry::{Registry, Routes, ShutdownHook, Source};
use clap::{ArgMatches, Args};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A source as the daemon knows it before it is built.
#[derive(Clone, Copy)]
pub struct Descriptor {
    /// `--collector.NAME` and the `collector` label.
    pub name: &'static str,
    /// What it reads, for `--help`.
    pub help: &'static str,
    /// Whether it runs without `--collector.NAME`.
    pub default_enabled: bool,
    /// Its HTTP endpoints and query parameters besides `/metrics`.
    pub routes: Routes,
    /// Adds its flags (`--collector.NAME.FLAG`): its clap `Args` struct's `augment_args`.
    pub flags: fn(clap::Command) -> clap::Command,
    /// Builds it from the parsed flags and adds it to the context's registry.
    pub build: fn(&ArgMatches, &mut Context<'_>) -> Result<(), BuildError>,
}

impl std::fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Descriptor")
            .field("name", &self.name)
            .field("default_enabled", &self.default_enabled)
            .finish_non_exhaustive()
    }
}

/// `flags` for a source without flags of its own.
pub fn no_flags(cmd: clap::Command) -> clap::Command {
    cmd
}

/// Why a source could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A flag's value, checked when the source is built (the message names the flag).
    #[error("{reason}")]
    Flag {
        collector: &'static str,
        flag: &'static str,
        reason: String,
    },
    /// A shared `--ovs.*` flag.
    #[error("{reason}")]
    SharedFlag { flag: &'static str, reason: String },
    /// The source's flags did not parse from the command line's matches.
    #[error("the {collector} collector's flags: {source}")]
    Args {
        collector: &'static str,
        #[source]
        source: clap::Error,
    },
}

/// Open vSwitch flags that several sources share: the run directory and the OVSDB monitor
/// (openflow, ovsdb and ebpf use the one monitor), and the pod attribution.
#[derive(Debug, Clone, Args)]
pub struct OvsArgs {
    /// Open vSwitch run directory, where ovs-vswitchd puts each bridge's <bridge>.mgmt socket.
    #[arg(
        long = "ovs.rundir",
        value_name = "DIR",
        default_value = "/var/run/openvswitch"
    )]
    pub rundir: PathBuf,

    /// ovsdb-server to monitor: unix:PATH or tcp:HOST:PORT [default: unix:<--ovs.rundir>/db.sock].
    #[arg(long = "ovs.db", value_name = "ENDPOINT")]
    pub db: Option<String>,

    /// Silence from ovsdb-server after which the daemon sends an echo probe; with no answer
    /// within as long again, the connection is dropped (ovs_ovsdb_up 0) and made anew.
    #[arg(long = "ovs.db-probe-interval", value_name = "DURATION", default_value = "10s", value_parser = crate::flagvalue::parse_duration)]
    pub db_probe_interval: Duration,

    /// Largest JSON-RPC message accepted from ovsdb-server; a larger one drops the connection.
    #[arg(
        long = "ovs.db-max-message-bytes",
        value_name = "BYTES",
        default_value_t = crate::ovsdb::proto::DEFAULT_MAX_MESSAGE
    )]
    pub db_max_message_bytes: usize,

    /// Map an Interface (or Port) external_ids key to a label, for CNIs without a built-in
    /// convention: KEY=pod and KEY=namespace name the pod; other labels go on
    /// ovs_interface_info (repeatable).
    #[arg(long = "ovs.external-id-label", value_name = "KEY=LABEL")]
    pub external_id_labels: Vec<String>,
}

impl OvsArgs {
    /// `--ovs.db`, or the socket in `--ovs.rundir`.
    pub fn db_endpoint(&self) -> Result<crate::ovsdb::DbEndpoint, BuildError> {
        match &self.db {
            Some(s) => {
                crate::ovsdb::DbEndpoint::parse(s).map_err(|reason| BuildError::SharedFlag {
                    flag: "--ovs.db",
                    reason,
                })
            }
            None => Ok(crate::ovsdb::DbEndpoint::Unix(self.rundir.join("db.sock"))),
        }
    }
}

/// Stand-ins for the kernel I/O of sources that cannot read from a path (IPVS reads a netlink
/// socket, eBPF the kernel's maps): one value per type, each a reader type the source declares
/// (such as `Arc<dyn sources::ipvs::Reader>`). A source whose reader is here reads through it
/// instead of the kernel; everything else about it (flags, encoding, status) is as in the
/// daemon. The daemon gives none; the golden `/metrics` test gives captured fixtures.
#[derive(Clone, Default)]
pub struct Readers {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Readers {
    /// Adds `reader`, replacing one of the same type.
    pub fn with<T: Send + Sync + 'static>(mut self, reader: T) -> Self {
        self.values.insert(TypeId::of::<T>(), Arc::new(reader));
        self
    }

    /// The reader of type `T`, if one was given.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("values", &self.values.len())
            .finish()
    }
}

/// What the constructors get: the shared flags, the registry to add to, and the shared
/// infrastructure, each made once on first use.
pub struct Context<'a> {
    ovs: &'a OvsArgs,
    registry: &'a mut Registry,
    ovsdb: Option<Arc<crate::ovsdb::Handle>>,
    shared: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    readers: Readers,
}

impl<'a> Context<'a> {
    pub fn new(ovs: &'a OvsArgs, registry: &'a mut Registry) -> Self {
        Context {
            ovs,
            registry,
            ovsdb: None,
            shared: HashMap::new(),
            readers: Readers::default(),
        }
    }

    /// Sources read through `readers` where it has their reader type (see [`Readers`]).
    pub fn with_readers(mut self, readers: Readers) -> Self {
        self.readers = readers;
        self
    }

    /// The stand-in reader of type `T` the context was given, if any: `None` in the daemon.
    pub fn reader<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.readers.get::<T>()
    }

    /// The shared `--ovs.*` flags.
    pub fn ovs(&self) -> &OvsArgs {
        self.ovs
    }

    /// `--ovs.rundir`.
    pub fn ovs_rundir(&self) -> &Path {
        &self.ovs.rundir
    }

    /// The OVSDB monitor, started (on the current tokio runtime) by the first source that
    /// asks.
    pub fn ovsdb(&mut self) -> Result<Arc<crate::ovsdb::Handle>, BuildError> {
        if let Some(h) = &self.ovsdb {
            return Ok(h.clone());
        }
        let handle = crate::ovsdb::Handle::spawn_with(
            self.ovs.db_endpoint()?,
            crate::ovsdb::client::Options {
                probe_interval: self.ovs.db_probe_interval,
                max_message_bytes: self.ovs.db_max_message_bytes,
            },
        );
        self.ovsdb = Some(handle.clone());
        Ok(handle)
    }

    /// A value several sources share (one per type), made by `make` from the shared flags
    /// the first time it is asked for.
    pub fn shared<T: Send + Sync + 'static>(
        &mut self,
        make: impl FnOnce(&OvsArgs) -> Result<T, BuildError>,
    ) -> Result<Arc<T>, BuildError> {
        if let Some(v) = self.shared.get(&TypeId::of::<T>())
            && let Ok(v) = v.clone().downcast::<T>()
        {
            return Ok(v);
        }
        let v = Arc::new(make(self.ovs)?);
        self.shared.insert(TypeId::of::<T>(), v.clone());
        Ok(v)
    }

    /// Adds a built source.
    pub fn add<S: Source>(&mut self, source: Arc<S>) {
        self.registry.add(source);
    }

    /// Runs `hook` when the daemon stops.
    pub fn on_shutdown(&mut self, hook: ShutdownHook) {
        self.registry.on_shutdown(hook);
    }
}

/// A source's `Args` struct from the command line's matches.
pub fn args<A: clap::FromArgMatches>(
    collector: &'static str,
    m: &ArgMatches,
) -> Result<A, BuildError> {
    A::from_arg_matches(m).map_err(|source| BuildError::Args { collector, source })
}

/// Builds the enabled sources of `all` into a registry that knows every one's routes; those
/// with a reader in `readers` read through it (the daemon gives none).
pub fn build_all(
    all: &[Descriptor],
    enabled: impl Fn(&str) -> bool,
    matches: &ArgMatches,
    ovs: &OvsArgs,
    readers: Readers,
) -> Result<Registry, BuildError> {
    let mut registry = Registry::new();
    for d in all {
        registry.declare(d.name, d.routes);
    }
    let mut ctx = Context::new(ovs, &mut registry).with_readers(readers);
    for d in all.iter().filter(|d| enabled(d.name)) {
        (d.build)(matches, &mut ctx)?;
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ovs() -> OvsArgs {
        OvsArgs {
            rundir: PathBuf::from("/nonexistent"),
            db: None,
            db_probe_interval: Duration::from_secs(10),
            db_max_message_bytes: 1 << 20,
            external_id_labels: Vec::new(),
        }
    }

    #[test]
    fn shared_values_are_made_once() {
        let ovs = ovs();
        let mut reg = Registry::new();
        let mut ctx = Context::new(&ovs, &mut reg);
        let mut made = 0;
        let a = ctx.shared(|_| {
            made += 1;
            Ok(7u32)
        });
        let b = ctx.shared(|_| {
            made += 1;
            Ok(8u32)
        });
        assert_eq!((a.ok().as_deref(), b.ok().as_deref()), (Some(&7), Some(&7)));
        assert_eq!(made, 1);
        let failed = ctx.shared::<u64>(|_| {
            Err(BuildError::SharedFlag {
                flag: "--x",
                reason: "bad".into(),
            })
        });
        assert!(failed.is_err());
        // A failure is not kept: the next ask tries again.
        assert_eq!(ctx.shared(|_| Ok(3u64)).ok().as_deref(), Some(&3));
    }

    #[test]
    fn ovsdb_endpoint_comes_from_the_shared_flags() {
        let mut o = ovs();
        assert!(matches!(
            o.db_endpoint(),
            Ok(crate::ovsdb::DbEndpoint::Unix(p)) if p == Path::new("/nonexistent/db.sock")
        ));
        o.db = Some("nope".into());
        assert!(matches!(
            o.db_endpoint(),
            Err(BuildError::SharedFlag {
                flag: "--ovs.db",
                ..
            })
        ));
    }
}
