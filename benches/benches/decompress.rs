//! Decompression of whole records into a reused buffer, as the reader does it: walfix's
//! `compression::decompress` against the codec crates called directly. Throughput is
//! *decompressed* bytes (the ceiling of a full check is the codec's output rate).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use walfix_benches::{real_segments, segment, stored_payloads, SegmentSpec};
use walfix_format::compression::decompress;
use walfix_format::fragment::Compression;

fn inputs() -> Vec<(String, Compression, Vec<Vec<u8>>, u64)> {
    let mut segs = vec![
        (
            SegmentSpec::snappy(16 << 20).name(),
            segment(&SegmentSpec::snappy(16 << 20)),
        ),
        (
            SegmentSpec::zstd(16 << 20).name(),
            segment(&SegmentSpec::zstd(16 << 20)),
        ),
    ];
    segs.extend(real_segments());
    let mut out = Vec::new();
    for (name, seg) in segs {
        for c in [Compression::Snappy, Compression::Zstd] {
            let payloads: Vec<Vec<u8>> = stored_payloads(&seg)
                .into_iter()
                .filter(|(pc, _)| *pc == c)
                .map(|(_, p)| p)
                .collect();
            if payloads.len() < 3 {
                continue;
            }
            let mut buf = Vec::new();
            let total: u64 = payloads
                .iter()
                .map(|p| {
                    decompress(c, p, &mut buf).unwrap();
                    buf.len() as u64
                })
                .sum();
            out.push((format!("{name}-{}rec", payloads.len()), c, payloads, total));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decompress");
    for (name, comp, payloads, total) in inputs() {
        g.throughput(Throughput::Bytes(total));
        g.bench_with_input(
            BenchmarkId::new(format!("walfix-{}", comp.name()), &name),
            &payloads,
            |b, ps| {
                let mut buf = Vec::new();
                b.iter(|| {
                    for p in ps {
                        decompress(comp, p, &mut buf).unwrap();
                        black_box(&buf);
                    }
                })
            },
        );
        match comp {
            Compression::Snappy => {
                g.bench_with_input(BenchmarkId::new("snap-raw", &name), &payloads, |b, ps| {
                    let mut buf = vec![0u8; 1 << 24];
                    let mut d = snap::raw::Decoder::new();
                    b.iter(|| {
                        for p in ps {
                            black_box(d.decompress(p, &mut buf).unwrap());
                        }
                    })
                });
            }
            Compression::Zstd => {
                g.bench_with_input(BenchmarkId::new("zstd-bulk", &name), &payloads, |b, ps| {
                    let mut buf = vec![0u8; 1 << 24];
                    let mut d = zstd::bulk::Decompressor::new().unwrap();
                    b.iter(|| {
                        for p in ps {
                            black_box(d.decompress_to_buffer(p, &mut buf[..]).unwrap());
                        }
                    })
                });
            }
            Compression::None => {}
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
