//! One streaming pass over the logs, in Prometheus's replay order, gathering the inputs of the
//! memory model.
//!
//! The walk is `walfix`'s: [`walfix::layout::discover`], [`walfix_format::frames::RecordReader`]
//! and [`walfix_format::record::visit`]. Segments are read a window at a time, framed, checked,
//! decompressed and decoded on worker threads (`read.rs`), and applied here in replay order, one
//! record after the other, by one thread: the series table, the chunk simulation and the timeline
//! depend on that order, so they see what a single-threaded pass sees. Order follows
//! `walfix::check` (and Prometheus's `Head.Init`): the highest checkpoint, then the WAL segments
//! numbered above it (segments it covers are skipped), then the WBL. Records of types Prometheus
//! does not replay in that log are skipped; damaged records are counted and skipped (Prometheus
//! would stop at the first one: run `walfix check`).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use walfix::layout::{discover, Layout, WalFlavor};
use walfix::report::Text;
use walfix_format::record::{
    self, Exemplar, HistogramSample, Labels, LogKind, Metadata, MmapMarker, Sample, Series,
    Tombstone, Visitor, STALE_NAN_BITS,
};

use crate::golang::{self, Tiny};
use crate::read::{self, Batch, Item, Job, Msg, Pool};
use crate::table::SeriesTable;
use crate::xor::{Appended, ChunkRules};

const HAS_SAMPLE: u8 = 1;
const HAS_FLOAT: u8 = 2;
const HAS_HISTOGRAM: u8 = 4;
const LAST_STALE: u8 = 8;
const HAS_EXEMPLAR: u8 = 16;
const HAS_METADATA: u8 = 32;
const IN_WBL: u8 = 64;

/// Label names and metric names tracked by name; more are counted under "(other)".
const MAX_NAMES: usize = 10_000;
const MAX_METRICS: usize = 100_000;
/// Example values kept per churning label name.
const EXAMPLES: usize = 3;
/// Hours of creation and end counts kept (later ones are counted in the last).
const MAX_HOURS: usize = 72;

/// How to read the logs.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Server or agent WAL.
    pub flavor: WalFlavor,
    /// How the Prometheus version cuts head chunks.
    pub rules: ChunkRules,
    /// Series first seen within this many ms of the first sample were there from the start
    /// (not churn). `None`: twice the scrape interval seen in the WAL, at least 30 s and at most
    /// 5 minutes.
    pub warmup_ms: Option<i64>,
    /// A series is active at the end if it has a sample within this many ms of the last one
    /// and that sample is not a staleness marker (5 minutes: the lookback delta).
    pub lookback_ms: i64,
    /// Bytes read at a time ([`DEFAULT_WINDOW`]); memory stays bounded by this and the largest
    /// record, not by the segment size.
    pub window_bytes: usize,
    /// Threads (0: one per CPU): the calling thread applies records in order, the others read and
    /// decode segments (1: the calling thread does everything). What the scan finds does not
    /// depend on it.
    pub threads: usize,
    /// Told the bytes of each segment once it is applied (for a progress bar).
    pub progress: walfix::Progress,
}

/// Series created in one hour of the WAL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HourBucket {
    /// Start of the hour (ms since the epoch), counted from the first sample.
    pub start_ms: i64,
    /// Series whose first sample falls in this hour.
    pub created: u64,
    /// Series whose last sample falls in this hour and that are not active at the end.
    pub ended: u64,
}

/// Series created per metric name.
#[derive(Clone, Debug, Serialize)]
pub struct MetricChurn {
    /// Metric name (`__name__`), or `(other)` beyond the tracked names. The bytes as they are in
    /// the WAL: printed escaped, serialized as a string or `{"bytes": base64}` (see [`Text`]).
    pub name: Text,
    /// Distinct series.
    pub series: u64,
    /// Of those, created after the warm-up (churn).
    pub created_after_start: u64,
}

/// What one label name contributes.
#[derive(Clone, Debug, Serialize)]
pub struct LabelChurn {
    /// Label name, or `(other)` (bytes as in the WAL, see [`Text`]).
    pub name: Text,
    /// Distinct series carrying it.
    pub series: u64,
    /// Distinct values.
    pub values: u64,
    /// Values first seen after the warm-up: the label's churn.
    pub values_after_start: u64,
    /// Series created after the warm-up carrying it.
    pub series_after_start: u64,
    /// A few of the values first seen after the warm-up.
    pub examples: Vec<Text>,
}

/// The replay's allocations so far, at one point of the WAL (in replay order): what the model of
/// the garbage collector runs on. Chunk bytes are the capacities Go allocates for the XOR chunk
/// streams (128 B, grown by `append`), as the chunk simulation sees them grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Float samples replayed so far.
    pub samples: u64,
    /// Series created so far (distinct label sets).
    pub series: u64,
    /// Series with an open head chunk so far.
    pub open_chunks: u64,
    /// Head chunks created so far (open and m-mapped).
    pub chunks_created: u64,
    /// Bytes of chunk streams allocated so far, every growth counted.
    pub chunk_alloc_bytes: u64,
    /// Bytes of the chunk streams of the open head chunks now.
    pub chunk_live_bytes: u64,
}

/// Longest chunk stream: a 2-byte header and `u16::MAX` bits.
const CAP_TABLE_LEN: u64 = 2 + (u16::MAX as u64).div_ceil(8);

/// Most points kept in [`Inputs::timeline`]: at this many the step doubles and every other
/// point is dropped.
pub const TIMELINE_POINTS: usize = 512;

/// Everything the model needs, from one pass. Counts are over what Prometheus replays.
///
/// Deserializable (without the metric and label names, which the model does not use) so that
/// the calibration can keep the inputs of WALs too big to commit.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Inputs {
    /// Segment files read (checkpoint, WAL after it, WBL).
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Records read.
    pub records: u64,
    /// Framing, decompression or decoding problems met (`walfix check` says what they mean).
    pub problems: u64,
    /// Index of the checkpoint replayed first, if any.
    pub checkpoint: Option<u64>,
    /// WAL segments skipped because the checkpoint covers them.
    pub covered_segments: u64,

    /// Series entries read, duplicates included.
    pub series_entries: u64,
    /// Distinct label sets: the series Prometheus creates on replay.
    pub series: u64,
    /// Series entries whose labels were already known under another ref (Prometheus keeps one
    /// series and maps the ref to it).
    pub duplicate_refs: u64,
    /// Series entries repeating a ref already defined with the same labels.
    pub redeclared_refs: u64,
    /// Labels over all distinct series.
    pub labels: u64,
    /// Bytes of label names and values over all distinct series.
    pub label_bytes: u64,
    /// Distinct label names.
    pub label_names: u64,
    /// Distinct (name, value) pairs (= postings lists).
    pub label_pairs: u64,
    /// Heap of the label sets with `[]Label` layout (2.42, distro builds of 2.53): the slice plus
    /// one string per name and value, tiny allocator simulated.
    pub labels_heap_slice: u64,
    /// Heap of the label sets with the single-string layout (3.x, official 2.44+ builds).
    pub labels_heap_string: u64,
    /// Postings list lengths: list length -> number of (name, value) pairs with that length.
    pub postings_lengths: BTreeMap<u64, u64>,
    /// Distinct values per label name: value count -> number of names.
    pub values_per_name: BTreeMap<u64, u64>,

    /// Records holding float or histogram samples.
    pub sample_records: u64,
    /// Most samples in one such record.
    pub max_record_samples: u64,
    /// Float samples, staleness markers included.
    pub float_samples: u64,
    /// Staleness markers.
    pub stale_markers: u64,
    /// Histogram samples (integer and float).
    pub histogram_samples: u64,
    /// Bytes of histogram bodies (as stored in the WAL).
    pub histogram_body_bytes: u64,
    /// Exemplars.
    pub exemplars: u64,
    /// Metadata entries.
    pub metadata: u64,
    /// Bytes of metadata unit and help strings.
    pub metadata_bytes: u64,
    /// Tombstone intervals.
    pub tombstones: u64,
    /// WBL (out-of-order) samples and histograms.
    pub wbl_samples: u64,
    /// Samples, histograms, exemplars and metadata whose ref no series record defined.
    pub unknown_ref_entries: u64,
    /// Samples Prometheus drops as out of order on replay (timestamp not after the last one).
    pub out_of_order_dropped: u64,
    /// First and last sample time (ms).
    pub min_time: Option<i64>,
    /// Last sample time (ms).
    pub max_time: Option<i64>,

    /// Series with float samples.
    pub float_series: u64,
    /// Series with histogram samples.
    pub histogram_series: u64,
    /// Series with exemplars.
    pub exemplar_series: u64,
    /// Series with metadata.
    pub metadata_series: u64,
    /// Series with WBL samples.
    pub wbl_series: u64,
    /// Series without any sample.
    pub series_without_samples: u64,

    /// Open head chunks after replay (one per series with float samples).
    pub open_chunks: u64,
    /// Their lengths: bytes -> chunks.
    pub open_chunk_lengths: BTreeMap<u64, u64>,
    /// Chunks cut and m-mapped during replay.
    pub mmapped_chunks: u64,
    /// M-mapped chunks per series: count -> series.
    pub mmapped_per_series: BTreeMap<u64, u64>,

    /// Series whose first sample is within the warm-up (or that come from the checkpoint).
    pub series_at_start: u64,
    /// Series created after the warm-up: the churn.
    pub series_created: u64,
    /// Series not active at the end (last sample older than the lookback, or a staleness marker).
    pub series_ended: u64,
    /// Series active at the end.
    pub active_at_end: u64,
    /// Span from the first to the last sample, hours.
    pub span_hours: f64,
    /// Series created per hour after the warm-up: the churn rate. Measured from the first sample
    /// to the last creation (churn often comes in waves: a window that ends between two waves
    /// would otherwise dilute it), but over at least half the WAL (a single wave is not a rate).
    pub created_per_hour: f64,
    /// Series ended per hour.
    pub ended_per_hour: f64,
    /// Creation and end per hour of the WAL.
    pub hours: Vec<HourBucket>,
    /// Metric names with the most series created after the warm-up (top 10), then by series.
    #[serde(skip_deserializing)]
    pub top_metrics: Vec<MetricChurn>,
    /// Label names by values created after the warm-up (top 10): the labels that churn.
    #[serde(skip_deserializing)]
    pub churning_labels: Vec<LabelChurn>,
    /// Scrape interval: median gap between the first two samples of a series (first 256).
    pub scrape_interval_ms: Option<i64>,
    /// Warm-up used to tell churn from the initial series.
    pub warmup_ms: i64,
    /// Bytes the estimator itself held for its per-series tables at the end.
    pub estimator_table_bytes: u64,
    /// Allocations of the replay at evenly spaced points of the float samples (at most
    /// [`TIMELINE_POINTS`], the last one at the end).
    pub timeline: Vec<TimelinePoint>,
}

#[derive(Default)]
struct NameStat {
    series: u64,
    values: u64,
    values_after_start: u64,
    series_after_start: u64,
    examples: Vec<Text>,
}

#[derive(Default)]
struct MetricStat {
    series: u64,
    after_start: u64,
}

struct Collector {
    rules: ChunkRules,
    warmup_fixed: Option<i64>,
    deltas: Vec<u32>,
    interval_ms: Option<i64>,
    table: SeriesTable,
    tiny: Tiny,
    names: HashMap<Box<[u8]>, (u32, NameStat)>,
    metrics: HashMap<Box<[u8]>, MetricStat>,
    pairs: HashMap<u64, u32>,
    other_name: NameStat,
    other_metric: MetricStat,
    /// Latest sample time seen so far: the replay's clock.
    clock: Option<i64>,
    /// First sample time seen, seconds: base of `first_s`.
    base_s: Option<i64>,
    in_wbl: bool,
    /// Capacities of a chunk stream as it grows ([`golang::chunk_caps`]).
    caps: Vec<u64>,
    /// `cap_of` for every length a chunk can have (bits are counted in a u16).
    cap_table: Vec<u32>,
    /// The allocations so far, and the float samples between timeline points.
    now: TimelinePoint,
    tl_step: u64,
    out: Inputs,
}

/// Fast, deterministic 64-bit hash of a byte string (FNV-1a with a final mix).
fn hash_bytes(mut h: u64, b: &[u8]) -> u64 {
    for &x in b {
        h = (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn finish(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn pair_hash(name: &[u8], value: &[u8]) -> u64 {
    let h = hash_bytes(0xcbf2_9ce4_8422_2325, &(name.len() as u32).to_le_bytes());
    let h = hash_bytes(h, name);
    let h = hash_bytes(h, &(value.len() as u32).to_le_bytes());
    finish(hash_bytes(h, value))
}

fn size_prefix(len: usize) -> u64 {
    if len < 255 {
        1
    } else {
        4
    }
}

impl Collector {
    fn new(opts: &ScanOptions) -> Self {
        let mut c = Collector {
            rules: opts.rules,
            warmup_fixed: opts.warmup_ms,
            deltas: Vec::with_capacity(256),
            interval_ms: None,
            table: SeriesTable::default(),
            tiny: Tiny::default(),
            names: HashMap::new(),
            metrics: HashMap::new(),
            pairs: HashMap::new(),
            other_name: NameStat::default(),
            other_metric: MetricStat::default(),
            clock: None,
            base_s: None,
            in_wbl: false,
            caps: golang::chunk_caps(),
            cap_table: Vec::new(),
            now: TimelinePoint::default(),
            tl_step: 1024,
            out: Inputs::default(),
        };
        c.cap_table = (0..=CAP_TABLE_LEN)
            .map(|l| c.cap_of_slow(l).min(u32::MAX as u64) as u32)
            .collect();
        c
    }

    /// Capacity of a chunk stream of `len` bytes (0: no chunk).
    #[inline]
    fn cap_of(&self, len: u64) -> u64 {
        match self.cap_table.get(len as usize) {
            Some(&c) => c as u64,
            None => self.cap_of_slow(len),
        }
    }

    fn cap_of_slow(&self, len: u64) -> u64 {
        if len == 0 {
            return 0;
        }
        for &c in &self.caps {
            if c >= len {
                return c;
            }
        }
        golang::alloc(len)
    }

    fn note_timeline(&mut self) {
        self.now.series = self.out.series;
        let tl = &mut self.out.timeline;
        tl.push(self.now);
        if tl.len() >= TIMELINE_POINTS {
            let kept: Vec<TimelinePoint> = tl.iter().skip(1).step_by(2).copied().collect();
            *tl = kept;
            self.tl_step *= 2;
        }
    }

    fn warmup_ms(&self) -> i64 {
        if let Some(w) = self.warmup_fixed {
            return w;
        }
        match self.interval_ms {
            Some(i) => (2 * i).clamp(30_000, 300_000),
            None => 300_000,
        }
    }

    fn after_start(&self) -> bool {
        match (self.clock, self.base_s) {
            (Some(c), Some(b)) => c - b * 1000 > self.warmup_ms(),
            _ => false,
        }
    }

    fn note_delta(&mut self, d: i64) {
        if self.deltas.len() < 256 && d > 0 {
            self.deltas.push(d.min(u32::MAX as i64) as u32);
            let n = self.deltas.len();
            if n == 16 || n == 64 || n == 256 {
                let mut v = self.deltas.clone();
                v.sort_unstable();
                self.interval_ms = Some(v[n / 2] as i64);
            }
        }
    }

    fn new_series(&mut self, labels: &Labels<'_>) {
        let after = self.after_start();
        let o = &mut self.out;
        o.series += 1;
        o.labels += labels.len() as u64;
        o.label_bytes += labels.byte_len() as u64;
        // []Label slice (32 bytes a label) + one string per name and value.
        let mut slice = golang::alloc(32 * labels.len() as u64);
        let mut string = 0u64;
        let mut metric: Option<&[u8]> = None;
        for (n, v) in labels.iter() {
            for s in [n, v] {
                match golang::string_alloc(s.len() as u64) {
                    Some(b) => slice += b,
                    None => self.tiny.alloc(s.len() as u64),
                }
                string += s.len() as u64 + size_prefix(s.len());
            }
            if n == b"__name__" {
                metric = Some(v);
            }
            let ph = pair_hash(n, v);
            let count = self.pairs.entry(ph).or_insert(0);
            let new_value = *count == 0;
            *count = count.saturating_add(1);
            if self.names.len() < MAX_NAMES && !self.names.contains_key(n) {
                let id = self.names.len() as u32;
                self.names.insert(n.into(), (id, NameStat::default()));
            }
            let stat = match self.names.get_mut(n) {
                Some((_, s)) => s,
                None => &mut self.other_name,
            };
            stat.series += 1;
            if after {
                stat.series_after_start += 1;
            }
            if new_value {
                stat.values += 1;
                if after {
                    stat.values_after_start += 1;
                    if stat.examples.len() < EXAMPLES {
                        stat.examples.push(Text::from(v));
                    }
                }
            }
        }
        o.labels_heap_slice += slice;
        o.labels_heap_string += golang::alloc(string);
        let name = metric.unwrap_or(b"");
        if self.metrics.len() < MAX_METRICS && !self.metrics.contains_key(name) {
            self.metrics.insert(name.into(), MetricStat::default());
        }
        let stat = match self.metrics.get_mut(name) {
            Some(s) => s,
            None => &mut self.other_metric,
        };
        stat.series += 1;
        if after {
            stat.after_start += 1;
        }
    }

    fn tick(&mut self, t: i64) {
        let o = &mut self.out;
        o.min_time = Some(o.min_time.map_or(t, |m| m.min(t)));
        o.max_time = Some(o.max_time.map_or(t, |m| m.max(t)));
        if self.base_s.is_none() {
            self.base_s = Some(t.div_euclid(1000));
        }
        if self.clock.is_none_or(|c| t > c) {
            self.clock = Some(t);
        }
    }

    fn first_sample(&mut self, idx: u32, t: i64) {
        let base = self.base_s.unwrap_or(0);
        let e = self.table.get_mut(idx);
        if e.c.flags & HAS_SAMPLE == 0 {
            e.c.flags |= HAS_SAMPLE;
            let rel = t.div_euclid(1000) - base;
            e.c.first_s = rel.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        }
    }
}

impl Collector {
    /// One float sample: the hot path (every sample of the WAL comes here, in replay order).
    #[inline]
    fn float_sample(&mut self, r: u64, t: i64, v: u64) {
        self.out.float_samples += 1;
        let stale = v == STALE_NAN_BITS;
        self.out.stale_markers += stale as u64;
        if self.in_wbl {
            self.out.wbl_samples += 1;
            if let Some(idx) = self.table.by_ref(r) {
                self.table.get_mut(idx).c.flags |= IN_WBL;
            } else {
                self.out.unknown_ref_entries += 1;
            }
            return;
        }
        let Some(idx) = self.table.by_ref(r) else {
            self.out.unknown_ref_entries += 1;
            return;
        };
        self.tick(t);
        let base = self.base_s.unwrap_or(0);
        let rules = self.rules;
        let e = self.table.get_mut(idx);
        if e.c.flags & HAS_SAMPLE == 0 {
            e.c.flags |= HAS_SAMPLE;
            let rel = t.div_euclid(1000) - base;
            e.c.first_s = rel.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        }
        let second = e.c.n == 1 && e.c.mmapped == 0 && e.c.t != i64::MIN;
        let prev_t = e.c.t;
        let old_len = e.c.chunk_len();
        e.c.flags |= HAS_FLOAT;
        let appended = e.c.append(t, v, &rules);
        let new_len = e.c.chunk_len();
        let cut = match appended {
            Appended::OutOfOrder => {
                self.out.out_of_order_dropped += 1;
                return;
            }
            Appended::Cut { mmapped } => {
                if mmapped {
                    e.c.mmapped = e.c.mmapped.saturating_add(1);
                    self.out.mmapped_chunks += 1;
                }
                true
            }
            Appended::Same => false,
        };
        e.c.flags = (e.c.flags & !LAST_STALE) | (stale as u8 * LAST_STALE);
        // Without branches on what the CPU cannot predict (a chunk's length grows every few
        // samples). A cut makes a new chunk (the old one, if any, is m-mapped: its stream is
        // garbage); otherwise the stream only grows, so new_cap >= old_cap.
        let (old_cap, new_cap) = (self.cap_of(old_len), self.cap_of(new_len));
        let grown = cut | (new_cap > old_cap);
        self.now.open_chunks += (cut & (old_len == 0)) as u64;
        self.now.chunks_created += cut as u64;
        self.now.chunk_alloc_bytes += if grown { new_cap } else { 0 };
        self.now.chunk_live_bytes = self.now.chunk_live_bytes + new_cap - old_cap;
        self.now.samples += 1;
        // tl_step is 1024 doubled: a power of two.
        if self.now.samples & (self.tl_step - 1) == 0 {
            self.note_timeline();
        }
        if second {
            self.note_delta(t - prev_t);
        }
    }
}

impl Visitor for Collector {
    fn series(&mut self, s: &Series<'_>) {
        self.out.series_entries += 1;
        let mut h: u64 = 0x243f_6a88_85a3_08d3;
        for (n, v) in s.labels.iter() {
            h = (h.rotate_left(23) ^ pair_hash(n, v)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let h = finish(h ^ s.labels.len() as u64);
        let before = self.table.by_ref(s.series_ref);
        let (idx, created) = self.table.find_or_insert(h);
        if created {
            self.new_series(&s.labels);
        } else if before == Some(idx) {
            self.out.redeclared_refs += 1;
        } else {
            self.out.duplicate_refs += 1;
        }
        self.table.set_ref(s.series_ref, idx);
    }

    fn sample(&mut self, s: &Sample) {
        self.float_sample(s.series_ref, s.t, s.v.to_bits());
    }

    fn histogram(&mut self, h: &HistogramSample<'_>) {
        self.out.histogram_samples += 1;
        self.out.histogram_body_bytes += h.body.len() as u64;
        let Some(idx) = self.table.by_ref(h.series_ref) else {
            self.out.unknown_ref_entries += 1;
            return;
        };
        if self.in_wbl {
            self.out.wbl_samples += 1;
            self.table.get_mut(idx).c.flags |= IN_WBL;
            return;
        }
        self.tick(h.t);
        self.first_sample(idx, h.t);
        let e = self.table.get_mut(idx);
        e.c.flags |= HAS_HISTOGRAM;
        // The float chunk state keeps the last timestamp, for "active at the end".
        if e.c.t < h.t {
            e.c.t = h.t;
        }
    }

    fn exemplar(&mut self, ex: &Exemplar<'_>) {
        self.out.exemplars += 1;
        match self.table.by_ref(ex.series_ref) {
            Some(idx) => self.table.get_mut(idx).c.flags |= HAS_EXEMPLAR,
            None => self.out.unknown_ref_entries += 1,
        }
    }

    fn metadata(&mut self, m: &Metadata<'_>) {
        self.out.metadata += 1;
        self.out.metadata_bytes += (m.unit.len() + m.help.len()) as u64;
        match self.table.by_ref(m.series_ref) {
            Some(idx) => self.table.get_mut(idx).c.flags |= HAS_METADATA,
            None => self.out.unknown_ref_entries += 1,
        }
    }

    fn tombstone(&mut self, _t: &Tombstone) {
        self.out.tombstones += 1;
    }

    fn mmap_marker(&mut self, _m: &MmapMarker) {}
}

/// Reads the logs under `path` (a data dir, a `wal/` dir, ...) in replay order.
pub fn scan_path(path: &Path, opts: &ScanOptions) -> io::Result<Inputs> {
    let layout = discover(path, opts.flavor)?;
    scan_layout(&layout, opts)
}

/// What the scan does in replay order: read a segment, or note something between segments.
enum Step<'a> {
    /// The checkpoint with this index is replayed first.
    Checkpoint(u64),
    /// A WAL segment the checkpoint covers (skipped).
    Covered,
    /// The log that follows is (or is not) a WBL.
    Wbl(bool),
    /// Read job number N.
    Read(usize),
    /// A segment that is a directory: the scan fails here.
    Dir(&'a Path),
}

fn steps(layout: &Layout) -> (Vec<Step<'_>>, Vec<Job<'_>>) {
    let mut steps = Vec::new();
    let mut jobs = Vec::new();
    'logs: for log in &layout.logs {
        let covered = log.checkpoint.as_ref().map(|c| c.index);
        let mut parts = Vec::new();
        if let Some(ck) = &log.checkpoint {
            parts.push((Some(ck.index), &ck.log, None));
        }
        parts.push((None, log, covered));
        for (ck_index, l, covered_upto) in parts {
            match ck_index {
                Some(i) => steps.push(Step::Checkpoint(i)),
                None => steps.push(Step::Wbl(l.kind == LogKind::Wbl)),
            }
            for seg in &l.segments {
                if covered_upto.is_some_and(|n| seg.index <= n) {
                    steps.push(Step::Covered);
                    continue;
                }
                if seg.is_dir {
                    steps.push(Step::Dir(&seg.path));
                    break 'logs;
                }
                steps.push(Step::Read(jobs.len()));
                jobs.push(Job {
                    path: &seg.path,
                    kind: l.kind,
                });
            }
            if ck_index.is_none() {
                steps.push(Step::Wbl(false));
            }
        }
    }
    (steps, jobs)
}

/// Applies steps and read results in order.
struct Replay<'a, 'b> {
    col: &'b mut Collector,
    steps: &'b [Step<'a>],
    next: usize,
    pool: &'b Pool,
    failed: Option<io::Error>,
    progress: &'b walfix::Progress,
    opened: u64,
}

impl Replay<'_, '_> {
    /// Applies the steps before read job `job` (all of them if `None`); false once failed.
    fn upto(&mut self, job: Option<usize>) -> bool {
        while let Some(step) = self.steps.get(self.next) {
            match *step {
                Step::Read(j) if Some(j) == job => return true,
                Step::Read(_) => {}
                Step::Checkpoint(i) => self.col.out.checkpoint = Some(i),
                Step::Covered => self.col.out.covered_segments += 1,
                Step::Wbl(w) => self.col.in_wbl = w,
                Step::Dir(p) => {
                    self.failed = Some(io::Error::other(format!(
                        "{}: segment is a directory",
                        p.display()
                    )));
                    return false;
                }
            }
            self.next += 1;
        }
        job.is_none()
    }

    fn msg(&mut self, job: usize, kind: LogKind, m: Msg) -> bool {
        if !self.upto(Some(job)) {
            return false;
        }
        match m {
            Msg::Opened(len) => {
                self.col.out.segments += 1;
                self.col.out.bytes += len;
                self.opened = len;
            }
            Msg::Batch(b) => {
                self.col.apply(kind, &b);
                self.pool.give(b);
            }
            Msg::Done(Ok(())) => {
                self.next += 1;
                self.progress.advance(self.opened);
            }
            Msg::Done(Err(e)) => {
                self.failed = Some(e);
                return false;
            }
        }
        true
    }
}

/// Reads an already discovered layout in replay order.
pub fn scan_layout(layout: &Layout, opts: &ScanOptions) -> io::Result<Inputs> {
    let mut col = Collector::new(opts);
    let (steps, jobs) = steps(layout);
    let pool = Pool::default();
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut rp = Replay {
        col: &mut col,
        steps: &steps,
        next: 0,
        pool: &pool,
        failed: None,
        progress: &opts.progress,
        opened: 0,
    };
    if threads <= 1 {
        for (i, job) in jobs.iter().enumerate() {
            let mut go = true;
            read::read_segment(job, opts.window_bytes, &pool, &mut |m| {
                go = rp.msg(i, job.kind, m);
                go
            });
            if !go {
                break;
            }
        }
    } else {
        // This thread applies what the others read: it is the longest chain, so it keeps a core.
        read::read_parallel(&jobs, threads - 1, opts.window_bytes, &pool, &mut |i, m| {
            rp.msg(i, jobs[i].kind, m)
        });
    }
    if rp.failed.is_none() {
        rp.upto(None);
    }
    if let Some(e) = rp.failed {
        return Err(e);
    }
    Ok(finish_inputs(col, opts))
}

/// Bytes read at a time by default. Records never cross segments but can cross windows: a window
/// ends after its last whole record and the next one starts at that record's end's page.
pub const DEFAULT_WINDOW: usize = 4 << 20;

impl Collector {
    /// The records of part of a segment, in order.
    fn apply(&mut self, _kind: LogKind, b: &Batch) {
        let (mut s0, mut b0) = (0, 0);
        for it in &b.items {
            self.out.records += 1;
            let n = match *it {
                Item::Skipped => 0,
                Item::Invalid => {
                    // Prometheus rejects the whole record.
                    self.out.problems += 1;
                    0
                }
                Item::Samples(end) => {
                    let samples = b.samples.get(s0..end).unwrap_or_default();
                    s0 = end;
                    for d in samples {
                        self.float_sample(d.r, d.t, d.v);
                    }
                    samples.len() as u64
                }
                Item::Visit(end) => {
                    let data = b.bytes.get(b0..end).unwrap_or_default();
                    b0 = end;
                    let before = self.out.float_samples + self.out.histogram_samples;
                    let _ = record::visit(data, self);
                    self.out.float_samples + self.out.histogram_samples - before
                }
            };
            if n > 0 {
                self.out.sample_records += 1;
                self.out.max_record_samples = self.out.max_record_samples.max(n);
            }
        }
        self.out.problems += b.problems;
    }
}

fn finish_inputs(mut col: Collector, opts: &ScanOptions) -> Inputs {
    if col.out.timeline.last().map(|p| p.samples) != Some(col.now.samples) || col.now.samples == 0 {
        col.note_timeline();
    }
    let warmup_ms = col.warmup_ms();
    let mut o = std::mem::take(&mut col.out);
    o.scrape_interval_ms = col.interval_ms;
    o.warmup_ms = warmup_ms;
    // Tiny-allocator blocks of the short label strings (slice layout).
    o.labels_heap_slice += col.tiny.blocks * 16;
    o.label_names = col.names.len() as u64 + (col.other_name.series > 0) as u64;
    o.label_pairs = col.pairs.len() as u64;
    for &c in col.pairs.values() {
        *o.postings_lengths.entry(c as u64).or_default() += 1;
    }
    for (_, s) in col.names.values() {
        *o.values_per_name.entry(s.values).or_default() += 1;
    }
    let max_t = o.max_time.unwrap_or(0);
    let min_t = o.min_time.unwrap_or(0);
    let base_s = col.base_s.unwrap_or(0);
    let hour_of = |t_ms: i64| ((t_ms - min_t).max(0) / 3_600_000) as usize;
    // A WAL holds hours; stray timestamps far apart would make millions of buckets.
    let n_hours = (hour_of(max_t) + 1).min(MAX_HOURS);
    let mut hours: Vec<HourBucket> = (0..n_hours)
        .map(|h| HourBucket {
            start_ms: min_t + h as i64 * 3_600_000,
            created: 0,
            ended: 0,
        })
        .collect();
    let mut last_creation = min_t;
    for e in col.table.iter() {
        let c = &e.c;
        let f = c.flags;
        if f & HAS_SAMPLE == 0 {
            o.series_without_samples += 1;
            o.series_at_start += 1;
            o.series_ended += 1;
            continue;
        }
        if f & HAS_FLOAT != 0 {
            o.float_series += 1;
            if c.n > 0 {
                o.open_chunks += 1;
                *o.open_chunk_lengths.entry(c.chunk_len()).or_default() += 1;
            }
        }
        if f & HAS_HISTOGRAM != 0 {
            o.histogram_series += 1;
        }
        if f & HAS_EXEMPLAR != 0 {
            o.exemplar_series += 1;
        }
        if f & HAS_METADATA != 0 {
            o.metadata_series += 1;
        }
        if f & IN_WBL != 0 {
            o.wbl_series += 1;
        }
        *o.mmapped_per_series.entry(c.mmapped as u64).or_default() += 1;
        let first_ms = (base_s + c.first_s as i64) * 1000;
        if first_ms - min_t <= warmup_ms {
            o.series_at_start += 1;
        } else {
            o.series_created += 1;
            last_creation = last_creation.max(first_ms);
            hours[hour_of(first_ms).min(n_hours - 1)].created += 1;
        }
        let active = c.t >= max_t - opts.lookback_ms && f & LAST_STALE == 0;
        if active {
            o.active_at_end += 1;
        } else {
            o.series_ended += 1;
            hours[hour_of(c.t).min(n_hours - 1)].ended += 1;
        }
    }
    o.hours = hours;
    let span_ms = (max_t - min_t).max(0);
    o.span_hours = span_ms as f64 / 3_600_000.0;
    let half = (span_ms - warmup_ms).max(0) / 2;
    let churn_ms = (last_creation - min_t).max(half);
    if churn_ms > 0 {
        o.created_per_hour = o.series_created as f64 * 3_600_000.0 / churn_ms as f64;
        o.ended_per_hour = o.series_ended.saturating_sub(o.series_without_samples) as f64
            / (span_ms as f64 / 3_600_000.0).max(1e-9);
    }
    let mut metrics: Vec<MetricChurn> = col
        .metrics
        .iter()
        .map(|(n, s)| MetricChurn {
            name: Text::from(&n[..]),
            series: s.series,
            created_after_start: s.after_start,
        })
        .collect();
    if col.other_metric.series > 0 {
        metrics.push(MetricChurn {
            name: "(other)".into(),
            series: col.other_metric.series,
            created_after_start: col.other_metric.after_start,
        });
    }
    metrics.sort_by(|a, b| {
        (b.created_after_start, b.series, &a.name).cmp(&(a.created_after_start, a.series, &b.name))
    });
    metrics.truncate(10);
    o.top_metrics = metrics;
    let mut labels: Vec<LabelChurn> = col
        .names
        .iter()
        .map(|(n, (_, s))| label_churn(Text::from(&n[..]), s))
        .collect();
    if col.other_name.series > 0 {
        labels.push(label_churn("(other)".into(), &col.other_name));
    }
    labels.sort_by(|a, b| {
        (b.values_after_start, b.values, &a.name).cmp(&(a.values_after_start, a.values, &b.name))
    });
    labels.truncate(10);
    o.churning_labels = labels;
    o.estimator_table_bytes = col.table.heap_bytes()
        + (col.pairs.capacity() * 17) as u64
        + (col.names.capacity() * 96 + col.metrics.capacity() * 56) as u64;
    o
}

fn label_churn(name: Text, s: &NameStat) -> LabelChurn {
    LabelChurn {
        name,
        series: s.series,
        values: s.values,
        values_after_start: s.values_after_start,
        series_after_start: s.series_after_start,
        examples: s.examples.clone(),
    }
}
