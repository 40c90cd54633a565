//! The rows we monitor, kept current from `monitor` updates. Pure: no I/O.

use super::proto::{
    self, ProtoError, RowUpdate, datum_i64, datum_string, datum_uuids, int_map, string_map,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bridge {
    pub name: String,
    pub ports: Vec<String>,
    pub datapath_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Port {
    pub name: String,
    pub interfaces: Vec<String>,
    /// Some CNIs (Antrea) write the pod's identity on the Port row rather than the Interface.
    pub external_ids: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interface {
    pub name: String,
    /// `type`: empty for ordinary system interfaces.
    pub kind: String,
    pub ofport: Option<i64>,
    pub mac_in_use: Option<String>,
    pub external_ids: BTreeMap<String, String>,
    pub statistics: BTreeMap<String, i64>,
    pub link_state: Option<String>,
    pub admin_state: Option<String>,
    pub link_resets: Option<i64>,
    /// Bits per second.
    pub link_speed: Option<i64>,
    pub mtu: Option<i64>,
    pub error: Option<String>,
}

/// The Bridge, Port and Interface tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replica {
    pub bridges: HashMap<String, Bridge>,
    pub ports: HashMap<String, Port>,
    pub interfaces: HashMap<String, Interface>,
}

/// An interface with the names of its port and bridge.
#[derive(Debug, Clone, Copy)]
pub struct InterfaceView<'a> {
    pub bridge: &'a str,
    pub port: &'a str,
    pub iface: &'a Interface,
    /// The port row's external_ids.
    pub port_external_ids: &'a BTreeMap<String, String>,
}

fn col<'a>(row: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    row.get(name)
}

impl Replica {
    /// Applies one `monitor` update (a deleted row has no `new`; a row's `new` holds every
    /// monitored column).
    pub fn apply(&mut self, updates: Vec<RowUpdate>) {
        for u in updates {
            match (u.table.as_str(), u.new) {
                ("Bridge", None) => {
                    self.bridges.remove(&u.uuid);
                }
                ("Port", None) => {
                    self.ports.remove(&u.uuid);
                }
                ("Interface", None) => {
                    self.interfaces.remove(&u.uuid);
                }
                ("Bridge", Some(row)) => {
                    let b = Bridge {
                        name: col(&row, "name").and_then(datum_string).unwrap_or_default(),
                        ports: col(&row, "ports").map(datum_uuids).unwrap_or_default(),
                        datapath_type: col(&row, "datapath_type")
                            .and_then(datum_string)
                            .filter(|s| !s.is_empty()),
                    };
                    self.bridges.insert(u.uuid, b);
                }
                ("Port", Some(row)) => {
                    let p = Port {
                        name: col(&row, "name").and_then(datum_string).unwrap_or_default(),
                        interfaces: col(&row, "interfaces").map(datum_uuids).unwrap_or_default(),
                        external_ids: col(&row, "external_ids")
                            .map(string_map)
                            .unwrap_or_default(),
                    };
                    self.ports.insert(u.uuid, p);
                }
                ("Interface", Some(row)) => {
                    let i = Interface {
                        name: col(&row, "name").and_then(datum_string).unwrap_or_default(),
                        kind: col(&row, "type").and_then(datum_string).unwrap_or_default(),
                        ofport: col(&row, "ofport").and_then(datum_i64),
                        mac_in_use: col(&row, "mac_in_use").and_then(datum_string),
                        external_ids: col(&row, "external_ids")
                            .map(string_map)
                            .unwrap_or_default(),
                        statistics: col(&row, "statistics").map(int_map).unwrap_or_default(),
                        link_state: col(&row, "link_state").and_then(datum_string),
                        admin_state: col(&row, "admin_state").and_then(datum_string),
                        link_resets: col(&row, "link_resets").and_then(datum_i64),
                        link_speed: col(&row, "link_speed").and_then(datum_i64),
                        mtu: col(&row, "mtu").and_then(datum_i64),
                        error: col(&row, "error").and_then(datum_string),
                    };
                    self.interfaces.insert(u.uuid, i);
                }
                _ => {}
            }
        }
    }

    /// Applies a `<table-updates>` JSON value.
    pub fn apply_json(&mut self, updates: &Value) -> Result<(), ProtoError> {
        self.apply(proto::table_updates(updates)?);
        Ok(())
    }

    /// Bridge names, sorted.
    pub fn bridge_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.bridges.values().map(|b| b.name.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every interface that belongs to a port of a bridge, sorted by (bridge, port, interface).
    pub fn interfaces(&self) -> Vec<InterfaceView<'_>> {
        let mut out = Vec::with_capacity(self.interfaces.len());
        for b in self.bridges.values() {
            for pu in &b.ports {
                let Some(p) = self.ports.get(pu) else {
                    continue;
                };
                for iu in &p.interfaces {
                    if let Some(iface) = self.interfaces.get(iu) {
                        out.push(InterfaceView {
                            bridge: &b.name,
                            port: &p.name,
                            iface,
                            port_external_ids: &p.external_ids,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (a.bridge, a.port, a.iface.name.as_str()).cmp(&(
                b.bridge,
                b.port,
                b.iface.name.as_str(),
            ))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "Bridge": {"b1": {"new": {"name": "br-int", "ports": ["set", [["uuid", "p1"], ["uuid", "p2"]]], "datapath_type": ""}}},
            "Port": {
                "p1": {"new": {"name": "veth1", "interfaces": ["uuid", "i1"]}},
                "p2": {"new": {"name": "br-int", "interfaces": ["uuid", "i2"]}}
            },
            "Interface": {
                "i1": {"new": {"name": "veth1", "type": "", "ofport": 1, "mac_in_use": "02:00:00:00:00:01",
                    "external_ids": ["map", [["iface-id", "default_web-1"]]],
                    "statistics": ["map", [["rx_bytes", 100], ["tx_bytes", 200]]],
                    "link_state": "up", "admin_state": "up", "link_resets": 1,
                    "link_speed": 10000000000i64, "mtu": 1500, "error": ["set", []]}},
                "i2": {"new": {"name": "br-int", "type": "internal", "ofport": 65534,
                    "external_ids": ["map", []], "statistics": ["map", []],
                    "link_state": ["set", []], "mtu": ["set", []]}}
            }
        })
    }

    #[test]
    fn builds_and_joins_rows() {
        let mut r = Replica::default();
        assert_eq!(r.apply_json(&sample()), Ok(()));
        assert_eq!(r.bridge_names(), vec!["br-int".to_owned()]);
        let v = r.interfaces();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].bridge, v[0].port, v[0].iface.name.as_str()),
            ("br-int", "br-int", "br-int")
        );
        let veth = v[1].iface;
        assert_eq!(veth.ofport, Some(1));
        assert_eq!(veth.statistics["tx_bytes"], 200);
        assert_eq!(veth.external_ids["iface-id"], "default_web-1");
        assert_eq!(veth.link_speed, Some(10_000_000_000));
        assert_eq!(veth.error, None);
        assert_eq!(v[0].iface.mtu, None);
        assert_eq!(v[0].iface.kind, "internal");
    }

    #[test]
    fn deletes_and_modifies() {
        let mut r = Replica::default();
        let _ = r.apply_json(&sample());
        let _ = r.apply_json(&json!({
            "Bridge": {"b1": {"old": {"ports": []}, "new": {"name": "br-int", "ports": ["uuid", "p2"]}}},
            "Port": {"p1": {"old": {"name": "veth1"}}},
            "Interface": {"i1": {"old": {"name": "veth1"}}}
        }));
        let v = r.interfaces();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].iface.name, "br-int");
        // A port whose interface row is gone (or not yet arrived) is skipped, not a panic.
        let _ = r.apply_json(&json!({"Interface": {"i2": {"old": {}}}}));
        assert!(r.interfaces().is_empty());
    }
}
