//! Verdict against a memory limit, the one JSON object of `--json`, and the human report.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use crate::limit::MemoryLimit;
use crate::model::{human, Estimate, OutsideCalibration, Phase};
use crate::scan::Inputs;
use crate::Report;

/// Does it fit?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The upper end of the estimate's range is within the limit. Exit 0.
    Fits,
    /// The estimate is within the limit but the upper end of its range is not, or the estimate
    /// is over the limit but GOMEMLIMIT keeps the heap under it at the cost of GC CPU. Exit 1.
    Tight,
    /// The estimate is over the limit. Exit 2.
    WillOom,
    /// No limit to compare with. Exit 0.
    NoLimit,
}

impl Verdict {
    /// Exit code: 0 fits (or no limit), 1 tight, 2 will OOM (3 is an operational error).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Fits | Verdict::NoLimit => 0,
            Verdict::Tight => 1,
            Verdict::WillOom => 2,
        }
    }

    /// Name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Fits => "fits",
            Verdict::Tight => "tight",
            Verdict::WillOom => "will OOM",
            Verdict::NoLimit => "no limit",
        }
    }
}

/// A verdict with its numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Fit {
    /// The verdict.
    pub verdict: Verdict,
    /// Exit code for it.
    pub exit_code: u8,
    /// The limit compared with.
    pub limit_bytes: Option<u64>,
    /// What replay needs: the upper end of the range of its peak RSS (the verdict is taken on it).
    pub need_bytes: u64,
    /// The estimate of the peak RSS itself (the middle of the range).
    pub estimate_bytes: u64,
    /// Limit minus need (negative: over).
    pub margin_bytes: Option<i64>,
    /// Margin as a share of the limit, percent.
    pub margin_percent: Option<f64>,
    /// Steady state (churn going on for the head window) over the limit too?
    pub steady_state_over_limit: Option<bool>,
    /// One sentence.
    pub reason: String,
}

/// Compares the replay peak with `limit`: the upper end of its range decides "fits".
pub fn fit(e: &Estimate, limit: Option<u64>) -> Fit {
    let need = e.replay_peak_rss_high_bytes.max(e.replay_peak_rss_bytes);
    let point = e.replay_peak_rss_bytes;
    let outside = if e.outside_calibration.is_empty() {
        String::new()
    } else {
        format!(
            " (range widened: {} outside what was measured)",
            e.outside_calibration
                .iter()
                .map(|o| o.input)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let Some(lim) = limit else {
        return Fit {
            verdict: Verdict::NoLimit,
            exit_code: 0,
            limit_bytes: None,
            need_bytes: need,
            estimate_bytes: point,
            margin_bytes: None,
            margin_percent: None,
            steady_state_over_limit: None,
            reason: format!(
                "no memory limit to compare with; replay needs about {} (up to {}){outside}",
                human(point),
                human(need)
            ),
        };
    };
    let margin = lim as i64 - need as i64;
    let pct = margin as f64 * 100.0 / lim.max(1) as f64;
    let capped = e.options.gomemlimit.is_some();
    let (verdict, reason) = if need <= lim && !e.gomemlimit_bound {
        (
            Verdict::Fits,
            format!(
                "replay needs about {} and at most {} of {}: {} ({pct:.0}%) to spare{outside}",
                human(point),
                human(need),
                human(lim),
                human(margin as u64)
            ),
        )
    } else if point <= lim && !e.gomemlimit_bound {
        (
            Verdict::Tight,
            format!(
                "replay needs about {} of {}, but up to {}: {} over at the upper end of the estimate's range{outside}",
                human(point),
                human(lim),
                human(need),
                human((-margin) as u64)
            ),
        )
    } else if capped && e.replay_floor_rss_bytes <= lim {
        (
            Verdict::Tight,
            format!(
                "replay would peak at {} without GOMEMLIMIT; with it the GC keeps the heap near the limit (live set {} of {}), at the cost of CPU",
                human(point),
                human(e.replay_floor_rss_bytes),
                human(lim)
            ),
        )
    } else {
        (
            Verdict::WillOom,
            format!(
                "replay needs about {} (up to {}), {} more than the limit of {}",
                human(point),
                human(need),
                human(point - lim),
                human(lim)
            ),
        )
    };
    Fit {
        verdict,
        exit_code: verdict.exit_code(),
        limit_bytes: Some(lim),
        need_bytes: need,
        estimate_bytes: point,
        margin_bytes: Some(margin),
        margin_percent: Some(pct),
        steady_state_over_limit: Some(e.steady_peak_rss_bytes > lim),
        reason,
    }
}

/// The one JSON object `walfix estimate --json` prints.
#[derive(Serialize)]
pub struct JsonOutput<'a> {
    /// The path given.
    #[serde(serialize_with = "walfix::report::lossless_path")]
    pub path: &'a Path,
    /// Version family used.
    pub prometheus_version: &'static str,
    /// Peak RSS during replay, bytes: the estimate.
    pub replay_peak_rss_bytes: u64,
    /// Low end of its range, bytes.
    pub replay_peak_rss_low_bytes: u64,
    /// High end of its range, bytes: what the verdict is taken on.
    pub replay_peak_rss_high_bytes: u64,
    /// Inputs outside what the calibration measured: `{input, value, calibrated_max}`.
    pub outside_calibration: &'a [OutsideCalibration],
    /// Heap in use after replay (after a GC), bytes.
    pub post_replay_heap_inuse_bytes: u64,
    /// Live heap after replay, bytes.
    pub post_replay_live_heap_bytes: u64,
    /// Steady-state heap in use, bytes.
    pub steady_state_heap_inuse_bytes: u64,
    /// Steady-state RSS just before a GC, bytes.
    pub steady_state_peak_rss_bytes: u64,
    /// Series in the head in steady state.
    pub steady_state_series: u64,
    /// The limit and where it came from.
    pub memory_limit: Option<&'a MemoryLimit>,
    /// Verdict.
    pub verdict: &'a Fit,
    /// The whole estimate: options, constants, every term.
    pub model: &'a Estimate,
    /// What was read.
    pub inputs: &'a Inputs,
}

impl<'a> JsonOutput<'a> {
    /// Assembles the object.
    pub fn new(
        path: &'a Path,
        report: &'a Report,
        limit: Option<&'a MemoryLimit>,
        fit: &'a Fit,
    ) -> JsonOutput<'a> {
        let e = &report.estimate;
        JsonOutput {
            path,
            prometheus_version: e.options.family.name(),
            replay_peak_rss_bytes: e.replay_peak_rss_bytes,
            replay_peak_rss_low_bytes: e.replay_peak_rss_low_bytes,
            replay_peak_rss_high_bytes: e.replay_peak_rss_high_bytes,
            outside_calibration: &e.outside_calibration,
            post_replay_heap_inuse_bytes: e.post_replay_heap_inuse_bytes,
            post_replay_live_heap_bytes: e.post_replay_live_heap_bytes,
            steady_state_heap_inuse_bytes: e.steady_heap_inuse_bytes,
            steady_state_peak_rss_bytes: e.steady_peak_rss_bytes,
            steady_state_series: e.steady_series,
            memory_limit: limit,
            verdict: fit,
            model: e,
            inputs: &report.inputs,
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        thousands(v as u64)
    } else {
        format!("{v:.1}")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2025-06-15T12:10:00Z` from ms since the epoch (proleptic Gregorian, UTC).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn duration_ms(ms: i64) -> String {
    if ms >= 60_000 && ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms >= 1000 {
        format!("{:.0} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// Writes the human report.
pub fn write_human(
    w: &mut impl Write,
    path: &Path,
    report: &Report,
    limit: Option<&MemoryLimit>,
    fit: &Fit,
) -> io::Result<()> {
    let i = &report.inputs;
    let e = &report.estimate;
    let o = &e.options;
    writeln!(
        w,
        "walfix estimate {}  [Prometheus {} family, {:?} labels, GOGC {}/{}, GOMEMLIMIT {}, {} CPU(s)]",
        walfix::report::show_path(path),
        o.family.name(),
        o.labels,
        o.gogc_replay,
        o.gogc_steady,
        o.gomemlimit.map_or("none".into(), human),
        o.cpus
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "Read: {} segment(s){}{}, {}, {} records{}",
        i.segments,
        i.checkpoint
            .map_or(String::new(), |c| format!(" (checkpoint.{c:08} first)")),
        if i.covered_segments > 0 {
            format!(", {} covered by the checkpoint skipped", i.covered_segments)
        } else {
            String::new()
        },
        human(i.bytes),
        thousands(i.records),
        if i.problems > 0 {
            format!(
                "; {} damaged record(s) skipped (Prometheus would stop at the first: run `walfix check`)",
                i.problems
            )
        } else {
            String::new()
        }
    )?;
    writeln!(
        w,
        "Series: {} created on replay (one per label set; {} duplicate refs), {} active at the end, {} without samples",
        thousands(i.series),
        thousands(i.duplicate_refs),
        thousands(i.active_at_end),
        thousands(i.series_without_samples)
    )?;
    writeln!(
        w,
        "  labels: {:.1} per series, {:.0} B per series; {} names, {} name=value pairs",
        i.labels as f64 / i.series.max(1) as f64,
        i.label_bytes as f64 / i.series.max(1) as f64,
        thousands(i.label_names),
        thousands(i.label_pairs)
    )?;
    writeln!(
        w,
        "Samples: {} float ({} staleness markers), {} histogram, {} exemplars, {} metadata; {:.1} h from first to last",
        thousands(i.float_samples),
        thousands(i.stale_markers),
        thousands(i.histogram_samples),
        thousands(i.exemplars),
        thousands(i.metadata),
        i.span_hours
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "Churn: {} series created after the first {}: {} per hour; {} ended: {} per hour{}",
        thousands(i.series_created),
        duration_ms(i.warmup_ms),
        thousands(i.created_per_hour.round() as u64),
        thousands(i.series_ended),
        thousands(i.ended_per_hour.round() as u64),
        i.scrape_interval_ms.map_or(String::new(), |s| format!(
            "; scrape interval ~{}",
            duration_ms(s)
        ))
    )?;
    if i.hours.len() > 1 && i.hours.len() <= 24 {
        for h in &i.hours {
            writeln!(
                w,
                "  hour from {}: {} created, {} ended",
                utc(h.start_ms),
                thousands(h.created),
                thousands(h.ended)
            )?;
        }
    }
    let churned: Vec<_> = i
        .top_metrics
        .iter()
        .filter(|m| m.created_after_start > 0)
        .take(5)
        .collect();
    if !churned.is_empty() {
        writeln!(w, "  top metrics by series created:")?;
        for m in churned {
            writeln!(
                w,
                "    {:<48} {:>10} created  ({} series)",
                m.name,
                thousands(m.created_after_start),
                thousands(m.series)
            )?;
        }
    }
    let labels: Vec<_> = i
        .churning_labels
        .iter()
        .filter(|l| l.values_after_start > 0)
        .take(5)
        .collect();
    if !labels.is_empty() {
        writeln!(w, "  label values that churn:")?;
        for l in labels {
            writeln!(
                w,
                "    {:<24} {:>8} new values on {} new series (of {} values), e.g. {}",
                l.name,
                thousands(l.values_after_start),
                thousands(l.series_after_start),
                thousands(l.values),
                l.examples
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
    }
    writeln!(w)?;
    writeln!(w, "Memory model (see docs/estimate-model.md):")?;
    for t in &e.terms {
        let phase = match t.phase {
            Phase::Head => "head",
            Phase::Replay => "replay",
            Phase::Scrape => "scrape",
        };
        writeln!(
            w,
            "  {:<22} {:>10}  {:<6}  {}",
            t.name,
            human(t.bytes),
            phase,
            t.formula
        )?;
    }
    writeln!(
        w,
        "  {:<22} {:>10}  (empty Prometheus {} + head {})",
        "live heap after replay",
        human(e.post_replay_live_heap_bytes),
        human(e.params.base_heap_alloc),
        human(e.head_live_bytes)
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "Replay: peak RSS {} (range {} .. {}; binary {} + anonymous {}); the live set alone would be {}",
        human(e.replay_peak_rss_bytes),
        human(e.replay_peak_rss_low_bytes),
        human(e.replay_peak_rss_high_bytes),
        human(e.params.rss_file),
        human(e.replay_peak_anon_bytes),
        human(e.replay_floor_rss_bytes)
    )?;
    writeln!(
        w,
        "  garbage collector: {} allocated during replay, {} of it garbage; {} cycle(s) simulated",
        human(e.replay_gc.allocated_bytes),
        human(e.replay_gc.garbage_bytes),
        e.replay_gc.cycles
    )?;
    for o in &e.outside_calibration {
        writeln!(
            w,
            "  outside the calibration: {} = {} (largest measured: {}); the range's upper end is the GC's bound",
            o.input,
            fmt_num(o.value),
            fmt_num(o.calibrated_max)
        )?;
    }
    writeln!(
        w,
        "After replay: heap in use {} (go_memstats_heap_inuse_bytes after a GC)",
        human(e.post_replay_heap_inuse_bytes)
    )?;
    writeln!(
        w,
        "Steady state (churn going on for {:.0} h): {} series, heap in use {}, RSS up to {} before each GC",
        o.head_window_hours,
        thousands(e.steady_series),
        human(e.steady_heap_inuse_bytes),
        human(e.steady_peak_rss_bytes)
    )?;
    writeln!(w)?;
    match limit {
        Some(l) => writeln!(
            w,
            "Limit: {} ({})",
            l.bytes.map_or("none".into(), human),
            l.source
        )?,
        None => writeln!(w, "Limit: none given (--memory-limit BYTES|auto)")?,
    }
    writeln!(
        w,
        "Verdict: {}: {} (exit {})",
        fit.verdict.name(),
        fit.reason,
        fit.exit_code
    )?;
    if fit.steady_state_over_limit == Some(true) {
        writeln!(
            w,
            "  warning: if the churn goes on, the steady state ({}) exceeds the limit",
            human(e.steady_peak_rss_bytes)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(1_749_989_400_000), "2025-06-15T12:10:00Z");
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(duration_ms(30_000), "30 s");
        assert_eq!(duration_ms(300_000), "5 min");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Verdict::Fits.exit_code(), 0);
        assert_eq!(Verdict::NoLimit.exit_code(), 0);
        assert_eq!(Verdict::Tight.exit_code(), 1);
        assert_eq!(Verdict::WillOom.exit_code(), 2);
    }
}
