//! End to end: what `check` says Prometheus does with an unreadable segment and with a
//! leftover `.repair` file (issue 12, defect 8) is what real Prometheus 2.42 and 3.5 do. Run by
//! scripts/test.sh, which sets WALFIX_PROMETHEUS_DIR; ignored under a plain `cargo test`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prometheus(version: &str) -> PathBuf {
    let dir = std::env::var_os("WALFIX_PROMETHEUS_DIR")
        .map(PathBuf::from)
        .expect("WALFIX_PROMETHEUS_DIR is not set: run scripts/test.sh");
    dir.join(version).join("prometheus")
}

/// One Prometheus at a time: they compete for two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// scripts/replay.sh's facts, and Prometheus's log.
fn replay(data: &Path, version: &str) -> (HashMap<String, String>, String) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = data.with_extension("replay.txt");
    let st = Command::new(root().join("scripts/replay.sh"))
        .arg(prometheus(version))
        .arg(data)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "replay.sh failed");
    let facts: HashMap<String, String> = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let log = fs::read_to_string(&facts["log_file"]).unwrap_or_default();
    (facts, log)
}

fn check_summary(data: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["check", "--json"])
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

fn copy_wal(tmp: &Path, corpus: &str) -> PathBuf {
    let data = tmp.join("data");
    common::copy_dir(
        &root().join("testdata/corpora").join(corpus).join("wal"),
        &data.join("wal"),
    );
    data
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn unreadable_segment_prometheus_2_42_and_3_5_do_not_start() {
    for v in ["2.42", "3.5"] {
        unreadable_segment(v);
    }
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn leftover_repair_file_prometheus_2_42_and_3_5_start_and_never_read_it() {
    for v in ["2.42", "3.5"] {
        leftover_repair_file(v);
    }
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn unreadable_segment_under_the_checkpoint_prometheus_2_42_and_3_5_start() {
    for v in ["2.42", "3.5"] {
        let tmp = tempfile::tempdir().unwrap();
        let data = copy_wal(tmp.path(), "with-checkpoint");
        fs::write(data.join("wal/00000001"), b"").unwrap();
        std::os::unix::fs::symlink("/nonexistent/walfix-test", data.join("wal/00000002")).unwrap();
        let s = check_summary(&data);
        assert_eq!(s["prometheus"]["kind"], "replays-all", "{s}");
        let (facts, log) = replay(&data, v);
        assert_eq!(facts["started"], "1", "{v}: {facts:?}\n{log}");
        assert_eq!(
            facts["prometheus_tsdb_wal_corruptions_total"], "0",
            "{v}: {log}"
        );
    }
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn unreadable_lowest_segment_under_the_checkpoint_stops_2_42_not_3_5() {
    let tmp = tempfile::tempdir().unwrap();
    let data = copy_wal(tmp.path(), "with-checkpoint");
    std::os::unix::fs::symlink("/nonexistent/walfix-test", data.join("wal/00000002")).unwrap();
    let s = check_summary(&data);
    assert_eq!(s["prometheus"]["kind"], "does-not-start", "{s}");
    let (facts, log) = replay(&data, "2.42");
    assert_eq!(facts["started"], "0", "{facts:?}\n{log}");
    assert!(log.contains("check first existing segment"), "{log}");
    let (facts, log) = replay(&data, "3.5");
    assert_eq!(facts["started"], "1", "{facts:?}\n{log}");
}

fn unreadable_segment(version: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = copy_wal(tmp.path(), "small-clean");
    let seg = data.join("wal/00000001");
    fs::remove_file(&seg).unwrap();
    std::os::unix::fs::symlink("/nonexistent/walfix-test", &seg).unwrap();
    let s = check_summary(&data);
    assert_eq!(s["prometheus"]["kind"], "does-not-start", "{s}");
    let (facts, log) = replay(&data, version);
    assert_eq!(facts["started"], "0", "{facts:?}\n{log}");
    assert!(log.contains("open WAL segment: 1"), "{log}");
    assert!(log.contains("cannot handle error"), "{log}");
}

fn leftover_repair_file(version: &str) {
    // The state wlog.Repair leaves when it fails after CreateSegment (see tests/outcome.rs).
    let tmp = tempfile::tempdir().unwrap();
    let data = copy_wal(tmp.path(), "small-clean--flip-byte");
    let wal = data.join("wal");
    fs::remove_file(wal.join("00000003")).unwrap();
    fs::remove_file(wal.join("00000002")).unwrap();
    fs::rename(wal.join("00000001"), wal.join("00000001.repair")).unwrap();
    fs::write(wal.join("00000001"), b"").unwrap();
    let s = check_summary(&data);
    let o = &s["prometheus"];
    assert_eq!(o["kind"], "replays-all", "{s}");
    let lost = o["not_replayed"][0]["samples"].as_u64().unwrap();
    assert!(lost > 0, "{o}");
    let t = &s["totals"];
    let replayed = t["float_samples"].as_u64().unwrap() - t["stale_markers"].as_u64().unwrap();
    let (facts, log) = replay(&data, version);
    assert_eq!(facts["started"], "1", "{facts:?}\n{log}");
    assert_eq!(facts["prometheus_tsdb_wal_corruptions_total"], "0", "{log}");
    // It replays exactly what is outside the .repair file, and leaves that file alone.
    assert_eq!(
        facts["samples_queryable"],
        replayed.to_string(),
        "{facts:?}"
    );
    assert!(wal.join("00000001.repair").is_file());
}
