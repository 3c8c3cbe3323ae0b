//! The human report of `walfix check`.

use std::io::{self, Write};

use walfix::report::{show_path, PrometheusOutcome};
use walfix::{Level, Report, Severity, Stats};
use walfix_format::text::escape_controls;

/// Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
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
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "WARNING",
        Severity::Repairable => "DAMAGE (repairable)",
        Severity::NeedsHuman => "DAMAGE (needs a human)",
        Severity::Unreadable => "UNREADABLE",
    }
}

fn counts(s: &Stats) -> String {
    let mut parts = vec![format!("{} records", s.records)];
    let types: Vec<String> = s
        .records_by_type
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !types.is_empty() {
        parts.push(format!("({})", types.join(", ")));
    }
    parts.join(" ")
}

/// Writes the report for a human.
pub fn write(out: &mut impl Write, r: &Report, level: Level) -> io::Result<()> {
    let lvl = match level {
        Level::Frames => "frames (pages, fragments, CRC)",
        Level::Records => "records (framing, decompression, decoding)",
        _ => "other",
    };
    writeln!(out, "walfix check {}  [level: {lvl}]", show_path(&r.root))?;
    writeln!(out)?;
    for l in &r.logs {
        let range = match (l.first_segment, l.last_segment) {
            (Some(a), Some(b)) => format!("segments {a:08}..{b:08}"),
            _ => "no segments".to_string(),
        };
        writeln!(
            out,
            "  {:<10} {}  {range}: {} file(s), {} empty, {}; {}",
            l.log.name(),
            show_path(&l.path),
            l.stats.segments,
            l.stats.empty_segments,
            size(l.stats.bytes),
            counts(&l.stats)
        )?;
    }
    writeln!(out)?;
    let shown: Vec<_> = r.findings.iter().collect();
    if shown.is_empty() {
        writeln!(out, "No problems found.")?;
    } else {
        writeln!(out, "Findings ({}):", shown.len())?;
        for f in shown {
            let mut at = String::new();
            if let Some(o) = f.offset {
                at.push_str(&format!(" at offset {o}"));
            }
            if let Some(i) = f.record_index {
                at.push_str(&format!(" (record #{i})"));
            }
            writeln!(
                out,
                "  {} [{}] {}{at}",
                label(f.severity),
                f.kind,
                show_path(&f.file)
            )?;
            writeln!(out, "      {}", escape_controls(&f.message))?;
            if let Some(e) = &f.prometheus_error {
                writeln!(
                    out,
                    "      Prometheus would log: corruption in segment {} at {}: {}",
                    show_path(&f.file),
                    e.offset,
                    escape_controls(&e.message)
                )?;
            }
            writeln!(out, "      Prometheus: {}", escape_controls(&f.prometheus))?;
        }
    }
    writeln!(out)?;
    let t = &r.totals;
    // Only what Prometheus really replays is called replayed: a repair of its own drops part
    // of it, and a Prometheus that does not start replays nothing.
    let heading = match &r.prometheus {
        PrometheusOutcome::ReplaysAll { .. } => "Replayed by Prometheus",
        o if o.starts() => "In the logs (Prometheus's own repair drops part of this, see below)",
        _ => "In the logs (not replayed: Prometheus does not start, see below)",
    };
    writeln!(
        out,
        "{heading}: {} segment(s), {}; {}",
        t.segments,
        size(t.bytes),
        counts(t)
    )?;
    writeln!(
        out,
        "  series records: {} entries, {} distinct refs; float samples: {} (of which {} staleness markers); histogram samples: {} integer, {} float; exemplars: {}; metadata: {}; tombstones: {}; mmap markers: {}",
        t.series,
        r.distinct_series,
        t.float_samples,
        t.stale_markers,
        t.histogram_samples,
        t.float_histogram_samples,
        t.exemplars,
        t.metadata,
        t.tombstones,
        t.mmap_markers
    )?;
    if let (Some(a), Some(b)) = (t.min_time, t.max_time) {
        writeln!(out, "  time range: {} .. {}", rfc3339_ms(a), rfc3339_ms(b))?;
    }
    let comp: Vec<String> = t
        .compression
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !comp.is_empty() {
        writeln!(out, "  compression (records): {}", comp.join(", "))?;
    }
    writeln!(out)?;
    writeln!(out, "Prometheus: {}", r.prometheus_outcome)?;
    let verdict = match r.worst {
        Severity::Info | Severity::Warning => "clean: Prometheus can start on this WAL",
        Severity::Repairable => "damaged: `walfix repair` can fix this",
        Severity::NeedsHuman => {
            "damaged: needs a human decision before Prometheus can start cleanly"
        }
        Severity::Unreadable => "incomplete: some files could not be read",
    };
    writeln!(out, "Verdict: {verdict} (exit {})", r.exit_code)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;

    #[test]
    fn timestamps_match_known_dates() {
        // 1700000000000 ms is 2023-11-14T22:13:20Z (a well-known Unix time).
        assert_eq!(rfc3339_ms(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }
}
