//! `check` on every WAL real Prometheus wrote (testdata/corpora), held against what the corpus
//! notes say: Prometheus's own counts, an independent reader's inventory, and the corruption line
//! Prometheus logged on each damaged copy (testdata/facts.json, extracted from the notes by
//! scripts/extract-facts.py).

use std::path::PathBuf;

use serde_json::Value;
use walfix::{check, CheckOptions, Report, Severity, WalFlavor};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn facts() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(testdata().join("facts.json")).expect("testdata/facts.json");
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        _ => panic!("facts.json is not an object"),
    }
}

fn run(name: &str, f: &Value) -> Report {
    let path = testdata().join("corpora").join(name);
    let flavor = if f["mode"] == "agent" {
        WalFlavor::Agent
    } else {
        WalFlavor::Server
    };
    let opts = CheckOptions {
        flavor,
        ..Default::default()
    };
    check(&path, &opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn u(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// Stats of the log whose path ends with `dir` (`wal`, `wbl`, `wal/checkpoint.00000001`).
fn log_stats<'a>(r: &'a Report, dir: &str) -> &'a walfix::Stats {
    &r.logs
        .iter()
        .find(|l| l.path.ends_with(dir))
        .unwrap_or_else(|| {
            panic!(
                "no log {dir} in {:?}",
                r.logs.iter().map(|l| &l.path).collect::<Vec<_>>()
            )
        })
        .stats
}

#[test]
fn clean_corpora_check_clean_and_counts_match_the_notes() {
    let mut checked = 0;
    for (name, f) in facts() {
        if f["clean"] != Value::Bool(true) {
            continue;
        }
        let r = run(&name, &f);
        let bad: Vec<_> = r.findings_at_least(Severity::Repairable).collect();
        assert!(bad.is_empty(), "{name}: clean corpus has findings {bad:#?}");
        assert_eq!(r.exit_code, 0, "{name}");

        // The independent reader's inventory, per directory.
        if let Some(inv) = f["inventory"].as_object() {
            for (dir, x) in inv {
                let s = log_stats(&r, dir);
                assert_eq!(Some(s.records), u(&x["records"]), "{name} {dir}: records");
                let e = &x["entries"];
                assert_eq!(
                    s.series,
                    u(&e["series"]).unwrap_or(0),
                    "{name} {dir}: series entries"
                );
                assert_eq!(
                    s.float_samples,
                    u(&e["samples"]).unwrap_or(0),
                    "{name} {dir}: float samples"
                );
                assert_eq!(
                    s.exemplars,
                    u(&e["exemplars"]).unwrap_or(0),
                    "{name} {dir}: exemplars"
                );
                assert_eq!(
                    s.metadata,
                    u(&e["metadata"]).unwrap_or(0),
                    "{name} {dir}: metadata"
                );
                assert_eq!(
                    s.tombstones,
                    u(&e["tombstones"]).unwrap_or(0),
                    "{name} {dir}: tombstones"
                );
                assert_eq!(
                    s.mmap_markers,
                    u(&e["mmap_markers"]).unwrap_or(0),
                    "{name} {dir}: mmap markers"
                );
                if let Some(types) = x["record_types"].as_object() {
                    for (t, n) in types {
                        // The inventory's reader spells one name differently from Prometheus.
                        let t = if t == "mmap_markers" {
                            "mmapmarkers"
                        } else {
                            t.as_str()
                        };
                        assert_eq!(
                            s.records_by_type.get(t).copied(),
                            u(n),
                            "{name} {dir}: {t} records"
                        );
                    }
                }
                if let Some(comp) = x["compression"].as_object() {
                    for (c, n) in comp {
                        assert_eq!(
                            s.compression.get(c).copied(),
                            u(n),
                            "{name} {dir}: {c} records"
                        );
                    }
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} clean corpora found");
}

#[test]
fn samples_in_the_wal_match_what_prometheus_appended() {
    // Prometheus logs every appended sample to the WAL before it is visible. The 3.x corpora
    // stopped scraping before the counters were read, so WAL and counter agree exactly.
    for name in ["v3-snappy-small", "v3-histograms", "v2.53-snappy"] {
        let f = &facts()[name];
        let r = run(name, f);
        let t = &r.totals;
        let ours = t.float_samples + t.histogram_samples + t.float_histogram_samples;
        assert_eq!(
            Some(ours),
            u(&f["samples_appended"]),
            "{name}: samples in WAL vs appended"
        );
        if let Some(h) = u(&f["samples_appended_histogram"]) {
            assert_eq!(
                t.histogram_samples + t.float_histogram_samples,
                h,
                "{name}: histograms"
            );
        }
    }
}

#[test]
fn wal_holds_every_sample_prometheus_2_42_appended() {
    // The 2.42 corpora read the counter just before SIGTERM; the last scrapes and the staleness
    // markers written at shutdown land in the WAL after it. So: at least what was appended, and
    // not more than 1% above.
    for name in ["small-clean", "histograms-exemplars", "uncompressed"] {
        let f = &facts()[name];
        let r = run(name, f);
        let t = &r.totals;
        let ours = t.float_samples + t.histogram_samples + t.float_histogram_samples;
        let appended = u(&f["samples_appended"]).unwrap();
        assert!(
            ours >= appended && ours <= appended + appended / 100,
            "{name}: {ours} in WAL, {appended} appended"
        );
        assert_eq!(
            Some(r.distinct_series),
            u(&f["head_series"]),
            "{name}: series"
        );
    }
}

#[test]
fn damaged_corpora_report_what_prometheus_logged() {
    let mut checked = 0;
    for (name, f) in facts() {
        if f["clean"] != Value::Bool(false) {
            continue;
        }
        let r = run(&name, &f);
        let c = &f["corruption"];
        if c.is_object() {
            // The first finding where Prometheus's reader stops is the one it logged.
            let first = r
                .findings
                .iter()
                .find(|x| x.prometheus_error.is_some())
                .unwrap_or_else(|| panic!("{name}: no finding with a Prometheus error"));
            let pe = first.prometheus_error.as_ref().unwrap();
            let logged = c["logged"].as_str().unwrap();
            let file = first
                .file
                .strip_prefix(testdata().join("corpora").join(&name))
                .unwrap();
            let ours = format!("{} at {}: {}", file.display(), pe.offset, pe.message);
            assert_eq!(ours, logged, "{name}");
            assert_eq!(first.segment, u(&c["segment"]), "{name}");
        }
        // Exit code: checkpoint damage and start-up blockers need a human; the rest is repairable.
        let needs_human = f["fatal_error"].is_string();
        let want = if needs_human { 2 } else { 1 };
        assert_eq!(r.exit_code, want, "{name}: {:#?}", r.findings);
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} damaged corpora found");
}

#[test]
fn gap_names_the_missing_segment() {
    let r = run("small-clean--gap", &facts()["small-clean--gap"]);
    let gap = r
        .findings
        .iter()
        .find(|f| f.kind == "segment-gap")
        .expect("segment-gap finding");
    assert_eq!(gap.segment, Some(2));
    assert_eq!(gap.severity, Severity::NeedsHuman);
    assert!(
        r.prometheus_outcome.contains("segments are not sequential"),
        "{}",
        r.prometheus_outcome
    );
}

#[test]
fn torn_tail_and_truncated_multipage_record_are_told_apart() {
    let r = run(
        "small-clean--trunc-tail",
        &facts()["small-clean--trunc-tail"],
    );
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == "torn-tail")
        .expect("torn-tail");
    // DAMAGE.txt: cut inside the payload of the full fragment at 597122.
    assert_eq!((f.segment, f.offset), (Some(3), Some(597122)));

    let r = run(
        "small-clean--trunc-multipage",
        &facts()["small-clean--trunc-multipage"],
    );
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == "truncated-multipage-record")
        .expect("truncated-multipage-record");
    // DAMAGE.txt: cut at 327680 right after the FIRST fragment at 326957.
    assert_eq!((f.segment, f.lost_from), (Some(3), Some(326957)));
}

/// `check wbl/` alone on v3-wbl: Prometheus 3.5 replayed it with the WAL beside it, logged no
/// `Unknown series references` and counted `prometheus_tsdb_head_series_not_found_total = 0`
/// (corpora/v3-wbl/EXPECTED.txt), so no WBL entry is a drop. The WAL beside the WBL defines its
/// series and must be read first, as when the data dir or `wal/` is given.
#[test]
fn wbl_given_alone_reads_the_wal_beside_it_and_finds_no_drops() {
    let f = &facts()["v3-wbl"];
    assert_eq!(f["after_replay"]["head_series"], 340);
    let path = testdata().join("corpora/v3-wbl/wbl");
    let r = check(&path, &CheckOptions::default()).unwrap();
    let unknown: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == "unknown-series-refs")
        .collect();
    assert!(unknown.is_empty(), "false drops: {unknown:#?}");
    assert_eq!(
        r.prometheus_outcome,
        "Prometheus replays everything without error"
    );
    assert_eq!(r.distinct_series, 340, "the WAL's series");
    // Same view as for the data dir.
    let whole = check(&testdata().join("corpora/v3-wbl"), &CheckOptions::default()).unwrap();
    assert_eq!(r.totals, whole.totals);
}
