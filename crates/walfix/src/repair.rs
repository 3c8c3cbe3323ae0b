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
use crate::mmap::SegmentData;
use crate::report::{Finding, Report, Severity};

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

#[derive(Default)]
struct Count {
    series: u64,
    refs: Vec<u64>,
    samples: u64,
    histograms: u64,
    other: u64,
    min_t: Option<i64>,
    max_t: Option<i64>,
}

impl Count {
    fn t(&mut self, t: i64) {
        self.min_t = Some(self.min_t.map_or(t, |m| m.min(t)));
        self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
    }
    fn into_loss(self, bytes: u64) -> Loss {
        Loss {
            records: 1,
            damaged_regions: 0,
            bytes,
            series: self.series,
            series_refs: self.refs,
            samples: self.samples,
            histograms: self.histograms,
            other_entries: self.other,
            min_time: self.min_t,
            max_time: self.max_t,
            series_kept: 0,
        }
    }
}

impl Visitor for Count {
    fn series(&mut self, s: &Series<'_>) {
        self.series += 1;
        if self.refs.len() < 20 {
            self.refs.push(s.series_ref);
        }
    }
    fn sample(&mut self, s: &Sample) {
        self.samples += 1;
        self.t(s.t);
    }
    fn histogram(&mut self, h: &HistogramSample<'_>) {
        self.histograms += 1;
        self.t(h.t);
    }
    fn tombstone(&mut self, _: &Tombstone) {
        self.other += 1;
    }
    fn exemplar(&mut self, _: &Exemplar<'_>) {
        self.other += 1;
    }
    fn metadata(&mut self, _: &Metadata<'_>) {
        self.other += 1;
    }
    fn mmap_marker(&mut self, _: &MmapMarker) {
        self.other += 1;
    }
}

/// One byte changed back by [`correct_segment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Correction {
    /// Offset of the byte in the segment.
    pub offset: u64,
    /// Its value on disk.
    pub was: u8,
    /// Its value after the correction.
    pub now: u8,
    /// Offset of the fragment whose CRC it makes match.
    pub fragment: u64,
    /// `payload` or `stored-crc`: where in the fragment the byte is.
    pub place: &'static str,
}

/// True if a record's stored payload decompresses (into `buf`), decodes (into `v`) and is
/// accepted in this log kind. Types Prometheus skips unknown are kept as they are (not damage).
fn record_good(
    compression: Compression,
    payload: &[u8],
    kind: LogKind,
    buf: &mut Vec<u8>,
    v: &mut impl Visitor,
) -> bool {
    decompress(compression, payload, buf).is_ok()
        && match buf.first() {
            None => true,
            Some(&b) => {
                let t = RecordType::from_u8(b);
                match kind.accepts(t) {
                    Acceptance::RejectedByPrometheus => false,
                    Acceptance::IgnoredByPrometheus if t.is_none() => true,
                    _ => record::visit(buf, v).is_ok(),
                }
            }
        }
}

/// The most corrections tried per segment: more damage than that is not a flipped byte.
const MAX_CORRECTIONS: usize = 64;

/// Undoes one-byte errors: for each fragment whose CRC-32C does not match, the one-byte errors
/// that explain the mismatch ([`walfix_format::correct`]); if there is exactly one, and the
/// record holding the fragment then frames, decompresses and decodes cleanly, the byte is
/// changed back. Returns the corrected bytes (if anything changed) and what changed.
pub fn correct_segment(data: &[u8], kind: LogKind) -> (Option<Vec<u8>>, Vec<Correction>) {
    use walfix_format::correct::{one_byte_fixes, Fix};
    use walfix_format::frames::ProblemKind;
    let mut cur: Option<Vec<u8>> = None;
    let mut out = Vec::new();
    let mut tried = std::collections::HashSet::new();
    let mut buf = Vec::new();
    while tried.len() < MAX_CORRECTIONS {
        let bytes = cur.as_deref().unwrap_or(data);
        let mut next = None;
        let mut frames = SegmentReader::new(bytes).skip_payloads();
        while let Some(ev) = frames.next() {
            if let Event::Problem(p) = ev {
                if let ProblemKind::ChecksumMismatch { computed, stored } = p.kind {
                    if !tried.contains(&p.offset) {
                        next = Some((p.offset, computed, stored));
                        break;
                    }
                }
            }
        }
        let Some((at, computed, stored)) = next else {
            break;
        };
        tried.insert(at);
        let Some(len) = bytes
            .get(at + 1..at + 3)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            continue;
        };
        let Some(payload) = bytes.get(at + 7..at + 7 + len) else {
            continue;
        };
        let fixes = one_byte_fixes(payload, computed, stored, 2);
        let [fix] = fixes[..] else {
            continue;
        };
        let (offset, xor, place) = match fix {
            Fix::Payload { at: j, xor } => (at + 7 + j, xor, "payload"),
            Fix::StoredCrc { byte, xor } => (at + 3 + usize::from(byte), xor, "stored-crc"),
        };
        let mut candidate = bytes.to_vec();
        candidate[offset] ^= xor;
        // Accepted only if the record holding the fragment now reads cleanly.
        let mut ok = false;
        let mut frames = SegmentReader::new(&candidate);
        while let Some(ev) = frames.next() {
            match ev {
                Event::Problem(p)
                    if p.is_error() && p.lost_from <= at && at < p.end.max(p.lost_from + 1) =>
                {
                    break
                }
                Event::Record(r) if r.offset <= at && at < r.end => {
                    ok = record_good(r.compression, r.payload, kind, &mut buf, &mut ());
                    break;
                }
                _ => {}
            }
        }
        if ok {
            out.push(Correction {
                offset: offset as u64,
                was: bytes[offset],
                now: bytes[offset] ^ xor,
                fragment: at as u64,
                place,
            });
            cur = Some(candidate);
        }
    }
    (cur, out)
}

/// [`salvage`], after [`correct_segment`] when `correct` is set. Also returns the corrections.
pub fn salvage_with(
    data: &[u8],
    kind: LogKind,
    cut: Option<usize>,
    correct: bool,
) -> (Vec<u8>, Loss, u64, Vec<Correction>) {
    let (fixed, corrections) = if correct {
        correct_segment(data, kind)
    } else {
        (None, Vec::new())
    };
    let input = fixed.as_deref().unwrap_or(data);
    let (bytes, mut loss, kept) = salvage(input, kind, cut);
    loss.bytes = dropped_bytes(input, kind, cut);
    (bytes, loss, kept, corrections)
}

/// Reads a segment and returns the bytes of a clean version of it (every record that frames,
/// decompresses, decodes and is accepted in this kind of log, re-framed in order with its stored
/// payload and compression) and what the rest loses. Records at or after `cut` are dropped too.
pub fn salvage(data: &[u8], kind: LogKind, cut: Option<usize>) -> (Vec<u8>, Loss, u64) {
    let mut enc = SegmentEncoder::new();
    let mut loss = Loss::default();
    let mut buf = Vec::new();
    let mut kept = 0u64;
    let mut frames = SegmentReader::new(data);
    while let Some(ev) = frames.next() {
        let r = match ev {
            Event::Problem(p) => {
                if p.is_error() {
                    loss.damaged_regions += 1;
                    loss.bytes += p.end.saturating_sub(p.lost_from) as u64;
                    if cut.is_none_or(|c| p.lost_from < c) {
                        if let Some((front, compression)) = verified_front(data, p.lost_from) {
                            loss.series_kept +=
                                keep_series_front(&front, compression, kind, &mut enc, &mut buf);
                        }
                    }
                }
                continue;
            }
            Event::Record(r) => r,
        };
        let mut count = Count::default();
        let in_range = cut.is_none_or(|c| r.end < c);
        let good = in_range && record_good(r.compression, r.payload, kind, &mut buf, &mut count);
        if good {
            enc.append_stored(r.payload, r.compression);
            kept += 1;
        } else {
            if count.samples + count.series + count.histograms + count.other == 0 {
                // Count what a dropped-but-readable record held (best effort on partial decodes).
                let _ = record::visit(&buf, &mut count);
            }
            let mut l = count.into_loss((r.end - r.offset) as u64);
            if in_range {
                let n = keep_series_front(r.payload, r.compression, kind, &mut enc, &mut buf);
                l.series = l.series.saturating_sub(n);
                l.series_kept = n;
            }
            loss.add(&l);
        }
    }
    (enc.into_bytes(), loss, kept)
}

/// The stored payload of the record starting at `from`, as far as its fragments check out:
/// a `first`, then `middle`s (and a `last`), each with a matching CRC-32C, read as
/// Prometheus's reader walks pages (a page's rest is skipped when too short for a header or
/// zero). `None` if the fragment at `from` is not a sound `first`.
fn verified_front(data: &[u8], from: usize) -> Option<(Vec<u8>, Compression)> {
    use walfix_format::fragment::{FragmentHeader, FragmentType, HEADER_SIZE};
    let mut out = Vec::new();
    let mut compression = None;
    let mut q = from;
    while let Some(h) = data.get(q..q + HEADER_SIZE) {
        let h = FragmentHeader::parse(h.try_into().ok()?);
        let end = q + HEADER_SIZE + usize::from(h.len);
        let page_end = walfix_format::fragment::page_start(q) + PAGE_SIZE;
        let Some(payload) = data.get(q + HEADER_SIZE..end) else {
            break;
        };
        let kind_ok = matches!(
            (compression.is_none(), h.kind()),
            (true, FragmentType::First) | (false, FragmentType::Middle | FragmentType::Last)
        );
        if !kind_ok || end > page_end || walfix_format::crc::crc32c(payload) != h.crc {
            break;
        }
        out.extend_from_slice(payload);
        compression.get_or_insert(h.compression());
        if h.kind() == FragmentType::Last {
            break;
        }
        q = if page_end - end < HEADER_SIZE || data.get(end) == Some(&0) {
            page_end
        } else {
            end
        };
    }
    Some((out, compression?))
}

/// Writes the series entries that decode from the front of a damaged series record as a new,
/// shorter series record (compressed as the original was), and returns how many it kept.
/// Entries before the damage are the bytes Prometheus wrote (their fragments' CRCs matched);
/// later records' samples of these series then still find them. Nothing for other types, or
/// where this log's replay does not apply series records.
fn keep_series_front(
    stored: &[u8],
    compression: Compression,
    kind: LogKind,
    enc: &mut SegmentEncoder,
    buf: &mut Vec<u8>,
) -> u64 {
    use walfix_format::compression::decompress_prefix;
    use walfix_format::record::{OwnedSeries, Record};
    if kind.accepts(Some(RecordType::Series)) != Acceptance::Expected {
        return 0;
    }
    decompress_prefix(compression, stored, buf);
    if buf.first().copied().and_then(RecordType::from_u8) != Some(RecordType::Series) {
        return 0;
    }
    struct Keep(Vec<OwnedSeries>);
    impl Visitor for Keep {
        fn series(&mut self, s: &Series<'_>) {
            self.0.push(OwnedSeries {
                series_ref: s.series_ref,
                labels: s.labels.to_vec(),
            });
        }
    }
    let mut keep = Keep(Vec::new());
    // The error (if any) is where the damage begins; the entries before it are kept.
    let _ = record::visit(buf, &mut keep);
    let n = keep.0.len() as u64;
    if n > 0 {
        let mut rec = Vec::new();
        Record::Series(keep.0).encode(&mut rec);
        enc.append(&rec, compression);
    }
    n
}

/// Bytes of `data` that a [`salvage`] does not carry over: damaged ranges (up to where the
/// next record or problem starts, which takes in the fragments the reader skips after the
/// damage), records dropped, each byte once and never past the end of the file (a torn page
/// is reported up to its virtual end).
fn dropped_bytes(data: &[u8], kind: LogKind, cut: Option<usize>) -> u64 {
    let mut total = 0u64;
    let mut upto = 0usize;
    let mut open_from: Option<usize> = None;
    let mut buf = Vec::new();
    let mut add = |from: usize, to: usize, upto: &mut usize| {
        let (from, to) = (from.max(*upto).min(data.len()), to.min(data.len()));
        if to > from {
            total += (to - from) as u64;
            *upto = to;
        }
    };
    let mut frames = SegmentReader::new(data);
    while let Some(ev) = frames.next() {
        let start = match &ev {
            Event::Problem(p) => p.lost_from,
            Event::Record(r) => r.offset,
        };
        if let Some(f) = open_from.take() {
            add(f, start, &mut upto);
        }
        match ev {
            Event::Problem(p) if p.is_error() => {
                add(p.lost_from, p.end, &mut upto);
                open_from = Some(p.end);
            }
            Event::Problem(_) => {}
            Event::Record(r) => {
                let good = cut.is_none_or(|c| r.end < c)
                    && record_good(r.compression, r.payload, kind, &mut buf, &mut ());
                if !good {
                    add(r.offset, r.end, &mut upto);
                }
            }
        }
    }
    if let Some(f) = open_from {
        add(f, data.len(), &mut upto);
    }
    total
}

/// Reads the segment at `path` with `f`; an error if another process truncated it meanwhile
/// (what `f` computed from the bytes past the cut is then wrong and is not returned).
fn with_segment<T>(path: &Path, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
    let data = SegmentData::open(path)?;
    let out = f(&data);
    data.check_intact(path)?;
    Ok(out)
}

/// Entries of every record in `data` from offset `from` on (for truncation and deletion).
fn loss_from(data: &[u8], from: usize) -> Loss {
    let mut loss = Loss {
        bytes: data.len().saturating_sub(from) as u64,
        ..Loss::default()
    };
    let mut buf = Vec::new();
    let mut frames = SegmentReader::new(data);
    while let Some(ev) = frames.next() {
        match ev {
            Event::Record(r) if r.offset >= from => {
                let mut c = Count::default();
                if decompress(r.compression, r.payload, &mut buf).is_ok() {
                    let _ = record::visit(&buf, &mut c);
                }
                let l = c.into_loss(0);
                loss.add(&l);
            }
            Event::Problem(p) if p.is_error() && p.offset >= from => loss.damaged_regions += 1,
            _ => {}
        }
    }
    loss
}

fn error_findings(report: &Report) -> impl Iterator<Item = &Finding> {
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
fn planned_files(p: &Plan) -> Vec<PathBuf> {
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

fn stat(f: &Path) -> (u64, Option<std::time::SystemTime>) {
    match fs::symlink_metadata(f) {
        Ok(m) => (m.len(), m.modified().ok()),
        Err(_) => (u64::MAX, None),
    }
}

fn dir_size(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn own_temps(log: &Log, p: &mut Plan) {
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
fn segments(log: &Log, opts: &RepairOptions, p: &mut Plan, view: &Report) -> io::Result<()> {
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
const MAX_EMPTY_SEGMENTS: u64 = 10_000;

/// Gaps in numbering: empty segments fill them, so Prometheus starts and keeps every segment.
/// [`gaps`] for a log whose checkpoint is dropped: replay starts at segment 0.
fn gaps_without_checkpoint(log: &Log, p: &mut Plan) {
    let mut log = log.clone();
    log.checkpoint = None;
    gaps(&log, p);
}

fn gaps(log: &Log, p: &mut Plan) {
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
fn fill(log: &Log, p: &mut Plan, have: &std::collections::BTreeSet<u64>, lo: u64, hi: u64) {
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

fn leftovers(log: &Log, opts: &RepairOptions, p: &mut Plan) -> io::Result<()> {
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
fn record_payloads(data: &[u8]) -> Vec<Vec<u8>> {
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

fn recover_repair_file(
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

fn step(what: impl Into<String>) -> impl FnOnce(io::Error) -> RepairError {
    let s = what.into();
    move |err| RepairError::Step { step: s, err }
}

fn rel(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(p.file_name().unwrap_or_default()))
}

fn same_content(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Copies a file or directory into the backup unless an identical copy is there already.
/// Returns the backup path.
fn backup(fs_: &dyn Fs, plan: &Plan, path: &Path) -> Result<PathBuf, RepairError> {
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

fn copy_tree(fs_: &dyn Fs, plan: &Plan, from: &Path, to: &Path) -> Result<(), RepairError> {
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
struct ManifestLine<'a> {
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

fn manifest(
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
fn private(fs_: &dyn Fs, plan: &Plan, path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(&plan.data_root)?;
    fs_.set_owner_mode(path, crate::fsops::wanted_owner(m.uid(), m.gid()), mode)
}

/// A new run directory name under `backup_dir`: the UTC time, then `-N` (above every `-N`
/// taken in that second, so names keep sorting by time after older runs are pruned).
fn new_run_dir(backup_dir: &Path) -> PathBuf {
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
fn run_name(secs: u64) -> String {
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
fn is_run_name(name: &str) -> bool {
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
fn prune_backups(
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
fn in_place_ok(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && m.nlink() == 1)
}

fn kind_of(path: &Path) -> LogKind {
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

fn pad_to_page(bytes: &mut Vec<u8>) {
    if !bytes.len().is_multiple_of(PAGE_SIZE) {
        bytes.resize(bytes.len() + PAGE_SIZE - bytes.len() % PAGE_SIZE, 0);
    }
}

/// The new content of the file an action rewrites: `Some(bytes)` for rewrites and new files,
/// `None` for actions that only remove.
/// `src` says where to read a path's current bytes (itself, or its copy in a prediction's
/// scratch dir).
fn new_content(
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

fn apply(fs_: &dyn Fs, a: &Action, opts: &RepairOptions) -> Result<(), RepairError> {
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

/// Checks what the WAL would look like after `plan`, without touching it: the changed files
/// are written into a scratch copy (untouched files are symlinked), which is then checked.
/// This is how the plan tells, before anything changes, which samples will point at series
/// whose series record is lost.
pub fn predict(plan: &Plan, opts: &RepairOptions) -> io::Result<Report> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let scratch = std::env::temp_dir().join(format!("walfix-plan-{}-{nanos}", std::process::id()));
    let result = predict_in(plan, opts, &scratch);
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn predict_in(plan: &Plan, opts: &RepairOptions, scratch: &Path) -> io::Result<Report> {
    let root = &plan.data_root;
    let map = |p: &Path| scratch.join(rel(root, p));
    let layout = discover(&plan.before.root, opts.flavor)?;
    let mut dirs: Vec<&Log> = Vec::new();
    for log in &layout.logs {
        dirs.push(log);
        if let Some(ck) = &log.checkpoint {
            dirs.push(&ck.log);
        }
    }
    // Mirror every segment (and the .repair files) as a symlink to the original.
    for log in &dirs {
        let dir = if log.single_file {
            log.path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            log.path.clone()
        };
        fs::create_dir_all(map(&dir))?;
        let mut files: Vec<PathBuf> = log.segments.iter().map(|s| s.path.clone()).collect();
        files.extend(log.leftovers.iter().filter_map(|l| match l {
            Leftover::RepairFile(p) => Some(p.clone()),
            _ => None,
        }));
        for f in files {
            let dst = map(&f);
            if !dst.exists() {
                std::os::unix::fs::symlink(fs::canonicalize(&f)?, &dst)?;
            }
        }
    }
    for a in &plan.actions {
        let dst = map(a.path());
        if let Action::RenameSegment { from, .. } = a {
            fs::rename(map(from), &dst)?;
            continue;
        }
        if let Action::CreateEmptyCheckpoint { .. } = a {
            fs::create_dir_all(&dst)?;
            fs::write(dst.join(crate::layout::segment_name(0)), b"")?;
            continue;
        }
        match new_content(a, opts, &|p| map(p))? {
            Some(bytes) => {
                if let Some(parent) = dst.parent() {
                    fs::create_dir_all(parent)?;
                }
                let _ = fs::remove_file(&dst);
                fs::write(&dst, bytes)?;
            }
            None => {
                let _ = fs::remove_file(&dst);
                let _ = fs::remove_dir_all(&dst);
            }
        }
        if let Action::RecoverRepairFile { repair_path, .. } = a {
            let _ = fs::remove_file(map(repair_path));
        }
    }
    let sand = discover(&map(&plan.before.root), opts.flavor)?;
    let check_opts = CheckOptions {
        flavor: opts.flavor,
        ..Default::default()
    };
    let mut report = check_layout(&sand, &check_opts);
    // Name the real files, not their scratch copies.
    let unmap = |p: &Path| match p.strip_prefix(scratch) {
        Ok(r) => root.join(r),
        Err(_) => p.to_path_buf(),
    };
    report.root = plan.before.root.clone();
    for f in &mut report.findings {
        f.file = unmap(&f.file);
    }
    for l in &mut report.logs {
        l.path = unmap(&l.path);
    }
    let scratch_s = scratch.to_string_lossy().into_owned();
    let root_s = root.to_string_lossy().into_owned();
    report
        .prometheus
        .map_paths(&unmap, &|t| t.replace(&scratch_s, &root_s));
    report.prometheus_outcome = report.prometheus.to_string();
    Ok(report)
}
