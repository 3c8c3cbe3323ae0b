//! The properties the fuzz targets assert, one function per target, each taking the raw fuzz
//! input and panicking when a property does not hold.
//!
//! This one file is compiled twice: into every fuzz target (`fuzz/fuzz_targets/*.rs`, through
//! `#[path = "../props.rs"] mod props;`) and into `crates/walfix/tests/fuzzed.rs`, which replays
//! the committed seeds and every regression file of `testdata/fuzzed/` under plain `cargo test`.
//! So it may only use what both see: `std`, `walfix`, `walfix_format` and `tempfile`.

#![allow(dead_code)]

use std::fs;
use std::path::Path;

use walfix_format::compression::{decompress, MAX_RECORD_SIZE};
use walfix_format::encode::{compress_record, SegmentEncoder};
use walfix_format::fragment::{padded_len, Compression, HEADER_SIZE, PAGE_SIZE};
use walfix_format::frames::{
    Event, Problem, ProblemKind, RecordEvent, RecordReader, SegmentReader,
};
use walfix_format::record::{
    self, Exemplar, FloatHistogram, HistogramBody, HistogramSample, IntHistogram, Metadata,
    MmapMarker, OwnedExemplar, OwnedHistogramSample, OwnedMetadata, OwnedSeries, Record,
    RecordType, Sample, Series, Span, Tombstone, Visitor, CUSTOM_BUCKETS_SCHEMA,
};

/// The fuzz targets, by name: the file names under `testdata/fuzzed/` start with one of them.
pub const TARGETS: [&str; 6] = [
    "frames",
    "record",
    "compression",
    "roundtrip",
    "check_dir",
    "repair",
];

/// Runs the property of target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "frames" => frames(data),
        "record" => record(data),
        "compression" => compression(data),
        "roundtrip" => roundtrip(data),
        "check_dir" => check_dir(data),
        "repair" => repair(data),
        _ => panic!("unknown fuzz target {name:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading structured values out of fuzz bytes.

/// A cursor over fuzz bytes that never fails: past the end it reads zeros.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// True when every byte was used.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Next byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// Next `N` bytes, zero-filled past the end.
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for b in &mut a {
            *b = self.u8();
        }
        a
    }

    /// Next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// Next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// Next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 256 {
            self.u8() as usize % n
        } else {
            self.u32() as usize % n
        }
    }

    /// A coin.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes of input (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }

    /// A u64 biased towards the values that break things: small, edges, or any.
    pub fn num(&mut self) -> u64 {
        const EDGES: [u64; 8] = [
            0,
            1,
            u64::MAX,
            i64::MAX as u64,
            i64::MIN as u64,
            1 << 32,
            u32::MAX as u64,
            0x7ff0_0000_0000_0002,
        ];
        match self.u8() % 4 {
            0 => u64::from(self.u8()),
            1 => u64::from(self.u16()),
            2 => self.u64(),
            _ => EDGES[self.below(EDGES.len())],
        }
    }

    /// A signed [`Input::num`].
    pub fn inum(&mut self) -> i64 {
        let n = self.num() as i64;
        if self.bool() {
            n.wrapping_neg()
        } else {
            n
        }
    }
}

/// Deterministic filler bytes (xorshift), for large values the input cannot pay for.
fn filler(seed: u32, len: usize, compressible: bool) -> Vec<u8> {
    if compressible {
        return vec![seed as u8; len];
    }
    let mut x = u64::from(seed) | 1 << 40;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Generating records that encode and decode to themselves.

fn gen_bytes(inp: &mut Input<'_>) -> Vec<u8> {
    match inp.u8() {
        // Now and then a value large enough to split its record over pages.
        0xfe | 0xff => {
            let len = usize::from(inp.u16()) * 2;
            let seed = inp.u32();
            filler(seed, len, inp.bool())
        }
        n => {
            let len = usize::from(n % 24);
            let mut v = inp.bytes(len).to_vec();
            v.resize(len, 0);
            v
        }
    }
}

fn gen_pairs(inp: &mut Input<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let n = inp.below(5);
    (0..n).map(|_| (gen_bytes(inp), gen_bytes(inp))).collect()
}

fn gen_spans(inp: &mut Input<'_>) -> Vec<Span> {
    let n = inp.below(4);
    (0..n)
        .map(|_| Span {
            offset: inp.inum() as i32,
            length: inp.num() as u32,
        })
        .collect()
}

fn gen_body(inp: &mut Input<'_>, is_float: bool) -> HistogramBody {
    let counter_reset_hint = inp.u8();
    let schema = match inp.u8() % 4 {
        0 => CUSTOM_BUCKETS_SCHEMA,
        1 => inp.inum() as i32,
        _ => i32::from(inp.u8() % 13) - 4,
    };
    let custom = |inp: &mut Input<'_>| -> Vec<f64> {
        if schema == CUSTOM_BUCKETS_SCHEMA {
            let n = inp.below(5);
            (0..n).map(|_| f64::from_bits(inp.num())).collect()
        } else {
            Vec::new()
        }
    };
    if is_float {
        let zero_threshold = f64::from_bits(inp.num());
        let zero_count = f64::from_bits(inp.num());
        let count = f64::from_bits(inp.num());
        let sum = f64::from_bits(inp.num());
        let positive_spans = gen_spans(inp);
        let negative_spans = gen_spans(inp);
        let floats = |inp: &mut Input<'_>| -> Vec<f64> {
            let n = inp.below(5);
            (0..n).map(|_| f64::from_bits(inp.num())).collect()
        };
        let positive_buckets = floats(inp);
        let negative_buckets = floats(inp);
        HistogramBody::Float(FloatHistogram {
            counter_reset_hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            custom_values: custom(inp),
        })
    } else {
        let zero_threshold = f64::from_bits(inp.num());
        let zero_count = inp.num();
        let count = inp.num();
        let sum = f64::from_bits(inp.num());
        let positive_spans = gen_spans(inp);
        let negative_spans = gen_spans(inp);
        let ints = |inp: &mut Input<'_>| -> Vec<i64> {
            let n = inp.below(5);
            (0..n).map(|_| inp.inum()).collect()
        };
        let positive_buckets = ints(inp);
        let negative_buckets = ints(inp);
        HistogramBody::Int(IntHistogram {
            counter_reset_hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            custom_values: custom(inp),
        })
    }
}

/// A record built from fuzz bytes, restricted to what encodes to itself: the documented
/// exceptions of [`Record`] (st in type 2, a V1 base equal to the first sample's, custom values
/// without schema -53) are never generated.
pub fn gen_record(inp: &mut Input<'_>) -> Record {
    let t = RecordType::ALL[inp.below(RecordType::ALL.len())];
    let n = inp.below(6);
    match t {
        RecordType::Series => Record::Series(
            (0..n)
                .map(|_| OwnedSeries {
                    series_ref: inp.num(),
                    labels: gen_pairs(inp),
                })
                .collect(),
        ),
        RecordType::Samples | RecordType::SamplesV2 => {
            let v2 = t == RecordType::SamplesV2;
            let samples = (0..n)
                .map(|_| Sample {
                    series_ref: inp.num(),
                    t: inp.inum(),
                    st: if v2 { inp.inum() } else { 0 },
                    v: f64::from_bits(inp.num()),
                })
                .collect();
            if v2 {
                Record::SamplesV2(samples)
            } else {
                Record::Samples(samples)
            }
        }
        RecordType::Tombstones => Record::Tombstones(
            (0..n)
                .map(|_| Tombstone {
                    series_ref: inp.num(),
                    mint: inp.inum(),
                    maxt: inp.inum(),
                })
                .collect(),
        ),
        RecordType::Exemplars => Record::Exemplars(
            (0..n)
                .map(|_| OwnedExemplar {
                    series_ref: inp.num(),
                    t: inp.inum(),
                    v: f64::from_bits(inp.num()),
                    labels: gen_pairs(inp),
                })
                .collect(),
        ),
        RecordType::MmapMarkers => Record::MmapMarkers(
            (0..n)
                .map(|_| MmapMarker {
                    series_ref: inp.num(),
                    chunk_ref: inp.num(),
                })
                .collect(),
        ),
        RecordType::Metadata => Record::Metadata(
            (0..n)
                .map(|_| OwnedMetadata {
                    series_ref: inp.num(),
                    metric_type: inp.u8(),
                    fields: gen_pairs(inp),
                })
                .collect(),
        ),
        _ => {
            let v2 = t.is_v2();
            let samples: Vec<_> = (0..n)
                .map(|_| OwnedHistogramSample {
                    series_ref: inp.num(),
                    t: inp.inum(),
                    st: if v2 { inp.inum() } else { 0 },
                    body: gen_body(inp, t.is_float_histogram()),
                })
                .collect();
            let base = if !v2 && inp.u8().is_multiple_of(4) {
                let b = (inp.num(), inp.inum());
                let first = samples.first().map(|s| (s.series_ref, s.t));
                (first != Some(b)).then_some(b)
            } else {
                None
            };
            Record::Histograms {
                record_type: t,
                base,
                samples,
            }
        }
    }
}

fn encoded(rec: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    rec.encode(&mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// frames: any bytes as a segment.

fn check_problem(p: &Problem, vlen: usize) {
    let ctx = || format!("{p:?} (padded length {vlen})");
    assert!(p.offset <= vlen, "offset past the padded end: {}", ctx());
    assert!(p.end <= vlen, "end past the padded end: {}", ctx());
    assert!(
        p.lost_from <= vlen,
        "lost_from past the padded end: {}",
        ctx()
    );
    assert!(p.offset <= p.end, "offset after end: {}", ctx());
    if p.is_error() {
        assert!(p.lost_from <= p.offset, "lost_from after offset: {}", ctx());
    } else {
        assert_eq!(p.lost_from, p.end, "a warning loses nothing: {}", ctx());
        assert!(
            p.prometheus.is_none(),
            "Prometheus stops at a warning: {}",
            ctx()
        );
    }
    if let Some(pe) = &p.prometheus {
        assert!(
            p.offset <= pe.offset && pe.offset <= vlen,
            "Prometheus's offset outside offset..=padded end: {}",
            ctx()
        );
        assert!(
            !pe.message.is_empty(),
            "empty Prometheus message: {}",
            ctx()
        );
    }
}

/// One framed record, as [`SegmentReader`] returned it.
#[derive(Debug, PartialEq)]
struct Framed {
    offset: usize,
    end: usize,
    index: u64,
    compression: Compression,
    payload: Vec<u8>,
}

/// An upper bound on the events a segment of padded length `vlen` can give. Every fragment
/// header takes 7 bytes and yields at most a record and three warnings (or an error); page
/// terminators, zero pages and page crossings are at most one per page; the end adds one.
pub fn event_bound(vlen: usize) -> usize {
    4 * (vlen / HEADER_SIZE) + 2 * (vlen / PAGE_SIZE) + 8
}

/// `frames`: [`SegmentReader`] and [`RecordReader`] over arbitrary bytes agree with each other,
/// keep every offset inside the padded segment, make progress and end.
pub fn frames(data: &[u8]) {
    let vlen = padded_len(data.len());
    let bound = event_bound(vlen);

    let mut r = SegmentReader::new(data);
    assert_eq!(r.padded_len(), vlen);
    let mut events = 0usize;
    let mut records: Vec<Framed> = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    let mut prev_end = 0usize;
    while let Some(ev) = r.next() {
        events += 1;
        assert!(events <= bound, "more than {bound} events: no progress?");
        match ev {
            Event::Record(rec) => {
                assert!(
                    rec.offset < rec.end && rec.end <= vlen,
                    "record {}..{} outside the padded segment of {vlen}",
                    rec.offset,
                    rec.end
                );
                assert!(
                    rec.offset >= prev_end,
                    "record at {} overlaps the one ending at {prev_end}",
                    rec.offset
                );
                prev_end = rec.end;
                assert_eq!(rec.index, records.len() as u64, "record index");
                assert!(rec.fragments >= 1);
                assert!(
                    rec.payload.len() + HEADER_SIZE * rec.fragments as usize
                        <= rec.end - rec.offset,
                    "payload of {} bytes in {} fragments does not fit {}..{}",
                    rec.payload.len(),
                    rec.fragments,
                    rec.offset,
                    rec.end
                );
                records.push(Framed {
                    offset: rec.offset,
                    end: rec.end,
                    index: rec.index,
                    compression: rec.compression,
                    payload: rec.payload.to_vec(),
                });
            }
            Event::Problem(p) => {
                check_problem(&p, vlen);
                let seen = records.len() as u64;
                assert!(
                    p.record_index <= seen && seen - p.record_index <= 1,
                    "record_index {} with {seen} records returned: {p:?}",
                    p.record_index
                );
                problems.push(p);
            }
        }
    }
    assert_eq!(r.records(), records.len() as u64);
    assert!(r.next().is_none(), "SegmentReader yields after its end");
    // Prometheus stops at the first error; its offset must not go backwards from ours.
    for w in problems.windows(2) {
        assert!(
            w[0].offset <= w[1].offset,
            "problems out of offset order: {:?} then {:?}",
            w[0],
            w[1]
        );
    }

    // RecordReader: the same frames, each record either decompressed or a decompression problem.
    let mut rr = RecordReader::new(data);
    let mut framed = records.iter();
    let mut other = problems.iter();
    let mut scratch = Vec::new();
    while let Some(ev) = rr.next() {
        match ev {
            RecordEvent::Record(rec) => {
                let f = framed.next().expect("RecordReader made up a record");
                assert_eq!(
                    (rec.offset, rec.end, rec.index, rec.compression),
                    (f.offset, f.end, f.index, f.compression)
                );
                assert_eq!(rec.stored_len, f.payload.len());
                assert!(rec.data.len() <= MAX_RECORD_SIZE);
                match rec.compression {
                    Compression::None => assert_eq!(rec.data, &f.payload[..]),
                    c => {
                        decompress(c, &f.payload, &mut scratch).expect("decompressed once");
                        assert_eq!(rec.data, &scratch[..]);
                        if c == Compression::Snappy {
                            assert!(rec.data.len() <= 22 * f.payload.len() + 64);
                        }
                    }
                }
            }
            RecordEvent::Problem(p) => {
                if let ProblemKind::Decompression(_) = p.kind {
                    let f = framed
                        .next()
                        .expect("decompression problem without a record");
                    assert_ne!(f.compression, Compression::None);
                    assert_eq!((p.offset, p.end, p.lost_from), (f.offset, f.end, f.offset));
                    assert_eq!(p.record_index, f.index);
                    check_problem(&p, vlen);
                } else {
                    let q = other.next().expect("RecordReader made up a problem");
                    assert_eq!(&p, q);
                }
            }
        }
    }
    assert!(framed.next().is_none(), "RecordReader lost a record");
    assert!(other.next().is_none(), "RecordReader lost a problem");
}

// ---------------------------------------------------------------------------------------------
// record: any bytes as a record payload.

#[derive(Default, Debug, PartialEq)]
struct Counts {
    series: usize,
    samples: usize,
    tombstones: usize,
    exemplars: usize,
    mmap_markers: usize,
    metadata: usize,
    histograms: usize,
}

impl Counts {
    fn total(&self) -> usize {
        self.series
            + self.samples
            + self.tombstones
            + self.exemplars
            + self.mmap_markers
            + self.metadata
            + self.histograms
    }

    fn of(&self, t: RecordType) -> usize {
        match t {
            RecordType::Series => self.series,
            RecordType::Samples | RecordType::SamplesV2 => self.samples,
            RecordType::Tombstones => self.tombstones,
            RecordType::Exemplars => self.exemplars,
            RecordType::MmapMarkers => self.mmap_markers,
            RecordType::Metadata => self.metadata,
            _ => self.histograms,
        }
    }
}

impl Visitor for Counts {
    fn series(&mut self, _: &Series<'_>) {
        self.series += 1;
    }
    fn sample(&mut self, _: &Sample) {
        self.samples += 1;
    }
    fn tombstone(&mut self, _: &Tombstone) {
        self.tombstones += 1;
    }
    fn exemplar(&mut self, _: &Exemplar<'_>) {
        self.exemplars += 1;
    }
    fn mmap_marker(&mut self, _: &MmapMarker) {
        self.mmap_markers += 1;
    }
    fn metadata(&mut self, _: &Metadata<'_>) {
        self.metadata += 1;
    }
    fn histogram(&mut self, h: &HistogramSample<'_>) {
        h.decode_body().expect("visit validated the body");
        self.histograms += 1;
    }
}

/// `record`: [`record::visit`], [`record::validate`] and [`Record::decode`] agree; a decoded
/// record re-encodes to bytes that decode to the same record, never longer than the input, and
/// re-encoding those gives the same bytes again (encode ∘ decode is idempotent: the encoding is
/// canonical for what the encoder writes, not for every accepted input).
pub fn record(data: &[u8]) {
    let mut counts = Counts::default();
    let visited = record::visit(data, &mut counts);
    assert_eq!(record::validate(data), visited);
    let decoded = Record::decode(data);
    match (&visited, &decoded) {
        (Ok(t), Ok(rec)) => {
            assert_eq!(rec.record_type(), *t);
            assert_eq!(
                counts.total(),
                rec.entry_count(),
                "visit and decode disagree"
            );
            assert_eq!(counts.of(*t), counts.total(), "entries of another type");
            let once = encoded(rec);
            assert_eq!(once.first(), data.first(), "type byte changed");
            // Samples and exemplars (types 2, 4) have no field for a V1 base that is not the
            // first entry's, so their deltas are re-based and may grow; Prometheus always writes
            // the first entry's. Everything else only loses non-minimal encodings.
            if !matches!(t, RecordType::Samples | RecordType::Exemplars) {
                assert!(
                    once.len() <= data.len(),
                    "re-encoding grew the record from {} to {} bytes",
                    data.len(),
                    once.len()
                );
            }
            let again = Record::decode(&once).expect("re-encoded record does not decode");
            assert_eq!(&again, rec, "encode then decode changed the record");
            assert_eq!(encoded(&again), once, "encoding is not idempotent");
            let mut c2 = Counts::default();
            record::visit(&once, &mut c2).expect("visit");
            assert_eq!(c2, counts);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "visit and decode fail differently");
            assert!(
                a.offset <= data.len(),
                "error offset {} past the end",
                a.offset
            );
        }
        _ => panic!("visit gave {visited:?} but decode gave {decoded:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// compression: any bytes through the decompressors; any data through compress_record.

/// The most capacity a `Vec` grown by doubling may hold for `len` bytes.
fn grown_bound(len: usize) -> usize {
    2 * len + 64 * 1024
}

/// `compression`: first byte picks the mode, the rest is the payload. Snappy never allocates
/// more than 22x its input + 64 bytes; zstd's buffer grows with what it really produced; data
/// compressed by `compress_record` decompresses to itself.
pub fn compression(data: &[u8]) {
    compression_with(data, false);
}

/// [`compression`] for the fuzz target: inputs that hit one of [`KNOWN_BUGS`] are skipped.
pub fn compression_skipping_known_bugs(data: &[u8]) {
    compression_with(data, true);
}

/// True for a zstd payload that decodes into a fresh `Vec` but not into one with room to spare:
/// the frame-content-size bug of [`KNOWN_BUGS`].
fn zstd_depends_on_room(_payload: &[u8]) -> bool {
    // Fixed: zstd decoding no longer depends on the buffer's spare room.
    false
}

fn compression_with(data: &[u8], skip_known_bugs: bool) {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let payload = inp.rest();
    let snappy_bound = 22 * payload.len() + 64;
    match mode % 4 {
        0 | 3 => {
            let mut out = Vec::new();
            let res = decompress(Compression::Snappy, payload, &mut out);
            assert!(
                out.capacity() <= snappy_bound.max(8),
                "snappy: {} bytes of input allocated {}",
                payload.len(),
                out.capacity()
            );
            if res.is_ok() {
                assert!(out.len() <= snappy_bound);
            }
            // A dirty, reused buffer gives the same answer.
            let mut reused = vec![0xaa; 100];
            let res2 = decompress(Compression::Snappy, payload, &mut reused);
            assert_eq!(res, res2);
            if res.is_ok() {
                assert_eq!(out, reused);
            }
        }
        _ => {}
    }
    match mode % 4 {
        1 | 3 if !(skip_known_bugs && zstd_depends_on_room(payload)) => {
            let mut out = Vec::new();
            let res = decompress(Compression::Zstd, payload, &mut out);
            assert!(
                out.capacity() <= grown_bound(out.len()),
                "zstd: {} bytes out, {} allocated",
                out.len(),
                out.capacity()
            );
            assert!(out.len() <= MAX_RECORD_SIZE);
            // A dirty, reused buffer gives the same outcome. Not always the same error text:
            // zstd's streaming decoder may say "Destination buffer is too small" or "Data
            // corruption detected" for one bad frame, depending on the buffer's spare capacity
            // (testdata/fuzzed/compression-zstd-error-text-depends-on-buffer).
            let mut reused = vec![0xaa; 100];
            let res2 = decompress(Compression::Zstd, payload, &mut reused);
            assert_eq!(res.is_ok(), res2.is_ok(), "{res:?} then {res2:?}");
            if res.is_ok() {
                assert_eq!(out, reused);
            }
        }
        _ => {}
    }
    if mode % 4 == 2 {
        let wanted =
            [Compression::None, Compression::Snappy, Compression::Zstd][usize::from(mode / 4) % 3];
        let (stored, used) = compress_record(payload, wanted);
        if used == Compression::None {
            assert_eq!(stored, payload);
        } else {
            assert_eq!(used, wanted);
            assert!(
                stored.len() < payload.len(),
                "kept a compressed form not smaller"
            );
        }
        let mut out = Vec::new();
        decompress(used, &stored, &mut out).expect("our own compression does not decompress");
        assert_eq!(out, payload, "round trip through {used:?} changed the data");
    }
}

// ---------------------------------------------------------------------------------------------
// roundtrip: records -> encoder -> readers, then one flipped byte.

/// Reads a segment back: every record decoded (or its decode error) with its compression, and
/// every problem.
type ReadBack = (
    Vec<(Result<Record, record::DecodeError>, Compression)>,
    Vec<Problem>,
);

fn read_back(seg: &[u8]) -> ReadBack {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut r = RecordReader::new(seg);
    while let Some(ev) = r.next() {
        match ev {
            RecordEvent::Record(rec) => records.push((Record::decode(rec.data), rec.compression)),
            RecordEvent::Problem(p) => problems.push(p),
        }
    }
    (records, problems)
}

/// Encodes fuzz-built records into one segment (compression and page padding chosen by the
/// input). Returns the records, the compression each got, and the segment.
pub fn gen_segment(
    inp: &mut Input<'_>,
    max_records: usize,
) -> (Vec<Record>, Vec<Compression>, Vec<u8>) {
    let n = 1 + inp.below(max_records);
    let mut enc = SegmentEncoder::new();
    let mut records = Vec::with_capacity(n);
    let mut used = Vec::with_capacity(n);
    for _ in 0..n {
        let rec = gen_record(inp);
        let bytes = encoded(&rec);
        let back = Record::decode(&bytes)
            .unwrap_or_else(|e| panic!("encoded {rec:?} does not decode: {e}"));
        assert_eq!(back, rec, "encode then decode changed a generated record");
        let wanted = [Compression::None, Compression::Snappy, Compression::Zstd][inp.below(3)];
        if inp.u8().is_multiple_of(8) {
            enc.pad_page();
        }
        used.push(enc.append(&bytes, wanted));
        records.push(rec);
    }
    (records, used, enc.into_bytes())
}

/// `roundtrip`: records written by [`SegmentEncoder`] read back exactly, with no problem; after
/// one flipped byte, either something is reported or every record reads back unchanged.
pub fn roundtrip(data: &[u8]) {
    let mut inp = Input::new(data);
    let (records, used, seg) = gen_segment(&mut inp, 12);

    let (got, problems) = read_back(&seg);
    assert!(
        problems.is_empty(),
        "clean segment has problems: {problems:?}"
    );
    assert_eq!(got.len(), records.len(), "record count");
    for (i, ((dec, c), want)) in got.iter().zip(&records).enumerate() {
        assert_eq!(
            dec.as_ref().ok(),
            Some(want),
            "record {i} read back differently"
        );
        assert_eq!(*c, used[i], "record {i} compression");
    }

    if seg.is_empty() {
        return;
    }
    let pos = inp.u32() as usize % seg.len();
    let mask = inp.u8().max(1);
    let mut bad = seg.clone();
    bad[pos] ^= mask;
    no_false_correction(&seg, &bad);
    // A second byte, anywhere: what is changed must be reported. (Two bytes in one fragment
    // can have the CRC syndrome of one byte elsewhere in it, about len x 255 / 2^32 of the
    // time: such a false correction is reported and the original kept in the backup;
    // docs/repair.md, Corrections. This fuzzer found one in 3 minutes.)
    let mut worse = bad.clone();
    let pos2 = inp.u32() as usize % seg.len();
    worse[pos2] ^= inp.u8().max(1);
    let (fixed, corr) = walfix::repair::correct_segment(&worse, record::LogKind::Wal);
    if let Some(f) = fixed {
        let changed = f.iter().zip(&worse).filter(|(a, b)| a != b).count();
        assert_eq!(
            changed,
            corr.len(),
            "bytes changed without a reported correction"
        );
    }
    let (got, problems) = read_back(&bad);
    let reported = !problems.is_empty() || got.iter().any(|(d, _)| d.is_err());
    if !reported {
        let decoded: Vec<&Record> = got.iter().filter_map(|(d, _)| d.as_ref().ok()).collect();
        let want: Vec<&Record> = records.iter().collect();
        assert_eq!(
            decoded, want,
            "byte {pos} ^= {mask:#04x} changed the records and nothing was reported"
        );
    }
}

/// After one damaged byte, repair's correction only ever changes a byte back to what the writer
/// wrote: a one-byte error is corrected only when it is the only one-byte explanation of the
/// CRC, and the true change always is one (so another candidate makes two, and none is taken).
fn no_false_correction(orig: &[u8], bad: &[u8]) {
    let (fixed, corr) = walfix::repair::correct_segment(bad, record::LogKind::Wal);
    for c in &corr {
        let at = c.offset as usize;
        assert_eq!(
            orig.get(at),
            Some(&c.now),
            "false correction at {at}: {:#04x} -> {:#04x}, the writer wrote {:?}",
            c.was,
            c.now,
            orig.get(at)
        );
    }
    if let Some(f) = fixed {
        let changed = f.iter().zip(bad).filter(|(a, b)| a != b).count();
        assert_eq!(
            changed,
            corr.len(),
            "bytes changed without a reported correction"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// check_dir: a directory of segments on disk through walfix::check.

fn mutate(inp: &mut Input<'_>, seg: &mut Vec<u8>) {
    if seg.is_empty() {
        return;
    }
    let at = inp.below(seg.len().min(u32::MAX as usize));
    match inp.u8() % 5 {
        0 => seg[at] ^= inp.u8().max(1),
        1 => seg.truncate(at),
        2 => {
            let n = usize::from(inp.u16()).min(seg.len() - at);
            seg[at..at + n].fill(0);
        }
        3 => {
            let extra = inp.bytes(64).to_vec();
            seg.splice(at..at, extra);
        }
        _ => {
            let extra = inp.bytes(64).to_vec();
            seg.extend_from_slice(&extra);
        }
    }
}

fn gen_file(inp: &mut Input<'_>) -> Vec<u8> {
    match inp.u8() % 3 {
        0 => {
            let len = usize::from(inp.u16());
            inp.bytes(len).to_vec()
        }
        k => {
            let (_, _, mut seg) = gen_segment(inp, 6);
            if k == 1 {
                mutate(inp, &mut seg);
            }
            seg
        }
    }
}

fn segment_name(inp: &mut Input<'_>, index: u64) -> String {
    match inp.u8() % 16 {
        0 => format!("{index}"),
        1 => format!("+{index:07}"),
        _ => format!("{index:08}"),
    }
}

/// Writes a fuzz-built log layout under `root`: `wal/` with a few segments (fuzz bytes, or made
/// by the encoder and maybe damaged once), maybe a `checkpoint.N/` and a `wbl/`. Returns the
/// path to give to `check` and the options.
pub fn gen_dir(inp: &mut Input<'_>, root: &Path) -> (std::path::PathBuf, walfix::CheckOptions) {
    let flags = inp.u8();
    let wal = root.join("wal");
    fs::create_dir_all(&wal).unwrap();
    let mut index = match inp.u8() % 8 {
        7 => u64::MAX - u64::from(inp.u8() % 4), // names at the very end of the index space
        k => u64::from(k % 4),
    };
    let nseg = 1 + inp.below(4);
    let mut written = Vec::new();
    for _ in 0..nseg {
        match inp.u8() % 16 {
            0 => index = index.saturating_add(1),   // a gap
            1 if !written.is_empty() => index -= 1, // the index again, maybe under another name
            _ => {}
        }
        let name = segment_name(inp, index);
        fs::write(wal.join(&name), gen_file(inp)).unwrap();
        written.push(index);
        index = index.saturating_add(1);
    }
    if flags & 1 != 0 {
        // Just before, at or just after the first segment.
        let first = i128::from(written.first().copied().unwrap_or(0));
        let n = (first + i128::from(inp.u8() % 3) - 1).clamp(0, i128::from(u64::MAX)) as u64;
        let ck = wal.join(format!("checkpoint.{n:08}"));
        fs::create_dir_all(&ck).unwrap();
        let mut seg = gen_file(inp);
        if inp.bool() {
            seg.resize(padded_len(seg.len()), 0);
        }
        fs::write(ck.join("00000000"), seg).unwrap();
    }
    if flags & 2 != 0 {
        let wbl = root.join("wbl");
        fs::create_dir_all(&wbl).unwrap();
        fs::write(wbl.join("00000000"), gen_file(inp)).unwrap();
    }
    let opts = walfix::CheckOptions {
        level: if flags & 4 != 0 {
            walfix::Level::Frames
        } else {
            walfix::Level::Records
        },
        flavor: if flags & 8 != 0 {
            walfix::WalFlavor::Agent
        } else {
            walfix::WalFlavor::Server
        },
        ..Default::default()
    };
    let path = if flags & 16 != 0 {
        wal
    } else {
        root.to_path_buf()
    };
    (path, opts)
}

/// Known bugs in code this fuzzing does not own, each with the regression file that shows it
/// (`testdata/fuzzed/<name>`). `crates/walfix/tests/fuzzed.rs` expects these files to panic
/// and fails once they stop panicking (then delete the entry); the `check_dir` fuzz target
/// skips layouts that hit them, so that it can look for other bugs meanwhile.
/// Entries: (file name, what is wrong, the panic message it gives).
pub const KNOWN_BUGS: [(&str, &str, &str); 0] = [];

/// True when the layout under `path` hits one of [`KNOWN_BUGS`]: two segments of one log with
/// the same index, or an index at the end of the u64 range.
fn hits_known_bug(_path: &Path, _opts: &walfix::CheckOptions) -> bool {
    // Nothing known today: the duplicate-index and u64-overflow bugs are fixed (their files
    // under testdata/fuzzed are regression tests now).
    false
}

/// `check_dir`: `walfix::check` on a fuzz-built directory does not panic, gives an exit code
/// in 0..=3 that matches its worst finding, keeps every offset inside the file's padded
/// length, and says the same thing twice.
pub fn check_dir(data: &[u8]) {
    check_dir_with(data, false);
}

/// [`check_dir`] for the fuzz target: inputs that hit one of [`KNOWN_BUGS`] are skipped.
pub fn check_dir_skipping_known_bugs(data: &[u8]) {
    check_dir_with(data, true);
}

fn check_dir_with(data: &[u8], skip_known_bugs: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut inp = Input::new(data);
    let (path, opts) = gen_dir(&mut inp, tmp.path());
    if skip_known_bugs && hits_known_bug(&path, &opts) {
        return;
    }
    let report = walfix::check(&path, &opts).expect("check failed on a directory with a WAL");
    assert!(
        (0..=3).contains(&report.exit_code),
        "exit code {}",
        report.exit_code
    );
    assert_eq!(report.exit_code, report.worst.exit_code());
    let worst = report.findings.iter().map(|f| f.severity).max();
    assert_eq!(worst.unwrap_or(walfix::Severity::Info), report.worst);
    for f in &report.findings {
        let Some(offset) = f.offset else { continue };
        let meta = fs::metadata(&f.file)
            .unwrap_or_else(|e| panic!("finding with an offset on {:?}: {e}", f.file));
        assert!(
            meta.is_file(),
            "finding with an offset on a directory: {f:?}"
        );
        let vlen = padded_len(meta.len() as usize) as u64;
        assert!(
            offset <= vlen,
            "offset past the padded file ({vlen}): {f:?}"
        );
        if let Some(end) = f.end {
            assert!(
                offset <= end && end <= vlen,
                "end outside offset..={vlen}: {f:?}"
            );
        }
        if let Some(lost) = f.lost_from {
            assert!(lost <= offset, "lost_from after offset: {f:?}");
        }
        if let Some(pe) = &f.prometheus_error {
            assert!(
                pe.offset <= vlen,
                "Prometheus's offset past the padded file: {f:?}"
            );
        }
    }
    let again = walfix::check(&path, &opts).expect("second check");
    let sig = |r: &walfix::Report| {
        r.findings
            .iter()
            .map(|f| (f.kind, f.file.clone(), f.offset, f.end, f.severity))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sig(&report),
        sig(&again),
        "two checks of the same files disagree"
    );
    assert_eq!(report.totals, again.totals);
}

// ---------------------------------------------------------------------------------------------
// repair: a fuzz-built directory repaired in place, then checked again.

/// The real file system without fsync: durability is not what this target tests, and an fsync
/// per file would make each input take milliseconds.
struct NoSyncFs;

struct NoSyncFile(fs::File);

impl std::io::Write for NoSyncFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl walfix::fsops::FileWriter for NoSyncFile {
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl walfix::fsops::Fs for NoSyncFs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn walfix::fsops::FileWriter + '_>> {
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(NoSyncFile(f)))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        fs::create_dir_all(path)
    }
    fn sync_dir(&self, _: &Path) -> std::io::Result<()> {
        Ok(())
    }
    fn append_line(&self, path: &Path, line: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(line)?;
        f.write_all(b"\n")
    }
    fn free_space(&self, _: &Path) -> std::io::Result<u64> {
        Ok(u64::MAX)
    }
}

/// Every regular file under `dir` (relative path -> bytes); a symlink as the note the backup
/// keeps for it.
fn files_under(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    ) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_symlink() {
                let target = fs::read_link(&p).unwrap_or_default();
                // What the backup holds for a link (docs/repair.md): a note, never the target.
                out.insert(
                    rel,
                    format!("symlink to {}\n", target.display()).into_bytes(),
                );
            } else if ft.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A segment index the way Prometheus's `strconv.Atoi` reads a name (`+` sign allowed).
fn name_index(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('+').unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&i| i <= i64::MAX as u64)
}

/// The records of one log directory that read cleanly (framed without a problem, decompressed,
/// and decoded or skipped the way Prometheus's replay of `kind` takes them), decompressed, in
/// segment order. `None` when two files of the directory have the same index (order unknown).
fn clean_records(dir: &Path, kind: record::LogKind) -> Option<Vec<Vec<u8>>> {
    use record::Acceptance;
    let mut segs: Vec<(u64, std::path::PathBuf)> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((name_index(&e.file_name().to_string_lossy())?, e.path())))
        .collect();
    segs.sort();
    if segs.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for (_, path) in segs {
        let data = fs::read(&path).unwrap();
        let mut frames = SegmentReader::new(&data);
        while let Some(ev) = frames.next() {
            let Event::Record(r) = ev else { continue };
            if decompress(r.compression, r.payload, &mut buf).is_err() {
                continue;
            }
            let good = match buf.first() {
                None => true,
                Some(&b) => {
                    let t = RecordType::from_u8(b);
                    match kind.accepts(t) {
                        Acceptance::RejectedByPrometheus => false,
                        Acceptance::IgnoredByPrometheus if t.is_none() => true,
                        _ => record::validate(&buf).is_ok(),
                    }
                }
            };
            if good {
                out.push(buf.clone());
            }
        }
    }
    Some(out)
}

/// Clean records per segment file of `dir` (for failure messages).
fn clean_per_file(dir: &Path, kind: record::LogKind) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| {
                    let one = tempfile::tempdir().unwrap();
                    fs::copy(e.path(), one.path().join("00000000")).unwrap();
                    let n = clean_records(one.path(), kind).map_or(0, |r| r.len());
                    (e.file_name().to_string_lossy().into_owned(), n)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The log directories under a data dir `root` and how replay reads each.
fn log_dirs(root: &Path, agent: bool) -> Vec<(std::path::PathBuf, record::LogKind)> {
    let wal_kind = if agent {
        record::LogKind::Agent
    } else {
        record::LogKind::Wal
    };
    let ck_kind = if agent {
        record::LogKind::Agent
    } else {
        record::LogKind::Checkpoint
    };
    let mut v = vec![
        (root.join("wal"), wal_kind),
        (root.join("wbl"), record::LogKind::Wbl),
    ];
    if let Ok(rd) = fs::read_dir(root.join("wal")) {
        for e in rd.flatten() {
            // Real checkpoints only (Prometheus skips `checkpoint.N.tmp` and deletes it).
            let name = e.file_name().to_string_lossy().into_owned();
            let numbered = name
                .strip_prefix("checkpoint.")
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
            if e.file_type().is_ok_and(|t| t.is_dir()) && numbered {
                v.push((e.path(), ck_kind));
            }
        }
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// True if `small` is `big` with some elements left out.
fn is_subsequence(small: &[Vec<u8>], big: &[Vec<u8>]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

/// `repair`: on a fuzz-built directory (as for `check_dir`, plus maybe a symlinked segment whose
/// target lies outside the data dir), repair in salvage or truncate mode, then:
/// - when nothing was left for a human, check finds no damage any more, and a second plan
///   has nothing to do (idempotent);
/// - in salvage mode, every record that read cleanly before is still there, in the same order,
///   in the same log (a dropped checkpoint excepted: its files are in the backup);
/// - every file that was changed or removed is in the backup byte for byte (or was renamed);
/// - nothing outside the data dir changed (a symlink is never written through).
pub fn repair(data: &[u8]) {
    use walfix::repair::{execute, plan, Action, Mode, RepairOptions};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    fs::create_dir_all(&root).unwrap();
    let mut inp = Input::new(data);
    let (path, check_opts) = gen_dir(&mut inp, &root);
    let knobs = inp.u8();
    let outside = tmp.path().join("outside");
    if knobs & 8 != 0 {
        // A symlinked segment after the last one, pointing out of the data dir.
        fs::create_dir_all(&outside).unwrap();
        let target = outside.join("segment");
        fs::write(&target, gen_file(&mut inp)).unwrap();
        let wal = root.join("wal");
        let next = fs::read_dir(&wal)
            .unwrap()
            .flatten()
            .filter_map(|e| name_index(&e.file_name().to_string_lossy()))
            .max()
            .map_or(0, |i| i.saturating_add(1));
        if next <= i64::MAX as u64 {
            std::os::unix::fs::symlink(&target, wal.join(format!("{next:08}"))).unwrap();
        }
    }
    // Read after everything else, so inputs written before these options existed keep their
    // meaning (past the end, the input reads as zeros).
    let leftovers = inp.u8();
    if leftovers & 1 != 0 {
        // What an interrupted checkpoint leaves (Prometheus deletes it at start-up).
        let tmp_ck = root.join("wal").join("checkpoint.00000001.tmp");
        fs::create_dir_all(&tmp_ck).unwrap();
        fs::write(tmp_ck.join("00000000"), gen_file(&mut inp)).unwrap();
    }
    if leftovers & 2 != 0 {
        // What an interrupted Prometheus repair leaves: the segment's original beside it,
        // here the segment's bytes with more records after them, or fuzz bytes.
        let wal = root.join("wal");
        let first = fs::read_dir(&wal)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| Some((name_index(&e.file_name().to_string_lossy())?, e.path())))
            .min();
        if let Some((i, seg)) = first {
            let mut bytes = if inp.bool() {
                fs::read(&seg).unwrap()
            } else {
                Vec::new()
            };
            bytes.resize(padded_len(bytes.len()), 0);
            bytes.extend_from_slice(&gen_file(&mut inp));
            fs::write(wal.join(format!("{i:08}.repair")), bytes).unwrap();
        }
    }
    let agent = check_opts.flavor == walfix::WalFlavor::Agent;
    let opts = RepairOptions {
        mode: if knobs & 1 != 0 {
            Mode::Truncate
        } else {
            Mode::Salvage
        },
        flavor: check_opts.flavor,
        backup_dir: None,
        pad: knobs & 2 != 0,
        force: false,
        drop_checkpoint: knobs & 4 != 0,
        ..Default::default()
    };

    let outside_before = files_under(&outside);
    let files_before = files_under(&root);
    let per_file_before: Vec<_> = log_dirs(&root, agent)
        .into_iter()
        .map(|(d, k)| clean_per_file(&d, k))
        .collect();
    let records_before: Vec<_> = log_dirs(&root, agent)
        .into_iter()
        .map(|(d, k)| (d.clone(), clean_records(&d, k)))
        .collect();

    let p = plan(&path, &opts).expect("plan failed on a directory with a WAL");
    let predicted = walfix::repair::predict(&p, &opts).expect("predict");
    let outcome = execute(&p, &opts, &NoSyncFs)
        .unwrap_or_else(|e| panic!("repair failed: {e:?}; plan: {:?}", p.actions));
    let after = walfix::check(
        &path,
        &walfix::CheckOptions {
            flavor: opts.flavor,
            ..Default::default()
        },
    )
    .expect("check after repair");
    assert_eq!(
        outcome.after.findings.len(),
        after.findings.len(),
        "the check repair returns differs from a new check"
    );

    let sig = |r: &walfix::Report| {
        let mut v: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.kind, f.severity, f.file.clone(), f.offset))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sig(&predicted),
        sig(&after),
        "the prediction differs from the result; plan: {:?}",
        p.actions
    );
    assert_eq!(
        files_under(&outside),
        outside_before,
        "repair changed a file outside the data dir"
    );

    // Every original file is unchanged, renamed unchanged, or in the backup byte for byte.
    let backup = files_under(&p.backup_dir);
    let files_after = files_under(&root);
    for (rel, bytes) in &files_before {
        if files_after.get(rel) == Some(bytes) {
            continue;
        }
        let kept = files_after
            .iter()
            .filter(|(r, _)| !r.starts_with("walfix-backup"))
            .any(|(_, b)| b == bytes);
        assert!(
            kept || backup.values().any(|b| b == bytes),
            "{} changed and its original bytes ({} bytes) are not in the backup; plan: {:?}",
            rel.display(),
            bytes.len(),
            p.actions
        );
    }

    // The real checkpoint moved away (`--drop-checkpoint`), not a leftover `checkpoint.N.tmp`.
    let is_checkpoint_dir = |path: &Path| {
        path.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .strip_prefix("checkpoint.")
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    let dropped_checkpoint = p
        .actions
        .iter()
        .any(|a| matches!(a, Action::MoveToBackup { path, .. } if is_checkpoint_dir(path)));
    if opts.mode == Mode::Salvage {
        for (dir, before) in &records_before {
            let Some(before) = before else { continue };
            let is_ck = dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint."));
            if is_ck && dropped_checkpoint {
                continue;
            }
            let kind = log_dirs(&root, agent)
                .into_iter()
                .find(|(d, _)| d == dir)
                .map(|(_, k)| k);
            let Some(kind) = kind else {
                panic!("{} is gone after repair", dir.display());
            };
            let Some(now) = clean_records(dir, kind) else {
                continue;
            };
            assert!(
                is_subsequence(before, &now),
                "{}: {} clean records before, {} after, not all kept in order; per file before \
                 {:?}, after {:?}; plan: {:?}",
                dir.display(),
                before.len(),
                now.len(),
                per_file_before,
                clean_per_file(dir, kind),
                p.actions
            );
        }
    }

    if p.unresolved.is_empty() {
        assert!(
            after.worst <= walfix::Severity::Warning,
            "damage left after a repair with nothing unresolved: {:?}; plan: {:?}",
            after
                .findings
                .iter()
                .filter(|f| f.severity > walfix::Severity::Warning)
                .collect::<Vec<_>>(),
            p.actions
        );
        let again = plan(&path, &opts).expect("second plan");
        assert!(
            again.actions.is_empty(),
            "a second repair would change more: {:?}; first plan: {:?}",
            again.actions,
            p.actions
        );
    }
}
