//! A set of series refs. Prometheus hands out refs from a counter starting at 1, so a bitmap
//! indexed by ref is compact (one bit per series ever created); refs too large for the bitmap
//! fall back to a hash set.

use std::collections::HashSet;

/// Refs below this go into the bitmap (2^27 bits = 16 MiB at most).
const BITMAP_LIMIT: u64 = 1 << 27;

/// A set of series refs.
#[derive(Clone, Debug, Default)]
pub struct RefSet {
    words: Vec<u64>,
    large: HashSet<u64>,
    len: u64,
}

impl RefSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `r`; returns true if it was not there.
    #[inline]
    pub fn insert(&mut self, r: u64) -> bool {
        if r < BITMAP_LIMIT {
            let w = (r / 64) as usize;
            let bit = 1u64 << (r % 64);
            let word = match self.words.get_mut(w) {
                Some(word) => word,
                None => self.grow(w),
            };
            // Most inserts on the hot path find the ref already there: read before writing, so
            // runs of refs in one word do not chain stores.
            if *word & bit != 0 {
                return false;
            }
            *word |= bit;
            self.len += 1;
            true
        } else {
            self.insert_large(r)
        }
    }

    /// Adds every ref of `refs`. Runs of refs that share a bitmap word (a scrape's samples come
    /// in ref order) are gathered in a register and written once.
    pub fn insert_all(&mut self, refs: impl IntoIterator<Item = u64>) {
        let (mut word, mut bits) = (0usize, 0u64);
        for r in refs {
            if r >= BITMAP_LIMIT {
                self.insert_large(r);
                continue;
            }
            let w = (r / 64) as usize;
            if w != word {
                self.or_word(word, bits);
                (word, bits) = (w, 0);
            }
            bits |= 1u64 << (r % 64);
        }
        self.or_word(word, bits);
    }

    #[inline]
    fn or_word(&mut self, w: usize, bits: u64) {
        if bits == 0 {
            return;
        }
        let word = match self.words.get_mut(w) {
            Some(word) => word,
            None => self.grow(w),
        };
        let new = bits & !*word;
        if new != 0 {
            *word |= new;
            self.len += u64::from(new.count_ones());
        }
    }

    /// Grows the bitmap to hold word `w` (geometrically, so inserting n increasing refs costs
    /// O(n)) and returns it.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, w: usize) -> &mut u64 {
        let want = (w + 1)
            .max(self.words.len() * 2)
            .min((BITMAP_LIMIT / 64) as usize);
        self.words.resize(want, 0);
        &mut self.words[w]
    }

    #[cold]
    #[inline(never)]
    fn insert_large(&mut self, r: u64) -> bool {
        let new = self.large.insert(r);
        self.len += new as u64;
        new
    }

    /// True if `r` is in the set.
    #[inline]
    pub fn contains(&self, r: u64) -> bool {
        if r < BITMAP_LIMIT {
            self.words
                .get((r / 64) as usize)
                .is_some_and(|w| w & (1u64 << (r % 64)) != 0)
        } else {
            self.contains_large(r)
        }
    }

    #[cold]
    #[inline(never)]
    fn contains_large(&self, r: u64) -> bool {
        self.large.contains(&r)
    }

    /// Empties the set, keeping its memory for reuse.
    pub fn clear(&mut self) {
        self.words.fill(0);
        self.large.clear();
        self.len = 0;
    }

    /// Number of refs in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds every ref of `other`.
    pub fn extend_from(&mut self, other: &RefSet) {
        for r in other.iter() {
            self.insert(r);
        }
    }

    /// Iterates over the refs (bitmap part in order, then the rest).
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let small = self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as u64;
                w &= w - 1;
                Some(i as u64 * 64 + b)
            })
        });
        small.chain(self.large.iter().copied())
    }

    /// Bytes of memory held (for reporting the cost per series).
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8 + self.large.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_iter() {
        let mut s = RefSet::new();
        for r in [0u64, 1, 63, 64, 1000, BITMAP_LIMIT, u64::MAX] {
            assert!(s.insert(r));
            assert!(!s.insert(r));
        }
        assert_eq!(s.len(), 7);
        assert!(s.contains(1000) && s.contains(u64::MAX) && !s.contains(999));
        let mut v: Vec<u64> = s.iter().collect();
        v.sort();
        assert_eq!(v, vec![0, 1, 63, 64, 1000, BITMAP_LIMIT, u64::MAX]);
    }

    #[test]
    fn insert_all_equals_inserting_one_by_one() {
        let refs = [
            5u64,
            6,
            6,
            70,
            5,
            0,
            63,
            64,
            1 << 20,
            BITMAP_LIMIT + 3,
            7,
            6,
            1 << 20,
        ];
        for n in 0..=refs.len() {
            let (mut a, mut b) = (RefSet::new(), RefSet::new());
            a.insert(6);
            b.insert(6);
            for &r in &refs[..n] {
                a.insert(r);
            }
            b.insert_all(refs[..n].iter().copied());
            assert_eq!(a.len(), b.len(), "first {n}");
            let (mut x, mut y): (Vec<u64>, Vec<u64>) = (a.iter().collect(), b.iter().collect());
            x.sort();
            y.sort();
            assert_eq!(x, y, "first {n}");
        }
    }
}
