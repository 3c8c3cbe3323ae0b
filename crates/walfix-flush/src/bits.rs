//! Go's varints (`encoding/binary`), big-endian helpers and the MSB-first bit stream of
//! `chunkenc/bstream.go`.

/// Appends `x` as a Go uvarint.
pub fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push(x as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Appends `x` as a Go varint (zig-zag).
pub fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

/// Reads a Go uvarint from the front of `b`: value and bytes used, `None` if truncated or
/// longer than 10 bytes / overflowing.
pub fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    let mut s = 0u32;
    for (i, &c) in b.iter().enumerate().take(10) {
        if c < 0x80 {
            if i == 9 && c > 1 {
                return None;
            }
            return Some((x | (c as u64) << s, i + 1));
        }
        x |= ((c & 0x7f) as u64) << s;
        s += 7;
    }
    None
}

/// Reads a Go varint.
pub fn varint(b: &[u8]) -> Option<(i64, usize)> {
    let (u, n) = uvarint(b)?;
    Some((((u >> 1) as i64) ^ -((u & 1) as i64), n))
}

/// A cursor over bytes with checked reads (the reader side).
pub struct Cursor<'a> {
    /// The bytes.
    pub b: &'a [u8],
    /// Position.
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }
    /// Bytes left.
    pub fn rest(&self) -> usize {
        self.b.len() - self.pos
    }
    /// `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    /// A big-endian u32.
    pub fn be32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    /// A uvarint.
    pub fn uvarint(&mut self) -> Option<u64> {
        let (v, n) = uvarint(&self.b[self.pos..])?;
        self.pos += n;
        Some(v)
    }
    /// A varint.
    pub fn varint(&mut self) -> Option<i64> {
        let (v, n) = varint(&self.b[self.pos..])?;
        self.pos += n;
        Some(v)
    }
    /// A uvarint-length-prefixed byte string.
    pub fn uvarint_bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.uvarint()?;
        self.take(usize::try_from(n).ok()?)
    }
}

/// MSB-first bit writer; the last byte is zero-padded.
#[derive(Clone, Debug, Default)]
pub struct BitWriter {
    /// Bytes so far (the last one may be partly filled).
    pub bytes: Vec<u8>,
    /// Free bits in the last byte (0..=7; 0 means full or empty).
    free: u8,
}

impl BitWriter {
    /// Starts after `prefix` (whole bytes).
    pub fn with_prefix(prefix: &[u8]) -> Self {
        BitWriter {
            bytes: prefix.to_vec(),
            free: 0,
        }
    }
    /// Moves the complete bytes to the end of `out`, keeping only a partly filled last byte
    /// (appending goes on as before); returns how many moved.
    pub fn take_complete(&mut self, out: &mut Vec<u8>) -> usize {
        let keep = usize::from(self.free > 0).min(self.bytes.len());
        let n = self.bytes.len() - keep;
        out.extend_from_slice(&self.bytes[..n]);
        let mut rest = Vec::with_capacity(keep);
        rest.extend_from_slice(&self.bytes[n..]);
        self.bytes = rest;
        n
    }
    /// Writes the low `n` bits of `v` (n <= 64), most significant first.
    pub fn write(&mut self, v: u64, mut n: u32) {
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(self.free as u32);
            let shift = n - take;
            let chunk = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << (self.free as u32 - take);
            self.free -= take as u8;
            n -= take;
        }
    }
    /// Bits written after the first byte boundary state (for tests).
    pub fn bit_len(&self) -> usize {
        self.bytes.len() * 8 - self.free as usize
    }
}

/// MSB-first bit reader.
pub struct BitReader<'a> {
    b: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    /// Reads `b` from its first bit.
    pub fn new(b: &'a [u8]) -> Self {
        BitReader { b, bit: 0 }
    }
    /// `n` bits (n <= 64), `None` past the end.
    pub fn read(&mut self, n: u32) -> Option<u64> {
        if self.bit + n as usize > self.b.len() * 8 {
            return None;
        }
        let mut v = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.b[self.bit / 8];
            let used = (self.bit % 8) as u32;
            let take = left.min(8 - used);
            let bits = (byte >> (8 - used - take)) & ((1u16 << take) - 1) as u8;
            v = (v << take) | bits as u64;
            self.bit += take as usize;
            left -= take;
        }
        Some(v)
    }
    /// A Go uvarint read as whole bytes from the bit stream (as `binary.ReadUvarint` on it).
    pub fn uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        let mut s = 0u32;
        for i in 0..10 {
            let c = self.read(8)? as u8;
            if c < 0x80 {
                if i == 9 && c > 1 {
                    return None;
                }
                return Some(x | (c as u64) << s);
            }
            x |= ((c & 0x7f) as u64) << s;
            s += 7;
        }
        None
    }
    /// A Go varint read as whole bytes.
    pub fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_go() {
        let mut b = Vec::new();
        put_uvarint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        b.clear();
        put_varint(&mut b, -1);
        assert_eq!(b, [0x01]);
        b.clear();
        put_varint(&mut b, 1_700_000_000_000);
        // From BLOCK-FORMAT's worked example (series mint): 80a0abfef962.
        assert_eq!(b, [0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62]);
        assert_eq!(varint(&b), Some((1_700_000_000_000, 6)));
        assert_eq!(uvarint(&[0x80]), None);
    }

    #[test]
    fn bits_round_trip() {
        let mut w = BitWriter::with_prefix(&[0xaa]);
        w.write(0b101, 3);
        w.write(u64::MAX, 64);
        w.write(0, 1);
        w.write(0x3fff, 14);
        let mut r = BitReader::new(&w.bytes[1..]);
        assert_eq!(r.read(3), Some(0b101));
        assert_eq!(r.read(64), Some(u64::MAX));
        assert_eq!(r.read(1), Some(0));
        assert_eq!(r.read(14), Some(0x3fff));
        assert_eq!(w.bytes.len(), 1 + (3 + 64 + 1 + 14usize).div_ceil(8));
    }
}
