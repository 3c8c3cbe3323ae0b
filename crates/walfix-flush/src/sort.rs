//! External sort of `(u32, u32, u32)` triples (postings: name position, value position, series
//! ref) within a byte budget: sorted runs of at most the budget go to files, then a k-way merge
//! (runs merged 128 at a time when there are more, so open files stay bounded).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A triple.
pub type Triple = (u32, u32, u32);

const REC: usize = 12;
const FAN_IN: usize = 128;
const IO_BUF: usize = 64 << 10;

struct Run {
    path: PathBuf,
    count: u64,
}

/// Collects triples, spilling sorted runs under `dir` when the buffer would pass the budget.
pub struct Sorter {
    buf: Vec<Triple>,
    cap: usize,
    dir: PathBuf,
    runs: Vec<Run>,
    seq: u64,
    tag: String,
}

fn put(w: &mut impl Write, t: Triple) -> io::Result<()> {
    let mut b = [0u8; REC];
    b[0..4].copy_from_slice(&t.0.to_le_bytes());
    b[4..8].copy_from_slice(&t.1.to_le_bytes());
    b[8..12].copy_from_slice(&t.2.to_le_bytes());
    w.write_all(&b)
}

fn get(r: &mut impl Read) -> io::Result<Triple> {
    let mut b = [0u8; REC];
    r.read_exact(&mut b)?;
    let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Ok((u(0), u(4), u(8)))
}

impl Sorter {
    /// A sorter holding at most `budget` bytes of triples in memory (at least one), with its
    /// run files named `{tag}-run-N` in `dir`.
    pub fn new(dir: &Path, tag: &str, budget: usize) -> Self {
        Sorter {
            buf: Vec::new(),
            cap: (budget / REC).max(1),
            dir: dir.to_path_buf(),
            runs: Vec::new(),
            seq: 0,
            tag: tag.to_string(),
        }
    }

    /// Adds one triple.
    pub fn push(&mut self, t: Triple) -> io::Result<()> {
        if self.buf.len() >= self.cap {
            self.spill()?;
        }
        if self.buf.capacity() == self.buf.len() {
            // Grow by doubling, never past the budget.
            let want = (self.buf.len() * 2).max(1024).min(self.cap) - self.buf.len();
            self.buf.reserve_exact(want);
        }
        self.buf.push(t);
        Ok(())
    }

    fn new_run(&mut self) -> io::Result<(PathBuf, BufWriter<File>)> {
        self.seq += 1;
        let path = self.dir.join(format!("{}-run-{}", self.tag, self.seq));
        let f = BufWriter::with_capacity(IO_BUF, File::create(&path)?);
        Ok((path, f))
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buf.sort_unstable();
        let (path, mut f) = self.new_run()?;
        for &t in &self.buf {
            put(&mut f, t)?;
        }
        f.flush()?;
        self.runs.push(Run {
            path,
            count: self.buf.len() as u64,
        });
        self.buf.clear();
        Ok(())
    }

    /// Runs written so far (0 while everything fits in the budget).
    pub fn runs(&self) -> u64 {
        self.seq
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() * REC
    }

    /// Calls `each` with every triple in ascending order; removes the run files.
    pub fn finish(mut self, mut each: impl FnMut(Triple) -> io::Result<()>) -> io::Result<()> {
        if self.runs.is_empty() {
            self.buf.sort_unstable();
            for &t in &self.buf {
                each(t)?;
            }
            return Ok(());
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        self.buf = Vec::new();
        let res = (|| {
            while self.runs.len() > FAN_IN {
                let group: Vec<Run> = self.runs.drain(..FAN_IN).collect();
                let (path, mut f) = self.new_run()?;
                let mut count = 0u64;
                merge(&group, |t| {
                    count += 1;
                    put(&mut f, t)
                })?;
                f.flush()?;
                for r in &group {
                    fs::remove_file(&r.path)?;
                }
                self.runs.push(Run { path, count });
            }
            merge(&self.runs, &mut each)
        })();
        for r in &self.runs {
            let _ = fs::remove_file(&r.path);
        }
        res
    }
}

impl Drop for Sorter {
    fn drop(&mut self) {
        for r in &self.runs {
            let _ = fs::remove_file(&r.path);
        }
    }
}

fn merge(runs: &[Run], mut each: impl FnMut(Triple) -> io::Result<()>) -> io::Result<()> {
    let mut readers = Vec::with_capacity(runs.len());
    let mut left = Vec::with_capacity(runs.len());
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (i, r) in runs.iter().enumerate() {
        let mut rd = BufReader::with_capacity(IO_BUF, File::open(&r.path)?);
        if r.count > 0 {
            heap.push(Reverse((get(&mut rd)?, i)));
        }
        readers.push(rd);
        left.push(r.count.saturating_sub(1));
    }
    while let Some(Reverse((t, i))) = heap.pop() {
        each(t)?;
        if left[i] > 0 {
            left[i] -= 1;
            heap.push(Reverse((get(&mut readers[i])?, i)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_with(budget: usize, input: &[Triple], dir: &Path) -> (Vec<Triple>, u64) {
        let mut s = Sorter::new(dir, "t", budget);
        for &t in input {
            s.push(t).unwrap();
        }
        let runs = s.runs();
        let mut out = Vec::new();
        s.finish(|t| {
            out.push(t);
            Ok(())
        })
        .unwrap();
        (out, runs)
    }

    #[test]
    fn tiny_budget_many_runs_same_order_and_files_removed() {
        let tmp = tempfile::tempdir().unwrap();
        // A fixed pseudo-random input with duplicates.
        let mut x = 12345u64;
        let input: Vec<Triple> = (0..5000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 60) as u32, (x >> 50) as u32 & 7, (x >> 33) as u32)
            })
            .collect();
        let mut want = input.clone();
        want.sort();
        let (big, runs) = sorted_with(1 << 20, &input, tmp.path());
        assert_eq!((big, runs), (want.clone(), 0));
        // 12 bytes: one triple a run, 5000 runs: merged 128 at a time first.
        for budget in [12, 100, 12 * 999] {
            let (got, runs) = sorted_with(budget, &input, tmp.path());
            assert_eq!(got, want);
            assert!(runs > 1);
        }
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
        assert_eq!(sorted_with(12, &[], tmp.path()).0, vec![]);
    }
}
