//! `walfix stats`: what a WAL holds, per log and segment, and where its series come from.

use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use walfix::refset::RefSet;
use walfix::replay::{read_segment, replay_order, Event};
use walfix::report::{show_path, Text};
use walfix_format::record::{
    self, Acceptance, Exemplar, HistogramSample, LogKind, Metadata, MmapMarker, RecordType, Sample,
    Series, Tombstone, Visitor, STALE_NAN_BITS,
};
use walfix_format::text::{escape, escape_controls};

/// Label pairs ranked at most; beyond, pairs are counted but not ranked (memory bound).
const MAX_PAIRS: usize = 1_000_000;

/// Count records, series, samples and time ranges per log and segment; rank metrics, label
/// names, label values and targets by series and by series created.
#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 every record read cleanly; 1 some records could not be read; 3 operational error."
)]
pub struct StatsArgs {
    /// A Prometheus data dir, a wal/, wbl/ or checkpoint.N dir, or one segment file.
    path: PathBuf,
    /// One JSON object (schema walfix-stats/1) instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Entries in each ranking.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Treat the WAL as a Prometheus agent WAL.
    #[arg(long)]
    agent: bool,
}

#[derive(Default, Serialize)]
struct Counts {
    records: u64,
    records_by_type: std::collections::BTreeMap<&'static str, u64>,
    series: u64,
    samples: u64,
    stale_markers: u64,
    histograms: u64,
    exemplars: u64,
    tombstones: u64,
    metadata: u64,
    mmap_markers: u64,
    problems: u64,
    min_time: Option<i64>,
    max_time: Option<i64>,
}

impl Counts {
    fn time(&mut self, t: i64) {
        self.min_time = Some(self.min_time.map_or(t, |m| m.min(t)));
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
    }
    fn add(&mut self, o: &Counts) {
        self.records += o.records;
        for (k, v) in &o.records_by_type {
            *self.records_by_type.entry(k).or_default() += v;
        }
        self.series += o.series;
        self.samples += o.samples;
        self.stale_markers += o.stale_markers;
        self.histograms += o.histograms;
        self.exemplars += o.exemplars;
        self.tombstones += o.tombstones;
        self.metadata += o.metadata;
        self.mmap_markers += o.mmap_markers;
        self.problems += o.problems;
        if let Some(t) = o.min_time {
            self.time(t);
        }
        if let Some(t) = o.max_time {
            self.time(t);
        }
    }
}

#[derive(Serialize)]
struct SegmentStats {
    log: &'static str,
    segment: u64,
    #[serde(serialize_with = "walfix::report::lossless_path")]
    path: PathBuf,
    #[serde(flatten)]
    counts: Counts,
}

/// Series per key: all defined, and those created in the live segments (not the checkpoint).
#[derive(Default, Clone, Copy)]
struct Tally {
    series: u64,
    created: u64,
}

#[derive(Serialize)]
struct Ranked {
    name: Text,
    series: u64,
    series_created: u64,
}

#[derive(Default)]
struct Ranks {
    metrics: HashMap<Vec<u8>, Tally>,
    label_names: HashMap<Vec<u8>, Tally>,
    pairs: HashMap<(Vec<u8>, Vec<u8>), Tally>,
    pairs_unranked: u64,
    targets: HashMap<(Vec<u8>, Vec<u8>), Tally>,
    seen: RefSet,
    duplicate_refs: u64,
}

struct Collect<'a> {
    c: &'a mut Counts,
    ranks: &'a mut Ranks,
    created: bool,
}

fn bump<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Tally>, k: K, created: bool) {
    let t = m.entry(k).or_default();
    t.series += 1;
    t.created += u64::from(created);
}

impl Visitor for Collect<'_> {
    fn series(&mut self, s: &Series<'_>) {
        self.c.series += 1;
        let r = &mut *self.ranks;
        if !r.seen.insert(s.series_ref) {
            // Defined again: Prometheus keeps the first and maps the ref to it.
            r.duplicate_refs += 1;
            return;
        }
        let created = self.created;
        let name = s.labels.get(b"__name__").unwrap_or_default();
        bump(&mut r.metrics, name.to_vec(), created);
        let job = s.labels.get(b"job").unwrap_or_default();
        let instance = s.labels.get(b"instance").unwrap_or_default();
        bump(&mut r.targets, (job.to_vec(), instance.to_vec()), created);
        for (n, v) in s.labels.iter() {
            bump(&mut r.label_names, n.to_vec(), created);
            if n == b"__name__" {
                continue;
            }
            let key = (n.to_vec(), v.to_vec());
            if r.pairs.len() < MAX_PAIRS || r.pairs.contains_key(&key) {
                bump(&mut r.pairs, key, created);
            } else {
                r.pairs_unranked += 1;
            }
        }
    }
    fn sample(&mut self, s: &Sample) {
        self.c.samples += 1;
        if s.v.to_bits() == STALE_NAN_BITS {
            self.c.stale_markers += 1;
        }
        self.c.time(s.t);
    }
    fn tombstone(&mut self, _t: &Tombstone) {
        self.c.tombstones += 1;
    }
    fn exemplar(&mut self, _e: &Exemplar<'_>) {
        self.c.exemplars += 1;
    }
    fn mmap_marker(&mut self, _m: &MmapMarker) {
        self.c.mmap_markers += 1;
    }
    fn metadata(&mut self, _m: &Metadata<'_>) {
        self.c.metadata += 1;
    }
    fn histogram(&mut self, h: &HistogramSample<'_>) {
        self.c.histograms += 1;
        self.c.time(h.t);
    }
}

fn top<K: Clone>(
    m: &HashMap<K, Tally>,
    n: usize,
    by_created: bool,
    name: impl Fn(&K) -> Vec<u8>,
) -> Vec<Ranked> {
    let mut v: Vec<(&K, &Tally)> = m.iter().collect();
    let key = |t: &Tally| if by_created { t.created } else { t.series };
    v.sort_by(|a, b| {
        key(b.1)
            .cmp(&key(a.1))
            .then_with(|| name(a.0).cmp(&name(b.0)))
    });
    v.into_iter()
        .take(n)
        .filter(|(_, t)| key(t) > 0)
        .map(|(k, t)| Ranked {
            name: Text(name(k)),
            series: t.series,
            series_created: t.created,
        })
        .collect()
}

#[derive(Serialize)]
struct Rankings {
    metrics_by_series: Vec<Ranked>,
    metrics_by_series_created: Vec<Ranked>,
    label_names_by_series: Vec<Ranked>,
    label_values_by_series: Vec<Ranked>,
    label_values_by_series_created: Vec<Ranked>,
    targets_by_series: Vec<Ranked>,
    distinct_metrics: u64,
    distinct_label_names: u64,
    distinct_label_pairs: u64,
    label_pairs_not_ranked: u64,
    distinct_series_refs: u64,
    duplicate_series_refs: u64,
}

#[derive(Serialize)]
struct Output<'a> {
    schema: &'static str,
    #[serde(serialize_with = "walfix::report::lossless_path")]
    path: &'a std::path::Path,
    totals: &'a Counts,
    logs: Vec<(&'static str, &'a Counts)>,
    segments: &'a [SegmentStats],
    rankings: Rankings,
}

fn fail(msg: String) -> ExitCode {
    eprintln!("walfix stats: {}", escape_controls(&msg));
    ExitCode::from(3)
}

fn pair_name(k: &(Vec<u8>, Vec<u8>)) -> Vec<u8> {
    let mut v = k.0.clone();
    v.push(b'=');
    v.extend_from_slice(&k.1);
    v
}

fn target_name(k: &(Vec<u8>, Vec<u8>)) -> Vec<u8> {
    let mut v = b"job=".to_vec();
    v.extend_from_slice(&k.0);
    v.extend_from_slice(b" instance=");
    v.extend_from_slice(&k.1);
    v
}

pub fn run(args: StatsArgs) -> ExitCode {
    let flavor = if args.agent {
        walfix::WalFlavor::Agent
    } else {
        walfix::WalFlavor::Server
    };
    let layout = match walfix::layout::discover(&args.path, flavor) {
        Ok(l) => l,
        Err(e) => return fail(format!("{}: {e}", show_path(&args.path))),
    };
    let mut segments = Vec::new();
    let mut ranks = Ranks::default();
    let order = replay_order(&layout);
    let bar = crate::progress::Bar::bytes(order.iter().map(|s| s.len).sum(), "reading");
    for seg in order {
        bar.inc(seg.len);
        let mut c = Counts::default();
        let created = seg.kind != LogKind::Checkpoint;
        let res = read_segment(&seg, &mut |ev| {
            match ev {
                Event::Problem(p) => {
                    if p.is_error() {
                        c.problems += 1;
                    }
                }
                Event::Record(r) => {
                    let t = r.data.first().copied().and_then(RecordType::from_u8);
                    if seg.kind.accepts(t) != Acceptance::Expected {
                        return ControlFlow::Continue(());
                    }
                    c.records += 1;
                    *c.records_by_type
                        .entry(t.map_or("unknown", RecordType::name))
                        .or_default() += 1;
                    let mut v = Collect {
                        c: &mut c,
                        ranks: &mut ranks,
                        created,
                    };
                    if record::visit(r.data, &mut v).is_err() {
                        c.problems += 1;
                    }
                }
            }
            ControlFlow::Continue(())
        });
        if let Err(e) = res {
            return fail(format!("{}: {e}", show_path(&seg.path)));
        }
        segments.push(SegmentStats {
            log: seg.kind.name(),
            segment: seg.index,
            path: seg.path.clone(),
            counts: c,
        });
    }
    let mut totals = Counts::default();
    let mut logs: Vec<(&'static str, Counts)> = Vec::new();
    for s in &segments {
        totals.add(&s.counts);
        match logs.iter_mut().find(|(n, _)| *n == s.log) {
            Some((_, c)) => c.add(&s.counts),
            None => {
                let mut c = Counts::default();
                c.add(&s.counts);
                logs.push((s.log, c));
            }
        }
    }
    let n = args.top;
    let rankings = Rankings {
        metrics_by_series: top(&ranks.metrics, n, false, |k| k.clone()),
        metrics_by_series_created: top(&ranks.metrics, n, true, |k| k.clone()),
        label_names_by_series: top(&ranks.label_names, n, false, |k| k.clone()),
        label_values_by_series: top(&ranks.pairs, n, false, pair_name),
        label_values_by_series_created: top(&ranks.pairs, n, true, pair_name),
        targets_by_series: top(&ranks.targets, n, false, target_name),
        distinct_metrics: ranks.metrics.len() as u64,
        distinct_label_names: ranks.label_names.len() as u64,
        distinct_label_pairs: ranks.pairs.len() as u64,
        label_pairs_not_ranked: ranks.pairs_unranked,
        distinct_series_refs: ranks.seen.len(),
        duplicate_series_refs: ranks.duplicate_refs,
    };
    let code = if totals.problems > 0 { 1 } else { 0 };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let res = if args.json {
        let o = Output {
            schema: "walfix-stats/1",
            path: &args.path,
            totals: &totals,
            logs: logs.iter().map(|(n, c)| (*n, c)).collect(),
            segments: &segments,
            rankings,
        };
        serde_json::to_writer(&mut out, &o)
            .map_err(io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        human(&mut out, &args.path, &totals, &logs, &segments, &rankings)
    }
    .and_then(|_| out.flush());
    match res {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => fail(format!("writing output: {e}")),
        _ => ExitCode::from(code),
    }
}

fn time(t: Option<i64>) -> String {
    t.map_or("-".into(), crate::human::rfc3339_ms)
}

fn human(
    out: &mut impl Write,
    path: &std::path::Path,
    totals: &Counts,
    logs: &[(&'static str, Counts)],
    segments: &[SegmentStats],
    r: &Rankings,
) -> io::Result<()> {
    writeln!(out, "walfix stats {}", show_path(path))?;
    writeln!(
        out,
        "{:<11} {:>9} {:>8} {:>9} {:>12} {:>6} {:>10}  time range",
        "log", "segment", "records", "series", "samples", "stale", "histograms"
    )?;
    for s in segments {
        let c = &s.counts;
        writeln!(
            out,
            "{:<11} {:>9} {:>8} {:>9} {:>12} {:>6} {:>10}  {} .. {}{}",
            s.log,
            s.segment,
            c.records,
            c.series,
            c.samples,
            c.stale_markers,
            c.histograms,
            time(c.min_time),
            time(c.max_time),
            if c.problems > 0 {
                format!("  ({} unreadable)", c.problems)
            } else {
                String::new()
            }
        )?;
    }
    for (name, c) in logs {
        writeln!(
            out,
            "{:<11} {:>9} {:>8} {:>9} {:>12} {:>6} {:>10}  {} .. {}",
            format!("{name} total"),
            "",
            c.records,
            c.series,
            c.samples,
            c.stale_markers,
            c.histograms,
            time(c.min_time),
            time(c.max_time)
        )?;
    }
    writeln!(
        out,
        "Records by type: {}",
        totals
            .records_by_type
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        out,
        "Series refs: {} distinct, {} defined again; {} metric names, {} label names, {} label pairs{}",
        r.distinct_series_refs,
        r.duplicate_series_refs,
        r.distinct_metrics,
        r.distinct_label_names,
        r.distinct_label_pairs,
        if r.label_pairs_not_ranked > 0 {
            format!(" ({} more not ranked)", r.label_pairs_not_ranked)
        } else {
            String::new()
        }
    )?;
    for (title, list, created) in [
        ("Top metrics by series", &r.metrics_by_series, false),
        (
            "Top metrics by series created (churn)",
            &r.metrics_by_series_created,
            true,
        ),
        ("Top label names by series", &r.label_names_by_series, false),
        (
            "Top label values by series",
            &r.label_values_by_series,
            false,
        ),
        (
            "Top label values by series created (churn)",
            &r.label_values_by_series_created,
            true,
        ),
        ("Targets by series", &r.targets_by_series, false),
    ] {
        writeln!(out, "{title}:")?;
        for e in list.iter() {
            writeln!(
                out,
                "  {:>9}  {}",
                if created { e.series_created } else { e.series },
                escape(e.name.as_bytes())
            )?;
        }
    }
    Ok(())
}
