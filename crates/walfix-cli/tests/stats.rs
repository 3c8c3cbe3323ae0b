//! `walfix stats` against what the corpus's notes and real Prometheus's /metrics say.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora")
        .join(name)
}

fn stats(name: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["stats", "--json", "--top", "50"])
        .arg(corpus(name))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{name}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn v3_checkpoint_counts_match_its_notes_and_prometheus_metrics() {
    // testdata/corpora/v3-checkpoint/README.txt: target c has 1000 series over 10 metric
    // names and churns; target d has 500 series over 5 names, no churn; each target adds 5
    // per-scrape series (up, scrape_*). Prometheus's /metrics before its stop:
    // prometheus_tsdb_head_series_created_total 3510. facts.json: samples_queryable 226500.
    let s = stats("v3-checkpoint");
    let r = &s["rankings"];
    assert_eq!(s["schema"], "walfix-stats/1");
    assert_eq!(r["distinct_series_refs"], 3510);
    assert_eq!(r["duplicate_series_refs"], 0);
    assert_eq!(r["distinct_metrics"], 15);
    let t = &s["totals"];
    assert_eq!(
        t["samples"].as_u64().unwrap() - t["stale_markers"].as_u64().unwrap(),
        226_500
    );
    let targets = r["targets_by_series"].as_array().unwrap();
    let d = targets
        .iter()
        .find(|t| t["name"] == "job=wal_v3_text_1 instance=127.0.0.1:19114")
        .unwrap();
    assert_eq!(d["series"], 505, "the target without churn");
    assert_eq!(
        d["series_created"], 0,
        "its series all predate the checkpoint"
    );
    // Only the churning target creates series after the checkpoint.
    let churn = &r["label_values_by_series_created"].as_array().unwrap()[0];
    assert!(
        churn["name"].as_str().unwrap().starts_with("gen="),
        "{churn}"
    );
    // Checkpoint first, then the segments above it.
    let segs = s["segments"].as_array().unwrap();
    assert_eq!(segs[0]["log"], "checkpoint");
    assert!(segs[1..].iter().all(|x| x["log"] == "wal"));
}
