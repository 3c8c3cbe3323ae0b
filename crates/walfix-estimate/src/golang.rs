//! What the Go runtime really allocates for a request: size classes, slice growth, maps.
//!
//! Facts from the Go runtime sources (`runtime/sizeclasses.go`, `runtime/slice.go` `growslice`,
//! `runtime/map.go` for Go <= 1.23 and `internal/runtime/maps` for the Swiss tables of Go 1.24+,
//! `runtime/malloc.go` for the tiny allocator). The size-class table has not changed from Go 1.19
//! (Prometheus 2.42) to Go 1.27 (Debian's Prometheus 3.5).

/// Go's small-object size classes (bytes), `runtime/sizeclasses.go`.
const SIZE_CLASSES: [u32; 67] = [
    8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352,
    384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
    2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
];

/// Go's page size for large objects.
const PAGE: u64 = 8192;

/// Bytes the allocator hands out for a request of `size` bytes (0 for 0: Go returns `zerobase`).
pub fn alloc(size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    if size <= 32768 {
        let i = SIZE_CLASSES.partition_point(|&c| (c as u64) < size);
        return SIZE_CLASSES[i] as u64;
    }
    size.div_ceil(PAGE) * PAGE
}

/// Capacity (elements) of a slice grown by `append` one element at a time to `len` elements
/// of `elem` bytes: Go's `growslice` (double below 256 elements, then +25% +192, rounded up to
/// the size class).
pub fn append_cap(len: u64, elem: u64) -> u64 {
    let mut cap = 0u64;
    while cap < len {
        let need = cap + 1;
        let double = cap * 2;
        let mut newcap = if need > double {
            need
        } else if cap < 256 {
            double
        } else {
            let mut c = cap;
            while c < need {
                c += (c + 3 * 256) / 4;
            }
            c
        };
        newcap = alloc(newcap * elem) / elem.max(1);
        cap = newcap.max(need);
    }
    cap
}

/// Bytes allocated and dropped on the way while a slice grows by `append` one element at a time
/// to `len` elements of `elem` bytes: every backing array before the last one (garbage for the
/// GC; see [`append_cap`] for the growth).
pub fn append_garbage(len: u64, elem: u64) -> u64 {
    let mut cap = 0u64;
    let mut dropped = 0u64;
    while cap < len {
        if cap > 0 {
            dropped += alloc(cap * elem);
        }
        let need = cap + 1;
        let double = cap * 2;
        let mut newcap = if need > double {
            need
        } else if cap < 256 {
            double
        } else {
            let mut c = cap;
            while c < need {
                c += (c + 3 * 256) / 4;
            }
            c
        };
        newcap = alloc(newcap * elem) / elem.max(1);
        cap = newcap.max(need);
    }
    dropped
}

/// The same for 3.x's `appendWithExponentialGrowth` (capacity `2n + 1`).
pub fn exp_growth_garbage(len: u64, elem: u64) -> u64 {
    let mut cap = 0u64;
    let mut dropped = 0u64;
    while cap < len {
        if cap > 0 {
            dropped += alloc(cap * elem);
        }
        cap = cap * 2 + 1;
    }
    dropped
}

/// Capacities a byte slice made with capacity 128 goes through as `append` grows it (XOR chunk
/// streams: `chunkenc.NewXORChunk` makes `make([]byte, 2, 128)`, `bstream.writeByte` appends).
pub fn chunk_caps() -> Vec<u64> {
    let mut caps = vec![128u64];
    while *caps.last().unwrap() < (1 << 20) {
        let cap = *caps.last().unwrap();
        let next = if cap < 256 {
            cap * 2
        } else {
            cap + (cap + 3 * 256) / 4
        };
        caps.push(alloc(next));
    }
    caps
}

/// Bytes of the backing array of a slice grown by `append` to `len` elements of `elem` bytes.
pub fn append_bytes(len: u64, elem: u64) -> u64 {
    alloc(append_cap(len, elem) * elem)
}

/// Bytes of a slice grown by Prometheus 3.x's `appendWithExponentialGrowth` (capacity
/// `len * 2 + 1` each time it is full: 1, 3, 7, 15, ...).
pub fn exp_growth_bytes(len: u64, elem: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let mut cap = 0u64;
    while cap < len {
        cap = cap * 2 + 1;
    }
    alloc(cap * elem)
}

/// Which map implementation the Go toolchain that built Prometheus uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Maps {
    /// Go <= 1.23: buckets of 8 slots, load factor 6.5.
    Buckets,
    /// Go >= 1.24: Swiss tables, groups of 8 slots, load 7/8, tables of <= 1024 slots.
    Swiss,
}

/// Bytes a map with `n` entries of `key` + `value` bytes holds beyond its header (which `make`
/// allocates up front), after growing one insert at a time.
pub fn map_bytes(maps: Maps, n: u64, key: u64, value: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    match maps {
        Maps::Buckets => {
            // bucket: 8 tophash bytes, 8 keys, 8 values, overflow pointer.
            let bucket = 8 + 8 * key + 8 * value + 8;
            let mut b = 0u32;
            while n > 8 && n as f64 > 6.5 * (1u64 << b) as f64 {
                b += 1;
            }
            let buckets = 1u64 << b;
            // makeBucketArray preallocates 2^(B-4) overflow buckets from B = 4 on.
            let extra = if b >= 4 { 1u64 << (b - 4) } else { 0 };
            alloc((buckets + extra) * bucket)
        }
        Maps::Swiss => {
            let group = 8 + 8 * (key + value);
            if n <= 8 {
                return alloc(group);
            }
            // One table holds at most 1024 slots; bigger maps split into several.
            let per_table_max = 1024 * 7 / 8;
            let tables = n.div_ceil(per_table_max);
            let per_table = n.div_ceil(tables);
            let mut cap = 16u64;
            while per_table * 8 > cap * 7 {
                cap *= 2;
            }
            // table struct (~48 bytes, class 48) and a directory pointer per table.
            tables * (alloc(cap / 8 * group) + 48) + alloc(8 * tables)
        }
    }
}

/// Expected value of `f(X)` for X ~ Poisson(`mean`): the entries per stripe when `n` entries
/// are spread over the stripes by a hash.
pub fn poisson_expect(mean: f64, f: impl Fn(u64) -> f64) -> f64 {
    if mean <= 0.0 {
        return f(0);
    }
    let hi = (mean + 12.0 * mean.sqrt() + 12.0).ceil() as u64;
    let mut p = (-mean).exp();
    let mut sum = 0.0;
    let mut total_p = 0.0;
    for k in 0..=hi {
        if k > 0 {
            p *= mean / k as f64;
        }
        sum += p * f(k);
        total_p += p;
    }
    if total_p > 0.0 {
        sum / total_p
    } else {
        f(mean.round() as u64)
    }
}

/// The tiny allocator: pointer-free objects under 16 bytes (short strings) share 16-byte blocks
/// per P (`runtime/malloc.go`, `mallocgc` tiny path). Feed it allocations in order; it counts
/// the blocks used.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tiny {
    off: u64,
    have: bool,
    /// 16-byte blocks allocated.
    pub blocks: u64,
}

impl Tiny {
    /// One allocation of `size` (1..16) bytes.
    pub fn alloc(&mut self, size: u64) {
        let align = if size & 7 == 0 {
            8
        } else if size & 3 == 0 {
            4
        } else if size & 1 == 0 {
            2
        } else {
            1
        };
        let off = self.off.div_ceil(align) * align;
        if self.have && off + size <= 16 {
            self.off = off + size;
            return;
        }
        self.blocks += 1;
        // Keep the new block only if it has more room left than the current one.
        if !self.have || size < self.off {
            self.off = size;
            self.have = true;
        }
    }
}

/// Bytes a Go string of `len` bytes costs when converted from bytes (`slicebytetostring`):
/// nothing for 0 or 1 byte (static), the tiny allocator under 16, a size class otherwise.
/// Returns `None` for the tiny case (feed it to [`Tiny`]).
pub fn string_alloc(len: u64) -> Option<u64> {
    match len {
        0 | 1 => Some(0),
        2..=15 => None,
        _ => Some(alloc(len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(alloc(0), 0);
        assert_eq!(alloc(1), 8);
        assert_eq!(alloc(184), 192);
        assert_eq!(alloc(176), 176);
        assert_eq!(alloc(833), 896);
        assert_eq!(alloc(32769), 40960);
    }

    #[test]
    fn growslice() {
        // byte slices from 128: 256, 512, 896 (512 + (512+768)/4 = 832 -> 896)
        assert_eq!(append_cap(129, 1), 256);
        assert_eq!(append_cap(513, 1), 896);
        assert_eq!(append_cap(1, 8), 1);
        assert_eq!(append_cap(3, 8), 4);
        assert_eq!(exp_growth_bytes(4, 8), 64);
    }

    #[test]
    fn maps() {
        assert_eq!(map_bytes(Maps::Buckets, 1, 8, 8), 144);
        assert_eq!(map_bytes(Maps::Buckets, 9, 8, 8), 288);
        assert_eq!(map_bytes(Maps::Swiss, 8, 8, 8), 144);
        assert!(map_bytes(Maps::Swiss, 9, 8, 8) > 272);
    }

    #[test]
    fn tiny_packs() {
        let mut t = Tiny::default();
        for _ in 0..4 {
            t.alloc(4);
        }
        assert_eq!(t.blocks, 1);
        t.alloc(4);
        assert_eq!(t.blocks, 2);
    }

    #[test]
    fn poisson() {
        let e = poisson_expect(3.0, |k| k as f64);
        assert!((e - 3.0).abs() < 1e-6);
    }
}
