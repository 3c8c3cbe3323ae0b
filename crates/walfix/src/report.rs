//! What `check` found: findings, per-log statistics, the verdict.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

/// Bytes from disk (a label name or value, a file name) that print safely and serialize without
/// loss: as a JSON string when they are UTF-8 (JSON escapes control characters), otherwise as
/// `{"bytes": "<base64>"}` (docs/json-output.md). `Display` escapes control characters and
/// invalid bytes ([`walfix_format::text::escape`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(pub Vec<u8>);

impl Text {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Text {
    fn from(b: &[u8]) -> Text {
        Text(b.to_vec())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(s.as_bytes().to_vec())
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&walfix_format::text::escape(&self.0))
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bytes_json(&self.0, s)
    }
}

fn bytes_json<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    match std::str::from_utf8(b) {
        Ok(text) => s.serialize_str(text),
        Err(_) => {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("bytes", &walfix_format::text::base64(b))?;
            m.end()
        }
    }
}

/// The bytes of a path (on Unix, exactly the bytes of the name).
pub fn path_bytes(p: &std::path::Path) -> std::borrow::Cow<'_, [u8]> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        std::borrow::Cow::Borrowed(p.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::borrow::Cow::Owned(p.to_string_lossy().into_owned().into_bytes())
    }
}

/// A path for a terminal: control characters and bytes that are not UTF-8 escaped.
pub fn show_path(p: &std::path::Path) -> String {
    walfix_format::text::escape(&path_bytes(p))
}

/// Serializes a path like [`Text`]: a string when UTF-8, else `{"bytes": "<base64>"}`.
pub fn lossless_path<S: Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    bytes_json(&path_bytes(p), s)
}

/// How bad a finding is. The order is the order of exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth knowing; nothing wrong.
    Info,
    /// Prometheus starts and loses nothing because of it, or already lost the data silently.
    Warning,
    /// Damage that `walfix repair` fixes on its own.
    Repairable,
    /// Damage that needs a human decision (gaps, checkpoint damage, start-up blockers).
    NeedsHuman,
    /// A file could not be read: the report is incomplete.
    Unreadable,
}

impl Severity {
    /// The exit code of `walfix check` for a report whose worst finding has this severity.
    pub fn exit_code(self) -> i32 {
        match self {
            Severity::Info | Severity::Warning => 0,
            Severity::Repairable => 1,
            Severity::NeedsHuman => 2,
            Severity::Unreadable => 3,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Repairable => "repairable",
            Severity::NeedsHuman => "needs-human",
            Severity::Unreadable => "unreadable",
        }
    }
}

/// What Prometheus's reader would print when it stops here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrometheusStop {
    /// Offset in its `corruption in segment <file> at <offset>: <message>` line.
    pub offset: u64,
    /// Its error text.
    pub message: String,
}

/// Counts of entries whose series ref has no series record before them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UnknownRefs {
    /// Distinct refs.
    pub series: u64,
    /// Float samples.
    pub samples: u64,
    /// Histogram samples (integer and float).
    pub histograms: u64,
    /// Exemplars.
    pub exemplars: u64,
    /// Metadata entries.
    pub metadata: u64,
    /// Tombstones.
    pub tombstones: u64,
    /// Mmap markers (WBL).
    pub mmap_markers: u64,
}

impl UnknownRefs {
    /// Entries of all kinds.
    pub fn entries(&self) -> u64 {
        self.samples
            + self.histograms
            + self.exemplars
            + self.metadata
            + self.tombstones
            + self.mmap_markers
    }

    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &UnknownRefs) {
        self.series += o.series;
        self.samples += o.samples;
        self.histograms += o.histograms;
        self.exemplars += o.exemplars;
        self.metadata += o.metadata;
        self.tombstones += o.tombstones;
        self.mmap_markers += o.mmap_markers;
    }
}

/// One thing `check` found.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What it is about (kebab-case in JSON: `checksum-mismatch`, `segment-gap`, ...).
    pub kind: FindingKind,
    /// `wal`, `wbl`, `checkpoint` or `agent`.
    #[serde(serialize_with = "log_kind_name")]
    pub log: walfix_format::record::LogKind,
    /// The file or directory concerned.
    #[serde(serialize_with = "lossless_path")]
    pub file: PathBuf,
    /// Segment index, when the finding is inside a segment.
    pub segment: Option<u64>,
    /// Byte offset of the bad bytes in the segment.
    pub offset: Option<u64>,
    /// Byte offset where good data starts again (the damaged range is `lost_from..end`).
    pub end: Option<u64>,
    /// Offset of the first byte of the first record lost.
    pub lost_from: Option<u64>,
    /// Index of the affected record within the segment (records before it).
    pub record_index: Option<u64>,
    /// What is wrong, for a human.
    pub message: String,
    /// What Prometheus does about it.
    pub prometheus: String,
    /// When Prometheus's reader stops here: its offset and error text.
    pub prometheus_error: Option<PrometheusStop>,
    /// For `unknown-series-refs`: the counts.
    pub unknown_refs: Option<UnknownRefs>,
}

/// Record and entry counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Segment files.
    pub segments: u64,
    /// Of which empty.
    pub empty_segments: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Whole records read.
    pub records: u64,
    /// Records by type name (`series`, `samples`, ...; `unknown-N` for unknown type bytes).
    pub records_by_type: BTreeMap<String, u64>,
    /// Records by compression (`none`, `snappy`, `zstd`).
    pub compression: BTreeMap<String, u64>,
    /// Entries in series records.
    pub series: u64,
    /// Float samples (staleness markers included).
    pub float_samples: u64,
    /// Of the float samples, staleness markers.
    pub stale_markers: u64,
    /// Integer native histogram samples.
    pub histogram_samples: u64,
    /// Float native histogram samples.
    pub float_histogram_samples: u64,
    /// Exemplars.
    pub exemplars: u64,
    /// Tombstone intervals.
    pub tombstones: u64,
    /// Metadata entries.
    pub metadata: u64,
    /// Mmap markers.
    pub mmap_markers: u64,
    /// Smallest sample or histogram timestamp (ms since epoch).
    pub min_time: Option<i64>,
    /// Largest sample or histogram timestamp.
    pub max_time: Option<i64>,
    /// Record bytes after decompression.
    pub decoded_bytes: u64,
}

impl Stats {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Stats) {
        self.segments += o.segments;
        self.empty_segments += o.empty_segments;
        self.bytes += o.bytes;
        self.records += o.records;
        for (k, v) in &o.records_by_type {
            *self.records_by_type.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.compression {
            *self.compression.entry(k.clone()).or_default() += v;
        }
        self.series += o.series;
        self.float_samples += o.float_samples;
        self.stale_markers += o.stale_markers;
        self.histogram_samples += o.histogram_samples;
        self.float_histogram_samples += o.float_histogram_samples;
        self.exemplars += o.exemplars;
        self.tombstones += o.tombstones;
        self.metadata += o.metadata;
        self.mmap_markers += o.mmap_markers;
        self.min_time = min_opt(self.min_time, o.min_time);
        self.max_time = max_opt(self.max_time, o.max_time);
        self.decoded_bytes += o.decoded_bytes;
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Per-log summary.
#[derive(Clone, Debug, Serialize)]
pub struct LogSummary {
    /// `wal`, `wbl`, `checkpoint` or `agent`.
    #[serde(serialize_with = "log_kind_name")]
    pub log: walfix_format::record::LogKind,
    /// Directory (or file).
    #[serde(serialize_with = "lossless_path")]
    pub path: PathBuf,
    /// Lowest and highest segment index.
    pub first_segment: Option<u64>,
    /// Highest segment index.
    pub last_segment: Option<u64>,
    /// Counts over its segments.
    pub stats: Stats,
}

/// Everything `check` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The path checked.
    #[serde(serialize_with = "lossless_path")]
    pub root: PathBuf,
    /// Logs in replay order (a WAL's checkpoint first, as its own entry).
    pub logs: Vec<LogSummary>,
    /// Findings, in replay order.
    pub findings: Vec<Finding>,
    /// Counts over every log Prometheus would replay.
    pub totals: Stats,
    /// Distinct series refs defined by series records (checkpoint and live segments).
    pub distinct_series: u64,
    /// What Prometheus would do on start, in one sentence (`prometheus`'s `Display`).
    pub prometheus_outcome: String,
    /// What Prometheus would do on start, as data.
    pub prometheus: PrometheusOutcome,
    /// Worst severity (`info` if nothing was found).
    pub worst: Severity,
    /// Exit code of `walfix check` for this report.
    pub exit_code: i32,
}

impl Report {
    /// Findings at or above `s`.
    pub fn findings_at_least(&self, s: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= s)
    }
}

/// Serializes a log kind by its name: `wal`, `wbl`, `checkpoint`, `agent`.
pub fn log_kind_name<S: Serializer>(
    k: &walfix_format::record::LogKind,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.name())
}

/// A file holding records that replay never reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotReplayed {
    /// The file (a `NNNNNNNN.repair` left by an interrupted Prometheus repair).
    #[serde(serialize_with = "lossless_path")]
    pub file: PathBuf,
    /// Records in it that the segment of the same number does not hold.
    pub records: u64,
    /// Float and histogram samples in those records.
    pub samples: u64,
}

/// What real Prometheus does when it starts on these logs, worked out once from the findings
/// (`Display` gives it in one sentence).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PrometheusOutcome {
    /// It starts and its reader reports no error.
    ReplaysAll {
        /// Entries it drops because their series record is missing (`Unknown series references`).
        unknown_refs: UnknownRefs,
        /// Files with records it never reads.
        not_replayed: Vec<NotReplayed>,
    },
    /// Its reader stops at a corruption; its repair keeps the records before it, deletes the
    /// rest of that segment and every later segment of the log, and it starts.
    RepairsAndStarts {
        /// `wal` or `wbl`.
        #[serde(serialize_with = "log_kind_name")]
        log: walfix_format::record::LogKind,
        /// The segment it stops in.
        #[serde(serialize_with = "lossless_path")]
        file: PathBuf,
        /// Its index.
        segment: u64,
        /// What it logs.
        error: PrometheusStop,
        /// Records before the corruption in that segment, which it keeps.
        records_kept: u64,
        /// Later segments of the log, which it deletes.
        later_segments_deleted: u64,
        /// Float and histogram samples lost.
        samples_lost: u64,
        /// Float and histogram samples in every log it replays.
        samples_total: u64,
        /// Files with records it never reads.
        not_replayed: Vec<NotReplayed>,
    },
    /// Loading the checkpoint fails at a corruption; its repair, aimed at the live WAL,
    /// deletes every segment above the checkpoint, and it does not start
    /// (prometheus/prometheus#7530).
    CheckpointRepairFails {
        /// The checkpoint segment.
        #[serde(serialize_with = "lossless_path")]
        file: PathBuf,
        /// Its index inside the checkpoint, which the repair takes for a WAL segment number:
        /// it deletes every WAL segment above it.
        segment: u64,
        /// What it logs.
        error: PrometheusStop,
        /// Live segments it deletes.
        segments_deleted: u64,
        /// Their bytes.
        bytes_deleted: u64,
    },
    /// It does not start (and changes nothing).
    DoesNotStart {
        /// Why, as it says it (or close to it).
        error: String,
    },
}

impl PrometheusOutcome {
    /// True if Prometheus gets as far as serving (after its own repair, maybe).
    pub fn starts(&self) -> bool {
        matches!(
            self,
            PrometheusOutcome::ReplaysAll { .. } | PrometheusOutcome::RepairsAndStarts { .. }
        )
    }

    /// Renames the paths it holds (`text` for paths inside error text), e.g. from a scratch
    /// copy back to the real files.
    pub fn map_paths(
        &mut self,
        path: &dyn Fn(&std::path::Path) -> PathBuf,
        text: &dyn Fn(&str) -> String,
    ) {
        match self {
            PrometheusOutcome::ReplaysAll { not_replayed, .. } => {
                for n in not_replayed {
                    n.file = path(&n.file);
                }
            }
            PrometheusOutcome::RepairsAndStarts {
                file, not_replayed, ..
            } => {
                *file = path(file);
                for n in not_replayed {
                    n.file = path(&n.file);
                }
            }
            PrometheusOutcome::CheckpointRepairFails { file, .. } => *file = path(file),
            PrometheusOutcome::DoesNotStart { error } => *error = text(error),
        }
    }

    /// Records it never reads, in files such as a leftover `.repair`.
    pub fn not_replayed(&self) -> &[NotReplayed] {
        match self {
            PrometheusOutcome::ReplaysAll { not_replayed, .. }
            | PrometheusOutcome::RepairsAndStarts { not_replayed, .. } => not_replayed,
            _ => &[],
        }
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

impl std::fmt::Display for PrometheusOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let silent = |f: &mut std::fmt::Formatter<'_>, n: &[NotReplayed]| {
            for r in n {
                write!(
                    f,
                    "; it never reads {} ({} records, {} samples: what an interrupted repair of its own moved out of the segment, lost without a word)",
                    show_path(&r.file),
                    r.records,
                    r.samples
                )?;
            }
            Ok(())
        };
        match self {
            PrometheusOutcome::ReplaysAll {
                unknown_refs: u,
                not_replayed,
            } => {
                if not_replayed.is_empty() {
                    f.write_str("Prometheus replays everything without error")?;
                } else {
                    f.write_str("Prometheus starts without an error")?;
                }
                if u.entries() > 0 {
                    write!(
                        f,
                        ", but drops {} samples, {} histograms and {} other entries whose series record is missing (`Unknown series references`)",
                        u.samples,
                        u.histograms,
                        u.entries() - u.samples - u.histograms
                    )?;
                }
                silent(f, not_replayed)
            }
            PrometheusOutcome::RepairsAndStarts {
                log,
                file,
                segment,
                error,
                records_kept,
                later_segments_deleted,
                samples_lost,
                samples_total,
                not_replayed,
            } => {
                let what = if *log == walfix_format::record::LogKind::Wbl {
                    "WBL"
                } else {
                    "WAL"
                };
                write!(
                    f,
                    "Prometheus stops replay at `corruption in segment {} at {}: {}`; its {what} repair keeps the {records_kept} records before it in segment {segment:08}, deletes the rest of that segment and {later_segments_deleted} later segment(s), and loses {samples_lost} of {samples_total} samples ({}) before it starts",
                    file.display(),
                    error.offset,
                    error.message,
                    percent(*samples_lost, *samples_total)
                )?;
                silent(f, not_replayed)
            }
            PrometheusOutcome::CheckpointRepairFails {
                file,
                segment,
                error,
                segments_deleted,
                bytes_deleted,
            } => write!(
                f,
                "Prometheus fails loading the checkpoint (corruption in segment {} at {}: {}) and misdirects its repair at the live WAL (prometheus/prometheus#7530): it deletes every WAL segment numbered above {segment} ({segments_deleted} segments, {bytes_deleted} bytes), then fails to start",
                file.display(),
                error.offset,
                error.message
            ),
            PrometheusOutcome::DoesNotStart { error } => {
                write!(f, "Prometheus does not start: {error}")
            }
        }
    }
}

macro_rules! finding_kinds {
    ($($(#[$doc:meta])* $v:ident => $name:literal,)*) => {
        /// What a finding is about; `name()` (and JSON) give its stable kebab-case name
        /// (docs/json-output.md lists them).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "kebab-case")]
        #[non_exhaustive]
        pub enum FindingKind {
            $($(#[$doc])* #[allow(missing_docs)] $v,)*
        }

        impl FindingKind {
            /// Every kind, in the order of docs/json-output.md.
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$v,)*];

            /// The stable kebab-case name, e.g. `checksum-mismatch`.
            pub fn name(self) -> &'static str {
                match self {
                    $(FindingKind::$v => $name,)*
                }
            }
        }
    };
}

finding_kinds! {
    ChecksumMismatch => "checksum-mismatch",
    InvalidFragmentType => "invalid-fragment-type",
    InvalidFragmentLength => "invalid-fragment-length",
    NonZeroPadding => "non-zero-padding",
    OrphanFragment => "orphan-fragment",
    InterruptedRecord => "interrupted-record",
    TornTail => "torn-tail",
    TruncatedSegment => "truncated-segment",
    TruncatedMultipageRecord => "truncated-multipage-record",
    DecompressionFailed => "decompression-failed",
    RecordDecodeFailed => "record-decode-failed",
    RejectedRecordType => "rejected-record-type",
    IgnoredRecordType => "ignored-record-type",
    UndecodableIgnoredRecord => "undecodable-ignored-record",
    UnknownSeriesRefs => "unknown-series-refs",
    FragmentCrossesPage => "fragment-crosses-page",
    MisalignedFragment => "misaligned-fragment",
    PaddingInsideRecord => "padding-inside-record",
    ZeroPagesBeforeData => "zero-pages-before-data",
    StrayFlagBits => "stray-flag-bits",
    MixedCompression => "mixed-compression",
    UnalignedTail => "unaligned-tail",
    SegmentGap => "segment-gap",
    DuplicateSegmentIndex => "duplicate-segment-index",
    MissingFirstSegment => "missing-first-segment",
    MissingSegmentAfterCheckpoint => "missing-segment-after-checkpoint",
    CheckpointMissingFirstSegment => "checkpoint-missing-first-segment",
    UnalignedCheckpointSegment => "unaligned-checkpoint-segment",
    SegmentsCoveredByCheckpoint => "segments-covered-by-checkpoint",
    SegmentIsDirectory => "segment-is-directory",
    OddSegmentName => "odd-segment-name",
    LeftoverRepairFile => "leftover-repair-file",
    StaleCheckpointTmp => "stale-checkpoint-tmp",
    CheckpointNotDirectory => "checkpoint-not-directory",
    OldCheckpoint => "old-checkpoint",
    UnreadableSegment => "unreadable-segment",
    MoreProblems => "more-problems",
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// So `f.kind == "torn-tail"` reads as before the enum.
impl PartialEq<&str> for FindingKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl FindingKind {
    /// The kind of a finding about a reader problem (a torn fragment or truncated record is
    /// told apart by where the segment sits, so it is not mapped here).
    pub fn of_problem(k: &walfix_format::frames::ProblemKind) -> FindingKind {
        use walfix_format::frames::ProblemKind as P;
        match k {
            P::ChecksumMismatch { .. } => FindingKind::ChecksumMismatch,
            P::InvalidFragmentType { .. } => FindingKind::InvalidFragmentType,
            P::InvalidFragmentLength { .. } => FindingKind::InvalidFragmentLength,
            P::NonZeroPadding { .. } => FindingKind::NonZeroPadding,
            P::OrphanFragment { .. } => FindingKind::OrphanFragment,
            P::InterruptedRecord { .. } => FindingKind::InterruptedRecord,
            P::TornFragment => FindingKind::TornTail,
            P::TruncatedRecord { .. } => FindingKind::TruncatedMultipageRecord,
            P::Decompression(_) => FindingKind::DecompressionFailed,
            P::Decode(_) => FindingKind::RecordDecodeFailed,
            P::RejectedRecordType(_) => FindingKind::RejectedRecordType,
            P::UndecodableIgnoredRecord(_) => FindingKind::UndecodableIgnoredRecord,
            P::FragmentCrossesPage => FindingKind::FragmentCrossesPage,
            P::MisalignedFragment { .. } => FindingKind::MisalignedFragment,
            P::PaddingInsideRecord => FindingKind::PaddingInsideRecord,
            P::ZeroPagesBeforeData { .. } => FindingKind::ZeroPagesBeforeData,
            P::StrayFlagBits { .. } => FindingKind::StrayFlagBits,
            P::MixedCompression => FindingKind::MixedCompression,
        }
    }

    /// Damage at the end of a segment (it ends inside a record, as after a crash).
    pub fn is_tail(self) -> bool {
        matches!(
            self,
            FindingKind::TornTail
                | FindingKind::TruncatedSegment
                | FindingKind::TruncatedMultipageRecord
        )
    }
}
