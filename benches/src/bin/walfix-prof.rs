//! A tiny driver for profilers (perf, valgrind --tool=callgrind): scans segment files or a
//! generated segment with `walfix::scan::scan_segment`, N times, and prints what it found.
//!
//! ```text
//! walfix-prof gen snappy|zstd SIZE_MIB OUT_FILE    write a synthetic segment
//! walfix-prof scan frames|records N FILE...        scan each FILE N times
//! walfix-prof phases N FILE...                      time framing+CRC, snappy, decoding apart
//! walfix-prof ceiling THREADS N FILE...             best of N: decompress every record only
//! walfix-prof decoders N FILE...                    snap vs snipsnap on every snappy record
//! walfix-prof payloads OUT FILE...                  snappy payloads to OUT (u32 LE length + bytes)
//! ```
//!
//! `decoders` and `payloads` are the decoder comparison of issue 15 (BENCHMARKS.md): the same
//! records, one thread, best of N, and every output compared with snap's byte for byte.
//! `payloads` feeds benches/snappy-cpp.sh, which times Google's C++ snappy on the same bytes.
//!
//! `ceiling` is the floor under any full check: every record's payload is assembled into memory
//! first (not timed), then THREADS threads take records one at a time and only decompress them.

use std::time::Instant;

use walfix::scan::{scan_segment, Level};
use walfix_benches::{segment, SegmentSpec};
use walfix_format::record::LogKind;

fn main() {
    walfix::mmap::enable_process_wide();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    match a.as_slice() {
        ["gen", c, mib, out] => {
            let size = mib.parse::<usize>().expect("SIZE_MIB") << 20;
            let spec = match *c {
                "snappy" => SegmentSpec::snappy(size),
                "zstd" => SegmentSpec::zstd(size),
                _ => panic!("snappy or zstd"),
            };
            std::fs::write(out, segment(&spec)).expect("write");
        }
        ["scan", level, n, files @ ..] => {
            let level = match *level {
                "frames" => Level::Frames,
                "records" => Level::Records,
                _ => panic!("frames or records"),
            };
            let n: usize = n.parse().expect("N");
            for f in files {
                let data = std::fs::read(f).expect("read");
                let start = Instant::now();
                let mut records = 0;
                for _ in 0..n {
                    let s = scan_segment(&data, LogKind::Wal, level, None);
                    records = s.stats.records;
                    assert!(s.problems.is_empty(), "{:?}", s.problems.first());
                }
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{f}: {records} records, {:.1} MB/s",
                    (data.len() * n) as f64 / secs / 1e6
                );
            }
        }
        ["phases", n, files @ ..] => {
            let n: usize = n.parse().expect("N");
            for f in files {
                phases(f, n);
            }
        }
        ["ceiling", threads, n, files @ ..] => {
            ceiling(
                threads.parse().expect("THREADS"),
                n.parse().expect("N"),
                files,
            );
        }
        ["decoders", n, files @ ..] => decoders(n.parse().expect("N"), files),
        ["payloads", out, files @ ..] => {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("create"));
            let (mut count, mut output) = (0, 0);
            // FNV-1a over every output, as benches/snappy-cpp/bench.cc computes it.
            let mut hash = 0xcbf2_9ce4_8422_2325u64;
            for f in files {
                for (p, c) in payloads(&std::fs::read(f).expect("read")) {
                    if c == walfix_format::fragment::Compression::Snappy {
                        w.write_all(&(p.len() as u32).to_le_bytes()).expect("write");
                        w.write_all(&p).expect("write");
                        let d = snap::raw::Decoder::new().decompress_vec(&p).expect("snap");
                        for &b in &d {
                            hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                        }
                        output += d.len();
                        count += 1;
                    }
                }
            }
            w.flush().expect("write");
            println!("snap: {count} records -> {output} bytes, fnv {hash:016x} (written to {out})");
        }
        _ => {
            eprintln!(
                "usage: walfix-prof gen snappy|zstd SIZE_MIB OUT | scan frames|records N FILE... \
                 | phases N FILE... | ceiling THREADS N FILE... | decoders N FILE... \
                 | payloads OUT FILE..."
            );
            std::process::exit(2);
        }
    }
}

/// Times the three stages of a full check separately on one file: framing with CRC and the
/// assembly of split records; snappy decompression of every record; decoding every record.
fn phases(f: &str, n: usize) {
    use walfix_format::frames::SegmentReader;
    let data = std::fs::read(f).expect("read");
    let t = Instant::now();
    for _ in 0..n {
        let mut r = SegmentReader::new(&data);
        while r.next().is_some() {}
    }
    let frames = t.elapsed().as_secs_f64() / n as f64;
    let stored = payloads(&data);
    let mut outs: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    let t = Instant::now();
    for i in 0..n {
        for (p, c) in &stored {
            walfix_format::compression::decompress(*c, p, &mut buf).expect("decompress");
            if i == 0 {
                outs.push(buf.clone());
            }
        }
    }
    let snappy = t.elapsed().as_secs_f64() / n as f64;
    let out_bytes: usize = outs.iter().map(Vec::len).sum();
    struct Count(u64);
    impl walfix_format::record::Visitor for Count {
        fn sample(&mut self, _: &walfix_format::record::Sample) {
            self.0 += 1;
        }
    }
    let t = Instant::now();
    let mut c = Count(0);
    for _ in 0..n {
        for o in &outs {
            walfix_format::record::visit(o, &mut c).expect("decode");
        }
    }
    let decode = t.elapsed().as_secs_f64() / n as f64;
    let mb = |secs: f64, bytes: usize| bytes as f64 / secs / 1e6;
    println!(
        "{f}: frames+crc {:.1} ms ({:.0} MB/s), snappy {:.1} ms ({:.0} MB/s out), decode {:.1} ms ({:.0} MB/s, {} samples)",
        frames * 1e3,
        mb(frames, data.len()),
        snappy * 1e3,
        mb(snappy, out_bytes),
        decode * 1e3,
        mb(decode, out_bytes),
        c.0 / n as u64
    );
}

/// Decompression alone over the records of `files`, on `threads` threads, best of `n` runs.
fn ceiling(threads: usize, n: usize, files: &[&str]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let payloads: Vec<_> = files
        .iter()
        .flat_map(|f| payloads(&std::fs::read(f).expect("read")))
        .collect();
    let input: usize = payloads.iter().map(|(p, _)| p.len()).sum();
    let mut best = f64::MAX;
    let mut output = 0;
    for _ in 0..n {
        let next = AtomicUsize::new(0);
        let produced = AtomicUsize::new(0);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    let mut buf = Vec::new();
                    let mut mine = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((p, c)) = payloads.get(i) else { break };
                        walfix_format::compression::decompress(*c, p, &mut buf)
                            .expect("decompress");
                        mine += buf.len();
                    }
                    produced.fetch_add(mine, Ordering::Relaxed);
                });
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
        output = produced.into_inner();
    }
    println!(
        "ceiling --threads {threads}: {} records, {input} -> {output} bytes, best {best:.4} s, {:.2} GB/s of output",
        payloads.len(),
        output as f64 / best / 1e9
    );
}

/// snap (what walfix uses) and snipsnap on every snappy record of `files`, one thread, best
/// of `n` passes each, alternating so that drift on a shared machine hits both; each output
/// must equal snap's.
fn decoders(n: usize, files: &[&str]) {
    use walfix_format::fragment::Compression;
    let recs: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|f| payloads(&std::fs::read(f).expect("read")))
        .filter(|(_, c)| *c == Compression::Snappy)
        .map(|(p, _)| p)
        .collect();
    let input: usize = recs.iter().map(Vec::len).sum();
    let mut out = vec![0u8; 0];
    let mut want = Vec::with_capacity(recs.len());
    for r in &recs {
        want.push(snap::raw::Decoder::new().decompress_vec(r).expect("snap"));
    }
    let output: usize = want.iter().map(Vec::len).sum();
    for (r, w) in recs.iter().zip(&want) {
        let got = snipsnap::decompress(r).expect("snipsnap rejected a record snap accepts");
        assert!(got == *w, "snipsnap and snap disagree on a record");
    }
    let mut snap_best = f64::MAX;
    let mut snip_best = f64::MAX;
    for _ in 0..n {
        let t = Instant::now();
        let mut d = snap::raw::Decoder::new();
        for r in &recs {
            let len = snap::raw::decompress_len(r).expect("len");
            if out.len() < len {
                out.resize(len, 0);
            }
            std::hint::black_box(d.decompress(r, &mut out[..len]).expect("snap"));
        }
        snap_best = snap_best.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for r in &recs {
            let len = snipsnap::decompress_len(r).expect("len");
            if out.len() < len {
                out.resize(len, 0);
            }
            std::hint::black_box(
                snipsnap::decompress_into(r, &mut out[..len])
                    .expect("snipsnap")
                    .len(),
            );
        }
        snip_best = snip_best.min(t.elapsed().as_secs_f64());
    }
    let gbs = |s: f64| output as f64 / s / 1e9;
    println!(
        "decoders: {} snappy records, {input} -> {output} bytes, outputs equal; snap {snap_best:.4} s ({:.3} GB/s), \
         snipsnap {snip_best:.4} s ({:.3} GB/s): snipsnap/snap speed {:.3}x",
        recs.len(),
        gbs(snap_best),
        gbs(snip_best),
        snap_best / snip_best
    );
}

/// Every whole record's payload (split records assembled) and its compression.
fn payloads(data: &[u8]) -> Vec<(Vec<u8>, walfix_format::fragment::Compression)> {
    use walfix_format::frames::{Event, SegmentReader};
    let mut out = Vec::new();
    let mut r = SegmentReader::new(data);
    while let Some(ev) = r.next() {
        if let Event::Record(rec) = ev {
            out.push((rec.payload.to_vec(), rec.compression));
        }
    }
    out
}
