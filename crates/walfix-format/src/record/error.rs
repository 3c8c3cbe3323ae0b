//! The error every record decoder returns.

use super::RecordType;

/// Why and where a record payload failed to decode.
///
/// Prometheus turns any record decode error into a `CorruptionErr` at the end of the record, and
/// repair then drops that record and everything after it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(self))]
pub struct DecodeError {
    /// The record's type; `None` when the type byte itself is the problem.
    pub record_type: Option<RecordType>,
    /// Byte offset inside the record (type byte = 0) of the field that failed.
    pub offset: usize,
    /// Index of the entry (series, sample, …) being decoded; 0 for record headers.
    pub entry: usize,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

/// The ways a record payload can be malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// A 0-byte record: no type byte. Server replay ignores it like an unknown type; agent
    /// replay rejects it (`invalid record type unknown`).
    #[error("empty record (no type byte)")]
    Empty,
    /// A type byte no Prometheus version writes.
    #[error("unknown record type {0}")]
    UnknownType(u8),
    /// The record ends inside this field (Prometheus: `invalid size`).
    #[error("truncated {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A varint longer than 10 bytes or above `u64::MAX` (Prometheus: `invalid size`).
    #[error("varint overflow in {field}")]
    VarintOverflow {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes left over after a complete value (only for a standalone histogram body).
    #[error("{n} unexpected bytes left")]
    TrailingBytes {
        /// How many bytes were left.
        n: usize,
    },
    /// A count that the remaining bytes cannot hold even at one minimal element each.
    #[error("{field} {count} is more than the remaining bytes can hold")]
    CountTooLarge {
        /// The count being read.
        field: &'static str,
        /// The count as read.
        count: u64,
    },
}

fn describe(e: &DecodeError) -> String {
    let what = e.record_type.map_or("record", RecordType::name);
    match e.kind {
        DecodeErrorKind::Empty => format!("decode {what}: {}", e.kind),
        DecodeErrorKind::UnknownType(_) => format!("decode {what}: {} at byte 0", e.kind),
        _ => format!(
            "decode {what}: {} at byte {} of entry {}",
            e.kind, e.offset, e.entry
        ),
    }
}
