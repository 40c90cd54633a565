//! Just enough BTF to find where a field sits in a kernel struct, for the kprobe programs:
//! `/sys/kernel/btf/vmlinux`, and a module's split BTF (`/sys/kernel/btf/openvswitch`) on top
//! of it. Anonymous struct and union members are searched through, as `sk_buff.dev` needs.
//! And an enum's members by name (`enum skb_drop_reason`, the openvswitch module's
//! `enum ovs_drop_reason`), so drop reasons are named from the running kernel, never from a
//! table compiled in. Pure: parsing functions over bytes.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    #[error("not BTF (bad magic {0:#06x})")]
    Magic(u16),
    #[error("truncated BTF: {0}")]
    Truncated(&'static str),
    #[error("unknown BTF kind {kind} at type {id}")]
    Kind { kind: u32, id: u32 },
}

const KIND_STRUCT: u32 = 4;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

#[derive(Debug, Clone)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Debug, Clone)]
struct Type {
    kind: u32,
    /// For modifiers and typedefs: the type they refer to.
    refers: u32,
    members: Vec<Member>,
}

/// Parsed BTF: types by ID and the string table (a module's on top of vmlinux's).
#[derive(Debug, Clone, Default)]
pub struct Btf {
    types: HashMap<u32, Type>,
    strings: Vec<u8>,
    /// Number of types (IDs 1..=count) and string bytes, for split BTF built on this one.
    count: u32,
    by_name: HashMap<String, Vec<u32>>,
    /// Named enums: (`ENUM64`?, unsigned?, their member records as in the file).
    enums: HashMap<String, (bool, bool, Vec<u8>)>,
}

fn u32_at(b: &[u8], off: usize, what: &'static str) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Truncated(what))
}

impl Btf {
    /// Parses BTF; `base` is vmlinux's BTF when `data` is a module's split BTF.
    pub fn parse(data: &[u8], base: Option<&Btf>) -> Result<Btf, BtfError> {
        let magic = data
            .get(0..2)
            .map(|m| u16::from_le_bytes([m[0], m[1]]))
            .ok_or(BtfError::Truncated("header"))?;
        if magic != 0xeb9f {
            return Err(BtfError::Magic(magic));
        }
        let hdr_len = u32_at(data, 4, "header")? as usize;
        let type_off = u32_at(data, 8, "header")? as usize;
        let type_len = u32_at(data, 12, "header")? as usize;
        let str_off = u32_at(data, 16, "header")? as usize;
        let str_len = u32_at(data, 20, "header")? as usize;
        let types = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Truncated("type section"))?;
        let own_strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Truncated("string section"))?;

        let mut btf = match base {
            Some(b) => b.clone(),
            None => Btf::default(),
        };
        btf.strings.extend_from_slice(own_strings);
        let mut id = btf.count;
        let mut off = 0usize;
        while off < types.len() {
            id += 1;
            let name_off = u32_at(types, off, "type")?;
            let info = u32_at(types, off + 4, "type")?;
            let size_or_type = u32_at(types, off + 8, "type")?;
            off += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let extra = match kind {
                1 | 14 | 17 => 4,
                3 => 12,
                4 | 5 | 15 | 19 => 12 * vlen,
                6 | 13 => 8 * vlen,
                2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
                other => return Err(BtfError::Kind { kind: other, id }),
            };
            let mut members = Vec::new();
            if kind == KIND_STRUCT || kind == KIND_UNION {
                for m in 0..vlen {
                    let at = off + 12 * m;
                    let offset = u32_at(types, at + 8, "member")?;
                    members.push(Member {
                        name_off: u32_at(types, at, "member")?,
                        type_id: u32_at(types, at + 4, "member")?,
                        bit_offset: if kind_flag {
                            offset & 0x00ff_ffff
                        } else {
                            offset
                        },
                    });
                }
            }
            if types.len() < off + extra {
                return Err(BtfError::Truncated("type data"));
            }
            let records = off..off + extra;
            off += extra;
            let t = Type {
                kind,
                refers: size_or_type,
                members,
            };
            if (kind == KIND_ENUM || kind == KIND_ENUM64) && name_off != 0 {
                let name = btf.string(name_off).to_owned();
                let records = types.get(records).unwrap_or_default().to_vec();
                btf.enums
                    .entry(name)
                    .or_insert((kind == KIND_ENUM64, kind_flag, records));
            }
            if (kind == KIND_STRUCT || kind == KIND_UNION) && name_off != 0 {
                let name = btf.string(name_off).to_owned();
                btf.by_name.entry(name).or_default().push(id);
            }
            btf.types.insert(id, t);
        }
        btf.count = id;
        Ok(btf)
    }

    fn string(&self, off: u32) -> &str {
        let start = off as usize;
        let Some(rest) = self.strings.get(start..) else {
            return "";
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(&id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.refers
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// The members of `enum name` as (name, value) in declaration order (`None`: no such
    /// enum). `ENUM` values are signed unless the kind flag says unsigned.
    pub fn enum_values(&self, name: &str) -> Option<Vec<(String, i64)>> {
        let (wide, unsigned, records) = self.enums.get(name)?;
        let size = if *wide { 12 } else { 8 };
        let mut out = Vec::with_capacity(records.len() / size);
        for r in records.chunks_exact(size) {
            let word = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
            let lo = word(4);
            let value = if *wide {
                ((u64::from(word(8)) << 32) | u64::from(lo)).cast_signed()
            } else if *unsigned {
                i64::from(lo)
            } else {
                i64::from(lo.cast_signed())
            };
            out.push((self.string(word(0)).to_owned(), value));
        }
        Some(out)
    }

    /// The names of the named enums (for split BTF: the base's as well as the module's).
    pub fn enum_names(&self) -> impl Iterator<Item = &str> {
        self.enums.keys().map(String::as_str)
    }

    /// Byte offset of `member` in `struct name` (searching anonymous members).
    pub fn member_offset(&self, name: &str, member: &str) -> Option<u32> {
        let ids = self.by_name.get(name)?;
        ids.iter().find_map(|&id| {
            let t = self.types.get(&id)?;
            self.find_member(t, member, 0, 0).map(|bits| bits / 8)
        })
    }

    fn find_member(&self, t: &Type, member: &str, base_bits: u32, depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        for m in &t.members {
            // Offsets come from the file: one past u32 is malformed BTF, not a panic.
            let Some(bits) = base_bits.checked_add(m.bit_offset) else {
                continue;
            };
            if m.name_off != 0 {
                if self.string(m.name_off) == member {
                    return Some(bits);
                }
                continue;
            }
            // Anonymous struct or union: look inside.
            if let Some(inner) = self.resolve(m.type_id)
                && (inner.kind == KIND_STRUCT || inner.kind == KIND_UNION)
                && let Some(found) = self.find_member(inner, member, bits, depth + 1)
            {
                return Some(found);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF with `struct outer { int a; union { void *x; long y; }; int b; }` and
    /// `struct inner2 { char c; int d; }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0outer\0a\0x\0y\0b\0int\0inner2\0c\0d\0reason\0A\0B\0".to_vec();
        let s = |name: &str| -> u32 {
            let needle = format!("\0{name}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .map_or(0, |p| p as u32 + 1)
        };
        let mut types = Vec::new();
        let push = |types: &mut Vec<u8>, v: &[u32]| {
            for x in v {
                types.extend_from_slice(&x.to_le_bytes());
            }
        };
        // 1: int (kind 1, size 4, + encoding word)
        push(&mut types, &[s("int"), 1 << 24, 4, 32]);
        // 2: pointer to void
        push(&mut types, &[0, 2 << 24, 0]);
        // 3: anonymous union { x: *void at 0, y: int at 0 }
        push(
            &mut types,
            &[0, (5 << 24) | 2, 8, s("x"), 2, 0, s("y"), 1, 0],
        );
        // 4: struct outer { a: int @0, <anon union> @64, b: int @128 }
        push(
            &mut types,
            &[
                s("outer"),
                (4 << 24) | 3,
                24,
                s("a"),
                1,
                0,
                0,
                3,
                64,
                s("b"),
                1,
                128,
            ],
        );
        // 5: struct inner2 { c @0, d @32 }
        push(
            &mut types,
            &[s("inner2"), (4 << 24) | 2, 8, s("c"), 1, 0, s("d"), 1, 32],
        );
        // 6: enum reason { A = 2, B = -1 } (signed)
        push(
            &mut types,
            &[s("reason"), (6 << 24) | 2, 4, s("A"), 2, s("B"), u32::MAX],
        );
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.push(1);
        out.push(0);
        out.extend_from_slice(&24u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&types);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_members_through_anonymous_unions() {
        let btf = Btf::parse(&sample(), None);
        let Ok(btf) = btf else { panic!("{btf:?}") };
        assert_eq!(btf.member_offset("outer", "a"), Some(0));
        assert_eq!(btf.member_offset("outer", "x"), Some(8));
        assert_eq!(btf.member_offset("outer", "b"), Some(16));
        assert_eq!(btf.member_offset("inner2", "d"), Some(4));
        assert_eq!(btf.member_offset("outer", "nope"), None);
        assert_eq!(btf.member_offset("nope", "a"), None);
        assert_eq!(
            btf.enum_values("reason"),
            Some(vec![("A".to_owned(), 2), ("B".to_owned(), -1)])
        );
        assert_eq!(btf.enum_values("outer"), None);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(matches!(Btf::parse(b"xx", None), Err(BtfError::Magic(_))));
        let data = sample();
        for cut in 0..data.len() {
            let _ = Btf::parse(&data[..cut], None);
        }
        let mut copy = data.clone();
        for i in 0..copy.len() {
            for flip in [0xff_u8, 0x80, 0x01] {
                copy[i] ^= flip;
                if let Ok(b) = Btf::parse(&copy, None) {
                    let _ = b.enum_values("reason");
                    let _ = b.member_offset("outer", "x");
                }
                copy[i] ^= flip;
            }
        }
    }

    #[test]
    fn this_kernel() {
        // The running kernel's BTF, when it has one (the host and the lab kernels do).
        let Ok(data) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            eprintln!("SKIPPED: no /sys/kernel/btf/vmlinux");
            return;
        };
        let btf = Btf::parse(&data, None);
        let Ok(btf) = btf else { panic!("{btf:?}") };
        assert!(btf.member_offset("sk_buff", "dev").is_some());
        assert!(btf.member_offset("sk_buff", "len").is_some());
        assert!(btf.member_offset("net_device", "ifindex").is_some());
    }
}
