//! Compact per-series storage: about 60 bytes per series, however many series there are.
//!
//! * series live in pages of 4096 entries (no doubling: at most one page of slack);
//! * refs map to series through pages of `u32` indexed by ref (Prometheus hands out refs from 1
//!   upward, so they are dense), with a hash map only for refs beyond 2^32;
//! * label sets map to series through an open-addressing table of `u32` indexes, keyed by the
//!   64-bit label hash kept in each series.

use std::collections::HashMap;

use crate::xor::ChunkState;

const PAGE: usize = 4096;

/// One distinct series (one label set): 48 bytes.
#[derive(Clone, Copy, Debug)]
pub struct SeriesEntry {
    /// 64-bit hash of the label set.
    pub hash: u64,
    /// Head chunk state, first sample time and flags.
    pub c: ChunkState,
}

/// Series pages plus the two indexes.
#[derive(Default)]
pub struct SeriesTable {
    pages: Vec<Vec<SeriesEntry>>,
    len: usize,
    refs: Vec<Option<Box<[u32]>>>,
    far_refs: HashMap<u64, u32>,
    slots: Vec<u32>,
}

/// Refs below this use the paged index.
const NEAR_REFS: u64 = 1 << 32;

impl SeriesTable {
    /// Number of series.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The series at `idx`.
    pub fn get_mut(&mut self, idx: u32) -> &mut SeriesEntry {
        let i = idx as usize;
        &mut self.pages[i / PAGE][i % PAGE]
    }

    /// Every series.
    pub fn iter(&self) -> impl Iterator<Item = &SeriesEntry> {
        self.pages.iter().flatten()
    }

    /// Series index of `r`, if a series record defined it.
    pub fn by_ref(&self, r: u64) -> Option<u32> {
        if r >= NEAR_REFS {
            return self.far_refs.get(&r).copied();
        }
        let page = (r as usize) / PAGE;
        let slot = self.refs.get(page)?.as_ref()?[(r as usize) % PAGE];
        slot.checked_sub(1)
    }

    /// Points `r` at series `idx`.
    pub fn set_ref(&mut self, r: u64, idx: u32) {
        if r >= NEAR_REFS {
            self.far_refs.insert(r, idx);
            return;
        }
        let page = (r as usize) / PAGE;
        if self.refs.len() <= page {
            self.refs.resize_with(page + 1, || None);
        }
        let p = self.refs[page].get_or_insert_with(|| vec![0u32; PAGE].into_boxed_slice());
        p[(r as usize) % PAGE] = idx + 1;
    }

    /// Finds the series with label hash `hash`, or adds it. Returns (index, created).
    pub fn find_or_insert(&mut self, hash: u64) -> (u32, bool) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            match self.slots[i] {
                0 => break,
                s => {
                    let idx = s - 1;
                    let e = &self.pages[idx as usize / PAGE][idx as usize % PAGE];
                    if e.hash == hash {
                        return (idx, false);
                    }
                }
            }
            i = (i + 1) & mask;
        }
        let idx = self.len as u32;
        if self.pages.last().is_none_or(|p| p.len() == PAGE) {
            self.pages.push(Vec::with_capacity(PAGE));
        }
        self.pages
            .last_mut()
            .expect("just pushed")
            .push(SeriesEntry {
                hash,
                c: ChunkState::default(),
            });
        self.len += 1;
        self.slots[i] = idx + 1;
        (idx, true)
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(1024);
        let mut slots = vec![0u32; cap];
        let mask = cap - 1;
        for (idx, e) in self.iter().enumerate() {
            let mut i = (e.hash as usize) & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = idx as u32 + 1;
        }
        self.slots = slots;
    }

    /// Bytes this table holds (for the estimator's own footprint report).
    pub fn heap_bytes(&self) -> u64 {
        let pages = self.pages.iter().map(|p| p.capacity()).sum::<usize>()
            * std::mem::size_of::<SeriesEntry>();
        let refs = self.refs.iter().flatten().count() * PAGE * 4 + self.refs.capacity() * 8;
        let far = self.far_refs.capacity() * 16;
        (pages + refs + far + self.slots.capacity() * 4) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_48_bytes() {
        assert_eq!(std::mem::size_of::<SeriesEntry>(), 48);
    }

    #[test]
    fn dedupe_and_refs() {
        let mut t = SeriesTable::default();
        let (a, new_a) = t.find_or_insert(42);
        let (b, new_b) = t.find_or_insert(42);
        assert!(new_a && !new_b && a == b);
        for h in 0..10_000u64 {
            t.find_or_insert(h.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        t.set_ref(7, a);
        t.set_ref(1 << 40, a);
        assert_eq!(t.by_ref(7), Some(a));
        assert_eq!(t.by_ref(1 << 40), Some(a));
        assert_eq!(t.by_ref(8), None);
        assert_eq!(t.len(), 10_001);
    }
}
