//! `scan_time PATH [THREADS] [RUNS]`: times the scan of `walfix estimate` alone (no model, no
//! output) and prints the fnv64 of its inputs' JSON, for profiling and for comparing builds.

use std::time::Instant;

use walfix_estimate::model::{Family, ModelOptions};
use walfix_estimate::{scan, scan_options, ReadOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: scan_time PATH [THREADS] [RUNS]");
        std::process::exit(2);
    };
    let threads = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    walfix::mmap::enable_process_wide();
    let opts = ModelOptions::new(Family::V3_5, 2);
    let mut so = scan_options(&opts, ReadOptions::default());
    so.threads = threads;
    for _ in 0..runs {
        let t0 = Instant::now();
        let inputs = match scan::scan_path(path.as_ref(), &so) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("scan_time: {e}");
                std::process::exit(3);
            }
        };
        let dt = t0.elapsed().as_secs_f64();
        let mut v = serde_json::to_value(&inputs).unwrap();
        v["estimator_table_bytes"] = 0.into();
        let h = v
            .to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
                (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3)
            });
        println!(
            "scan {dt:.3} s, {} series, {} samples, inputs fnv64 {h:016x}",
            inputs.series, inputs.float_samples
        );
    }
}
