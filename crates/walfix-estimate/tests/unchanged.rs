//! The scan may read, decode and simulate in parallel, but what it finds must be what the serial
//! scan of commit cd0ca6f found, bit for bit: `tests/golden/estimates.tsv` holds, per WAL of
//! `testdata/` and per family, an FNV-1a hash of the JSON of the inputs and of the estimate that
//! scan gave (floats serialize to the shortest string that reads back to the same bits, so equal
//! JSON is equal numbers). The estimator's own footprint (`estimator_table_bytes`) is left out:
//! it is not an estimate, and it changes when the tables do.
//!
//! The big WALs Prometheus scraped for the calibration (`testdata/memory/scraped/`, not
//! committed) are checked when present, against the hashes and against the inputs kept from them
//! in `testdata/memory/inputs/`. Set `WALFIX_WRITE_GOLDEN=1` to rewrite the file (only ever from
//! a scan known to be right).

#[path = "support/synth.rs"]
mod synth;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use walfix_estimate::model::{self, Family, ModelOptions};
use walfix_estimate::{scan, scan_options, ReadOptions, Report};

const FAMILIES: [Family; 3] = [Family::V2_42, Family::V2_53, Family::V3_5];

/// Synthetic WALs: spec, segment size. Small segments give many segments to read in parallel.
const SYNTH: [(&str, usize); 3] = [
    (
        "targets=20,series=500,churn_period=600,churn_pct=100,duration=3600",
        1 << 20,
    ),
    (
        "targets=2,series=10000,interval=30,duration=1800",
        256 << 10,
    ),
    (
        "targets=100,series=200,churn_period=300,churn_pct=30,duration=1800",
        synth::SEGMENT_SIZE,
    ),
];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/estimates.tsv")
}

fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The WALs of testdata/ (name relative to testdata/, dir) and the families to scan them with.
fn real_wals() -> Vec<(String, PathBuf, Vec<Family>)> {
    let root = testdata();
    let mut out = Vec::new();
    for sub in ["corpora", "memory", "memory/scraped"] {
        let Ok(rd) = fs::read_dir(root.join(sub)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs {
            if !d.join("wal").is_dir() {
                continue;
            }
            let name = d.strip_prefix(&root).unwrap().display().to_string();
            // Scraped WALs are big: only with the family of the Prometheus that wrote them.
            let families = match name.rsplit_once('@') {
                Some((_, v)) if sub == "memory/scraped" => vec![Family::parse(v).unwrap()],
                _ => FAMILIES.to_vec(),
            };
            out.push((name, d, families));
        }
    }
    out
}

fn canonical(report: &Report) -> (u64, u64, Value) {
    let mut inputs = serde_json::to_value(&report.inputs).unwrap();
    inputs["estimator_table_bytes"] = 0.into();
    let estimate = serde_json::to_value(&report.estimate).unwrap();
    (
        fnv64(inputs.to_string().as_bytes()),
        fnv64(estimate.to_string().as_bytes()),
        inputs,
    )
}

fn report(dir: &Path, family: Family, threads: Option<usize>) -> Report {
    let opts = ModelOptions::new(family, 2);
    let mut so = scan_options(&opts, ReadOptions::default());
    if let Some(t) = threads {
        so.threads = t;
    }
    let inputs = scan::scan_path(dir, &so).expect("scan");
    let estimate = model::estimate(&inputs, &opts);
    Report { inputs, estimate }
}

/// Every (key, dir, family) this test knows; synthetic WALs are written under `tmp`.
fn cases(tmp: &Path) -> Vec<(String, PathBuf, Family)> {
    let mut out = Vec::new();
    for (name, dir, families) in real_wals() {
        for f in families {
            out.push((format!("{name}\t{}", f.name()), dir.clone(), f));
        }
    }
    for (i, (spec, seg)) in SYNTH.iter().enumerate() {
        let dir = tmp.join(format!("synth{i}")).join("wal");
        synth::Workload::parse(spec)
            .unwrap()
            .write(&dir, *seg)
            .unwrap();
        for f in FAMILIES {
            out.push((format!("synth:{spec}@{seg}\t{}", f.name()), dir.clone(), f));
        }
    }
    out
}

fn read_golden() -> BTreeMap<String, (u64, u64)> {
    let text = fs::read_to_string(golden_path()).expect("tests/golden/estimates.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 4, "golden line {l:?}");
            let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
            (format!("{}\t{}", c[0], c[1]), (hex(c[2]), hex(c[3])))
        })
        .collect()
}

#[test]
fn estimates_are_those_of_the_serial_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = cases(tmp.path());
    if std::env::var_os("WALFIX_WRITE_GOLDEN").is_some() {
        let mut text = String::from(
            "# WAL (testdata/ path or synth:SPEC@SEGMENT_BYTES)\tfamily\tfnv64(inputs JSON)\tfnv64(estimate JSON)\n",
        );
        for (key, dir, f) in &cases {
            let (a, b, _) = canonical(&report(dir, *f, None));
            text += &format!("{key}\t{a:016x}\t{b:016x}\n");
        }
        fs::create_dir_all(golden_path().parent().unwrap()).unwrap();
        fs::write(golden_path(), text).unwrap();
        return;
    }
    let golden = read_golden();
    let mut checked = 0;
    for (key, dir, f) in &cases {
        let Some(&(gi, ge)) = golden.get(key) else {
            // A scraped WAL made after the golden file: nothing to compare with.
            assert!(
                key.starts_with("memory/scraped/"),
                "{key} not in the golden file"
            );
            continue;
        };
        // One thread (everything on the caller's), the default, and more workers than cores.
        for threads in [Some(1), None, Some(3)] {
            let (a, b, inputs) = canonical(&report(dir, *f, threads));
            assert_eq!(
                (a, b),
                (gi, ge),
                "{key} ({threads:?} threads): inputs or estimate differ from the serial scan's; \
                 inputs now: {inputs}"
            );
        }
        checked += 1;
    }
    let committed = golden
        .keys()
        .filter(|k| !k.starts_with("memory/scraped/"))
        .count();
    assert!(
        checked >= committed,
        "only {checked} of {committed} WALs checked"
    );
}

/// Inputs kept from the scraped WALs by the calibration (written by an earlier scan, without the
/// metric and label names) must still come out of them.
#[test]
fn scraped_wals_give_the_kept_inputs() {
    let root = testdata().join("memory");
    for (name, dir, families) in real_wals() {
        let Some(base) = name.strip_prefix("memory/scraped/") else {
            continue;
        };
        let Ok(text) = fs::read_to_string(root.join("inputs").join(format!("{base}.json"))) else {
            continue;
        };
        let kept: Value = serde_json::from_str(&text).unwrap();
        let r = report(&dir, families[0], None);
        // Both through the same text parser (serde_json's reads some floats 1 ulp off; the
        // golden hashes above are the exact comparison).
        let mut now: Value =
            serde_json::from_str(&serde_json::to_string(&r.inputs).unwrap()).unwrap();
        let mut kept = kept;
        for k in ["top_metrics", "churning_labels", "estimator_table_bytes"] {
            now[k] = Value::Null;
            kept[k] = Value::Null;
        }
        assert_eq!(now, kept, "{name}");
    }
}

/// A scan that cannot read a segment fails with the same error however many threads read, after
/// reading the segments before it.
#[test]
fn errors_are_those_of_the_serial_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("wal");
    synth::Workload::parse("targets=4,series=500,duration=600")
        .unwrap()
        .write(&wal, 64 << 10)
        .unwrap();
    let mut segs: Vec<PathBuf> = fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    segs.sort();
    assert!(segs.len() >= 4, "{} segments", segs.len());
    let opts = ModelOptions::new(Family::V3_5, 2);
    let errors = || {
        let e: Vec<_> = [1, 2, 3, 8]
            .into_iter()
            .map(|threads| {
                let mut so = scan_options(&opts, ReadOptions::default());
                so.threads = threads;
                let e = scan::scan_path(&wal, &so).expect_err("an unreadable segment");
                (e.kind(), e.to_string())
            })
            .collect();
        assert!(e.iter().all(|x| *x == e[0]), "{e:?}");
        e[0].1.clone()
    };
    // A file that cannot be opened (a worker finds out) where the third segment was ...
    fs::remove_file(&segs[2]).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), &segs[2]).unwrap();
    let e = errors();
    assert!(e.contains(&segs[2].display().to_string()), "{e}");
    // ... and a directory (found while planning the reads).
    fs::remove_file(&segs[2]).unwrap();
    fs::create_dir(&segs[2]).unwrap();
    assert!(errors().contains("segment is a directory"));
}
