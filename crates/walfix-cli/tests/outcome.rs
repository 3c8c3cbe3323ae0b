//! The Prometheus outcome and the losses `check` and `repair` print agree with the findings
//! (issue 12, defect 8). Facts come from Prometheus's source (cited), testdata's notes and
//! hand-made bytes, never from walfix's own output.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

fn walfix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_walfix"))
}

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora")
        .join(name)
}

fn facts() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/facts.json");
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

fn copy_wal(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::copy_dir(&corpus(name).join("wal"), &data.join("wal"));
    (tmp, data)
}

fn check_human(path: &Path) -> String {
    let out = walfix().arg("check").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn check_summary(path: &Path) -> Value {
    let out = walfix()
        .args(["check", "--json"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().expect("a summary line");
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["type"], "summary", "{text}");
    v
}

fn dry_run(path: &Path, extra: &[&str]) -> Value {
    let out = walfix()
        .args(["repair", "--dry-run", "--json"])
        .args(extra)
        .arg(path)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Records in a segment, counted from its fragment headers (a `full` or `last` fragment ends
/// a record), independently of walfix's reader.
fn records_by_headers(data: &[u8]) -> u64 {
    const PAGE: usize = 32 * 1024;
    let (mut at, mut n) = (0usize, 0u64);
    while at + 7 <= data.len() {
        let left_in_page = PAGE - at % PAGE;
        if left_in_page < 7 || data[at] == 0 {
            at += left_in_page;
            continue;
        }
        let len = u16::from_be_bytes([data[at + 1], data[at + 2]]) as usize;
        if matches!(data[at] & 0x7, 1 | 4) {
            n += 1;
        }
        at += 7 + len;
    }
    n
}

#[test]
fn an_unreadable_segment_means_prometheus_does_not_start() {
    // head.go@v3.5.0 Init: OpenReadSegment fails -> `open WAL segment: 1: ...`, not a
    // CorruptionErr, so wlog.Repair refuses it (`cannot handle error`) and the open fails.
    let (_tmp, data) = copy_wal("small-clean");
    let seg = data.join("wal/00000001");
    fs::remove_file(&seg).unwrap();
    // A dangling link: unreadable even for root, and Prometheus's os.Open fails on it too.
    std::os::unix::fs::symlink("/nonexistent/walfix-test", &seg).unwrap();
    let s = check_summary(&data);
    let outcome = s["prometheus_outcome"].as_str().unwrap();
    assert!(!outcome.contains("replays everything"), "{outcome}");
    assert!(outcome.contains("does not start"), "{outcome}");
    assert!(outcome.contains("open WAL segment: 1"), "{outcome}");
    let human = check_human(&data);
    assert!(!human.contains("Replayed by Prometheus"), "{human}");
}

#[test]
fn a_wal_prometheus_refuses_is_not_called_replayed() {
    let f = facts();
    assert_eq!(f["small-clean--gap"]["started"], false);
    let human = check_human(&corpus("small-clean--gap"));
    assert!(!human.contains("Replayed by Prometheus"), "{human}");
    assert!(human.contains("Prometheus does not start"), "{human}");
    // And a clean WAL, which it starts on, is.
    assert_eq!(f["small-clean"]["started"], true);
    assert!(check_human(&corpus("small-clean")).contains("Replayed by Prometheus"));
}

/// The state a Prometheus repair leaves when it fails after renaming the damaged segment and
/// creating the new one (wlog.go@v3.5.0 `Repair`: later segments deleted, `fn` renamed to
/// `fn.repair`, `CreateSegment(fn)`, then e.g. `insert record: no space left on device`).
fn failed_prometheus_repair() -> (tempfile::TempDir, PathBuf) {
    let (tmp, data) = copy_wal("small-clean--flip-byte");
    let wal = data.join("wal");
    fs::remove_file(wal.join("00000003")).unwrap();
    fs::remove_file(wal.join("00000002")).unwrap();
    fs::rename(wal.join("00000001"), wal.join("00000001.repair")).unwrap();
    fs::write(wal.join("00000001"), b"").unwrap();
    (tmp, data)
}

#[test]
fn a_leftover_repair_file_is_a_silent_loss_not_a_clean_replay() {
    // listSegments (wlog.go@v3.5.0) skips names that are not numbers: `00000001.repair` is
    // never read again, and the empty 00000001 reads without an error.
    let (_tmp, data) = failed_prometheus_repair();
    let in_file = records_by_headers(&fs::read(data.join("wal/00000001.repair")).unwrap());
    let s = check_summary(&data);
    let outcome = s["prometheus_outcome"].as_str().unwrap();
    assert!(!outcome.contains("replays everything"), "{outcome}");
    assert!(outcome.contains("00000001.repair"), "{outcome}");
    // Every record of the .repair file is lost but the damaged one, which is lost anyway.
    let n = in_file - 1;
    assert!(
        outcome.contains(&format!("({n} records")),
        "{in_file} records by headers: {outcome}"
    );
}

#[test]
fn rebuilding_from_a_repair_file_counts_the_damaged_record_it_drops() {
    // DAMAGE.txt: the flipped byte is in the full fragment at 300511, reported at 302519 (its
    // end): the rebuild keeps every record but that one.
    let (_tmp, data) = failed_prometheus_repair();
    let plan = dry_run(&data, &[]);
    let a = &plan["plan"]["actions"][0];
    assert_eq!(a["action"], "recover-repair-file", "{plan}");
    assert_eq!(a["loss"]["damaged_regions"], 1, "{a}");
    assert_eq!(a["loss"]["bytes"], 302519 - 300511, "{a}");
    assert_eq!(plan["plan"]["loss"]["bytes"], 302519 - 300511, "{plan}");
    let out = walfix()
        .args(["repair", "--dry-run"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("Total loss: 0 B"), "{text}");
}

#[test]
fn bytes_moved_out_never_exceed_the_file() {
    // Hand-made: the first 68 KiB of a segment whose first record spans pages 0..2 (first,
    // middle, middle; killed-bigrecords' records span many pages), with a byte flipped in the
    // middle fragment of page 1. The cut page is reported up to its virtual end (96 KiB).
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(data.join("wal")).unwrap();
    let mut seg = fs::read(corpus("killed-bigrecords").join("wal/00000000")).unwrap();
    seg.truncate(68 * 1024);
    for page in 0..3 {
        let t = seg[page * 32768] & 0x7;
        assert_eq!(
            t,
            if page == 0 { 2 } else { 3 },
            "page {page} starts a first/middle"
        );
    }
    seg[40000] ^= 0xff;
    fs::write(data.join("wal/00000000"), &seg).unwrap();
    let plan = dry_run(&data, &["--no-correct"]);
    let actions = plan["plan"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{plan}");
    // No record of the file survives: all of it is moved out, not more.
    assert_eq!(actions[0]["loss"]["bytes"], seg.len() as u64, "{plan}");
    assert_eq!(plan["plan"]["loss"]["bytes"], seg.len() as u64, "{plan}");
}

#[test]
fn dropping_a_checkpoint_counts_its_series_and_its_loss() {
    let f = facts();
    let inv = &f["v3-checkpoint"]["inventory"]["wal/checkpoint.00000001"];
    let (records, series) = (
        inv["records"].as_u64().unwrap(),
        inv["entries"]["series"].as_u64().unwrap(),
    );
    assert_eq!((records, series), (3, 2510));
    let size = f["v3-checkpoint--ckpt-flip"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "wal/checkpoint.00000001/00000000")
        .unwrap()["size"]
        .as_u64()
        .unwrap();
    let (_tmp, data) = copy_wal("v3-checkpoint--ckpt-flip");
    let plan = dry_run(&data, &["--drop-checkpoint"]);
    let a = plan["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "move-to-backup")
        .unwrap()
        .clone();
    let loss = &a["loss"];
    // DAMAGE.txt: one of the three series records is damaged; the two others are dropped whole.
    assert_eq!(loss["records"], records - 1, "{a}");
    assert_eq!(loss["damaged_regions"], 1, "{a}");
    assert_eq!(loss["bytes"], size, "{a}");
    let lost_series = loss["series"].as_u64().unwrap();
    assert!(lost_series > 0 && lost_series < series, "{a}");
    let why = a["why"].as_str().unwrap();
    assert!(why.contains(&format!("the {lost_series} series")), "{why}");
    assert_eq!(plan["plan"]["loss"]["bytes"], size, "{plan}");
}

fn check_lines(data: &Path) -> Vec<Value> {
    let out = walfix()
        .args(["check", "--json"])
        .arg(data)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_unreadable_segment_under_the_checkpoint_does_not_stop_prometheus() {
    // head.go@v3.5.0 Init replays the checkpoint, then opens segments from its index + 1 on:
    // with-checkpoint's checkpoint.00000002 covers segments 1 and 2, which replay never opens.
    // Segment 1 (empty, readable) stays the lowest, which Prometheus before 2.52 opens.
    let (_tmp, data) = copy_wal("with-checkpoint");
    fs::write(data.join("wal/00000001"), b"").unwrap();
    std::os::unix::fs::symlink("/nonexistent/walfix-test", data.join("wal/00000002")).unwrap();
    let lines = check_lines(&data);
    let summary = lines.last().unwrap();
    assert_eq!(summary["prometheus"]["kind"], "replays-all", "{summary}");
    let f = lines
        .iter()
        .find(|l| l["kind"] == "unreadable-segment")
        .expect("the unreadable segment is reported");
    let says = f["prometheus"].as_str().unwrap();
    assert!(!says.contains("fails to start"), "{says}");
}

#[test]
fn an_unreadable_lowest_segment_stops_prometheus_before_2_52_even_under_the_checkpoint() {
    // tsdb/wal.go@v2.42.0 deprecatedWALExists opens the lowest-numbered file of wal/ at start
    // (`migrate WAL: check first existing segment`); v2.52.0 removed it.
    let (_tmp, data) = copy_wal("with-checkpoint");
    std::os::unix::fs::symlink("/nonexistent/walfix-test", data.join("wal/00000002")).unwrap();
    let lines = check_lines(&data);
    let o = &lines.last().unwrap()["prometheus"];
    assert_eq!(o["kind"], "does-not-start", "{o}");
    let error = o["error"].as_str().unwrap();
    assert!(
        error.contains("migrate WAL: check first existing segment"),
        "{error}"
    );
    assert!(error.contains("2.52"), "{error}");
}
