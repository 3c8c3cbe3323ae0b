//! Spec 4.1 primitives: be64, uvarint, zigzag varint, length-prefixed strings.
//!
//! Reading goes through [`Decoder`], a bounds-checked cursor that never panics and reports the
//! offset of the field that failed. Writing is a handful of `put_*` functions on a `Vec<u8>`.

use super::{DecodeError, DecodeErrorKind, RecordType};

/// Longest uvarint Go writes or accepts (`binary.MaxVarintLen64`).
const MAX_VARINT_LEN: usize = 10;

/// Why a uvarint could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VarintError {
    Truncated,
    Overflow,
}

/// Reads a uvarint from the front of `buf` with Go's `binary.Uvarint` rules (which Prometheus's
/// `dennwc/varint` copies): at most 10 bytes, the 10th byte may only be 0 or 1. Non-minimal
/// encodings such as `80 00` are accepted. Returns the value and the bytes used.
#[inline]
pub(crate) fn read_uvarint(buf: &[u8]) -> std::result::Result<(u64, usize), VarintError> {
    // One-byte values are by far the most common (sample deltas, label counts).
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            return Ok((u64::from(b), 1));
        }
    }
    let mut x: u64 = 0;
    for (i, &b) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        let shift = 7 * i as u32;
        if b < 0x80 {
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return Err(VarintError::Overflow);
            }
            return Ok((x | u64::from(b) << shift, i + 1));
        }
        x |= u64::from(b & 0x7f) << shift;
    }
    // Ten continuation bytes: Go calls it overflow only if an 11th byte exists.
    if buf.len() > MAX_VARINT_LEN {
        Err(VarintError::Overflow)
    } else {
        Err(VarintError::Truncated)
    }
}

/// Undoes zigzag encoding (Go `binary.Varint`).
#[inline]
pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Reads a length-prefixed byte string from the front of `buf`; `None` if it does not fit.
/// Used to walk data that a [`Decoder`] has already validated.
pub(crate) fn split_str(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, n) = read_uvarint(buf).ok()?;
    let rest = buf.get(n..)?;
    let len = usize::try_from(len).ok()?;
    if len > rest.len() {
        return None;
    }
    Some(rest.split_at(len))
}

/// Bounds-checked cursor over one record (or one histogram body).
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    record_type: Option<RecordType>,
    entry: usize,
}

pub(crate) type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    /// A cursor at `pos` (1 to skip the type byte). Offsets in errors are indexes into `buf`.
    pub(crate) fn new(buf: &'a [u8], pos: usize, record_type: Option<RecordType>) -> Self {
        Decoder {
            buf,
            pos: pos.min(buf.len()),
            record_type,
            entry: 0,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Sets the entry index reported by later errors.
    pub(crate) fn set_entry(&mut self, entry: usize) {
        self.entry = entry;
    }

    /// The bytes from `start` up to the cursor.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    // Errors are rare: keep their construction out of the inlined getters.
    #[cold]
    #[inline(never)]
    pub(crate) fn error_at(&self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            record_type: self.record_type,
            offset,
            entry: self.entry,
            kind,
        }
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self, field: &'static str) -> DecodeError {
        self.error_at(self.pos, DecodeErrorKind::Truncated { field })
    }

    #[inline]
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.truncated(field))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(field))?;
        self.pos = end;
        Ok(out)
    }

    #[inline]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.truncated(field))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn be64(&mut self, field: &'static str) -> Result<u64> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest.first_chunk::<8>() {
            Some(b) => {
                self.pos += 8;
                Ok(u64::from_be_bytes(*b))
            }
            None => Err(self.truncated(field)),
        }
    }

    #[inline]
    pub(crate) fn f64(&mut self, field: &'static str) -> Result<f64> {
        self.be64(field).map(f64::from_bits)
    }

    #[inline]
    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u64> {
        // Most varints in a WAL are one byte: skip the general loop for them.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.uvarint_long(field)
    }

    #[inline(never)]
    fn uvarint_long(&mut self, field: &'static str) -> Result<u64> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match read_uvarint(rest) {
            Ok((x, n)) => {
                self.pos += n;
                Ok(x)
            }
            Err(VarintError::Truncated) => Err(self.truncated(field)),
            Err(VarintError::Overflow) => {
                Err(self.error_at(self.pos, DecodeErrorKind::VarintOverflow { field }))
            }
        }
    }

    /// Zigzag signed varint (Go `binary.Varint`).
    #[inline]
    pub(crate) fn varint(&mut self, field: &'static str) -> Result<i64> {
        self.uvarint(field).map(unzigzag)
    }

    /// `uvarint len` + `len` bytes.
    pub(crate) fn str(&mut self, field: &'static str) -> Result<&'a [u8]> {
        let start = self.pos;
        let len = self.uvarint(field)?;
        match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => self.bytes(len, field),
            _ => Err(self.error_at(start, DecodeErrorKind::Truncated { field })),
        }
    }

    /// A uvarint element count, checked against the bytes left: each element takes at least
    /// `min_size` bytes, so a larger count cannot be valid and must not size an allocation.
    pub(crate) fn count(&mut self, field: &'static str, min_size: usize) -> Result<usize> {
        let start = self.pos;
        let count = self.uvarint(field)?;
        let max = self.remaining() / min_size.max(1);
        match usize::try_from(count) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(self.error_at(start, DecodeErrorKind::CountTooLarge { field, count })),
        }
    }
}

pub(crate) fn put_be64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_be_bytes());
}

pub(crate) fn put_f64(out: &mut Vec<u8>, x: f64) {
    put_be64(out, x.to_bits());
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Zigzag signed varint (Go `binary.PutVarint`).
pub(crate) fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x as u64) << 1) ^ ((x >> 63) as u64));
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s);
}
