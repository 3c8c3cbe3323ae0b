//! `check`: read every log under a path and say what is wrong and what Prometheus would do.

use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use walfix_format::frames::{Problem, ProblemKind};
use walfix_format::record::{LogKind, RecordType};

use crate::layout::{discover, Leftover, Log, WalFlavor};
use crate::refset::RefSet;
use crate::replay::{self, Place, Segment};
use crate::report::{
    Finding, FindingKind, LogSummary, NotReplayed, PrometheusOutcome, PrometheusStop, Report,
    Severity, Stats,
};
use crate::scan::{scan_segment, Level, SegmentScan};

/// Options for [`check`].
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// How deep to read.
    pub level: Level,
    /// Server or agent WAL.
    pub flavor: WalFlavor,
    /// Told the bytes of each segment once it is read (for a progress bar).
    pub progress: crate::Progress,
}

/// Checks the WAL, WBL and checkpoints under `path` (a data dir, a `wal/`, `wbl/` or
/// `checkpoint.N` dir, or one segment file). Read-only. Fails only if `path` cannot be read or
/// holds no log; unreadable segments become [`Severity::Unreadable`] findings.
///
/// ```no_run
/// let report = walfix::check(std::path::Path::new("/prometheus"), &Default::default())?;
/// for f in &report.findings {
///     println!("{} {} {:?} {:?}: {}", f.severity.name(), f.kind, f.segment, f.offset, f.message);
/// }
/// std::process::exit(report.exit_code);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn check(path: &Path, opts: &CheckOptions) -> io::Result<Report> {
    let layout = discover(path, opts.flavor)?;
    Ok(check_layout(&layout, opts))
}

/// Where a segment sits, which decides how bad its damage is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// Inside the checkpoint Prometheus loads.
    Checkpoint,
    /// A WAL segment at or below the checkpoint index: Prometheus skips it.
    Covered,
    /// A segment Prometheus replays.
    Live,
}

impl From<Place> for Role {
    fn from(p: Place) -> Role {
        match p {
            Place::Checkpoint(_) => Role::Checkpoint,
            Place::Covered => Role::Covered,
            _ => Role::Live,
        }
    }
}

struct Scanned<'a> {
    log: &'a Log,
    seg: Segment,
    role: Role,
    newest: bool,
    scan: Result<SegmentScan, io::Error>,
}

/// Checks an already discovered layout.
pub fn check_layout(layout: &crate::layout::Layout, opts: &CheckOptions) -> Report {
    let mut findings = Vec::new();
    let mut summaries = Vec::new();
    let mut totals = Stats::default();
    let mut known = RefSet::new();
    let mut replay: Vec<Scanned<'_>> = Vec::new();
    let mut startup_failure: Option<String> = None;

    for log in &layout.logs {
        structure(log, &mut findings, &mut startup_failure);
        let (ck_segs, covered_to) = replay::checkpoint_parts(log);
        if let Some(ck) = &log.checkpoint {
            let scanned = scan_log(&ck.log, ck_segs, opts, &mut known);
            summaries.push(summary(&ck.log, &scanned));
            replay.extend(scanned);
        }
        let segs = replay::log_segments(log, |s| replay::live_place(covered_to, s));
        let scanned = scan_log(log, segs, opts, &mut known);
        summaries.push(summary(log, &scanned));
        replay.extend(scanned);
    }

    for s in &replay {
        if s.role != Role::Covered {
            if let Ok(scan) = &s.scan {
                totals.add(&scan.stats);
            }
        }
    }

    let not_replayed: Vec<NotReplayed> = layout
        .logs
        .iter()
        .flat_map(|log| {
            log.leftovers.iter().filter_map(move |l| match l {
                Leftover::RepairFile(p) => Some(repair_file_loss(log, p, opts.level)),
                _ => None,
            })
        })
        .collect();
    let outcome = prometheus_view(&replay, startup_failure, &totals, not_replayed);
    for s in &replay {
        segment_findings(s, &mut findings);
    }
    order(&mut findings, &replay);

    let worst = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Info);
    Report {
        root: layout.root.clone(),
        logs: summaries,
        findings,
        totals,
        distinct_series: known.len(),
        prometheus_outcome: outcome.to_string(),
        prometheus: outcome,
        worst,
        exit_code: worst.exit_code(),
    }
}

fn summary(log: &Log, scanned: &[Scanned<'_>]) -> LogSummary {
    let mut stats = Stats::default();
    for s in scanned {
        match &s.scan {
            Ok(scan) => stats.add(&scan.stats),
            Err(_) => {
                stats.segments += 1;
                stats.bytes += s.seg.len;
            }
        }
    }
    LogSummary {
        log: log.kind,
        path: log.path.clone(),
        first_segment: log.segments.first().map(|s| s.index),
        last_segment: log.segments.last().map(|s| s.index),
        stats,
    }
}

/// Scans the segments of one log in parallel, a window at a time, merging results in order so
/// that "series defined before this sample" follows replay order.
fn scan_log<'a>(
    log: &'a Log,
    segs: Vec<Segment>,
    opts: &CheckOptions,
    known: &mut RefSet,
) -> Vec<Scanned<'a>> {
    let newest = segs.iter().rev().find(|s| s.len > 0).map(|s| s.index);
    let window = rayon::current_num_threads().max(1) * 2;
    let mut out = Vec::with_capacity(segs.len());
    let mut segs = segs.into_iter().peekable();
    while segs.peek().is_some() {
        let chunk: Vec<Segment> = segs.by_ref().take(window).collect();
        let results: Vec<_> = chunk
            .into_par_iter()
            .map(|seg| {
                let scan = read_and_scan(&seg, opts.level, None);
                opts.progress.advance(seg.len);
                (seg, scan)
            })
            .collect();
        for (seg, mut scan) in results {
            let role = Role::from(seg.place);
            if let Ok(sc) = &mut scan {
                if role != Role::Covered {
                    merge_refs(&seg, opts.level, sc, known);
                }
            }
            out.push(Scanned {
                log,
                newest: Some(seg.index) == newest && role != Role::Checkpoint,
                role,
                seg,
                scan,
            });
        }
    }
    out
}

fn read_and_scan(
    seg: &Segment,
    level: Level,
    known_before: Option<&RefSet>,
) -> io::Result<SegmentScan> {
    if seg.is_dir {
        return Err(io::Error::other("is a directory"));
    }
    replay::with_segment(&seg.path, |data| {
        scan_segment(data, seg.kind, level, known_before)
    })
}

/// Adds a segment's series to `known` and, if it used refs nobody defined before, counts them
/// exactly with a second pass (rare: it only happens on damaged or truncated WALs).
fn merge_refs(seg: &Segment, level: Level, scan: &mut SegmentScan, known: &mut RefSet) {
    let missing = scan.used_undefined.iter().any(|r| !known.contains(r));
    if missing {
        if let Ok(exact) = read_and_scan(seg, level, Some(known)) {
            scan.unknown = exact.unknown;
        }
    }
    for &r in &scan.defined {
        known.insert(r);
    }
    // Free the per-segment set now: only the merged one is needed from here on.
    scan.used_undefined = RefSet::new();
    scan.defined = Vec::new();
}

fn finding(
    severity: Severity,
    kind: FindingKind,
    log: &Log,
    file: PathBuf,
    message: String,
    prometheus: String,
) -> Finding {
    Finding {
        severity,
        kind,
        log: log.kind,
        file,
        segment: None,
        offset: None,
        end: None,
        lost_from: None,
        record_index: None,
        message,
        prometheus,
        prometheus_error: None,
        unknown_refs: None,
    }
}

/// Findings about the directory itself: names, gaps, leftovers.
fn structure(log: &Log, out: &mut Vec<Finding>, startup: &mut Option<String>) {
    if log.single_file {
        return;
    }
    let mut fail = |msg: String| {
        if startup.is_none() {
            *startup = Some(msg);
        }
    };
    // Start-up fails at the listing (sequence) before it fails opening a segment for replay.
    let mut later: Vec<String> = Vec::new();
    for s in &log.segments {
        if s.is_dir {
            out.push(Finding {
                segment: Some(s.index),
                ..finding(
                    Severity::NeedsHuman,
                    FindingKind::SegmentIsDirectory,
                    log,
                    s.path.clone(),
                    format!("segment {} is a directory, not a file", s.name),
                    "Prometheus takes it for a segment and fails when it opens it".into(),
                )
            });
            later.push(format!("it cannot read segment {} (a directory)", s.name));
        }
        let canonical = crate::layout::segment_name(s.index);
        if s.name != canonical {
            out.push(Finding {
                segment: Some(s.index),
                ..finding(
                    Severity::NeedsHuman,
                    FindingKind::OddSegmentName,
                    log,
                    s.path.clone(),
                    format!("segment name {:?} is not {canonical:?}", s.name),
                    format!("Prometheus lists it as segment {} but opens it as {canonical} and fails to start (`open WAL segment: {}`)", s.index, s.index),
                )
            });
            later.push(format!(
                "`open WAL segment: {}: no such file or directory` (the file is named {:?})",
                s.index, s.name
            ));
        }
    }
    for w in log.segments.windows(2) {
        if w[1].index == w[0].index {
            out.push(Finding {
                segment: Some(w[0].index),
                ..finding(
                    Severity::NeedsHuman,
                    FindingKind::DuplicateSegmentIndex,
                    log,
                    w[1].path.clone(),
                    format!("{:?} and {:?} are both segment {}", w[0].name, w[1].name, w[0].index),
                    "Prometheus refuses to start: `opening storage failed: get segment range: segments are not sequential`".into(),
                )
            });
            fail("`get segment range: segments are not sequential`".into());
        } else if w[1].index != w[0].index + 1 {
            let missing = if w[1].index == w[0].index + 2 {
                format!("{:08}", w[0].index + 1)
            } else {
                format!("{:08}..{:08}", w[0].index + 1, w[1].index - 1)
            };
            out.push(Finding {
                segment: Some(w[0].index + 1),
                ..finding(
                    Severity::NeedsHuman,
                    FindingKind::SegmentGap,
                    log,
                    log.path.clone(),
                    format!(
                        "segment(s) {missing} missing between {} and {}",
                        w[0].name, w[1].name
                    ),
                    "Prometheus refuses to start: `opening storage failed: get segment range: segments are not sequential`".into(),
                )
            });
            fail("`get segment range: segments are not sequential`".into());
        }
    }
    for m in later {
        fail(m);
    }
    match log.kind {
        LogKind::Wal | LogKind::Agent => {
            let first = log.segments.first().map(|s| s.index);
            match (&log.checkpoint, first) {
                (None, Some(f)) if f != 0 => {
                    out.push(Finding {
                        segment: Some(0),
                        ..finding(
                            Severity::NeedsHuman,
                            FindingKind::MissingFirstSegment,
                            log,
                            log.path.clone(),
                            format!("no checkpoint and the first segment is {f:08}, not 00000000"),
                            "without a checkpoint Prometheus replays from segment 0 and fails to start (`open WAL segment: 0`), unless a chunk snapshot says where to start".into(),
                        )
                    });
                    fail("it replays from segment 0, which is missing".into());
                }
                (Some(ck), _) => {
                    let after: Vec<_> =
                        log.segments.iter().filter(|s| s.index > ck.index).collect();
                    match after.first() {
                        Some(s) if s.index != ck.index + 1 => {
                            out.push(Finding {
                                segment: Some(ck.index + 1),
                                ..finding(
                                    Severity::NeedsHuman,
                                    FindingKind::MissingSegmentAfterCheckpoint,
                                    log,
                                    log.path.clone(),
                                    format!("checkpoint.{:08} is followed by segment {}, not {:08}", ck.index, s.name, ck.index + 1),
                                    format!("Prometheus replays from segment {} after the checkpoint and fails to start (`open WAL segment: {}`)", ck.index + 1, ck.index + 1),
                                )
                            });
                            fail(format!("segment {:08} after the checkpoint is missing", ck.index + 1));
                        }
                        None => out.push(Finding {
                            segment: Some(ck.index + 1),
                            ..finding(
                                Severity::NeedsHuman,
                                FindingKind::MissingSegmentAfterCheckpoint,
                                log,
                                log.path.clone(),
                                format!("checkpoint.{:08} has no segment after it", ck.index),
                                "Prometheus starts a new segment numbered at or below the checkpoint; later replays skip what it writes there".into(),
                            )
                        }),
                        _ => {}
                    }
                    let covered = log.segments.iter().filter(|s| s.index <= ck.index).count();
                    if covered > 0 {
                        out.push(finding(
                            Severity::Info,
                            FindingKind::SegmentsCoveredByCheckpoint,
                            log,
                            log.path.clone(),
                            format!("{covered} segment(s) numbered at or below checkpoint.{:08}", ck.index),
                            "Prometheus skips them (the checkpoint holds what it needs) and deletes them at the next truncation".into(),
                        ));
                    }
                    let cs = &ck.log.segments;
                    if cs.first().is_some_and(|s| s.index != 0) {
                        out.push(finding(
                            Severity::NeedsHuman,
                            FindingKind::CheckpointMissingFirstSegment,
                            &ck.log,
                            ck.log.path.clone(),
                            "the checkpoint's first segment is not 00000000".into(),
                            "Prometheus fails to load the checkpoint and does not start".into(),
                        ));
                        fail("the checkpoint cannot be opened".into());
                    }
                    let mut inner = None;
                    structure(&ck.log, out, &mut inner);
                    if let Some(m) = inner {
                        fail(format!("in the checkpoint, {m}"));
                    }
                }
                _ => {}
            }
        }
        LogKind::Checkpoint => {
            for s in &log.segments {
                if s.len % walfix_format::fragment::PAGE_SIZE as u64 != 0 {
                    out.push(Finding {
                        segment: Some(s.index),
                        ..finding(
                            Severity::Warning,
                            FindingKind::UnalignedCheckpointSegment,
                            log,
                            s.path.clone(),
                            format!("checkpoint segment is {} bytes, not a whole number of pages", s.len),
                            "Prometheus closes checkpoint segments padded; this one was cut short or changed".into(),
                        )
                    });
                }
            }
        }
        LogKind::Wbl => {}
    }
    for l in &log.leftovers {
        let f = match l {
            Leftover::RepairFile(p) => finding(
                Severity::Repairable,
                FindingKind::LeftoverRepairFile,
                log,
                p.clone(),
                "a segment renamed by an interrupted Prometheus repair".into(),
                "Prometheus ignores it forever: the records in it are not replayed".into(),
            ),
            Leftover::CheckpointTmp(p) => finding(
                Severity::Warning,
                FindingKind::StaleCheckpointTmp,
                log,
                p.clone(),
                "an interrupted checkpoint".into(),
                "Prometheus deletes it at start-up".into(),
            ),
            Leftover::CheckpointNotDir(p) => {
                fail(format!("`find last checkpoint: checkpoint {} is not a directory`", p.display()));
                finding(
                    Severity::NeedsHuman,
                    FindingKind::CheckpointNotDirectory,
                    log,
                    p.clone(),
                    "a checkpoint.N entry that is not a directory".into(),
                    "Prometheus refuses to start: `find last checkpoint: checkpoint ... is not a directory`".into(),
                )
            }
            Leftover::OldCheckpoint(p) => finding(
                Severity::Info,
                FindingKind::OldCheckpoint,
                log,
                p.clone(),
                "an older checkpoint left behind".into(),
                "Prometheus uses only the highest checkpoint and deletes older ones at the next checkpoint".into(),
            ),
        };
        out.push(f);
    }
}

fn entries(stats: &Stats) -> u64 {
    stats.float_samples + stats.histogram_samples + stats.float_histogram_samples
}

/// Records of a `.repair` file that the segment of its number lacks. Prometheus's repair
/// (tsdb/wlog/wlog.go@v3.5.0 `Repair`) renames the damaged segment to `NNNNNNNN.repair`,
/// creates an empty segment of that number, copies the records before the damage into it and
/// only then removes the `.repair` file; a failure in between (no space, killed) leaves it.
/// `listSegments` skips names that are not numbers, so no later start reads it: what was not
/// copied yet is gone without an error.
fn repair_file_loss(log: &Log, path: &Path, level: Level) -> NotReplayed {
    let count = |p: &Path| -> (u64, u64) {
        replay::with_segment(p, |d| {
            let sc = scan_segment(d, log.kind, level, None);
            (sc.stats.records, entries(&sc.stats))
        })
        .unwrap_or((0, 0))
    };
    let (records, samples) = count(path);
    let seg_name = path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".repair").to_string())
        .unwrap_or_default();
    let index = crate::layout::parse_index(&seg_name);
    let (seg_records, seg_samples) = log
        .segments
        .iter()
        .find(|s| Some(s.index) == index && !s.is_dir)
        .map_or((0, 0), |s| count(&s.path));
    NotReplayed {
        file: path.to_path_buf(),
        records: records.saturating_sub(seg_records),
        samples: samples.saturating_sub(seg_samples),
    }
}

/// Works out what Prometheus does on start: the first thing in replay order that stops it
/// (a start-up check, a segment it cannot open, a corruption) decides.
fn prometheus_view(
    replay: &[Scanned<'_>],
    startup_failure: Option<String>,
    totals: &Stats,
    not_replayed: Vec<NotReplayed>,
) -> PrometheusOutcome {
    if let Some(msg) = startup_failure {
        return PrometheusOutcome::DoesNotStart { error: msg };
    }
    // Before 2.52, db.Open first opens the lowest-numbered WAL segment to look for a pre-2.0
    // WAL (tsdb/wal.go@v2.42.0 deprecatedWALExists, gone in v2.52.0), covered or not.
    let first_wal = replay.iter().find(|s| {
        s.role != Role::Checkpoint && matches!(s.log.kind, LogKind::Wal | LogKind::Agent)
    });
    if let Some(s) = first_wal.filter(|s| s.role == Role::Covered && !s.seg.is_dir) {
        if let Err(e) = &s.scan {
            return PrometheusOutcome::DoesNotStart {
                error: format!(
                    "before 2.52 it opens the first segment, {}, at start and cannot read it: {e} (`opening storage failed: migrate WAL: check first existing segment: open {}: ...`); 2.52 and later skip it, as the checkpoint covers it",
                    s.seg.path.display(),
                    s.seg.path.display()
                ),
            };
        }
    }
    enum Stop<'a> {
        Unreadable(&'a io::Error),
        Corrupt(&'a Problem),
    }
    // The first error in replay order: checkpoint, then live segments, then the WBL.
    let first = replay.iter().enumerate().find_map(|(i, s)| {
        if s.role == Role::Covered {
            return None;
        }
        match &s.scan {
            // A directory is a start-up failure, reported above.
            Err(_) if s.seg.is_dir => None,
            Err(e) => Some((i, Stop::Unreadable(e))),
            Ok(scan) => {
                let p = scan.problems.iter().find(|p| p.prometheus.is_some())?;
                Some((i, Stop::Corrupt(p)))
            }
        }
    });
    let p = match first {
        None => {
            let mut unknown = crate::report::UnknownRefs::default();
            for s in replay.iter().filter(|s| s.role != Role::Covered) {
                if let Ok(scan) = &s.scan {
                    unknown.add(&scan.unknown);
                }
            }
            return PrometheusOutcome::ReplaysAll {
                unknown_refs: unknown,
                not_replayed,
            };
        }
        Some((i, Stop::Unreadable(e))) => {
            // head.go@v3.5.0 Init: `open checkpoint: %w` / `open WAL segment: %d: %w` /
            // `open WBL segment: %d: %w`; not a CorruptionErr, so db.go's open hands it to
            // wlog.Repair, which refuses it (`cannot handle error`), and the open fails.
            let s = &replay[i];
            let (log, what) = match s.role {
                Role::Checkpoint => ("WAL", "open checkpoint".to_string()),
                _ if s.log.kind == LogKind::Wbl => {
                    ("WBL", format!("open WBL segment: {}", s.seg.index))
                }
                _ => ("WAL", format!("open WAL segment: {}", s.seg.index)),
            };
            return PrometheusOutcome::DoesNotStart {
                error: format!(
                    "it cannot read {}: {e} (`opening storage failed: repair corrupted {log}: cannot handle error: {what}: open {}: ...`)",
                    s.seg.path.display(),
                    s.seg.path.display()
                ),
            };
        }
        Some((i, Stop::Corrupt(p))) => (i, p),
    };
    let (i, p) = p;
    let s = &replay[i];
    let prom = p.prometheus.as_ref().expect("filtered above");
    let error = PrometheusStop {
        offset: prom.offset as u64,
        message: prom.message.clone(),
    };
    match s.role {
        Role::Checkpoint => {
            let live: Vec<_> = replay
                .iter()
                .filter(|r| {
                    r.role != Role::Checkpoint
                        && r.log.kind != LogKind::Wbl
                        && r.seg.index > s.seg.index
                })
                .collect();
            PrometheusOutcome::CheckpointRepairFails {
                file: s.seg.path.clone(),
                segment: s.seg.index,
                error,
                segments_deleted: live.len() as u64,
                bytes_deleted: live.iter().map(|r| r.seg.len).sum(),
            }
        }
        _ => {
            let later: Vec<_> = replay
                .iter()
                .filter(|r| {
                    std::ptr::eq(r.log, s.log) && r.role == Role::Live && r.seg.index > s.seg.index
                })
                .collect();
            let later_entries: u64 = later
                .iter()
                .filter_map(|r| r.scan.as_ref().ok())
                .map(|sc| entries(&sc.stats))
                .sum();
            let scan = s.scan.as_ref().ok();
            let seg_entries = scan.map(|sc| entries(&sc.stats)).unwrap_or(0);
            let kept_here = scan
                .and_then(|sc| sc.samples_before_first_error)
                .unwrap_or(0);
            PrometheusOutcome::RepairsAndStarts {
                log: if s.log.kind == LogKind::Wbl {
                    LogKind::Wbl
                } else {
                    LogKind::Wal
                },
                file: s.seg.path.clone(),
                segment: s.seg.index,
                error,
                records_kept: p.record_index,
                later_segments_deleted: later.len() as u64,
                samples_lost: seg_entries.saturating_sub(kept_here) + later_entries,
                samples_total: entries(totals),
                not_replayed,
            }
        }
    }
}

fn segment_findings(s: &Scanned<'_>, out: &mut Vec<Finding>) {
    let log = s.log;
    let scan = match &s.scan {
        Ok(scan) => scan,
        // A directory was reported by `structure` already.
        Err(_) if s.seg.is_dir => return,
        Err(e) => {
            out.push(Finding {
                segment: Some(s.seg.index),
                ..finding(
                    Severity::Unreadable,
                    FindingKind::UnreadableSegment,
                    log,
                    s.seg.path.clone(),
                    format!("cannot read segment: {e}"),
                    // Replay opens only the segments after the checkpoint (head.go@v3.5.0 Init).
                    if s.role == Role::Covered {
                        "Prometheus 2.52 and later skip it (covered by the checkpoint) and delete it at the next truncation; before 2.52 Prometheus opens the lowest-numbered segment at start and fails if it is this one".into()
                    } else {
                        "Prometheus cannot read it either and fails to start".into()
                    },
                )
            });
            return;
        }
    };
    let mut first_error_seen = false;
    for p in &scan.problems {
        out.push(problem_finding(s, p, !first_error_seen));
        if p.is_error() {
            first_error_seen = true;
        }
    }
    if scan.more_problems > 0 {
        out.push(Finding {
            segment: Some(s.seg.index),
            ..finding(
                Severity::Warning,
                FindingKind::MoreProblems,
                log,
                s.seg.path.clone(),
                format!(
                    "{} more problems in this segment are not listed",
                    scan.more_problems
                ),
                "see the problems above".into(),
            )
        });
    }
    for (b, note) in &scan.ignored_types {
        let name = RecordType::from_u8(*b)
            .map_or_else(|| format!("unknown type {b}"), |t| t.name().to_string());
        out.push(Finding {
            segment: Some(s.seg.index),
            offset: Some(note.first_offset as u64),
            ..finding(
                Severity::Warning,
                FindingKind::IgnoredRecordType,
                log,
                s.seg.path.clone(),
                format!("{} record(s) of type {name} in a {} log", note.count, log.kind.name()),
                "Prometheus skips these records on replay: their data is not loaded (written by a newer version, or zstd read by a version before 2.46)".into(),
            )
        });
    }
    if scan.unknown.entries() > 0 {
        let u = scan.unknown;
        out.push(Finding {
            segment: Some(s.seg.index),
            unknown_refs: Some(u),
            ..finding(
                Severity::Warning,
                FindingKind::UnknownSeriesRefs,
                log,
                s.seg.path.clone(),
                format!(
                    "{} series ref(s) used with no series record before them: {} samples, {} histograms, {} exemplars, {} metadata, {} tombstones, {} mmap markers",
                    u.series, u.samples, u.histograms, u.exemplars, u.metadata, u.tombstones, u.mmap_markers
                ),
                "Prometheus drops these entries on replay and logs `Unknown series references`".into(),
            )
        });
    }
    let torn = scan.problems.iter().any(|p| {
        matches!(
            p.kind,
            ProblemKind::TornFragment | ProblemKind::TruncatedRecord { .. }
        )
    });
    let page = walfix_format::fragment::PAGE_SIZE as u64;
    // The length read with the bytes, not the one listed earlier: the file may have changed.
    let len = scan.stats.bytes;
    if !len.is_multiple_of(page) && !torn && s.role != Role::Checkpoint {
        out.push(Finding {
            segment: Some(s.seg.index),
            offset: Some(len),
            ..finding(
                Severity::Info,
                FindingKind::UnalignedTail,
                log,
                s.seg.path.clone(),
                format!(
                    "segment ends mid-page at {} after whole records (last record ends at {})",
                    len, scan.last_record_end
                ),
                "normal after a crash or kill: Prometheus pads the page with virtual zeros and reads on".into(),
            )
        });
    }
}

fn problem_finding(s: &Scanned<'_>, p: &Problem, first_in_segment: bool) -> Finding {
    let error = p.is_error();
    let severity = match (error, s.role) {
        (false, _) => Severity::Warning,
        (true, Role::Covered) => Severity::Warning,
        (true, Role::Checkpoint) => Severity::NeedsHuman,
        (true, Role::Live) => Severity::Repairable,
    };
    let kind = match &p.kind {
        ProblemKind::TornFragment if !s.newest => FindingKind::TruncatedSegment,
        k => FindingKind::of_problem(k),
    };
    let mut message = p.kind.describe();
    if matches!(
        p.kind,
        ProblemKind::TornFragment | ProblemKind::TruncatedRecord { .. }
    ) {
        if s.newest {
            message.push_str("; this is the newest segment: a write interrupted by a crash");
        } else {
            message.push_str("; this is not the newest segment: it was cut short after later segments were written");
        }
    }
    let prometheus = if let ProblemKind::UndecodableIgnoredRecord(_) = p.kind {
        "Prometheus's replay skips records of this type here without decoding them: it replays on"
            .to_string()
    } else if !error {
        "Prometheus's reader accepts this".to_string()
    } else if s.role == Role::Covered {
        "Prometheus skips this segment (it is covered by the checkpoint)".to_string()
    } else {
        match &p.prometheus {
            Some(_) if first_in_segment => {
                "Prometheus's reader stops here; see the outcome below".to_string()
            }
            Some(_) => "not reached by Prometheus: it stops at the first error in the segment and drops the rest".to_string(),
            None => "Prometheus ends the segment here without an error and silently drops the partial record".to_string(),
        }
    };
    Finding {
        severity,
        kind,
        log: s.log.kind,
        file: s.seg.path.clone(),
        segment: Some(s.seg.index),
        offset: Some(p.offset as u64),
        end: Some(p.end as u64),
        lost_from: error.then_some(p.lost_from as u64),
        record_index: Some(p.record_index),
        message,
        prometheus,
        prometheus_error: p.prometheus.as_ref().map(|e| PrometheusStop {
            offset: e.offset as u64,
            message: e.message.clone(),
        }),
        unknown_refs: None,
    }
}

/// Sorts findings into replay order: log, segment, offset; directory findings first.
/// Ranks come from one map built up front: a linear search per comparison made this
/// quadratic in findings x segments.
fn order(findings: &mut [Finding], replay: &[Scanned<'_>]) {
    let mut ranks: std::collections::HashMap<&Path, usize> =
        std::collections::HashMap::with_capacity(replay.len());
    for (i, s) in replay.iter().enumerate() {
        // The first segment with this path wins, as `position` did.
        ranks.entry(s.seg.path.as_path()).or_insert(i + 1);
    }
    findings.sort_by_cached_key(|f| {
        (
            ranks.get(f.file.as_path()).copied().unwrap_or(0),
            f.offset.unwrap_or(0),
        )
    });
}
