//! The head chunk of each series, as Prometheus builds it on replay: when it cuts a new chunk
//! (`memSeries.appendPreprocessor`, `computeChunkEndTime`) and how many bits each sample takes in
//! the Gorilla XOR encoding (`chunkenc/xor.go`). Only sizes are tracked, no bytes are written.

/// The chunk cutting rules of one Prometheus version family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChunkRules {
    /// Samples per chunk Prometheus aims at (`samplesPerChunk`, 120).
    pub samples_per_chunk: u16,
    /// Cut when the chunk is longer than this many bytes (`MaxBytesPerXORChunk - 19` = 1005 from
    /// 2.48 on; none before).
    pub max_bytes: Option<u32>,
    /// Head chunk range in ms (`--storage.tsdb.min-block-duration`, 2 h): no chunk crosses a
    /// multiple of it.
    pub chunk_range_ms: i64,
}

/// The XOR appender and cutting state of one series, plus three small fields its owner keeps
/// in the same 40 bytes.
#[derive(Clone, Copy, Debug)]
pub struct ChunkState {
    /// Value of the last sample (bits).
    pub v: u64,
    /// Timestamp of the last sample (ms); `i64::MIN` before the first one.
    pub t: i64,
    /// Last timestamp delta (saturated to u32; only its difference to the next one matters).
    t_delta: u32,
    /// `nextAt - chunk start`, ms (saturated).
    next_at: u32,
    /// `t - chunk start`, ms (saturated).
    age: u32,
    /// Bits written to the current chunk after its 2-byte header.
    bits: u16,
    /// Samples in the current chunk (0: no chunk yet).
    pub n: u8,
    leading: u8,
    trailing: u8,
    /// Chunks m-mapped so far (saturating); kept by the caller.
    pub mmapped: u16,
    /// Free flag bits for the caller.
    pub flags: u8,
    /// Free 32 bits for the caller (a creation time in seconds).
    pub first_s: i32,
}

impl Default for ChunkState {
    fn default() -> Self {
        ChunkState {
            v: 0,
            t: i64::MIN,
            t_delta: 0,
            next_at: 0,
            age: 0,
            bits: 0,
            n: 0,
            leading: 0xff,
            trailing: 0,
            mmapped: 0,
            flags: 0,
            first_s: 0,
        }
    }
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Added to the current chunk.
    Same,
    /// A new chunk was cut first; the previous one (if it had samples) is m-mapped.
    Cut {
        /// True if the previous chunk had samples (Prometheus m-maps it).
        mmapped: bool,
    },
    /// Timestamp not after the last one: Prometheus drops it as out of order.
    OutOfOrder,
}

fn range_end(t: i64, width: i64) -> i64 {
    // rangeForTimestamp: (t / width) * width + width, Go's truncating division.
    (t / width) * width + width
}

fn varint_len(v: i64) -> u32 {
    let u = ((v << 1) ^ (v >> 63)) as u64;
    uvarint_len(u)
}

fn uvarint_len(mut u: u64) -> u32 {
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

fn bit_range(x: i64, nbits: u32) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

impl ChunkState {
    /// Bytes of the current chunk (header included); 0 if there is none.
    pub fn chunk_len(&self) -> u64 {
        if self.n == 0 {
            0
        } else {
            2 + (self.bits as u64).div_ceil(8)
        }
    }

    fn cut(&mut self, t: i64, rules: &ChunkRules) -> bool {
        let had = self.n > 0;
        self.n = 0;
        self.bits = 0;
        self.age = 0;
        self.leading = 0xff;
        self.trailing = 0;
        let end = range_end(t, rules.chunk_range_ms);
        self.next_at = (end - t).clamp(0, u32::MAX as i64) as u32;
        had
    }

    /// Appends one float sample as `memSeries.append` does on replay.
    pub fn append(&mut self, t: i64, v: u64, rules: &ChunkRules) -> Appended {
        let mut result = Appended::Same;
        let mut created = false;
        if self.n == 0 && self.t == i64::MIN {
            self.cut(t, rules);
            created = true;
            result = Appended::Cut { mmapped: false };
        }
        if self.t != i64::MIN && self.t >= t {
            return Appended::OutOfOrder;
        }
        if let Some(max) = rules.max_bytes {
            if !created && self.n > 0 && self.chunk_len() > max as u64 {
                let m = self.cut(t, rules);
                result = Appended::Cut { mmapped: m };
            }
        }
        let n = self.n as u16;
        if n == rules.samples_per_chunk / 4 && n > 0 {
            // computeChunkEndTime(start, cur = last t, max = nextAt)
            let start = self.t - self.age as i64;
            let max = start + self.next_at as i64;
            let cur = self.t;
            let k = (max - start) as f64 / (((cur - start + 1) * 4) as f64);
            let end = if k <= 1.0 {
                max
            } else {
                start + ((max - start) as f64 / k.floor()) as i64
            };
            self.next_at = (end - start).clamp(0, u32::MAX as i64) as u32;
        }
        if n > 0 {
            let start = self.t - self.age as i64;
            if t >= start + self.next_at as i64 || n >= rules.samples_per_chunk * 2 {
                let m = self.cut(t, rules);
                result = Appended::Cut { mmapped: m };
            }
        }
        self.write(t, v);
        result
    }

    /// XOR-encodes one sample into the current chunk (sizes only).
    fn write(&mut self, t: i64, v: u64) {
        let bits: u32 = match self.n {
            0 => {
                self.t_delta = 0;
                varint_len(t) * 8 + 64
            }
            1 => {
                let delta = t.wrapping_sub(self.t);
                self.t_delta = delta.clamp(0, u32::MAX as i64) as u32;
                uvarint_len(delta as u64) * 8 + self.value_bits(v)
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta - self.t_delta as i64;
                self.t_delta = delta.clamp(0, u32::MAX as i64) as u32;
                let tb = if dod == 0 {
                    1
                } else if bit_range(dod, 14) {
                    2 + 14
                } else if bit_range(dod, 17) {
                    3 + 17
                } else if bit_range(dod, 20) {
                    4 + 20
                } else {
                    4 + 64
                };
                tb + self.value_bits(v)
            }
        };
        if self.n > 0 {
            let start = self.t - self.age as i64;
            self.age = (t - start).clamp(0, u32::MAX as i64) as u32;
        }
        self.bits = self.bits.saturating_add(bits.min(u16::MAX as u32) as u16);
        self.n = self.n.saturating_add(1);
        self.t = t;
        self.v = v;
    }

    /// Bits of the value: 1 if unchanged, else the XOR in the previous leading/trailing-zero
    /// window if it fits, else in a new one. Written without branches on the value (which the
    /// CPU cannot predict): both sizes are computed and one is picked.
    #[inline]
    fn value_bits(&mut self, v: u64) -> u32 {
        let delta = v ^ self.v;
        let same = delta == 0;
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        let reuse =
            (self.leading != 0xff) & (leading >= self.leading) & (trailing >= self.trailing);
        let old_bits = 66u32.wrapping_sub(self.leading as u32 + self.trailing as u32);
        let new_bits = 77u32.wrapping_sub(leading as u32 + trailing as u32);
        let renew = !same & !reuse;
        self.leading = if renew { leading } else { self.leading };
        self.trailing = if renew { trailing } else { self.trailing };
        if same {
            1
        } else if reuse {
            old_bits
        } else {
            new_bits
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ChunkRules = ChunkRules {
        samples_per_chunk: 120,
        max_bytes: None,
        chunk_range_ms: 7_200_000,
    };

    #[test]
    fn constant_series_is_tiny() {
        let mut c = ChunkState::default();
        let t0 = 7_200_000 * 1000;
        for i in 0..100 {
            c.append(t0 + i * 15_000, 1.0f64.to_bits(), &RULES);
        }
        // header 2 + first t varint (6 bytes) + 64 bits + 2 bytes delta + 1 bit + 98 * 2 bits
        assert_eq!(c.n, 100);
        assert!(c.chunk_len() < 50, "{}", c.chunk_len());
    }

    #[test]
    fn cuts_evenly_within_range() {
        // 15 s samples: 480 per 2 h, so 4 chunks of 120 per range.
        let mut c = ChunkState::default();
        let t0 = 7_200_000 * 1000;
        let mut cuts = 0;
        for i in 0..480 {
            if let Appended::Cut { mmapped: true } = c.append(t0 + i * 15_000, 0, &RULES) {
                cuts += 1;
            }
        }
        assert_eq!(cuts, 3);
        assert_eq!(c.n, 120);
    }

    #[test]
    fn out_of_order_dropped() {
        let mut c = ChunkState::default();
        c.append(1000, 0, &RULES);
        assert_eq!(c.append(1000, 0, &RULES), Appended::OutOfOrder);
        assert_eq!(c.append(999, 0, &RULES), Appended::OutOfOrder);
    }

    #[test]
    fn state_is_small() {
        assert_eq!(std::mem::size_of::<ChunkState>(), 40);
    }
}
