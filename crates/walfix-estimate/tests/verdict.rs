//! The verdict and its exit code against limits around the estimate, on a WAL real Prometheus
//! 3.5 wrote (`testdata/memory/mem-10k-churn`).

use std::path::Path;

use walfix_estimate::{estimate_path, Family, ModelOptions, ReadOptions, Verdict};

fn report(gomemlimit: Option<u64>) -> walfix_estimate::Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/memory/mem-10k-churn");
    let mut opts = ModelOptions::new(Family::V2_53, 2);
    opts.gomemlimit = gomemlimit;
    estimate_path(&path, &opts, ReadOptions::default()).expect("estimate")
}

#[test]
fn fits_tight_oom() {
    let r = report(None);
    let need = r.estimate.replay_peak_rss_bytes;
    assert!(r.estimate.replay_floor_rss_bytes <= need);

    let f = r.verdict(None);
    assert_eq!((f.verdict, f.exit_code), (Verdict::NoLimit, 0));

    let f = r.verdict(Some(need * 2));
    assert_eq!((f.verdict, f.exit_code), (Verdict::Fits, 0));
    assert_eq!(f.margin_bytes, Some(need as i64));

    let f = r.verdict(Some(need + need / 20));
    assert_eq!((f.verdict, f.exit_code), (Verdict::Tight, 1));

    let f = r.verdict(Some(need - need / 20));
    assert_eq!((f.verdict, f.exit_code), (Verdict::WillOom, 2));
    assert!(f.margin_bytes.unwrap() < 0);
}

#[test]
fn gomemlimit_turns_a_small_overrun_into_tight() {
    let plain = report(None).estimate;
    let (peak, floor) = (plain.replay_peak_rss_bytes, plain.replay_floor_rss_bytes);
    assert!(floor < peak, "the GC headroom must matter for this test");
    let limit = floor + (peak - floor) / 2;
    assert_eq!(report(None).verdict(Some(limit)).verdict, Verdict::WillOom);
    // GOMEMLIMIT counts Go's memory only, not the binary's resident pages.
    let r = report(Some(limit - plain.params.rss_file));
    assert!(r.estimate.replay_peak_rss_bytes <= limit);
    assert!(r.estimate.replay_peak_rss_bytes >= floor);
    let f = r.verdict(Some(limit));
    assert_eq!(f.verdict, Verdict::Tight, "{}", f.reason);
}

#[test]
fn json_has_the_contract_fields() {
    let r = report(None);
    let f = r.verdict(Some(1 << 30));
    let p = Path::new("x");
    let o = walfix_estimate::report::JsonOutput::new(p, &r, None, &f);
    let v = serde_json::to_value(&o).unwrap();
    for k in [
        "replay_peak_rss_bytes",
        "post_replay_heap_inuse_bytes",
        "steady_state_heap_inuse_bytes",
        "verdict",
        "inputs",
        "model",
    ] {
        assert!(!v[k].is_null(), "{k} missing");
    }
    assert!(v["model"]["terms"].as_array().unwrap().len() >= 7);
    assert_eq!(v["inputs"]["series"], 50005);
    assert_eq!(v["verdict"]["exit_code"], 0);
}
