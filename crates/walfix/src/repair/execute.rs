//! Carrying out a plan: lock, backup and manifest, atomic file steps, pruning old backups.

use super::*;

/// The outcome of [`execute`].
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// Actions done (all of the plan's on success).
    pub done: usize,
    /// Old backup runs removed to keep [`RepairOptions::keep_backups`].
    pub pruned: Vec<PathBuf>,
    /// The check after the repair.
    #[serde(skip)]
    pub after: Report,
}

/// Data-dir lock, held while repairing.
pub struct DirLock {
    _file: Option<fs::File>,
}

/// Takes the same non-blocking exclusive flock Prometheus takes on `<data>/lock`. A missing lock
/// file means nobody holds it (it is not created, so a clean repair changes nothing). Then,
/// since Prometheus 2.x takes no lock unless `--storage.tsdb.use-lockfile` is set, refuses if a
/// process we can see has a file of the data dir open.
pub fn lock(data_root: &Path) -> Result<DirLock, RepairError> {
    let path = data_root.join("lock");
    let held = match fs::File::open(&path) {
        Ok(file) => match file.try_lock() {
            Ok(()) => DirLock { _file: Some(file) },
            Err(fs::TryLockError::WouldBlock) => {
                return Err(RepairError::Locked(data_root.to_path_buf()))
            }
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirLock { _file: None },
        Err(e) => return Err(e.into()),
    };
    if let Some(l) = crate::live::open_by_process(data_root) {
        return Err(RepairError::Live(l));
    }
    Ok(held)
}

pub(super) fn step(what: impl Into<String>) -> impl FnOnce(io::Error) -> RepairError {
    let s = what.into();
    move |err| RepairError::Step { step: s, err }
}

pub(super) fn rel(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(p.file_name().unwrap_or_default()))
}

pub(super) fn same_content(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Copies a file or directory into the backup unless an identical copy is there already.
/// Returns the backup path.
pub(super) fn backup(fs_: &dyn Fs, plan: &Plan, path: &Path) -> Result<PathBuf, RepairError> {
    let base = plan.backup_run.join(rel(&plan.data_root, path));
    let meta = fs::symlink_metadata(path).map_err(step(format!("reading {}", path.display())))?;
    let mut dest = base.clone();
    let mut n = 0;
    loop {
        if !dest.exists() {
            break;
        }
        if meta.is_file() && same_content(path, &dest) {
            return Ok(dest);
        }
        n += 1;
        dest = PathBuf::from(format!("{}.{n}", base.display()));
    }
    copy_tree(fs_, plan, path, &dest)?;
    Ok(dest)
}

pub(super) fn copy_tree(
    fs_: &dyn Fs,
    plan: &Plan,
    from: &Path,
    to: &Path,
) -> Result<(), RepairError> {
    let parent = to.parent().unwrap_or(Path::new("."));
    fs_.create_dir_all(parent)
        .map_err(step(format!("creating {}", parent.display())))?;
    // Directories made inside the run belong to the data dir's owner too.
    let mut d = parent;
    while d.starts_with(&plan.backup_run) && d != plan.backup_run {
        private(fs_, plan, d, 0o700).map_err(step(format!("creating {}", d.display())))?;
        d = d.parent().unwrap_or(Path::new("."));
    }
    let meta = fs::symlink_metadata(from).map_err(step(format!("reading {}", from.display())))?;
    if meta.is_dir() {
        // Built under a temp name and renamed, so a half-copied directory is never taken for a
        // complete backup.
        let tmp = crate::fsops::temp_name(to);
        if tmp.exists() {
            fs_.remove_dir_all(&tmp)
                .map_err(step(format!("removing {}", tmp.display())))?;
        }
        fs_.create_dir_all(&tmp)
            .and_then(|_| private(fs_, plan, &tmp, 0o700))
            .map_err(step(format!("creating {}", tmp.display())))?;
        for e in fs::read_dir(from).map_err(step(format!("reading {}", from.display())))? {
            let e = e.map_err(step(format!("reading {}", from.display())))?;
            copy_tree(fs_, plan, &e.path(), &tmp.join(e.file_name()))?;
        }
        fs_.sync_dir(&tmp)
            .map_err(step(format!("syncing {}", tmp.display())))?;
        fs_.rename(&tmp, to)
            .map_err(step(format!("renaming {}", tmp.display())))?;
        fs_.sync_dir(parent)
            .map_err(step(format!("syncing {}", parent.display())))?;
    } else if meta.is_symlink() {
        // Never follow a link out of the WAL: record where it pointed instead.
        let target = fs::read_link(from).map_err(step(format!("reading {}", from.display())))?;
        let note = format!("symlink to {}\n", target.display());
        replace_file_as(fs_, to, Perms::Private, &mut |w| {
            w.write_all(note.as_bytes())
        })
        .map_err(step(format!("writing {}", to.display())))?;
    } else {
        copy_file(fs_, from, to, Perms::Private)
            .map_err(step(format!("backing up {}", from.display())))?;
    }
    Ok(())
}

#[derive(Serialize)]
pub(super) struct ManifestLine<'a> {
    time_unix: u64,
    /// Absolute: the action's paths are relative to it.
    #[serde(serialize_with = "crate::report::lossless_path")]
    data_root: &'a Path,
    action: &'a Action,
    backup: Option<&'a Path>,
}

impl Action {
    /// The action with its paths relative to `root` (paths outside it stay as they are).
    fn relative_to(&self, root: &Path) -> Action {
        let r = |p: &PathBuf| {
            p.strip_prefix(root)
                .map_or_else(|_| p.clone(), Path::to_path_buf)
        };
        let mut a = self.clone();
        match &mut a {
            Action::RenameSegment { from, path } => {
                *from = r(from);
                *path = r(path);
            }
            Action::RecoverRepairFile {
                repair_path,
                segment_path,
                ..
            } => {
                *repair_path = r(repair_path);
                *segment_path = r(segment_path);
            }
            Action::SalvageSegment { path, .. }
            | Action::TruncateSegment { path, .. }
            | Action::PadSegment { path, .. }
            | Action::DeleteSegment { path, .. }
            | Action::CreateEmptySegment { path }
            | Action::CreateEmptyCheckpoint { path }
            | Action::MoveToBackup { path, .. }
            | Action::RemoveOwnTemp { path } => *path = r(path),
        }
        a
    }
}

pub(super) fn manifest(
    fs_: &dyn Fs,
    plan: &Plan,
    a: &Action,
    backup: Option<&Path>,
) -> Result<(), RepairError> {
    // Paths as given are relative to the caller's working directory, which the manifest does
    // not know: the data dir is written absolute and the action's paths relative to it.
    let given = match plan.data_root.as_os_str().is_empty() {
        true => Path::new("."),
        false => plan.data_root.as_path(),
    };
    let root = fs::canonicalize(given).unwrap_or_else(|_| plan.data_root.clone());
    let action = a.relative_to(&plan.data_root);
    let line = ManifestLine {
        time_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        data_root: &root,
        action: &action,
        // Relative to the run's directory, so the manifest stays right wherever it is moved.
        backup: backup.map(|b| b.strip_prefix(&plan.backup_run).unwrap_or(b)),
    };
    let bytes = serde_json::to_vec(&line).map_err(|e| RepairError::Step {
        step: "writing the manifest".into(),
        err: io::Error::other(e),
    })?;
    let path = plan.backup_run.join("manifest.jsonl");
    fs_.append_line(&path, &bytes)
        .and_then(|_| private(fs_, plan, &path, 0o600))
        .map_err(step(format!("writing {}", path.display())))
}

/// Gives a backup file or directory the data dir's owner and a private mode, so the
/// Prometheus user (not only root) can read and prune it, and nobody else can.
pub(super) fn private(fs_: &dyn Fs, plan: &Plan, path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(&plan.data_root)?;
    fs_.set_owner_mode(path, crate::fsops::wanted_owner(m.uid(), m.gid()), mode)
}

/// A new run directory name under `backup_dir`: the UTC time, then `-N` (above every `-N`
/// taken in that second, so names keep sorting by time after older runs are pruned).
/// `walfix flush` names its backup runs with it too, so they sort and are pruned alike.
pub fn new_run_dir(backup_dir: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = run_name(secs);
    let taken: Option<u64> = fs::read_dir(backup_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(base.as_str())?;
            if rest.is_empty() {
                Some(0)
            } else {
                rest.strip_prefix('-')?.parse().ok()
            }
        })
        .max();
    match taken {
        None => backup_dir.join(base),
        Some(n) => backup_dir.join(format!("{base}-{}", n + 1)),
    }
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time (proleptic Gregorian calendar, days from civil).
pub(super) fn run_name(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// True for names [`new_run_dir`] makes.
pub(super) fn is_run_name(name: &str) -> bool {
    let (stamp, suffix) = name.split_at(name.len().min(16));
    let b = stamp.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && (suffix.is_empty()
            || suffix
                .strip_prefix('-')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit())))
}

/// Removes all but the newest `keep` run directories of `backup_dir` (never `current`).
/// Returns what it removed.
pub(super) fn prune_backups(
    fs_: &dyn Fs,
    backup_dir: &Path,
    current: &Path,
    keep: usize,
) -> io::Result<Vec<PathBuf>> {
    let mut runs: Vec<(String, PathBuf)> = Vec::new();
    for e in fs::read_dir(backup_dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if is_run_name(&name) && e.file_type()?.is_dir() && e.path() != current {
            runs.push((name, e.path()));
        }
    }
    // Names sort by time; `-N` suffixes sort after their base.
    runs.sort_by(|a, b| {
        let key = |n: &str| {
            let (t, s) = n.split_at(16);
            (
                t.to_string(),
                s.trim_start_matches('-').parse::<u64>().unwrap_or(0),
            )
        };
        key(&a.0).cmp(&key(&b.0))
    });
    // The current run counts as one of the kept.
    let drop = runs.len().saturating_sub(keep.saturating_sub(1));
    let mut removed = Vec::new();
    for (_, path) in runs.into_iter().take(drop) {
        fs_.remove_dir_all(&path)?;
        removed.push(path);
    }
    if !removed.is_empty() {
        fs_.sync_dir(backup_dir)?;
    }
    Ok(removed)
}

/// Carries out `plan` through `fs_`. Refuses if Prometheus holds the lock (unless `force`), if
/// the backup dir cannot be written, or if free space is short. Checks the result again.
pub fn execute(plan: &Plan, opts: &RepairOptions, fs_: &dyn Fs) -> Result<Outcome, RepairError> {
    let check_opts = CheckOptions {
        flavor: opts.flavor,
        ..Default::default()
    };
    if plan.actions.is_empty() {
        return Ok(Outcome {
            done: 0,
            pruned: Vec::new(),
            after: plan.before.clone(),
        });
    }
    let _lock = if opts.force {
        None
    } else {
        Some(lock(&plan.data_root)?)
    };
    // Under the lock: the files are still the ones the plan read.
    for (f, len, mtime) in &plan.seen {
        if stat(f) != (*len, *mtime) {
            return Err(RepairError::Changed(f.clone()));
        }
    }

    if opts.live_wait > std::time::Duration::ZERO {
        if let Some(l) = crate::live::growing_segment(&plan.data_root, opts.live_wait)? {
            return Err(RepairError::Live(l));
        }
    }
    let backup_is_new = !plan.backup_dir.exists();
    fs_.create_dir_all(&plan.backup_run)
        .and_then(|_| {
            if backup_is_new {
                private(fs_, plan, &plan.backup_dir, 0o700)?;
            }
            private(fs_, plan, &plan.backup_run, 0o700)
        })
        .map_err(|err| RepairError::Backup {
            path: plan.backup_run.clone(),
            err,
        })?;
    let probe = plan.backup_run.join(".walfix-probe");
    replace_file(fs_, &probe, &mut |w| w.write_all(b"ok"))
        .and_then(|_| fs_.remove_file(&probe))
        .map_err(|err| RepairError::Backup {
            path: plan.backup_dir.clone(),
            err,
        })?;
    let backup_free = fs_.free_space(&plan.backup_dir)?;
    if backup_free < plan.backup_bytes {
        let default_dir = opts.backup_dir.is_none();
        return Err(RepairError::NoSpace {
            path: plan.backup_dir.clone(),
            needed: plan.backup_bytes,
            available: backup_free,
            what: "the backup of every file the repair changes",
            advice: if default_dir {
                "free space, or put the backup on another disk with --backup-dir"
            } else {
                "free space there, or choose another --backup-dir"
            },
        });
    }
    // A rewrite needs room for the new file next to the old one, plus any padding. Sizes are
    // read now: a segment the plan renames first is still under its old name.
    let before_rename = |path: &PathBuf| -> PathBuf {
        plan.actions
            .iter()
            .find_map(|a| match a {
                Action::RenameSegment { from, path: to } if to == path => Some(from.clone()),
                _ => None,
            })
            .unwrap_or_else(|| path.clone())
    };
    let wal_need: u64 = plan
        .actions
        .iter()
        .map(|a| match a {
            // Cutting a tail and zero-padding are done in place and take no space (but for
            // links, which are replaced).
            Action::TruncateSegment { path, .. } | Action::PadSegment { path, .. }
                if in_place_ok(&before_rename(path)) =>
            {
                0
            }
            Action::SalvageSegment { path, .. }
            | Action::TruncateSegment { path, .. }
            | Action::PadSegment { path, .. } => {
                fs::metadata(before_rename(path))
                    .map(|m| m.len())
                    .unwrap_or(0)
                    + PAGE_SIZE as u64
            }
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    let wal_free = fs_.free_space(&plan.data_root)?;
    if wal_free < wal_need {
        return Err(RepairError::NoSpace {
            path: plan.data_root.clone(),
            needed: wal_need,
            available: wal_free,
            what: "a rewritten segment beside the old one until it replaces it",
            advice: "free space on this volume (the backup dir does not help here)",
        });
    }

    let mut done = 0;
    for a in &plan.actions {
        let saved = match a {
            Action::RemoveOwnTemp { .. }
            | Action::CreateEmptySegment { .. }
            | Action::CreateEmptyCheckpoint { .. }
            | Action::RenameSegment { .. } => None,
            Action::RecoverRepairFile {
                repair_path,
                segment_path,
                ..
            } => {
                if segment_path.exists() {
                    backup(fs_, plan, segment_path)?;
                }
                Some(backup(fs_, plan, repair_path)?)
            }
            _ => Some(backup(fs_, plan, a.path())?),
        };
        apply(fs_, a, opts)?;
        manifest(fs_, plan, a, saved.as_deref())?;
        done += 1;
    }
    let pruned = match opts.keep_backups {
        Some(keep) if done > 0 => prune_backups(fs_, &plan.backup_dir, &plan.backup_run, keep)
            .map_err(step(format!(
                "pruning old backups in {}",
                plan.backup_dir.display()
            )))?,
        _ => Vec::new(),
    };
    let layout = discover(&plan.before.root, opts.flavor)?;
    Ok(Outcome {
        done,
        pruned,
        after: check_layout(&layout, &check_opts),
    })
}

/// True if `path` may be cut or padded in place: a regular file (not a symlink) with no other
/// name, so no byte outside the WAL can change.
pub(super) fn in_place_ok(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && m.nlink() == 1)
}

pub(super) fn kind_of(path: &Path) -> LogKind {
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    match parent.as_deref() {
        Some("wbl") => LogKind::Wbl,
        Some(p) if p.starts_with("checkpoint.") => LogKind::Checkpoint,
        _ => LogKind::Wal,
    }
}

pub(super) fn pad_to_page(bytes: &mut Vec<u8>) {
    if !bytes.len().is_multiple_of(PAGE_SIZE) {
        bytes.resize(bytes.len() + PAGE_SIZE - bytes.len() % PAGE_SIZE, 0);
    }
}

/// The new content of the file an action rewrites: `Some(bytes)` for rewrites and new files,
/// `None` for actions that only remove.
/// `src` says where to read a path's current bytes (itself, or its copy in a prediction's
/// scratch dir).
pub(super) fn new_content(
    a: &Action,
    opts: &RepairOptions,
    src: &dyn Fn(&Path) -> PathBuf,
) -> io::Result<Option<Vec<u8>>> {
    let kind_for = |path: &Path| {
        let k = kind_of(path);
        if k != LogKind::Wbl && opts.flavor == WalFlavor::Agent {
            LogKind::Agent
        } else {
            k
        }
    };
    Ok(match a {
        Action::SalvageSegment {
            path,
            pad,
            corrections,
            ..
        } => {
            // Corrections are redone from the bytes, and must come out as planned: the file
            // is the one the plan read, or the rewrite is refused.
            let (mut bytes, _, _, redone) = with_segment(&src(path), |d| {
                salvage_with(d, kind_for(path), None, !corrections.is_empty())
            })?;
            if &redone != corrections {
                return Err(io::Error::other(format!(
                    "{}: changed since the plan (corrections differ); run walfix repair again",
                    path.display()
                )));
            }
            if *pad {
                pad_to_page(&mut bytes);
            }
            Some(bytes)
        }
        Action::TruncateSegment { path, at, pad, .. } => {
            let mut bytes =
                with_segment(&src(path), |d| d.get(..*at as usize).unwrap_or(d).to_vec())?;
            if *pad {
                pad_to_page(&mut bytes);
            }
            Some(bytes)
        }
        Action::PadSegment { path, .. } => {
            let mut bytes = fs::read(src(path))?;
            pad_to_page(&mut bytes);
            Some(bytes)
        }
        Action::CreateEmptySegment { .. } => Some(Vec::new()),
        Action::RecoverRepairFile {
            repair_path,
            segment_path,
            pad,
            ..
        } => {
            let mut bytes = with_segment(&src(repair_path), |d| {
                salvage(d, kind_for(segment_path), None).0
            })?;
            if *pad {
                pad_to_page(&mut bytes);
            }
            Some(bytes)
        }
        Action::DeleteSegment { .. }
        | Action::CreateEmptyCheckpoint { .. }
        | Action::MoveToBackup { .. }
        | Action::RemoveOwnTemp { .. }
        | Action::RenameSegment { .. } => None,
    })
}

pub(super) fn apply(fs_: &dyn Fs, a: &Action, opts: &RepairOptions) -> Result<(), RepairError> {
    let what = |verb: &str, p: &Path| format!("{verb} {}", p.display());
    match a {
        Action::SalvageSegment { path, .. } => {
            let bytes = new_content(a, opts, &|p| p.to_path_buf())
                .map_err(step(what("reading", path)))?
                .unwrap_or_default();
            replace_file(fs_, path, &mut |w| w.write_all(&bytes))
                .map_err(step(what("rewriting", path)))
        }
        // A link (symbolic, or a second name of the same file) is never written through: it
        // is replaced by a new file, as every other rewrite is.
        Action::TruncateSegment { path, .. } | Action::PadSegment { path, .. }
            if !in_place_ok(path) =>
        {
            let bytes = new_content(a, opts, &|p| p.to_path_buf())
                .map_err(step(what("reading", path)))?
                .unwrap_or_default();
            replace_file(fs_, path, &mut |w| w.write_all(&bytes))
                .map_err(step(what("rewriting", path)))
        }
        // In place: the bytes kept do not change, and a full disk has room for this.
        Action::TruncateSegment { path, at, pad, .. } => {
            fs_.set_len(path, *at)
                .map_err(step(what("truncating", path)))?;
            let padded = (*at).div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64;
            if *pad && padded > *at {
                fs_.set_len(path, padded)
                    .map_err(step(what("zero-padding", path)))?;
            }
            Ok(())
        }
        Action::PadSegment { path, .. } => {
            let len = fs::metadata(path)
                .map_err(step(what("reading", path)))?
                .len();
            let padded = len.div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64;
            fs_.set_len(path, padded)
                .map_err(step(what("zero-padding", path)))
        }
        Action::DeleteSegment { path, .. } | Action::MoveToBackup { path, .. } => {
            let meta = fs::symlink_metadata(path).map_err(step(what("reading", path)))?;
            if meta.is_dir() {
                fs_.remove_dir_all(path)
                    .map_err(step(what("removing", path)))?;
            } else {
                fs_.remove_file(path)
                    .map_err(step(what("removing", path)))?;
            }
            fs_.sync_dir(path.parent().unwrap_or(Path::new(".")))
                .map_err(step(what("syncing the directory of", path)))
        }
        Action::CreateEmptySegment { path } => {
            if path.exists() {
                return Ok(());
            }
            replace_file(fs_, path, &mut |_| Ok(())).map_err(step(what("creating", path)))
        }
        Action::RenameSegment { from, path } => {
            if path.exists() {
                return Err(RepairError::Step {
                    step: what("renaming to", path),
                    err: io::Error::new(io::ErrorKind::AlreadyExists, "target exists"),
                });
            }
            fs_.rename(from, path)
                .map_err(step(what("renaming", from)))?;
            fs_.sync_dir(path.parent().unwrap_or(Path::new(".")))
                .map_err(step(what("syncing the directory of", path)))
        }
        Action::CreateEmptyCheckpoint { path } => {
            if path.exists() {
                return Ok(());
            }
            // Built under a temp name and renamed, as Prometheus builds its checkpoints.
            let tmp = crate::fsops::temp_name(path);
            if tmp.exists() {
                fs_.remove_dir_all(&tmp)
                    .map_err(step(what("removing", &tmp)))?;
            }
            fs_.create_dir_all(&tmp)
                .map_err(step(what("creating", &tmp)))?;
            let seg = tmp.join(crate::layout::segment_name(0));
            replace_file(fs_, &seg, &mut |_| Ok(())).map_err(step(what("creating", &seg)))?;
            fs_.rename(&tmp, path)
                .map_err(step(what("renaming", &tmp)))?;
            fs_.sync_dir(path.parent().unwrap_or(Path::new(".")))
                .map_err(step(what("syncing the directory of", path)))
        }
        Action::RemoveOwnTemp { path } => {
            let r = if path.is_dir() {
                fs_.remove_dir_all(path)
            } else {
                fs_.remove_file(path)
            };
            match r {
                // A rewrite of the same file may have replaced it already.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r.map_err(step(what("removing", path))),
            }
        }
        Action::RecoverRepairFile {
            repair_path,
            segment_path,
            ..
        } => {
            let bytes = new_content(a, opts, &|p| p.to_path_buf())
                .map_err(step(what("reading", repair_path)))?
                .unwrap_or_default();
            replace_file(fs_, segment_path, &mut |w| w.write_all(&bytes))
                .map_err(step(what("rewriting", segment_path)))?;
            fs_.remove_file(repair_path)
                .map_err(step(what("removing", repair_path)))?;
            fs_.sync_dir(repair_path.parent().unwrap_or(Path::new(".")))
                .map_err(step(what("syncing the directory of", repair_path)))
        }
    }
}
