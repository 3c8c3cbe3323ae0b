//! CRC-32C as the reader uses it: one call per fragment payload (up to a page), and over
//! "bytes + virtual zeros" for torn tails. Throughput is input bytes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use walfix_benches::{human_size, Rng};
use walfix_format::crc::{crc32c, crc32c_with_zeros};

fn crc(c: &mut Criterion) {
    let mut rng = Rng::new(7);
    let data: Vec<u8> = (0..(1 << 20)).map(|_| rng.next_u64() as u8).collect();
    let mut g = c.benchmark_group("crc32c");
    for size in [256usize, 4096, 32 * 1024 - 7, 1 << 20] {
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("walfix", human_size(size as u64)),
            &data[..size],
            |b, d| b.iter(|| crc32c(black_box(d))),
        );
        g.bench_with_input(
            BenchmarkId::new("crc32c-crate", human_size(size as u64)),
            &data[..size],
            |b, d| b.iter(|| crc32c::crc32c(black_box(d))),
        );
    }
    // A torn tail: 1 KiB of data, then the rest of the page as virtual zeros.
    let zeros = 32 * 1024 - 7 - 1024;
    g.throughput(Throughput::Bytes((1024 + zeros) as u64));
    g.bench_function(BenchmarkId::new("with_zeros", "1KiB+31KiB"), |b| {
        b.iter(|| crc32c_with_zeros(black_box(&data[..1024]), black_box(zeros)))
    });
    g.finish();
}

criterion_group!(benches, crc);
criterion_main!(benches);
