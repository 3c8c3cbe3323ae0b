//! Owned records: decoding into vectors and encoding back to Prometheus's exact bytes.

use super::histogram::HistogramBody;
use super::pairs::put_pairs;
use super::primitives::{put_be64, put_f64, put_uvarint, put_varint, Decoder};
use super::visit::{
    record_type, v1_base, visit, Exemplar, HistogramSample, Metadata, Sample, Series, Visitor,
};
use super::{DecodeError, MmapMarker, RecordType, Tombstone};

/// An owned series entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnedSeries {
    /// Series ref.
    pub series_ref: u64,
    /// (name, value) pairs in record order (Prometheus writes them sorted by name).
    pub labels: Vec<(Vec<u8>, Vec<u8>)>,
}

/// An owned exemplar; `v` compares by bit pattern.
#[derive(Clone, Debug)]
pub struct OwnedExemplar {
    /// Series ref.
    pub series_ref: u64,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// Value.
    pub v: f64,
    /// (name, value) pairs in record order.
    pub labels: Vec<(Vec<u8>, Vec<u8>)>,
}

impl PartialEq for OwnedExemplar {
    fn eq(&self, o: &Self) -> bool {
        (self.series_ref, self.t, self.v.to_bits()) == (o.series_ref, o.t, o.v.to_bits())
            && self.labels == o.labels
    }
}

impl Eq for OwnedExemplar {}

/// An owned metadata entry. `fields` are written exactly as given; Prometheus's writer always
/// gives two, `UNIT` then `HELP` (see [`OwnedMetadata::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnedMetadata {
    /// Series ref.
    pub series_ref: u64,
    /// 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram, 5 summary, 6 info, 7 stateset.
    pub metric_type: u8,
    /// (name, value) fields in record order.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl OwnedMetadata {
    /// An entry as Prometheus writes it: fields `UNIT` = unit, then `HELP` = help.
    pub fn new(series_ref: u64, metric_type: u8, unit: &[u8], help: &[u8]) -> OwnedMetadata {
        OwnedMetadata {
            series_ref,
            metric_type,
            fields: vec![
                (b"UNIT".to_vec(), unit.to_vec()),
                (b"HELP".to_vec(), help.to_vec()),
            ],
        }
    }

    /// Value of the last `UNIT` field, empty if none (what Prometheus's decoder keeps).
    pub fn unit(&self) -> &[u8] {
        self.last_field(b"UNIT")
    }

    /// Value of the last `HELP` field, empty if none.
    pub fn help(&self) -> &[u8] {
        self.last_field(b"HELP")
    }

    fn last_field(&self, name: &[u8]) -> &[u8] {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, v)| v)
    }
}

/// An owned histogram sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedHistogramSample {
    /// Series ref.
    pub series_ref: u64,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// Start timestamp; not stored (decodes as 0) in the V1 types 7..=10.
    pub st: i64,
    /// The histogram; must be a float body for types 8, 10, 13 and an integer one otherwise.
    pub body: HistogramBody,
}

/// A whole record with owned entries.
///
/// Encoding is the exact inverse of decoding for every record Prometheus's encoder can write.
/// Byte patterns it cannot write decode fine but encode differently: non-minimal varints, st
/// markers above 2, V1 samples/exemplars records with a base but no entries, a V2 histogram
/// record holding only its first head, schema or span varints beyond 32 bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Type 1.
    Series(Vec<OwnedSeries>),
    /// Type 2. `st` is not stored: it must be 0 to round-trip.
    Samples(Vec<Sample>),
    /// Type 3, one entry per (ref, interval).
    Tombstones(Vec<Tombstone>),
    /// Type 4.
    Exemplars(Vec<OwnedExemplar>),
    /// Type 5.
    MmapMarkers(Vec<MmapMarker>),
    /// Type 6.
    Metadata(Vec<OwnedMetadata>),
    /// Types 7..=10 (V1 envelope) and 12, 13 (V2).
    Histograms {
        /// Which of the six histogram types.
        record_type: RecordType,
        /// V1 only: the envelope's base ref and base t when they are not those of the first
        /// sample. Prometheus 3.2+ takes the base from the first histogram of a batch even when
        /// that one is split off into a custom-buckets record, so real type 7/8 records can have
        /// a base that no entry has. `None` (the usual case) means "the first sample's". Also
        /// `Some` for a V1 record with a base but no entries. Ignored for V2 types.
        base: Option<(u64, i64)>,
        /// The histograms in record order.
        samples: Vec<OwnedHistogramSample>,
    },
    /// Type 11.
    SamplesV2(Vec<Sample>),
}

impl Record {
    /// The record's type byte.
    pub fn record_type(&self) -> RecordType {
        match self {
            Record::Series(_) => RecordType::Series,
            Record::Samples(_) => RecordType::Samples,
            Record::Tombstones(_) => RecordType::Tombstones,
            Record::Exemplars(_) => RecordType::Exemplars,
            Record::MmapMarkers(_) => RecordType::MmapMarkers,
            Record::Metadata(_) => RecordType::Metadata,
            Record::Histograms { record_type, .. } => *record_type,
            Record::SamplesV2(_) => RecordType::SamplesV2,
        }
    }

    /// Number of entries (series, samples, intervals, …).
    pub fn entry_count(&self) -> usize {
        match self {
            Record::Series(v) => v.len(),
            Record::Samples(v) | Record::SamplesV2(v) => v.len(),
            Record::Tombstones(v) => v.len(),
            Record::Exemplars(v) => v.len(),
            Record::MmapMarkers(v) => v.len(),
            Record::Metadata(v) => v.len(),
            Record::Histograms { samples, .. } => samples.len(),
        }
    }

    /// An empty record of type `t`.
    pub fn empty(t: RecordType) -> Record {
        match t {
            RecordType::Series => Record::Series(Vec::new()),
            RecordType::Samples => Record::Samples(Vec::new()),
            RecordType::Tombstones => Record::Tombstones(Vec::new()),
            RecordType::Exemplars => Record::Exemplars(Vec::new()),
            RecordType::MmapMarkers => Record::MmapMarkers(Vec::new()),
            RecordType::Metadata => Record::Metadata(Vec::new()),
            RecordType::SamplesV2 => Record::SamplesV2(Vec::new()),
            _ => Record::Histograms {
                record_type: t,
                base: None,
                samples: Vec::new(),
            },
        }
    }

    /// Decodes a whole record (type byte first) into owned entries, with the same checks as
    /// [`visit`](super::visit).
    ///
    /// ```
    /// use walfix_format::record::{OwnedSeries, Record};
    ///
    /// // Series record: ref 1, one label __name__="up".
    /// let rec = b"\x01\0\0\0\0\0\0\0\x01\x01\x08__name__\x02up";
    /// let decoded = Record::decode(rec).unwrap();
    /// assert_eq!(
    ///     decoded,
    ///     Record::Series(vec![OwnedSeries {
    ///         series_ref: 1,
    ///         labels: vec![(b"__name__".to_vec(), b"up".to_vec())],
    ///     }])
    /// );
    /// let mut again = Vec::new();
    /// decoded.encode(&mut again);
    /// assert_eq!(again, rec);
    /// ```
    pub fn decode(rec: &[u8]) -> Result<Record, DecodeError> {
        let t = record_type(rec)?;
        let mut c = Collector {
            record: Record::empty(t),
            error: None,
        };
        visit(rec, &mut c)?;
        if let Some(e) = c.error {
            return Err(e);
        }
        if let Record::Histograms { base, samples, .. } = &mut c.record {
            if !t.is_v2() {
                *base = odd_v1_base(rec, t, samples)?;
            }
        }
        Ok(c.record)
    }

    /// Appends the record as Prometheus's encoder writes it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.record_type() as u8);
        match self {
            Record::Series(entries) => {
                for s in entries {
                    put_be64(out, s.series_ref);
                    put_pairs(out, &s.labels);
                }
            }
            Record::Samples(entries) => put_v1(
                out,
                None,
                entries,
                |s| (s.series_ref, s.t),
                |out, s| put_f64(out, s.v),
            ),
            Record::SamplesV2(entries) => put_v2(
                out,
                entries,
                |s| (s.series_ref, s.t, s.st),
                |out, s| put_f64(out, s.v),
            ),
            Record::Tombstones(entries) => {
                for s in entries {
                    put_be64(out, s.series_ref);
                    put_varint(out, s.mint);
                    put_varint(out, s.maxt);
                }
            }
            Record::Exemplars(entries) => put_v1(
                out,
                None,
                entries,
                |e| (e.series_ref, e.t),
                |out, e| {
                    put_f64(out, e.v);
                    put_pairs(out, &e.labels);
                },
            ),
            Record::MmapMarkers(entries) => {
                for m in entries {
                    put_be64(out, m.series_ref);
                    put_be64(out, m.chunk_ref);
                }
            }
            Record::Metadata(entries) => {
                for m in entries {
                    put_uvarint(out, m.series_ref);
                    out.push(m.metric_type);
                    put_pairs(out, &m.fields);
                }
            }
            Record::Histograms {
                record_type,
                base,
                samples,
            } => {
                let head = |h: &OwnedHistogramSample| (h.series_ref, h.t);
                let body = |out: &mut Vec<u8>, h: &OwnedHistogramSample| h.body.encode(out);
                if record_type.is_v2() {
                    put_v2(out, samples, |h| (h.series_ref, h.t, h.st), body);
                } else {
                    put_v1(out, *base, samples, head, body);
                }
            }
        }
    }
}

/// The V1 histogram base if it is not the first sample's (see [`Record::Histograms`]).
fn odd_v1_base(
    rec: &[u8],
    t: RecordType,
    samples: &[OwnedHistogramSample],
) -> Result<Option<(u64, i64)>, DecodeError> {
    let base = v1_base(&mut Decoder::new(rec, 1, Some(t)))?;
    Ok(match (base, samples.first()) {
        (Some(b), Some(first)) if b == (first.series_ref, first.t) => None,
        (b, _) => b,
    })
}

/// V1 envelope: `be64 base ref`, `be64 base t`, then per entry `varint ref - base ref`,
/// `varint t - base t` and the tail. Nothing after the type byte if there is no base.
fn put_v1<T>(
    out: &mut Vec<u8>,
    base: Option<(u64, i64)>,
    entries: &[T],
    head: impl Fn(&T) -> (u64, i64),
    tail: impl Fn(&mut Vec<u8>, &T),
) {
    let Some((base_ref, base_t)) = base.or_else(|| entries.first().map(&head)) else {
        return;
    };
    put_be64(out, base_ref);
    put_be64(out, base_t as u64);
    for e in entries {
        let (series_ref, t) = head(e);
        // Go computes int64(ref) - int64(base) with wrap-around.
        put_varint(out, series_ref.wrapping_sub(base_ref) as i64);
        put_varint(out, t.wrapping_sub(base_t));
        tail(out, e);
    }
}

/// V2 layout: first entry `varint ref`, `varint t`, `varint st`; later ones `varint ref delta`
/// (to the previous entry), `varint t delta` (to the first), an st marker, then the tail.
fn put_v2<T>(
    out: &mut Vec<u8>,
    entries: &[T],
    head: impl Fn(&T) -> (u64, i64, i64),
    tail: impl Fn(&mut Vec<u8>, &T),
) {
    let Some(first) = entries.first() else {
        return;
    };
    let (first_ref, first_t, first_st) = head(first);
    put_varint(out, first_ref as i64);
    put_varint(out, first_t);
    put_varint(out, first_st);
    tail(out, first);
    let mut prev = (first_ref, first_st);
    for e in entries.iter().skip(1) {
        let (series_ref, t, st) = head(e);
        put_varint(out, series_ref.wrapping_sub(prev.0) as i64);
        put_varint(out, t.wrapping_sub(first_t));
        // Same order of tests as Prometheus's writeSTMarker: 0 wins over "same as previous".
        if st == 0 {
            out.push(0);
        } else if st == prev.1 {
            out.push(1);
        } else {
            out.push(2);
            put_varint(out, st.wrapping_sub(first_st));
        }
        tail(out, e);
        prev = (series_ref, st);
    }
}

/// Visitor that copies entries into a [`Record`] of the matching variant.
struct Collector {
    record: Record,
    error: Option<DecodeError>,
}

impl Visitor for Collector {
    fn series(&mut self, s: &Series<'_>) {
        if let Record::Series(v) = &mut self.record {
            v.push(OwnedSeries {
                series_ref: s.series_ref,
                labels: s.labels.to_vec(),
            });
        }
    }

    fn sample(&mut self, s: &Sample) {
        if let Record::Samples(v) | Record::SamplesV2(v) = &mut self.record {
            v.push(*s);
        }
    }

    fn tombstone(&mut self, t: &Tombstone) {
        if let Record::Tombstones(v) = &mut self.record {
            v.push(*t);
        }
    }

    fn exemplar(&mut self, e: &Exemplar<'_>) {
        if let Record::Exemplars(v) = &mut self.record {
            v.push(OwnedExemplar {
                series_ref: e.series_ref,
                t: e.t,
                v: e.v,
                labels: e.labels.to_vec(),
            });
        }
    }

    fn mmap_marker(&mut self, m: &MmapMarker) {
        if let Record::MmapMarkers(v) = &mut self.record {
            v.push(*m);
        }
    }

    fn metadata(&mut self, m: &Metadata<'_>) {
        if let Record::Metadata(v) = &mut self.record {
            v.push(OwnedMetadata {
                series_ref: m.series_ref,
                metric_type: m.metric_type,
                fields: m.fields.to_vec(),
            });
        }
    }

    fn histogram(&mut self, h: &HistogramSample<'_>) {
        let Record::Histograms { samples, .. } = &mut self.record else {
            return;
        };
        // The body was validated by visit, so this only fails if the two parsers disagree.
        match h.decode_body() {
            Ok(body) => samples.push(OwnedHistogramSample {
                series_ref: h.series_ref,
                t: h.t,
                st: h.st,
                body,
            }),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }
}
