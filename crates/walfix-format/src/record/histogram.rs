//! Native histogram bodies (spec 4.3, `EncodeHistogram` / `EncodeFloatHistogram`).
//!
//! Layout: `u8 counter_reset_hint`, `varint schema`, `f64 zero_threshold`, zero count and count
//! (`uvarint` for integer histograms, `f64` for float ones), `f64 sum`, positive then negative
//! spans (`uvarint n` + n × (`varint offset`, `uvarint length`)), positive then negative buckets
//! (`uvarint n` + n × `varint` delta or `f64`), and only for schema -53 the custom bucket bounds
//! (`uvarint n` + n × `f64`).

use super::primitives::{put_f64, put_uvarint, put_varint, Decoder, Result};

/// The schema of histograms with custom bucket bounds (NHCB); only these carry custom values.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A run of consecutive buckets: `offset` buckets after the previous span, `length` long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Gap to the previous span (or start index for the first one).
    pub offset: i32,
    /// Number of buckets in the span.
    pub length: u32,
}

/// An integer native histogram body (types 7, 9, 12).
#[derive(Clone, Debug, Default)]
pub struct IntHistogram {
    /// 0 unknown, 1 counter reset, 2 not a reset, 3 gauge.
    pub counter_reset_hint: u8,
    /// Bucket schema; -53 means custom buckets.
    pub schema: i32,
    /// Width of the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Total observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
    /// Positive bucket spans.
    pub positive_spans: Vec<Span>,
    /// Negative bucket spans.
    pub negative_spans: Vec<Span>,
    /// Positive bucket counts as stored: first absolute, then deltas to the previous bucket.
    pub positive_buckets: Vec<i64>,
    /// Negative bucket counts, delta-encoded like the positive ones.
    pub negative_buckets: Vec<i64>,
    /// Upper bounds of the custom buckets (schema -53 only).
    pub custom_values: Vec<f64>,
}

/// A float native histogram body (types 8, 10, 13).
#[derive(Clone, Debug, Default)]
pub struct FloatHistogram {
    /// 0 unknown, 1 counter reset, 2 not a reset, 3 gauge.
    pub counter_reset_hint: u8,
    /// Bucket schema; -53 means custom buckets.
    pub schema: i32,
    /// Width of the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// Total observations.
    pub count: f64,
    /// Sum of observations.
    pub sum: f64,
    /// Positive bucket spans.
    pub positive_spans: Vec<Span>,
    /// Negative bucket spans.
    pub negative_spans: Vec<Span>,
    /// Positive bucket counts (absolute).
    pub positive_buckets: Vec<f64>,
    /// Negative bucket counts (absolute).
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53 only).
    pub custom_values: Vec<f64>,
}

/// A decoded histogram body. Floats compare by bit pattern, so NaNs round-trip and compare equal.
#[derive(Clone, Debug)]
pub enum HistogramBody {
    /// Integer counts.
    Int(IntHistogram),
    /// Float counts.
    Float(FloatHistogram),
}

fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

fn same_f64s(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_f64(*x, *y))
}

impl PartialEq for IntHistogram {
    fn eq(&self, o: &Self) -> bool {
        self.counter_reset_hint == o.counter_reset_hint
            && self.schema == o.schema
            && same_f64(self.zero_threshold, o.zero_threshold)
            && self.zero_count == o.zero_count
            && self.count == o.count
            && same_f64(self.sum, o.sum)
            && self.positive_spans == o.positive_spans
            && self.negative_spans == o.negative_spans
            && self.positive_buckets == o.positive_buckets
            && self.negative_buckets == o.negative_buckets
            && same_f64s(&self.custom_values, &o.custom_values)
    }
}

impl Eq for IntHistogram {}

impl PartialEq for FloatHistogram {
    fn eq(&self, o: &Self) -> bool {
        self.counter_reset_hint == o.counter_reset_hint
            && self.schema == o.schema
            && same_f64(self.zero_threshold, o.zero_threshold)
            && same_f64(self.zero_count, o.zero_count)
            && same_f64(self.count, o.count)
            && same_f64(self.sum, o.sum)
            && self.positive_spans == o.positive_spans
            && self.negative_spans == o.negative_spans
            && same_f64s(&self.positive_buckets, &o.positive_buckets)
            && same_f64s(&self.negative_buckets, &o.negative_buckets)
            && same_f64s(&self.custom_values, &o.custom_values)
    }
}

impl Eq for FloatHistogram {}

impl PartialEq for HistogramBody {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (HistogramBody::Int(a), HistogramBody::Int(b)) => a == b,
            (HistogramBody::Float(a), HistogramBody::Float(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for HistogramBody {}

impl HistogramBody {
    /// True for a float body.
    pub fn is_float(&self) -> bool {
        matches!(self, HistogramBody::Float(_))
    }

    /// The bucket schema.
    pub fn schema(&self) -> i32 {
        match self {
            HistogramBody::Int(h) => h.schema,
            HistogramBody::Float(h) => h.schema,
        }
    }

    /// The counter reset hint byte.
    pub fn counter_reset_hint(&self) -> u8 {
        match self {
            HistogramBody::Int(h) => h.counter_reset_hint,
            HistogramBody::Float(h) => h.counter_reset_hint,
        }
    }

    fn empty(is_float: bool) -> HistogramBody {
        if is_float {
            HistogramBody::Float(FloatHistogram::default())
        } else {
            HistogramBody::Int(IntHistogram::default())
        }
    }

    /// Reads one body from `d` (the whole of it must be there).
    pub(crate) fn decode(d: &mut Decoder<'_>, is_float: bool) -> Result<HistogramBody> {
        let mut body = HistogramBody::empty(is_float);
        let (hint, schema) = parse_body(d, is_float, &mut body)?;
        match &mut body {
            HistogramBody::Int(h) => (h.counter_reset_hint, h.schema) = (hint, schema),
            HistogramBody::Float(h) => (h.counter_reset_hint, h.schema) = (hint, schema),
        }
        Ok(body)
    }

    /// Appends the body as Prometheus writes it. Custom values are written only for schema -53,
    /// exactly like Prometheus, so they are lost for any other schema.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            HistogramBody::Int(h) => {
                put_head(out, h.counter_reset_hint, h.schema, h.zero_threshold);
                put_uvarint(out, h.zero_count);
                put_uvarint(out, h.count);
                put_f64(out, h.sum);
                put_spans(out, &h.positive_spans);
                put_spans(out, &h.negative_spans);
                for buckets in [&h.positive_buckets, &h.negative_buckets] {
                    put_uvarint(out, buckets.len() as u64);
                    for b in buckets {
                        put_varint(out, *b);
                    }
                }
                put_custom_values(out, h.schema, &h.custom_values);
            }
            HistogramBody::Float(h) => {
                put_head(out, h.counter_reset_hint, h.schema, h.zero_threshold);
                put_f64(out, h.zero_count);
                put_f64(out, h.count);
                put_f64(out, h.sum);
                put_spans(out, &h.positive_spans);
                put_spans(out, &h.negative_spans);
                for buckets in [&h.positive_buckets, &h.negative_buckets] {
                    put_f64s(out, buckets);
                }
                put_custom_values(out, h.schema, &h.custom_values);
            }
        }
    }
}

fn put_head(out: &mut Vec<u8>, hint: u8, schema: i32, zero_threshold: f64) {
    out.push(hint);
    put_varint(out, i64::from(schema));
    put_f64(out, zero_threshold);
}

fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(out, spans.len() as u64);
    for s in spans {
        put_varint(out, i64::from(s.offset));
        put_uvarint(out, u64::from(s.length));
    }
}

fn put_f64s(out: &mut Vec<u8>, values: &[f64]) {
    put_uvarint(out, values.len() as u64);
    for v in values {
        put_f64(out, *v);
    }
}

fn put_custom_values(out: &mut Vec<u8>, schema: i32, values: &[f64]) {
    if schema == CUSTOM_BUCKETS_SCHEMA {
        put_f64s(out, values);
    }
}

/// Receives the parts of a body as [`parse_body`] reads them. `()` ignores them, which makes
/// parsing a pure validation pass that allocates nothing.
pub(crate) trait BodySink {
    fn counts(&mut self, _zero_threshold: f64, _zero_count: u64, _count: u64, _sum: f64) {}
    fn reserve_spans(&mut self, _positive: bool, _n: usize) {}
    fn span(&mut self, _positive: bool, _span: Span) {}
    fn reserve_buckets(&mut self, _positive: bool, _n: usize) {}
    /// `raw` is the zigzag-decoded `i64` (integer body) or the `f64` bits (float body).
    fn bucket(&mut self, _positive: bool, _raw: u64) {}
    fn custom_value(&mut self, _v: f64) {}
}

impl BodySink for () {}

impl BodySink for HistogramBody {
    fn counts(&mut self, zero_threshold: f64, zero_count: u64, count: u64, sum: f64) {
        match self {
            HistogramBody::Int(h) => {
                (h.zero_threshold, h.zero_count, h.count, h.sum) =
                    (zero_threshold, zero_count, count, sum);
            }
            HistogramBody::Float(h) => {
                h.zero_threshold = zero_threshold;
                h.zero_count = f64::from_bits(zero_count);
                h.count = f64::from_bits(count);
                h.sum = sum;
            }
        }
    }

    fn reserve_spans(&mut self, positive: bool, n: usize) {
        self.spans_mut(positive).reserve_exact(n);
    }

    fn span(&mut self, positive: bool, span: Span) {
        self.spans_mut(positive).push(span);
    }

    fn reserve_buckets(&mut self, positive: bool, n: usize) {
        match self {
            HistogramBody::Int(h) => {
                pick(positive, &mut h.positive_buckets, &mut h.negative_buckets).reserve_exact(n)
            }
            HistogramBody::Float(h) => {
                pick(positive, &mut h.positive_buckets, &mut h.negative_buckets).reserve_exact(n)
            }
        }
    }

    fn bucket(&mut self, positive: bool, raw: u64) {
        match self {
            HistogramBody::Int(h) => {
                pick(positive, &mut h.positive_buckets, &mut h.negative_buckets).push(raw as i64)
            }
            HistogramBody::Float(h) => {
                pick(positive, &mut h.positive_buckets, &mut h.negative_buckets)
                    .push(f64::from_bits(raw))
            }
        }
    }

    fn custom_value(&mut self, v: f64) {
        match self {
            HistogramBody::Int(h) => h.custom_values.push(v),
            HistogramBody::Float(h) => h.custom_values.push(v),
        }
    }
}

impl HistogramBody {
    fn spans_mut(&mut self, positive: bool) -> &mut Vec<Span> {
        match self {
            HistogramBody::Int(h) => pick(positive, &mut h.positive_spans, &mut h.negative_spans),
            HistogramBody::Float(h) => pick(positive, &mut h.positive_spans, &mut h.negative_spans),
        }
    }
}

fn pick<'v, T>(positive: bool, pos: &'v mut T, neg: &'v mut T) -> &'v mut T {
    if positive {
        pos
    } else {
        neg
    }
}

/// Reads one histogram body, handing its parts to `sink`. Returns (counter reset hint, schema).
///
/// Narrowing follows Prometheus's decoder: schema and span offsets keep the low 32 bits of the
/// varint (`int32(Varint64())`), span lengths the low 32 bits of the uvarint (`Uvarint32`); the
/// custom values are present iff the narrowed schema is -53.
pub(crate) fn parse_body<S: BodySink>(
    d: &mut Decoder<'_>,
    is_float: bool,
    sink: &mut S,
) -> Result<(u8, i32)> {
    let hint = d.u8("u8 counter reset hint")?;
    let schema = d.varint("varint schema")? as i32;
    let zero_threshold = d.f64("f64 zero threshold")?;
    let (zero_count, count) = if is_float {
        (d.be64("f64 zero count")?, d.be64("f64 count")?)
    } else {
        (
            d.uvarint("uvarint zero count")?,
            d.uvarint("uvarint count")?,
        )
    };
    let sum = d.f64("f64 sum")?;
    sink.counts(zero_threshold, zero_count, count, sum);
    parse_spans(d, sink, true, "uvarint positive span count")?;
    parse_spans(d, sink, false, "uvarint negative span count")?;
    parse_buckets(d, sink, is_float, true, "uvarint positive bucket count")?;
    parse_buckets(d, sink, is_float, false, "uvarint negative bucket count")?;
    if schema == CUSTOM_BUCKETS_SCHEMA {
        let n = d.count("uvarint custom value count", 8)?;
        for _ in 0..n {
            sink.custom_value(d.f64("f64 custom value")?);
        }
    }
    Ok((hint, schema))
}

fn parse_spans<S: BodySink>(
    d: &mut Decoder<'_>,
    sink: &mut S,
    positive: bool,
    field: &'static str,
) -> Result<()> {
    // A span is at least two one-byte varints.
    let n = d.count(field, 2)?;
    sink.reserve_spans(positive, n);
    for _ in 0..n {
        let offset = d.varint("varint span offset")? as i32;
        let length = d.uvarint("uvarint span length")? as u32;
        sink.span(positive, Span { offset, length });
    }
    Ok(())
}

fn parse_buckets<S: BodySink>(
    d: &mut Decoder<'_>,
    sink: &mut S,
    is_float: bool,
    positive: bool,
    field: &'static str,
) -> Result<()> {
    let n = d.count(field, if is_float { 8 } else { 1 })?;
    sink.reserve_buckets(positive, n);
    for _ in 0..n {
        let raw = if is_float {
            d.be64("f64 bucket")?
        } else {
            d.varint("varint bucket")? as u64
        };
        sink.bucket(positive, raw);
    }
    Ok(())
}
