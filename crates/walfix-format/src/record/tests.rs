//! Tests for the record codec. Expected values come from outside this code: the spec's test
//! vectors (WAL-FORMAT.md 2.4), byte arrays written by hand from the spec's layouts (4.3), and
//! real records cut from Prometheus-written WALs whose counts an independent Python decoder
//! produced (testdata/records/README.md).

use super::*;

fn encode(r: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    r.encode(&mut out);
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Records everything a visitor is told, in order, as owned values.
#[derive(Default)]
struct Seen {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq)]
enum Entry {
    Series(OwnedSeries),
    Sample(Sample),
    Tombstone(Tombstone),
    Exemplar(OwnedExemplar),
    Marker(MmapMarker),
    Metadata(OwnedMetadata, Vec<u8>, Vec<u8>),
    Histogram(RecordType, OwnedHistogramSample, bool),
}

impl Visitor for Seen {
    fn series(&mut self, s: &Series<'_>) {
        self.entries.push(Entry::Series(OwnedSeries {
            series_ref: s.series_ref,
            labels: s
                .labels
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
        }));
    }
    fn sample(&mut self, s: &Sample) {
        self.entries.push(Entry::Sample(*s));
    }
    fn tombstone(&mut self, t: &Tombstone) {
        self.entries.push(Entry::Tombstone(*t));
    }
    fn exemplar(&mut self, e: &Exemplar<'_>) {
        self.entries.push(Entry::Exemplar(OwnedExemplar {
            series_ref: e.series_ref,
            t: e.t,
            v: e.v,
            labels: e
                .labels
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
        }));
    }
    fn mmap_marker(&mut self, m: &MmapMarker) {
        self.entries.push(Entry::Marker(*m));
    }
    fn metadata(&mut self, m: &Metadata<'_>) {
        let fields = m
            .fields
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        self.entries.push(Entry::Metadata(
            OwnedMetadata {
                series_ref: m.series_ref,
                metric_type: m.metric_type,
                fields,
            },
            m.unit.to_vec(),
            m.help.to_vec(),
        ));
    }
    fn histogram(&mut self, h: &HistogramSample<'_>) {
        let body = h.decode_body().expect("visited body decodes");
        assert_eq!(body.schema(), h.schema);
        assert_eq!(body.counter_reset_hint(), h.counter_reset_hint);
        assert_eq!(body.is_float(), h.is_float);
        self.entries.push(Entry::Histogram(
            h.record_type,
            OwnedHistogramSample {
                series_ref: h.series_ref,
                t: h.t,
                st: h.st,
                body,
            },
            h.is_custom_buckets(),
        ));
    }
}

fn seen(rec: &[u8]) -> Vec<Entry> {
    let mut s = Seen::default();
    visit(rec, &mut s).expect("record decodes");
    s.entries
}

/// What a visitor should see for an owned record.
fn expected_entries(r: &Record) -> Vec<Entry> {
    match r {
        Record::Series(v) => v.iter().cloned().map(Entry::Series).collect(),
        Record::Samples(v) | Record::SamplesV2(v) => v.iter().copied().map(Entry::Sample).collect(),
        Record::Tombstones(v) => v.iter().copied().map(Entry::Tombstone).collect(),
        Record::Exemplars(v) => v.iter().cloned().map(Entry::Exemplar).collect(),
        Record::MmapMarkers(v) => v.iter().copied().map(Entry::Marker).collect(),
        Record::Metadata(v) => v
            .iter()
            .map(|m| Entry::Metadata(m.clone(), m.unit().to_vec(), m.help().to_vec()))
            .collect(),
        Record::Histograms {
            record_type,
            samples,
            ..
        } => samples
            .iter()
            .map(|h| {
                let cb = h.body.schema() == -53;
                Entry::Histogram(*record_type, h.clone(), cb)
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Spec section 2.4 test vectors (the payload after the 7-byte fragment header).

/// `01 0000000000000001 01 08 5f5f6e616d655f5f 02 7570` (fragment len field 0x0016 = 22).
const SPEC_SERIES: [u8; 22] = [
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x08, 0x5f, 0x5f, 0x6e, 0x61, 0x6d,
    0x65, 0x5f, 0x5f, 0x02, 0x75, 0x70,
];

/// `02 0000000000000001 0000018bcfe56800 00 00 3ff0000000000000` (len field 0x001b = 27).
const SPEC_SAMPLES: [u8; 27] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68,
    0x00, 0x00, 0x00, 0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn spec_series_vector() {
    let want = Record::Series(vec![OwnedSeries {
        series_ref: 1,
        labels: pairs(&[("__name__", "up")]),
    }]);
    assert_eq!(Record::decode(&SPEC_SERIES), Ok(want.clone()));
    assert_eq!(encode(&want), SPEC_SERIES);
    assert_eq!(encode(&want).len(), 0x16);

    let mut first = None;
    struct Grab<'x>(&'x mut Option<(u64, usize, usize, Option<Vec<u8>>)>);
    impl Visitor for Grab<'_> {
        fn series(&mut self, s: &Series<'_>) {
            *self.0 = Some((
                s.series_ref,
                s.labels.len(),
                s.labels.byte_len(),
                s.labels.get(b"__name__").map(<[u8]>::to_vec),
            ));
        }
    }
    assert_eq!(
        visit(&SPEC_SERIES, &mut Grab(&mut first)),
        Ok(RecordType::Series)
    );
    // "__name__" (8) + "up" (2) = 10 label bytes.
    assert_eq!(first, Some((1, 1, 10, Some(b"up".to_vec()))));
}

#[test]
fn spec_samples_vector() {
    let want = Record::Samples(vec![Sample {
        series_ref: 1,
        t: 1_700_000_000_000,
        st: 0,
        v: 1.0,
    }]);
    assert_eq!(Record::decode(&SPEC_SAMPLES), Ok(want.clone()));
    assert_eq!(encode(&want), SPEC_SAMPLES);
    assert_eq!(encode(&want).len(), 0x1b);
}

// ---------------------------------------------------------------------------------------------
// Hand-made records, one or more per type, bytes written from the spec 4.3 layouts.

/// Hand-made record bytes and the record they must decode to.
fn hand_made() -> Vec<(&'static str, Vec<u8>, Record)> {
    let mut cases = Vec::new();

    // Type 1: two series.
    let mut b = vec![0x01];
    b.extend([0, 0, 0, 0, 0, 0, 0, 5]); // be64 ref 5
    b.push(2); // 2 labels
    b.extend(b"\x08__name__\x02up"); // str "__name__", str "up"
    b.extend(b"\x03job\x01x"); // str "job", str "x"
    b.extend([1, 2, 3, 4, 5, 6, 7, 8]); // be64 ref 0x0102030405060708
    b.push(0); // no labels
    cases.push((
        "series",
        b,
        Record::Series(vec![
            OwnedSeries {
                series_ref: 5,
                labels: pairs(&[("__name__", "up"), ("job", "x")]),
            },
            OwnedSeries {
                series_ref: 0x0102_0304_0506_0708,
                labels: vec![],
            },
        ]),
    ));

    // Type 2: base ref 10, base t 1000, then (dref, dt, value) per sample, first one included.
    let mut b = vec![0x02];
    b.extend([0, 0, 0, 0, 0, 0, 0, 10]); // base ref 10
    b.extend([0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // base t 1000
    b.extend([0x00, 0x00]); // dref 0, dt 0
    b.extend([0x3f, 0xf8, 0, 0, 0, 0, 0, 0]); // 1.5
    b.extend([0x04, 0x13]); // dref +2 (zigzag 4), dt -10 (zigzag 19)
    b.extend([0x7f, 0xf0, 0, 0, 0, 0, 0, 0x02]); // staleness marker NaN
    b.extend([0x01, 0x02]); // dref -1 (zigzag 1), dt +1 (zigzag 2)
    b.extend([0x80, 0, 0, 0, 0, 0, 0, 0]); // -0.0
    let s = |series_ref, t, v| Sample {
        series_ref,
        t,
        st: 0,
        v,
    };
    cases.push((
        "samples",
        b,
        Record::Samples(vec![
            s(10, 1000, 1.5),
            s(12, 990, f64::from_bits(STALE_NAN_BITS)),
            s(9, 1001, -0.0),
        ]),
    ));

    // Type 3: be64 ref, varint mint, varint maxt per interval.
    let mut b = vec![0x03];
    b.extend([0, 0, 0, 0, 0, 0, 0, 7]); // ref 7
    b.push(0x01); // mint -1 (zigzag 1)
    b.extend([0xd8, 0x04]); // maxt 300 (zigzag 600 = 0x258)
    b.extend([0, 0, 0, 0, 0, 0, 0, 7]); // ref 7
    b.extend([0xff; 9]); // mint i64::MIN (zigzag u64::MAX) ...
    b.push(0x01); // ... 10th byte
    b.push(0xfe); // maxt i64::MAX (zigzag u64::MAX - 1) ...
    b.extend([0xff; 8]);
    b.push(0x01);
    cases.push((
        "tombstones",
        b,
        Record::Tombstones(vec![
            Tombstone {
                series_ref: 7,
                mint: -1,
                maxt: 300,
            },
            Tombstone {
                series_ref: 7,
                mint: i64::MIN,
                maxt: i64::MAX,
            },
        ]),
    ));

    // Type 4: base ref 3, base t 2000, then dref, dt, value, labels.
    let mut b = vec![0x04];
    b.extend([0, 0, 0, 0, 0, 0, 0, 3]);
    b.extend([0, 0, 0, 0, 0, 0, 0x07, 0xd0]); // 2000
    b.extend([0x00, 0x00]);
    b.extend([0x3f, 0xe0, 0, 0, 0, 0, 0, 0]); // 0.5
    b.extend(b"\x01\x08trace_id\x02ab"); // 1 label trace_id="ab"
    b.extend([0x02, 0x02]); // dref +1, dt +1
    b.extend([0x40, 0, 0, 0, 0, 0, 0, 0]); // 2.0
    b.push(0x00); // no labels
    cases.push((
        "exemplars",
        b,
        Record::Exemplars(vec![
            OwnedExemplar {
                series_ref: 3,
                t: 2000,
                v: 0.5,
                labels: pairs(&[("trace_id", "ab")]),
            },
            OwnedExemplar {
                series_ref: 4,
                t: 2001,
                v: 2.0,
                labels: vec![],
            },
        ]),
    ));

    // Type 5: be64 series ref, be64 chunk ref (segment 1, offset 8).
    let mut b = vec![0x05];
    b.extend([0, 0, 0, 0, 0, 0, 0, 1]);
    b.extend([0, 0, 0, 1, 0, 0, 0, 8]);
    cases.push((
        "mmapmarkers",
        b,
        Record::MmapMarkers(vec![MmapMarker {
            series_ref: 1,
            chunk_ref: 0x1_0000_0008,
        }]),
    ));

    // Type 6: uvarint ref, u8 type, uvarint nfields, fields.
    let mut b = vec![0x06];
    b.extend([0xac, 0x02]); // ref 300
    b.push(1); // counter
    b.push(2); // 2 fields
    b.extend(b"\x04UNIT\x00\x04HELP\x02hi");
    b.push(1); // ref 1
    b.push(7); // stateset
    b.push(3); // 3 fields, HELP twice and an unknown one
    b.extend(b"\x04HELP\x01a\x01X\x01y\x04HELP\x01b");
    cases.push((
        "metadata",
        b,
        Record::Metadata(vec![
            OwnedMetadata::new(300, 1, b"", b"hi"),
            OwnedMetadata {
                series_ref: 1,
                metric_type: 7,
                fields: pairs(&[("HELP", "a"), ("X", "y"), ("HELP", "b")]),
            },
        ]),
    ));

    // Type 7: V1 envelope (base ref 20, base t 5000), one integer histogram.
    let mut b = vec![0x07];
    b.extend([0, 0, 0, 0, 0, 0, 0, 20]);
    b.extend([0, 0, 0, 0, 0, 0, 0x13, 0x88]); // 5000
    b.extend([0x00, 0x00]); // dref, dt
    b.push(0); // hint unknown
    b.push(0x06); // schema 3
    b.extend([0x3f, 0xe0, 0, 0, 0, 0, 0, 0]); // zero threshold 0.5
    b.extend([0x02, 0x07]); // zero count 2, count 7
    b.extend([0x40, 0x24, 0, 0, 0, 0, 0, 0]); // sum 10.0
    b.extend([0x01, 0x01, 0x02]); // 1 positive span: offset -1, length 2
    b.push(0x00); // no negative spans
    b.extend([0x02, 0x06, 0x01]); // 2 positive buckets: 3, -1
    b.push(0x00); // no negative buckets
    let int_hist = IntHistogram {
        counter_reset_hint: 0,
        schema: 3,
        zero_threshold: 0.5,
        zero_count: 2,
        count: 7,
        sum: 10.0,
        positive_spans: vec![Span {
            offset: -1,
            length: 2,
        }],
        positive_buckets: vec![3, -1],
        ..Default::default()
    };
    cases.push((
        "histogram_samples",
        b,
        Record::Histograms {
            record_type: RecordType::HistogramSamples,
            base: None,
            samples: vec![OwnedHistogramSample {
                series_ref: 20,
                t: 5000,
                st: 0,
                body: HistogramBody::Int(int_hist.clone()),
            }],
        },
    ));

    // Type 7 whose base is not its first entry (the base histogram went to a type 9 record).
    let mut b = vec![0x07];
    b.extend([0, 0, 0, 0, 0, 0, 0, 20]);
    b.extend([0, 0, 0, 0, 0, 0, 0x13, 0x88]);
    b.extend([0x02, 0x14]); // dref +1, dt +10
    b.extend([0, 0x06, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0, 0x02, 0x07]);
    b.extend([
        0x40, 0x24, 0, 0, 0, 0, 0, 0, 0x01, 0x01, 0x02, 0x00, 0x02, 0x06, 0x01, 0x00,
    ]);
    cases.push((
        "histogram_samples, base not first",
        b,
        Record::Histograms {
            record_type: RecordType::HistogramSamples,
            base: Some((20, 5000)),
            samples: vec![OwnedHistogramSample {
                series_ref: 21,
                t: 5010,
                st: 0,
                body: HistogramBody::Int(int_hist),
            }],
        },
    ));

    // Type 8: V1 envelope, one float histogram.
    let mut b = vec![0x08];
    b.extend([0, 0, 0, 0, 0, 0, 0, 20]);
    b.extend([0, 0, 0, 0, 0, 0, 0x13, 0x88]);
    b.extend([0x00, 0x00]);
    b.push(3); // hint gauge
    b.push(0x03); // schema -2
    b.extend([0x3f, 0xe0, 0, 0, 0, 0, 0, 0]); // zero threshold 0.5
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]); // zero count 1.0
    b.extend([0x40, 0x10, 0, 0, 0, 0, 0, 0]); // count 4.0
    b.extend([0x40, 0x04, 0, 0, 0, 0, 0, 0]); // sum 2.5
    b.extend([0x01, 0x00, 0x01]); // 1 positive span: offset 0, length 1
    b.push(0x00);
    b.push(0x01); // 1 positive bucket ...
    b.extend([0x40, 0x08, 0, 0, 0, 0, 0, 0]); // ... 3.0
    b.push(0x00);
    cases.push((
        "float_histogram_samples",
        b,
        Record::Histograms {
            record_type: RecordType::FloatHistogramSamples,
            base: None,
            samples: vec![OwnedHistogramSample {
                series_ref: 20,
                t: 5000,
                st: 0,
                body: HistogramBody::Float(FloatHistogram {
                    counter_reset_hint: 3,
                    schema: -2,
                    zero_threshold: 0.5,
                    zero_count: 1.0,
                    count: 4.0,
                    sum: 2.5,
                    positive_spans: vec![Span {
                        offset: 0,
                        length: 1,
                    }],
                    positive_buckets: vec![3.0],
                    ..Default::default()
                }),
            }],
        },
    ));

    // Type 9: V1 envelope, integer histogram with custom buckets (schema -53 → custom values).
    let mut b = vec![0x09];
    b.extend([0, 0, 0, 0, 0, 0, 0, 20]);
    b.extend([0, 0, 0, 0, 0, 0, 0x13, 0x88]);
    b.extend([0x00, 0x00]);
    b.push(1); // hint reset
    b.push(0x69); // schema -53 (zigzag 105)
    b.extend([0; 8]); // zero threshold 0.0
    b.extend([0x00, 0x03]); // zero count 0, count 3
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]); // sum 1.0
    b.extend([0x01, 0x00, 0x02]); // 1 span: 0, 2
    b.push(0x00);
    b.extend([0x02, 0x02, 0x02]); // 2 buckets: 1, 1
    b.push(0x00);
    b.push(0x01); // 1 custom value ...
    b.extend([0x3f, 0xe0, 0, 0, 0, 0, 0, 0]); // ... 0.5
    cases.push((
        "custom_buckets_histogram_samples",
        b,
        Record::Histograms {
            record_type: RecordType::CustomBucketsHistogramSamples,
            base: None,
            samples: vec![OwnedHistogramSample {
                series_ref: 20,
                t: 5000,
                st: 0,
                body: HistogramBody::Int(IntHistogram {
                    counter_reset_hint: 1,
                    schema: -53,
                    count: 3,
                    sum: 1.0,
                    positive_spans: vec![Span {
                        offset: 0,
                        length: 2,
                    }],
                    positive_buckets: vec![1, 1],
                    custom_values: vec![0.5],
                    ..Default::default()
                }),
            }],
        },
    ));

    // Type 10: V1 envelope, float histogram with custom buckets.
    let mut b = vec![0x0a];
    b.extend([0, 0, 0, 0, 0, 0, 0, 20]);
    b.extend([0, 0, 0, 0, 0, 0, 0x13, 0x88]);
    b.extend([0x00, 0x00]);
    b.push(0);
    b.push(0x69); // schema -53
    b.extend([0; 8]); // zero threshold 0.0
    b.extend([0; 8]); // zero count 0.0
    b.extend([0x40, 0, 0, 0, 0, 0, 0, 0]); // count 2.0
    b.extend([0x40, 0x08, 0, 0, 0, 0, 0, 0]); // sum 3.0
    b.extend([0x01, 0x00, 0x01]);
    b.push(0x00);
    b.push(0x01);
    b.extend([0x40, 0, 0, 0, 0, 0, 0, 0]); // bucket 2.0
    b.push(0x00);
    b.push(0x02); // 2 custom values: 1.0, 2.0
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    b.extend([0x40, 0, 0, 0, 0, 0, 0, 0]);
    cases.push((
        "custom_buckets_float_histogram_samples",
        b,
        Record::Histograms {
            record_type: RecordType::CustomBucketsFloatHistogramSamples,
            base: None,
            samples: vec![OwnedHistogramSample {
                series_ref: 20,
                t: 5000,
                st: 0,
                body: HistogramBody::Float(FloatHistogram {
                    schema: -53,
                    count: 2.0,
                    sum: 3.0,
                    positive_spans: vec![Span {
                        offset: 0,
                        length: 1,
                    }],
                    positive_buckets: vec![2.0],
                    custom_values: vec![1.0, 2.0],
                    ..Default::default()
                }),
            }],
        },
    ));

    // Type 11: first sample absolute, then ref delta to previous, t delta to first, st marker.
    let mut b = vec![0x0b];
    b.extend([0xc8, 0x01, 0xd0, 0x0f, 0x88, 0x0e]); // ref 100, t 1000, st 900
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]); // 1.0
    b.extend([0x02, 0x1e, 0x01]); // ref +1, t 1000+15, st same as previous
    b.extend([0x40, 0, 0, 0, 0, 0, 0, 0]); // 2.0
    b.extend([0x03, 0x3c, 0x00]); // ref -2, t 1000+30, no st
    b.extend([0x7f, 0xf0, 0, 0, 0, 0, 0, 0x02]); // stale NaN
    b.extend([0x00, 0x5a, 0x02, 0x64]); // ref +0, t 1000+45, explicit st 900+50
    b.extend([0; 8]); // 0.0
    b.extend([0x00, 0x78, 0x01]); // ref +0, t 1000+60, st same as previous (950)
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    b.extend([0x00, 0x96, 0x01, 0x00]); // ref +0, t 1000+75, no st
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    b.extend([0x00, 0xb4, 0x01, 0x00]); // ref +0, t 1000+90, no st (not "same as previous")
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    let s = |series_ref, t, st, v| Sample {
        series_ref,
        t,
        st,
        v,
    };
    cases.push((
        "samples_v2",
        b,
        Record::SamplesV2(vec![
            s(100, 1000, 900, 1.0),
            s(101, 1015, 900, 2.0),
            s(99, 1030, 0, f64::from_bits(STALE_NAN_BITS)),
            s(99, 1045, 950, 0.0),
            s(99, 1060, 950, 1.0),
            s(99, 1075, 0, 1.0),
            s(99, 1090, 0, 1.0),
        ]),
    ));

    // Type 12: V2 heads, integer bodies of both kinds in one record.
    let mut b = vec![0x0c];
    b.extend([0x0e, 0xc8, 0x01, 0x64]); // ref 7, t 100, st 50
    b.extend([0x00, 0x00]); // hint 0, schema 0
    b.extend([0; 8]); // zero threshold 0.0
    b.extend([0x00, 0x01]); // zero count 0, count 1
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]); // sum 1.0
    b.extend([0x01, 0x00, 0x01, 0x00]); // 1 positive span (0, 1), no negative spans
    b.extend([0x01, 0x02, 0x00]); // 1 positive bucket: 1; no negative buckets
    b.extend([0x04, 0x14, 0x01]); // ref +2, t 100+10, st same (50)
    b.extend([0x02, 0x69]); // hint not-reset, schema -53
    b.extend([0; 8]);
    b.extend([0x00, 0x01]);
    b.extend([0x3f, 0xe0, 0, 0, 0, 0, 0, 0]); // sum 0.5
    b.extend([0x01, 0x00, 0x01, 0x00]);
    b.extend([0x01, 0x02, 0x00]);
    b.push(0x01); // 1 custom value: 1.0
    b.extend([0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    let one_bucket = |hint, schema, sum, custom_values| IntHistogram {
        counter_reset_hint: hint,
        schema,
        count: 1,
        sum,
        positive_spans: vec![Span {
            offset: 0,
            length: 1,
        }],
        positive_buckets: vec![1],
        custom_values,
        ..Default::default()
    };
    cases.push((
        "histogram_samples_v2",
        b,
        Record::Histograms {
            record_type: RecordType::HistogramSamplesV2,
            base: None,
            samples: vec![
                OwnedHistogramSample {
                    series_ref: 7,
                    t: 100,
                    st: 50,
                    body: HistogramBody::Int(one_bucket(0, 0, 1.0, vec![])),
                },
                OwnedHistogramSample {
                    series_ref: 9,
                    t: 110,
                    st: 50,
                    body: HistogramBody::Int(one_bucket(2, -53, 0.5, vec![1.0])),
                },
            ],
        },
    ));

    // Type 13: one float histogram with a negative t and no st.
    let mut b = vec![0x0d];
    b.extend([0x02, 0x09, 0x00]); // ref 1, t -5, st 0
    b.extend([0x00, 0x02]); // hint 0, schema 1
    b.extend([0; 32]); // zero threshold, zero count, count, sum: all 0.0
    b.extend([0x00, 0x00, 0x00, 0x00]); // no spans, no buckets
    cases.push((
        "float_histogram_samples_v2",
        b,
        Record::Histograms {
            record_type: RecordType::FloatHistogramSamplesV2,
            base: None,
            samples: vec![OwnedHistogramSample {
                series_ref: 1,
                t: -5,
                st: 0,
                body: HistogramBody::Float(FloatHistogram {
                    schema: 1,
                    ..Default::default()
                }),
            }],
        },
    ));
    cases
}

#[test]
fn hand_made_records_decode_and_encode() {
    let cases = hand_made();
    let covered: std::collections::BTreeSet<RecordType> =
        cases.iter().map(|(_, _, r)| r.record_type()).collect();
    assert_eq!(covered.len(), 13, "every type has a hand-made case");
    for (name, bytes, want) in cases {
        assert_eq!(Record::decode(&bytes).as_ref(), Ok(&want), "{name}");
        assert_eq!(encode(&want), bytes, "{name}");
        assert_eq!(seen(&bytes), expected_entries(&want), "{name}");
        assert_eq!(validate(&bytes), Ok(want.record_type()), "{name}");
    }
}

#[test]
fn metadata_unit_and_help_are_the_last_fields() {
    let (_, bytes, _) = hand_made().into_iter().find(|c| c.0 == "metadata").unwrap();
    let got = seen(&bytes);
    assert_eq!(got.len(), 2);
    let Entry::Metadata(_, unit, help) = &got[0] else {
        panic!()
    };
    assert_eq!((unit.as_slice(), help.as_slice()), (&b""[..], &b"hi"[..]));
    let Entry::Metadata(m, unit, help) = &got[1] else {
        panic!()
    };
    assert_eq!((unit.as_slice(), help.as_slice()), (&b""[..], &b"b"[..]));
    assert_eq!((m.unit(), m.help()), (&b""[..], &b"b"[..]));
}

#[test]
fn samples_v2_marker_above_two_is_explicit() {
    // Prometheus's readSTMarker: any marker other than 0 and 1 reads an st delta.
    let mut b = vec![0x0b, 0x02, 0x02, 0x0a]; // ref 1, t 1, st 5
    b.extend([0; 8]);
    b.extend([0x00, 0x02, 0xff, 0x04]); // ref +0, t 1+1, marker 255, st 5+2
    b.extend([0; 8]);
    let Ok(Record::SamplesV2(s)) = Record::decode(&b) else {
        panic!("decodes")
    };
    assert_eq!((s[1].t, s[1].st), (2, 7));
}

#[test]
fn type_byte_only_records_are_empty_for_every_type() {
    // Prometheus's decoders all return zero entries for a record of just its type byte
    // (samples/exemplars/histograms check `dec.Len() == 0`; the others loop while bytes remain).
    for t in RecordType::ALL {
        let rec = [t as u8];
        assert_eq!(Record::decode(&rec), Ok(Record::empty(t)), "{t}");
        assert_eq!(encode(&Record::empty(t)), rec, "{t}");
        assert!(seen(&rec).is_empty());
    }
}

#[test]
fn prefixes_prometheus_accepts_without_entries() {
    // V1 base present but no entries: Prometheus reads the base and finds nothing after it.
    let mut b = vec![0x02];
    b.extend([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    assert_eq!(Record::decode(&b), Ok(Record::Samples(vec![])));
    b[0] = 0x04;
    assert_eq!(Record::decode(&b), Ok(Record::Exemplars(vec![])));
    // For histograms the base is kept, so these bytes come back exactly.
    b[0] = 0x07;
    let r = Record::decode(&b).unwrap();
    assert_eq!(
        r,
        Record::Histograms {
            record_type: RecordType::HistogramSamples,
            base: Some((1, 2)),
            samples: vec![]
        }
    );
    assert_eq!(encode(&r), b);
    // A V2 histogram record with only its first head: Prometheus reads the head before its loop.
    let b = [0x0c, 0x02, 0x04, 0x00];
    assert_eq!(validate(&b), Ok(RecordType::HistogramSamplesV2));
    assert!(seen(&b).is_empty());
    // But a V2 samples record needs the value too.
    assert!(validate(&[0x0b, 0x02, 0x04, 0x00]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Errors.

fn err(rec: &[u8]) -> DecodeError {
    let e = validate(rec).expect_err("must fail");
    assert_eq!(Record::decode(rec).expect_err("must fail"), e);
    e
}

#[test]
fn empty_and_unknown_type() {
    let e = err(&[]);
    assert_eq!(e.kind, DecodeErrorKind::Empty);
    assert_eq!(e.to_string(), "decode record: empty record (no type byte)");
    for b in [0u8, 14, 0x28, 255] {
        let e = err(&[b, 1, 2, 3]);
        assert_eq!(
            e,
            DecodeError {
                record_type: None,
                offset: 0,
                entry: 0,
                kind: DecodeErrorKind::UnknownType(b)
            }
        );
    }
    assert_eq!(
        err(&[0x28]).to_string(),
        "decode record: unknown record type 40 at byte 0"
    );
}

#[test]
fn truncated_fields_are_named_with_offset_and_entry() {
    let e = err(&SPEC_SAMPLES[..20]);
    assert_eq!(
        e,
        DecodeError {
            record_type: Some(RecordType::Samples),
            offset: 19,
            entry: 0,
            kind: DecodeErrorKind::Truncated { field: "f64 value" }
        }
    );
    assert_eq!(
        e.to_string(),
        "decode samples: truncated f64 value at byte 19 of entry 0"
    );

    // Second sample cut inside its t delta: 10-byte entries start at 17, so entry 1 at 27.
    let mut b = SPEC_SAMPLES.to_vec();
    b.extend([0x00, 0x80]); // dref 0, then a varint that never ends
    let e = err(&b);
    assert_eq!((e.offset, e.entry), (28, 1));
    assert_eq!(
        e.kind,
        DecodeErrorKind::Truncated {
            field: "varint t delta"
        }
    );

    // Partial V1 base.
    let e = err(&[0x02, 0, 0, 0, 0, 0]);
    assert_eq!(
        e.kind,
        DecodeErrorKind::Truncated {
            field: "be64 base ref"
        }
    );
    assert_eq!(e.offset, 1);

    // Series cut inside a label value.
    let e = err(&SPEC_SERIES[..21]);
    assert_eq!(
        e.kind,
        DecodeErrorKind::Truncated {
            field: "label value"
        }
    );
    assert_eq!(e.offset, 19);
    assert_eq!(
        e.to_string(),
        "decode series: truncated label value at byte 19 of entry 0"
    );

    // Tombstone cut after its ref.
    let e = err(&[0x03, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        e.kind,
        DecodeErrorKind::Truncated {
            field: "varint mint"
        }
    );
}

#[test]
fn counts_larger_than_the_record_are_errors() {
    // Series with 127 labels announced and 2 bytes left.
    let e = err(&[0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0x00, 0x00]);
    assert_eq!(
        e.kind,
        DecodeErrorKind::CountTooLarge {
            field: "uvarint label count",
            count: 127
        }
    );
    assert_eq!(e.offset, 9);
    // A count of 2^63 (Go's `int(Uvarint64())` turns it negative; we refuse it).
    let mut b = vec![0x01, 0, 0, 0, 0, 0, 0, 0, 1];
    b.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert!(matches!(
        err(&b).kind,
        DecodeErrorKind::CountTooLarge { count, .. } if count == 1 << 63
    ));
    // Histogram span count far beyond the body.
    let mut b = vec![0x0d, 0x02, 0x09, 0x00, 0x00, 0x02];
    b.extend([0; 32]);
    b.extend([0xff, 0xff, 0x03]); // 65535 positive spans
    let e = err(&b);
    assert_eq!(
        e.kind,
        DecodeErrorKind::CountTooLarge {
            field: "uvarint positive span count",
            count: 65535
        }
    );
    assert_eq!(e.offset, 38);
    assert!(e
        .to_string()
        .starts_with("decode float_histogram_samples_v2: uvarint positive span count 65535"));
}

#[test]
fn varints_follow_go_binary_uvarint() {
    let ten = |last: u8| {
        let mut v = vec![0xff; 9];
        v.push(last);
        v
    };
    // Tombstone mint = u64::MAX zigzag → i64::MIN: 10 bytes, last byte 1.
    let mut b = vec![0x03, 0, 0, 0, 0, 0, 0, 0, 1];
    b.extend(ten(0x01));
    b.push(0x00);
    assert_eq!(
        Record::decode(&b),
        Ok(Record::Tombstones(vec![Tombstone {
            series_ref: 1,
            mint: i64::MIN,
            maxt: 0
        }]))
    );
    // 10th byte above 1 overflows.
    let mut b = vec![0x03, 0, 0, 0, 0, 0, 0, 0, 1];
    b.extend(ten(0x02));
    b.push(0x00);
    let e = err(&b);
    assert_eq!(
        e.kind,
        DecodeErrorKind::VarintOverflow {
            field: "varint mint"
        }
    );
    assert_eq!(e.offset, 9);
    assert_eq!(
        e.to_string(),
        "decode tombstones: varint overflow in varint mint at byte 9 of entry 0"
    );
    // Ten continuation bytes and more data: overflow; ten and the end: truncated.
    let mut b = vec![0x03, 0, 0, 0, 0, 0, 0, 0, 1];
    b.extend([0x80; 10]);
    assert_eq!(
        err(&b).kind,
        DecodeErrorKind::Truncated {
            field: "varint mint"
        }
    );
    b.push(0x00);
    assert_eq!(
        err(&b).kind,
        DecodeErrorKind::VarintOverflow {
            field: "varint mint"
        }
    );
    // Non-minimal encodings are accepted (Go does too): mint = 80 00 = 0, maxt = 81 80 00 = zigzag 1.
    let b = [0x03, 0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0x00, 0x81, 0x80, 0x00];
    assert_eq!(
        Record::decode(&b),
        Ok(Record::Tombstones(vec![Tombstone {
            series_ref: 1,
            mint: 0,
            maxt: -1
        }]))
    );
}

#[test]
fn histogram_narrowing_follows_prometheus() {
    // Schema varint -53 + 2^32: Prometheus keeps int32(-53), so custom values follow.
    let schema = -53i64 + (1i64 << 32);
    let mut b = vec![0x0c, 0x02, 0x00, 0x00, 0x00];
    let mut z = Vec::new();
    primitives::put_varint(&mut z, schema);
    b.extend(z);
    b.extend([0; 8]);
    b.extend([0x00, 0x00]);
    b.extend([0; 8]);
    b.extend([0x01, 0x00]); // 1 positive span: offset 0, length ...
    b.extend([0x81, 0x80, 0x80, 0x80, 0x10]); // ... 2^32 + 1, kept as 1
    b.extend([0x00, 0x01, 0x02, 0x00, 0x00]); // no negative spans, 1 bucket, no negative, 0 custom
    let Ok(Record::Histograms { samples, .. }) = Record::decode(&b) else {
        panic!("decodes")
    };
    let HistogramBody::Int(h) = &samples[0].body else {
        panic!()
    };
    assert_eq!(h.schema, -53);
    assert_eq!(
        h.positive_spans,
        vec![Span {
            offset: 0,
            length: 1
        }]
    );
}

#[test]
fn decode_body_rejects_trailing_bytes() {
    let (_, bytes, _) = hand_made()
        .into_iter()
        .find(|c| c.0 == "float_histogram_samples_v2")
        .unwrap();
    struct First(Option<(RecordType, Vec<u8>, i32)>);
    impl Visitor for First {
        fn histogram(&mut self, h: &HistogramSample<'_>) {
            self.0 = Some((h.record_type, h.body.to_vec(), h.schema));
        }
    }
    let mut f = First(None);
    visit(&bytes, &mut f).unwrap();
    let (record_type, mut body, schema) = f.0.unwrap();
    assert_eq!(body.len(), bytes.len() - 4); // type byte + 3-byte head
    body.push(0);
    let h = HistogramSample {
        record_type,
        series_ref: 1,
        t: 0,
        st: 0,
        is_float: true,
        schema,
        counter_reset_hint: 0,
        body: &body,
    };
    assert_eq!(
        h.decode_body().unwrap_err().kind,
        DecodeErrorKind::TrailingBytes { n: 1 }
    );
}

// ---------------------------------------------------------------------------------------------
// Real records written by Prometheus (see testdata/records/README.md for their origin and the
// independently computed counts and first entries).

macro_rules! real {
    ($name:literal) => {
        include_bytes!(concat!("../../../../testdata/records/", $name, ".bin")).as_slice()
    };
}

/// (file, type, entries) from the Python reader's independent decode.
const REAL: [(&str, &[u8], RecordType, usize); 15] = [
    ("v3h-series-5", real!("v3h-series-5"), RecordType::Series, 5),
    (
        "v3h-series-105",
        real!("v3h-series-105"),
        RecordType::Series,
        105,
    ),
    (
        "v3h-samples-155",
        real!("v3h-samples-155"),
        RecordType::Samples,
        155,
    ),
    (
        "v3h-tombstones-1",
        real!("v3h-tombstones-1"),
        RecordType::Tombstones,
        1,
    ),
    (
        "v3h-exemplars-21",
        real!("v3h-exemplars-21"),
        RecordType::Exemplars,
        21,
    ),
    (
        "v3h-metadata-105",
        real!("v3h-metadata-105"),
        RecordType::Metadata,
        105,
    ),
    (
        "v3h-histograms-15",
        real!("v3h-histograms-15"),
        RecordType::HistogramSamples,
        15,
    ),
    (
        "v3h-float-histograms-25",
        real!("v3h-float-histograms-25"),
        RecordType::FloatHistogramSamples,
        25,
    ),
    (
        "v3h-cb-histograms-5",
        real!("v3h-cb-histograms-5"),
        RecordType::CustomBucketsHistogramSamples,
        5,
    ),
    (
        "v3h-cb-float-histograms-1",
        real!("v3h-cb-float-histograms-1"),
        RecordType::CustomBucketsFloatHistogramSamples,
        1,
    ),
    (
        "v253-series-205",
        real!("v253-series-205"),
        RecordType::Series,
        205,
    ),
    (
        "v253-samples-205",
        real!("v253-samples-205"),
        RecordType::Samples,
        205,
    ),
    (
        "v3wbl-mmapmarkers-1",
        real!("v3wbl-mmapmarkers-1"),
        RecordType::MmapMarkers,
        1,
    ),
    (
        "v3ckpt-samples-2005-stale",
        real!("v3ckpt-samples-2005-stale"),
        RecordType::Samples,
        2005,
    ),
    (
        "v3wbl-histograms-8",
        real!("v3wbl-histograms-8"),
        RecordType::HistogramSamples,
        8,
    ),
];

#[test]
fn real_records_decode_to_the_independent_counts_and_reencode_exactly() {
    for (name, bytes, t, n) in REAL {
        let r = Record::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.record_type(), t, "{name}");
        assert_eq!(r.entry_count(), n, "{name}");
        assert_eq!(seen(bytes).len(), n, "{name}");
        // Our encoder writes Prometheus's bytes, byte for byte.
        assert_eq!(encode(&r), bytes, "{name}");
    }
}

/// A V1 samples record cut anywhere: the visitor has seen exactly the entries that lie wholly
/// before the cut, in order (they are handed over in batches on the fast path), then the error.
#[test]
fn cut_samples_record_shows_every_entry_before_the_cut() {
    let full = real!("v3ckpt-samples-2005-stale");
    let Record::Samples(samples) = Record::decode(full).expect("decodes") else {
        panic!("samples record")
    };
    let (base_ref, base_t) = (samples[0].series_ref, samples[0].t);
    // Entry sizes from the format: zigzag varint ref delta, zigzag varint t delta, 8-byte value.
    let varint_len = |x: i64| {
        let mut z = ((x << 1) ^ (x >> 63)) as u64;
        let mut n = 1;
        while z >= 0x80 {
            z >>= 7;
            n += 1;
        }
        n
    };
    let mut ends = Vec::new();
    let mut end = 17;
    for s in &samples {
        end += varint_len(s.series_ref.wrapping_sub(base_ref) as i64)
            + varint_len(s.t.wrapping_sub(base_t))
            + 8;
        ends.push(end);
    }
    assert_eq!(end, full.len());
    for cut in (17..full.len()).step_by(7).chain([full.len() - 1]) {
        let whole = ends.iter().take_while(|&&e| e <= cut).count();
        let mut v = Seen::default();
        let r = visit(&full[..cut], &mut v);
        assert_eq!(r.is_ok(), cut == 17 || ends.contains(&cut), "cut {cut}");
        let want: Vec<Entry> = samples[..whole]
            .iter()
            .copied()
            .map(Entry::Sample)
            .collect();
        assert_eq!(v.entries, want, "cut {cut}");
    }
}

#[test]
fn real_records_first_entries() {
    let rec = |name: &str| Record::decode(REAL.iter().find(|r| r.0 == name).unwrap().1).unwrap();
    let Record::Series(s) = rec("v3h-series-5") else {
        panic!()
    };
    assert_eq!(s[0].series_ref, 289);
    assert_eq!(
        s[0].labels,
        pairs(&[("__name__", "wal_v3_rw_hist"), ("idx", "0"), ("src", "rw")])
    );
    let Record::Series(s) = rec("v253-series-205") else {
        panic!()
    };
    assert_eq!(s[0].series_ref, 1);
    assert_eq!(
        s[0].labels,
        pairs(&[
            ("__name__", "wal_v3_metric_0"),
            ("gen", "0"),
            ("instance", "127.0.0.1:19133"),
            ("job", "wal_v3_text_0"),
            ("ns", "ns-00"),
            ("path", "/api/v1/resource/0/items"),
            ("pod", "pod-a-000000"),
        ])
    );
    let Record::Samples(s) = rec("v3h-samples-155") else {
        panic!()
    };
    assert_eq!(
        (s[0].series_ref, s[0].t, s[0].v.to_bits()),
        (126, 1795311503704, 0x4030000000000000)
    );
    let Record::Samples(s) = rec("v253-samples-205") else {
        panic!()
    };
    assert_eq!(
        (s[0].series_ref, s[0].t, s[0].v.to_bits()),
        (1, 1795311502932, 0x404f000000000000)
    );
    let Record::Samples(s) = rec("v3ckpt-samples-2005-stale") else {
        panic!()
    };
    assert_eq!(
        (s[0].series_ref, s[0].t, s[0].v.to_bits()),
        (2511, 1795311737227, 0x40a2d00000000000)
    );
    assert_eq!(
        s.iter().filter(|x| x.v.to_bits() == STALE_NAN_BITS).count(),
        1000
    );
    let Record::Tombstones(t) = rec("v3h-tombstones-1") else {
        panic!()
    };
    assert_eq!(
        t,
        vec![Tombstone {
            series_ref: 216,
            mint: 1795311503704,
            maxt: 1795311537704
        }]
    );
    let Record::Exemplars(e) = rec("v3h-exemplars-21") else {
        panic!()
    };
    assert_eq!(
        (e[0].series_ref, e[0].t, e[0].v.to_bits()),
        (106, 1795311503206, 0x3f8930be0ded288d)
    );
    let Record::Metadata(m) = rec("v3h-metadata-105") else {
        panic!()
    };
    assert_eq!(
        m[0],
        OwnedMetadata::new(1, 1, b"", b"Synthetic counter 0 for WAL corpora.")
    );
    let Record::MmapMarkers(m) = rec("v3wbl-mmapmarkers-1") else {
        panic!()
    };
    assert_eq!(
        m,
        vec![MmapMarker {
            series_ref: 206,
            chunk_ref: 0
        }]
    );
    for (name, first_ref, first_t, schemas) in [
        ("v3h-histograms-15", 106, 1795311503704, 3),
        ("v3h-float-histograms-25", 294, 1795311518027, 2),
        ("v3h-cb-histograms-5", 133, 1795311503704, -53),
        ("v3h-cb-float-histograms-1", 287, 1795311506271, -53),
        ("v3wbl-histograms-8", 246, 1795310158025, 2),
    ] {
        let Record::Histograms { samples, base, .. } = rec(name) else {
            panic!()
        };
        assert_eq!(base, None, "{name}");
        assert_eq!(
            (samples[0].series_ref, samples[0].t),
            (first_ref, first_t),
            "{name}"
        );
        assert!(samples.iter().all(|h| h.body.schema() == schemas), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Type names and log kinds.

#[test]
fn record_type_names_match_prometheus_string() {
    // record.go@v3.14.0 Type.String().
    let names = [
        "series",
        "samples",
        "tombstones",
        "exemplars",
        "mmapmarkers",
        "metadata",
        "histogram_samples",
        "float_histogram_samples",
        "custom_buckets_histogram_samples",
        "custom_buckets_float_histogram_samples",
        "samples_v2",
        "histogram_samples_v2",
        "float_histogram_samples_v2",
    ];
    for (i, (t, name)) in RecordType::ALL.iter().zip(names).enumerate() {
        assert_eq!(*t as u8 as usize, i + 1);
        assert_eq!(RecordType::from_u8(i as u8 + 1), Some(*t));
        assert_eq!(t.name(), name);
    }
    for b in [0u8, 14, 40, 255] {
        assert_eq!(RecordType::from_u8(b), None);
    }
}

#[test]
fn log_kinds_accept_what_prometheus_replays() {
    use Acceptance::{Expected as E, IgnoredByPrometheus as I, RejectedByPrometheus as R};
    // Rows: type 1..=13 then unknown; columns: WAL, checkpoint, WBL, agent. From spec 4.2, 7.5,
    // 7.6 and head_wal.go / agent/db.go @v3.14.0.
    let table = [
        (E, E, I, E), // series
        (E, E, E, E), // samples
        (E, E, I, I), // tombstones
        (E, E, I, I), // exemplars
        (I, I, E, R), // mmapmarkers
        (E, E, I, R), // metadata
        (E, E, E, E), // histogram_samples
        (E, E, E, E), // float_histogram_samples
        (E, E, E, E), // custom_buckets_histogram_samples
        (E, E, E, E), // custom_buckets_float_histogram_samples
        (E, E, E, E), // samples_v2
        (E, E, E, E), // histogram_samples_v2
        (E, E, E, E), // float_histogram_samples_v2
        (I, I, I, R), // unknown type byte or 0-byte record
    ];
    let types = RecordType::ALL.iter().copied().map(Some).chain([None]);
    for (t, (wal, ckpt, wbl, agent)) in types.zip(table) {
        assert_eq!(LogKind::Wal.accepts(t), wal, "{t:?}");
        assert_eq!(LogKind::Checkpoint.accepts(t), ckpt, "{t:?}");
        assert_eq!(LogKind::Wbl.accepts(t), wbl, "{t:?}");
        assert_eq!(LogKind::Agent.accepts(t), agent, "{t:?}");
    }
    let names: Vec<_> = [
        LogKind::Wal,
        LogKind::Wbl,
        LogKind::Checkpoint,
        LogKind::Agent,
    ]
    .iter()
    .map(|k| k.name())
    .collect();
    assert_eq!(names, ["wal", "wbl", "checkpoint", "agent"]);
}

// ---------------------------------------------------------------------------------------------
// Property tests.

mod props {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::from_bits(STALE_NAN_BITS)),
            Just(-0.0),
            any::<u64>().prop_map(f64::from_bits),
            any::<f64>(),
        ]
    }

    fn any_i64() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(0i64),
            -3i64..3,
            Just(i64::MIN),
            Just(i64::MAX),
            any::<i64>()
        ]
    }

    fn any_ref() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..4, Just(u64::MAX), any::<u64>()]
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(any::<u8>(), 0..max)
    }

    fn label_pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        vec((bytes(12), bytes(12)), 0..4)
    }

    fn sample(with_st: bool) -> impl Strategy<Value = Sample> {
        let st = if with_st {
            // Few distinct values so that "same as previous" and "none" markers occur.
            prop_oneof![Just(0i64), Just(5), Just(-7), any_i64()].boxed()
        } else {
            Just(0i64).boxed()
        };
        (any_ref(), any_i64(), st, any_f64()).prop_map(|(series_ref, t, st, v)| Sample {
            series_ref,
            t,
            st,
            v,
        })
    }

    fn spans() -> impl Strategy<Value = Vec<Span>> {
        vec(
            (any::<i32>(), any::<u32>()).prop_map(|(offset, length)| Span { offset, length }),
            0..3,
        )
    }

    fn schema() -> impl Strategy<Value = i32> {
        prop_oneof![Just(-53), -4i32..9, any::<i32>()]
    }

    fn body(is_float: bool) -> BoxedStrategy<HistogramBody> {
        let head = (
            any::<u8>(),
            schema(),
            any_f64(),
            spans(),
            spans(),
            vec(any_f64(), 0..3),
        );
        if is_float {
            (
                head,
                any_f64(),
                any_f64(),
                any_f64(),
                vec(any_f64(), 0..4),
                vec(any_f64(), 0..4),
            )
                .prop_map(|((hint, schema, zt, ps, ns, cv), zc, count, sum, pb, nb)| {
                    HistogramBody::Float(FloatHistogram {
                        counter_reset_hint: hint,
                        schema,
                        zero_threshold: zt,
                        zero_count: zc,
                        count,
                        sum,
                        positive_spans: ps,
                        negative_spans: ns,
                        positive_buckets: pb,
                        negative_buckets: nb,
                        custom_values: if schema == -53 { cv } else { vec![] },
                    })
                })
                .boxed()
        } else {
            (
                head,
                any::<u64>(),
                any::<u64>(),
                any_f64(),
                vec(any_i64(), 0..4),
                vec(any_i64(), 0..4),
            )
                .prop_map(|((hint, schema, zt, ps, ns, cv), zc, count, sum, pb, nb)| {
                    HistogramBody::Int(IntHistogram {
                        counter_reset_hint: hint,
                        schema,
                        zero_threshold: zt,
                        zero_count: zc,
                        count,
                        sum,
                        positive_spans: ps,
                        negative_spans: ns,
                        positive_buckets: pb,
                        negative_buckets: nb,
                        custom_values: if schema == -53 { cv } else { vec![] },
                    })
                })
                .boxed()
        }
    }

    fn histograms() -> impl Strategy<Value = Record> {
        let types = [
            RecordType::HistogramSamples,
            RecordType::FloatHistogramSamples,
            RecordType::CustomBucketsHistogramSamples,
            RecordType::CustomBucketsFloatHistogramSamples,
            RecordType::HistogramSamplesV2,
            RecordType::FloatHistogramSamplesV2,
        ];
        proptest::sample::select(types.to_vec()).prop_flat_map(|t| {
            let v2 = t.is_v2();
            let st = if v2 {
                prop_oneof![Just(0i64), Just(9), any_i64()].boxed()
            } else {
                Just(0i64).boxed()
            };
            let entry = (any_ref(), any_i64(), st, body(t.is_float_histogram())).prop_map(
                |(series_ref, t, st, body)| OwnedHistogramSample {
                    series_ref,
                    t,
                    st,
                    body,
                },
            );
            let base = if v2 {
                Just(None).boxed()
            } else {
                proptest::option::of((any_ref(), any_i64())).boxed()
            };
            (vec(entry, 0..4), base).prop_map(move |(samples, base)| {
                // `base` is only kept when it differs from the first sample (see Record::Histograms).
                let first = samples.first().map(|h| (h.series_ref, h.t));
                let base = base.filter(|b| Some(*b) != first);
                Record::Histograms {
                    record_type: t,
                    base,
                    samples,
                }
            })
        })
    }

    pub(super) fn any_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            vec((any_ref(), label_pairs()), 0..5).prop_map(|v| Record::Series(
                v.into_iter()
                    .map(|(series_ref, labels)| OwnedSeries { series_ref, labels })
                    .collect()
            )),
            vec(sample(false), 0..20).prop_map(Record::Samples),
            vec(sample(true), 0..20).prop_map(Record::SamplesV2),
            vec((any_ref(), any_i64(), any_i64()), 0..5).prop_map(|v| Record::Tombstones(
                v.into_iter()
                    .map(|(series_ref, mint, maxt)| Tombstone {
                        series_ref,
                        mint,
                        maxt
                    })
                    .collect()
            )),
            vec((any_ref(), any_i64(), any_f64(), label_pairs()), 0..5).prop_map(|v| {
                Record::Exemplars(
                    v.into_iter()
                        .map(|(series_ref, t, v, labels)| OwnedExemplar {
                            series_ref,
                            t,
                            v,
                            labels,
                        })
                        .collect(),
                )
            }),
            vec((any_ref(), any_ref()), 0..5).prop_map(|v| Record::MmapMarkers(
                v.into_iter()
                    .map(|(series_ref, chunk_ref)| MmapMarker {
                        series_ref,
                        chunk_ref
                    })
                    .collect()
            )),
            vec((any_ref(), any::<u8>(), label_pairs()), 0..5).prop_map(|v| Record::Metadata(
                v.into_iter()
                    .map(|(series_ref, metric_type, fields)| OwnedMetadata {
                        series_ref,
                        metric_type,
                        fields
                    })
                    .collect()
            )),
            histograms(),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(r in any_record()) {
            let bytes = encode(&r);
            prop_assert_eq!(bytes[0], r.record_type() as u8);
            prop_assert_eq!(Record::decode(&bytes), Ok(r.clone()));
            prop_assert_eq!(seen(&bytes), expected_entries(&r));
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut b in bytes(300), t in 0u8..16) {
            if let Some(first) = b.first_mut() {
                *first = t;
            }
            let v = validate(&b);
            let mut s = Seen::default();
            let w = visit(&b, &mut s);
            prop_assert_eq!(&v, &w);
            let r = Record::decode(&b);
            prop_assert_eq!(r.as_ref().err(), v.as_ref().err());
            if let Ok(r) = r {
                // Whatever decodes re-encodes to something that decodes the same.
                prop_assert_eq!(Record::decode(&encode(&r)), Ok(r));
            }
        }

        #[test]
        fn truncations_and_flips_never_panic(r in any_record(), flip in any::<(usize, u8)>()) {
            let bytes = encode(&r);
            for n in 0..bytes.len() {
                let prefix = &bytes[..n];
                match Record::decode(prefix) {
                    // A shorter valid record can only have fewer entries.
                    Ok(p) => prop_assert!(p.entry_count() <= r.entry_count()),
                    Err(e) => prop_assert!(e.offset <= n),
                }
            }
            let mut flipped = bytes.clone();
            let i = flip.0 % flipped.len();
            flipped[i] ^= flip.1;
            let _ = Record::decode(&flipped);
        }
    }
}
