//! Inputs for walfix's benchmarks: a seeded generator of Prometheus-like segments, built with the
//! project's own encoder ([`walfix_format::encode::SegmentEncoder`] and
//! [`walfix_format::record::Record::encode`]), and access to the real segments in
//! `testdata/corpora/`.
//!
//! The generator mimics what Prometheus's head appender writes for a scrape-driven workload: one
//! series record per batch of new series, then, per scrape, float samples records of
//! 1000-5000 samples with one timestamp, refs in increasing order, counters (integer values that
//! grow) and gauges (arbitrary floats), and now and then a staleness marker.

use std::path::{Path, PathBuf};

use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::Compression;
use walfix_format::frames::{RecordEvent, RecordReader};
use walfix_format::record::{
    HistogramBody, IntHistogram, MmapMarker, OwnedExemplar, OwnedHistogramSample, OwnedMetadata,
    OwnedSeries, Record, RecordType, Sample, Span, Tombstone, STALE_NAN_BITS,
};

/// A small, fast, seeded generator (SplitMix64): same seed, same bytes, on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What [`segment`] generates.
#[derive(Clone, Debug)]
pub struct SegmentSpec {
    /// Seed of the generator.
    pub seed: u64,
    /// Bytes to fill (the segment is cut before the record that would not fit, as Prometheus does).
    pub size: usize,
    /// Series scraped (refs 1..=series).
    pub series: u64,
    /// Compression asked for (records that do not shrink are stored uncompressed, as Prometheus does).
    pub compression: Compression,
}

impl SegmentSpec {
    /// 200k series, snappy (Prometheus 3.x's default).
    pub fn snappy(size: usize) -> SegmentSpec {
        SegmentSpec {
            seed: 0x5EED,
            size,
            series: 200_000,
            compression: Compression::Snappy,
        }
    }

    /// Same workload, zstd.
    pub fn zstd(size: usize) -> SegmentSpec {
        SegmentSpec {
            compression: Compression::Zstd,
            ..SegmentSpec::snappy(size)
        }
    }

    /// A short name for benchmark ids: `synthetic-snappy-32MiB`.
    pub fn name(&self) -> String {
        format!(
            "synthetic-{}-{}",
            self.compression.name(),
            human_size(self.size as u64)
        )
    }
}

/// `32MiB`, `512KiB`, `17B`: sizes in benchmark ids.
pub fn human_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 20 {
        format!("{:.1}MiB", n as f64 / (1 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{}KiB", n >> 10)
    } else {
        format!("{n}B")
    }
}

/// The labels of series `r` (Prometheus writes them sorted by name).
pub fn series_labels(r: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let family = r % 20;
    let name = format!(
        "bench_{}_{:02}{}",
        ["requests", "bytes", "temperature", "errors", "queue"][(family % 5) as usize],
        family,
        if family % 3 != 2 { "_total" } else { "" }
    );
    let pairs = [
        ("__name__", name),
        ("container", format!("c{}", r % 4)),
        ("idx", r.to_string()),
        ("instance", "127.0.0.1:9100".to_string()),
        ("job", "bench".to_string()),
        ("namespace", format!("ns-{:02}", r % 37)),
        ("pod", format!("pod-{:05}", r / 10)),
    ];
    pairs
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// A series record for refs `from..to`.
pub fn series_record(from: u64, to: u64) -> Record {
    Record::Series(
        (from..to)
            .map(|r| OwnedSeries {
                series_ref: r,
                labels: series_labels(r),
            })
            .collect(),
    )
}

/// One scrape's samples for refs `from..to` at time `t`.
pub fn samples_record(rng: &mut Rng, from: u64, to: u64, t: i64, scrape: u64) -> Record {
    Record::Samples(
        (from..to)
            .map(|r| {
                let v = if rng.range(0, 10_000) == 0 {
                    f64::from_bits(STALE_NAN_BITS)
                } else if r % 3 != 2 {
                    // Counter: a per-series base and rate, growing each scrape.
                    let base = (r.wrapping_mul(0x9E37_79B9) % 1_000_000_000) as f64;
                    base + (r % 5000) as f64 * scrape as f64
                } else {
                    // Gauge: some value with a fractional part.
                    (rng.unit() * 1000.0 * 1000.0).round() / 1000.0
                };
                Sample {
                    series_ref: r,
                    t,
                    st: 0,
                    v,
                }
            })
            .collect(),
    )
}

/// Builds one segment of about `spec.size` bytes: series records for every series first (in
/// batches, as the first scrape creates them), then scrapes of samples records of 1000-5000
/// samples each, until the next record would not fit.
pub fn segment(spec: &SegmentSpec) -> Vec<u8> {
    let mut rng = Rng::new(spec.seed);
    let mut enc = SegmentEncoder::new();
    let mut buf = Vec::new();
    let mut put = |enc: &mut SegmentEncoder, rec: &Record| -> bool {
        buf.clear();
        rec.encode(&mut buf);
        if enc.capacity(spec.size) < buf.len() + 8192 {
            return false;
        }
        enc.append(&buf, spec.compression);
        true
    };
    let mut r = 1;
    while r <= spec.series {
        let to = (r + rng.range(1000, 5000)).min(spec.series + 1);
        if !put(&mut enc, &series_record(r, to)) {
            return enc.into_bytes();
        }
        r = to;
    }
    let mut t: i64 = 1_763_780_000_000;
    for scrape in 0.. {
        let mut r = 1;
        while r <= spec.series {
            let to = (r + rng.range(1000, 5000)).min(spec.series + 1);
            let jitter = rng.range(0, 3) as i64;
            if !put(
                &mut enc,
                &samples_record(&mut rng, r, to, t + jitter, scrape),
            ) {
                return enc.into_bytes();
            }
            r = to;
        }
        t += 1000;
    }
    unreachable!()
}

/// One record of each kind the checker decodes, as Prometheus would encode it (type byte first),
/// each with about `entries` entries: (name, bytes). Samples come from [`samples_record`], series
/// from [`series_record`]; the others are plausible values of their types.
pub fn records_by_type(seed: u64, entries: u64) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    let t0: i64 = 1_763_780_000_000;
    let refs = 1..1 + entries;
    let samples = match samples_record(&mut rng, 1, 1 + entries, t0, 7) {
        Record::Samples(s) => s,
        _ => unreachable!(),
    };
    let samples_v2: Vec<Sample> = samples
        .iter()
        .map(|s| Sample {
            st: t0 - 60_000,
            ..*s
        })
        .collect();
    let histogram = |rng: &mut Rng| {
        let n = rng.range(8, 24) as usize;
        HistogramBody::Int(IntHistogram {
            counter_reset_hint: 0,
            schema: 3,
            zero_threshold: 1e-128,
            zero_count: rng.range(0, 10),
            count: rng.range(100, 100_000),
            sum: rng.unit() * 1e6,
            positive_spans: vec![
                Span {
                    offset: 2,
                    length: (n / 2) as u32,
                },
                Span {
                    offset: 3,
                    length: (n - n / 2) as u32,
                },
            ],
            negative_spans: vec![],
            positive_buckets: (0..n).map(|_| rng.range(0, 200) as i64 - 100).collect(),
            negative_buckets: vec![],
            custom_values: vec![],
        })
    };
    let recs = vec![
        ("series", series_record(1, 1 + entries)),
        ("samples", Record::Samples(samples)),
        ("samples_v2", Record::SamplesV2(samples_v2)),
        (
            "tombstones",
            Record::Tombstones(
                refs.clone()
                    .map(|r| Tombstone {
                        series_ref: r,
                        mint: t0,
                        maxt: t0 + 3_600_000,
                    })
                    .collect(),
            ),
        ),
        (
            "exemplars",
            Record::Exemplars(
                refs.clone()
                    .map(|r| OwnedExemplar {
                        series_ref: r,
                        t: t0 + (r % 1000) as i64,
                        v: rng.unit(),
                        labels: vec![(
                            b"trace_id".to_vec(),
                            format!("{:032x}", rng.next_u64()).into_bytes(),
                        )],
                    })
                    .collect(),
            ),
        ),
        (
            "mmap_markers",
            Record::MmapMarkers(
                refs.clone()
                    .map(|r| MmapMarker {
                        series_ref: r,
                        chunk_ref: (r << 32) | 8,
                    })
                    .collect(),
            ),
        ),
        (
            "metadata",
            Record::Metadata(
                refs.clone()
                    .map(|r| {
                        OwnedMetadata::new(
                            r,
                            (r % 3) as u8 + 1,
                            b"seconds",
                            b"synthetic metric for walfix benchmarks",
                        )
                    })
                    .collect(),
            ),
        ),
        (
            "histograms",
            Record::Histograms {
                record_type: RecordType::HistogramSamples,
                base: None,
                samples: refs
                    .map(|r| OwnedHistogramSample {
                        series_ref: r,
                        t: t0,
                        st: 0,
                        body: histogram(&mut rng),
                    })
                    .collect(),
            },
        ),
    ];
    recs.into_iter()
        .map(|(n, r)| {
            let mut b = Vec::new();
            r.encode(&mut b);
            (n, b)
        })
        .collect()
}

/// The records of a segment as stored (payload, compression), for decompression benchmarks.
pub fn stored_payloads(seg: &[u8]) -> Vec<(Compression, Vec<u8>)> {
    let mut r = walfix_format::frames::SegmentReader::new(seg);
    let mut out = Vec::new();
    while let Some(ev) = r.next() {
        if let walfix_format::frames::Event::Record(rec) = ev {
            out.push((rec.compression, rec.payload.to_vec()));
        }
    }
    out
}

/// The decompressed records of a segment (type byte first).
pub fn decoded_records(seg: &[u8]) -> Vec<Vec<u8>> {
    let mut r = RecordReader::new(seg);
    let mut out = Vec::new();
    while let Some(ev) = r.next() {
        if let RecordEvent::Record(rec) = ev {
            out.push(rec.data.to_vec());
        }
    }
    out
}

/// The workspace's `testdata/corpora/` directory.
pub fn corpora_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/corpora")
}

/// Real segments written by Prometheus, used as benchmark inputs: (name, bytes).
/// `v3-snappy-small/00000000` (3.5, snappy), `v3-killed-zstd/00000000` (3.5, zstd, 10 MiB),
/// `killed-bigrecords/00000000` (2.42, multi-page records). Missing files are skipped.
pub fn real_segments() -> Vec<(String, Vec<u8>)> {
    let picks = [
        ("v3-snappy-small", "00000000"),
        ("v3-killed-zstd", "00000000"),
        ("killed-bigrecords", "00000000"),
    ];
    picks
        .iter()
        .filter_map(|(corpus, seg)| {
            let p = corpora_dir().join(corpus).join("wal").join(seg);
            let bytes = std::fs::read(&p).ok()?;
            Some((
                format!("{corpus}-{seg}-{}", human_size(bytes.len() as u64)),
                bytes,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use walfix_format::record::validate;

    #[test]
    fn records_by_type_decode_back() {
        for (name, rec) in records_by_type(1, 50) {
            let decoded = Record::decode(&rec).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(decoded.entry_count(), 50, "{name}");
        }
    }

    #[test]
    fn generated_segment_is_clean_and_deterministic() {
        let spec = SegmentSpec {
            series: 5000,
            ..SegmentSpec::snappy(4 << 20)
        };
        let a = segment(&spec);
        assert_eq!(a, segment(&spec));
        assert!(a.len() <= 4 << 20 && a.len() > 3 << 20, "{}", a.len());
        let mut r = RecordReader::new(&a);
        let mut n = 0;
        while let Some(ev) = r.next() {
            match ev {
                RecordEvent::Record(rec) => {
                    validate(rec.data).unwrap();
                    n += 1;
                }
                RecordEvent::Problem(p) => panic!("{p:?}"),
            }
        }
        assert!(n > 100);
    }
}
