//! The rows we monitor, kept current from `monitor` updates. Pure: no I/O.

use super::proto::{ProtoError, datum};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

// The rows are decoded by serde straight from a message's bytes (`datum` reads each column's
// OVSDB type); columns we do not monitor are skipped, a missing one is its default.

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Bridge {
    #[serde(deserialize_with = "datum::string")]
    pub name: String,
    #[serde(deserialize_with = "datum::uuids")]
    pub ports: Vec<String>,
    #[serde(deserialize_with = "datum::nonempty_string")]
    pub datapath_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Port {
    #[serde(deserialize_with = "datum::string")]
    pub name: String,
    #[serde(deserialize_with = "datum::uuids")]
    pub interfaces: Vec<String>,
    /// Some CNIs (Antrea) write the pod's identity on the Port row rather than the Interface.
    #[serde(deserialize_with = "datum::string_map")]
    pub external_ids: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Interface {
    #[serde(deserialize_with = "datum::string")]
    pub name: String,
    /// `type`: empty for ordinary system interfaces.
    #[serde(rename = "type", deserialize_with = "datum::string")]
    pub kind: String,
    #[serde(deserialize_with = "datum::opt_i64")]
    pub ofport: Option<i64>,
    #[serde(deserialize_with = "datum::opt_string")]
    pub mac_in_use: Option<String>,
    #[serde(deserialize_with = "datum::string_map")]
    pub external_ids: BTreeMap<String, String>,
    #[serde(deserialize_with = "datum::int_map")]
    pub statistics: BTreeMap<String, i64>,
    #[serde(deserialize_with = "datum::opt_string")]
    pub link_state: Option<String>,
    #[serde(deserialize_with = "datum::opt_string")]
    pub admin_state: Option<String>,
    #[serde(deserialize_with = "datum::opt_i64")]
    pub link_resets: Option<i64>,
    /// Bits per second.
    #[serde(deserialize_with = "datum::opt_i64")]
    pub link_speed: Option<i64>,
    #[serde(deserialize_with = "datum::opt_i64")]
    pub mtu: Option<i64>,
    #[serde(deserialize_with = "datum::opt_string")]
    pub error: Option<String>,
    /// BFD's state (`state`, `forwarding`, `flap_count`, …); empty when BFD is off.
    #[serde(deserialize_with = "datum::string_map")]
    pub bfd_status: BTreeMap<String, String>,
    /// CFM: each of these is empty when CFM is off (or, for `cfm_health` and
    /// `cfm_remote_opstate`, when OVS does not compute it).
    #[serde(deserialize_with = "datum::opt_bool")]
    pub cfm_fault: Option<bool>,
    #[serde(deserialize_with = "datum::strings")]
    pub cfm_fault_status: Vec<String>,
    #[serde(deserialize_with = "datum::opt_i64")]
    pub cfm_health: Option<i64>,
    #[serde(deserialize_with = "datum::opt_i64")]
    pub cfm_flap_count: Option<i64>,
    #[serde(deserialize_with = "datum::opt_string")]
    pub cfm_remote_opstate: Option<String>,
    /// `status`, only its `tunnel_egress_iface*` keys (a tunnel's egress interface and its
    /// carrier): the rest (driver names and versions) is not kept.
    #[serde(deserialize_with = "tunnel_status")]
    pub status: BTreeMap<String, String>,
}

/// The `tunnel_egress_iface*` keys of `status`.
fn tunnel_status<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let mut m = datum::string_map(d)?;
    m.retain(|k, _| k.starts_with("tunnel_egress_iface"));
    Ok(m)
}

/// The Open_vSwitch table's row: ovs-vswitchd's settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OpenVswitch {
    #[serde(deserialize_with = "datum::string_map")]
    pub other_config: BTreeMap<String, String>,
}

/// One table: rows by UUID. Rows and the table itself are shared (`Arc`): a snapshot for a
/// scrape is three reference counts, and an update copies only the table it changes, and that
/// shallowly (keys and row pointers), never the rows it leaves alone.
pub type Table<T> = Arc<HashMap<Arc<str>, Arc<T>>>;

/// The Open_vSwitch, Bridge, Port and Interface tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replica {
    /// One row in a sound database (see [`Replica::open_vswitch`]).
    pub open_vswitch: Table<OpenVswitch>,
    pub bridges: Table<Bridge>,
    pub ports: Table<Port>,
    pub interfaces: Table<Interface>,
}

/// One decoded row change: the new row, or `None` for a deleted one.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    OpenVswitch(Arc<str>, Option<Arc<OpenVswitch>>),
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

/// `<table-updates>` (`{table: {uuid: {"old": …, "new": …}}}`) decoded into row changes, in
/// the order they came. Tables other than ours are skipped unread.
#[derive(Debug, Default, PartialEq)]
pub struct Changes(pub Vec<Change>);

/// One `<row-update>`: only `new` matters (a deleted row has none; a modified one's `new` holds
/// every monitored column).
#[derive(Deserialize)]
struct RowUpdate<T> {
    new: Option<T>,
}

/// The rows of one table update, pushed to `out` as changes made by `make`.
struct Rows<'a, T, F> {
    out: &'a mut Vec<Change>,
    make: F,
    row: std::marker::PhantomData<T>,
}

fn rows<T, F>(out: &mut Vec<Change>, make: F) -> Rows<'_, T, F> {
    Rows {
        out,
        make,
        row: std::marker::PhantomData,
    }
}

impl<'de, T, F> de::DeserializeSeed<'de> for Rows<'_, T, F>
where
    T: Deserialize<'de>,
    F: Fn(Arc<str>, Option<Arc<T>>) -> Change,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T, F> Visitor<'de> for Rows<'_, T, F>
where
    T: Deserialize<'de>,
    F: Fn(Arc<str>, Option<Arc<T>>) -> Change,
{
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a table update (rows by UUID)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        if let Some(n) = m.size_hint() {
            self.out.reserve(n);
        }
        while let Some(uuid) = m.next_key::<std::borrow::Cow<'de, str>>()? {
            let update: RowUpdate<T> = m.next_value()?;
            self.out.push((self.make)(
                Arc::from(uuid.as_ref()),
                update.new.map(Arc::new),
            ));
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Changes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Changes, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Changes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("table updates (an object of tables)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Changes, A::Error> {
                let mut out = Vec::new();
                while let Some(table) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    match table.as_ref() {
                        "Open_vSwitch" => m.next_value_seed(rows(&mut out, Change::OpenVswitch))?,
                        "Bridge" => m.next_value_seed(rows(&mut out, Change::Bridge))?,
                        "Port" => m.next_value_seed(rows(&mut out, Change::Port))?,
                        "Interface" => m.next_value_seed(rows(&mut out, Change::Interface))?,
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Changes(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes `<table-updates>` from its JSON bytes into row changes, without touching any
/// replica (the costly part of an update, done before the cheap one).
pub fn decode(updates: &[u8]) -> Result<Vec<Change>, ProtoError> {
    super::proto::from_slice::<Changes>(updates).map(|c| c.0)
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
                Change::OpenVswitch(u, r) => set(&mut self.open_vswitch, u, r),
                Change::Bridge(u, r) => set(&mut self.bridges, u, r),
                Change::Port(u, r) => set(&mut self.ports, u, r),
                Change::Interface(u, r) => set(&mut self.interfaces, u, r),
            }
        }
    }

    /// Applies a `<table-updates>` JSON text.
    pub fn apply_json(&mut self, updates: &[u8]) -> Result<(), ProtoError> {
        self.apply_changes(decode(updates)?);
        Ok(())
    }

    /// The Open_vSwitch row: `None` unless there is exactly one (the schema allows at most
    /// one; none before `ovs-vsctl init`).
    pub fn open_vswitch(&self) -> Option<&OpenVswitch> {
        let mut rows = self.open_vswitch.values();
        match (rows.next(), rows.next()) {
            (Some(r), None) => Some(r),
            _ => None,
        }
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
    use serde_json::{Value, json};

    fn bytes(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

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
        assert_eq!(r.apply_json(&bytes(sample())), Ok(()));
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
        let _ = r.apply_json(&bytes(sample()));
        let _ = r.apply_json(&bytes(json!({
            "Bridge": {"b1": {"old": {"ports": []}, "new": {"name": "br-int", "ports": ["uuid", "p2"]}}},
            "Port": {"p1": {"old": {"name": "veth1"}}},
            "Interface": {"i1": {"old": {"name": "veth1"}}}
        })));
        let v = r.interfaces();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].iface.name, "br-int");
        // A port whose interface row is gone (or not yet arrived) is skipped, not a panic.
        let _ = r.apply_json(&bytes(json!({"Interface": {"i2": {"old": {}}}})));
        assert!(r.interfaces().is_empty());
    }

    /// A snapshot keeps what it saw, and an update shares every row (and table) it leaves alone.
    #[test]
    fn updates_share_untouched_rows() {
        let mut r = Replica::default();
        let _ = r.apply_json(&bytes(sample()));
        let snapshot = r.clone();
        let _ = r.apply_json(&bytes(json!({
            "Interface": {"i1": {"new": {"name": "veth1", "statistics": ["map", [["rx_bytes", 999]]]}}}
        })));
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
        let _ = r.apply_json(&bytes(json!({"Interface": {"i2": {"old": {}}}})));
        assert_eq!(Arc::as_ptr(&r.interfaces), table);
        assert_eq!(r.interfaces.len(), 1);
    }
}
