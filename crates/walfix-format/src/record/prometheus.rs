//! The error text Prometheus's replay logs for a record that does not decode.
//!
//! Replay wraps the decoder's error once: `decode <what>: <err>` (`head_wal.go` loadWAL and
//! loadWBL, `agent/db.go` loadWAL, at v3.5.0 and v3.14.0), and the decoder (`record.go`) words
//! `<err>` per type:
//!
//! * samples, exemplars, mmap markers, histograms: `decode error after N <entries>: invalid size`,
//!   where N counts the entries appended before the check, the broken one included: the
//!   decoding loop appends an entry before it looks at the error of the `Decbuf`. Errors in the
//!   V1 header (`be64 base ref`, `be64 base t`) or in the first head of a V2 histogram record
//!   (read before the loop) leave N at 0. Since v3.12 histograms of an unknown schema are
//!   skipped, not appended; the broken one is counted (its schema reads as 0 when the bytes end
//!   before it).
//! * series, tombstones, metadata: the bare `Decbuf` error, `invalid size`.
//!
//! Every read past the end of a record and every varint Go rejects is `encoding.ErrInvalidSize`
//! (`invalid size`). A count larger than the remaining bytes can hold is also reported as
//! `invalid size`: Go reads on until a field runs out of bytes.

use super::primitives::read_uvarint;
use super::{visit, DecodeError, DecodeErrorKind, HistogramSample, LogKind, RecordType, Visitor};

/// Bytes of a V1 envelope before its first entry: type byte, be64 base ref, be64 base t.
const V1_HEADER_END: usize = 17;

/// What Prometheus's replay of a `kind` log logs after `corruption in segment ... at N: ` when
/// record `rec` fails to decode with `e`. `None` for record types that replay of `kind` does not
/// decode (it skips or rejects them before decoding).
///
/// ```
/// use walfix_format::record::{prometheus_decode_error, validate, LogKind};
///
/// // A samples record: base ref 1, base t 0, one whole sample, then 2 bytes of a second.
/// let mut rec = vec![2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
/// rec.extend([0, 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
/// rec.extend([0, 0]);
/// let e = validate(&rec).unwrap_err();
/// assert_eq!(
///     prometheus_decode_error(&rec, &e, LogKind::Wal).as_deref(),
///     Some("decode samples: decode error after 2 samples: invalid size")
/// );
/// ```
pub fn prometheus_decode_error(rec: &[u8], e: &DecodeError, kind: LogKind) -> Option<String> {
    let t = e.record_type?;
    let what = replay_prefix(kind, t)?;
    let cause = match &e.kind {
        // Replay dispatches on the type byte: these never reach a decoder.
        DecodeErrorKind::Empty | DecodeErrorKind::UnknownType(_) => return None,
        DecodeErrorKind::TrailingBytes { n } => format!("unexpected {n} bytes left in entry"),
        DecodeErrorKind::Truncated { .. }
        | DecodeErrorKind::VarintOverflow { .. }
        | DecodeErrorKind::CountTooLarge { .. } => "invalid size".to_string(),
    };
    let entries = match t {
        RecordType::Samples | RecordType::SamplesV2 => Some("samples"),
        RecordType::Exemplars => Some("exemplars"),
        RecordType::MmapMarkers => Some("mmap markers"),
        t if t.is_histogram() => Some("histograms"),
        _ => None,
    };
    let Some(entries) = entries else {
        return Some(format!("{what}: {cause}"));
    };
    let mut count = Count(0);
    // Replays the record up to the error: the visitor sees every entry before the broken one.
    let _ = visit(rec, &mut count);
    let in_header = count.0 == 0
        && match t {
            RecordType::Samples | RecordType::Exemplars => e.offset < V1_HEADER_END,
            t if t.is_histogram() && !t.is_v2() => e.offset < V1_HEADER_END,
            RecordType::HistogramSamplesV2 | RecordType::FloatHistogramSamplesV2 => {
                v2_first_head_end(rec).is_none_or(|end| e.offset < end)
            }
            _ => false,
        };
    let n = count.0 + u64::from(!in_header);
    Some(format!("{what}: decode error after {n} {entries}: {cause}"))
}

/// The `decode <what>` prefix replay of `kind` puts before a decoder error of type `t`.
fn replay_prefix(kind: LogKind, t: RecordType) -> Option<&'static str> {
    use RecordType::*;
    let float_hist = t.is_float_histogram();
    Some(match (kind, t) {
        // head_wal.go loadWAL (the server's WAL and its checkpoints).
        (LogKind::Wal | LogKind::Checkpoint, Series) => "decode series",
        (LogKind::Wal | LogKind::Checkpoint, Samples | SamplesV2) => "decode samples",
        (LogKind::Wal | LogKind::Checkpoint, Tombstones) => "decode tombstones",
        (LogKind::Wal | LogKind::Checkpoint, Exemplars) => "decode exemplars",
        (LogKind::Wal | LogKind::Checkpoint, Metadata) => "decode metadata",
        (LogKind::Wal | LogKind::Checkpoint, t) if t.is_histogram() && float_hist => {
            "decode float histograms"
        }
        (LogKind::Wal | LogKind::Checkpoint, t) if t.is_histogram() => "decode histograms",
        // head_wal.go loadWBL.
        (LogKind::Wbl, Samples | SamplesV2) => "decode samples",
        (LogKind::Wbl, MmapMarkers) => "decode mmap markers",
        (LogKind::Wbl, t) if t.is_histogram() && float_hist => "decode float histograms",
        (LogKind::Wbl, t) if t.is_histogram() => "decode histograms",
        // agent/db.go loadWAL.
        (LogKind::Agent, Series) => "decode series",
        (LogKind::Agent, Samples | SamplesV2) => "decode samples",
        (LogKind::Agent, t) if t.is_histogram() && float_hist => "decode float histogram samples",
        (LogKind::Agent, t) if t.is_histogram() => "decode histogram samples",
        // Everything else is skipped (`// Noop.`, `continue`) or rejected before decoding.
        _ => return None,
    })
}

/// End of the first ref, t and st varints of a V2 histogram record; `None` if they do not read.
fn v2_first_head_end(rec: &[u8]) -> Option<usize> {
    let mut pos = 1;
    for _ in 0..3 {
        let (_, n) = read_uvarint(rec.get(pos..)?).ok()?;
        pos += n;
    }
    Some(pos)
}

/// Counts what Prometheus's decoder appends: every sample, exemplar and mmap marker, and
/// histograms of a known schema (custom buckets, or exponential -9..=52).
struct Count(u64);

impl Visitor for Count {
    fn sample(&mut self, _s: &super::Sample) {
        self.0 += 1;
    }
    fn samples(&mut self, batch: &[super::Sample]) {
        self.0 += batch.len() as u64;
    }
    fn exemplar(&mut self, _e: &super::Exemplar<'_>) {
        self.0 += 1;
    }
    fn mmap_marker(&mut self, _m: &super::MmapMarker) {
        self.0 += 1;
    }
    fn histogram(&mut self, h: &HistogramSample<'_>) {
        if h.is_custom_buckets() || (-9..=52).contains(&h.schema) {
            self.0 += 1;
        }
    }
}
