//! Record types, log kinds and which log kind replays which record type.

use std::fmt;

/// The first byte of every record payload (`record.go@v3.14.0`, type `Type`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// Series labels with their refs (since 2.4.0).
    Series = 1,
    /// Float samples, V1 layout (since 2.4.0).
    Samples = 2,
    /// Deleted time ranges; since 3.10.0 `[i64::MIN, i64::MAX]` also means "series evicted".
    Tombstones = 3,
    /// Exemplars (since 2.27.0).
    Exemplars = 4,
    /// Out-of-order chunk m-map markers; written to the WBL only (since 2.39.0).
    MmapMarkers = 5,
    /// Series metadata: type, unit, help (since 2.38.0).
    Metadata = 6,
    /// Integer native histograms, V1 envelope (since 2.40.0, layout changed in 2.42.0).
    HistogramSamples = 7,
    /// Float native histograms, V1 envelope (since 2.42.0).
    FloatHistogramSamples = 8,
    /// Integer histograms with custom buckets (schema -53), V1 envelope (since 3.2.0).
    CustomBucketsHistogramSamples = 9,
    /// Float histograms with custom buckets (schema -53), V1 envelope (since 3.2.0).
    CustomBucketsFloatHistogramSamples = 10,
    /// Float samples with start timestamps (since 3.11.0, `st-storage`).
    SamplesV2 = 11,
    /// Integer histograms with start timestamps, any schema (since 3.12.0).
    HistogramSamplesV2 = 12,
    /// Float histograms with start timestamps, any schema (since 3.12.0).
    FloatHistogramSamplesV2 = 13,
}

impl RecordType {
    /// Every known type, in type-byte order.
    pub const ALL: [RecordType; 13] = [
        RecordType::Series,
        RecordType::Samples,
        RecordType::Tombstones,
        RecordType::Exemplars,
        RecordType::MmapMarkers,
        RecordType::Metadata,
        RecordType::HistogramSamples,
        RecordType::FloatHistogramSamples,
        RecordType::CustomBucketsHistogramSamples,
        RecordType::CustomBucketsFloatHistogramSamples,
        RecordType::SamplesV2,
        RecordType::HistogramSamplesV2,
        RecordType::FloatHistogramSamplesV2,
    ];

    /// The type for a type byte, `None` for bytes no Prometheus version writes.
    pub fn from_u8(b: u8) -> Option<RecordType> {
        // ALL is ordered by value starting at 1, so the byte is an index.
        RecordType::ALL.get(usize::from(b).checked_sub(1)?).copied()
    }

    /// The name Prometheus's `Type.String()` gives (`record.go@v3.14.0`).
    pub fn name(self) -> &'static str {
        match self {
            RecordType::Series => "series",
            RecordType::Samples => "samples",
            RecordType::Tombstones => "tombstones",
            RecordType::Exemplars => "exemplars",
            RecordType::MmapMarkers => "mmapmarkers",
            RecordType::Metadata => "metadata",
            RecordType::HistogramSamples => "histogram_samples",
            RecordType::FloatHistogramSamples => "float_histogram_samples",
            RecordType::CustomBucketsHistogramSamples => "custom_buckets_histogram_samples",
            RecordType::CustomBucketsFloatHistogramSamples => {
                "custom_buckets_float_histogram_samples"
            }
            RecordType::SamplesV2 => "samples_v2",
            RecordType::HistogramSamplesV2 => "histogram_samples_v2",
            RecordType::FloatHistogramSamplesV2 => "float_histogram_samples_v2",
        }
    }

    /// True for the six histogram types (7..=10, 12, 13).
    pub fn is_histogram(self) -> bool {
        matches!(
            self,
            RecordType::HistogramSamples
                | RecordType::FloatHistogramSamples
                | RecordType::CustomBucketsHistogramSamples
                | RecordType::CustomBucketsFloatHistogramSamples
                | RecordType::HistogramSamplesV2
                | RecordType::FloatHistogramSamplesV2
        )
    }

    /// True for the histogram types whose bodies hold float counts (8, 10, 13).
    pub fn is_float_histogram(self) -> bool {
        matches!(
            self,
            RecordType::FloatHistogramSamples
                | RecordType::CustomBucketsFloatHistogramSamples
                | RecordType::FloatHistogramSamplesV2
        )
    }

    /// True for the types with the V2 per-entry layout and start timestamps (11..=13).
    pub fn is_v2(self) -> bool {
        matches!(
            self,
            RecordType::SamplesV2
                | RecordType::HistogramSamplesV2
                | RecordType::FloatHistogramSamplesV2
        )
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kind of log a record was read from; each replays a different set of types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// A server's `wal/` segments.
    Wal,
    /// A server's `wbl/` segments (out-of-order samples).
    Wbl,
    /// A server's `wal/checkpoint.N/` (replayed by the same code as the WAL). An agent's
    /// checkpoint is replayed by the agent: use [`LogKind::Agent`] for it.
    Checkpoint,
    /// An agent-mode WAL (`--agent`) or its checkpoint.
    Agent,
}

/// What Prometheus's replay does with a record of some type in some kind of log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Decoded and applied; a decode error is a corruption that triggers repair.
    Expected,
    /// Skipped without decoding: neither applied nor checked.
    IgnoredByPrometheus,
    /// Replay reports `invalid record type …` as a corruption (agent only).
    RejectedByPrometheus,
}

impl LogKind {
    /// How replay of this log kind treats a record whose type byte is `t` (`None`: an unknown
    /// type byte, or a 0-byte record, which `Decoder.Type` also calls unknown).
    pub fn accepts(self, t: Option<RecordType>) -> Acceptance {
        use Acceptance::*;
        use RecordType::*;
        match (self, t) {
            // Server WAL and checkpoints share head_wal.go@v3.14.0 loadWAL.
            // loadWAL has no case for MmapMarkers: it falls into `default: // Noop.`
            (LogKind::Wal | LogKind::Checkpoint, Some(MmapMarkers)) => IgnoredByPrometheus,
            // loadWAL decodes series, (v2) samples, tombstones, exemplars, all histogram types, metadata.
            (LogKind::Wal | LogKind::Checkpoint, Some(_)) => Expected,
            // loadWAL `default: // Noop.`; unknown types are ignored since 2.22.0 (#8004).
            (LogKind::Wal | LogKind::Checkpoint, None) => IgnoredByPrometheus,

            // head_wal.go@v3.14.0 loadWBL: cases for (v2) samples, mmap markers, all histogram types.
            (
                LogKind::Wbl,
                Some(
                    Samples
                    | SamplesV2
                    | MmapMarkers
                    | HistogramSamples
                    | FloatHistogramSamples
                    | CustomBucketsHistogramSamples
                    | CustomBucketsFloatHistogramSamples
                    | HistogramSamplesV2
                    | FloatHistogramSamplesV2,
                ),
            ) => Expected,
            // loadWBL `default: // Noop.`: series, tombstones, exemplars, metadata and unknown
            // bytes are skipped without being decoded (WBL replay takes series from the WAL).
            (LogKind::Wbl, Some(Series | Tombstones | Exemplars | Metadata) | None) => {
                IgnoredByPrometheus
            }

            // agent/db.go@v3.14.0 loadWAL: cases Series, Samples/SamplesV2 and all histogram types
            // (v3.5.0 has no V2 types yet and so rejects 11..=13 as unknown).
            (
                LogKind::Agent,
                Some(
                    Series
                    | Samples
                    | SamplesV2
                    | HistogramSamples
                    | FloatHistogramSamples
                    | CustomBucketsHistogramSamples
                    | CustomBucketsFloatHistogramSamples
                    | HistogramSamplesV2
                    | FloatHistogramSamplesV2,
                ),
            ) => Expected,
            // agent/db.go@v3.14.0: `case record.Tombstones, record.Exemplars: continue`.
            (LogKind::Agent, Some(Tombstones | Exemplars)) => IgnoredByPrometheus,
            // agent/db.go@v3.14.0 `default:` queues `invalid record type %v` as a CorruptionErr:
            // hits MmapMarkers, Metadata, unknown bytes and 0-byte records.
            (LogKind::Agent, Some(MmapMarkers | Metadata) | None) => RejectedByPrometheus,
        }
    }

    /// Short lowercase name for messages: `wal`, `wbl`, `checkpoint`, `agent`.
    pub fn name(self) -> &'static str {
        match self {
            LogKind::Wal => "wal",
            LogKind::Wbl => "wbl",
            LogKind::Checkpoint => "checkpoint",
            LogKind::Agent => "agent",
        }
    }
}
