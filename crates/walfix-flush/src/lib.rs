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
//! * `wal/`, `chunks_head/` and `wbl/` are left where they are: Prometheus started on the data
//!   dir afterwards replays the WAL again, but drops every sample before the new blocks' end
//!   (they are in the blocks), so nothing is counted twice.
//!
//! # Memory (measured figures in docs/flush.md)
//!
//! This part does **not** meet issue 14's bound of 200 B per series plus 64 MiB (measured: about
//! 630 B of heap per series at 1M series). Held during the pass, per series: its label pairs
//! (8 B each) and a 4 B offset, the interned strings (each distinct string once), about 40 B of
//! state, 4 B per series ref (dense vector; a map for refs far beyond the series count), a dedup
//! map entry (~24 B), and the series' **open chunk** (about 90 B of encoder plus up to ~1 KiB of
//! chunk bytes, ~150-250 B typically at 120 samples per chunk). Per 2 h window a series appears
//! in: a 16 B spill directory entry. Closed chunks are on disk (spill), not in memory; segments,
//! spill and blocks are read through read-only maps (page cache) when the process allowed it
//! ([`walfix::mmap::enable_process_wide`], as the `walfix` binary does), else read into memory.
//! Finishing a window holds its symbol map, its postings (12 B per label pair per series of
//! the window) and the postings offset table; verification holds 4 B per series of the block.

pub mod bits;
pub mod block;
pub mod labels;
pub mod read;
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

use crate::block::{ChunkMeta, ChunkWriter, IndexWriter, Meta, MetaCompaction, MetaStats};
use crate::labels::{hash_labels, sample_digest, Interner, LabelStore};
use crate::xor::{XorEncoder, ENC_XOR, MAX_CHUNK_BYTES, SAMPLES_PER_CHUNK};

/// Block (and chunk range) width: Prometheus's `DefaultBlockDuration`, 2 h.
pub const BLOCK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// Prefix of the spill directory made in the output dir (not a ULID, so Prometheus ignores it).
pub const SPILL_PREFIX: &str = ".walfix-flush-spill";

const NONE: u64 = u64::MAX;
const SPILL_HEADER: usize = 32;

/// How to flush.
#[derive(Clone, Debug, Default)]
pub struct FlushOptions {
    /// Where the blocks go; default the data dir itself.
    pub output_dir: Option<PathBuf>,
    /// Read and plan, write nothing.
    pub dry_run: bool,
    /// Server or agent WAL (an agent WAL is refused: agents keep no blocks).
    pub flavor: WalFlavor,
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
    /// Series tables at the end of the pass: labels, strings, per-series state, ref maps.
    pub series_tables_bytes: u64,
    /// Most bytes of open chunks held at once.
    pub peak_open_chunk_bytes: u64,
    /// Peak resident set of this process (`VmHWM`), if the platform tells. It counts the
    /// pages of the maps (segments, spill, the block read back) as well.
    pub peak_rss_bytes: Option<u64>,
    /// Largest anonymous resident memory (`RssAnon`, heap) seen at the end of the pass and
    /// after each block is built and verified: heap without the mapped files.
    pub anon_rss_bytes: Option<u64>,
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
    /// Exit code: 2 refused (locked, damaged, unsupported), 3 operational or verification error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FlushError::Locked(_) | FlushError::Damaged(_) | FlushError::Unsupported(_) => 2,
            FlushError::Io(_) | FlushError::Verify { .. } => 3,
        }
    }
}

#[derive(Clone, Copy)]
struct DirEntry {
    series: u32,
    last_chunk: u64,
}

#[derive(Default)]
struct Window {
    spill: Option<BufWriter<File>>,
    spill_path: PathBuf,
    spill_pos: u64,
    dir: Vec<DirEntry>,
    samples: u64,
    chunks: u64,
    mint: i64,
    maxt: i64,
    digest: u64,
}

struct SeriesState {
    hash: u64,
    last_t: i64,
    window: i64,
    last_chunk: u64,
    open: Option<Box<XorEncoder>>,
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
    strings: Interner,
    labels: LabelStore,
    series: Vec<SeriesState>,
    refs: RefMap,
    by_hash: HashMap<u64, u32>,
    windows: BTreeMap<i64, Window>,
    spill_dir: Option<PathBuf>,
    min_valid: i64,
    in_wbl: bool,
    wbl_samples: u64,
    scratch: Vec<[u32; 2]>,
    /// (series, mint, maxt) of every kept tombstone interval.
    tombstones: Vec<(u32, i64, i64)>,
    open_bytes: u64,
    err: Option<io::Error>,
    out: FlushReport,
}

impl Pass {
    fn find_or_add_series(&mut self, pairs: &[[u32; 2]], hash: u64) -> u32 {
        let mut key = hash;
        loop {
            match self.by_hash.get(&key) {
                Some(&idx) if self.labels.get(idx) == pairs => return idx,
                Some(_) => key = key.wrapping_add(0x9e37_79b9_7f4a_7c15),
                None => break,
            }
        }
        let idx = self.labels.push(pairs);
        self.by_hash.insert(key, idx);
        self.series.push(SeriesState {
            hash,
            last_t: i64::MIN,
            window: i64::MIN,
            last_chunk: NONE,
            open: None,
        });
        self.out.series += 1;
        idx
    }

    fn window(&mut self, w: i64) -> io::Result<&mut Window> {
        if !self.windows.contains_key(&w) {
            let mut win = Window {
                mint: i64::MAX,
                maxt: i64::MIN,
                ..Window::default()
            };
            if let Some(dir) = &self.spill_dir {
                win.spill_path = dir.join(format!("w{w}"));
                win.spill = Some(BufWriter::with_capacity(
                    256 << 10,
                    File::create(&win.spill_path)?,
                ));
            }
            self.windows.insert(w, win);
        }
        Ok(self.windows.get_mut(&w).expect("inserted"))
    }

    /// Closes series `idx`'s open chunk into its window's spill.
    fn close_chunk(&mut self, idx: u32) -> io::Result<()> {
        let s = &mut self.series[idx as usize];
        let Some(mut enc) = s.open.take() else {
            return Ok(());
        };
        let (w, prev) = (s.window, s.last_chunk);
        let (mint, maxt, n) = (enc.mint, enc.maxt(), enc.len());
        self.open_bytes = self.open_bytes.saturating_sub(enc.byte_len() as u64);
        let bytes = enc.bytes();
        let win = self.window(w)?;
        let at = win.spill_pos;
        win.chunks += 1;
        if let Some(f) = &mut win.spill {
            let mut h = [0u8; SPILL_HEADER];
            h[0..4].copy_from_slice(&idx.to_le_bytes());
            h[4..12].copy_from_slice(&prev.to_le_bytes());
            h[12..20].copy_from_slice(&mint.to_le_bytes());
            h[20..28].copy_from_slice(&maxt.to_le_bytes());
            h[28..30].copy_from_slice(&n.to_le_bytes());
            h[30..32].copy_from_slice(&(bytes.len() as u16).to_le_bytes());
            f.write_all(&h)?;
            f.write_all(bytes)?;
        }
        win.spill_pos += (SPILL_HEADER + bytes.len()) as u64;
        self.series[idx as usize].last_chunk = at;
        Ok(())
    }

    /// Ends series `idx`'s stay in its current window.
    fn leave_window(&mut self, idx: u32) -> io::Result<()> {
        self.close_chunk(idx)?;
        let s = &mut self.series[idx as usize];
        if s.window == i64::MIN {
            return Ok(());
        }
        let (w, last) = (s.window, s.last_chunk);
        s.window = i64::MIN;
        s.last_chunk = NONE;
        self.window(w)?.dir.push(DirEntry {
            series: idx,
            last_chunk: last,
        });
        Ok(())
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
        let s = &self.series[idx as usize];
        if s.last_t != i64::MIN && t <= s.last_t {
            self.out.dropped_out_of_order += 1;
            return Ok(());
        }
        let w = t.div_euclid(BLOCK_RANGE_MS);
        if s.window != w {
            self.leave_window(idx)?;
            self.series[idx as usize].window = w;
        } else if let Some(enc) = &s.open {
            if enc.len() >= SAMPLES_PER_CHUNK || enc.byte_len() > MAX_CHUNK_BYTES {
                self.close_chunk(idx)?;
            }
        }
        let s = &mut self.series[idx as usize];
        let enc = s.open.get_or_insert_with(|| Box::new(XorEncoder::new()));
        let before = enc.byte_len();
        enc.append(t, v);
        self.open_bytes += (enc.byte_len() - before) as u64;
        self.out.memory.peak_open_chunk_bytes =
            self.out.memory.peak_open_chunk_bytes.max(self.open_bytes);
        s.last_t = t;
        let hash = s.hash;
        let win = self.window(w)?;
        win.samples += 1;
        win.mint = win.mint.min(t);
        win.maxt = win.maxt.max(t);
        win.digest = win.digest.wrapping_add(sample_digest(hash, t, v));
        Ok(())
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.err.get_or_insert(e);
        }
    }
}

impl Visitor for Pass {
    fn series(&mut self, s: &Series<'_>) {
        if self.in_wbl {
            return;
        }
        let mut pairs = std::mem::take(&mut self.scratch);
        pairs.clear();
        for (n, v) in s.labels.iter() {
            let (n, v) = (self.strings.intern(n), self.strings.intern(v));
            pairs.push([n, v]);
        }
        // Prometheus's labels are sorted by name; records it writes already are.
        pairs.sort_by(|a, b| self.strings.get(a[0]).cmp(self.strings.get(b[0])));
        let hash = hash_labels(
            pairs
                .iter()
                .map(|p| (self.strings.get(p[0]), self.strings.get(p[1]))),
        );
        let idx = self.find_or_add_series(&pairs, hash);
        let n = self.series.len();
        self.refs.insert(s.series_ref, idx, n);
        self.scratch = pairs;
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

fn read_log(pass: &mut Pass, log: &Log, above: Option<u64>) -> Result<(), FlushError> {
    for seg in &log.segments {
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
                return Err(e.into());
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
    if !data_dir.join("wal").is_dir() {
        return Err(FlushError::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no wal/ here (give the data dir)", data_dir.display()),
        )));
    }
    let _lock = walfix::repair::lock(data_dir).map_err(|e| FlushError::Locked(e.to_string()))?;
    let check = walfix::check(
        data_dir,
        &walfix::CheckOptions {
            level: walfix::Level::Records,
            flavor: opts.flavor,
            ..Default::default()
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
    let out_dir = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| data_dir.to_path_buf());
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
    let mut res = run(data_dir, &out_dir, opts, min_valid, spill_dir.clone());
    if let Some(d) = &spill_dir {
        let _ = fs::remove_dir_all(d);
    }
    if let Ok(r) = &mut res {
        r.removed_leftovers = removed;
    }
    res
}

fn run(
    data_dir: &Path,
    out_dir: &Path,
    opts: &FlushOptions,
    min_valid: Option<i64>,
    spill_dir: Option<PathBuf>,
) -> Result<FlushReport, FlushError> {
    let layout = discover(data_dir, opts.flavor)?;
    let mut pass = Pass {
        strings: Interner::default(),
        labels: LabelStore::default(),
        series: Vec::new(),
        refs: RefMap::default(),
        by_hash: HashMap::new(),
        windows: BTreeMap::new(),
        spill_dir,
        min_valid: min_valid.unwrap_or(i64::MIN),
        in_wbl: false,
        wbl_samples: 0,
        scratch: Vec::new(),
        tombstones: Vec::new(),
        open_bytes: 0,
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
            read_log(&mut pass, &ck.log, None)?;
        }
        read_log(&mut pass, log, above)?;
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
    note_anon(&mut pass.out.memory);
    pass.out.memory.series_tables_bytes = (pass.strings.heap_bytes()
        + pass.labels.heap_bytes()
        + pass.series.capacity() * std::mem::size_of::<SeriesState>()
        + pass.refs.heap_bytes()
        + pass.by_hash.capacity() * 24) as u64;
    let with_samples = pass.series.iter().filter(|s| s.last_t != i64::MIN).count() as u64;
    pass.out.series_without_samples = pass.out.series - with_samples;
    // The per-series state is not needed to finish the windows.
    pass.series = Vec::new();
    pass.refs = RefMap::default();
    pass.by_hash = HashMap::new();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    pass.tombstones.sort_unstable();
    let mut mem = std::mem::take(&mut pass.out.memory);
    let windows = std::mem::take(&mut pass.windows);
    let newest = windows.keys().next_back().copied();
    for (i, (w, win)) in windows.into_iter().enumerate() {
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
                series: win.dir.len() as u64,
                samples: win.samples,
                chunks: win.chunks,
                index_bytes: 0,
                chunk_bytes: 0,
                tombstones: 0,
                written: false,
            }
        } else {
            let r = write_window(&pass, out_dir, id, win, max_time, &mut mem)?;
            note_anon(&mut mem);
            r
        };
        pass.out.samples_written += rep.samples;
        pass.out.blocks.push(rep);
    }
    mem.peak_rss_bytes = status_kb("VmHWM:");
    pass.out.memory = mem;
    Ok(pass.out)
}

fn spill_header(spill: &[u8], at: u64) -> io::Result<(u64, i64, i64, &[u8])> {
    let bad = || io::Error::other("spill file shorter than written");
    let at = at as usize;
    let h = spill.get(at..at + SPILL_HEADER).ok_or_else(bad)?;
    let le64 = |r: std::ops::Range<usize>| u64::from_le_bytes(h[r].try_into().unwrap());
    let prev = le64(4..12);
    let mint = le64(12..20) as i64;
    let maxt = le64(20..28) as i64;
    let len = u16::from_le_bytes([h[30], h[31]]) as usize;
    let bytes = spill
        .get(at + SPILL_HEADER..at + SPILL_HEADER + len)
        .ok_or_else(bad)?;
    Ok((prev, mint, maxt, bytes))
}

/// Chunks, chunk bytes, index bytes, tombstone intervals (block series ref, mint, maxt).
type Built = (u64, u64, u64, Vec<(u32, i64, i64)>);

fn write_window(
    pass: &Pass,
    out_dir: &Path,
    id: String,
    mut win: Window,
    max_time: i64,
    mem: &mut MemoryReport,
) -> Result<BlockReport, FlushError> {
    if let Some(f) = win.spill.take() {
        f.into_inner().map_err(|e| e.into_error())?;
    }
    let spill = SegmentData::open(&win.spill_path)?;
    let (strings, labels) = (&pass.strings, &pass.labels);
    win.dir
        .sort_by(|a, b| labels::compare(labels.get(a.series), labels.get(b.series), strings));
    let symbols = block::symbols_of(win.dir.iter().map(|e| e.series), labels, strings);
    let tmp = out_dir.join(format!("{id}.tmp-for-creation"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    let stones = &pass.tombstones;
    let (lo, hi) = (win.mint, max_time - 1);
    let built = (|| -> io::Result<Built> {
        let mut cw = ChunkWriter::new(&tmp.join("chunks"))?;
        let mut iw = IndexWriter::new(&tmp.join("index"), &symbols, strings)?;
        let mut chain = Vec::new();
        let mut metas = Vec::new();
        let mut chunks = 0u64;
        let mut intervals = Vec::new();
        for e in &win.dir {
            chain.clear();
            let mut at = e.last_chunk;
            while at != NONE {
                let (prev, ..) = spill_header(&spill, at)?;
                chain.push(at);
                at = prev;
            }
            metas.clear();
            for &at in chain.iter().rev() {
                let (_, mint, maxt, bytes) = spill_header(&spill, at)?;
                let chunk_ref = cw.write(ENC_XOR, bytes)?;
                metas.push(ChunkMeta {
                    mint,
                    maxt,
                    chunk_ref,
                });
            }
            chunks += metas.len() as u64;
            let sref = iw.add_series(labels.get(e.series), &metas)?;
            let from = stones.partition_point(|t| t.0 < e.series);
            for &(_, mint, maxt) in stones[from..].iter().take_while(|t| t.0 == e.series) {
                if mint <= hi && maxt >= lo {
                    intervals.push((sref, mint.max(lo), maxt.min(hi)));
                }
            }
        }
        spill.check_intact(&win.spill_path)?;
        let chunk_bytes = cw.finish()?;
        let index_bytes = iw.finish(strings)?;
        Ok((chunks, chunk_bytes, index_bytes, intervals))
    })();
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
            num_series: win.dir.len() as u64,
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
        Ok(s) if s.series != win.dir.len() as u64 => Err(format!(
            "{} series read back, {} written",
            s.series,
            win.dir.len()
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
    fs::rename(&tmp, &dest)?;
    block::sync_dir(out_dir)?;
    drop(spill);
    let _ = fs::remove_file(&win.spill_path);
    Ok(BlockReport {
        ulid: id,
        path: dest,
        min_time: win.mint,
        max_time,
        series: win.dir.len() as u64,
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
    use super::RefMap;

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
