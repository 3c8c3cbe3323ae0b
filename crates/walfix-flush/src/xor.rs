//! XOR float chunks (encoding 1), bit for bit as `chunkenc/xor.go` (v2.42.0 and v3.5.0 have the
//! same layout): `num_samples u16 BE`, then sample 0 as varint t + 64 value bits, sample 1 as
//! uvarint t-delta + value XOR, later samples as delta-of-delta (`0`, `10`+14, `110`+17,
//! `1110`+20, `1111`+64 bits; `bitRange` accepts -(2^(n-1)-1) ..= 2^(n-1)) + value XOR. Values
//! are raw bits, so staleness markers stay the exact NaN they are. Like Prometheus 3.x we write
//! no superfluous trailing byte (2.x readers stop at `num_samples` and do not need it).

use crate::bits::{put_uvarint, put_varint, BitReader, BitWriter};

/// Encoding byte of XOR chunks in chunk files (`chunkenc.EncXOR`).
pub const ENC_XOR: u8 = 1;

/// Samples per chunk we aim at (Prometheus's `samplesPerChunk` default).
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Cut a chunk before appending once it is longer than this (`MaxBytesPerXORChunk` 1024 minus
/// the 19 bytes of a maximal sample, `head_append.go@v3.5.0` appendPreprocessor).
pub const MAX_CHUNK_BYTES: usize = 1024 - 19;

fn bit_range(x: i64, n: u32) -> bool {
    -((1i64 << (n - 1)) - 1) <= x && x <= 1i64 << (n - 1)
}

/// An XOR chunk being appended to. Its complete bytes can be moved out as it grows
/// ([`XorEncoder::take_complete`], for spilling): appending only needs the state and the last,
/// partly filled byte. An empty encoder holds no heap memory.
#[derive(Clone, Debug)]
pub struct XorEncoder {
    w: BitWriter,
    /// Bytes moved out so far.
    moved: u16,
    n: u16,
    t: i64,
    t_delta: u64,
    v: u64,
    leading: u8,
    trailing: u8,
    /// First timestamp.
    pub mint: i64,
    /// Where the caller put the last bytes moved out (its own pointer; not used here).
    pub moved_at: u64,
}

impl Default for XorEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl XorEncoder {
    /// An empty chunk.
    pub fn new() -> Self {
        XorEncoder {
            w: BitWriter::default(),
            moved: 0,
            n: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0xff,
            trailing: 0,
            mint: 0,
            moved_at: u64::MAX,
        }
    }

    /// Samples so far.
    pub fn len(&self) -> u16 {
        self.n
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Last timestamp.
    pub fn maxt(&self) -> i64 {
        self.t
    }

    /// Chunk bytes so far (header included, moved bytes included).
    pub fn byte_len(&self) -> usize {
        self.moved as usize + self.w.bytes.len()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.w.bytes.capacity()
    }

    /// Bytes held (not moved out).
    pub fn bytes_held(&self) -> usize {
        self.w.bytes.len()
    }

    /// Bytes moved out so far.
    pub fn moved(&self) -> usize {
        self.moved as usize
    }

    /// Moves the complete bytes held to the end of `out` (the first of them start with the
    /// 2-byte sample count, still 0: whoever joins the pieces fills it in); returns how many.
    pub fn take_complete(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.w.take_complete(out);
        self.moved += n as u16;
        n
    }

    /// The bytes held (all of the chunk if nothing was moved out), with the sample count
    /// filled in when the header is among them.
    pub fn bytes(&mut self) -> &[u8] {
        if self.moved == 0 && self.w.bytes.len() >= 2 {
            let n = self.n.to_be_bytes();
            self.w.bytes[0] = n[0];
            self.w.bytes[1] = n[1];
        }
        &self.w.bytes
    }

    /// Appends one sample; `t` must be greater than the last one (the caller checks).
    pub fn append(&mut self, t: i64, v: u64) {
        match self.n {
            0 => {
                // Room for the header and a few samples; grows by doubling after.
                self.w.bytes.reserve_exact(32);
                self.w.write(0, 16);
                let mut b = Vec::with_capacity(10);
                put_varint(&mut b, t);
                for x in b {
                    self.w.write(x as u64, 8);
                }
                self.w.write(v, 64);
                self.mint = t;
            }
            1 => {
                let d = t.wrapping_sub(self.t) as u64;
                let mut b = Vec::with_capacity(10);
                put_uvarint(&mut b, d);
                for x in b {
                    self.w.write(x as u64, 8);
                }
                self.write_value(v);
                self.t_delta = d;
            }
            _ => {
                let d = t.wrapping_sub(self.t) as u64;
                let dod = d.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write(0, 1);
                } else if bit_range(dod, 14) {
                    self.w.write(0b10, 2);
                    self.w.write(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    self.w.write(0b110, 3);
                    self.w.write(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    self.w.write(0b1110, 4);
                    self.w.write(dod as u64, 20);
                } else {
                    self.w.write(0b1111, 4);
                    self.w.write(dod as u64, 64);
                }
                self.write_value(v);
                self.t_delta = d;
            }
        }
        self.t = t;
        self.v = v;
        self.n += 1;
    }

    fn write_value(&mut self, v: u64) {
        let x = v ^ self.v;
        if x == 0 {
            self.w.write(0, 1);
            return;
        }
        self.w.write(1, 1);
        let lead = (x.leading_zeros() as u8).min(31);
        let trail = x.trailing_zeros() as u8;
        if self.leading != 0xff && lead >= self.leading && trail >= self.trailing {
            self.w.write(0, 1);
            let sig = 64 - self.leading as u32 - self.trailing as u32;
            self.w.write(x >> self.trailing, sig);
            return;
        }
        self.leading = lead;
        self.trailing = trail;
        self.w.write(1, 1);
        self.w.write(lead as u64, 5);
        let sig = 64 - lead as u32 - trail as u32;
        // 64 significant bits are written as 0 (6 bits); the reader maps 0 back to 64.
        self.w.write((sig & 63) as u64, 6);
        self.w.write(x >> trail, sig);
    }
}

/// Decodes an XOR chunk's data (after the encoding byte) into `(t, value bits)`.
pub fn decode(data: &[u8]) -> Result<Vec<(i64, u64)>, String> {
    if data.len() < 2 {
        return Err("XOR chunk shorter than its 2-byte header".into());
    }
    let n = u16::from_be_bytes([data[0], data[1]]) as usize;
    let mut out = Vec::with_capacity(n);
    let mut r = BitReader::new(&data[2..]);
    let short = |i: usize| format!("XOR chunk ends in sample {i} of {n}");
    let (mut t, mut v, mut td) = (0i64, 0u64, 0u64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    for i in 0..n {
        match i {
            0 => {
                t = r.varint().ok_or_else(|| short(i))?;
                v = r.read(64).ok_or_else(|| short(i))?;
            }
            _ => {
                if i == 1 {
                    td = r.uvarint().ok_or_else(|| short(i))?;
                } else {
                    let mut prefix = 0u32;
                    for _ in 0..4 {
                        let b = r.read(1).ok_or_else(|| short(i))?;
                        if b == 0 {
                            break;
                        }
                        prefix += 1;
                    }
                    let size = [0u32, 14, 17, 20, 64][prefix as usize];
                    let dod = if size == 0 {
                        0i64
                    } else {
                        let raw = r.read(size).ok_or_else(|| short(i))?;
                        if size < 64 && raw > 1u64 << (size - 1) {
                            raw as i64 - (1i64 << size)
                        } else {
                            raw as i64
                        }
                    };
                    td = (td as i64).wrapping_add(dod) as u64;
                }
                t = t.wrapping_add(td as i64);
                if r.read(1).ok_or_else(|| short(i))? == 1 {
                    if r.read(1).ok_or_else(|| short(i))? == 1 {
                        leading = r.read(5).ok_or_else(|| short(i))? as u32;
                        let mut sig = r.read(6).ok_or_else(|| short(i))? as u32;
                        if sig == 0 {
                            sig = 64;
                        }
                        trailing = 64 - leading - sig;
                    }
                    let sig = 64 - leading - trailing;
                    let bits = r.read(sig).ok_or_else(|| short(i))?;
                    v ^= bits << trailing;
                }
            }
        }
        out.push((t, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(samples: &[(i64, u64)]) -> Vec<u8> {
        let mut e = XorEncoder::new();
        for &(t, v) in samples {
            e.append(t, v);
        }
        let bytes = e.bytes().to_vec();
        assert_eq!(decode(&bytes).unwrap(), samples);
        bytes
    }

    #[test]
    fn three_samples_match_the_spec_bytes() {
        // BLOCK-FORMAT 3.2 [checked against 2.42]: `0003 80a0abfef962 3ff0000000000000 9875
        // 3115ff80`, decoded by hand: t 1700000000000, +15000, +15000; values 1, 1, 0.
        let b = round_trip(&[
            (1_700_000_000_000, 1.0f64.to_bits()),
            (1_700_000_015_000, 1.0f64.to_bits()),
            (1_700_000_030_000, 0.0f64.to_bits()),
        ]);
        let want = [
            0x00, 0x03, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x98,
            0x75, 0x31, 0x15, 0xff, 0x80,
        ];
        assert_eq!(b, want);
    }

    #[test]
    fn dod_range_edges_stale_nan_and_negative_zero() {
        let stale = walfix_format::record::STALE_NAN_BITS;
        let mut s = vec![(0i64, 0u64), (10, (-0.0f64).to_bits())];
        let mut t = 10i64;
        let mut d = 10i64;
        for dod in [
            8192i64,
            -8191,
            8193,
            -8192,
            65536,
            -65535,
            65537,
            524288,
            -524287,
            524289,
            1 << 40,
            -(1 << 40),
            0,
            0,
        ] {
            d += dod;
            t += d;
            s.push((t, stale));
        }
        s.push((t + 1, f64::MAX.to_bits()));
        s.push((t + 2, f64::MIN_POSITIVE.to_bits()));
        s.push((t + 3, 1u64));
        s.push((t + 4, u64::MAX));
        round_trip(&s);
    }

    /// Moving the complete bytes out at every step and joining them gives the same chunk.
    #[test]
    fn bytes_moved_out_join_to_the_same_chunk() {
        let s: Vec<(i64, u64)> = (0..120)
            .map(|i| (1000 + i * 15_000 + (i % 3), ((i * 37) as f64).to_bits()))
            .collect();
        let whole = round_trip(&s);
        for every in [1, 2, 7] {
            let mut e = XorEncoder::new();
            let mut out = Vec::new();
            for (i, &(t, v)) in s.iter().enumerate() {
                e.append(t, v);
                if i % every == 0 {
                    e.take_complete(&mut out);
                    assert!(e.bytes().len() <= 1);
                }
                assert_eq!(e.byte_len(), out.len() + e.bytes().len());
            }
            out.extend_from_slice(e.bytes());
            out[..2].copy_from_slice(&120u16.to_be_bytes());
            assert_eq!(out, whole);
        }
        assert_eq!(XorEncoder::new().heap_bytes(), 0);
    }

    #[test]
    fn one_sample() {
        let b = round_trip(&[(-5, 42.5f64.to_bits())]);
        assert_eq!(b.len(), 2 + 1 + 8);
    }
}
