//! ctnetlink's statistics replies, decoded in pure functions (no I/O), and the requests for them.
//!
//! ```text
//! request  nlmsghdr type = subsystem << 8 | message, nfgenmsg (AF_UNSPEC, NFNETLINK_V0, 0)
//! reply    nlmsghdr, nfgenmsg (res_id = the CPU, big-endian), attributes: u32 big-endian
//! ```
//!
//! Three requests, none of which walks the connection table:
//! - `IPCTNL_MSG_CT_GET_STATS_CPU` (subsystem `NFNL_SUBSYS_CTNETLINK`): a dump, one message per
//!   possible CPU with `CTA_STATS_*` (`ctnetlink_ct_stat_cpu_fill_info`, `nla_put_be32`).
//! - `IPCTNL_MSG_EXP_GET_STATS_CPU` (subsystem `NFNL_SUBSYS_CTNETLINK_EXP`): a dump, one message
//!   per CPU with `CTA_STATS_EXP_*` (expectations: the helpers' related connections).
//! - `IPCTNL_MSG_CT_GET_STATS`: one message with `CTA_STATS_GLOBAL_ENTRIES` and, on newer
//!   kernels, `CTA_STATS_GLOBAL_MAX_ENTRIES` (`ctnetlink_stat_ct`). Sent with `NLM_F_ACK` so
//!   the reply ends with an acknowledgement, like a dump ends with `NLMSG_DONE`.
//!
//! Every attribute of `include/uapi/linux/netfilter/nfnetlink_conntrack.h` is decoded; one this
//! table does not know (a newer kernel's) is skipped. Values are read big-endian whether or not
//! the kernel set `NLA_F_NET_BYTEORDER` (it does not: `nla_put_be32`).

use crate::netlink::frame::{NFNETLINK_V0, NLM_F_ACK};
use crate::netlink::{FrameError, Message, Request, attrs, nfgenmsg};

pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
pub const NFNL_SUBSYS_CTNETLINK_EXP: u8 = 2;
/// `enum cntl_msg_types`.
pub const IPCTNL_MSG_CT_GET_STATS_CPU: u8 = 4;
pub const IPCTNL_MSG_CT_GET_STATS: u8 = 5;
/// `enum ctnl_exp_msg_types`.
pub const IPCTNL_MSG_EXP_GET_STATS_CPU: u8 = 3;

/// `enum ctattr_stats_global`.
pub const CTA_STATS_GLOBAL_ENTRIES: u16 = 1;
pub const CTA_STATS_GLOBAL_MAX_ENTRIES: u16 = 2;

const AF_UNSPEC: u8 = 0;

/// The netlink message type of a ctnetlink message.
pub const fn msg_type(subsys: u8, msg: u8) -> u16 {
    ((subsys as u16) << 8) | msg as u16
}

/// One per-CPU statistic as the kernel defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The attribute type (`CTA_STATS_*`, `CTA_STATS_EXP_*`).
    pub attr: u16,
    /// The kernel's name (as `conntrack -S` prints it), the metric's `conntrack_<name>_total`.
    pub name: &'static str,
    /// The metric's help.
    pub help: &'static str,
    /// The kernel defines the attribute but has stopped sending it (6.18 sends none of them).
    pub obsolete: bool,
}

const fn stat(attr: u16, name: &'static str, help: &'static str, obsolete: bool) -> Stat {
    Stat {
        attr,
        name,
        help,
        obsolete,
    }
}

/// `enum ctattr_stats_cpu`, in attribute order (index + 1 is the attribute type).
pub const CT_STATS: &[Stat] = &[
    stat(
        1,
        "searched",
        "Conntrack table lookups (no longer counted by the kernel).",
        true,
    ),
    stat(
        2,
        "found",
        "Conntrack lookups that found an existing entry.",
        false,
    ),
    stat(
        3,
        "new",
        "Conntrack entries added (no longer counted by the kernel).",
        true,
    ),
    stat(
        4,
        "invalid",
        "Packets conntrack could not track (invalid or unexpected).",
        false,
    ),
    stat(
        5,
        "ignore",
        "Packets conntrack skipped as already tracked (no longer counted by the kernel).",
        true,
    ),
    stat(
        6,
        "delete",
        "Conntrack entries deleted (no longer counted by the kernel).",
        true,
    ),
    stat(
        7,
        "delete_list",
        "Conntrack entries unlinked from the table (no longer counted by the kernel).",
        true,
    ),
    stat(
        8,
        "insert",
        "Entries inserted into the conntrack table.",
        false,
    ),
    stat(
        9,
        "insert_failed",
        "Entries whose insertion into the conntrack table failed (such as the same connection inserted by another CPU first).",
        false,
    ),
    stat(
        10,
        "drop",
        "Packets dropped because conntrack failed (no entry could be made, or a helper dropped it).",
        false,
    ),
    stat(
        11,
        "early_drop",
        "Conntrack entries dropped to make room for new ones in a full table.",
        false,
    ),
    stat(
        12,
        "error",
        "Packets a protocol's error check refused (such as ICMP errors for no known connection); /proc's icmp_error.",
        false,
    ),
    stat(
        13,
        "search_restart",
        "Conntrack lookups restarted because the hash table was resized or an entry moved.",
        false,
    ),
    stat(
        14,
        "clash_resolve",
        "Insertion clashes (two packets of one new connection at once) resolved by keeping one entry.",
        false,
    ),
    stat(
        15,
        "chaintoolong",
        "Insertions refused because the entry's hash chain was already too long.",
        false,
    ),
];

/// `enum ctattr_expect_stats`.
pub const EXP_STATS: &[Stat] = &[
    stat(
        1,
        "expect_new",
        "Connections that matched an expectation (a helper's related connection).",
        false,
    ),
    stat(
        2,
        "expect_create",
        "Expectations created (by helpers such as FTP or SIP).",
        false,
    ),
    stat(3, "expect_delete", "Expectations deleted.", false),
];

/// One CPU's counters: `values[i]` is `stats[i]`'s, `None` when the kernel did not send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuStats {
    pub cpu: u16,
    pub values: Vec<Option<u32>>,
}

/// The table's fill: `CTA_STATS_GLOBAL_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Global {
    pub entries: u32,
    /// `None` from older kernels, which do not send it.
    pub max_entries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("unexpected message type {got:#06x} (expected {want:#06x})")]
    UnexpectedType { got: u16, want: u16 },
    #[error("no CTA_STATS_GLOBAL_ENTRIES in the global statistics")]
    NoEntries,
}

fn request(subsys: u8, msg: u8, flags: u16, seq: u32) -> Vec<u8> {
    Request::new(msg_type(subsys, msg), flags, seq)
        .nfgen(AF_UNSPEC, NFNETLINK_V0, 0)
        .finish()
}

/// The dump of every CPU's conntrack counters.
pub fn ct_cpu_request(seq: u32) -> Vec<u8> {
    request(
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_GET_STATS_CPU,
        crate::netlink::frame::NLM_F_DUMP,
        seq,
    )
}

/// The dump of every CPU's expectation counters.
pub fn exp_cpu_request(seq: u32) -> Vec<u8> {
    request(
        NFNL_SUBSYS_CTNETLINK_EXP,
        IPCTNL_MSG_EXP_GET_STATS_CPU,
        crate::netlink::frame::NLM_F_DUMP,
        seq,
    )
}

/// The table's fill, acknowledged (the reply ends like a dump).
pub fn global_request(seq: u32) -> Vec<u8> {
    request(
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_GET_STATS,
        NLM_F_ACK,
        seq,
    )
}

fn expect_type(msg: &Message<'_>, want: u16) -> Result<(), ParseError> {
    if msg.msg_type == want || msg.msg_type == alias(want) {
        Ok(())
    } else {
        Err(ParseError::UnexpectedType {
            got: msg.msg_type,
            want,
        })
    }
}

/// The kernel answers the expectation statistics dump with messages typed as the conntrack
/// subsystem's (`ctnetlink_exp_stat_fill_info`: `NFNL_SUBSYS_CTNETLINK`, seen on Linux 6.18);
/// the expectation subsystem's own type is accepted too, should a kernel ever send it.
const fn alias(want: u16) -> u16 {
    if want == msg_type(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET_STATS_CPU) {
        msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_EXP_GET_STATS_CPU)
    } else {
        want
    }
}

fn parse_cpu(msg: &Message<'_>, want: u16, stats: &[Stat]) -> Result<CpuStats, ParseError> {
    expect_type(msg, want)?;
    let (hdr, body) = nfgenmsg(msg)?;
    let mut values = vec![None; stats.len()];
    for a in attrs(body) {
        let a = a?;
        // Attribute `n` is `stats[n - 1]`; 0 (UNSPEC) and newer ones are skipped.
        let Some(i) = usize::from(a.kind)
            .checked_sub(1)
            .filter(|&i| i < stats.len())
        else {
            continue;
        };
        values[i] = Some(a.be32(stats[i].name)?);
    }
    Ok(CpuStats {
        cpu: hdr.res_id,
        values,
    })
}

/// One message of the `IPCTNL_MSG_CT_GET_STATS_CPU` dump.
pub fn parse_ct_cpu(msg: &Message<'_>) -> Result<CpuStats, ParseError> {
    parse_cpu(
        msg,
        msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS_CPU),
        CT_STATS,
    )
}

/// One message of the `IPCTNL_MSG_EXP_GET_STATS_CPU` dump.
pub fn parse_exp_cpu(msg: &Message<'_>) -> Result<CpuStats, ParseError> {
    parse_cpu(
        msg,
        msg_type(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET_STATS_CPU),
        EXP_STATS,
    )
}

/// The reply to `IPCTNL_MSG_CT_GET_STATS`.
pub fn parse_global(msg: &Message<'_>) -> Result<Global, ParseError> {
    expect_type(
        msg,
        msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS),
    )?;
    let (_, body) = nfgenmsg(msg)?;
    let mut entries = None;
    let mut max_entries = None;
    for a in attrs(body) {
        let a = a?;
        match a.kind {
            CTA_STATS_GLOBAL_ENTRIES => entries = Some(a.be32("CTA_STATS_GLOBAL_ENTRIES")?),
            CTA_STATS_GLOBAL_MAX_ENTRIES => {
                max_entries = Some(a.be32("CTA_STATS_GLOBAL_MAX_ENTRIES")?);
            }
            _ => {}
        }
    }
    Ok(Global {
        entries: entries.ok_or(ParseError::NoEntries)?,
        max_entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::testing::{attr, nf_message, only};

    const CT_CPU: u16 = msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS_CPU);

    #[test]
    fn the_tables_follow_the_kernel_enums() {
        for (i, s) in CT_STATS.iter().chain(EXP_STATS).enumerate() {
            let n = if i < CT_STATS.len() {
                i
            } else {
                i - CT_STATS.len()
            };
            assert_eq!(usize::from(s.attr), n + 1, "{}", s.name);
        }
        assert_eq!(CT_STATS[14].name, "chaintoolong");
        assert_eq!(CT_CPU, 0x0104);
    }

    #[test]
    fn requests_are_ctnetlink_messages() {
        let r = ct_cpu_request(7);
        let m = only(&r);
        assert_eq!(
            (m.msg_type, m.seq, m.payload),
            (0x0104, 7, &[0u8, 0, 0, 0][..])
        );
        assert_eq!(m.flags, 0x301);
        assert_eq!(only(&exp_cpu_request(1)).msg_type, 0x0203);
        let g = global_request(2);
        let m = only(&g);
        assert_eq!((m.msg_type, m.flags), (0x0105, 0x5));
    }

    #[test]
    fn unknown_attributes_are_skipped_and_missing_ones_are_none() {
        let mut a = attr(2, &7u32.to_be_bytes());
        a.extend(attr(0, &[1, 2, 3, 4]));
        a.extend(attr(99, &[1, 2]));
        a.extend(attr(15, &0x0102_0304u32.to_be_bytes()));
        let m = nf_message(CT_CPU, 2, 1, 3, &a);
        let s = parse_ct_cpu(&only(&m)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.cpu, 3);
        assert_eq!(s.values[1], Some(7));
        assert_eq!(s.values[14], Some(0x0102_0304));
        assert_eq!(s.values.iter().flatten().count(), 2);
    }

    #[test]
    fn malformed_messages_are_errors() {
        // A value of the wrong size.
        let m = nf_message(CT_CPU, 2, 1, 0, &attr(8, &[0, 1]));
        assert!(matches!(
            parse_ct_cpu(&only(&m)),
            Err(ParseError::Frame(FrameError::AttributeSize {
                name: "insert",
                len: 2,
                expected: 4
            }))
        ));
        // The wrong message type.
        let m = nf_message(0x0204, 2, 1, 0, &[]);
        assert!(matches!(
            parse_ct_cpu(&only(&m)),
            Err(ParseError::UnexpectedType {
                got: 0x0204,
                want: 0x0104
            })
        ));
        // No nfgenmsg.
        let m = crate::netlink::testing::message(CT_CPU, 2, 1, &[0, 0]);
        assert!(matches!(
            parse_ct_cpu(&only(&m)),
            Err(ParseError::Frame(FrameError::ShortNfgenHeader { .. }))
        ));
        // An attribute running past the message.
        let mut body = attr(2, &7u32.to_be_bytes());
        body[0] = 40;
        let m = nf_message(CT_CPU, 2, 1, 0, &body);
        assert!(matches!(
            parse_ct_cpu(&only(&m)),
            Err(ParseError::Frame(FrameError::BadAttributeLength { .. }))
        ));
        // Global statistics without the entries.
        let g = msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS);
        let m = nf_message(g, 0, 1, 0, &attr(2, &9u32.to_be_bytes()));
        assert_eq!(parse_global(&only(&m)), Err(ParseError::NoEntries));
        let m = nf_message(g, 0, 1, 0, &attr(1, &9u32.to_be_bytes()));
        assert_eq!(
            parse_global(&only(&m)),
            Ok(Global {
                entries: 9,
                max_entries: None
            })
        );
    }
}
