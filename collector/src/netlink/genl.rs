//! The generic netlink controller (`nlctrl`, family id 0x10): family ids by name.
//!
//! A family is looked up in a dump of every family, never by name: a lookup by name
//! (`CTRL_CMD_GETFAMILY` with `CTRL_ATTR_FAMILY_NAME`, what `ipvsadm`, libnl and neli's
//! `resolve_genl_family` do) makes the kernel load the module whose alias is
//! `net-pf-16-proto-16-family-NAME` (`ip_vs` for "IPVS", `openvswitch` for "ovs_datapath"),
//! and a collector must not switch a subsystem on by looking at it.

use super::frame::{Message, Request, attrs};
use super::{DumpError, FrameError, Socket};

pub const GENL_HDRLEN: usize = 4;
/// The controller's fixed family id.
pub const GENL_ID_CTRL: u16 = 0x10;
pub const CTRL_CMD_NEWFAMILY: u8 = 1;
pub const CTRL_CMD_GETFAMILY: u8 = 3;
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// The attributes after the generic netlink header of `msg`, checked to carry command `want`.
pub fn body<'a>(msg: &Message<'a>, want: u8) -> Result<&'a [u8], FrameError> {
    let Some((&cmd, _)) = msg.payload.split_first() else {
        return Err(FrameError::ShortGenlHeader {
            msg_type: msg.msg_type,
            len: 0,
        });
    };
    let Some(rest) = msg.payload.get(GENL_HDRLEN..) else {
        return Err(FrameError::ShortGenlHeader {
            msg_type: msg.msg_type,
            len: msg.payload.len(),
        });
    };
    if cmd != want {
        return Err(FrameError::UnexpectedCommand { cmd, want });
    }
    Ok(rest)
}

/// A dump of every generic netlink family (loads no module).
pub fn family_dump_request(seq: u32) -> Vec<u8> {
    Request::dump(GENL_ID_CTRL, seq)
        .genl(CTRL_CMD_GETFAMILY, 1)
        .finish()
}

/// A lookup of one family by name: what `ipvsadm` and libnl do. Not used by any source (it
/// autoloads the family's module); the lab uses it to show that the autoload is real.
pub fn family_by_name_request(seq: u32, name: &str) -> Vec<u8> {
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    Request::new(GENL_ID_CTRL, 0, seq)
        .genl(CTRL_CMD_GETFAMILY, 1)
        .attr(CTRL_ATTR_FAMILY_NAME, &z)
        .finish()
}

/// One family of the controller's family dump: its name and id (`None` if either is missing).
pub fn parse_family(msg: &Message<'_>) -> Result<Option<(String, u16)>, FrameError> {
    // The controller answers GETFAMILY with NEWFAMILY.
    let body = body(msg, CTRL_CMD_NEWFAMILY)?;
    let (mut name, mut id) = (None, None);
    for a in attrs(body) {
        let a = a?;
        match a.kind {
            CTRL_ATTR_FAMILY_ID => id = Some(a.u16("CTRL_ATTR_FAMILY_ID")?),
            CTRL_ATTR_FAMILY_NAME => name = Some(a.string()),
            _ => {}
        }
    }
    Ok(name.zip(id))
}

/// The id of family `name` in the namespace `sock` was opened in, from a dump of every family
/// (`None`: no such family, its module is not loaded).
pub fn resolve_family(sock: &mut Socket, name: &str) -> Result<Option<u16>, DumpError<FrameError>> {
    let mut found = None;
    let seq = sock.next_seq();
    sock.dump(&family_dump_request(seq), seq, |m| {
        if let Some((n, id)) = parse_family(m)?
            && n == name
        {
            found = Some(id);
        }
        Ok(())
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::frame::{NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST, messages};
    use crate::netlink::testing::{attr, genl_message, only};

    #[test]
    fn family_from_controller_message() {
        let mut a = attr(CTRL_ATTR_FAMILY_ID, &0x23u16.to_ne_bytes());
        a.extend(attr(CTRL_ATTR_FAMILY_NAME, b"IPVS\0"));
        a.extend(attr(3, &1u32.to_ne_bytes()));
        let bytes = genl_message(GENL_ID_CTRL, NLM_F_MULTI, 1, 1, &a);
        assert_eq!(
            parse_family(&only(&bytes)),
            Ok(Some(("IPVS".to_owned(), 0x23)))
        );
        let bytes = genl_message(GENL_ID_CTRL, NLM_F_MULTI, 1, 1, &attr(2, b"nl80211\0"));
        assert_eq!(parse_family(&only(&bytes)), Ok(None));
        // The wrong command, a family id of 3 bytes, no genl header at all.
        let bytes = genl_message(GENL_ID_CTRL, NLM_F_MULTI, 1, 5, &[]);
        assert_eq!(
            parse_family(&only(&bytes)),
            Err(FrameError::UnexpectedCommand { cmd: 5, want: 1 })
        );
        let bytes = genl_message(GENL_ID_CTRL, 0, 1, 1, &attr(1, &[1, 2, 3]));
        assert!(matches!(
            parse_family(&only(&bytes)),
            Err(FrameError::AttributeSize { expected: 2, .. })
        ));
        let m = Message {
            msg_type: GENL_ID_CTRL,
            flags: 0,
            seq: 0,
            pid: 0,
            payload: &[1, 1],
        };
        assert_eq!(
            parse_family(&m),
            Err(FrameError::ShortGenlHeader {
                msg_type: GENL_ID_CTRL,
                len: 2
            })
        );
    }

    #[test]
    fn the_family_lookup_is_a_dump_without_a_name() {
        // A dump with no CTRL_ATTR_FAMILY_NAME: the kernel answers with every family and loads
        // nothing. The lookup by name carries the name, and no dump flag.
        let dump = family_dump_request(3);
        let m = only(&dump);
        assert_eq!(m.msg_type, GENL_ID_CTRL);
        assert_eq!(m.flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(m.payload, &[CTRL_CMD_GETFAMILY, 1, 0, 0]);
        let by_name = family_by_name_request(3, "IPVS");
        assert_eq!(by_name.len(), 16 + 4 + 4 + 8);
        let m = only(&by_name);
        assert_eq!(m.flags, NLM_F_REQUEST);
        let a: Vec<_> = attrs(&m.payload[GENL_HDRLEN..]).collect();
        assert_eq!(a.len(), 1);
        assert!(
            matches!(&a[0], Ok(a) if a.kind == CTRL_ATTR_FAMILY_NAME && a.payload == b"IPVS\0")
        );
        assert_eq!(messages(&dump).count(), 1);
    }
}
