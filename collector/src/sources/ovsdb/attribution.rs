//! Which pod an OVS interface belongs to, from the `external_ids` its CNI wrote: no Kubernetes
//! API, no polling. Pure.
//!
//! Conventions built in, tried in this order (each checked against the CNI's own source; see
//! `docs/pods.md` for the code each rule comes from):
//!
//! | CNI | marker | namespace / pod | more |
//! |---|---|---|---|
//! | Kube-OVN | `pod_name` + `pod_namespace` (Interface row) | `pod_namespace`, `pod_name` | `iface-id` (`<pod>.<namespace>[.<provider>]`) is never split: '.' is ambiguous |
//! | Antrea | `pod-name` + `pod-namespace` (Port row); `antrea-type`, when present, must be `container` | `pod-namespace`, `pod-name` | `container-id` → `container_id` |
//! | OVN-Kubernetes | `iface-id` with `sandbox` or `iface-id-ver` (Interface row) | `iface-id` = `[<P>_]<namespace>_<pod>` | `iface-id-ver` → `pod_uid`, `sandbox` → `container_id`, `k8s.ovn.org/network` → `network` |
//!
//! OVN-Kubernetes's prefix `P` on user-defined and secondary networks is the NAD key
//! (`k8s.ovn.org/nad`) with every '-' and '/' turned into '.', and must match that key; what is
//! left must be exactly `<namespace>_<pod>` ('_' is the separator OVN-Kubernetes chose because
//! Kubernetes names cannot hold it).
//!
//! `--ovs.external-id-label=KEY=LABEL` adds any other CNI's keys: `LABEL` `pod` and `namespace`
//! feed the pod identity (when both are present), anything else becomes an extra label on
//! `ovs_interface_info`. Every value is validated (Kubernetes name syntax for names, printable
//! and at most 253 bytes otherwise); a value that fails is dropped, never served.

use std::collections::BTreeMap;

/// A pod, as far as the interface's external_ids tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub pod: String,
    pub uid: Option<String>,
    pub container_id: Option<String>,
    /// Which convention matched: `ovn-kubernetes`, `antrea`, `kube-ovn`, or `custom`.
    pub cni: &'static str,
    /// The pod network this interface attaches to, where the CNI says (OVN-Kubernetes's
    /// `k8s.ovn.org/network`, on every network but the default one).
    pub network: Option<String>,
}

/// What the external_ids say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub pod: Option<PodRef>,
    /// Extra labels from `--ovs.external-id-label` (label, value).
    pub extra: Vec<(String, String)>,
}

/// Labels the collector writes itself; `--ovs.external-id-label` may not reuse them.
const RESERVED: &[&str] = &[
    "bridge",
    "port",
    "interface",
    "type",
    "ofport",
    "mac",
    "pod_uid",
    "container_id",
    "cni",
    "network",
    "table",
    "priority",
    "cookie",
    "match",
    "actions",
    "group_id",
    "bucket",
    "statistic",
    "size",
    "error",
    "le",
    "quantile",
    "job",
    "instance",
];

/// The flag's parsed mappings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributor {
    custom: Vec<(String, String)>,
}

const MAX_VALUE: usize = 253;

/// A DNS-1123 label (namespaces): lower-case alphanumerics and '-', at most 63.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (pod names): labels joined by '.', at most 253.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_VALUE && s.split('.').all(is_dns_label)
}

/// Printable, bounded, no quotes or backslashes worth worrying about (they are escaped anyway).
fn clean_value(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= MAX_VALUE && s.chars().all(|c| !c.is_control()))
        .then(|| s.to_owned())
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

fn pod_ref(
    namespace: &str,
    pod: &str,
    uid: Option<&String>,
    container_id: Option<&String>,
    cni: &'static str,
) -> Option<PodRef> {
    (is_dns_label(namespace) && is_dns_subdomain(pod)).then(|| PodRef {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        uid: uid.and_then(|u| clean_value(u)),
        container_id: container_id.and_then(|c| clean_value(c)),
        cni,
        network: None,
    })
}

impl Attributor {
    /// Parses `KEY=LABEL` mappings (`--ovs.external-id-label`).
    pub fn new<S: AsRef<str>>(specs: &[S]) -> Result<Attributor, String> {
        let mut custom = Vec::new();
        for spec in specs {
            let spec = spec.as_ref();
            let Some((key, label)) = spec.split_once('=') else {
                return Err(format!(
                    "--ovs.external-id-label {spec:?}: expected KEY=LABEL (like k8s_pod=pod)"
                ));
            };
            if key.is_empty() || key.len() > 128 || key.chars().any(char::is_control) {
                return Err(format!("--ovs.external-id-label {spec:?}: bad key"));
            }
            if !is_label_name(label) {
                return Err(format!(
                    "--ovs.external-id-label {spec:?}: {label:?} is not a Prometheus label name"
                ));
            }
            if RESERVED.contains(&label) {
                return Err(format!(
                    "--ovs.external-id-label {spec:?}: the collector already writes a {label:?} label"
                ));
            }
            if custom.iter().any(|(_, l)| l == label) {
                return Err(format!(
                    "--ovs.external-id-label: label {label:?} given twice"
                ));
            }
            custom.push((key.to_owned(), label.to_owned()));
        }
        Ok(Attributor { custom })
    }

    /// Looks an interface up; `port_ids` are its Port row's external_ids (Antrea writes there).
    pub fn attribute(
        &self,
        iface_ids: &BTreeMap<String, String>,
        port_ids: &BTreeMap<String, String>,
    ) -> Attribution {
        let get = |k: &str| iface_ids.get(k).or_else(|| port_ids.get(k));
        let mut out = Attribution::default();

        // Custom mappings first: the operator said so.
        let mut custom_ns = None;
        let mut custom_pod = None;
        for (key, label) in &self.custom {
            let Some(v) = get(key).and_then(|v| clean_value(v)) else {
                continue;
            };
            match label.as_str() {
                "namespace" => custom_ns = Some(v),
                "pod" => custom_pod = Some(v),
                _ => out.extra.push((label.clone(), v)),
            }
        }
        if let (Some(ns), Some(pod)) = (&custom_ns, &custom_pod) {
            out.pod = pod_ref(ns, pod, None, None, "custom");
        }
        if out.pod.is_some() {
            return out;
        }

        // Kube-OVN, first: it writes an `iface-id` too.
        if let (Some(pod), Some(ns)) = (iface_ids.get("pod_name"), iface_ids.get("pod_namespace")) {
            out.pod = pod_ref(ns, pod, None, None, "kube-ovn");
            return out;
        }
        // Antrea, on the Port row (older test beds and other tools put the same keys on the
        // Interface row, so that is read too); other `antrea-type`s (gateway, tunnel, uplink…)
        // are not pods.
        if let (Some(pod), Some(ns)) = (get("pod-name"), get("pod-namespace")) {
            if get("antrea-type").is_none_or(|t| t == "container") {
                out.pod = pod_ref(ns, pod, None, get("container-id"), "antrea");
            }
            return out;
        }
        // OVN-Kubernetes.
        if let Some(iface_id) = iface_ids.get("iface-id")
            && (iface_ids.contains_key("sandbox") || iface_ids.contains_key("iface-id-ver"))
            && let Some((ns, pod)) = ovn_k_pod(iface_id, iface_ids.get("k8s.ovn.org/nad"))
        {
            out.pod = pod_ref(
                ns,
                pod,
                iface_ids.get("iface-id-ver"),
                iface_ids.get("sandbox"),
                "ovn-kubernetes",
            )
            .map(|mut p| {
                p.network = iface_ids
                    .get("k8s.ovn.org/network")
                    .and_then(|n| clean_value(n));
                p
            });
        }
        out
    }
}

/// `(namespace, pod)` from OVN-Kubernetes's `iface-id`: `<namespace>_<pod>` on the default
/// network, `<P>_<namespace>_<pod>` elsewhere, where `P` is the NAD key with '-' and '/' made
/// '.'.
fn ovn_k_pod<'a>(iface_id: &'a str, nad: Option<&String>) -> Option<(&'a str, &'a str)> {
    let rest = match nad {
        None => iface_id,
        Some(nad) => {
            let prefix: String = nad
                .chars()
                .map(|c| if c == '-' || c == '/' { '.' } else { c })
                .chain(std::iter::once('_'))
                .collect();
            iface_id.strip_prefix(prefix.as_str())?
        }
    };
    // Exactly two fields. Without a NAD key a third field is not ours to guess: older releases
    // wrote `<namespace>_<pod>_<network>` on secondary networks, and reading that from the
    // right would name the network as the pod.
    let (ns, pod) = rest.split_once('_')?;
    if pod.contains('_') {
        return None;
    }
    Some((ns, pod))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn pod(a: &Attribution) -> Option<(&str, &str, &str)> {
        a.pod
            .as_ref()
            .map(|p| (p.namespace.as_str(), p.pod.as_str(), p.cni))
    }

    #[test]
    fn built_in_conventions() {
        let none = BTreeMap::new();
        let at = Attributor::default();
        let ovn = ids(&[
            ("iface-id", "kube-system_coredns-5d78c9869d-abcde"),
            ("iface-id-ver", "0d4a8d3e-1b2c-4d5e-8f90-123456789abc"),
            ("sandbox", "f00dcafe"),
            ("attached_mac", "0a:58:0a:f4:00:05"),
        ]);
        let a = at.attribute(&ovn, &none);
        assert_eq!(
            pod(&a),
            Some(("kube-system", "coredns-5d78c9869d-abcde", "ovn-kubernetes"))
        );
        let p = a.pod.unwrap_or_else(|| panic!());
        assert_eq!(
            p.uid.as_deref(),
            Some("0d4a8d3e-1b2c-4d5e-8f90-123456789abc")
        );
        assert_eq!(p.container_id.as_deref(), Some("f00dcafe"));

        // Three fields and no NAD key to say what the first is: not guessed.
        let secondary = ids(&[("iface-id", "team-a_web-0_blue"), ("iface-id-ver", "u")]);
        assert_eq!(at.attribute(&secondary, &none).pod, None);

        let antrea_port = ids(&[
            ("pod-name", "web-0"),
            ("pod-namespace", "shop"),
            ("container-id", "abc"),
        ]);
        assert_eq!(
            pod(&at.attribute(&none, &antrea_port)),
            Some(("shop", "web-0", "antrea"))
        );

        let kube_ovn = ids(&[
            ("iface-id", "web-0.shop"),
            ("pod_name", "web-0"),
            ("pod_namespace", "shop"),
            ("vendor", "kube-ovn"),
        ]);
        assert_eq!(
            pod(&at.attribute(&kube_ovn, &none)),
            Some(("shop", "web-0", "kube-ovn"))
        );

        // A plain OVS port with an iface-id that is not OVN-Kubernetes's.
        let plain = ids(&[("iface-id", "vm-1")]);
        assert_eq!(at.attribute(&plain, &none).pod, None);
        // OVN-Kubernetes's management port: an iface-id, no sandbox, no pod.
        let mp = ids(&[
            ("iface-id", "k8s-node_1"),
            ("attached_mac", "0a:58:0a:f4:00:02"),
        ]);
        assert_eq!(at.attribute(&mp, &none).pod, None);
    }

    #[test]
    fn ovn_kubernetes_user_defined_networks() {
        let none = BTreeMap::new();
        let at = Attributor::default();
        let udn = ids(&[
            ("iface-id", "kube.system.l3.network_team-a_web-0"),
            ("iface-id-ver", "uid-1"),
            ("sandbox", "c0ffee"),
            ("k8s.ovn.org/network", "l3-network"),
            ("k8s.ovn.org/nad", "kube-system/l3-network"),
        ]);
        let a = at.attribute(&udn, &none);
        assert_eq!(pod(&a), Some(("team-a", "web-0", "ovn-kubernetes")));
        assert_eq!(a.pod.and_then(|p| p.network).as_deref(), Some("l3-network"));
        // The prefix must be the NAD's.
        let wrong = ids(&[
            ("iface-id", "other_team-a_web-0"),
            ("sandbox", "c0ffee"),
            ("k8s.ovn.org/nad", "kube-system/l3-network"),
        ]);
        assert_eq!(at.attribute(&wrong, &none).pod, None);
        // The default network's port of the same pod: no network label.
        let default = ids(&[("iface-id", "team-a_web-0"), ("sandbox", "c0ffee")]);
        let a = at.attribute(&default, &none);
        assert_eq!(pod(&a), Some(("team-a", "web-0", "ovn-kubernetes")));
        assert_eq!(a.pod.and_then(|p| p.network), None);
    }

    #[test]
    fn antrea_types_other_than_container_are_not_pods() {
        let none = BTreeMap::new();
        let at = Attributor::default();
        let gw = ids(&[
            ("antrea-type", "gateway"),
            ("pod-name", "x"),
            ("pod-namespace", "y"),
        ]);
        assert_eq!(at.attribute(&none, &gw).pod, None);
        let c = ids(&[
            ("antrea-type", "container"),
            ("pod-name", "x"),
            ("pod-namespace", "y"),
            ("if-dev", "net1"),
        ]);
        assert_eq!(pod(&at.attribute(&none, &c)), Some(("y", "x", "antrea")));
    }

    #[test]
    fn rejects_bad_values() {
        let none = BTreeMap::new();
        let at = Attributor::default();
        for (ns, p) in [
            ("Upper", "web"),
            ("ns", "Web"),
            ("ns", ""),
            ("ns\n", "web"),
            (&*"n".repeat(64), "web"),
        ] {
            let a = at.attribute(&ids(&[("pod-name", p), ("pod-namespace", ns)]), &none);
            assert_eq!(a.pod, None, "{ns:?}/{p:?}");
        }
    }

    #[test]
    fn custom_mappings() {
        let at = Attributor::new(&["k8s_ns=namespace", "k8s_pod=pod", "tenant=tenant"]);
        let Ok(at) = at else { panic!("{at:?}") };
        let a = at.attribute(
            &ids(&[
                ("k8s_ns", "prod"),
                ("k8s_pod", "api-1"),
                ("tenant", "blue team"),
            ]),
            &BTreeMap::new(),
        );
        assert_eq!(pod(&a), Some(("prod", "api-1", "custom")));
        assert_eq!(a.extra, vec![("tenant".to_owned(), "blue team".to_owned())]);
        let long = "x".repeat(300);
        let a = at.attribute(&ids(&[("tenant", &long)]), &BTreeMap::new());
        assert!(a.extra.is_empty());

        for bad in ["nolabel", "k=1abc", "k=bridge", "k=__x", "=pod", "a=x,b"] {
            assert!(Attributor::new(&[bad]).is_err(), "{bad}");
        }
        assert!(Attributor::new(&["a=x", "b=x"]).is_err());
    }
}
