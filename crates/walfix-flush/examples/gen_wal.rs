//! `cargo run --release -p walfix-flush --example gen_wal -- DATA_DIR SERIES SAMPLES [LABELS]`:
//! a synthetic WAL (walfix-format's encoder, snappy, 128 MiB segments) of SERIES series with
//! LABELS labels each (default 6, values ~12 bytes), SAMPLES samples per series 15 s apart, for
//! measuring `walfix flush` at scale. Not a Prometheus-written WAL.
use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::Compression;
use walfix_format::record::{OwnedSeries, Record, Sample};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(&a[0]).join("wal");
    let series: u64 = a[1].parse().unwrap();
    let samples: i64 = a[2].parse().unwrap();
    let labels: u64 = a.get(3).map_or(6, |x| x.parse().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let seg_size = 128 << 20;
    let mut seg = 0u64;
    let mut enc = SegmentEncoder::new();
    let mut buf = Vec::new();
    let mut put = |r: Record, enc: &mut SegmentEncoder, seg: &mut u64| {
        buf.clear();
        r.encode(&mut buf);
        let (stored, c) = walfix_format::encode::compress_record(&buf, Compression::Snappy);
        if enc.capacity(seg_size) < stored.len() {
            enc.pad_page();
            std::fs::write(dir.join(format!("{:08}", *seg)), enc.bytes()).unwrap();
            *enc = SegmentEncoder::new();
            *seg += 1;
        }
        enc.append_stored(&stored, c);
    };
    let batch = 5000u64;
    for start in (0..series).step_by(batch as usize) {
        let recs = (start..(start + batch).min(series))
            .map(|i| {
                let mut l = vec![(
                    b"__name__".to_vec(),
                    format!("metric_{}", i % 100).into_bytes(),
                )];
                for k in 1..labels {
                    l.push((
                        format!("label{k}").into_bytes(),
                        format!("value-{:06}", (i * 7919 + k) % (series / k + 1)).into_bytes(),
                    ));
                }
                l.push((b"series".to_vec(), format!("{i:08}").into_bytes()));
                l.sort();
                OwnedSeries {
                    series_ref: i + 1,
                    labels: l,
                }
            })
            .collect();
        put(Record::Series(recs), &mut enc, &mut seg);
    }
    let t0: i64 = 1_749_981_600_000;
    for k in 0..samples {
        for start in (0..series).step_by(batch as usize) {
            let recs = (start..(start + batch).min(series))
                .map(|i| Sample {
                    series_ref: i + 1,
                    t: t0 + k * 15_000,
                    st: 0,
                    v: ((k as u64 * 31 + i) % 1000) as f64,
                })
                .collect();
            put(Record::Samples(recs), &mut enc, &mut seg);
        }
    }
    std::fs::write(dir.join(format!("{seg:08}")), enc.bytes()).unwrap();
}
