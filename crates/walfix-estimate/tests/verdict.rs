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
    let e = &r.estimate;
    let (low, need, high) = (
        e.replay_peak_rss_low_bytes,
        e.replay_peak_rss_bytes,
        e.replay_peak_rss_high_bytes,
    );
    assert!(e.replay_floor_rss_bytes <= need);
    assert!(low < need && need < high, "{low} {need} {high}");
    assert!(e.outside_calibration.is_empty());

    let f = r.verdict(None);
    assert_eq!((f.verdict, f.exit_code), (Verdict::NoLimit, 0));

    // The verdict is taken on the upper end of the range.
    let f = r.verdict(Some(high * 2));
    assert_eq!((f.verdict, f.exit_code), (Verdict::Fits, 0));
    assert_eq!(f.margin_bytes, Some(high as i64));
    assert_eq!((f.need_bytes, f.estimate_bytes), (high, need));

    let f = r.verdict(Some(high));
    assert_eq!((f.verdict, f.exit_code), (Verdict::Fits, 0));

    let f = r.verdict(Some(high - 1));
    assert_eq!((f.verdict, f.exit_code), (Verdict::Tight, 1));
    let f = r.verdict(Some(need));
    assert_eq!((f.verdict, f.exit_code), (Verdict::Tight, 1));

    let f = r.verdict(Some(need - 1));
    assert_eq!((f.verdict, f.exit_code), (Verdict::WillOom, 2));
    assert!(f.margin_bytes.unwrap() < 0);
}

#[test]
fn steady_state_rss_is_never_below_its_heap() {
    // GOMEMLIMIT caps the steady-state heap at its goal; the RSS printed comes from that heap and
    // must not fall below the heap in use it reports next to it.
    let plain = report(None).estimate;
    for lim in [
        1u64 << 20,
        20 << 20,
        plain.steady_heap_inuse_bytes / 2,
        1 << 40,
    ] {
        let e = report(Some(lim)).estimate;
        assert!(
            e.steady_peak_rss_bytes >= e.steady_heap_inuse_bytes + e.params.rss_file,
            "GOMEMLIMIT {lim}: steady RSS {} below heap in use {} + binary {}",
            e.steady_peak_rss_bytes,
            e.steady_heap_inuse_bytes,
            e.params.rss_file
        );
    }
    assert_eq!(
        walfix_estimate::model::steady_heap_peak(100, 150, 75, Some(50), 10),
        150.0
    );
    assert_eq!(
        walfix_estimate::model::steady_heap_peak(100, 110, 100, None, 10),
        200.0
    );
}

#[test]
fn outside_the_calibration_widens_the_range() {
    let r = report(None);
    let mut opts = r.estimate.options.clone();
    opts.cpus = 64;
    let e = walfix_estimate::model::estimate(&r.inputs, &opts);
    assert_eq!(e.outside_calibration.len(), 1);
    assert_eq!(e.outside_calibration[0].input, "cpus");
    // At least the GC's bound: the live set at the end of replay with GOGC's headroom.
    let g = 1.0 + opts.gogc_replay as f64 / 100.0;
    let bound = (e.replay_floor_rss_bytes - e.params.rss_file - e.params.non_heap) as f64 * g;
    assert!(e.replay_peak_rss_high_bytes as f64 >= bound);
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
        "replay_peak_rss_low_bytes",
        "replay_peak_rss_high_bytes",
        "outside_calibration",
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
