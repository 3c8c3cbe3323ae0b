//! `walfix dump`: the entries of a WAL as JSON Lines, in replay order, filtered.
//!
//! Memory stays bounded on any WAL: one bit per series ref for a selector, nothing else that
//! grows (samples carry their ref; the labels are on the ref's `series` line).

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};
use serde_json::{json, Map, Value};
use walfix::refset::RefSet;
use walfix::replay::{read_segment, replay_order, Event};
use walfix::report::{show_path, Text};
use walfix_format::record::{
    self, Acceptance, Exemplar, HistogramSample, LogKind, Metadata, MmapMarker, RecordType, Sample,
    Series, Tombstone, Visitor,
};
use walfix_format::text::escape_controls;

const EXIT_CODES: &str = "\
Output: one JSON object per line (docs/json-output.md, \"walfix dump\"), then a summary line.
Exit codes: 0 every record read cleanly; 1 some records could not be read (problem lines);
3 operational error (bad path, bad selector, unreadable file).";

/// Print the entries of a WAL (checkpoint, segments, WBL) as JSON Lines, in replay order.
#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct DumpArgs {
    /// A Prometheus data dir, a wal/, wbl/ or checkpoint.N dir, or one segment file.
    path: PathBuf,
    /// Only these record types (comma-separated Prometheus names: series, samples,
    /// tombstones, exemplars, mmapmarkers, metadata, histogram_samples, ...).
    #[arg(long = "type", value_delimiter = ',', value_name = "TYPE,...")]
    types: Vec<String>,
    /// Only entries of series this selector matches, e.g. '{job="node",__name__=~"up|scrape_.*"}'.
    #[arg(long = "match", value_name = "SELECTOR")]
    selector: Option<String>,
    /// Only samples, histograms and exemplars at or after this time (ms since the epoch, or
    /// RFC 3339 such as 2026-12-02T13:00:00Z); tombstones that overlap the range.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Only entries at or before this time.
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// Only segments in this index range, `A-B`, `A-` or `-B` (series from other segments still
    /// define what a selector matches).
    #[arg(long, value_name = "A-B")]
    segments: Option<String>,
    /// Treat the WAL as a Prometheus agent WAL.
    #[arg(long)]
    agent: bool,
}

/// A parsed selector: every group must match in full; groups are alternatives (`or`).
struct Selector {
    groups: Vec<Vec<Matcher>>,
}

impl Selector {
    fn parse(s: &str) -> Result<Selector, String> {
        let expr = parser::parse(s).map_err(|e| format!("--match {s}: {e}"))?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(format!(
                "--match {s}: expected a series selector such as {{job=\"node\"}}"
            ));
        };
        let mut base = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name {
            base.push(Matcher::new(
                promql_parser::label::MatchOp::Equal,
                "__name__",
                name,
            ));
        }
        let groups = if vs.matchers.or_matchers.is_empty() {
            vec![base]
        } else {
            vs.matchers
                .or_matchers
                .iter()
                .map(|g| base.iter().chain(g).cloned().collect())
                .collect()
        };
        Ok(Selector { groups })
    }

    /// As Prometheus matches: a missing label is the empty string.
    fn matches(&self, labels: &record::Labels<'_>) -> bool {
        self.groups.iter().any(|g| {
            g.iter().all(|m| {
                let v = labels.get(m.name.as_bytes()).unwrap_or_default();
                m.is_match(&String::from_utf8_lossy(v))
            })
        })
    }
}

/// Milliseconds since the epoch, from digits or RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fff]Z`).
fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("{s}: expected ms since the epoch or RFC 3339 (2026-12-02T13:00:00Z)");
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r).and_then(|t| t.parse().ok()).ok_or_else(bad)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = &s[19..];
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            let digits = &r[..n];
            let ms: i64 = format!("{digits:0<3}")[..3].parse().map_err(|_| bad())?;
            (ms, &r[n..])
        }
        None => (0, rest),
    };
    let offset_min = match zone {
        "Z" | "z" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) => {
            let hh: i64 = z[1..3].parse().map_err(|_| bad())?;
            let mm: i64 = z[4..6].parse().map_err(|_| bad())?;
            let sign = if z.starts_with('-') { -1 } else { 1 };
            sign * (hh * 60 + mm)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + frac)
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--segments {s}: expected A-B, A- or -B");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a = if a.is_empty() {
        0
    } else {
        a.parse().map_err(|_| bad())?
    };
    let b = if b.is_empty() {
        u64::MAX
    } else {
        b.parse().map_err(|_| bad())?
    };
    Ok((a, b))
}

struct Filter {
    types: Option<Vec<RecordType>>,
    selector: Option<Selector>,
    start: i64,
    end: i64,
    segments: (u64, u64),
}

/// Entries of one record, written as they are decoded.
struct Emit<'a, W: Write> {
    out: &'a mut W,
    filter: &'a Filter,
    matched: &'a mut RefSet,
    /// Whether to write entries (false: only learn which series match).
    write: bool,
    base: Map<String, Value>,
    counts: &'a mut std::collections::BTreeMap<&'static str, u64>,
    err: Option<io::Error>,
}

fn labels_json(l: &record::Labels<'_>) -> Value {
    let mut m = Map::new();
    for (k, v) in l.iter() {
        m.insert(
            String::from_utf8_lossy(k).into_owned(),
            serde_json::to_value(Text(v.to_vec())).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

fn float(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("NaN")
    } else if v > 0.0 {
        json!("+Inf")
    } else {
        json!("-Inf")
    }
}

impl<W: Write> Emit<'_, W> {
    fn keep_ref(&self, r: u64) -> bool {
        self.filter.selector.is_none() || self.matched.contains(r)
    }
    fn in_time(&self, t: i64) -> bool {
        t >= self.filter.start && t <= self.filter.end
    }
    fn put(&mut self, kind: &'static str, fields: Value) {
        if !self.write || self.err.is_some() {
            return;
        }
        *self.counts.entry(kind).or_default() += 1;
        let mut m = self.base.clone();
        m.insert("type".into(), json!(kind));
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        if let Err(e) = write_line(&mut *self.out, &Value::Object(m)) {
            self.err = Some(e);
        }
    }
}

impl<W: Write> Visitor for Emit<'_, W> {
    fn series(&mut self, s: &Series<'_>) {
        if let Some(sel) = &self.filter.selector {
            if sel.matches(&s.labels) {
                self.matched.insert(s.series_ref);
            } else {
                return;
            }
        }
        self.put(
            "series",
            json!({"ref": s.series_ref, "labels": labels_json(&s.labels)}),
        );
    }
    fn sample(&mut self, s: &Sample) {
        if !self.write || !self.keep_ref(s.series_ref) || !self.in_time(s.t) {
            return;
        }
        let stale = s.v.to_bits() == walfix_format::record::STALE_NAN_BITS;
        let mut f = json!({"ref": s.series_ref, "t": s.t, "v": float(s.v)});
        if stale {
            f["stale"] = json!(true);
            *self.counts.entry("stale-marker").or_default() += 1;
        }
        if s.st != 0 {
            f["st"] = json!(s.st);
        }
        self.put("sample", f);
    }
    fn tombstone(&mut self, t: &Tombstone) {
        if !self.keep_ref(t.series_ref) || t.maxt < self.filter.start || t.mint > self.filter.end {
            return;
        }
        self.put(
            "tombstone",
            json!({"ref": t.series_ref, "mint": t.mint, "maxt": t.maxt}),
        );
    }
    fn exemplar(&mut self, e: &Exemplar<'_>) {
        if !self.keep_ref(e.series_ref) || !self.in_time(e.t) {
            return;
        }
        self.put(
            "exemplar",
            json!({"ref": e.series_ref, "t": e.t, "v": float(e.v), "labels": labels_json(&e.labels)}),
        );
    }
    fn mmap_marker(&mut self, m: &MmapMarker) {
        if !self.keep_ref(m.series_ref) {
            return;
        }
        self.put(
            "mmap-marker",
            json!({"ref": m.series_ref, "chunk_ref": m.chunk_ref}),
        );
    }
    fn metadata(&mut self, m: &Metadata<'_>) {
        if !self.keep_ref(m.series_ref) {
            return;
        }
        self.put(
            "metadata",
            json!({"ref": m.series_ref, "metric_type": m.metric_type, "unit": Text(m.unit.to_vec()), "help": Text(m.help.to_vec())}),
        );
    }
    fn histogram(&mut self, h: &HistogramSample<'_>) {
        if !self.keep_ref(h.series_ref) || !self.in_time(h.t) {
            return;
        }
        self.put(
            "histogram",
            json!({"ref": h.series_ref, "t": h.t, "float": h.is_float, "schema": h.schema, "counter_reset_hint": h.counter_reset_hint}),
        );
    }
}

/// One JSON line; an I/O error keeps its kind (a closed pipe stays `BrokenPipe`).
fn write_line(out: &mut impl Write, v: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(|e| match e.io_error_kind() {
        Some(kind) => io::Error::new(kind, e),
        None => io::Error::other(e),
    })?;
    writeln!(out)
}

fn fail(msg: String) -> ExitCode {
    eprintln!("walfix dump: {}", escape_controls(&msg));
    ExitCode::from(3)
}

fn log_name(k: LogKind) -> &'static str {
    k.name()
}

pub fn run(args: DumpArgs) -> ExitCode {
    let types = if args.types.is_empty() {
        None
    } else {
        let mut v = Vec::new();
        for t in &args.types {
            match RecordType::ALL.iter().find(|r| r.name() == t) {
                Some(r) => v.push(*r),
                None => {
                    let names: Vec<_> = RecordType::ALL.iter().map(|r| r.name()).collect();
                    return fail(format!("--type {t}: not one of {}", names.join(", ")));
                }
            }
        }
        Some(v)
    };
    let selector = match args.selector.as_deref().map(Selector::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return fail(e),
    };
    let time = |s: &Option<String>, d: i64| s.as_deref().map_or(Ok(d), parse_time);
    let (start, end) = match (time(&args.start, i64::MIN), time(&args.end, i64::MAX)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let segments = match args.segments.as_deref().map(parse_range) {
        None => (0, u64::MAX),
        Some(Ok(r)) => r,
        Some(Err(e)) => return fail(e),
    };
    let filter = Filter {
        types,
        selector,
        start,
        end,
        segments,
    };
    let flavor = if args.agent {
        walfix::WalFlavor::Agent
    } else {
        walfix::WalFlavor::Server
    };
    let layout = match walfix::layout::discover(&args.path, flavor) {
        Ok(l) => l,
        Err(e) => return fail(format!("{}: {e}", show_path(&args.path))),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut matched = RefSet::new();
    let mut counts = std::collections::BTreeMap::new();
    let mut problems = 0u64;
    let mut records = 0u64;
    let mut err: Option<io::Error> = None;
    let order = replay_order(&layout);
    let bar = crate::progress::Bar::bytes(order.iter().map(|s| s.len).sum(), "reading");
    for seg in order {
        bar.inc(seg.len);
        let in_range = seg.index >= filter.segments.0 && seg.index <= filter.segments.1;
        // Out of range, only series records still matter (for the selector).
        if !in_range && filter.selector.is_none() {
            continue;
        }
        let base = {
            let mut m = Map::new();
            m.insert("log".into(), json!(log_name(seg.kind)));
            m.insert("segment".into(), json!(seg.index));
            m
        };
        let res = read_segment(&seg, &mut |ev| {
            match ev {
                Event::Problem(p) => {
                    if in_range {
                        problems += 1;
                        let mut m = base.clone();
                        m.insert("type".into(), json!("problem"));
                        m.insert("offset".into(), json!(p.offset));
                        m.insert("kind".into(), json!(p.kind.name()));
                        m.insert("message".into(), json!(p.kind.describe()));
                        if let Err(e) = write_line(&mut out, &Value::Object(m)) {
                            err = Some(e);
                            return ControlFlow::Break(());
                        }
                    }
                }
                Event::Record(r) => {
                    let rtype = r.data.first().copied().and_then(RecordType::from_u8);
                    if seg.kind.accepts(rtype) != Acceptance::Expected {
                        return ControlFlow::Continue(());
                    }
                    let wanted = in_range
                        && filter
                            .types
                            .as_ref()
                            .is_none_or(|t| rtype.is_some_and(|r| t.contains(&r)));
                    let is_series = rtype == Some(RecordType::Series);
                    let learn = is_series && filter.selector.is_some();
                    if !(wanted || learn) {
                        return ControlFlow::Continue(());
                    }
                    if wanted {
                        records += 1;
                    }
                    let mut b = base.clone();
                    b.insert("offset".into(), json!(r.offset));
                    b.insert("record".into(), json!(r.index));
                    let mut em = Emit {
                        out: &mut out,
                        filter: &filter,
                        matched: &mut matched,
                        write: wanted,
                        base: b,
                        counts: &mut counts,
                        err: None,
                    };
                    let res = record::visit(r.data, &mut em);
                    if let Some(e) = em.err {
                        err = Some(e);
                        return ControlFlow::Break(());
                    }
                    if let (Err(e), true) = (res, wanted) {
                        problems += 1;
                        let mut m = base.clone();
                        m.insert("type".into(), json!("problem"));
                        m.insert("offset".into(), json!(r.offset));
                        m.insert("kind".into(), json!("record-decode"));
                        m.insert("message".into(), json!(e.to_string()));
                        if let Err(e) = write_line(&mut out, &Value::Object(m)) {
                            err = Some(e);
                            return ControlFlow::Break(());
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        });
        if let Some(e) = err.take() {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return ExitCode::from(if problems > 0 { 1 } else { 0 });
            }
            return fail(format!("writing output: {e}"));
        }
        if let Err(e) = res {
            let _ = out.flush();
            return fail(format!("{}: {e}", show_path(&seg.path)));
        }
    }
    let summary =
        json!({"type": "summary", "records": records, "entries": counts, "problems": problems});
    let res = write_line(&mut out, &summary).and_then(|_| out.flush());
    match res {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => fail(format!("writing output: {e}")),
        _ => ExitCode::from(if problems > 0 { 1 } else { 0 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_ms() {
        // `date -u -d 2026-12-02T13:00:00Z +%s` = 1796216400
        assert_eq!(parse_time("2026-12-02T13:00:00Z"), Ok(1_796_216_400_000));
        assert_eq!(parse_time("2026-12-02T13:00:00.25Z"), Ok(1_796_216_400_250));
        assert_eq!(
            parse_time("2026-12-02T14:00:00+01:00"),
            Ok(1_796_216_400_000)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert!(parse_time("2026-13-02T13:00:00Z").is_err());
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn selectors_match_as_prometheus_does() {
        let s = Selector::parse(r#"{job="node",__name__=~"up|scrape_.*"}"#).unwrap();
        assert_eq!(s.groups.len(), 1);
        let s = Selector::parse(r#"up{instance!=""}"#).unwrap();
        assert!(s.groups[0]
            .iter()
            .any(|m| m.name == "__name__" && m.value == "up"));
        assert!(Selector::parse("rate(up[5m])").is_err());
    }
}
