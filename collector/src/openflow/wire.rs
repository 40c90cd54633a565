//! A bounds-checked big-endian reader over a byte slice. Every read names what it was reading,
//! so a truncated or malformed message gives an error that says where it broke.

use super::DecodeError;

#[derive(Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data[0]` within the enclosing message, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            base: 0,
        }
    }

    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what,
                offset: self.offset(),
                need: n,
                have: self.remaining(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Splits off the next `n` bytes as a reader of their own (offsets stay absolute).
    pub(crate) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        let base = self.offset();
        let data = self.bytes(n, what)?;
        Ok(Reader { data, pos: 0, base })
    }

    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        self.bytes(n, what).map(|_| ())
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Peeks at a big-endian u16 without consuming it.
    pub(crate) fn peek_u16(&self, what: &'static str) -> Result<u16, DecodeError> {
        self.clone().u16(what)
    }
}

/// Reads a big-endian unsigned integer of up to 16 bytes.
pub(crate) fn be_uint(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_truncation() {
        let data = [0x01, 0x02, 0x03, 0x04, 0x05];
        let mut r = Reader::new(&data);
        assert_eq!(r.u16("a"), Ok(0x0102));
        let mut sub = r.sub(2, "sub");
        assert!(sub.is_ok());
        if let Ok(s) = sub.as_mut() {
            assert_eq!(s.offset(), 2);
            assert_eq!(s.u8("b"), Ok(3));
        }
        assert_eq!(
            r.u32("c"),
            Err(DecodeError::Truncated {
                what: "c",
                offset: 4,
                need: 4,
                have: 1
            })
        );
        assert_eq!(be_uint(&[0x12, 0x34, 0x56]), 0x123456);
    }
}
