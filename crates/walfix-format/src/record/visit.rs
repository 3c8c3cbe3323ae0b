//! Zero-allocation decoding: [`visit`] walks a record and hands each entry to a [`Visitor`].

use super::histogram::{parse_body, HistogramBody, CUSTOM_BUCKETS_SCHEMA};
use super::pairs::{Labels, MetadataFields};
use super::primitives::{unzigzag, Decoder, Result};
use super::{DecodeError, DecodeErrorKind, RecordType};

/// Receives the entries of a record from [`visit`]. Every method defaults to doing nothing.
pub trait Visitor {
    /// One series of a Series record.
    fn series(&mut self, _s: &Series<'_>) {}
    /// One sample of a Samples or SamplesV2 record.
    fn sample(&mut self, _s: &Sample) {}
    /// Consecutive samples of one record, in record order: the decoder hands runs of V1
    /// samples over this way. The default calls [`Visitor::sample`] for each; a visitor that
    /// keeps per-sample counters can sum a run in locals instead of updating memory each time.
    /// Overriding it does not replace [`Visitor::sample`]: SamplesV2 records and the last few
    /// entries of a V1 record still arrive one at a time there.
    fn samples(&mut self, batch: &[Sample]) {
        for s in batch {
            self.sample(s);
        }
    }
    /// One (ref, interval) of a Tombstones record.
    fn tombstone(&mut self, _t: &Tombstone) {}
    /// One exemplar of an Exemplars record.
    fn exemplar(&mut self, _e: &Exemplar<'_>) {}
    /// One marker of an MmapMarkers record.
    fn mmap_marker(&mut self, _m: &MmapMarker) {}
    /// One entry of a Metadata record.
    fn metadata(&mut self, _m: &Metadata<'_>) {}
    /// One histogram of any of the six histogram record types.
    fn histogram(&mut self, _h: &HistogramSample<'_>) {}
}

/// A visitor that ignores everything: `visit(rec, &mut ())` only validates.
impl Visitor for () {}

/// A series entry: its ref and its labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Series<'a> {
    /// The series ref other records use.
    pub series_ref: u64,
    /// The labels, borrowed from the record.
    pub labels: Labels<'a>,
}

/// A float sample. `v` compares by bit pattern, so NaNs (staleness markers are
/// `0x7ff0000000000002`) compare equal to themselves and `0.0 != -0.0`.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Series ref.
    pub series_ref: u64,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// Start timestamp; always 0 in Samples (type 2) records.
    pub st: i64,
    /// Value.
    pub v: f64,
}

impl PartialEq for Sample {
    fn eq(&self, o: &Self) -> bool {
        (self.series_ref, self.t, self.st, self.v.to_bits())
            == (o.series_ref, o.t, o.st, o.v.to_bits())
    }
}

impl Eq for Sample {}

/// One deleted interval `[mint, maxt]` of one series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tombstone {
    /// Series ref.
    pub series_ref: u64,
    /// First deleted timestamp.
    pub mint: i64,
    /// Last deleted timestamp.
    pub maxt: i64,
}

/// An exemplar; `v` compares by bit pattern.
#[derive(Clone, Copy, Debug)]
pub struct Exemplar<'a> {
    /// Series ref.
    pub series_ref: u64,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// Value.
    pub v: f64,
    /// Exemplar labels (such as `trace_id`), borrowed from the record.
    pub labels: Labels<'a>,
}

impl PartialEq for Exemplar<'_> {
    fn eq(&self, o: &Self) -> bool {
        (self.series_ref, self.t, self.v.to_bits(), self.labels)
            == (o.series_ref, o.t, o.v.to_bits(), o.labels)
    }
}

impl Eq for Exemplar<'_> {}

/// "All samples of this series up to now are in the m-mapped out-of-order chunk `chunk_ref`."
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MmapMarker {
    /// Series ref.
    pub series_ref: u64,
    /// `segment << 32 | offset` into `chunks_head/`.
    pub chunk_ref: u64,
}

/// A metadata entry. `unit` and `help` are what Prometheus's decoder keeps: the value of the
/// last `UNIT` / `HELP` field, empty if there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata<'a> {
    /// Series ref (a uvarint on disk, unlike the be64 refs elsewhere).
    pub series_ref: u64,
    /// 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram, 5 summary, 6 info, 7 stateset.
    pub metric_type: u8,
    /// Every field as written, known or not.
    pub fields: MetadataFields<'a>,
    /// Value of the last `UNIT` field.
    pub unit: &'a [u8],
    /// Value of the last `HELP` field.
    pub help: &'a [u8],
}

/// One histogram sample, with its body validated but not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramSample<'a> {
    /// The record type it came from (7..=10, 12 or 13).
    pub record_type: RecordType,
    /// Series ref.
    pub series_ref: u64,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// Start timestamp; always 0 in the V1 types 7..=10.
    pub st: i64,
    /// True for float histograms (types 8, 10, 13).
    pub is_float: bool,
    /// Bucket schema (the low 32 bits of the stored varint, as Prometheus reads it).
    pub schema: i32,
    /// 0 unknown, 1 counter reset, 2 not a reset, 3 gauge.
    pub counter_reset_hint: u8,
    /// The raw body from the hint byte on, validated.
    pub body: &'a [u8],
}

impl HistogramSample<'_> {
    /// True if the body uses custom bucket bounds (schema -53). The record type does not
    /// decide this: the V2 types carry both kinds.
    pub fn is_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Decodes the body into owned vectors. Error offsets are relative to `body`.
    pub fn decode_body(&self) -> std::result::Result<HistogramBody, DecodeError> {
        let mut d = Decoder::new(self.body, 0, Some(self.record_type));
        let body = HistogramBody::decode(&mut d, self.is_float)?;
        if !d.is_empty() {
            let n = d.remaining();
            return Err(d.error_at(d.pos(), DecodeErrorKind::TrailingBytes { n }));
        }
        Ok(body)
    }
}

/// Decodes the record `rec` (type byte first) and calls `v` once per entry, in record order.
///
/// Every field is checked the way Prometheus's decoder checks it, up to the last byte. A record
/// of just its type byte is valid for every type and has no entries (so is a V2 histogram
/// record with only its first ref, t and st, which Prometheus also accepts). On error `v` has
/// already seen the entries before the bad one, while Prometheus rejects the whole record: use
/// [`validate`] first when that matters. An unknown type byte gives
/// [`DecodeErrorKind::UnknownType`], a 0-byte record [`DecodeErrorKind::Empty`].
///
/// Nothing is allocated.
///
/// ```
/// use walfix_format::record::{visit, RecordType, Sample, Visitor};
///
/// struct Sum(f64);
/// impl Visitor for Sum {
///     fn sample(&mut self, s: &Sample) {
///         self.0 += s.v;
///     }
/// }
///
/// // Samples record: base ref 1, base t 1700000000000, one sample (deltas 0, 0) of value 1.0.
/// let rec = [
///     0x02, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0, 0,
///     0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
/// ];
/// let mut sum = Sum(0.0);
/// assert_eq!(visit(&rec, &mut sum), Ok(RecordType::Samples));
/// assert_eq!(sum.0, 1.0);
/// assert!(visit(&rec[..20], &mut sum).is_err()); // truncated
/// ```
pub fn visit(rec: &[u8], v: &mut impl Visitor) -> std::result::Result<RecordType, DecodeError> {
    let t = record_type(rec)?;
    let mut d = Decoder::new(rec, 1, Some(t));
    match t {
        RecordType::Series => series(&mut d, v),
        RecordType::Samples => samples_v1(rec, &mut d, v),
        RecordType::SamplesV2 => samples_v2(&mut d, v),
        RecordType::Tombstones => tombstones(&mut d, v),
        RecordType::Exemplars => exemplars(&mut d, v),
        RecordType::MmapMarkers => mmap_markers(&mut d, v),
        RecordType::Metadata => metadata(&mut d, v),
        RecordType::HistogramSamples
        | RecordType::FloatHistogramSamples
        | RecordType::CustomBucketsHistogramSamples
        | RecordType::CustomBucketsFloatHistogramSamples => histograms_v1(&mut d, t, v),
        RecordType::HistogramSamplesV2 | RecordType::FloatHistogramSamplesV2 => {
            histograms_v2(&mut d, t, v)
        }
    }?;
    Ok(t)
}

/// Checks the whole record without looking at its entries: [`visit`] with a visitor that does
/// nothing.
pub fn validate(rec: &[u8]) -> std::result::Result<RecordType, DecodeError> {
    visit(rec, &mut ())
}

/// The type byte of `rec`, or the error [`visit`] gives for a missing or unknown one.
pub(crate) fn record_type(rec: &[u8]) -> Result<RecordType> {
    let error = |kind| DecodeError {
        record_type: None,
        offset: 0,
        entry: 0,
        kind,
    };
    let b = *rec.first().ok_or_else(|| error(DecodeErrorKind::Empty))?;
    RecordType::from_u8(b).ok_or_else(|| error(DecodeErrorKind::UnknownType(b)))
}

/// Runs `entry` until the record is used up, keeping the entry index for errors.
fn each_entry<'a>(
    d: &mut Decoder<'a>,
    mut entry: impl FnMut(&mut Decoder<'a>, usize) -> Result<()>,
) -> Result<()> {
    let mut i = 0;
    while !d.is_empty() {
        d.set_entry(i);
        entry(d, i)?;
        i += 1;
    }
    Ok(())
}

/// `be64 base ref`, `be64 base t` of the V1 envelopes; `None` for a type-byte-only record.
pub(crate) fn v1_base(d: &mut Decoder<'_>) -> Result<Option<(u64, i64)>> {
    if d.is_empty() {
        return Ok(None);
    }
    let base_ref = d.be64("be64 base ref")?;
    let base_t = d.be64("be64 base t")? as i64;
    Ok(Some((base_ref, base_t)))
}

/// `varint ref delta`, `varint t delta` against the V1 base. Go adds them with wrap-around.
fn v1_head(d: &mut Decoder<'_>, (base_ref, base_t): (u64, i64)) -> Result<(u64, i64)> {
    let series_ref = base_ref.wrapping_add(d.varint("varint ref delta")? as u64);
    let t = base_t.wrapping_add(d.varint("varint t delta")?);
    Ok((series_ref, t))
}

fn series<V: Visitor>(d: &mut Decoder<'_>, v: &mut V) -> Result<()> {
    each_entry(d, |d, _| {
        let series_ref = d.be64("be64 series ref")?;
        let labels = Labels::decode(d)?;
        v.series(&Series { series_ref, labels });
        Ok(())
    })
}

/// V1 samples handed to [`Visitor::samples`] at a time (32 bytes each, on the stack).
const SAMPLE_BATCH: usize = 64;

/// Longest V1 samples entry: a 10-byte ref delta, a 10-byte t delta and an f64.
const MAX_V1_SAMPLE: usize = 28;

/// A uvarint from the front of `b`, which holds at least 10 bytes, so no length check is needed;
/// `None` for a 10-byte encoding Go rejects (the checked path then reports it).
#[inline(always)]
fn uvarint_unchecked(b: &[u8; 10]) -> Option<(u64, usize)> {
    // Ref deltas of a scrape are mostly 2-3 bytes and t deltas 1 byte: unrolled up to 3.
    let b0 = u64::from(b[0]);
    if b0 < 0x80 {
        return Some((b0, 1));
    }
    let b1 = u64::from(b[1]);
    if b1 < 0x80 {
        return Some((b0 & 0x7f | b1 << 7, 2));
    }
    let b2 = u64::from(b[2]);
    if b2 < 0x80 {
        return Some((b0 & 0x7f | (b1 & 0x7f) << 7 | b2 << 14, 3));
    }
    let mut x = b0 & 0x7f | (b1 & 0x7f) << 7 | (b2 & 0x7f) << 14;
    let mut i = 3;
    while i < 10 {
        let byte = b[i];
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return None;
            }
            return Some((x | u64::from(byte) << (7 * i), i + 1));
        }
        x |= u64::from(byte & 0x7f) << (7 * i);
        i += 1;
    }
    None
}

/// Decodes the V1 samples of `rec` from `d`. The hot path of a check: while at least one
/// longest entry's worth of bytes is left, entries are read without per-field length checks
/// (none can fail); the last few entries, and anything odd, go through the checked [`Decoder`],
/// which reports errors with the same offsets and fields as before.
fn samples_v1<V: Visitor>(rec: &[u8], d: &mut Decoder<'_>, v: &mut V) -> Result<()> {
    let Some((base_ref, base_t)) = v1_base(d)? else {
        return Ok(());
    };
    let mut pos = d.pos();
    let mut entry = 0;
    let mut batch = [Sample {
        series_ref: 0,
        t: 0,
        st: 0,
        v: 0.0,
    }; SAMPLE_BATCH];
    let mut n = 0;
    while let Some(chunk) = rec
        .get(pos..)
        .and_then(|r| r.first_chunk::<MAX_V1_SAMPLE>())
    {
        let Some((dref, n1)) = chunk.first_chunk::<10>().and_then(uvarint_unchecked) else {
            break;
        };
        let Some((dt, n2)) = chunk
            .get(n1..)
            .and_then(|c| c.first_chunk::<10>())
            .and_then(uvarint_unchecked)
        else {
            break;
        };
        let Some(value) = chunk.get(n1 + n2..).and_then(|c| c.first_chunk::<8>()) else {
            break;
        };
        batch[n % SAMPLE_BATCH] = Sample {
            series_ref: base_ref.wrapping_add(unzigzag(dref) as u64),
            t: base_t.wrapping_add(unzigzag(dt)),
            st: 0,
            v: f64::from_bits(u64::from_be_bytes(*value)),
        };
        n += 1;
        if n == SAMPLE_BATCH {
            v.samples(&batch);
            n = 0;
        }
        pos += n1 + n2 + 8;
        entry += 1;
    }
    // Whatever the checked path finds, the visitor has seen every entry before it, in order.
    v.samples(&batch[..n]);
    let mut d = Decoder::new(rec, pos, Some(RecordType::Samples));
    samples_v1_checked(&mut d, (base_ref, base_t), entry, v)
}

fn samples_v1_checked<V: Visitor>(
    d: &mut Decoder<'_>,
    base: (u64, i64),
    first_entry: usize,
    v: &mut V,
) -> Result<()> {
    let mut i = first_entry;
    while !d.is_empty() {
        d.set_entry(i);
        i += 1;
        let (series_ref, t) = v1_head(d, base)?;
        let value = d.f64("f64 value")?;
        v.sample(&Sample {
            series_ref,
            t,
            st: 0,
            v: value,
        });
    }
    Ok(())
}

/// Ref, t and st of one entry of a V2 record.
#[derive(Clone, Copy, Default)]
struct V2Head {
    series_ref: u64,
    t: i64,
    st: i64,
}

/// Decodes V2 entry heads: the first one absolute, later ones as ref delta to the previous
/// entry, t delta to the first entry and an st marker.
#[derive(Default)]
struct V2Heads {
    first: V2Head,
    prev: V2Head,
}

impl V2Heads {
    fn read_first(d: &mut Decoder<'_>) -> Result<V2Heads> {
        let first = V2Head {
            series_ref: d.varint("varint ref")? as u64,
            t: d.varint("varint t")?,
            st: d.varint("varint st")?,
        };
        Ok(V2Heads { first, prev: first })
    }

    fn read_next(&mut self, d: &mut Decoder<'_>) -> Result<V2Head> {
        let series_ref = self
            .prev
            .series_ref
            .wrapping_add(d.varint("varint ref delta")? as u64);
        let t = self.first.t.wrapping_add(d.varint("varint t delta")?);
        // 0: no st, 1: same as the previous entry, anything else: delta to the first st.
        let st = match d.u8("u8 st marker")? {
            0 => 0,
            1 => self.prev.st,
            _ => self.first.st.wrapping_add(d.varint("varint st delta")?),
        };
        self.prev = V2Head { series_ref, t, st };
        Ok(self.prev)
    }
}

fn samples_v2<V: Visitor>(d: &mut Decoder<'_>, v: &mut V) -> Result<()> {
    let mut heads = V2Heads::default();
    each_entry(d, |d, i| {
        let head = if i == 0 {
            heads = V2Heads::read_first(d)?;
            heads.first
        } else {
            heads.read_next(d)?
        };
        let value = d.f64("f64 value")?;
        v.sample(&Sample {
            series_ref: head.series_ref,
            t: head.t,
            st: head.st,
            v: value,
        });
        Ok(())
    })
}

fn tombstones<V: Visitor>(d: &mut Decoder<'_>, v: &mut V) -> Result<()> {
    each_entry(d, |d, _| {
        let series_ref = d.be64("be64 series ref")?;
        let mint = d.varint("varint mint")?;
        let maxt = d.varint("varint maxt")?;
        v.tombstone(&Tombstone {
            series_ref,
            mint,
            maxt,
        });
        Ok(())
    })
}

fn exemplars<V: Visitor>(d: &mut Decoder<'_>, v: &mut V) -> Result<()> {
    let Some(base) = v1_base(d)? else {
        return Ok(());
    };
    each_entry(d, |d, _| {
        let (series_ref, t) = v1_head(d, base)?;
        let value = d.f64("f64 value")?;
        let labels = Labels::decode(d)?;
        v.exemplar(&Exemplar {
            series_ref,
            t,
            v: value,
            labels,
        });
        Ok(())
    })
}

fn mmap_markers<V: Visitor>(d: &mut Decoder<'_>, v: &mut V) -> Result<()> {
    each_entry(d, |d, _| {
        let series_ref = d.be64("be64 series ref")?;
        let chunk_ref = d.be64("be64 chunk ref")?;
        v.mmap_marker(&MmapMarker {
            series_ref,
            chunk_ref,
        });
        Ok(())
    })
}

fn metadata<V: Visitor>(d: &mut Decoder<'_>, v: &mut V) -> Result<()> {
    each_entry(d, |d, _| {
        let series_ref = d.uvarint("uvarint series ref")?;
        let metric_type = d.u8("u8 metric type")?;
        let fields = MetadataFields::decode(d)?;
        v.metadata(&Metadata {
            series_ref,
            metric_type,
            fields,
            unit: fields.get_last(b"UNIT").unwrap_or_default(),
            help: fields.get_last(b"HELP").unwrap_or_default(),
        });
        Ok(())
    })
}

/// Validates one body at the cursor and wraps it with its entry head.
fn histogram_sample<'a>(
    d: &mut Decoder<'a>,
    record_type: RecordType,
    (series_ref, t, st): (u64, i64, i64),
) -> Result<HistogramSample<'a>> {
    let is_float = record_type.is_float_histogram();
    let start = d.pos();
    let (counter_reset_hint, schema) = parse_body(d, is_float, &mut ())?;
    Ok(HistogramSample {
        record_type,
        series_ref,
        t,
        st,
        is_float,
        schema,
        counter_reset_hint,
        body: d.since(start),
    })
}

fn histograms_v1<V: Visitor>(d: &mut Decoder<'_>, t: RecordType, v: &mut V) -> Result<()> {
    let Some(base) = v1_base(d)? else {
        return Ok(());
    };
    each_entry(d, |d, _| {
        let (series_ref, ts) = v1_head(d, base)?;
        v.histogram(&histogram_sample(d, t, (series_ref, ts, 0))?);
        Ok(())
    })
}

fn histograms_v2<V: Visitor>(d: &mut Decoder<'_>, t: RecordType, v: &mut V) -> Result<()> {
    if d.is_empty() {
        return Ok(());
    }
    // Prometheus reads the first head before its entry loop, so a record holding only that head
    // decodes to zero histograms.
    let mut heads = V2Heads::read_first(d)?;
    each_entry(d, |d, i| {
        let head = if i == 0 {
            heads.first
        } else {
            heads.read_next(d)?
        };
        v.histogram(&histogram_sample(d, t, (head.series_ref, head.t, head.st))?);
        Ok(())
    })
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    #[derive(Default, PartialEq, Debug)]
    struct Seen(Vec<(u64, i64, u64)>);

    impl Visitor for Seen {
        fn sample(&mut self, s: &Sample) {
            self.0.push((s.series_ref, s.t, s.v.to_bits()));
        }
    }

    /// The reference: every entry through the checked decoder.
    fn checked(rec: &[u8]) -> (std::result::Result<(), DecodeError>, Seen) {
        let mut seen = Seen::default();
        let mut d = Decoder::new(rec, 1, Some(RecordType::Samples));
        let res = match v1_base(&mut d) {
            Ok(Some(base)) => samples_v1_checked(&mut d, base, 0, &mut seen),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        (res, seen)
    }

    fn put_varint_bytes(out: &mut Vec<u8>, x: u64, extra: usize) {
        // `extra` continuation bytes of zeros make a non-minimal (still valid) encoding.
        let mut x = x;
        while x >= 0x80 {
            out.push(x as u8 | 0x80);
            x >>= 7;
        }
        if extra > 0 && out.len() < 9 {
            out.push(x as u8 | 0x80);
            for _ in 1..extra {
                out.push(0x80);
            }
            out.push(0);
        } else {
            out.push(x as u8);
        }
    }

    #[test]
    fn fast_path_matches_checked_decoder() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for case in 0..3000 {
            let mut rec = vec![RecordType::Samples as u8];
            rec.extend_from_slice(&(next() % 1000).to_be_bytes());
            rec.extend_from_slice(&(1_700_000_000_000u64 + next()).to_be_bytes());
            let n = next() % 40;
            for _ in 0..n {
                for _ in 0..2 {
                    let mut v = Vec::new();
                    let big = next() % 8 == 0;
                    let x = if big {
                        next() << 31 | next()
                    } else {
                        next() % 300_000
                    };
                    put_varint_bytes(&mut v, x, if next() % 10 == 0 { 2 } else { 0 });
                    rec.extend_from_slice(&v);
                }
                rec.extend_from_slice(&next().to_be_bytes());
            }
            // Damage: overlong varints (10th byte > 1, 11 bytes), flipped bytes, truncation.
            match case % 5 {
                1 if rec.len() > 17 => {
                    let at = 17 + (next() as usize) % (rec.len() - 17);
                    rec.splice(at..at, [0xff; 9].iter().copied().chain([2u8]));
                }
                2 if rec.len() > 17 => {
                    let at = 17 + (next() as usize) % (rec.len() - 17);
                    rec.splice(at..at, [0x80; 11]);
                }
                3 if rec.len() > 17 => {
                    let at = 17 + (next() as usize) % (rec.len() - 17);
                    rec[at] ^= 1 << (next() % 8);
                }
                4 => {
                    let cut = (next() as usize) % (rec.len() + 1);
                    rec.truncate(cut.max(1));
                }
                _ => {}
            }
            let mut fast = Seen::default();
            let got = visit(&rec, &mut fast).map(|_| ());
            let (want, slow) = checked(&rec);
            assert_eq!(got, want, "case {case}: {rec:02x?}");
            assert_eq!(fast, slow, "case {case}");
        }
    }
}
