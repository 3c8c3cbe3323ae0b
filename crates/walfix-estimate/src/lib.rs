//! How much memory will Prometheus need to replay this WAL, and will it fit?
//!
//! Prometheus's replay recreates every series of the WAL and its checkpoint, dead ones included,
//! and the head keeps them until they age out (up to 3 hours), so pod churn decides its memory
//! more than the number of active series. This crate reads the logs once, in replay order, with
//! `walfix`'s reader ([`scan`]), and feeds what it found to a model of Prometheus's head and of
//! the Go garbage collector ([`model`]), per version family. The model's structure comes from the
//! sources of Prometheus and Go; its few measured constants come from real Prometheus 2.42, 2.53
//! and 3.5 replaying WALs of 10k to 200k series (`testdata/memory/`). `docs/estimate-model.md`
//! writes every term down.
//!
//! ```no_run
//! use walfix_estimate::{estimate_path, model::{Family, ModelOptions}, Verdict};
//!
//! let opts = ModelOptions::new(Family::V3_5, 4);
//! let report = estimate_path(std::path::Path::new("/prometheus"), &opts, Default::default())?;
//! println!("replay peak RSS: {} bytes", report.estimate.replay_peak_rss_bytes);
//! let fit = report.verdict(Some(2 << 30));
//! assert!(matches!(fit.verdict, Verdict::Fits | Verdict::Tight | Verdict::WillOom));
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod golang;
pub mod limit;
pub mod model;
mod read;
pub mod report;
pub mod scan;
pub mod table;
pub mod xor;

use std::io;
use std::path::Path;

use serde::Serialize;
use walfix::layout::WalFlavor;

pub use limit::{detect_memory_limit, MemoryLimit};
pub use model::{Estimate, Family, LabelLayout, ModelOptions};
pub use report::{Fit, Verdict};
pub use scan::Inputs;

/// How to read the logs (everything but the model).
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Server or agent WAL.
    pub flavor: WalFlavor,
    /// Warm-up in ms (default: twice the scrape interval, 30 s to 5 min).
    pub warmup_ms: Option<i64>,
    /// Told the bytes of each segment once it is applied (for a progress bar).
    pub progress: walfix::Progress,
}

/// Inputs and the estimate made from them.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What the WAL holds.
    pub inputs: Inputs,
    /// The model's answer.
    pub estimate: Estimate,
}

/// Scan options matching a model: the family decides how chunks are cut.
pub fn scan_options(opts: &ModelOptions, read: ReadOptions) -> scan::ScanOptions {
    scan::ScanOptions {
        flavor: read.flavor,
        rules: opts.family.params().rules,
        warmup_ms: read.warmup_ms,
        lookback_ms: 5 * 60 * 1000,
        window_bytes: scan::DEFAULT_WINDOW,
        threads: 0,
        progress: read.progress,
    }
}

/// Reads the logs under `path` and estimates.
pub fn estimate_path(path: &Path, opts: &ModelOptions, read: ReadOptions) -> io::Result<Report> {
    let inputs = scan::scan_path(path, &scan_options(opts, read))?;
    let estimate = model::estimate(&inputs, opts);
    Ok(Report { inputs, estimate })
}

impl Report {
    /// Verdict against a memory limit in bytes (`None`: no limit, always fits).
    pub fn verdict(&self, limit: Option<u64>) -> Fit {
        report::fit(&self.estimate, limit)
    }
}
