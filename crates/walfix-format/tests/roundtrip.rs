//! Property tests over whole segments: records of every type, encoded, compressed and framed into
//! pages by our encoder, read back identical; and any single flipped byte is either reported or
//! leaves every decoded record identical, never silently different.

use proptest::prelude::*;
use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::Compression;
use walfix_format::frames::{RecordEvent, RecordReader};
use walfix_format::record::{
    HistogramBody, IntHistogram, MmapMarker, OwnedExemplar, OwnedHistogramSample, OwnedMetadata,
    OwnedSeries, Record, RecordType, Sample, Span, Tombstone,
};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn labels() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    prop::collection::vec((bytes(12), bytes(40)), 0..6)
}

fn sample(v2: bool) -> impl Strategy<Value = Sample> {
    (
        0u64..1 << 40,
        -1i64 << 45..1i64 << 45,
        any::<f64>(),
        0i64..1 << 40,
    )
        .prop_map(move |(r, t, v, st)| Sample {
            series_ref: r,
            t,
            st: if v2 { st } else { 0 },
            v,
        })
}

fn int_histogram() -> impl Strategy<Value = HistogramBody> {
    (
        0u8..4,
        -4i32..9,
        0u64..1000,
        0u64..100_000,
        prop::collection::vec((-5i32..5, 0u32..4), 0..3),
        prop::collection::vec(-50i64..50, 0..6),
    )
        .prop_map(|(hint, schema, zc, count, spans, buckets)| {
            HistogramBody::Int(IntHistogram {
                counter_reset_hint: hint,
                schema,
                zero_threshold: 1e-128,
                zero_count: zc,
                count,
                sum: count as f64 * 1.5,
                positive_spans: spans
                    .iter()
                    .map(|&(offset, length)| Span { offset, length })
                    .collect(),
                negative_spans: Vec::new(),
                positive_buckets: buckets,
                negative_buckets: Vec::new(),
                custom_values: Vec::new(),
            })
        })
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        prop::collection::vec(
            (any::<u64>(), labels())
                .prop_map(|(series_ref, labels)| OwnedSeries { series_ref, labels }),
            0..20
        )
        .prop_map(Record::Series),
        prop::collection::vec(sample(false), 0..300).prop_map(Record::Samples),
        prop::collection::vec(sample(true), 0..300).prop_map(Record::SamplesV2),
        prop::collection::vec(
            (any::<u64>(), any::<i64>(), any::<i64>()).prop_map(|(series_ref, mint, maxt)| {
                Tombstone {
                    series_ref,
                    mint,
                    maxt,
                }
            }),
            0..10
        )
        .prop_map(Record::Tombstones),
        prop::collection::vec(
            (
                0u64..1 << 40,
                -1i64 << 45..1i64 << 45,
                any::<f64>(),
                labels()
            )
                .prop_map(|(series_ref, t, v, labels)| OwnedExemplar {
                    series_ref,
                    t,
                    v,
                    labels
                }),
            1..10
        )
        .prop_map(Record::Exemplars),
        prop::collection::vec(
            (any::<u64>(), any::<u64>()).prop_map(|(series_ref, chunk_ref)| MmapMarker {
                series_ref,
                chunk_ref
            }),
            0..10
        )
        .prop_map(Record::MmapMarkers),
        prop::collection::vec(
            (any::<u64>(), 0u8..8, bytes(10), bytes(60))
                .prop_map(|(r, t, unit, help)| OwnedMetadata::new(r, t, &unit, &help)),
            0..10
        )
        .prop_map(Record::Metadata),
        prop::collection::vec(
            (0u64..1 << 40, -1i64 << 45..1i64 << 45, int_histogram()).prop_map(
                |(series_ref, t, body)| OwnedHistogramSample {
                    series_ref,
                    t,
                    st: 0,
                    body
                }
            ),
            1..8
        )
        .prop_map(|samples| Record::Histograms {
            record_type: RecordType::HistogramSamples,
            base: None,
            samples
        }),
        // A record bigger than a page, so that it is split into first/middle/last fragments.
        (any::<u64>(), 40_000usize..100_000).prop_map(|(r, n)| Record::Series(vec![OwnedSeries {
            series_ref: r,
            labels: vec![(b"big".to_vec(), vec![b'x'; n])],
        }])),
    ]
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Snappy),
        Just(Compression::Zstd)
    ]
}

fn build(recs: &[(Record, Compression)]) -> Vec<u8> {
    let mut enc = SegmentEncoder::new();
    let mut buf = Vec::new();
    for (r, c) in recs {
        buf.clear();
        r.encode(&mut buf);
        enc.append(&buf, *c);
    }
    enc.into_bytes()
}

/// Decoded records and whether any problem (error or warning) or decode failure was reported.
fn read(seg: &[u8]) -> (Vec<Record>, bool) {
    let mut out = Vec::new();
    let mut reported = false;
    let mut r = RecordReader::new(seg);
    while let Some(ev) = r.next() {
        match ev {
            RecordEvent::Record(rec) => match Record::decode(rec.data) {
                Ok(d) => out.push(d),
                Err(_) => reported = true,
            },
            RecordEvent::Problem(_) => reported = true,
        }
    }
    (out, reported)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn records_round_trip_through_pages(recs in prop::collection::vec((record(), compression()), 0..12)) {
        let seg = build(&recs);
        let (back, reported) = read(&seg);
        prop_assert!(!reported);
        let want: Vec<Record> = recs.into_iter().map(|(r, _)| r).collect();
        prop_assert_eq!(back, want);
    }

    #[test]
    fn a_flipped_byte_is_reported_or_harmless(
        recs in prop::collection::vec((record(), compression()), 1..8),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut seg = build(&recs);
        let i = at.index(seg.len());
        seg[i] ^= mask;
        let (back, reported) = read(&seg);
        let want: Vec<Record> = recs.into_iter().map(|(r, _)| r).collect();
        prop_assert!(reported || back == want, "byte {} ^ {:#04x}: silently different records", i, mask);
    }
}
