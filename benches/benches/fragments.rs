//! Fragment scan only (`SegmentReader`): pages, headers, CRC-32C, record assembly; no
//! decompression. Throughput is segment bytes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use walfix_benches::{real_segments, segment, SegmentSpec};
use walfix_format::frames::{Event, SegmentReader};

fn fragments(c: &mut Criterion) {
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
    let mut g = c.benchmark_group("fragments");
    for (name, data) in &inputs {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(BenchmarkId::new("segment_reader", name), data, |b, d| {
            b.iter(|| {
                let mut r = SegmentReader::new(d);
                let mut n = 0usize;
                while let Some(ev) = r.next() {
                    if let Event::Record(rec) = ev {
                        n += rec.payload.len();
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
    config = Criterion::default().sample_size(30);
    targets = fragments
}
criterion_main!(benches);
