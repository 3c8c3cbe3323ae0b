//! `walfix flush`: turn a Prometheus WAL into persistent TSDB blocks that Prometheus 2.42, 2.53
//! and 3.5 load, so that a Prometheus whose WAL replay does not fit in memory can start from
//! memory-mapped blocks instead.
//!
//! One pass reads the checkpoint and the segments above it in Prometheus's replay order
//! ([`walfix::layout::discover`], [`walfix_format::frames::RecordReader`],
//! [`walfix_format::record::visit`]) and applies replay's rules: samples of unknown refs are
//! dropped, series records with the same labels share one series, per series a sample is kept
//! only if its timestamp is after the last kept one, samples before the newest existing block's
//! end are dropped. Kept float samples (staleness markers included, as the NaN bits they are)
//! are encoded into XOR chunks of at most 120 samples (cut before passing 1005 bytes, and at
//! every 2 h boundary). Closed chunks go to one spill file per 2 h window, next to the output.
//! Each window then becomes one block: series sorted by labels, chunks copied from the spill in
//! index order, index v2, `meta.json`, `tombstones`. The window is aligned to the epoch
//! (`[k*2h, (k+1)*2h)`); a block's `minTime` is its first sample and its `maxTime` the window's
//! end, except for the newest block, which ends just after the last sample so fresh scrapes are
//! not out of bounds. Each block is built as `<ULID>.tmp-for-creation` (Prometheus deletes such
//! directories when it opens the data dir), read back by [`read::read_block`] and compared with
//! what was written (series, chunks, samples and a digest of every sample's labels, time and
//! value bits), and only then renamed to `<ULID>`.
//!
//! # What is not written (this first part)
//!
//! * Native histogram samples (integer and float): counted in [`NotWritten`], not written.
//! * Exemplars and metadata: a block has no place for them; counted.
//! * Tombstones from the WAL (admin `delete_series`) are kept the way replay keeps them (known
//!   ref, `maxt` not before the existing blocks' end) and written into each block's `tombstones`
//!   file for the series they name, clipped to the block: Prometheus applies them at query time
//!   and drops the data at the next compaction, as for a deletion on a persisted block.
//! * The WBL (out-of-order samples): a `wbl/` holding samples makes flush refuse.
//!
//! # Handing over
//!
//! Once every block is in place, what replay would read besides them (`wal/`, `chunks_head/`,
//! `wbl/`, `chunk_snapshot.*`) moves into a backup run ([`handover`]), so the next Prometheus
//! starts from the blocks with an empty head. It stays in place when something replay would
//! apply is not in the blocks (native histograms in this version), with `--output-dir`, and with
//! [`FlushOptions::keep_wal`]: Prometheus then replays it again but drops every sample before
//! the blocks' end, so nothing is counted twice.
//!
//! # Memory and disk (measured figures in docs/flush.md)
//!
//! Bounded by the number of series, not the WAL's length: measured 27 MiB + 175 B per series of
//! heap (1M series: 192 MiB). During the pass, per series: 112 B of state (label hash, last time,
//! last closed chunk, label record offset, the open chunk's XOR state), 4-8 B per series ref,
//! 8-16 B of dedup table. Label sets are records in a spill file (a hash match is confirmed
//! against it); open chunks' bytes share a budget ([`DEFAULT_OPEN_CHUNK_BUDGET`]) beyond which
//! the biggest move out to the spill in pieces, so chunks keep their full length and the blocks
//! do not depend on the budget. Each window's series list is a spill file too. A block is built
//! from the window's list sorted by the (mapped) label records, a symbol table over them (8 B
//! plus 13-27 B of slots per distinct string) and postings sorted within
//! [`DEFAULT_SORT_BUDGET`] ([`sort`]). Segments, spill and blocks are read through read-only
//! maps (page cache) when the process allowed it ([`walfix::mmap::enable_process_wide`], as the
//! `walfix` binary does), else read into memory. Free space in the output's file system is
//! checked before, during and after the pass ([`FlushError::NoSpace`]); the figures are in
//! [`DiskReport`].

pub mod bits;
pub mod block;
pub mod handover;
pub mod labels;
pub mod read;
pub mod sort;
pub mod xor;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use walfix::layout::{discover, Log, WalFlavor};
use walfix::mmap::SegmentData;
use walfix_format::frames::{RecordEvent, RecordReader};
use walfix_format::record::{
    self, Acceptance, Exemplar, HistogramSample, LogKind, Metadata, RecordType, Sample, Series,
    Tombstone, Visitor,
};

use crate::bits::put_uvarint;
use crate::block::{ChunkMeta, ChunkWriter, IndexWriter, Meta, MetaCompaction, MetaStats};
use crate::labels::{hash_labels, sample_digest, Symbols};
use crate::xor::{XorEncoder, ENC_XOR, MAX_CHUNK_BYTES, SAMPLES_PER_CHUNK};

/// Block (and chunk range) width: Prometheus's `DefaultBlockDuration`, 2 h.
pub const BLOCK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// Prefix of the spill directory made in the output dir (not a ULID, so Prometheus ignores it).
pub const SPILL_PREFIX: &str = ".walfix-flush-spill";

const NONE: u64 = u64::MAX;
/// Spill records: a closed chunk (`KIND_CHUNK`, 40 B header, then the bytes not moved out
/// earlier) or a piece of a chunk moved out while it was open (`KIND_PIECE`, 16 B header).
const KIND_CHUNK: u8 = 1;
const KIND_PIECE: u8 = 2;
const CHUNK_HEADER: usize = 40;
const PIECE_HEADER: usize = 16;
/// A window's directory entry: series u32, last chunk u64, label record offset u64.
const DIR_ENTRY: usize = 20;
const SPILL_BUF: usize = 64 << 10;
const SPACE_CHECK: u64 = 64 << 20;

/// Heap bytes of open chunk data held before the biggest are moved out to the spill.
pub const DEFAULT_OPEN_CHUNK_BUDGET: u64 = 32 << 20;
/// Bytes of postings sorted in memory per block before runs go to disk.
pub const DEFAULT_SORT_BUDGET: u64 = 16 << 20;

/// How to flush.
#[derive(Clone, Debug, Default)]
pub struct FlushOptions {
    /// Where the blocks go; default the data dir itself.
    pub output_dir: Option<PathBuf>,
    /// Read and plan, write nothing.
    pub dry_run: bool,
    /// Server or agent WAL (an agent WAL is refused: agents keep no blocks).
    pub flavor: WalFlavor,
    /// Heap bytes of open chunks held before moving them out to the spill (default
    /// [`DEFAULT_OPEN_CHUNK_BUDGET`]). The blocks are the same whatever the budget.
    pub open_chunk_budget: Option<u64>,
    /// Bytes of postings sorted in memory per block (default [`DEFAULT_SORT_BUDGET`]); more
    /// are sorted in runs on disk. The blocks are the same whatever the budget.
    pub sort_budget: Option<u64>,
    /// Told the bytes of each segment read, by the check first and then by the pass (twice the
    /// WAL in all; for a progress bar).
    pub progress: walfix::Progress,
    /// Parent of the backup run the WAL moves into (default `DATA_DIR/walfix-backup`).
    pub backup_dir: Option<PathBuf>,
    /// Leave `wal/`, `chunks_head/`, `wbl/` and `chunk_snapshot.*` in place.
    pub keep_wal: bool,
    /// The caller already holds the data dir's lock ([`walfix::repair::lock`]), as `walfix
    /// preflight` does from its live check on: a second flock on the file would conflict.
    pub caller_holds_lock: bool,
}

/// What a block holds.
#[derive(Clone, Debug, Serialize)]
pub struct BlockReport {
    /// The block's ULID (in a dry run: the id it would have had).
    pub ulid: String,
    /// Its directory (not created in a dry run).
    pub path: PathBuf,
    /// First sample (ms, inclusive).
    pub min_time: i64,
    /// End (ms, exclusive).
    pub max_time: i64,
    /// Series.
    pub series: u64,
    /// Samples.
    pub samples: u64,
    /// Chunks.
    pub chunks: u64,
    /// Bytes of `index` (0 in a dry run).
    pub index_bytes: u64,
    /// Bytes of the chunk files (0 in a dry run).
    pub chunk_bytes: u64,
    /// Tombstone intervals in its `tombstones` file.
    pub tombstones: u64,
    /// True once written, verified and renamed into place.
    pub written: bool,
}

/// WAL content no block holds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NotWritten {
    /// Native histogram samples (integer and float), not written by this version.
    pub histogram_samples: u64,
    /// Exemplars (blocks have no place for them).
    pub exemplars: u64,
    /// Metadata entries (type, unit, help; come back with the next scrape).
    pub metadata: u64,
}

/// Memory the flush held, as estimated from its own tables, and as measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemoryReport {
    /// Series tables at the end of the pass: per-series state (open chunk state included),
    /// ref map, dedup table. Label sets are on disk.
    pub series_tables_bytes: u64,
    /// Most bytes of open chunks held at once.
    pub peak_open_chunk_bytes: u64,
    /// Peak resident set of this process (`VmHWM`), if the platform tells. It counts the
    /// pages of the maps (segments, spill, the block read back) as well.
    pub peak_rss_bytes: Option<u64>,
    /// Largest anonymous resident memory (`RssAnon`, heap) seen at the end of the pass and
    /// after each block is built and verified: heap without the mapped files.
    pub anon_rss_bytes: Option<u64>,
    /// `RssAnon` at the end of the pass (before the per-series state is freed).
    pub anon_rss_pass_bytes: Option<u64>,
}

/// The outcome of [`flush`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlushReport {
    /// The data dir read.
    pub data_dir: PathBuf,
    /// Where the blocks went.
    pub output_dir: PathBuf,
    /// Nothing written.
    pub dry_run: bool,
    /// Checkpoint replayed first.
    pub checkpoint: Option<u64>,
    /// Segment files read.
    pub segments: u64,
    /// Records read.
    pub records: u64,
    /// Distinct series (label sets) defined.
    pub series: u64,
    /// Of those, series with no float sample kept (not in any block).
    pub series_without_samples: u64,
    /// Float samples read (WAL and checkpoint, staleness markers included).
    pub float_samples: u64,
    /// Float samples written to blocks.
    pub samples_written: u64,
    /// Samples whose timestamp was not after the series' last one (replay drops them).
    pub dropped_out_of_order: u64,
    /// Samples and other entries of refs no series record defined (replay drops them).
    pub dropped_unknown_ref: u64,
    /// End of the newest existing block (replay drops samples before it), if any.
    pub min_valid_time: Option<i64>,
    /// Samples before [`FlushReport::min_valid_time`].
    pub dropped_before_blocks: u64,
    /// Tombstone intervals replay keeps (known ref, not ending before
    /// [`FlushReport::min_valid_time`]); each goes to the blocks it overlaps.
    pub tombstones: u64,
    /// Tombstone intervals replay skips (unknown ref, or ending before the blocks' end).
    pub tombstones_skipped: u64,
    /// What no block holds.
    pub not_written: NotWritten,
    /// Blocks, oldest first.
    pub blocks: Vec<BlockReport>,
    /// Bytes of spill written (closed chunks plus headers).
    pub spill_bytes: u64,
    /// What a killed earlier run had left and this one removed first (spill directories,
    /// unfinished `<ULID>.tmp-for-creation` blocks).
    pub removed_leftovers: Vec<PathBuf>,
    /// Memory.
    pub memory: MemoryReport,
    /// Disk in the output's file system.
    pub disk: DiskReport,
    /// False when the data dir had no `wal/` (a flush that moved it is done: nothing to flush).
    pub wal_found: bool,
    /// What replay would read besides the blocks: moved into the backup after the blocks (in a
    /// dry run: what would move).
    pub to_move: Vec<PathBuf>,
    /// Where it moved.
    pub handover: Option<handover::Handover>,
    /// Why it stayed in place, if it did.
    pub wal_kept: Option<String>,
}

/// Disk the flush needs in the output's file system (checked before the blocks are written).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiskReport {
    /// Spill at its largest (end of the pass): label records, chunks, window directories.
    pub spill_bytes: u64,
    /// Upper estimate of the blocks (chunk files exact, index at most).
    pub blocks_bytes_estimate: u64,
    /// Peak of spill + blocks on disk (each window's spill is removed once its block is in
    /// place), from the estimate.
    pub peak_bytes_estimate: u64,
    /// Free bytes in the output's file system after the pass.
    pub free_bytes: u64,
    /// Bytes of the blocks written (0 in a dry run).
    pub blocks_bytes: u64,
}

/// Why a flush stopped.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Prometheus (or another walfix) holds the data dir.
    #[error("{0}")]
    Locked(String),
    /// The WAL has damage: flushing it would write what replay would not replay.
    #[error("{0}")]
    Damaged(String),
    /// Something this version does not convert and must not drop silently.
    #[error("{0}")]
    Unsupported(String),
    /// Not enough free space in the output's file system.
    #[error("not enough free space in the output's file system {what}: {needed} B needed, {free} B free")]
    NoSpace {
        /// When.
        what: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// A block did not read back as written; it was removed, nothing was renamed.
    #[error("block {ulid} failed verification: {what} (removed; nothing renamed into place)")]
    Verify {
        /// The block.
        ulid: String,
        /// What differed.
        what: String,
    },
}

impl FlushError {
    /// Exit code: 2 refused (locked, damaged, unsupported, no space), 3 operational or
    /// verification error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FlushError::Locked(_)
            | FlushError::Damaged(_)
            | FlushError::Unsupported(_)
            | FlushError::NoSpace { .. } => 2,
            FlushError::Io(_) | FlushError::Verify { .. } => 3,
        }
    }
}

/// Bytes written in memory (a dry run) or to a file that can be read back at any offset.
enum Sink {
    Mem(Vec<u8>),
    File(BufWriter<File>),
}

impl Sink {
    fn create(path: Option<&Path>) -> io::Result<Sink> {
        Ok(match path {
            None => Sink::Mem(Vec::new()),
            Some(p) => Sink::File(BufWriter::with_capacity(
                SPILL_BUF,
                fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(p)?,
            )),
        })
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Sink::Mem(v) => v.extend_from_slice(b),
            Sink::File(f) => f.write_all(b)?,
        }
        Ok(())
    }

    /// True if the bytes at `at` start with `want`.
    fn starts_with_at(&mut self, at: u64, want: &[u8]) -> io::Result<bool> {
        match self {
            Sink::Mem(v) => Ok(v.get(at as usize..).is_some_and(|s| s.starts_with(want))),
            Sink::File(f) => {
                use std::os::unix::fs::FileExt;
                f.flush()?;
                let mut got = vec![0u8; want.len()];
                match f.get_ref().read_exact_at(&mut got, at) {
                    Ok(()) => Ok(got == want),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The bytes, mapped (or read) back from the file once it is complete.
    fn into_data(self, path: Option<&Path>) -> io::Result<SegmentData> {
        match (self, path) {
            (Sink::Mem(v), _) => Ok(SegmentData::from_vec(v)),
            (Sink::File(f), Some(p)) => {
                f.into_inner().map_err(|e| e.into_error())?;
                SegmentData::open(p)
            }
            (Sink::File(_), None) => Err(io::Error::other("spill file without a path")),
        }
    }
}

struct Window {
    /// Closed chunks and pieces of open ones (see `close_chunk`, `spill_piece`); `None` in a
    /// dry run (only counted).
    spill: Option<BufWriter<File>>,
    spill_path: PathBuf,
    spill_pos: u64,
    /// One `DIR_ENTRY` per series with samples here: series, last chunk, labels offset.
    dir: Sink,
    dir_path: Option<PathBuf>,
    series: u64,
    samples: u64,
    chunks: u64,
    /// Bytes the chunks take in chunk files (length, encoding, data, CRC).
    chunk_file_bytes: u64,
    mint: i64,
    maxt: i64,
    digest: u64,
}

/// Per series during the pass (112 B): the open chunk's state sits inline; its bytes are on
/// the heap within the open-chunk budget, or moved out to the spill.
struct SeriesState {
    hash: u64,
    last_t: i64,
    /// Spill offset of the last closed chunk in the current window, or NONE.
    last_chunk: u64,
    /// Offset of the label record in the label file.
    labels_off: u64,
    enc: XorEncoder,
}

impl SeriesState {
    /// In a window: it has samples there (an open chunk or a closed one).
    fn in_window(&self) -> bool {
        !self.enc.is_empty() || self.last_chunk != NONE
    }
}

/// A vector in blocks of fixed size: growing never copies (a doubling `Vec` of 1M entries of
/// 112 B would hold old and new storage at once, 3x the bytes, while it moves). Blocks of
/// 2^16 entries are above glibc's mmap threshold as the binary sets it
/// (`walfix::mmap::LARGE_ALLOCATION`), so freeing them after the pass gives the memory back.
struct Blocks<T> {
    blocks: Vec<Vec<T>>,
    len: usize,
}

const BLOCK_SHIFT: usize = 16;

impl<T> Blocks<T> {
    fn new() -> Self {
        Blocks {
            blocks: Vec::new(),
            len: 0,
        }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn push(&mut self, x: T) {
        if self.len >> BLOCK_SHIFT == self.blocks.len() {
            self.blocks.push(Vec::with_capacity(1 << BLOCK_SHIFT));
        }
        self.blocks[self.len >> BLOCK_SHIFT].push(x);
        self.len += 1;
    }
    fn get(&self, i: u32) -> &T {
        let i = i as usize;
        &self.blocks[i >> BLOCK_SHIFT][i & ((1 << BLOCK_SHIFT) - 1)]
    }
    fn get_mut(&mut self, i: u32) -> &mut T {
        let i = i as usize;
        &mut self.blocks[i >> BLOCK_SHIFT][i & ((1 << BLOCK_SHIFT) - 1)]
    }
    fn heap_bytes(&self) -> usize {
        self.blocks.len() * (std::mem::size_of::<T>() << BLOCK_SHIFT) + self.blocks.capacity() * 24
    }
    fn iter(&self) -> impl Iterator<Item = &T> {
        self.blocks.iter().flatten()
    }
}

const NO_SERIES: u32 = u32::MAX;

/// WAL series ref -> series index. Prometheus allocates refs from 1 upwards, so a dense vector
/// (4 B a ref) serves them while they stay below 4x the series count (+1024); refs beyond go to
/// a map.
#[derive(Default)]
struct RefMap {
    dense: Vec<u32>,
    sparse: HashMap<u64, u32>,
}

impl RefMap {
    fn get(&self, r: u64) -> Option<u32> {
        match self.dense.get(r as usize) {
            Some(&i) if i != NO_SERIES => Some(i),
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get(&r).copied(),
        }
    }

    fn insert(&mut self, r: u64, idx: u32, series: usize) {
        let limit = 4 * (series as u64 + 1024);
        if r < limit {
            let r = r as usize;
            if r >= self.dense.len() {
                let want = (r + 1).max(self.dense.len() * 2).min(limit as usize);
                self.dense.resize(want, NO_SERIES);
            }
            self.dense[r] = idx;
            if !self.sparse.is_empty() {
                self.sparse.remove(&(r as u64));
            }
        } else {
            self.sparse.insert(r, idx);
        }
    }

    fn heap_bytes(&self) -> usize {
        self.dense.capacity() * 4 + self.sparse.capacity() * 24
    }
}

/// The pass: replay's rules and the per-window spill.
struct Pass {
    /// Label records of all series, in the order they were defined.
    labels: Sink,
    labels_len: u64,
    series: Blocks<SeriesState>,
    refs: RefMap,
    /// Open addressing by label hash: series index or NO_SERIES (at most half full).
    dedup: Vec<u32>,
    windows: BTreeMap<i64, Window>,
    spill_dir: Option<PathBuf>,
    min_valid: i64,
    in_wbl: bool,
    wbl_samples: u64,
    scratch: Vec<u8>,
    piece: Vec<u8>,
    /// (series, mint, maxt) of every kept tombstone interval.
    tombstones: Vec<(u32, i64, i64)>,
    /// Heap bytes of open chunk data, and the budget that moves them out.
    open_bytes: u64,
    open_budget: u64,
    evict_at: u32,
    /// Bytes written to spill files; free space is checked again every SPACE_CHECK of them.
    spill_written: u64,
    next_space_check: u64,
    err: Option<FlushError>,
    out: FlushReport,
}

impl Pass {
    fn find_or_add_series(&mut self, hash: u64) -> io::Result<u32> {
        let mask = self.dedup.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.dedup[i] {
                NO_SERIES => break,
                idx => {
                    let s = self.series.get(idx);
                    if s.hash == hash && self.labels.starts_with_at(s.labels_off, &self.scratch)? {
                        return Ok(idx);
                    }
                    i = (i + 1) & mask;
                }
            }
        }
        let idx = u32::try_from(self.series.len())
            .ok()
            .filter(|&i| i != NO_SERIES)
            .ok_or_else(|| io::Error::other("more than 2^32 - 1 series"))?;
        self.labels.write(&self.scratch)?;
        let labels_off = self.labels_len;
        self.labels_len += self.scratch.len() as u64;
        self.spilled(self.scratch.len() as u64)?;
        self.series.push(SeriesState {
            hash,
            last_t: i64::MIN,
            last_chunk: NONE,
            labels_off,
            enc: XorEncoder::new(),
        });
        self.dedup[i] = idx;
        if self.series.len() * 2 > self.dedup.len() {
            let n = self.dedup.len() * 2;
            self.dedup = vec![NO_SERIES; n];
            for (k, s) in self.series.iter().enumerate() {
                let mut j = s.hash as usize & (n - 1);
                while self.dedup[j] != NO_SERIES {
                    j = (j + 1) & (n - 1);
                }
                self.dedup[j] = k as u32;
            }
        }
        self.out.series += 1;
        Ok(idx)
    }

    /// Counts spill bytes; every SPACE_CHECK of them, stops if the output's file system has
    /// less free space left than the spill so far (the blocks need about as much again).
    fn spilled(&mut self, n: u64) -> io::Result<()> {
        self.spill_written += n;
        if self.spill_written >= self.next_space_check {
            self.next_space_check = self.spill_written + SPACE_CHECK;
            if let Some(d) = &self.spill_dir {
                let free = walfix::space::free(d)?.bytes;
                if free < self.spill_written {
                    self.err.get_or_insert(FlushError::NoSpace {
                        what: format!(
                            "while reading the WAL: {} B spilled so far (the blocks need about as much again)",
                            self.spill_written
                        ),
                        needed: self.spill_written,
                        free,
                    });
                }
            }
        }
        Ok(())
    }

    fn window(&mut self, w: i64) -> io::Result<&mut Window> {
        if !self.windows.contains_key(&w) {
            let (spill, spill_path, dir_path) = match &self.spill_dir {
                Some(d) => {
                    let p = d.join(format!("w{w}"));
                    let f = BufWriter::with_capacity(SPILL_BUF, File::create(&p)?);
                    (Some(f), p, Some(d.join(format!("w{w}.dir"))))
                }
                None => (None, PathBuf::new(), None),
            };
            let win = Window {
                spill,
                spill_path,
                spill_pos: 0,
                dir: Sink::create(dir_path.as_deref())?,
                dir_path,
                series: 0,
                samples: 0,
                chunks: 0,
                chunk_file_bytes: 0,
                mint: i64::MAX,
                maxt: i64::MIN,
                digest: 0,
            };
            self.windows.insert(w, win);
        }
        Ok(self.windows.get_mut(&w).expect("inserted"))
    }

    fn spill_write(&mut self, w: i64, head: &[u8], body: &[u8]) -> io::Result<u64> {
        let win = self.window(w)?;
        let at = win.spill_pos;
        if let Some(f) = &mut win.spill {
            f.write_all(head)?;
            f.write_all(body)?;
        }
        let n = (head.len() + body.len()) as u64;
        win.spill_pos += n;
        self.spilled(n)?;
        Ok(at)
    }

    /// Moves the complete bytes of series `idx`'s open chunk to its window's spill, as a
    /// piece chained to the chunk's earlier pieces; the chunk goes on in memory from its last
    /// partly filled byte.
    fn spill_piece(&mut self, idx: u32) -> io::Result<()> {
        let mut piece = std::mem::take(&mut self.piece);
        piece.clear();
        let s = self.series.get_mut(idx);
        let before = s.enc.heap_bytes();
        let n = s.enc.take_complete(&mut piece);
        let (w, prev) = (s.enc.maxt().div_euclid(BLOCK_RANGE_MS), s.enc.moved_at);
        self.open_bytes = self
            .open_bytes
            .saturating_sub((before - s.enc.heap_bytes()) as u64);
        if n > 0 {
            let mut h = [0u8; PIECE_HEADER];
            h[0] = KIND_PIECE;
            h[2..4].copy_from_slice(&(n as u16).to_le_bytes());
            h[8..16].copy_from_slice(&prev.to_le_bytes());
            let at = self.spill_write(w, &h, &piece)?;
            self.series.get_mut(idx).enc.moved_at = at;
        }
        self.piece = piece;
        Ok(())
    }

    /// Over the budget: moves out the bytes of the biggest open chunks (above twice the mean,
    /// then above the mean, then any) until half the budget is left; chunks stay whole.
    fn evict(&mut self) -> io::Result<()> {
        let n = self.series.len() as u32;
        let target = self.open_budget / 2;
        for round in 0..3 {
            let mean = self.open_bytes / n.max(1) as u64;
            let above = [2 * mean, mean, 0][round];
            for _ in 0..n {
                if self.open_bytes <= target {
                    return Ok(());
                }
                self.evict_at = if self.evict_at + 1 >= n {
                    0
                } else {
                    self.evict_at + 1
                };
                let e = &self.series.get(self.evict_at).enc;
                if e.heap_bytes() as u64 > above && e.bytes_held() > 1 {
                    self.spill_piece(self.evict_at)?;
                }
            }
        }
        Ok(())
    }

    /// Closes series `idx`'s open chunk into its window's spill.
    fn close_chunk(&mut self, idx: u32) -> io::Result<()> {
        let s = self.series.get_mut(idx);
        if s.enc.is_empty() {
            return Ok(());
        }
        let mut enc = std::mem::take(&mut s.enc);
        let prev = s.last_chunk;
        self.open_bytes = self.open_bytes.saturating_sub(enc.heap_bytes() as u64);
        let (mint, maxt, n, total) = (enc.mint, enc.maxt(), enc.len(), enc.byte_len());
        let w = maxt.div_euclid(BLOCK_RANGE_MS);
        let pieces = enc.moved_at;
        let tail = enc.bytes();
        let mut h = [0u8; CHUNK_HEADER];
        h[0] = KIND_CHUNK;
        h[2..4].copy_from_slice(&n.to_le_bytes());
        h[4..6].copy_from_slice(&(tail.len() as u16).to_le_bytes());
        h[6..8].copy_from_slice(&(total as u16).to_le_bytes());
        h[8..16].copy_from_slice(&prev.to_le_bytes());
        h[16..24].copy_from_slice(&pieces.to_le_bytes());
        h[24..32].copy_from_slice(&mint.to_le_bytes());
        h[32..40].copy_from_slice(&maxt.to_le_bytes());
        let at = self.spill_write(w, &h, tail)?;
        let win = self.window(w)?;
        win.chunks += 1;
        win.chunk_file_bytes += chunk_file_len(total);
        self.series.get_mut(idx).last_chunk = at;
        Ok(())
    }

    /// Ends series `idx`'s stay in its current window.
    fn leave_window(&mut self, idx: u32) -> io::Result<()> {
        self.close_chunk(idx)?;
        let s = self.series.get_mut(idx);
        if s.last_chunk == NONE {
            return Ok(());
        }
        let (w, last, off) = (
            s.last_t.div_euclid(BLOCK_RANGE_MS),
            s.last_chunk,
            s.labels_off,
        );
        s.last_chunk = NONE;
        let mut e = [0u8; DIR_ENTRY];
        e[0..4].copy_from_slice(&idx.to_le_bytes());
        e[4..12].copy_from_slice(&last.to_le_bytes());
        e[12..20].copy_from_slice(&off.to_le_bytes());
        let win = self.window(w)?;
        win.dir.write(&e)?;
        win.series += 1;
        self.spilled(DIR_ENTRY as u64)
    }

    fn float(&mut self, series_ref: u64, t: i64, v: u64) -> io::Result<()> {
        if self.in_wbl {
            self.wbl_samples += 1;
            return Ok(());
        }
        self.out.float_samples += 1;
        let Some(idx) = self.refs.get(series_ref) else {
            self.out.dropped_unknown_ref += 1;
            return Ok(());
        };
        if t < self.min_valid {
            self.out.dropped_before_blocks += 1;
            return Ok(());
        }
        let s = self.series.get(idx);
        if s.last_t != i64::MIN && t <= s.last_t {
            self.out.dropped_out_of_order += 1;
            return Ok(());
        }
        let w = t.div_euclid(BLOCK_RANGE_MS);
        if s.in_window() && s.last_t.div_euclid(BLOCK_RANGE_MS) != w {
            self.leave_window(idx)?;
        } else if s.enc.len() >= SAMPLES_PER_CHUNK || s.enc.byte_len() > MAX_CHUNK_BYTES {
            self.close_chunk(idx)?;
        }
        let s = self.series.get_mut(idx);
        let before = s.enc.heap_bytes();
        s.enc.append(t, v);
        let grown = (s.enc.heap_bytes() - before) as u64;
        s.last_t = t;
        let hash = s.hash;
        self.open_bytes += grown;
        self.out.memory.peak_open_chunk_bytes =
            self.out.memory.peak_open_chunk_bytes.max(self.open_bytes);
        let win = self.window(w)?;
        win.samples += 1;
        win.mint = win.mint.min(t);
        win.maxt = win.maxt.max(t);
        win.digest = win.digest.wrapping_add(sample_digest(hash, t, v));
        if self.open_bytes > self.open_budget {
            self.evict()?;
        }
        Ok(())
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.err.get_or_insert(e.into());
        }
    }
}

/// Bytes of one chunk in a chunk file: `uvarint len | encoding | data | crc32c`.
fn chunk_file_len(data: usize) -> u64 {
    let mut v = Vec::with_capacity(10);
    put_uvarint(&mut v, data as u64);
    (v.len() + 1 + data + 4) as u64
}

impl Visitor for Pass {
    fn series(&mut self, s: &Series<'_>) {
        if self.in_wbl {
            return;
        }
        // Prometheus's labels are sorted by name; records it writes already are.
        let mut pairs: Vec<(&[u8], &[u8])> = s.labels.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let hash = hash_labels(pairs.iter().copied());
        self.scratch.clear();
        labels::encode(pairs.iter().copied(), &mut self.scratch);
        match self.find_or_add_series(hash) {
            Ok(idx) => {
                let n = self.series.len();
                self.refs.insert(s.series_ref, idx, n);
            }
            Err(e) => self.keep(Err(e)),
        }
    }

    fn sample(&mut self, s: &Sample) {
        let r = self.float(s.series_ref, s.t, s.v.to_bits());
        self.keep(r);
    }

    fn histogram(&mut self, _h: &HistogramSample<'_>) {
        if self.in_wbl {
            self.wbl_samples += 1;
        } else {
            self.out.not_written.histogram_samples += 1;
        }
    }

    fn exemplar(&mut self, _e: &Exemplar<'_>) {
        self.out.not_written.exemplars += 1;
    }

    fn metadata(&mut self, _m: &Metadata<'_>) {
        self.out.not_written.metadata += 1;
    }

    fn tombstone(&mut self, t: &Tombstone) {
        if self.in_wbl {
            return;
        }
        // head_wal.go loadWAL: skipped if it ends before minValidTime or names no series.
        match self.refs.get(t.series_ref) {
            Some(idx) if t.maxt >= self.min_valid && t.mint <= t.maxt => {
                self.tombstones.push((idx, t.mint, t.maxt));
                self.out.tombstones += 1;
            }
            _ => self.out.tombstones_skipped += 1,
        }
    }
}

fn read_log(
    pass: &mut Pass,
    log: &Log,
    above: Option<u64>,
    progress: &walfix::Progress,
) -> Result<(), FlushError> {
    for seg in &log.segments {
        progress.advance(seg.len);
        if above.is_some_and(|n| seg.index <= n) {
            continue;
        }
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", seg.path.display()));
        let data = SegmentData::open(&seg.path).map_err(named)?;
        pass.out.segments += 1;
        let mut r = RecordReader::new(&data);
        while let Some(ev) = r.next() {
            let rec = match ev {
                RecordEvent::Problem(p) if p.is_error() => {
                    return Err(FlushError::Damaged(format!(
                        "{} at {}: {} (run `walfix check`, then `walfix repair`)",
                        seg.path.display(),
                        p.offset,
                        p.kind.describe()
                    )));
                }
                RecordEvent::Problem(_) => continue,
                RecordEvent::Record(rec) => rec,
            };
            pass.out.records += 1;
            let Some(&tb) = rec.data.first() else {
                continue;
            };
            if log.kind.accepts(RecordType::from_u8(tb)) != Acceptance::Expected {
                continue;
            }
            if let Err(e) = record::validate(rec.data) {
                return Err(FlushError::Damaged(format!(
                    "{} at {}: record does not decode: {e} (run `walfix check`, then `walfix repair`)",
                    seg.path.display(),
                    rec.offset
                )));
            }
            let _ = record::visit(rec.data, pass);
            if let Some(e) = pass.err.take() {
                return Err(e);
            }
        }
        data.check_intact(&seg.path)?;
    }
    Ok(())
}

/// `max(maxTime)` over the in-order blocks in `dir` (blocks with the `from-out-of-order` hint
/// do not count, as in `db.go` since 2.39): replay drops samples before it.
fn blocks_end(dir: &Path) -> io::Result<Option<i64>> {
    let mut end = None;
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !block::is_ulid(&name) {
            continue;
        }
        let Ok(text) = fs::read(e.path().join("meta.json")) else {
            continue;
        };
        let Ok(meta) = serde_json::from_slice::<Meta>(&text) else {
            continue;
        };
        if meta
            .compaction
            .hints
            .iter()
            .any(|h| h == "from-out-of-order")
        {
            continue;
        }
        end = Some(end.map_or(meta.max_time, |x: i64| x.max(meta.max_time)));
    }
    Ok(end)
}

/// What a killed run leaves in `out_dir`: our spill directories, and (only when `out_dir` is
/// the locked data dir, where no Prometheus can be compacting) blocks under construction,
/// `<ULID>.tmp-for-creation`, which Prometheus itself deletes when it opens the data dir.
/// A rerun removes them first; blocks already renamed into place stay, and their end makes the
/// rerun skip the samples they hold, so a killed run followed by a rerun converges.
fn remove_leftovers(out_dir: &Path, locked: bool) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let rd = match fs::read_dir(out_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let building = name
            .strip_suffix(".tmp-for-creation")
            .is_some_and(block::is_ulid);
        if (name.starts_with(SPILL_PREFIX) || (locked && building)) && e.file_type()?.is_dir() {
            fs::remove_dir_all(e.path())?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}

fn status_kb(key: &str) -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn note_anon(m: &mut MemoryReport) {
    if let Some(a) = status_kb("RssAnon:") {
        m.anon_rss_bytes = Some(m.anon_rss_bytes.map_or(a, |b| b.max(a)));
    }
}

/// Flushes the WAL of `data_dir` into blocks (see the crate docs). Refuses while the data dir
/// is locked or held open, when `walfix check` finds damage, and when `wbl/` holds samples.
pub fn flush(data_dir: &Path, opts: &FlushOptions) -> Result<FlushReport, FlushError> {
    if opts.flavor == WalFlavor::Agent {
        return Err(FlushError::Unsupported(
            "an agent WAL has no blocks to flush into".into(),
        ));
    }
    let out_dir = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| data_dir.to_path_buf());
    if !data_dir.join("wal").is_dir() && blocks_end(data_dir)?.is_some() {
        // A flush that moved wal/ away is finished; a rerun has nothing to do.
        return Ok(FlushReport {
            data_dir: data_dir.to_path_buf(),
            output_dir: out_dir,
            dry_run: opts.dry_run,
            to_move: handover::replay_inputs(data_dir)?,
            ..FlushReport::default()
        });
    }
    if !data_dir.join("wal").is_dir() {
        return Err(FlushError::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no wal/ here (give the data dir)", data_dir.display()),
        )));
    }
    let _lock = match opts.caller_holds_lock {
        true => None,
        false => {
            Some(walfix::repair::lock(data_dir).map_err(|e| FlushError::Locked(e.to_string()))?)
        }
    };
    let check = walfix::check(
        data_dir,
        &walfix::CheckOptions {
            level: walfix::Level::Records,
            flavor: opts.flavor,
            progress: opts.progress.clone(),
        },
    )?;
    if check.exit_code != 0 {
        let first = check
            .findings
            .iter()
            .filter(|f| f.severity > walfix::Severity::Warning)
            .map(|f| format!("{}: {}", f.file.display(), f.message))
            .next()
            .unwrap_or_default();
        return Err(FlushError::Damaged(format!(
            "`walfix check` finds damage (exit {}): {first}; run `walfix repair` first",
            check.exit_code
        )));
    }
    if !opts.dry_run {
        fs::create_dir_all(&out_dir)?;
    }
    let mut min_valid = blocks_end(data_dir)?;
    if out_dir != data_dir {
        if let Some(e) = blocks_end(&out_dir)? {
            min_valid = Some(min_valid.map_or(e, |m| m.max(e)));
        }
    }
    let mut removed = Vec::new();
    if !opts.dry_run {
        removed = remove_leftovers(&out_dir, out_dir == data_dir)?;
    }
    let spill_dir = if opts.dry_run {
        None
    } else {
        let d = out_dir.join(format!("{SPILL_PREFIX}-{}", std::process::id()));
        fs::create_dir_all(&d)?;
        Some(d)
    };
    let res = run(data_dir, &out_dir, opts, min_valid, spill_dir.clone());
    if let Some(d) = &spill_dir {
        let _ = fs::remove_dir_all(d);
    }
    let mut r = res?;
    r.removed_leftovers = removed;
    r.wal_found = true;
    r.to_move = handover::replay_inputs(data_dir)?;
    r.wal_kept = if opts.keep_wal {
        Some("--keep-wal".into())
    } else if !same_dir(&out_dir, data_dir) {
        Some("the blocks went to --output-dir, not into the data dir".into())
    } else if r.not_written.histogram_samples > 0 {
        Some(format!(
            "{} native histogram samples are not in the blocks (this version does not write them): replay still needs the WAL",
            r.not_written.histogram_samples
        ))
    } else {
        None
    };
    if !opts.dry_run && r.wal_kept.is_none() {
        let ulids: Vec<String> = r.blocks.iter().map(|b| b.ulid.clone()).collect();
        r.handover = Some(handover::move_to_backup(
            &walfix::fsops::RealFs,
            data_dir,
            opts.backup_dir.as_deref(),
            &ulids,
        )?);
    }
    Ok(r)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

fn run(
    data_dir: &Path,
    out_dir: &Path,
    opts: &FlushOptions,
    min_valid: Option<i64>,
    spill_dir: Option<PathBuf>,
) -> Result<FlushReport, FlushError> {
    let layout = discover(data_dir, opts.flavor)?;
    if !opts.dry_run {
        // Up front, the one figure known: the spill and the blocks together have measured
        // 1.4-3.6x the WAL's bytes (docs/flush.md), so less free space than the WAL is refused.
        let mut wal_bytes = 0u64;
        for log in &layout.logs {
            let ck = log.checkpoint.as_ref();
            let segs = log
                .segments
                .iter()
                .filter(|s| ck.is_none_or(|c| s.index > c.index));
            for seg in segs.chain(ck.into_iter().flat_map(|c| c.log.segments.iter())) {
                wal_bytes += fs::metadata(&seg.path).map_or(0, |m| m.len());
            }
        }
        let free = walfix::space::free(out_dir)?.bytes;
        if free < wal_bytes {
            return Err(FlushError::NoSpace {
                what: "before reading the WAL (the spill and the blocks take at least about the WAL's size)".into(),
                needed: wal_bytes,
                free,
            });
        }
    }
    let labels_path = spill_dir.as_ref().map(|d| d.join("labels"));
    let mut pass = Pass {
        labels: Sink::create(labels_path.as_deref())?,
        labels_len: 0,
        series: Blocks::new(),
        refs: RefMap::default(),
        dedup: vec![NO_SERIES; 1024],
        windows: BTreeMap::new(),
        spill_dir: spill_dir.clone(),
        min_valid: min_valid.unwrap_or(i64::MIN),
        in_wbl: false,
        wbl_samples: 0,
        scratch: Vec::new(),
        piece: Vec::new(),
        tombstones: Vec::new(),
        open_bytes: 0,
        open_budget: opts.open_chunk_budget.unwrap_or(DEFAULT_OPEN_CHUNK_BUDGET),
        evict_at: 0,
        spill_written: 0,
        next_space_check: 0,
        err: None,
        out: FlushReport {
            data_dir: data_dir.to_path_buf(),
            output_dir: out_dir.to_path_buf(),
            dry_run: opts.dry_run,
            min_valid_time: min_valid,
            ..FlushReport::default()
        },
    };
    for log in &layout.logs {
        pass.in_wbl = log.kind == LogKind::Wbl;
        let above = log.checkpoint.as_ref().map(|c| c.index);
        if let Some(ck) = &log.checkpoint {
            pass.out.checkpoint = Some(ck.index);
            read_log(&mut pass, &ck.log, None, &opts.progress)?;
        }
        read_log(&mut pass, log, above, &opts.progress)?;
    }
    pass.in_wbl = false;
    if pass.wbl_samples > 0 {
        return Err(FlushError::Unsupported(format!(
            "wbl/ holds {} out-of-order samples, which this version does not write into blocks; nothing was written",
            pass.wbl_samples
        )));
    }
    for idx in 0..pass.series.len() as u32 {
        pass.leave_window(idx)?;
    }
    if let Some(e) = pass.err.take() {
        return Err(e);
    }
    note_anon(&mut pass.out.memory);
    pass.out.memory.anon_rss_pass_bytes = status_kb("RssAnon:");
    pass.out.memory.series_tables_bytes =
        (pass.series.heap_bytes() + pass.refs.heap_bytes() + pass.dedup.capacity() * 4) as u64;
    let with_samples = pass.series.iter().filter(|s| s.last_t != i64::MIN).count() as u64;
    pass.out.series_without_samples = pass.out.series - with_samples;
    // The per-series state is not needed to finish the windows.
    pass.series = Blocks::new();
    pass.refs = RefMap::default();
    pass.dedup = Vec::new();
    let labels = std::mem::replace(&mut pass.labels, Sink::Mem(Vec::new()))
        .into_data(labels_path.as_deref())?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    pass.tombstones.sort_unstable();
    let sort_budget = opts.sort_budget.unwrap_or(DEFAULT_SORT_BUDGET) as usize;
    let mut mem = std::mem::take(&mut pass.out.memory);
    let newest = pass.windows.keys().next_back().copied();

    // Finish the spill files, then the disk the blocks need: block j adds an estimate B_j and
    // then frees its window's spill S_j, so the peak beyond what is on disk now is
    // max_k (sum_{j<=k} B_j - sum_{j<k} S_j + postings runs of k).
    let mut windows = Vec::new();
    let mut steps = Vec::new();
    let mut spill_total = labels_len(&labels);
    for (w, mut win) in std::mem::take(&mut pass.windows) {
        if let Some(f) = win.spill.take() {
            f.into_inner().map_err(|e| e.into_error())?;
        }
        let dir = std::mem::replace(&mut win.dir, Sink::Mem(Vec::new()))
            .into_data(win.dir_path.as_deref())?;
        let spill = win.spill_pos + dir.len() as u64;
        spill_total += spill;
        if win.samples == 0 {
            windows.push((w, win, dir, 0));
            continue;
        }
        let (record_bytes, pairs) = window_label_stats(&dir, &labels)?;
        let est = block_estimate(&win, record_bytes, pairs);
        let runs = if pairs * 12 > sort_budget as u64 {
            pairs * 12
        } else {
            0
        };
        steps.push((est, runs, spill));
        windows.push((w, win, dir, est));
    }
    let blocks_est = steps.iter().map(|s| s.0).sum::<u64>();
    let need = disk_need(&steps);
    let free = walfix::space::free(out_dir)?.bytes;
    pass.out.disk = DiskReport {
        spill_bytes: spill_total,
        blocks_bytes_estimate: blocks_est,
        peak_bytes_estimate: spill_total + need,
        free_bytes: free,
        blocks_bytes: 0,
    };
    if !opts.dry_run && free < need {
        return Err(FlushError::NoSpace {
            what: format!(
                "to write the blocks (estimate {blocks_est} B; the spill of {spill_total} B is freed as they are written)"
            ),
            needed: need,
            free,
        });
    }
    let scratch = spill_dir.as_deref().unwrap_or(out_dir);
    for (i, (w, win, dir, _)) in windows.into_iter().enumerate() {
        pass.out.spill_bytes += win.spill_pos;
        if win.samples == 0 {
            continue;
        }
        // ULIDs in window order: creation time + window ordinal.
        let id = block::ulid(now + i as u64, block::random10()?);
        let max_time = if Some(w) == newest {
            win.maxt + 1
        } else {
            (w + 1) * BLOCK_RANGE_MS
        };
        let rep = if opts.dry_run {
            BlockReport {
                path: out_dir.join(&id),
                ulid: id,
                min_time: win.mint,
                max_time,
                series: win.series,
                samples: win.samples,
                chunks: win.chunks,
                index_bytes: 0,
                chunk_bytes: 0,
                tombstones: 0,
                written: false,
            }
        } else {
            let ctx = BlockCtx {
                out_dir,
                scratch,
                labels: &labels,
                dir: &dir,
                stones: &pass.tombstones,
                sort_budget,
            };
            let r = write_window(&ctx, id, win, max_time, &mut mem)?;
            note_anon(&mut mem);
            r
        };
        pass.out.samples_written += rep.samples;
        pass.out.disk.blocks_bytes += rep.index_bytes + rep.chunk_bytes;
        pass.out.blocks.push(rep);
        if let Some(p) = dir_path_of(scratch, w, opts.dry_run) {
            drop(dir);
            let _ = fs::remove_file(p);
        }
    }
    mem.peak_rss_bytes = status_kb("VmHWM:");
    pass.out.memory = mem;
    Ok(pass.out)
}

/// Disk needed beyond what is on disk after the pass, blocks written in order: per window
/// (block estimate B, postings runs R, spill S freed once its block is in place), the peak of
/// `sum_{j<=k} B_j + R_k - sum_{j<k} S_j`.
fn disk_need(steps: &[(u64, u64, u64)]) -> u64 {
    let (mut need, mut blocks, mut freed) = (0u64, 0u64, 0u64);
    for &(b, r, s) in steps {
        blocks += b;
        need = need.max((blocks + r).saturating_sub(freed));
        freed += s;
    }
    need
}

fn labels_len(d: &SegmentData) -> u64 {
    d.len() as u64
}

fn dir_path_of(scratch: &Path, w: i64, dry_run: bool) -> Option<PathBuf> {
    (!dry_run).then(|| scratch.join(format!("w{w}.dir")))
}

/// Upper estimate of a block's bytes: chunk files exactly; the index at most every label
/// string twice (symbols, postings table) plus per series, pair and chunk the most its
/// entries, lists and table rows take.
fn block_estimate(win: &Window, record_bytes: u64, pairs: u64) -> u64 {
    let files = 1 + win.chunk_file_bytes / block::CHUNK_SEGMENT_SIZE;
    let chunks = win.chunk_file_bytes + files * 8;
    let index = 4096 + 2 * record_bytes + 40 * win.series + 40 * pairs + 30 * win.chunks;
    chunks + index + 4096
}

/// Label record bytes and label pairs of a window's series (and every record checked whole).
fn window_label_stats(dir: &[u8], labels: &[u8]) -> io::Result<(u64, u64)> {
    let (mut bytes, mut pairs) = (0u64, 0u64);
    for e in dir_entries(dir) {
        let e = e?;
        let r = labels::Record::at(labels, e.labels_off as usize).ok_or_else(short_labels)?;
        pairs += r.pairs_left();
        let end = labels::validate(labels, e.labels_off as usize).ok_or_else(short_labels)? as u64;
        bytes += end - e.labels_off;
    }
    Ok((bytes, pairs))
}

fn short_labels() -> io::Error {
    io::Error::other("label spill file shorter than written")
}

#[derive(Clone, Copy)]
struct Entry {
    labels_off: u64,
    last_chunk: u64,
    series: u32,
}

fn dir_entries(dir: &[u8]) -> impl Iterator<Item = io::Result<Entry>> + '_ {
    let bad = !dir.len().is_multiple_of(DIR_ENTRY);
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    std::iter::once(bad)
        .filter(|&b| b)
        .map(|_| Err(io::Error::other("spill directory file cut short")))
        .chain(dir.chunks_exact(DIR_ENTRY).map(move |e| {
            Ok(Entry {
                series: u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                last_chunk: le64(&e[4..12]),
                labels_off: le64(&e[12..20]),
            })
        }))
}

fn bad_spill() -> io::Error {
    io::Error::other("spill file shorter than written or inconsistent")
}

/// The chunk whose record is at `at`: its pieces (moved out while it was open) and its tail
/// joined into `out`, with the sample count filled in. Returns (previous chunk, mint, maxt).
fn read_chunk(
    spill: &[u8],
    at: u64,
    pieces: &mut Vec<u64>,
    out: &mut Vec<u8>,
) -> io::Result<(u64, i64, i64)> {
    let get = |a: u64, n: usize| {
        usize::try_from(a)
            .ok()
            .and_then(|a| spill.get(a..a.checked_add(n)?))
            .ok_or_else(bad_spill)
    };
    let le16 = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let le64 = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let h = get(at, CHUNK_HEADER)?;
    if h[0] != KIND_CHUNK {
        return Err(bad_spill());
    }
    let (n, tail_len, total) = (le16(h, 2), le16(h, 4) as usize, le16(h, 6) as usize);
    let (prev, mut p) = (le64(h, 8), le64(h, 16));
    let (mint, maxt) = (le64(h, 24) as i64, le64(h, 32) as i64);
    pieces.clear();
    // Pieces were written before the chunk record, each after the one before it.
    let mut bound = at;
    while p != NONE {
        if p >= bound || pieces.len() > total {
            return Err(bad_spill());
        }
        let ph = get(p, PIECE_HEADER)?;
        if ph[0] != KIND_PIECE {
            return Err(bad_spill());
        }
        pieces.push(p);
        bound = p;
        p = le64(ph, 8);
    }
    out.clear();
    for &p in pieces.iter().rev() {
        let len = le16(get(p, PIECE_HEADER)?, 2) as usize;
        out.extend_from_slice(get(p + PIECE_HEADER as u64, len)?);
    }
    out.extend_from_slice(get(at + CHUNK_HEADER as u64, tail_len)?);
    if out.len() != total || total < 2 || (prev != NONE && prev >= at) {
        return Err(bad_spill());
    }
    out[..2].copy_from_slice(&n.to_be_bytes());
    Ok((prev, mint, maxt))
}

/// Chunks, chunk bytes, index bytes, tombstone intervals (block series ref, mint, maxt).
type Built = (u64, u64, u64, Vec<(u32, i64, i64)>);

struct BlockCtx<'a> {
    out_dir: &'a Path,
    scratch: &'a Path,
    labels: &'a [u8],
    dir: &'a [u8],
    stones: &'a [(u32, i64, i64)],
    sort_budget: usize,
}

/// The block of one window: its series (from the window's directory file) sorted by their
/// label records in the mapped label file, the symbols they use, chunks joined from the
/// spill in index order, postings sorted within the budget.
fn build(ctx: &BlockCtx<'_>, tmp: &Path, spill: &[u8], lo: i64, hi: i64) -> io::Result<Built> {
    let labels = ctx.labels;
    let mut entries = Vec::new();
    for e in dir_entries(ctx.dir) {
        let e = e?;
        labels::validate(labels, e.labels_off as usize).ok_or_else(short_labels)?;
        entries.push(e);
    }
    entries.sort_unstable_by(|a, b| {
        labels::compare(labels, a.labels_off as usize, b.labels_off as usize)
    });
    let mut symbols = Symbols::default();
    for e in &entries {
        let mut r = labels::Record::at(labels, e.labels_off as usize).ok_or_else(short_labels)?;
        while let Some((no, _, vo, _)) = r.next_pair().map_err(|_| short_labels())? {
            symbols.add(labels, no).map_err(io::Error::other)?;
            symbols.add(labels, vo).map_err(io::Error::other)?;
        }
    }
    symbols.finish(labels);
    let mut cw = ChunkWriter::new(&tmp.join("chunks"))?;
    let mut iw = IndexWriter::new(
        &tmp.join("index"),
        ctx.scratch,
        ctx.sort_budget,
        (0..symbols.len() as u32).map(|p| symbols.get(labels, p)),
    )?;
    let (mut chain, mut metas, mut pieces, mut buf, mut pos) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut chunks = 0u64;
    let mut intervals = Vec::new();
    for e in &entries {
        chain.clear();
        let mut at = e.last_chunk;
        while at != NONE {
            let (prev, ..) = read_chunk(spill, at, &mut pieces, &mut buf)?;
            chain.push(at);
            at = prev;
        }
        metas.clear();
        for &at in chain.iter().rev() {
            let (_, mint, maxt) = read_chunk(spill, at, &mut pieces, &mut buf)?;
            let chunk_ref = cw.write(ENC_XOR, &buf)?;
            metas.push(ChunkMeta {
                mint,
                maxt,
                chunk_ref,
            });
        }
        chunks += metas.len() as u64;
        pos.clear();
        let mut r = labels::Record::at(labels, e.labels_off as usize).ok_or_else(short_labels)?;
        while let Some((_, n, _, v)) = r.next_pair().map_err(|_| short_labels())? {
            let p = |s| {
                symbols
                    .position(labels, s)
                    .ok_or_else(|| io::Error::other("label string not among the symbols"))
            };
            pos.push([p(n)?, p(v)?]);
        }
        let sref = iw.add_series(&pos, &metas)?;
        let stones = ctx.stones;
        let from = stones.partition_point(|t| t.0 < e.series);
        for &(_, mint, maxt) in stones[from..].iter().take_while(|t| t.0 == e.series) {
            if mint <= hi && maxt >= lo {
                intervals.push((sref, mint.max(lo), maxt.min(hi)));
            }
        }
    }
    drop(entries);
    let chunk_bytes = cw.finish()?;
    let index_bytes = iw.finish(|p| symbols.get(labels, p))?;
    Ok((chunks, chunk_bytes, index_bytes, intervals))
}

fn write_window(
    ctx: &BlockCtx<'_>,
    id: String,
    win: Window,
    max_time: i64,
    mem: &mut MemoryReport,
) -> Result<BlockReport, FlushError> {
    let out_dir = ctx.out_dir;
    let spill = SegmentData::open(&win.spill_path)?;
    let tmp = out_dir.join(format!("{id}.tmp-for-creation"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    let built = build(ctx, &tmp, &spill, win.mint, max_time - 1).and_then(|b| {
        spill.check_intact(&win.spill_path)?;
        Ok(b)
    });
    note_anon(mem);
    let fail = |tmp: &Path| {
        let _ = fs::remove_dir_all(tmp);
    };
    let (chunks, chunk_bytes, index_bytes, intervals) = match built {
        Ok(x) => x,
        Err(e) => {
            fail(&tmp);
            return Err(e.into());
        }
    };
    let meta = Meta {
        ulid: id.clone(),
        min_time: win.mint,
        max_time,
        stats: MetaStats {
            num_samples: win.samples,
            num_series: win.series,
            num_chunks: chunks,
            num_tombstones: intervals.len() as u64,
        },
        compaction: MetaCompaction {
            level: 1,
            sources: vec![id.clone()],
            hints: Vec::new(),
        },
        version: 1,
    };
    let synced = block::write_meta_and_tombstones(&tmp, &meta, &intervals)
        .and_then(|()| block::sync_dir(&tmp.join("chunks")))
        .and_then(|()| block::sync_dir(&tmp));
    if let Err(e) = synced {
        fail(&tmp);
        return Err(e.into());
    }
    let read_back = read::read_block(&tmp, |_, _| {});
    note_anon(mem);
    let verdict = match read_back {
        Err(what) => Err(what),
        Ok(s) if s.series != win.series => Err(format!(
            "{} series read back, {} written",
            s.series, win.series
        )),
        Ok(s) if s.samples != win.samples || s.chunks != chunks => Err(format!(
            "{} samples in {} chunks read back, {} in {} written",
            s.samples, s.chunks, win.samples, chunks
        )),
        Ok(s) if s.digest != win.digest => {
            Err("the samples read back differ from those written (digest)".into())
        }
        Ok(s) if s.tombstones.len() != intervals.len() => Err(format!(
            "{} tombstone intervals read back, {} written",
            s.tombstones.len(),
            intervals.len()
        )),
        Ok(_) => Ok(()),
    };
    if let Err(what) = verdict {
        fail(&tmp);
        return Err(FlushError::Verify { ulid: id, what });
    }
    let dest = out_dir.join(&id);
    handover::give_to_owner_of(&tmp, out_dir)?;
    fs::rename(&tmp, &dest)?;
    block::sync_dir(out_dir)?;
    drop(spill);
    let _ = fs::remove_file(&win.spill_path);
    Ok(BlockReport {
        ulid: id,
        path: dest,
        min_time: win.mint,
        max_time,
        series: win.series,
        samples: win.samples,
        chunks,
        index_bytes,
        chunk_bytes,
        tombstones: intervals.len() as u64,
        written: true,
    })
}

#[cfg(test)]
mod tests {
    use super::{disk_need, RefMap};

    #[test]
    fn disk_need_counts_spill_freed_behind_each_block() {
        assert_eq!(disk_need(&[]), 0);
        // One block: itself and its postings runs, its spill still on disk.
        assert_eq!(disk_need(&[(100, 30, 80)]), 130);
        // Block 2 (50) comes after block 1's spill (80) went: 100 + 50 - 80 < 100.
        assert_eq!(disk_need(&[(100, 0, 80), (50, 0, 10)]), 100);
        // A big second block: 100 + 200 + 5 - 80 = 225.
        assert_eq!(disk_need(&[(100, 0, 80), (200, 5, 10)]), 225);
    }

    #[test]
    fn ref_map_dense_and_sparse() {
        let mut m = RefMap::default();
        m.insert(1, 0, 1);
        m.insert(7_000_000_000, 1, 2);
        m.insert(5000, 2, 3); // beyond 4 x (3 + 1024): sparse for now
        assert_eq!(m.get(1), Some(0));
        assert_eq!(m.get(7_000_000_000), Some(1));
        assert_eq!(m.get(5000), Some(2));
        assert_eq!(m.get(2), None);
        assert_eq!(m.get(u64::MAX), None);
        // With more series, 5000 becomes dense; a new mapping replaces the sparse one.
        m.insert(5000, 9, 2000);
        assert_eq!(m.get(5000), Some(9));
        assert!(!m.sparse.contains_key(&5000));
        m.insert(1, 4, 2000);
        assert_eq!(m.get(1), Some(4));
    }
}
