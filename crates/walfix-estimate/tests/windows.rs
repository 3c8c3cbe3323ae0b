//! The estimator reads segments a window at a time. Whatever the window, it must see exactly the
//! records a whole-segment read sees, and the same counts `walfix check` reports, on every WAL
//! real Prometheus wrote in `testdata/` (clean and damaged, checkpoints, WBL, histograms).

use std::fs;
use std::path::{Path, PathBuf};

use walfix_estimate::model::{Family, ModelOptions};
use walfix_estimate::{scan, scan_options, ReadOptions};

fn corpora() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let mut out = Vec::new();
    for sub in ["corpora", "memory"] {
        let Ok(rd) = fs::read_dir(root.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().join("wal").is_dir() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn inputs(path: &Path, window: usize) -> Option<scan::Inputs> {
    let opts = ModelOptions::new(Family::V3_5, 2);
    let mut so = scan_options(&opts, ReadOptions::default());
    so.window_bytes = window;
    scan::scan_path(path, &so).ok()
}

#[test]
fn any_window_reads_the_same_records() {
    let dirs = corpora();
    assert!(dirs.len() >= 10, "testdata corpora missing");
    for dir in dirs {
        let Some(whole) = inputs(&dir, 1 << 30) else {
            continue;
        };
        for window in [32 << 10, 96 << 10, 1 << 20] {
            let w = inputs(&dir, window).expect("scan");
            let mut a = serde_json::to_value(&whole).unwrap();
            let mut b = serde_json::to_value(&w).unwrap();
            // The estimator's own footprint differs with the window; nothing else may.
            a["estimator_table_bytes"] = 0.into();
            b["estimator_table_bytes"] = 0.into();
            assert_eq!(a, b, "{} with a {window}-byte window", dir.display());
        }
    }
}

#[test]
fn counts_match_walfix_check() {
    for dir in corpora() {
        let Ok(report) = walfix::check(&dir, &Default::default()) else {
            continue;
        };
        let Some(i) = inputs(&dir, 64 << 10) else {
            continue;
        };
        let t = &report.totals;
        if report
            .findings
            .iter()
            .any(|f| f.severity >= walfix::Severity::Repairable)
        {
            // Damaged: check counts what decodes, as we do, but may split records differently
            // around the damage; only the series must agree.
            assert!(i.series_entries <= t.series, "{}", dir.display());
            continue;
        }
        // `check` counts WBL entries in its totals too; so do we (as WBL samples).
        assert_eq!(
            i.series_entries,
            t.series,
            "series entries in {}",
            dir.display()
        );
        assert_eq!(
            i.float_samples,
            t.float_samples,
            "float samples in {}",
            dir.display()
        );
        assert_eq!(
            i.histogram_samples,
            t.histogram_samples + t.float_histogram_samples,
            "histograms in {}",
            dir.display()
        );
        assert_eq!(i.exemplars, t.exemplars, "exemplars in {}", dir.display());
        assert_eq!(i.stale_markers, t.stale_markers, "{}", dir.display());
    }
}
