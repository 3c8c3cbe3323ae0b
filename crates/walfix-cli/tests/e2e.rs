//! End to end: a real Prometheus (from Debian's packages, fetched by scripts/get-prometheus.sh)
//! writes a fresh WAL, and `walfix check` must find it clean and count what Prometheus appended.
//! Run by scripts/test.sh, which sets WALFIX_PROMETHEUS_DIR; ignored under a plain `cargo test`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prometheus(version: &str) -> PathBuf {
    let dir = std::env::var_os("WALFIX_PROMETHEUS_DIR")
        .map(PathBuf::from)
        .expect("WALFIX_PROMETHEUS_DIR is not set: run scripts/test.sh");
    let bin = dir.join(version).join("prometheus");
    assert!(
        bin.exists(),
        "{} missing: scripts/get-prometheus.sh {version} {}",
        bin.display(),
        dir.join(version).display()
    );
    bin
}

fn metric(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{key} not in metrics file:\n{text}"))
        .trim()
        .parse::<f64>()
        .unwrap() as u64
}

/// One Prometheus at a time: they pick free ports and compete for two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fresh_wal_checks_clean(version: &str, extra_flags: &str) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let metrics = tmp.path().join("metrics.txt");
    let st = Command::new(root().join("scripts/gen-wal.sh"))
        .arg(prometheus(version))
        .arg(&data)
        .arg("8")
        .arg(&metrics)
        .env("GEN_WAL_PROM_FLAGS", extra_flags)
        .status()
        .unwrap();
    assert!(st.success(), "gen-wal.sh failed");
    let m = std::fs::read_to_string(&metrics).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["check", "--json"])
        .arg(&data)
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.last().unwrap();
    let problems: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "finding" && l["severity"] != "info" && l["severity"] != "warning")
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(out.status.code(), Some(0));
    let t = &summary["totals"];
    let samples = t["float_samples"].as_u64().unwrap()
        + t["histogram_samples"].as_u64().unwrap()
        + t["float_histogram_samples"].as_u64().unwrap();
    assert_eq!(
        samples,
        metric(&m, "prometheus_tsdb_head_samples_appended_total"),
        "samples"
    );
    assert_eq!(
        summary["distinct_series"].as_u64().unwrap(),
        metric(&m, "prometheus_tsdb_head_series_created_total"),
        "series"
    );
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn prometheus_3_5_snappy_wal_checks_clean_with_exact_counts() {
    fresh_wal_checks_clean("3.5", "");
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn prometheus_3_5_zstd_wal_checks_clean_with_exact_counts() {
    fresh_wal_checks_clean("3.5", "--storage.tsdb.wal-compression-type=zstd");
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn prometheus_2_53_wal_checks_clean_with_exact_counts() {
    fresh_wal_checks_clean("2.53", "");
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn prometheus_2_42_wal_checks_clean_with_exact_counts() {
    fresh_wal_checks_clean("2.42", "");
}
