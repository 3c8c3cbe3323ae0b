//! A tiny driver for profilers (perf, valgrind --tool=callgrind): scans segment files or a
//! generated segment with `walfix::scan::scan_segment`, N times, and prints what it found.
//!
//! ```text
//! walfix-prof gen snappy|zstd SIZE_MIB OUT_FILE    write a synthetic segment
//! walfix-prof scan frames|records N FILE...        scan each FILE N times
//! ```

use std::time::Instant;

use walfix::scan::{scan_segment, Level};
use walfix_benches::{segment, SegmentSpec};
use walfix_format::record::LogKind;

fn main() {
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
        _ => {
            eprintln!(
                "usage: walfix-prof gen snappy|zstd SIZE_MIB OUT | scan frames|records N FILE..."
            );
            std::process::exit(2);
        }
    }
}
