//! Label sets as compact records (kept on disk during a flush, not in memory), their order
//! (`labels.Compare`), their hash, and a block's symbol table built over records in a map.
//!
//! A record is `uvarint pairs | (uvarint len | bytes){2 * pairs}`, names sorted: self-delimiting,
//! so two records are equal iff one is a prefix of the other's bytes.

use std::cmp::Ordering;

use crate::bits::{put_uvarint, Cursor};

/// Appends the record of `pairs` (already sorted by name) to `out`.
pub fn encode<'a>(pairs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>, out: &mut Vec<u8>) {
    put_uvarint(out, pairs.len() as u64);
    for (n, v) in pairs {
        put_uvarint(out, n.len() as u64);
        out.extend_from_slice(n);
        put_uvarint(out, v.len() as u64);
        out.extend_from_slice(v);
    }
}

/// A record cut short.
#[derive(Debug)]
pub struct Cut;

/// The record starting at `at` in `b`: its pairs, and the offset of each string's length
/// varint (for the symbol table), or `None` if `b` does not hold a whole record there.
pub struct Record<'a> {
    c: Cursor<'a>,
    left: u64,
}

impl<'a> Record<'a> {
    /// The record at `at`.
    pub fn at(b: &'a [u8], at: usize) -> Option<Self> {
        let mut c = Cursor::new(b);
        c.pos = at;
        if at > b.len() {
            return None;
        }
        let left = c.uvarint()?;
        Some(Record { c, left })
    }
    /// Pairs left.
    pub fn pairs_left(&self) -> u64 {
        self.left
    }
    /// The next `(name offset, name, value offset, value)`; `Err` if the record is cut short.
    #[allow(clippy::type_complexity)]
    pub fn next_pair(&mut self) -> Result<Option<(usize, &'a [u8], usize, &'a [u8])>, Cut> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let no = self.c.pos;
        let n = self.c.uvarint_bytes().ok_or(Cut)?;
        let vo = self.c.pos;
        let v = self.c.uvarint_bytes().ok_or(Cut)?;
        Ok(Some((no, n, vo, v)))
    }
    /// Bytes of the record from its start up to where it has been read.
    pub fn end(&self) -> usize {
        self.c.pos
    }
}

/// Checks that a whole record starts at `at`; returns its end.
pub fn validate(b: &[u8], at: usize) -> Option<usize> {
    let mut r = Record::at(b, at)?;
    while r.next_pair().ok()?.is_some() {}
    Some(r.end())
}

/// The string whose length varint is at `at`.
pub fn string_at(b: &[u8], at: usize) -> &[u8] {
    let mut c = Cursor::new(b);
    c.pos = at.min(b.len());
    c.uvarint_bytes().unwrap_or(&[])
}

/// `labels.Compare` of the records at `a` and `b` (validated first: a cut record compares by
/// what it has, so the order stays total): pairwise by name then value (bytewise), then the
/// shorter set first.
pub fn compare(buf: &[u8], a: usize, b: usize) -> Ordering {
    let (Some(mut x), Some(mut y)) = (Record::at(buf, a), Record::at(buf, b)) else {
        return a.cmp(&b);
    };
    loop {
        match (x.next_pair(), y.next_pair()) {
            (Ok(Some((_, n1, _, v1))), Ok(Some((_, n2, _, v2)))) => {
                let o = n1.cmp(n2).then(v1.cmp(v2));
                if o != Ordering::Equal {
                    return o;
                }
            }
            (Ok(None), Ok(None)) => return Ordering::Equal,
            (Ok(None), _) => return Ordering::Less,
            (_, Ok(None)) => return Ordering::Greater,
            _ => return a.cmp(&b),
        }
    }
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

fn hash_str(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in s {
        h = (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

const EMPTY: u64 = u64::MAX;

/// A block's symbols: the distinct strings of some records in a buffer (the mapped label
/// file), sorted, with a content -> position table. Each distinct string costs 8 B (its
/// offset) plus 13..27 B of open-addressing slots (a 32-bit fingerprint and an index, at most
/// 60 % full, so a lookup rarely decodes a string that is not the one); the strings stay in
/// the buffer.
pub struct Symbols {
    /// Offsets (of the length varint) of the distinct strings; sorted by bytes once
    /// [`Symbols::finish`] ran.
    offs: Vec<u64>,
    /// `fingerprint << 32 | index into offs`, or EMPTY.
    slots: Vec<u64>,
    sorted: bool,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols {
            offs: Vec::new(),
            slots: vec![EMPTY; 1024],
            sorted: false,
        }
    }
}

impl Symbols {
    fn find(&self, buf: &[u8], s: &[u8], h: u64) -> (usize, Option<u32>) {
        let mask = self.slots.len() - 1;
        let fp = h >> 32;
        let mut i = h as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => return (i, None),
                x if x >> 32 == fp
                    && string_at(buf, self.offs[(x & 0xffff_ffff) as usize] as usize) == s =>
                {
                    return (i, Some(x as u32))
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn place(&mut self, buf: &[u8], k: usize) {
        let s = string_at(buf, self.offs[k] as usize);
        let h = hash_str(s);
        let (i, _) = self.find(buf, s, h);
        self.slots[i] = (h >> 32) << 32 | k as u64;
    }

    /// Adds the string whose length varint is at `at` in `buf`.
    pub fn add(&mut self, buf: &[u8], at: usize) -> Result<(), String> {
        let s = string_at(buf, at);
        let h = hash_str(s);
        let (i, k) = self.find(buf, s, h);
        if k.is_none() {
            if self.offs.len() >= u32::MAX as usize {
                return Err("more than 2^32 - 1 distinct label strings in a block".into());
            }
            self.slots[i] = (h >> 32) << 32 | self.offs.len() as u64;
            self.offs.push(at as u64);
            if self.offs.len() * 5 > self.slots.len() * 3 {
                self.slots = vec![EMPTY; self.slots.len() * 2];
                for k in 0..self.offs.len() {
                    self.place(buf, k);
                }
            }
        }
        Ok(())
    }

    /// Sorts the strings; positions are final from now on.
    pub fn finish(&mut self, buf: &[u8]) {
        self.offs
            .sort_unstable_by(|a, b| string_at(buf, *a as usize).cmp(string_at(buf, *b as usize)));
        self.offs.shrink_to_fit();
        self.slots.iter_mut().for_each(|s| *s = EMPTY);
        for k in 0..self.offs.len() {
            self.place(buf, k);
        }
        self.sorted = true;
    }

    /// Distinct strings.
    pub fn len(&self) -> usize {
        self.offs.len()
    }

    /// True if none.
    pub fn is_empty(&self) -> bool {
        self.offs.is_empty()
    }

    /// The string at position `pos`.
    pub fn get<'b>(&self, buf: &'b [u8], pos: u32) -> &'b [u8] {
        self.offs
            .get(pos as usize)
            .map_or(&[], |&o| string_at(buf, o as usize))
    }

    /// Position of `s` (after [`Symbols::finish`]).
    pub fn position(&self, buf: &[u8], s: &[u8]) -> Option<u32> {
        debug_assert!(self.sorted);
        self.find(buf, s, hash_str(s)).1
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.offs.capacity() * 8 + self.slots.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)], out: &mut Vec<u8>) -> usize {
        let at = out.len();
        encode(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())), out);
        at
    }

    /// The order of `labels.Compare` (model/labels, Go): pairwise name then value, then length.
    #[test]
    fn compare_is_labels_compare() {
        let mut b = Vec::new();
        let a = rec(&[("a", "1")], &mut b);
        let a2 = rec(&[("a", "1"), ("b", "")], &mut b);
        let ab = rec(&[("a", "10")], &mut b);
        let b1 = rec(&[("b", "0")], &mut b);
        let empty = rec(&[], &mut b);
        let a_dup = rec(&[("a", "1")], &mut b);
        assert_eq!(compare(&b, a, a_dup), Ordering::Equal);
        assert_eq!(compare(&b, a, a2), Ordering::Less);
        assert_eq!(compare(&b, a2, ab), Ordering::Less); // "1" < "10" decides before length
        assert_eq!(compare(&b, ab, b1), Ordering::Less);
        assert_eq!(compare(&b, empty, a), Ordering::Less);
        assert_eq!(compare(&b, b1, a), Ordering::Greater);
        assert_eq!(validate(&b, a2), Some(ab));
        assert_eq!(validate(&b, b.len() - 1), None);
        assert_eq!(validate(&b[..b.len() - 1], a_dup), None);
    }

    #[test]
    fn symbols_sorted_distinct_with_positions() {
        let mut b = Vec::new();
        let mut recs = Vec::new();
        for i in 0..3000 {
            let v = format!("v{}", i % 1500);
            recs.push(rec(&[("__name__", "m"), ("k", &v)], &mut b));
        }
        let mut s = Symbols::default();
        for &r in &recs {
            let mut it = Record::at(&b, r).unwrap();
            while let Some((no, _, vo, _)) = it.next_pair().unwrap() {
                s.add(&b, no).unwrap();
                s.add(&b, vo).unwrap();
            }
        }
        s.finish(&b);
        let mut want: Vec<String> = (0..1500).map(|i| format!("v{i}")).collect();
        want.extend(["__name__".into(), "k".into(), "m".into()]);
        want.sort();
        assert_eq!(s.len(), want.len());
        for (i, w) in want.iter().enumerate() {
            assert_eq!(s.get(&b, i as u32), w.as_bytes());
            assert_eq!(s.position(&b, w.as_bytes()), Some(i as u32));
        }
        assert_eq!(s.position(&b, b"nope"), None);
    }
}
