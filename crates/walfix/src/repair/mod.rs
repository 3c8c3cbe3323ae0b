//! `repair`: plan from a full check, then change the WAL so Prometheus replays it cleanly,
//! keeping every removed byte in a backup.
//!
//! Every change is a whole-file replacement (temp file, fsync, rename, fsync dir), a file moved
//! to the backup after being copied there, or a new empty file. The plan is recomputed from the
//! disk on every run, so a repair killed at any point and run again finishes the job: a file is
//! either untouched (and planned again) or already replaced (and clean).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use walfix_format::compression::decompress;
use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::{Compression, PAGE_SIZE};
use walfix_format::frames::{Event, SegmentReader};
use walfix_format::record::{
    self, Acceptance, Exemplar, HistogramSample, LogKind, Metadata, MmapMarker, RecordType, Sample,
    Series, Tombstone, Visitor,
};

use crate::check::{check_layout, CheckOptions};
use crate::fsops::{copy_file, is_temp_name, replace_file, replace_file_as, Fs, Perms};
use crate::layout::{discover, Layout, Leftover, Log, WalFlavor};
use crate::replay::with_segment;
use crate::report::{Finding, Report, Severity};

mod execute;
mod plan;
mod predict;
mod salvage;

pub use self::execute::*;
pub use self::plan::*;
pub use self::predict::*;
pub use self::salvage::*;

/// How to treat damaged segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Mode {
    /// Remove only damaged records; every later record and segment survives.
    #[default]
    Salvage,
    /// What Prometheus does: keep what precedes the first damage of each log, drop the rest of
    /// that segment and every later segment of the same log.
    Truncate,
}

/// Options for [`plan`] and [`execute`].
#[derive(Clone, Debug, Default)]
pub struct RepairOptions {
    /// Salvage or truncate.
    pub mode: Mode,
    /// Server or agent WAL.
    pub flavor: WalFlavor,
    /// Where removed bytes go (default: `walfix-backup/` in the data dir).
    pub backup_dir: Option<PathBuf>,
    /// Zero-pad the last page of each log's newest segment (for Prometheus before 2.11, which
    /// appends to it at start-up).
    pub pad: bool,
    /// Run even if a Prometheus holds the data dir's lock.
    pub force: bool,
    /// Drop a damaged checkpoint instead of salvaging it.
    pub drop_checkpoint: bool,
    /// Do not undo one-byte errors (salvage mode corrects a fragment whose CRC mismatch is
    /// explained by exactly one changed byte and whose record then reads cleanly).
    pub no_correct: bool,
    /// Backups (one directory per run under the backup dir) to keep after a repair; older
    /// ones are removed. `None` keeps every one.
    pub keep_backups: Option<usize>,
    /// Before changing anything, watch the newest segment this long if it was written more
    /// recently than that: a segment that grows means a Prometheus is writing (one without a
    /// lock file). Zero skips the watch.
    pub live_wait: std::time::Duration,
    /// Told the bytes of each segment the plan's check reads (for a progress bar).
    pub progress: crate::Progress,
}

/// What a change loses.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Loss {
    /// Whole records removed that could still be read (decode failures, records after a cut,
    /// records in deleted segments).
    pub records: u64,
    /// Damaged regions removed (their records could not be read; their entries are unknown).
    pub damaged_regions: u64,
    /// Bytes that no longer reach Prometheus.
    pub bytes: u64,
    /// Series entries in removed records.
    pub series: u64,
    /// Some of the series refs those entries defined (at most 20).
    pub series_refs: Vec<u64>,
    /// Float samples in removed records.
    pub samples: u64,
    /// Histogram samples in removed records.
    pub histograms: u64,
    /// Exemplars, metadata, tombstones and mmap markers in removed records.
    pub other_entries: u64,
    /// Time range of the removed samples (ms).
    pub min_time: Option<i64>,
    /// Time range of the removed samples (ms).
    pub max_time: Option<i64>,
    /// Series entries kept from damaged series records: the entries that decode before the
    /// damage are written back as a shorter series record in the same place (not in `series`).
    pub series_kept: u64,
}

impl Loss {
    fn add(&mut self, o: &Loss) {
        self.records += o.records;
        self.series_kept += o.series_kept;
        self.damaged_regions += o.damaged_regions;
        self.bytes += o.bytes;
        self.series += o.series;
        for &r in &o.series_refs {
            if self.series_refs.len() < 20 {
                self.series_refs.push(r);
            }
        }
        self.samples += o.samples;
        self.histograms += o.histograms;
        self.other_entries += o.other_entries;
        self.min_time = match (self.min_time, o.min_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_time = match (self.max_time, o.max_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// One change.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Action {
    /// Rewrite a segment with every record that reads cleanly, in order.
    SalvageSegment {
        /// The segment.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
        /// Bytes changed back before salvaging (see [`correct_segment`]).
        corrections: Vec<Correction>,
        /// Zero-pad the last page (always for segments older than the newest, which Prometheus
        /// closes padded).
        pad: bool,
        /// What it loses.
        loss: Loss,
    },
    /// Keep the bytes of a segment before `at` (a torn tail, or Prometheus-style truncation),
    /// then zero-pad to a page boundary if `pad`.
    TruncateSegment {
        /// The segment.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
        /// Offset of the first byte dropped.
        at: u64,
        /// Zero-pad the last page afterwards.
        pad: bool,
        /// What it loses.
        loss: Loss,
    },
    /// Zero-pad the last page of a segment (`--pad`).
    PadSegment {
        /// The segment.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
        /// Zero bytes added.
        bytes: u64,
    },
    /// Move a whole segment to the backup.
    DeleteSegment {
        /// The segment.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
        /// What it loses.
        loss: Loss,
    },
    /// Rename a segment to the 8-digit name Prometheus opens it by (its bytes are unchanged).
    RenameSegment {
        /// The file as named now.
        #[serde(serialize_with = "crate::report::lossless_path")]
        from: PathBuf,
        /// Its canonical name.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
    },
    /// Create an empty segment to close a gap (an empty segment is valid; numbering is kept).
    CreateEmptySegment {
        /// The new segment.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
    },
    /// Create `checkpoint.N` holding one empty segment, so replay starts at segment N+1 (what
    /// Prometheus writes when it checkpoints nothing). Used when the first segment is so far
    /// from 0 that filling the hole with empty segments would take more than
    /// `MAX_EMPTY_SEGMENTS` (10,000) files.
    CreateEmptyCheckpoint {
        /// The new `checkpoint.N` directory.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
    },
    /// Move an entry Prometheus trips over or deletes anyway into the backup.
    MoveToBackup {
        /// The entry.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
        /// Why.
        why: String,
        /// What it loses, when replay reads what is moved (a dropped checkpoint).
        #[serde(skip_serializing_if = "Option::is_none")]
        loss: Option<Loss>,
    },
    /// Rebuild segment `segment_path` from a `.repair` file left by an interrupted Prometheus
    /// repair, which holds the segment's original records.
    RecoverRepairFile {
        /// The `.repair` file.
        #[serde(serialize_with = "crate::report::lossless_path")]
        repair_path: PathBuf,
        /// The segment it belongs to.
        #[serde(serialize_with = "crate::report::lossless_path")]
        segment_path: PathBuf,
        /// Records recovered beyond what the segment holds now.
        records_recovered: u64,
        /// What the `.repair` file holds that the rebuilt segment does not (the damage that
        /// made Prometheus repair it).
        loss: Loss,
        /// Zero-pad the last page (`--pad`, or a segment older than the newest).
        pad: bool,
    },
    /// Remove a temp file left by a killed walfix run (its content is derived, never original).
    RemoveOwnTemp {
        /// The file.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
    },
}

impl Action {
    /// The main path the action changes.
    pub fn path(&self) -> &Path {
        match self {
            Action::SalvageSegment { path, .. }
            | Action::TruncateSegment { path, .. }
            | Action::PadSegment { path, .. }
            | Action::DeleteSegment { path, .. }
            | Action::CreateEmptySegment { path }
            | Action::CreateEmptyCheckpoint { path }
            | Action::RenameSegment { path, .. }
            | Action::MoveToBackup { path, .. }
            | Action::RemoveOwnTemp { path } => path,
            Action::RecoverRepairFile { segment_path, .. } => segment_path,
        }
    }

    /// What the action loses, if it loses anything.
    pub fn loss(&self) -> Option<&Loss> {
        match self {
            Action::SalvageSegment { loss, .. }
            | Action::TruncateSegment { loss, .. }
            | Action::DeleteSegment { loss, .. }
            | Action::RecoverRepairFile { loss, .. }
            | Action::MoveToBackup {
                loss: Some(loss), ..
            } => Some(loss),
            _ => None,
        }
    }
}

/// The plan: what will change and what stays unresolved.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Salvage or truncate.
    pub mode: Mode,
    /// The data dir (lock file and default backup live here).
    #[serde(serialize_with = "crate::report::lossless_path")]
    pub data_root: PathBuf,
    /// Where backups go: one directory per run in it.
    #[serde(serialize_with = "crate::report::lossless_path")]
    pub backup_dir: PathBuf,
    /// This run's backup: `backup_dir/<UTC time>` (e.g. `20261202T130501Z`), with its
    /// `manifest.jsonl`.
    #[serde(serialize_with = "crate::report::lossless_path")]
    pub backup_run: PathBuf,
    /// Changes, in the order they are made.
    pub actions: Vec<Action>,
    /// Problems the plan does not fix, with why.
    pub unresolved: Vec<String>,
    /// Bytes the backup will receive.
    pub backup_bytes: u64,
    /// Total loss.
    pub loss: Loss,
    /// The check the plan was made from.
    #[serde(skip)]
    pub before: Report,
    /// Length and modification time of every file the actions read, when planned: `execute`
    /// refuses if one changed (something wrote the WAL between plan and execute).
    #[serde(skip)]
    pub seen: Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
}

/// Errors that stop a repair before or while it changes anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepairError {
    /// The path could not be read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A running Prometheus holds the data dir.
    #[error("{0} is locked by a running Prometheus (or another walfix): stop it first, or pass --force if you are sure nothing writes to this WAL")]
    Locked(PathBuf),
    /// A process has files of the data dir open, or its newest segment is growing, with no
    /// lock held (Prometheus 2.x without --storage.tsdb.use-lockfile).
    #[error("{0}: stop it first, or pass --force if you are sure nothing writes to this WAL")]
    Live(crate::live::Live),
    /// A file the plan read changed before the plan was carried out.
    #[error("{0} changed after the plan was made (is something writing this WAL?); nothing was changed: run walfix repair again")]
    Changed(PathBuf),
    /// The backup dir cannot be written.
    #[error("cannot write the backup directory {path}: {err}; fix its permissions or free space there, or choose --backup-dir (on another disk if this one is full)")]
    Backup {
        /// The dir.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// Not enough free space.
    #[error("not enough free space on {path}: {needed} bytes needed for {what}, {available} available (writing would fail like `zero-pad torn page: no space left on device`); {advice}")]
    NoSpace {
        /// Where.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
        /// What needs them.
        what: &'static str,
        /// What to do.
        advice: &'static str,
    },
    /// A step failed part-way; rerunning `walfix repair` finishes the job.
    #[error("{step}: {err} (nothing is lost: rerun `walfix repair` to finish)")]
    Step {
        /// What was being done.
        step: String,
        /// Why it failed.
        err: io::Error,
    },
}

/// The data dir of a layout: where `lock` lives.
pub fn data_root(layout: &Layout) -> PathBuf {
    let root = &layout.root;
    if root.join("wal").is_dir() {
        return root.clone();
    }
    let up = |p: &Path, n: usize| {
        let mut p = p.to_path_buf();
        for _ in 0..n {
            p = p
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
        }
        p
    };
    match layout.logs.first() {
        Some(l) if l.single_file => {
            let parent_is_ckpt = l.kind == LogKind::Checkpoint;
            up(root, if parent_is_ckpt { 3 } else { 2 })
        }
        Some(l) if l.kind == LogKind::Checkpoint => up(root, 2),
        _ => up(root, 1),
    }
}
