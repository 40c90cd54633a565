//! The rows we monitor, kept current from `monitor` updates. Pure: no I/O.

use super::proto::{
    ProtoError, RowUpdate, datum_i64, datum_string, datum_uuids, int_map, string_map,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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

/// One table: rows by UUID. Rows and the table itself are shared (`Arc`): a snapshot for a
/// scrape is three reference counts, and an update copies only the table it changes, and that
/// shallowly (keys and row pointers), never the rows it leaves alone.
pub type Table<T> = Arc<HashMap<Arc<str>, Arc<T>>>;

/// The Bridge, Port and Interface tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replica {
    pub bridges: Table<Bridge>,
    pub ports: Table<Port>,
    pub interfaces: Table<Interface>,
}

/// One decoded row change: the new row, or `None` for a deleted one.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Bridge(Arc<str>, Option<Arc<Bridge>>),
    Port(Arc<str>, Option<Arc<Port>>),
    Interface(Arc<str>, Option<Arc<Interface>>),
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

type Row = serde_json::Map<String, Value>;

fn col<'a>(row: &'a Row, name: &str) -> Option<&'a Value> {
    row.get(name)
}

fn bridge(row: &Row) -> Bridge {
    Bridge {
        name: col(row, "name").and_then(datum_string).unwrap_or_default(),
        ports: col(row, "ports").map(datum_uuids).unwrap_or_default(),
        datapath_type: col(row, "datapath_type")
            .and_then(datum_string)
            .filter(|s| !s.is_empty()),
    }
}

fn port(row: &Row) -> Port {
    Port {
        name: col(row, "name").and_then(datum_string).unwrap_or_default(),
        interfaces: col(row, "interfaces").map(datum_uuids).unwrap_or_default(),
        external_ids: col(row, "external_ids").map(string_map).unwrap_or_default(),
    }
}

fn interface(row: &Row) -> Interface {
    Interface {
        name: col(row, "name").and_then(datum_string).unwrap_or_default(),
        kind: col(row, "type").and_then(datum_string).unwrap_or_default(),
        ofport: col(row, "ofport").and_then(datum_i64),
        mac_in_use: col(row, "mac_in_use").and_then(datum_string),
        external_ids: col(row, "external_ids").map(string_map).unwrap_or_default(),
        statistics: col(row, "statistics").map(int_map).unwrap_or_default(),
        link_state: col(row, "link_state").and_then(datum_string),
        admin_state: col(row, "admin_state").and_then(datum_string),
        link_resets: col(row, "link_resets").and_then(datum_i64),
        link_speed: col(row, "link_speed").and_then(datum_i64),
        mtu: col(row, "mtu").and_then(datum_i64),
        error: col(row, "error").and_then(datum_string),
    }
}

/// Decodes `<table-updates>` (`{table: {uuid: {"old": …, "new": …}}}`) into row changes,
/// without touching any replica (the costly part of an update, done before the cheap one).
/// Tables other than ours are skipped.
pub fn decode(updates: &Value) -> Result<Vec<Change>, ProtoError> {
    let Value::Object(tables) = updates else {
        return Err(ProtoError::Unexpected {
            what: "table updates",
            detail: "not an object".to_owned(),
        });
    };
    let mut out = Vec::new();
    for (table, rows) in tables {
        let Value::Object(rows) = rows else {
            return Err(ProtoError::Unexpected {
                what: "table update",
                detail: format!("{table}: not an object"),
            });
        };
        if !matches!(table.as_str(), "Bridge" | "Port" | "Interface") {
            continue;
        }
        out.reserve(rows.len());
        for (uuid, change) in rows {
            let new = match change.get("new") {
                Some(Value::Object(row)) => Some(row),
                Some(other) => {
                    return Err(ProtoError::Unexpected {
                        what: "row update",
                        detail: format!("{table} {uuid}: \"new\" is {other}"),
                    });
                }
                None => None,
            };
            let uuid: Arc<str> = Arc::from(uuid.as_str());
            out.push(match table.as_str() {
                "Bridge" => Change::Bridge(uuid, new.map(|r| Arc::new(bridge(r)))),
                "Port" => Change::Port(uuid, new.map(|r| Arc::new(port(r)))),
                _ => Change::Interface(uuid, new.map(|r| Arc::new(interface(r)))),
            });
        }
    }
    Ok(out)
}

fn set<T>(table: &mut Table<T>, uuid: Arc<str>, row: Option<Arc<T>>) {
    // Copies the table (shallowly) only if a snapshot still holds it; once per update.
    let t = Arc::make_mut(table);
    match row {
        Some(r) => {
            t.insert(uuid, r);
        }
        None => {
            t.remove(&uuid);
        }
    }
}

impl Replica {
    /// Applies decoded changes: cheap (hash map inserts), whatever the rows hold.
    pub fn apply_changes(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Bridge(u, r) => set(&mut self.bridges, u, r),
                Change::Port(u, r) => set(&mut self.ports, u, r),
                Change::Interface(u, r) => set(&mut self.interfaces, u, r),
            }
        }
    }

    /// Applies one `monitor` update (a deleted row has no `new`; a row's `new` holds every
    /// monitored column).
    pub fn apply(&mut self, updates: Vec<RowUpdate>) {
        let changes = updates
            .into_iter()
            .filter_map(|u| {
                let uuid: Arc<str> = Arc::from(u.uuid.as_str());
                let new = u.new.as_ref();
                Some(match u.table.as_str() {
                    "Bridge" => Change::Bridge(uuid, new.map(|r| Arc::new(bridge(r)))),
                    "Port" => Change::Port(uuid, new.map(|r| Arc::new(port(r)))),
                    "Interface" => Change::Interface(uuid, new.map(|r| Arc::new(interface(r)))),
                    _ => return None,
                })
            })
            .collect();
        self.apply_changes(changes);
    }

    /// Applies a `<table-updates>` JSON value.
    pub fn apply_json(&mut self, updates: &Value) -> Result<(), ProtoError> {
        self.apply_changes(decode(updates)?);
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
                let Some(p) = self.ports.get(pu.as_str()) else {
                    continue;
                };
                for iu in &p.interfaces {
                    if let Some(iface) = self.interfaces.get(iu.as_str()) {
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

    /// A snapshot keeps what it saw, and an update shares every row (and table) it leaves alone.
    #[test]
    fn updates_share_untouched_rows() {
        let mut r = Replica::default();
        let _ = r.apply_json(&sample());
        let snapshot = r.clone();
        let _ = r.apply_json(&json!({
            "Interface": {"i1": {"new": {"name": "veth1", "statistics": ["map", [["rx_bytes", 999]]]}}}
        }));
        assert_eq!(snapshot.interfaces["i1"].statistics["rx_bytes"], 100);
        assert_eq!(r.interfaces["i1"].statistics["rx_bytes"], 999);
        assert!(Arc::ptr_eq(&snapshot.interfaces["i2"], &r.interfaces["i2"]));
        assert!(!Arc::ptr_eq(
            &snapshot.interfaces["i1"],
            &r.interfaces["i1"]
        ));
        assert!(Arc::ptr_eq(&snapshot.bridges, &r.bridges));
        assert!(Arc::ptr_eq(&snapshot.ports, &r.ports));
        // With no snapshot alive, the table is changed in place.
        drop(snapshot);
        let table = Arc::as_ptr(&r.interfaces);
        let _ = r.apply_json(&json!({"Interface": {"i2": {"old": {}}}}));
        assert_eq!(Arc::as_ptr(&r.interfaces), table);
        assert_eq!(r.interfaces.len(), 1);
    }
}
