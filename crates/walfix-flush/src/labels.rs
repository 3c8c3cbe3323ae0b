//! Interned label strings and label sets: each distinct string once, each series as a run of
//! `(name id, value id)` pairs in one arena.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

/// Distinct label names and values.
#[derive(Default)]
pub struct Interner {
    ids: HashMap<Rc<[u8]>, u32>,
    strings: Vec<Rc<[u8]>>,
    bytes: usize,
}

impl Interner {
    /// The id of `s`, adding it if new.
    pub fn intern(&mut self, s: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        let rc: Rc<[u8]> = Rc::from(s);
        self.bytes += s.len();
        self.strings.push(rc.clone());
        self.ids.insert(rc, id);
        id
    }
    /// The string of `id`.
    pub fn get(&self, id: u32) -> &[u8] {
        &self.strings[id as usize]
    }
    /// Distinct strings.
    pub fn len(&self) -> usize {
        self.strings.len()
    }
    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
    /// Heap bytes held (estimate: string bytes + Rc headers + map and vector slots).
    pub fn heap_bytes(&self) -> usize {
        self.bytes + self.strings.len() * (16 + 16) + self.ids.capacity() * (16 + 4 + 1)
    }
}

/// Label sets of all series, as interned pairs.
#[derive(Default)]
pub struct LabelStore {
    pairs: Vec<[u32; 2]>,
    starts: Vec<u32>,
}

impl LabelStore {
    /// Adds a label set; returns its index.
    pub fn push(&mut self, pairs: &[[u32; 2]]) -> u32 {
        let idx = self.starts.len() as u32;
        self.starts.push(self.pairs.len() as u32);
        self.pairs.extend_from_slice(pairs);
        idx
    }
    /// The pairs of series `idx`.
    pub fn get(&self, idx: u32) -> &[[u32; 2]] {
        let i = idx as usize;
        let start = self.starts[i] as usize;
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.pairs.len(), |&e| e as usize);
        &self.pairs[start..end]
    }
    /// Series stored.
    pub fn len(&self) -> usize {
        self.starts.len()
    }
    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.pairs.capacity() * 8 + self.starts.capacity() * 4
    }
}

/// `labels.Compare`: pairwise by name then value (bytewise), then the shorter set first.
pub fn compare(a: &[[u32; 2]], b: &[[u32; 2]], s: &Interner) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        for k in 0..2 {
            if x[k] != y[k] {
                let o = s.get(x[k]).cmp(s.get(y[k]));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
    a.len().cmp(&b.len())
}

/// Hash of a label set's bytes (names and values with their lengths), the same for the
/// writer and the reader: FNV-1a, then a final mix.
pub fn hash_labels<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in (b.len() as u32).to_le_bytes().iter().chain(b) {
            h = (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (n, v) in pairs {
        eat(n);
        eat(v);
    }
    mix(h)
}

/// A 64-bit finaliser (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One sample's contribution to a block's digest: added up (wrapping) over all samples, so the
/// order samples are met in does not matter.
pub fn sample_digest(series_hash: u64, t: i64, v: u64) -> u64 {
    mix(series_hash ^ mix(t as u64 ^ mix(v)))
}
