//! Entry points for coverage-guided fuzzing: one per decoder of something a peer sends (a
//! switch, ovsdb-server, the kernel, an HTTP client, a file). Each takes arbitrary bytes and
//! must return without panicking, aborting or allocating without bound, whatever they are.
//!
//! `fuzz/fuzz_targets/<name>.rs` calls [`TARGETS`]'s function of that name under libFuzzer
//! (`cargo xtask fuzz [--seconds N] [--target NAME]`); `collector/tests/fuzz_corpus.rs` replays
//! every file of `fuzz/corpus/<name>/` through the same function on every `cargo test`, so an
//! input that once crashed stays a test.

use crate::openflow::message::{self, MultipartType};
use crate::openflow::{FlowDecoder, FlowTable, actions, oxm};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (the directory under `fuzz/corpus/`) and its entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("openflow_message", openflow_message),
    ("openflow_flow_stats", openflow_flow_stats),
    ("openflow_oxm", openflow_oxm),
    ("openflow_actions", openflow_actions),
    ("ovsdb_message", ovsdb_message),
    ("ovsdb_framing", ovsdb_framing),
    ("ipvs_netlink", ipvs_netlink),
    ("rtnetlink_link", rtnetlink_link),
    ("btf", btf),
    ("flow_text", flow_text),
    ("flow_filter", flow_filter),
    ("target", target),
    ("web_config", web_config),
];

/// A whole OpenFlow message as read off the socket: the header, HELLO, ERROR, and a multipart
/// reply handed to the decoder of its type.
pub fn openflow_message(data: &[u8]) {
    let Some(h) = data.get(..message::HEADER_LEN) else {
        return;
    };
    let mut header = [0u8; message::HEADER_LEN];
    header.copy_from_slice(h);
    let _ = message::Header::parse(&header);
    let _ = message::parse_hello(data);
    let _ = message::ErrorMsg::parse(data);
    let Ok((kind, _flags, body)) = message::parse_multipart_reply(data) else {
        return;
    };
    decode_body(kind, body);
}

fn decode_body(kind: u16, body: &[u8]) {
    match kind {
        k if k == MultipartType::PortDesc as u16 => {
            let _ = message::decode_port_descs(body, &mut Vec::new());
        }
        k if k == MultipartType::PortStats as u16 => {
            let _ = message::decode_port_stats(body, &mut Vec::new());
        }
        k if k == MultipartType::Table as u16 => {
            let _ = message::decode_table_stats(body, &mut Vec::new());
        }
        k if k == MultipartType::GroupDesc as u16 => {
            let _ = message::decode_group_descs(body, &mut Vec::new());
        }
        k if k == MultipartType::Group as u16 => {
            let _ = message::decode_group_stats(body, &mut Vec::new());
        }
        _ => openflow_flow_stats(body),
    }
}

/// A flow-stats multipart body: the scrape's decoder (match and actions to text) and the
/// flow-rule decoder of the eBPF rule correlation.
pub fn openflow_flow_stats(body: &[u8]) {
    let mut table = FlowTable::default();
    let _ = FlowDecoder::new(true).decode(body, &mut table);
    for f in &table {
        let _ = (f.match_text.len(), f.actions.map(str::len));
    }
    let _ = message::decode_flow_rules(body, &mut Vec::new());
}

/// OXM TLVs (an `ofp_match` body), then printed as `ovs-ofctl` does.
pub fn openflow_oxm(data: &[u8]) {
    let mut fields = oxm::MatchFields::default();
    if oxm::decode_oxms(data, &mut fields).is_ok() {
        let mut s = String::new();
        crate::openflow::format::format_match(&fields, &mut s);
    }
}

/// Instructions and action lists, to text and to the tables they lead to.
pub fn openflow_actions(data: &[u8]) {
    let mut s = String::new();
    let _ = actions::format_instructions(data, &mut s);
    s.clear();
    let _ = actions::format_actions(data, &mut s);
    let current = data.first().copied().unwrap_or(0);
    let _ = actions::next_tables(data, current);
}

/// One JSON-RPC message from ovsdb-server: classified, and its table updates decoded into
/// rows (as the monitor connection does), and the bytes read as table updates on their own.
pub fn ovsdb_message(data: &[u8]) {
    let _ = crate::ovsdb::message::decode(data, 1);
    let _ = crate::ovsdb::replica::decode(data);
}

/// A generic-netlink datagram from the kernel's IPVS family: every message classified and its
/// service, destination or family attributes read.
pub fn ipvs_netlink(data: &[u8]) {
    use crate::netlink::{self, genl};
    use crate::sources::ipvs::parse;
    for msg in netlink::messages(data) {
        let Ok(msg) = msg else { break };
        let _ = netlink::dump_item(msg, msg.seq);
        let _ = genl::parse_family(&msg);
        let _ = parse::parse_service(&msg);
        let _ = parse::parse_destination(&msg, libc::AF_INET as u16);
        let _ = parse::parse_destination(&msg, libc::AF_INET6 as u16);
    }
}

/// An rtnetlink link message's payload (`ifinfomsg` and attributes, VF info nested inside).
pub fn rtnetlink_link(data: &[u8]) {
    use crate::sources::sriov::netlink;
    let _ = netlink::parse_link(data);
    let _ = netlink::parse_vfinfo_list(data);
    let _ = netlink::parse_vf_info(data);
    let _ = netlink::parse_vf_stats(data);
}

/// BTF as read from `/sys/kernel/btf/*`: whole, and as split BTF on a base of itself.
pub fn btf(data: &[u8]) {
    use crate::sources::ebpf::btf::Btf;
    if let Ok(base) = Btf::parse(data, None) {
        let _ = base.member_offset("sk_buff", "len");
        let _ = Btf::parse(data, Some(&base));
    }
}

/// Flow text as `flows -i` reads it (`ovs-ofctl dump-flows`, `ovs-dpctl dump-flows`).
pub fn flow_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = crate::flows::parse::parse_text(&text);
    for e in &parsed.errors {
        let _ = e.to_string();
    }
    // The JSON view walks every nested value (datapath action lists, Geneve options).
    let mut out = Vec::new();
    let _ = crate::flows::view::json::render(&mut out, parsed.flows.iter());
}

/// A `?filter=` expression, parsed and run on a few flows.
pub fn flow_filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(f) = crate::flows::filter::Filter::parse(&text) else {
        return;
    };
    let flows = crate::flows::parse::parse_text(FILTER_FLOWS);
    for flow in &flows.flows {
        let _ = f.matches(flow);
    }
}

const FILTER_FLOWS: &str = "\
 cookie=0x1, duration=1.5s, table=0, n_packets=10, n_bytes=1000, priority=100,ip,nw_src=10.0.0.1 actions=output:2
 cookie=0x2, duration=2s, table=1, n_packets=0, n_bytes=0, priority=50,ip,nw_src=10.0.0.0/24,reg0=0x5/0xff actions=ct(commit,zone=5,nat(src=10.0.0.1-10.0.0.9:1000-2000)),resubmit(,3)
 cookie=0x3, table=1, priority=10,tcp6,ipv6_dst=fd00::/64,tp_dst=80,dl_src=02:00:00:00:00:01/ff:ff:ff:00:00:00 actions=learn(table=5,NXM_OF_VLAN_TCI[0..11],output:NXM_OF_IN_PORT[]),NORMAL
";

/// A `?target=` value and an `--ovs.allowed-targets` entry.
pub fn target(data: &[u8]) {
    use crate::sources::openflow::target;
    let text = String::from_utf8_lossy(data);
    let _ = target::parse(&text, 16633);
    let _ = target::AllowList::parse(&[text.as_ref()], 16633);
}

/// The OVSDB stream framer: bytes as they arrive, split at a point the input chooses, into
/// whole JSON values (bounded to 1 MiB a message here).
pub fn ovsdb_framing(data: &[u8]) {
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut framer = crate::ovsdb::proto::Framer::new(1 << 20);
    for part in [&data[..cut], &data[cut..]] {
        framer.push(part);
        while let Ok(Some(_)) = framer.next_value() {}
    }
}

/// A `--web.config.file` (exporter-toolkit YAML), parsed; paths resolve under a directory that
/// does not exist, so nothing is read.
pub fn web_config(data: &[u8]) {
    let _ = crate::webconfig::parse(data, std::path::Path::new("/nonexistent-fuzz-dir"));
}
