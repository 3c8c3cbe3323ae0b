//! Scanning one segment: framing, decompression, record decoding, counts and series refs.

use walfix_format::frames::{
    Event, Problem, ProblemKind, PrometheusError, RecordEvent, RecordReader, SegmentReader,
};
use walfix_format::record::{
    self, Acceptance, Exemplar, HistogramSample, LogKind, Metadata, MmapMarker, RecordType, Sample,
    Series, Tombstone, Visitor,
};

use crate::refset::RefSet;
use crate::report::{Stats, UnknownRefs};

/// How deep `check` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Level {
    /// Pages, fragment sequence and CRC only: no decompression, no record decoding.
    Frames,
    /// Everything: decompress and decode every record.
    #[default]
    Records,
}

/// The bit pattern Prometheus writes as a staleness marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Problems kept per segment in detail; the rest are counted.
pub const MAX_PROBLEMS_PER_SEGMENT: usize = 1000;

/// Records of one type that Prometheus skips or rejects in this log.
#[derive(Clone, Debug, Default)]
pub struct TypeNote {
    /// How many.
    pub count: u64,
    /// Offset of the first.
    pub first_offset: usize,
}

/// What scanning one segment found.
#[derive(Debug, Default)]
pub struct SegmentScan {
    /// Problems in offset order (at most [`MAX_PROBLEMS_PER_SEGMENT`]).
    pub problems: Vec<Problem>,
    /// Problems beyond the cap.
    pub more_problems: u64,
    /// Counts.
    pub stats: Stats,
    /// Refs defined by series records, in order.
    pub defined: Vec<u64>,
    /// Refs used before any series record of this segment defined them.
    pub used_undefined: RefSet,
    /// Exact unknown-ref counts, when scanned against the refs known before this segment.
    pub unknown: UnknownRefs,
    /// Record types Prometheus skips in this log: type byte -> note.
    pub ignored_types: Vec<(u8, TypeNote)>,
    /// Samples and histograms read before the first error (to tell what Prometheus keeps).
    pub samples_before_first_error: Option<u64>,
    /// End of the last whole record.
    pub last_record_end: usize,
}

struct Collector<'a> {
    stats: &'a mut Stats,
    local: RefSet,
    defined: &'a mut Vec<u64>,
    used_undefined: &'a mut RefSet,
    known_before: Option<&'a RefSet>,
    unknown: &'a mut UnknownRefs,
    unknown_seen: RefSet,
    /// Smallest and largest timestamp seen (`i64::MAX`, `i64::MIN` before the first): plain
    /// integers on the hot path, turned into `stats.min_time`/`max_time` by [`Collector::finish`].
    min_t: i64,
    max_t: i64,
}

#[derive(Clone, Copy)]
enum Use {
    Sample,
    Histogram,
    Exemplar,
    Metadata,
    Tombstone,
    Mmap,
}

impl Collector<'_> {
    #[inline(always)]
    fn use_ref(&mut self, r: u64, what: Use) {
        if self.local.contains(r) {
            return;
        }
        self.used_undefined.insert(r);
        if let Some(known) = self.known_before {
            self.check_known(known, r, what);
        }
    }

    /// Only on the exact second pass over a segment that used refs nobody defined before.
    #[inline(never)]
    fn check_known(&mut self, known: &RefSet, r: u64, what: Use) {
        if !known.contains(r) {
            if self.unknown_seen.insert(r) {
                self.unknown.series += 1;
            }
            let u = &mut *self.unknown;
            match what {
                Use::Sample => u.samples += 1,
                Use::Histogram => u.histograms += 1,
                Use::Exemplar => u.exemplars += 1,
                Use::Metadata => u.metadata += 1,
                Use::Tombstone => u.tombstones += 1,
                Use::Mmap => u.mmap_markers += 1,
            }
        }
    }

    /// Staleness marker and time range of one float sample (not its count or ref).
    #[inline(always)]
    fn note_sample(&mut self, s: &Sample) {
        if s.v.to_bits() == STALE_NAN {
            self.stats.stale_markers += 1;
        }
        self.time(s.t);
    }

    #[inline(always)]
    fn time(&mut self, t: i64) {
        self.min_t = self.min_t.min(t);
        self.max_t = self.max_t.max(t);
    }

    /// Writes the time range into the stats.
    fn finish(&mut self) {
        if self.min_t <= self.max_t {
            self.stats.min_time = Some(self.min_t);
            self.stats.max_time = Some(self.max_t);
        }
    }
}

impl Visitor for Collector<'_> {
    fn series(&mut self, s: &Series<'_>) {
        self.stats.series += 1;
        self.local.insert(s.series_ref);
        self.defined.push(s.series_ref);
    }
    #[inline(always)]
    fn sample(&mut self, s: &Sample) {
        self.stats.float_samples += 1;
        self.note_sample(s);
        self.use_ref(s.series_ref, Use::Sample);
    }
    /// The hot path of a check: one pass over the run sums the counters and the time range in
    /// locals and sets the refs in the bitmap a word at a time.
    fn samples(&mut self, batch: &[Sample]) {
        self.stats.float_samples += batch.len() as u64;
        if self.known_before.is_some() || !self.local.is_empty() {
            for s in batch {
                self.note_sample(s);
                self.use_ref(s.series_ref, Use::Sample);
            }
            return;
        }
        let (mut lo, mut hi, mut stale) = (self.min_t, self.max_t, 0u64);
        self.used_undefined.insert_all(batch.iter().map(|s| {
            stale += u64::from(s.v.to_bits() == STALE_NAN);
            lo = lo.min(s.t);
            hi = hi.max(s.t);
            s.series_ref
        }));
        (self.min_t, self.max_t) = (lo, hi);
        self.stats.stale_markers += stale;
    }
    fn tombstone(&mut self, t: &Tombstone) {
        self.stats.tombstones += 1;
        self.use_ref(t.series_ref, Use::Tombstone);
    }
    fn exemplar(&mut self, e: &Exemplar<'_>) {
        self.stats.exemplars += 1;
        self.use_ref(e.series_ref, Use::Exemplar);
    }
    fn mmap_marker(&mut self, m: &MmapMarker) {
        self.stats.mmap_markers += 1;
        self.use_ref(m.series_ref, Use::Mmap);
    }
    fn metadata(&mut self, m: &Metadata<'_>) {
        self.stats.metadata += 1;
        self.use_ref(m.series_ref, Use::Metadata);
    }
    fn histogram(&mut self, h: &HistogramSample<'_>) {
        if h.is_float {
            self.stats.float_histogram_samples += 1;
        } else {
            self.stats.histogram_samples += 1;
        }
        self.time(h.t);
        self.use_ref(h.series_ref, Use::Histogram);
    }
}

fn type_name(b: Option<u8>) -> String {
    match b {
        None => "empty".to_string(),
        Some(b) => match RecordType::from_u8(b) {
            Some(t) => t.name().to_string(),
            None => format!("unknown-{b}"),
        },
    }
}

/// Counters kept in a flat array on the hot path, turned into names at the end.
struct TypeCounts {
    by_byte: [u64; 257],
    by_compression: [u64; 3],
}

impl Default for TypeCounts {
    fn default() -> Self {
        TypeCounts {
            by_byte: [0; 257],
            by_compression: [0; 3],
        }
    }
}

impl TypeCounts {
    fn finish(&self, stats: &mut Stats) {
        for (i, &n) in self.by_byte.iter().enumerate() {
            if n > 0 {
                let b = if i == 256 { None } else { Some(i as u8) };
                *stats.records_by_type.entry(type_name(b)).or_default() += n;
            }
        }
        for (i, &n) in self.by_compression.iter().enumerate() {
            if n > 0 {
                let name = ["none", "snappy", "zstd"][i];
                *stats.compression.entry(name.to_string()).or_default() += n;
            }
        }
    }
}

fn compression_slot(c: walfix_format::fragment::Compression) -> usize {
    match c {
        walfix_format::fragment::Compression::None => 0,
        walfix_format::fragment::Compression::Snappy => 1,
        walfix_format::fragment::Compression::Zstd => 2,
    }
}

/// Scans one segment's bytes. `known_before`, when given, is the set of refs defined before
/// this segment in replay order; unknown-ref counts are then exact.
pub fn scan_segment(
    data: &[u8],
    kind: LogKind,
    level: Level,
    known_before: Option<&RefSet>,
) -> SegmentScan {
    crate::mmap::limit_allocator_retention();
    let mut scan = SegmentScan::default();
    let mut counts = TypeCounts::default();
    match level {
        Level::Frames => scan_frames(data, &mut scan, &mut counts),
        Level::Records => scan_records(data, kind, known_before, &mut scan, &mut counts),
    }
    counts.finish(&mut scan.stats);
    scan.stats.segments = 1;
    scan.stats.bytes = data.len() as u64;
    scan.stats.empty_segments = data.is_empty() as u64;
    scan
}

/// Buffers a worker thread reuses from one segment to the next: record assembly, decompression
/// output, and the set of refs a segment defines.
#[derive(Default)]
struct WorkerBuffers {
    assembly: Vec<u8>,
    out: Vec<u8>,
    local: RefSet,
}

/// Buffers larger than this are freed after a segment instead of kept for the next one, so an
/// odd giant record does not pin its memory for the rest of the run.
const KEEP_BUFFER_BYTES: usize = 8 << 20;

thread_local! {
    static BUFFERS: std::cell::Cell<Option<Box<WorkerBuffers>>> = const { std::cell::Cell::new(None) };
}

fn take_buffers() -> Box<WorkerBuffers> {
    BUFFERS.with(|b| b.take()).unwrap_or_default()
}

fn give_back(mut b: Box<WorkerBuffers>) {
    for v in [&mut b.assembly, &mut b.out] {
        if v.capacity() > KEEP_BUFFER_BYTES {
            *v = Vec::new();
        }
    }
    b.local.clear();
    BUFFERS.with(|c| c.set(Some(b)));
}

fn scan_frames(data: &[u8], scan: &mut SegmentScan, counts: &mut TypeCounts) {
    let mut bufs = take_buffers();
    // Only offsets and counts are needed here: no need to copy split records together.
    let mut r =
        SegmentReader::with_buffer(data, std::mem::take(&mut bufs.assembly)).skip_payloads();
    while let Some(ev) = r.next() {
        match ev {
            Event::Record(rec) => {
                scan.stats.records += 1;
                counts.by_compression[compression_slot(rec.compression)] += 1;
                scan.last_record_end = rec.end;
            }
            Event::Problem(p) => add_problem(scan, p, &Stats::default()),
        }
    }
    bufs.assembly = r.into_buffer();
    give_back(bufs);
}

fn scan_records(
    data: &[u8],
    kind: LogKind,
    known_before: Option<&RefSet>,
    scan: &mut SegmentScan,
    counts: &mut TypeCounts,
) {
    let mut stats = Stats::default();
    let mut defined = Vec::new();
    let mut used_undefined = RefSet::new();
    let mut unknown = UnknownRefs::default();
    let mut ignored: Vec<(u8, TypeNote)> = Vec::new();
    let mut last_end = 0;
    let mut bufs = take_buffers();
    {
        let mut col = Collector {
            stats: &mut stats,
            local: std::mem::take(&mut bufs.local),
            defined: &mut defined,
            used_undefined: &mut used_undefined,
            known_before,
            unknown: &mut unknown,
            unknown_seen: RefSet::new(),
            min_t: i64::MAX,
            max_t: i64::MIN,
        };
        let mut r = RecordReader::with_buffers(
            data,
            std::mem::take(&mut bufs.assembly),
            std::mem::take(&mut bufs.out),
        );
        while let Some(ev) = r.next() {
            let rec = match ev {
                RecordEvent::Problem(p) => {
                    add_problem(scan, p, col.stats);
                    continue;
                }
                RecordEvent::Record(rec) => rec,
            };
            col.stats.records += 1;
            col.stats.decoded_bytes += rec.data.len() as u64;
            counts.by_compression[compression_slot(rec.compression)] += 1;
            last_end = rec.end;
            let Some(&tb) = rec.data.first() else {
                // Empty records are skipped by Prometheus (since 2.22).
                counts.by_byte[256] += 1;
                continue;
            };
            counts.by_byte[tb as usize] += 1;
            let rt = RecordType::from_u8(tb);
            let acceptance = kind.accepts(rt);
            match acceptance {
                Acceptance::Expected => {}
                Acceptance::IgnoredByPrometheus => {
                    match ignored.iter_mut().find(|(b, _)| *b == tb) {
                        Some((_, n)) => n.count += 1,
                        None => ignored.push((
                            tb,
                            TypeNote {
                                count: 1,
                                first_offset: rec.offset,
                            },
                        )),
                    }
                    // Still decode known types, so damage inside them is seen.
                    if rt.is_none() {
                        continue;
                    }
                }
                Acceptance::RejectedByPrometheus => {
                    let p = Problem {
                        kind: ProblemKind::RejectedRecordType(tb),
                        offset: rec.offset,
                        lost_from: rec.offset,
                        end: rec.end,
                        record_index: rec.index,
                        prometheus: Some(PrometheusError {
                            offset: rec.end,
                            message: format!("invalid record type {}", type_name(Some(tb))),
                        }),
                    };
                    add_problem(scan, p, col.stats);
                    continue;
                }
            }
            // Replay decodes a whole record before it applies any of it (head_wal.go: a decode
            // error returns before the entries reach the workers), so a record that fails
            // part-way counts for nothing: what the visit added is taken back.
            let saved = (
                col.stats.clone(),
                col.min_t,
                col.max_t,
                col.defined.len(),
                *col.unknown,
                (rt == Some(RecordType::Series)).then(|| col.local.clone()),
            );
            if let Err(e) = record::visit(rec.data, &mut col) {
                let (st, lo, hi, n, unknown, local) = saved;
                *col.stats = st;
                (col.min_t, col.max_t) = (lo, hi);
                col.defined.truncate(n);
                *col.unknown = unknown;
                if let Some(l) = local {
                    col.local = l;
                }
                if acceptance == Acceptance::IgnoredByPrometheus {
                    // Replay skips this type without decoding it: damage, but no stop.
                    let p = Problem {
                        kind: ProblemKind::UndecodableIgnoredRecord(e.to_string()),
                        offset: rec.offset,
                        lost_from: rec.offset,
                        end: rec.end,
                        record_index: rec.index,
                        prometheus: None,
                    };
                    add_problem(scan, p, col.stats);
                    continue;
                }
                let p = Problem {
                    kind: ProblemKind::Decode(e.to_string()),
                    offset: rec.offset,
                    lost_from: rec.offset,
                    end: rec.end,
                    record_index: rec.index,
                    prometheus: Some(PrometheusError {
                        offset: rec.end,
                        // Prometheus's own words (its decoder's error under replay's prefix).
                        message: record::prometheus_decode_error(rec.data, &e, kind)
                            .unwrap_or_else(|| e.to_string()),
                    }),
                };
                add_problem(scan, p, col.stats);
            }
        }
        col.finish();
        (bufs.assembly, bufs.out) = r.into_buffers();
        bufs.local = col.local;
    }
    give_back(bufs);
    scan.stats = stats;
    scan.defined = defined;
    scan.used_undefined = used_undefined;
    scan.unknown = unknown;
    scan.ignored_types = ignored;
    scan.last_record_end = last_end;
}

fn add_problem(scan: &mut SegmentScan, p: Problem, stats: &Stats) {
    if p.is_error() && scan.samples_before_first_error.is_none() {
        // Entries of a record that failed to decode are not counted (see the visit above).
        scan.samples_before_first_error =
            Some(stats.float_samples + stats.histogram_samples + stats.float_histogram_samples);
    }
    if scan.problems.len() < MAX_PROBLEMS_PER_SEGMENT {
        scan.problems.push(p);
    } else {
        scan.more_problems += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walfix_format::encode::SegmentEncoder;
    use walfix_format::fragment::Compression;

    /// Go's binary.PutVarint: zigzag, then 7-bit groups, low first.
    fn varint(out: &mut Vec<u8>, x: i64) {
        let mut z = ((x << 1) ^ (x >> 63)) as u64;
        while z >= 0x80 {
            out.push(z as u8 | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// A V1 samples record (type 2) written by hand from the format: be64 base ref, be64 base t,
    /// then per sample varint ref delta, varint t delta, be64 value bits.
    fn samples(entries: &[(u64, i64, u64)]) -> Vec<u8> {
        let (r0, t0) = (entries[0].0, entries[0].1);
        let mut b = vec![2u8];
        b.extend_from_slice(&r0.to_be_bytes());
        b.extend_from_slice(&t0.to_be_bytes());
        for &(r, t, v) in entries {
            varint(&mut b, r as i64 - r0 as i64);
            varint(&mut b, t - t0);
            b.extend_from_slice(&v.to_be_bytes());
        }
        b
    }

    /// A series record (type 1): be64 ref, uvarint label count, then length-prefixed strings.
    fn series(refs: &[u64]) -> Vec<u8> {
        let mut b = vec![1u8];
        for &r in refs {
            b.extend_from_slice(&r.to_be_bytes());
            b.extend_from_slice(&[1, 8]);
            b.extend_from_slice(b"__name__");
            b.extend_from_slice(&[1, b'x']);
        }
        b
    }

    fn segment(records: &[Vec<u8>]) -> Vec<u8> {
        let mut enc = SegmentEncoder::new();
        for r in records {
            enc.append(r, Compression::None);
        }
        enc.into_bytes()
    }

    const ONE: u64 = 0x3ff0_0000_0000_0000;

    /// Counts, staleness markers, time range and refs used before their series, on both paths
    /// of `Collector::samples`: with series defined earlier in the segment and without, and
    /// across the decoder's batches of 64.
    #[test]
    fn sample_stats_and_undefined_refs() {
        let seg = segment(&[
            series(&[1, 2]),
            samples(&[(1, 1000, ONE), (2, 900, STALE_NAN), (3, 1500, ONE)]),
        ]);
        let s = scan_segment(&seg, LogKind::Wal, Level::Records, None);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(
            (s.stats.float_samples, s.stats.stale_markers),
            (3, 1),
            "with series"
        );
        assert_eq!(
            (s.stats.min_time, s.stats.max_time),
            (Some(900), Some(1500))
        );
        assert_eq!(s.used_undefined.iter().collect::<Vec<_>>(), vec![3]);
        assert_eq!(s.defined, vec![1, 2]);

        let entries: Vec<(u64, i64, u64)> = (0..70u64)
            .map(|i| {
                (
                    100 + i,
                    2069 - i as i64,
                    if i == 65 { STALE_NAN } else { ONE },
                )
            })
            .collect();
        let seg = segment(&[samples(&entries), samples(&[(5, 3000, ONE)])]);
        let s = scan_segment(&seg, LogKind::Wal, Level::Records, None);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!((s.stats.float_samples, s.stats.stale_markers), (71, 1));
        assert_eq!(
            (s.stats.min_time, s.stats.max_time),
            (Some(2000), Some(3000))
        );
        let mut want: Vec<u64> = (100..170).collect();
        want.insert(0, 5);
        assert_eq!(s.used_undefined.iter().collect::<Vec<_>>(), want);
        assert_eq!(s.used_undefined.len(), 71);
    }
}
