//! The plan: from a check of the WAL, the actions that make Prometheus replay it cleanly.

use super::*;

pub(super) fn error_findings(report: &Report) -> impl Iterator<Item = &Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.segment.is_some() && f.offset.is_some() && f.lost_from.is_some())
}

/// Computes the plan for the WAL under `path`. Reads only.
pub fn plan(path: &Path, opts: &RepairOptions) -> Result<Plan, RepairError> {
    let layout = discover(path, opts.flavor)?;
    let check_opts = CheckOptions {
        flavor: opts.flavor,
        progress: opts.progress.clone(),
        ..Default::default()
    };
    let before = check_layout(&layout, &check_opts);
    let root = data_root(&layout);
    let backup_dir = opts
        .backup_dir
        .clone()
        .unwrap_or_else(|| root.join("walfix-backup"));
    let backup_run = new_run_dir(&backup_dir);
    let mut p = Plan {
        mode: opts.mode,
        data_root: root,
        backup_dir,
        backup_run,
        actions: Vec::new(),
        unresolved: Vec::new(),
        backup_bytes: 0,
        loss: Loss::default(),
        before,
        seen: Vec::new(),
    };
    for (li, log) in layout.logs.iter().enumerate() {
        own_temps(log, &mut p);
        if let Some(ck) = &log.checkpoint {
            own_temps(&ck.log, &mut p);
            if opts.drop_checkpoint
                && p.before
                    .findings
                    .iter()
                    // By place, not by log kind: an agent's checkpoint is an `agent` log.
                    .any(|f| f.file.starts_with(&ck.log.path) && f.severity >= Severity::Repairable)
            {
                // Everything the checkpoint's segments hold is lost, read as a truncation at 0.
                let mut loss = Loss::default();
                for seg in ck.log.segments.iter().filter(|s| !s.is_dir) {
                    loss.add(&with_segment(&seg.path, |d| loss_from(d, 0)).unwrap_or_default());
                }
                p.actions.push(Action::MoveToBackup {
                    path: ck.log.path.clone(),
                    why: format!(
                        "damaged checkpoint dropped on request: the {} series it defines in its readable records (and any in its damaged ones) are lost unless later segments define them again",
                        loss.series
                    ),
                    loss: Some(loss),
                });
                // Without the checkpoint Prometheus replays from segment 0, so the segments the
                // checkpoint covered are replayed now: their damage and gaps count.
                let mut without = layout.clone();
                without.logs[li].checkpoint = None;
                let view = check_layout(&without, &check_opts);
                segments(log, opts, &mut p, &view)?;
                gaps_without_checkpoint(log, &mut p);
                leftovers(log, opts, &mut p)?;
                continue;
            } else {
                let view = p.before.clone();
                segments(&ck.log, opts, &mut p, &view)?;
                gaps(&ck.log, &mut p);
            }
        }
        let view = p.before.clone();
        segments(log, opts, &mut p, &view)?;
        gaps(log, &mut p);
        leftovers(log, opts, &mut p)?;
    }
    for f in &p.before.findings {
        if f.kind == crate::report::FindingKind::UnreadableSegment {
            p.unresolved
                .push(format!("{}: {}", f.file.display(), f.message));
        }
    }
    // Sizes are read now, before any rename: a renamed segment is found under its old name.
    let renamed: std::collections::HashMap<PathBuf, PathBuf> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::RenameSegment { from, path } => Some((path.clone(), from.clone())),
            _ => None,
        })
        .collect();
    let now = |path: &PathBuf| renamed.get(path).unwrap_or(path).clone();
    for a in &p.actions {
        if let Some(l) = a.loss() {
            p.loss.add(l);
        }
        p.backup_bytes += match a {
            Action::SalvageSegment { path, .. }
            | Action::TruncateSegment { path, .. }
            | Action::DeleteSegment { path, .. }
            | Action::PadSegment { path, .. } => {
                fs::metadata(now(path)).map(|m| m.len()).unwrap_or(0)
            }
            Action::MoveToBackup { path, .. } => dir_size(&now(path)),
            Action::RecoverRepairFile {
                repair_path,
                segment_path,
                ..
            } => {
                fs::metadata(repair_path).map(|m| m.len()).unwrap_or(0)
                    + fs::metadata(segment_path).map(|m| m.len()).unwrap_or(0)
            }
            _ => 0,
        };
    }
    p.seen = planned_files(&p)
        .into_iter()
        .map(|f| {
            let (len, mtime) = stat(&f);
            (f, len, mtime)
        })
        .collect();
    Ok(p)
}

/// Every file an action of `p` reads or replaces.
pub(super) fn planned_files(p: &Plan) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for a in &p.actions {
        match a {
            Action::RecoverRepairFile {
                repair_path,
                segment_path,
                ..
            } => {
                v.push(repair_path.clone());
                v.push(segment_path.clone());
            }
            Action::RenameSegment { from, .. } => v.push(from.clone()),
            a => v.push(a.path().to_path_buf()),
        }
    }
    v
}

pub(super) fn stat(f: &Path) -> (u64, Option<std::time::SystemTime>) {
    match fs::symlink_metadata(f) {
        Ok(m) => (m.len(), m.modified().ok()),
        Err(_) => (u64::MAX, None),
    }
}

pub(super) fn dir_size(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

pub(super) fn own_temps(log: &Log, p: &mut Plan) {
    if log.single_file {
        return;
    }
    if let Ok(rd) = fs::read_dir(&log.path) {
        for e in rd.flatten() {
            if is_temp_name(&e.file_name().to_string_lossy()) {
                p.actions.push(Action::RemoveOwnTemp { path: e.path() });
            }
        }
    }
}

/// Damage inside segments.
pub(super) fn segments(
    log: &Log,
    opts: &RepairOptions,
    p: &mut Plan,
    view: &Report,
) -> io::Result<()> {
    // Findings by file, built once: looking them up per segment was quadratic.
    let mut by_file: std::collections::HashMap<&Path, Vec<&Finding>> =
        std::collections::HashMap::new();
    for f in error_findings(view) {
        if f.severity >= Severity::Repairable {
            by_file.entry(f.file.as_path()).or_default().push(f);
        }
    }
    let errors_of = |seg: &crate::layout::SegmentFile| -> Vec<&'_ Finding> {
        by_file.get(seg.path.as_path()).cloned().unwrap_or_default()
    };
    // First, what each segment holds after the repair, to know which one will be the newest
    // non-empty segment (the one `--pad` pads and the only one left unpadded): a salvage that
    // keeps nothing or a cut at 0 leaves an empty segment, and truncate mode drops later ones.
    // Names per index, built once: a WAL can hold hundreds of thousands of segments.
    let mut names: std::collections::HashMap<u64, Vec<&str>> = std::collections::HashMap::new();
    for s in &log.segments {
        names.entry(s.index).or_default().push(s.name.as_str());
    }
    let duplicated = |seg: &crate::layout::SegmentFile| {
        !log.single_file && names.get(&seg.index).is_some_and(|n| n.len() > 1)
    };
    let first_bad = match opts.mode {
        Mode::Truncate => log
            .segments
            .iter()
            .position(|s| !s.is_dir && !duplicated(s) && !errors_of(s).is_empty()),
        Mode::Salvage => None,
    };
    let correct = !opts.no_correct;
    let mut salvage_loss: Vec<Option<(Loss, Vec<Correction>)>> = vec![None; log.segments.len()];
    let mut newest = None;
    for (i, seg) in log.segments.iter().enumerate() {
        if first_bad.is_some_and(|d| i > d) {
            break;
        }
        if seg.is_dir || duplicated(seg) {
            // Left alone (a duplicate) or replaced by an empty segment (a directory).
            continue;
        }
        let errors = errors_of(seg);
        let non_empty = if errors.is_empty() {
            seg.len > 0
        } else {
            let first_lost = errors.iter().filter_map(|f| f.lost_from).min().unwrap_or(0);
            if opts.mode == Mode::Truncate || errors.iter().all(|f| f.kind.is_tail()) {
                first_lost > 0
            } else {
                let (_, loss, kept, corr) =
                    with_segment(&seg.path, |d| salvage_with(d, log.kind, None, correct))?;
                salvage_loss[i] = Some((loss, corr));
                kept > 0
            }
        };
        if non_empty {
            newest = Some(seg.index);
        }
    }
    for (i, seg) in log.segments.iter().enumerate() {
        let canonical = crate::layout::segment_name(seg.index);
        // Two files with one index (`00000003` and `3`, or `3` and `+3`): which one holds the
        // segment is for a human to say; neither is touched.
        if duplicated(seg) {
            let same = &names[&seg.index];
            if same[0] == seg.name {
                p.unresolved.push(format!(
                    "{}: segment {} exists {} times ({}); keep one by hand",
                    log.path.display(),
                    seg.index,
                    same.len(),
                    same.iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            continue;
        }
        // Where the segment is once earlier actions ran: a renamed segment is changed under its
        // new name.
        let mut at_path = seg.path.clone();
        if !log.single_file && seg.name != canonical {
            let to = log.path.join(&canonical);
            if to.exists() {
                p.unresolved.push(format!(
                    "{}: {:?} is segment {} but {canonical:?} exists already; keep one by hand",
                    log.path.display(),
                    seg.name,
                    seg.index,
                ));
            } else {
                p.actions.push(Action::RenameSegment {
                    from: seg.path.clone(),
                    path: to.clone(),
                });
                at_path = to;
            }
        }
        if seg.is_dir {
            p.actions.push(Action::MoveToBackup {
                path: at_path.clone(),
                why: "a directory where a segment file belongs".into(),
                loss: None,
            });
            p.actions.push(Action::CreateEmptySegment {
                path: at_path.clone(),
            });
            continue;
        }
        let errors = errors_of(seg);
        let is_newest = Some(seg.index) == newest;
        let pad_tail = opts.pad && is_newest && !log.single_file;
        if errors.is_empty() {
            if pad_tail && seg.len % PAGE_SIZE as u64 != 0 {
                p.actions.push(Action::PadSegment {
                    path: at_path.clone(),
                    bytes: PAGE_SIZE as u64 - seg.len % PAGE_SIZE as u64,
                });
            }
            continue;
        }
        let first_lost = errors.iter().filter_map(|f| f.lost_from).min().unwrap_or(0) as usize;
        let all_tail = errors.iter().all(|f| f.kind.is_tail());
        if opts.mode == Mode::Truncate {
            // Prometheus's repair drops every later segment of the same log. Those go first
            // (newest first), so a run killed half-way still finds the damage and finishes.
            for later in log.segments[i + 1..].iter().rev() {
                let loss = with_segment(&later.path, |d| loss_from(d, 0)).unwrap_or_default();
                p.actions.push(Action::DeleteSegment {
                    path: later.path.clone(),
                    loss,
                });
            }
            p.actions.push(Action::TruncateSegment {
                path: at_path.clone(),
                at: first_lost as u64,
                pad: opts.pad,
                loss: with_segment(&seg.path, |d| loss_from(d, first_lost))?,
            });
            break;
        }
        if all_tail {
            // Older segments are closed padded, as Prometheus closes them.
            p.actions.push(Action::TruncateSegment {
                path: at_path.clone(),
                at: first_lost as u64,
                pad: pad_tail || !is_newest,
                loss: with_segment(&seg.path, |d| loss_from(d, first_lost))?,
            });
        } else {
            let (loss, corrections) = match salvage_loss[i].take() {
                Some(l) => l,
                None => with_segment(&seg.path, |d| {
                    let (_, loss, _, corr) = salvage_with(d, log.kind, None, correct);
                    (loss, corr)
                })?,
            };
            // Checkpoint segments are always closed padded by Prometheus.
            let ckpt = log
                .path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint."));
            p.actions.push(Action::SalvageSegment {
                path: at_path.clone(),
                corrections,
                pad: pad_tail || !is_newest || ckpt,
                loss,
            });
        }
    }
    Ok(())
}

/// The most empty segments a plan creates to close gaps: more means a stray file with a far
/// index, which a human should look at.
pub(super) const MAX_EMPTY_SEGMENTS: u64 = 10_000;

/// Gaps in numbering: empty segments fill them, so Prometheus starts and keeps every segment.
/// [`gaps`] for a log whose checkpoint is dropped: replay starts at segment 0.
pub(super) fn gaps_without_checkpoint(log: &Log, p: &mut Plan) {
    let mut log = log.clone();
    log.checkpoint = None;
    gaps(&log, p);
}

pub(super) fn gaps(log: &Log, p: &mut Plan) {
    if log.single_file {
        return;
    }
    // Segments the plan deletes (truncate mode drops those after the damage) are gone by then.
    let deleted: std::collections::HashSet<&PathBuf> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteSegment { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    let have: std::collections::BTreeSet<u64> = log
        .segments
        .iter()
        .filter(|s| !deleted.contains(&s.path))
        .map(|s| s.index)
        .collect();
    let (first, last) = (have.first().copied(), have.last().copied());
    // Prometheus lists every segment file, covered ones too, and refuses any hole between the
    // lowest and the highest; replay starts at 0, or right after the checkpoint.
    let (lo, hi) = match (log.kind, &log.checkpoint) {
        (LogKind::Wal | LogKind::Agent | LogKind::Checkpoint, None) => match last {
            Some(l) => (0, l),
            None => return,
        },
        (LogKind::Wal | LogKind::Agent, Some(ck)) => {
            let next = ck.index.saturating_add(1);
            (
                first.map_or(next, |f| f.min(next)),
                last.map_or(next, |l| l.max(next)),
            )
        }
        _ => match (first, last) {
            (Some(f), Some(l)) => (f, l),
            _ => return,
        },
    };
    // A WAL that starts far above 0 with no checkpoint: an empty checkpoint just below its
    // first segment makes replay start there, where thousands of empty segments would not do.
    let lo = match (log.kind, &log.checkpoint, first) {
        (LogKind::Wal | LogKind::Agent, None, Some(f)) if lo == 0 && f > MAX_EMPTY_SEGMENTS => {
            p.actions.push(Action::CreateEmptyCheckpoint {
                path: log.path.join(format!("checkpoint.{:08}", f - 1)),
            });
            f
        }
        _ => lo,
    };
    fill(log, p, &have, lo, hi);
}

/// Plans an empty segment for every index in `lo..=hi` that `have` lacks, unless that would be
/// more than [`MAX_EMPTY_SEGMENTS`].
pub(super) fn fill(
    log: &Log,
    p: &mut Plan,
    have: &std::collections::BTreeSet<u64>,
    lo: u64,
    hi: u64,
) {
    let present = have.range(lo..=hi).count() as u64;
    let missing = (hi - lo).saturating_add(1) - present;
    if missing == 0 {
        return;
    }
    if missing > MAX_EMPTY_SEGMENTS {
        p.unresolved.push(format!(
            "{}: {missing} segments missing between {lo:08} and {hi:08}; more than {MAX_EMPTY_SEGMENTS} empty segments would be needed: move stray segments away by hand",
            log.path.display()
        ));
        return;
    }
    let planned: std::collections::HashSet<PathBuf> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateEmptySegment { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    for i in (lo..=hi).filter(|i| !have.contains(i)) {
        let path = log.path.join(format!("{i:08}"));
        if !planned.contains(&path) {
            p.actions.push(Action::CreateEmptySegment { path });
        }
    }
}

pub(super) fn leftovers(log: &Log, opts: &RepairOptions, p: &mut Plan) -> io::Result<()> {
    for l in &log.leftovers {
        match l {
            Leftover::CheckpointTmp(path) => p.actions.push(Action::MoveToBackup {
                path: path.clone(),
                why: "interrupted checkpoint (Prometheus would delete it at start-up)".into(),
                loss: None,
            }),
            Leftover::CheckpointNotDir(path) => p.actions.push(Action::MoveToBackup {
                path: path.clone(),
                why: "a checkpoint.N that is not a directory keeps Prometheus from starting".into(),
                loss: None,
            }),
            Leftover::RepairFile(path) => recover_repair_file(log, opts, path, p)?,
            Leftover::OldCheckpoint(_) => {}
        }
    }
    Ok(())
}

/// Decompressed records of a segment, for comparing a `.repair` file with its segment.
pub(super) fn record_payloads(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut frames = SegmentReader::new(data);
    while let Some(ev) = frames.next() {
        if let Event::Record(r) = ev {
            if decompress(r.compression, r.payload, &mut buf).is_ok() {
                out.push(buf.clone());
            }
        }
    }
    out
}

pub(super) fn recover_repair_file(
    log: &Log,
    opts: &RepairOptions,
    path: &Path,
    p: &mut Plan,
) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seg_name = name.trim_end_matches(".repair");
    let seg_path = log.path.join(seg_name);
    // The segment it belongs to may be there under another name (`+0000003`, renamed by this
    // plan): compare with the file that holds that index now. Two such files: a human decides.
    let index = crate::layout::parse_index(seg_name);
    let holders: Vec<&crate::layout::SegmentFile> = log
        .segments
        .iter()
        .filter(|s| Some(s.index) == index || s.path == seg_path)
        .collect();
    if holders.len() > 1 || holders.iter().any(|s| s.is_dir) {
        p.unresolved.push(format!(
            "{}: more than one file holds segment {seg_name}; recover it from the .repair file by hand",
            path.display()
        ));
        return Ok(());
    }
    let original = with_segment(path, record_payloads)?;
    let current = match holders.first() {
        Some(s) => with_segment(&s.path, record_payloads)?,
        None => Vec::new(),
    };
    // Prometheus's repair re-logs the records before the damage into a new segment: what the
    // segment holds now must be a prefix of the .repair file, or the two have diverged. Or the
    // segment is already what this action writes (a run killed after the rebuild, before the
    // .repair file was removed): the .repair file's clean records, every one of them.
    let prefix =
        current.len() <= original.len() && current.iter().zip(&original).all(|(a, b)| a == b);
    let kind = match kind_of(&seg_path) {
        LogKind::Wbl => LogKind::Wbl,
        _ if opts.flavor == WalFlavor::Agent => LogKind::Agent,
        k => k,
    };
    let rebuilt = !prefix && {
        let clean = with_segment(path, |d| salvage(d, kind, None).0)?;
        record_payloads(&clean) == current
    };
    if prefix || rebuilt {
        // Where the segment will be once renamed: the 8-digit name Prometheus opens.
        let segment_path = match index {
            Some(i) => log.path.join(crate::layout::segment_name(i)),
            None => seg_path,
        };
        p.actions.push(Action::RecoverRepairFile {
            repair_path: path.to_path_buf(),
            segment_path,
            records_recovered: (original.len() - current.len()) as u64,
            // The rebuild is a salvage of the .repair file, without corrections.
            loss: with_segment(path, |d| salvage_with(d, kind, None, false).1)?,
            // Older segments are closed padded, as with a salvage.
            pad: opts.pad || log.segments.iter().any(|s| Some(s.index) > index),
        });
    } else {
        p.unresolved.push(format!(
            "{}: segment {seg_name} holds records the .repair file does not; both kept, merge by hand",
            path.display()
        ));
    }
    Ok(())
}
