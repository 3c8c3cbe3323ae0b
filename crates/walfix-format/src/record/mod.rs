//! Record payloads (spec section 4): decoding and encoding of every record type Prometheus 2.x
//! and 3.x writes, types 1 to 13.
//!
//! A record payload is what is left after joining a record's fragments and undoing compression:
//! one type byte, then entries in the type's layout. Two ways to read one:
//!
//! * [`visit`] validates a record and hands each entry to a [`Visitor`] as a borrowed view,
//!   without allocating. This is the hot path for checking.
//! * [`Record::decode`] copies the entries into a [`Record`]; [`Record::encode`] writes a
//!   record back with exactly the bytes Prometheus's encoder produces.
//!
//! Validation matches Prometheus's decoder (`tsdb/record/record.go`): same field layout, Go's
//! varint rules, 32-bit narrowing of histogram schemas and spans, no order checks on labels.
//! [`LogKind::accepts`] says which types each kind of log replays at all.
//!
//! Facts are from Prometheus's source at v3.14.0 (= HEAD `d15adb9ad7` for these files) and
//! v3.5.0; no Go code was copied.

mod error;
mod histogram;
mod owned;
mod pairs;
mod primitives;
mod prometheus;
mod types;
mod visit;

#[cfg(test)]
mod tests;

pub use error::{DecodeError, DecodeErrorKind};
pub use histogram::{FloatHistogram, HistogramBody, IntHistogram, Span, CUSTOM_BUCKETS_SCHEMA};
pub use owned::{OwnedExemplar, OwnedHistogramSample, OwnedMetadata, OwnedSeries, Record};
pub use pairs::{Labels, MetadataFields, PairIter};
pub use prometheus::prometheus_decode_error;
pub use types::{Acceptance, LogKind, RecordType};
pub use visit::{
    validate, visit, Exemplar, HistogramSample, Metadata, MmapMarker, Sample, Series, Tombstone,
    Visitor,
};

/// The staleness marker Prometheus writes as a sample value when a series disappears
/// (`value.StaleNaN`). Compare with `v.to_bits() == STALE_NAN_BITS`.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
