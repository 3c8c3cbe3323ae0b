//! `walfix dump`: what it prints is what real Prometheus replays. Counts are held against
//! testdata/facts.json (PromQL counts real Prometheus gave on each corpus) and, end to end,
//! against PromQL on a real Prometheus for several selectors.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dump(args: &[&str]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .arg("dump")
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code().unwrap(), lines)
}

fn corpus(name: &str) -> String {
    root()
        .join("testdata/corpora")
        .join(name)
        .display()
        .to_string()
}

/// Float samples (staleness markers left out) and histograms that a PromQL count sees: WBL
/// entries left out (the facts were measured without an out-of-order window, and Prometheus
/// then replays none of them), entries inside a tombstone of their series left out.
fn queryable(lines: &[Value]) -> u64 {
    let mut tomb: HashMap<u64, Vec<(i64, i64)>> = HashMap::new();
    for l in lines.iter().filter(|l| l["type"] == "tombstone") {
        tomb.entry(l["ref"].as_u64().unwrap())
            .or_default()
            .push((l["mint"].as_i64().unwrap(), l["maxt"].as_i64().unwrap()));
    }
    lines
        .iter()
        .filter(|l| (l["type"] == "sample" && l["stale"].is_null()) || l["type"] == "histogram")
        .filter(|l| l["log"] != "wbl")
        .filter(|l| {
            let (r, t) = (l["ref"].as_u64().unwrap(), l["t"].as_i64().unwrap());
            !tomb
                .get(&r)
                .is_some_and(|v| v.iter().any(|&(a, b)| a <= t && t <= b))
        })
        .count() as u64
}

#[test]
fn every_clean_corpus_dumps_the_samples_real_prometheus_counted() {
    let text = fs::read_to_string(root().join("testdata/facts.json")).unwrap();
    let facts: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for (name, f) in &facts {
        let want = &f["after_replay"]["samples_queryable"];
        if f["clean"] != true || f["mode"] != "server" || !want.is_u64() {
            continue;
        }
        let (code, lines) = dump(&[&corpus(name)]);
        assert_eq!(code, 0, "{name}");
        assert_eq!(lines.last().unwrap()["type"], "summary", "{name}");
        assert_eq!(queryable(&lines), want.as_u64().unwrap(), "{name}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} corpora checked");
}

#[test]
fn filters_select_exactly_what_they_say() {
    let c = corpus("v3-histograms");
    let (_, all) = dump(&[&c]);
    // Series a selector matches, by the labels on their series lines.
    let (_, up) = dump(&[&c, "--match", r#"{__name__=~"up|scrape_.*",job!=""}"#]);
    let series: Vec<&Value> = up.iter().filter(|l| l["type"] == "series").collect();
    assert!(!series.is_empty());
    for s in &series {
        let name = s["labels"]["__name__"].as_str().unwrap();
        assert!(name == "up" || name.starts_with("scrape_"), "{s}");
        assert_ne!(s["labels"]["job"], "");
    }
    let refs: Vec<u64> = series.iter().map(|s| s["ref"].as_u64().unwrap()).collect();
    let expected = all
        .iter()
        .filter(|l| l["type"] == "sample" && refs.contains(&l["ref"].as_u64().unwrap()))
        .count();
    assert_eq!(
        up.iter().filter(|l| l["type"] == "sample").count(),
        expected
    );

    // Time and type filters.
    let ts: Vec<i64> = all.iter().filter_map(|l| l["t"].as_i64()).collect();
    let (lo, hi) = (ts.iter().min().unwrap(), ts.iter().max().unwrap());
    let mid = lo + (hi - lo) / 2;
    let (_, late) = dump(&[&c, "--type", "samples", "--start", &mid.to_string()]);
    let want = all
        .iter()
        .filter(|l| l["type"] == "sample" && l["t"].as_i64().unwrap() >= mid)
        .count();
    let got: Vec<&Value> = late.iter().filter(|l| l["type"] != "summary").collect();
    assert_eq!(got.len(), want);
    assert!(got.iter().all(|l| l["type"] == "sample"));
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["dump", &corpus("v3-snappy-small")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Read;
        let mut first = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    } // closed here
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_damaged_wal_shows_problems_and_exits_1() {
    let (code, lines) = dump(&[&corpus("small-clean--flip-byte")]);
    assert_eq!(code, 1);
    let p: Vec<&Value> = lines.iter().filter(|l| l["type"] == "problem").collect();
    assert_eq!(p.len(), 1, "{p:?}");
    // DAMAGE.txt: the byte flipped is in wal/00000001, in the fragment at 300511.
    assert_eq!(p[0]["segment"], 1);
    assert_eq!(p[0]["kind"], "checksum-mismatch");
}

/// End to end: sample counts per selector equal PromQL's on the real Prometheus that wrote
/// the WAL (scripts/replay.sh with REPLAY_QUERIES).
#[test]
#[ignore = "end-to-end: needs real Prometheus (scripts/test.sh)"]
fn selector_counts_equal_promql_counts_on_real_prometheus() {
    let dir = std::env::var_os("WALFIX_PROMETHEUS_DIR")
        .map(PathBuf::from)
        .expect("WALFIX_PROMETHEUS_DIR is not set: run scripts/test.sh");
    for (name, version, selectors) in [
        (
            "v3-snappy-small",
            "3.5",
            &[
                r#"{__name__="up"}"#,
                r#"{job="wal_v3_text_1",__name__=~"wal_v3_metric_.*"}"#,
                r#"{__name__=~"wal_v3_metric_.+",ns!~"ns-0.*"}"#,
                r#"scrape_duration_seconds{job=~".*_0"}"#,
            ][..],
        ),
        (
            "small-clean",
            "2.42",
            // Selectors over several names must not match series that differ only in their
            // name: count_over_time drops the name and PromQL refuses the clash.
            &[
                r#"{__name__=~"synth_metric_[0-4]",pod=~"pod-t2-[13].*"}"#,
                r#"{__name__="up"}"#,
            ][..],
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir_all(&data).unwrap();
        let st = Command::new("cp")
            .arg("-r")
            .arg(root().join("testdata/corpora").join(name).join("wal"))
            .arg(&data)
            .status()
            .unwrap();
        assert!(st.success());
        let out = tmp.path().join("replay.txt");
        let st = Command::new(root().join("scripts/replay.sh"))
            .arg(dir.join(version).join("prometheus"))
            .arg(&data)
            .arg(&out)
            .env("REPLAY_QUERIES", selectors.join("\n"))
            .env("REPLAY_READY_TIMEOUT", "300")
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "replay.sh: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let kv: HashMap<String, String> = fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (i, sel) in selectors.iter().enumerate() {
            let want: u64 = kv[&format!("query_samples_{i}")].parse().unwrap();
            let (_, lines) = dump(&[&corpus(name), "--match", sel]);
            assert_eq!(queryable(&lines), want, "{name} {sel}");
        }
    }
}
