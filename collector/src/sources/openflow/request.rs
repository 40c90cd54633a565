//! What an HTTP request asks of the `openflow` source: a slice (the seed-compatible `/ports`,
//! `/flows` and `/groups` endpoints read one each) and a remote switch (`?target=`, checked
//! against `--collector.openflow.allowed-targets`). The source's `prepare` hook reads them
//! into an [`OpenFlowRequest`] that its `fetch` finds in the scrape's parameters.

use super::target::{self, AllowList, Target};
use crate::registry::{Endpoint, Incoming, RequestError, Routes};
use std::path::Path;
use std::sync::Arc;

/// Parts of the OpenFlow source, so `/ports`, `/flows` and `/groups` fetch only what they show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFlowSlice {
    pub ports: bool,
    pub flows: bool,
    pub tables: bool,
    pub groups: bool,
}

impl OpenFlowSlice {
    pub const ALL: OpenFlowSlice = OpenFlowSlice {
        ports: true,
        flows: true,
        tables: true,
        groups: true,
    };
    pub const PORTS: OpenFlowSlice = OpenFlowSlice {
        ports: true,
        flows: false,
        tables: false,
        groups: false,
    };
    pub const FLOWS: OpenFlowSlice = OpenFlowSlice {
        ports: false,
        flows: true,
        tables: true,
        groups: false,
    };
    pub const GROUPS: OpenFlowSlice = OpenFlowSlice {
        ports: false,
        flows: false,
        tables: false,
        groups: true,
    };
}

/// The source's HTTP routes: the seed exporter's endpoints, and `?target=` (another switch:
/// the sources that describe this node do not apply).
pub const ROUTES: Routes = Routes {
    endpoints: &[
        Endpoint {
            path: "/ports",
            help: "OpenFlow port statistics (<code>?target=</code> for another switch)",
        },
        Endpoint {
            path: "/flows",
            help: "OpenFlow flow and table statistics (<code>?target=</code> for another switch)",
        },
        Endpoint {
            path: "/groups",
            help: "OpenFlow group statistics (<code>?target=</code> for another switch)",
        },
    ],
    exclusive_params: &["target"],
};

/// The slice an endpoint of [`ROUTES`] reads (`None`: `/metrics`, everything).
pub fn slice_for(endpoint: Option<&str>) -> OpenFlowSlice {
    match endpoint {
        Some("/ports") => OpenFlowSlice::PORTS,
        Some("/flows") => OpenFlowSlice::FLOWS,
        Some("/groups") => OpenFlowSlice::GROUPS,
        _ => OpenFlowSlice::ALL,
    }
}

/// What one scrape asks of the source.
#[derive(Debug, Clone)]
pub struct OpenFlowRequest {
    pub slice: OpenFlowSlice,
    /// A remote switch from `?target=`, already checked against the allowlist.
    pub target: Option<Arc<Target>>,
}

impl Default for OpenFlowRequest {
    fn default() -> Self {
        OpenFlowRequest {
            slice: OpenFlowSlice::ALL,
            target: None,
        }
    }
}

/// Where `?target=` may point.
#[derive(Debug, Clone)]
pub struct TargetPolicy {
    pub allowed: AllowList,
    /// Port for a bare `?target=HOST`.
    pub port: u16,
}

fn refused(reason: impl std::fmt::Display) -> RequestError {
    RequestError::BadParameter {
        param: "target",
        reason: reason.to_string(),
    }
}

/// Reads the request: the endpoint's slice, and `?target=` (at most once) parsed, allowed and
/// resolved.
pub async fn prepare(
    incoming: Incoming<'_>,
    policy: &TargetPolicy,
    rundir: &Path,
) -> Result<OpenFlowRequest, RequestError> {
    let targets: Vec<&str> = incoming
        .query
        .iter()
        .filter(|(k, _)| k == "target")
        .map(|(_, v)| v.as_str())
        .collect();
    if targets.len() > 1 {
        return Err(refused("give ?target= at most once"));
    }
    let target = match targets.first() {
        None => None,
        Some(raw) => {
            let checked = match target::parse(raw, policy.port) {
                Ok(spec) => target::authorize(raw, spec, &policy.allowed, rundir).await,
                Err(e) => Err(e),
            };
            match checked {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    tracing::info!(error = %e, "refused target");
                    return Err(refused(e));
                }
            }
        }
    };
    Ok(OpenFlowRequest {
        slice: slice_for(incoming.endpoint),
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TargetPolicy {
        TargetPolicy {
            allowed: AllowList::parse(&["10.0.0.0/8"], 16633).expect("allowlist"),
            port: 16633,
        }
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn slices_and_targets() {
        let none = q(&[]);
        let rundir = Path::new("/nonexistent");
        let r = prepare(
            Incoming {
                endpoint: Some("/ports"),
                query: &none,
            },
            &policy(),
            rundir,
        )
        .await
        .expect("no target");
        assert_eq!(r.slice, OpenFlowSlice::PORTS);
        assert!(r.target.is_none());
        for path in ROUTES.endpoints.iter().map(|e| e.path) {
            assert_ne!(slice_for(Some(path)), OpenFlowSlice::ALL, "{path}");
        }
        assert_eq!(slice_for(None), OpenFlowSlice::ALL);

        let allowed = q(&[("target", "10.1.2.3")]);
        let r = prepare(
            Incoming {
                endpoint: None,
                query: &allowed,
            },
            &policy(),
            rundir,
        )
        .await
        .expect("an allowed target");
        assert_eq!(r.slice, OpenFlowSlice::ALL);
        assert_eq!(r.target.map(|t| t.raw.clone()), Some("10.1.2.3".to_owned()));

        for bad in [
            q(&[("target", "192.168.1.1")]),
            q(&[("target", "10.1.2.3"), ("target", "10.1.2.4")]),
            q(&[("target", "")]),
        ] {
            let r = prepare(
                Incoming {
                    endpoint: None,
                    query: &bad,
                },
                &policy(),
                rundir,
            )
            .await;
            assert!(
                matches!(
                    r,
                    Err(RequestError::BadParameter {
                        param: "target",
                        ..
                    })
                ),
                "{bad:?}: {r:?}"
            );
        }
    }
}
