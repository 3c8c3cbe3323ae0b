//! Record decoding per type with `record::visit`: a visitor that touches every entry (as the
//! checker's does), and `validate` (a visitor that does nothing). Throughput is record bytes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use walfix_benches::{decoded_records, human_size, records_by_type, segment, SegmentSpec};
use walfix_format::record::{
    validate, visit, Exemplar, HistogramSample, Metadata, MmapMarker, Sample, Series, Tombstone,
    Visitor,
};

#[derive(Default)]
struct Touch(u64);

impl Visitor for Touch {
    fn series(&mut self, s: &Series<'_>) {
        self.0 = self.0.wrapping_add(s.series_ref ^ s.labels.len() as u64);
    }
    fn sample(&mut self, s: &Sample) {
        self.0 = self
            .0
            .wrapping_add(s.series_ref ^ s.t as u64 ^ s.v.to_bits());
    }
    fn tombstone(&mut self, t: &Tombstone) {
        self.0 = self.0.wrapping_add(t.series_ref ^ t.maxt as u64);
    }
    fn exemplar(&mut self, e: &Exemplar<'_>) {
        self.0 = self.0.wrapping_add(e.series_ref ^ e.t as u64);
    }
    fn mmap_marker(&mut self, m: &MmapMarker) {
        self.0 = self.0.wrapping_add(m.series_ref ^ m.chunk_ref);
    }
    fn metadata(&mut self, m: &Metadata<'_>) {
        self.0 = self.0.wrapping_add(m.series_ref ^ m.help.len() as u64);
    }
    fn histogram(&mut self, h: &HistogramSample<'_>) {
        self.0 = self
            .0
            .wrapping_add(h.series_ref ^ h.t as u64 ^ h.body.len() as u64);
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("visit");
    for (name, rec) in records_by_type(11, 3000) {
        let id = format!("{name}-3000-{}", human_size(rec.len() as u64));
        g.throughput(Throughput::Bytes(rec.len() as u64));
        g.bench_with_input(BenchmarkId::new("touch", &id), &rec, |b, r| {
            b.iter(|| {
                let mut v = Touch::default();
                visit(black_box(r), &mut v).unwrap();
                black_box(v.0)
            })
        });
        g.bench_with_input(BenchmarkId::new("validate", &id), &rec, |b, r| {
            b.iter(|| validate(black_box(r)).unwrap())
        });
    }
    // All records of a synthetic segment, decompressed: the mix a check decodes.
    let recs = decoded_records(&segment(&SegmentSpec::snappy(16 << 20)));
    let total: u64 = recs.iter().map(|r| r.len() as u64).sum();
    g.throughput(Throughput::Bytes(total));
    g.bench_with_input(
        BenchmarkId::new("touch", format!("synthetic-mix-{}", human_size(total))),
        &recs,
        |b, rs| {
            b.iter(|| {
                let mut v = Touch::default();
                for r in rs {
                    visit(r, &mut v).unwrap();
                }
                black_box(v.0)
            })
        },
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
