//! A whole segment as `walfix check` scans it (`walfix::scan::scan_segment`), at both levels,
//! plus `RecordReader` alone (frames + decompression, no decoding). Throughput is segment bytes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use walfix::scan::{scan_segment, Level};
use walfix_benches::{real_segments, segment, SegmentSpec};
use walfix_format::frames::{RecordEvent, RecordReader};
use walfix_format::record::LogKind;

fn bench(c: &mut Criterion) {
    // As the walfix binary does: mapped segments with the SIGBUS guard.
    walfix::mmap::enable_process_wide();
    let mut inputs = vec![
        (
            SegmentSpec::snappy(32 << 20).name(),
            segment(&SegmentSpec::snappy(32 << 20)),
        ),
        (
            SegmentSpec::zstd(32 << 20).name(),
            segment(&SegmentSpec::zstd(32 << 20)),
        ),
    ];
    inputs.extend(real_segments());
    let mut g = c.benchmark_group("scan_segment");
    for (name, data) in &inputs {
        g.throughput(Throughput::Bytes(data.len() as u64));
        for (lname, level) in [("frames", Level::Frames), ("records", Level::Records)] {
            g.bench_with_input(BenchmarkId::new(lname, name), data, |b, d| {
                b.iter(|| {
                    let s = scan_segment(d, LogKind::Wal, level, None);
                    black_box(s.stats.records)
                })
            });
        }
        g.bench_with_input(BenchmarkId::new("record_reader", name), data, |b, d| {
            b.iter(|| {
                let mut r = RecordReader::new(d);
                let mut n = 0usize;
                while let Some(ev) = r.next() {
                    if let RecordEvent::Record(rec) = ev {
                        n += rec.data.len();
                    }
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
