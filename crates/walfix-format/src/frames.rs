//! Reading one segment as Prometheus's reader does, fragment by fragment, and going on past damage.
//!
//! [`SegmentReader`] follows the rules of Prometheus's `wlog.Reader` exactly up to the first error
//! (virtual zero padding of a torn last page, CRC before sequence checks, `last record is torn`
//! at end of input), so the first [`Problem`] it reports is the one Prometheus would stop at, with
//! the offset Prometheus would print. Unlike Prometheus it then resynchronises (at the end of the bad
//! fragment when the next one checks out, else at the next page boundary, where a writer always
//! starts a fragment) and reports every later problem too.

use std::collections::VecDeque;

use crate::compression::{decompress, snappy_into, DecompressError, ZstdContext};
use crate::crc::{crc32c, crc32c_with_zeros};
use crate::fragment::{
    padded_len, page_start, Compression, FragmentHeader, FragmentType, HEADER_SIZE,
    MAX_FRAGMENT_LEN, PAGE_SIZE,
};

/// What kind of problem was found. Errors stop Prometheus's replay; warnings do not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A fragment's payload does not match its CRC-32C.
    ChecksumMismatch {
        /// CRC-32C of the bytes on disk.
        computed: u32,
        /// CRC-32C stored in the header.
        stored: u32,
    },
    /// Fragment type 5, 6 or 7.
    InvalidFragmentType {
        /// The raw type byte.
        byte: u8,
    },
    /// A fragment length larger than a page can hold.
    InvalidFragmentLength {
        /// The stored length.
        len: u16,
    },
    /// A page terminator followed by non-zero bytes.
    NonZeroPadding {
        /// Offset of the first non-zero byte.
        at: usize,
    },
    /// A `middle` or `last` fragment with no `first` before it.
    OrphanFragment {
        /// The orphan's type.
        kind: FragmentType,
    },
    /// A `first` (and maybe `middle`s) followed by a `full` or `first`: the record never finished.
    InterruptedRecord {
        /// Fragments of the unfinished record.
        fragments: u32,
    },
    /// The segment ends inside a fragment: the file was cut short (a torn write).
    TornFragment,
    /// The segment ends after a `first` or `middle`: a multi-page record lost its tail.
    TruncatedRecord {
        /// Fragments of the record that are present.
        fragments: u32,
    },
    /// A record's payload does not decompress.
    Decompression(DecompressError),
    /// A record's payload does not decode (filled in by callers that decode records).
    Decode(String),
    /// A record type Prometheus rejects in this kind of log (filled in by callers).
    RejectedRecordType(u8),
    /// Warning: a record of a type this kind of log's replay skips without decoding it (mmap
    /// markers in a WAL, series in a WBL, ...) does not decode (filled in by callers that decode
    /// records). Prometheus never looks inside it and replays on.
    UndecodableIgnoredRecord(String),
    /// Warning: a fragment runs across a page boundary (Prometheus's reader accepts it).
    FragmentCrossesPage,
    /// Warning: a `first`/`middle` not ending at a page boundary, or a `middle`/`last` not
    /// starting at one (a correct writer never does this; Prometheus accepts it).
    MisalignedFragment {
        /// The fragment's type.
        kind: FragmentType,
    },
    /// Warning: zero padding between the fragments of one record (Prometheus accepts it).
    PaddingInsideRecord,
    /// Warning: whole zero pages followed by data: a lost write or a hole that Prometheus skips.
    ZeroPagesBeforeData {
        /// Offset just after the zero pages.
        until: usize,
    },
    /// Warning: flag bits set on a page terminator or reserved bits set on a fragment.
    StrayFlagBits {
        /// The raw type byte.
        byte: u8,
    },
    /// Warning: fragments of one record carry different compression flags.
    MixedCompression,
}

impl ProblemKind {
    /// True for damage (Prometheus stops reading); false for warnings.
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            ProblemKind::FragmentCrossesPage
                | ProblemKind::MisalignedFragment { .. }
                | ProblemKind::PaddingInsideRecord
                | ProblemKind::ZeroPagesBeforeData { .. }
                | ProblemKind::StrayFlagBits { .. }
                | ProblemKind::MixedCompression
                | ProblemKind::UndecodableIgnoredRecord(_)
        )
    }

    /// A short stable name, used in JSON output: `checksum-mismatch`, `torn-fragment`, ...
    pub fn name(&self) -> &'static str {
        match self {
            ProblemKind::ChecksumMismatch { .. } => "checksum-mismatch",
            ProblemKind::InvalidFragmentType { .. } => "invalid-fragment-type",
            ProblemKind::InvalidFragmentLength { .. } => "invalid-fragment-length",
            ProblemKind::NonZeroPadding { .. } => "non-zero-padding",
            ProblemKind::OrphanFragment { .. } => "orphan-fragment",
            ProblemKind::InterruptedRecord { .. } => "interrupted-record",
            ProblemKind::TornFragment => "torn-fragment",
            ProblemKind::TruncatedRecord { .. } => "truncated-record",
            ProblemKind::Decompression(_) => "decompression-failed",
            ProblemKind::Decode(_) => "record-decode-failed",
            ProblemKind::RejectedRecordType(_) => "rejected-record-type",
            ProblemKind::UndecodableIgnoredRecord(_) => "undecodable-ignored-record",
            ProblemKind::FragmentCrossesPage => "fragment-crosses-page",
            ProblemKind::MisalignedFragment { .. } => "misaligned-fragment",
            ProblemKind::PaddingInsideRecord => "padding-inside-record",
            ProblemKind::ZeroPagesBeforeData { .. } => "zero-pages-before-data",
            ProblemKind::StrayFlagBits { .. } => "stray-flag-bits",
            ProblemKind::MixedCompression => "mixed-compression",
        }
    }

    /// One line a human can act on.
    pub fn describe(&self) -> String {
        match self {
            ProblemKind::ChecksumMismatch { computed, stored } => format!(
                "fragment payload CRC-32C is {computed:08x}, header says {stored:08x}"
            ),
            ProblemKind::InvalidFragmentType { byte } => {
                format!("fragment type {} (byte 0x{byte:02x}) does not exist", byte & 7)
            }
            ProblemKind::InvalidFragmentLength { len } => {
                format!("fragment length {len} exceeds the {MAX_FRAGMENT_LEN} bytes a page holds")
            }
            ProblemKind::NonZeroPadding { at } => {
                format!("page padding holds a non-zero byte at offset {at}")
            }
            ProblemKind::OrphanFragment { kind } => {
                format!("`{}` fragment without a `first` before it", kind.name())
            }
            ProblemKind::InterruptedRecord { fragments } => format!(
                "record split over pages stops after {fragments} fragment(s) and a new record starts"
            ),
            ProblemKind::TornFragment => {
                "segment ends inside a fragment (torn write)".to_string()
            }
            ProblemKind::TruncatedRecord { fragments } => format!(
                "segment ends inside a record split over pages, after {fragments} fragment(s)"
            ),
            ProblemKind::Decompression(e) => format!("record does not decompress: {e}"),
            ProblemKind::Decode(e) => format!("record does not decode: {e}"),
            ProblemKind::RejectedRecordType(t) => {
                format!("record type {t} is not accepted in this kind of log")
            }
            ProblemKind::UndecodableIgnoredRecord(e) => {
                format!("record of a type this log's replay skips does not decode: {e}")
            }
            ProblemKind::FragmentCrossesPage => "fragment crosses a page boundary".to_string(),
            ProblemKind::MisalignedFragment { kind } => format!(
                "`{}` fragment is not aligned to a page boundary as the writer aligns it",
                kind.name()
            ),
            ProblemKind::PaddingInsideRecord => {
                "zero padding between fragments of one record".to_string()
            }
            ProblemKind::ZeroPagesBeforeData { until } => format!(
                "all-zero page(s) followed by data at offset {until} (lost write or hole)"
            ),
            ProblemKind::StrayFlagBits { byte } => {
                format!("unexpected flag bits in type byte 0x{byte:02x}")
            }
            ProblemKind::MixedCompression => {
                "fragments of one record carry different compression flags".to_string()
            }
        }
    }
}

/// What Prometheus's reader reports when it stops at a problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusError {
    /// The offset in its `corruption in segment ... at OFFSET` message (the end of what it read).
    pub offset: usize,
    /// Its error text, e.g. `unexpected checksum 16bdd74c, expected a06dae88`. A snappy payload
    /// that does not decompress gives golang/snappy's `snappy: corrupt input`; for zstd the text
    /// is ours. Decode errors are worded by [`crate::record::prometheus_decode_error`].
    pub message: String,
}

/// One problem found in a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// Offset of the bad bytes (the fragment or padding where the problem was seen).
    pub offset: usize,
    /// Offset of the first byte of the first record lost to this problem (<= `offset`).
    pub lost_from: usize,
    /// Offset where reading resumed after it (the damaged range is `lost_from..end`).
    pub end: usize,
    /// Index of the record affected: the number of whole records read before it in this segment.
    pub record_index: u64,
    /// For errors: what Prometheus would report if its replay reached this point.
    pub prometheus: Option<PrometheusError>,
}

impl Problem {
    /// True for damage; false for warnings.
    pub fn is_error(&self) -> bool {
        self.kind.is_error()
    }
}

/// A whole record as framed on disk, before decompression.
#[derive(Debug)]
pub struct RawRecord<'a> {
    /// Offset of its first fragment.
    pub offset: usize,
    /// Offset just after its last fragment.
    pub end: usize,
    /// Number of whole records before it in the segment.
    pub index: u64,
    /// Number of fragments.
    pub fragments: u32,
    /// Compression, from the flags of the last fragment (as Prometheus decides).
    pub compression: Compression,
    /// The payload as stored (concatenated fragment payloads).
    pub payload: &'a [u8],
}

/// What [`SegmentReader::next`] yields.
#[derive(Debug)]
pub enum Event<'a> {
    /// A record whose fragments all check out.
    Record(RawRecord<'a>),
    /// A problem (damage or warning).
    Problem(Problem),
}

#[derive(Clone, Copy)]
struct Partial {
    start: usize,
    fragments: u32,
    compression: Compression,
}

/// Reads one segment's bytes. Records never cross segments, so each segment is read on its own.
///
/// ```
/// use walfix_format::encode::SegmentEncoder;
/// use walfix_format::fragment::Compression;
/// use walfix_format::frames::{Event, SegmentReader};
///
/// let mut enc = SegmentEncoder::new();
/// enc.append(b"\x02", Compression::None); // an empty samples record
/// let bytes = enc.into_bytes();
/// let mut r = SegmentReader::new(&bytes);
/// match r.next() {
///     Some(Event::Record(rec)) => assert_eq!(rec.payload, b"\x02"),
///     other => panic!("{other:?}"),
/// }
/// assert!(r.next().is_none());
/// ```
pub struct SegmentReader<'a> {
    data: &'a [u8],
    vlen: usize,
    pos: usize,
    partial: Option<Partial>,
    /// After damage: drop `middle`/`last` fragments quietly until a record starts.
    skipping: bool,
    /// Prometheus's "type of the last header byte read", for its torn-record check at EOF.
    last_type: FragmentType,
    zero_run: Option<usize>,
    records: u64,
    buf: Vec<u8>,
    /// False: records split over fragments are not copied together (see `skip_payloads`).
    assemble: bool,
    pending: VecDeque<Problem>,
    done: bool,
}

impl<'a> SegmentReader<'a> {
    /// A reader over the whole content of one segment file.
    pub fn new(data: &'a [u8]) -> Self {
        Self::with_buffer(data, Vec::new())
    }

    /// Like [`SegmentReader::new`], reusing `buf`'s allocation for multi-fragment records.
    pub fn with_buffer(data: &'a [u8], buf: Vec<u8>) -> Self {
        SegmentReader {
            data,
            vlen: padded_len(data.len()),
            pos: 0,
            partial: None,
            skipping: false,
            last_type: FragmentType::PageTerm,
            zero_run: None,
            records: 0,
            buf,
            assemble: true,
            pending: VecDeque::new(),
            done: false,
        }
    }

    /// For callers that only need framing (offsets, counts, problems): records are not copied
    /// together from their fragments, so the `payload` of a record split over pages (or of one
    /// running into the virtual padding of a torn file) comes back empty. Everything else,
    /// problems included, is exactly as without it. Saves one copy of most of the segment.
    pub fn skip_payloads(mut self) -> Self {
        self.assemble = false;
        self
    }

    /// Gives back the internal buffer for reuse.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Current read offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Whole records returned so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Length Prometheus reads the segment as: its size rounded up to whole pages.
    pub fn padded_len(&self) -> usize {
        self.vlen
    }

    #[inline]
    fn byte(&self, i: usize) -> u8 {
        // Past the end of the file, up to the page boundary, Prometheus reads zeros.
        self.data.get(i).copied().unwrap_or(0)
    }

    fn header(&self, p: usize) -> [u8; HEADER_SIZE] {
        let mut h = [0u8; HEADER_SIZE];
        for (k, b) in h.iter_mut().enumerate() {
            *b = self.byte(p + k);
        }
        h
    }

    /// First non-zero real byte in `from..to`, if any (bytes past the file end are zero).
    fn first_nonzero(&self, from: usize, to: usize) -> Option<usize> {
        let to = to.min(self.data.len());
        if from >= to {
            return None;
        }
        self.data
            .get(from..to)
            .and_then(|s| s.iter().position(|&b| b != 0))
            .map(|i| from + i)
    }

    /// The real bytes of `from..to` and how many virtual zeros follow them.
    fn body(&self, from: usize, to: usize) -> (&'a [u8], usize) {
        let real_end = to.min(self.data.len());
        let real = if from < real_end {
            self.data.get(from..real_end).unwrap_or(&[])
        } else {
            &[]
        };
        (real, to - from - real.len())
    }

    /// Does a fragment (or padding) that checks out start at `p`? Used to resynchronise.
    fn plausible_at(&self, p: usize) -> bool {
        if p >= self.vlen {
            return true;
        }
        let page_end = page_start(p) + PAGE_SIZE;
        let b = self.byte(p);
        match FragmentType::from_byte(b) {
            FragmentType::PageTerm => self.first_nonzero(p + 1, page_end).is_none(),
            FragmentType::Invalid(_) => false,
            _ => {
                let h = FragmentHeader::parse(self.header(p));
                let end = p + HEADER_SIZE + h.len as usize;
                if end > page_end {
                    return false;
                }
                let (real, zeros) = self.body(p + HEADER_SIZE, end);
                zeros == 0 && crc32c(real) == h.crc
            }
        }
    }

    fn next_page(p: usize) -> usize {
        page_start(p) + PAGE_SIZE
    }

    /// Records a problem that loses the current record, and resumes reading at `resume`.
    fn fail(&mut self, kind: ProblemKind, offset: usize, resume: usize, prom: PrometheusError) {
        let lost_from = self.partial.map_or(offset, |p| p.start.min(offset));
        self.pending.push_back(Problem {
            kind,
            offset,
            lost_from,
            end: resume,
            record_index: self.records,
            prometheus: Some(prom),
        });
        self.partial = None;
        self.skipping = true;
        self.pos = resume.max(offset + 1).min(self.vlen.max(offset + 1));
        if resume >= self.vlen {
            self.done = true;
        }
    }

    fn warn(&mut self, kind: ProblemKind, offset: usize, end: usize) {
        self.pending.push_back(Problem {
            kind,
            offset,
            lost_from: end,
            end,
            record_index: self.records,
            prometheus: None,
        });
    }

    /// End of input: a record still being assembled is lost.
    fn at_end(&mut self) {
        self.done = true;
        if let (Some(p), false) = (self.partial, self.skipping) {
            let torn = matches!(self.last_type, FragmentType::First | FragmentType::Middle);
            self.pending.push_back(Problem {
                kind: ProblemKind::TruncatedRecord {
                    fragments: p.fragments,
                },
                offset: self.vlen,
                lost_from: p.start,
                end: self.vlen,
                record_index: self.records,
                // Prometheus only notices when the last header byte it read began a split record.
                prometheus: torn.then(|| PrometheusError {
                    offset: self.vlen,
                    message: "last record is torn".to_string(),
                }),
            });
        }
        self.partial = None;
    }

    /// The next record or problem, or `None` at the end of the segment.
    #[allow(clippy::should_implement_trait)] // lending: records may borrow the reader's buffer
    pub fn next(&mut self) -> Option<Event<'_>> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(Event::Problem(p));
            }
            if self.done {
                return None;
            }
            if self.pos >= self.vlen {
                self.at_end();
                continue;
            }
            if let Some(rec) = self.step() {
                let (offset, end, fragments, compression, single) = rec;
                let index = self.records;
                self.records += 1;
                let payload = match single {
                    Some(s) => s,
                    None => &self.buf[..],
                };
                return Some(Event::Record(RawRecord {
                    offset,
                    end,
                    index,
                    fragments,
                    compression,
                    payload,
                }));
            }
        }
    }

    /// Reads one fragment or padding run. Returns a finished record as
    /// `(offset, end, fragments, compression, borrowed payload or None = in self.buf)`.
    #[allow(clippy::type_complexity)]
    fn step(&mut self) -> Option<(usize, usize, u32, Compression, Option<&'a [u8]>)> {
        let pos = self.pos;
        let b = self.byte(pos);
        let kind = FragmentType::from_byte(b);
        let page_end = Self::next_page(pos);
        self.last_type = kind;

        if kind == FragmentType::PageTerm {
            if let Some(bad) = self.first_nonzero(pos + 1, page_end) {
                self.fail(
                    ProblemKind::NonZeroPadding { at: bad },
                    pos,
                    page_end,
                    PrometheusError {
                        offset: page_end,
                        message: "unexpected non-zero byte in padded page".to_string(),
                    },
                );
                return None;
            }
            if b != 0 {
                self.warn(ProblemKind::StrayFlagBits { byte: b }, pos, page_end);
            }
            if self.partial.is_some() {
                self.warn(ProblemKind::PaddingInsideRecord, pos, page_end);
            }
            if pos.is_multiple_of(PAGE_SIZE) && self.zero_run.is_none() {
                self.zero_run = Some(pos);
            }
            self.pos = page_end;
            return None;
        }

        if let Some(z) = self.zero_run.take() {
            self.warn(
                ProblemKind::ZeroPagesBeforeData { until: pos },
                z,
                page_start(pos),
            );
        }

        // The header itself may run past the padded end (it starts in the last 6 bytes).
        if pos + HEADER_SIZE > self.vlen {
            let read_some = pos + 1 < self.vlen;
            self.torn(pos, read_some, kind);
            return None;
        }
        let h = FragmentHeader::parse(self.header(pos));
        let len = h.len as usize;
        if len > MAX_FRAGMENT_LEN {
            self.fail(
                ProblemKind::InvalidFragmentLength { len: h.len },
                pos,
                page_end,
                PrometheusError {
                    offset: pos + HEADER_SIZE,
                    message: format!("invalid record size {len}"),
                },
            );
            return None;
        }
        let body_start = pos + HEADER_SIZE;
        let body_end = body_start + len;
        if body_end > self.vlen {
            self.torn(pos, body_start < self.vlen, kind);
            return None;
        }
        let (real, zeros) = self.body(body_start, body_end);
        let computed = if zeros == 0 {
            crc32c(real)
        } else {
            crc32c_with_zeros(real, zeros)
        };
        if computed != h.crc {
            let prom = PrometheusError {
                offset: body_end,
                message: format!("unexpected checksum {computed:x}, expected {:x}", h.crc),
            };
            if zeros > 0 {
                // The body runs into the virtual padding of a file cut short.
                self.fail(ProblemKind::TornFragment, pos, self.vlen, prom);
            } else {
                let diag = match kind {
                    FragmentType::Invalid(_) => ProblemKind::InvalidFragmentType { byte: b },
                    _ => ProblemKind::ChecksumMismatch {
                        computed,
                        stored: h.crc,
                    },
                };
                let resume = if body_end <= page_end && self.plausible_at(body_end) {
                    body_end
                } else {
                    page_end
                };
                self.fail(diag, pos, resume, prom);
            }
            return None;
        }

        if len > 0 && page_start(body_end - 1) != page_start(pos) || len == 0 && body_end > page_end
        {
            self.warn(ProblemKind::FragmentCrossesPage, pos, body_end);
        }
        if h.reserved_bits() != 0 || h.both_compression_bits() {
            self.warn(ProblemKind::StrayFlagBits { byte: b }, pos, body_end);
        }
        let compression = h.compression();
        let ends_page = body_end.is_multiple_of(PAGE_SIZE);
        let starts_page = pos.is_multiple_of(PAGE_SIZE);

        match kind {
            FragmentType::Invalid(n) => {
                self.fail(
                    ProblemKind::InvalidFragmentType { byte: b },
                    pos,
                    body_end,
                    PrometheusError {
                        offset: body_end,
                        message: format!("unexpected record type {n}"),
                    },
                );
                None
            }
            FragmentType::Full | FragmentType::First => {
                if let (Some(p), false) = (self.partial, self.skipping) {
                    let message = if kind == FragmentType::Full {
                        "unexpected full record"
                    } else {
                        "unexpected first record, dropping buffer"
                    };
                    self.pending.push_back(Problem {
                        kind: ProblemKind::InterruptedRecord {
                            fragments: p.fragments,
                        },
                        offset: pos,
                        lost_from: p.start,
                        end: pos,
                        record_index: self.records,
                        prometheus: Some(PrometheusError {
                            offset: body_end,
                            message: message.to_string(),
                        }),
                    });
                }
                self.partial = None;
                self.skipping = false;
                self.pos = body_end;
                if kind == FragmentType::Full {
                    let payload = if zeros == 0 {
                        Some(real)
                    } else {
                        self.fill_buf(real, zeros, true);
                        None
                    };
                    return Some((pos, body_end, 1, compression, payload));
                }
                if !ends_page {
                    self.warn(ProblemKind::MisalignedFragment { kind }, pos, body_end);
                }
                self.fill_buf(real, zeros, true);
                self.partial = Some(Partial {
                    start: pos,
                    fragments: 1,
                    compression,
                });
                None
            }
            FragmentType::Middle | FragmentType::Last => {
                let Some(mut p) = self.partial else {
                    if self.skipping {
                        self.pos = body_end;
                    } else {
                        let message = if kind == FragmentType::Middle {
                            "unexpected middle record, dropping buffer"
                        } else {
                            "unexpected last record, dropping buffer"
                        };
                        self.fail(
                            ProblemKind::OrphanFragment { kind },
                            pos,
                            body_end,
                            PrometheusError {
                                offset: body_end,
                                message: message.to_string(),
                            },
                        );
                    }
                    return None;
                };
                if !starts_page || (kind == FragmentType::Middle && !ends_page) {
                    self.warn(ProblemKind::MisalignedFragment { kind }, pos, body_end);
                }
                if compression != p.compression {
                    self.warn(ProblemKind::MixedCompression, pos, body_end);
                }
                self.fill_buf(real, zeros, false);
                p.fragments += 1;
                self.pos = body_end;
                if kind == FragmentType::Last {
                    self.partial = None;
                    return Some((p.start, body_end, p.fragments, compression, None));
                }
                p.compression = compression;
                self.partial = Some(p);
                None
            }
            // Page terminators returned early above.
            FragmentType::PageTerm => None,
        }
    }

    fn fill_buf(&mut self, real: &[u8], zeros: usize, reset: bool) {
        if !self.assemble {
            return;
        }
        if reset {
            self.buf.clear();
        }
        self.buf.extend_from_slice(real);
        self.buf.resize(self.buf.len() + zeros, 0);
    }

    /// The segment ends inside the fragment at `pos`. Prometheus gets `unexpected EOF` when it read
    /// part of what it wanted, and a clean end otherwise (unless a split record was open).
    fn torn(&mut self, pos: usize, read_some: bool, kind: FragmentType) {
        let open = matches!(kind, FragmentType::First | FragmentType::Middle);
        let prom = if read_some {
            Some(PrometheusError {
                offset: self.vlen,
                message: "unexpected EOF".to_string(),
            })
        } else if open {
            Some(PrometheusError {
                offset: self.vlen,
                message: "last record is torn".to_string(),
            })
        } else {
            None
        };
        let lost_from = self.partial.map_or(pos, |p| p.start);
        self.pending.push_back(Problem {
            kind: ProblemKind::TornFragment,
            offset: pos,
            lost_from,
            end: self.vlen,
            record_index: self.records,
            prometheus: prom,
        });
        self.partial = None;
        self.skipping = true;
        self.pos = self.vlen;
        self.done = true;
    }
}

/// A decompressed record.
#[derive(Debug)]
pub struct Record<'a> {
    /// Offset of its first fragment in the segment.
    pub offset: usize,
    /// Offset just after its last fragment.
    pub end: usize,
    /// Number of whole records before it in the segment.
    pub index: u64,
    /// Number of fragments.
    pub fragments: u32,
    /// How it was stored.
    pub compression: Compression,
    /// Stored (compressed) size.
    pub stored_len: usize,
    /// The record bytes: type byte first.
    pub data: &'a [u8],
}

/// What [`RecordReader::next`] yields.
#[derive(Debug)]
pub enum RecordEvent<'a> {
    /// A record that framed, checked and decompressed cleanly.
    Record(Record<'a>),
    /// A problem.
    Problem(Problem),
}

/// [`SegmentReader`] plus decompression into a reused buffer.
pub struct RecordReader<'a> {
    frames: SegmentReader<'a>,
    out: Vec<u8>,
    zstd: Option<ZstdContext>,
}

impl<'a> RecordReader<'a> {
    /// A reader over one segment's bytes.
    pub fn new(data: &'a [u8]) -> Self {
        RecordReader {
            frames: SegmentReader::new(data),
            out: Vec::new(),
            zstd: None,
        }
    }

    /// Like [`RecordReader::new`], reusing two buffers (assembly and decompression).
    pub fn with_buffers(data: &'a [u8], assembly: Vec<u8>, out: Vec<u8>) -> Self {
        RecordReader {
            frames: SegmentReader::with_buffer(data, assembly),
            out,
            zstd: None,
        }
    }

    /// Gives back the two buffers for reuse.
    pub fn into_buffers(self) -> (Vec<u8>, Vec<u8>) {
        (self.frames.into_buffer(), self.out)
    }

    /// The framing reader underneath.
    pub fn frames(&self) -> &SegmentReader<'a> {
        &self.frames
    }

    /// The next record or problem.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<RecordEvent<'_>> {
        let raw = match self.frames.next()? {
            Event::Problem(p) => return Some(RecordEvent::Problem(p)),
            Event::Record(r) => r,
        };
        let (offset, end, index, fragments, compression) = (
            raw.offset,
            raw.end,
            raw.index,
            raw.fragments,
            raw.compression,
        );
        let stored_len = raw.payload.len();
        if compression == Compression::None {
            return Some(RecordEvent::Record(Record {
                offset,
                end,
                index,
                fragments,
                compression,
                stored_len,
                data: raw.payload,
            }));
        }
        // Snappy decodes into the front of a buffer that only grows (no zero-fill per record).
        // zstd likewise, with one context per reader.
        let res = match compression {
            Compression::Snappy => snappy_into(raw.payload, &mut self.out),
            Compression::Zstd => {
                let ctx = match self.zstd.take() {
                    Some(c) => Ok(c),
                    None => ZstdContext::new(),
                };
                ctx.and_then(|mut c| {
                    let r = c.decode_into(raw.payload, &mut self.out);
                    self.zstd = Some(c);
                    r
                })
            }
            _ => decompress(compression, raw.payload, &mut self.out).map(|()| self.out.len()),
        };
        match res {
            Ok(n) => Some(RecordEvent::Record(Record {
                offset,
                end,
                index,
                fragments,
                compression,
                stored_len,
                data: self.out.get(..n).unwrap_or_default(),
            })),
            Err(e) => {
                let message = match &e {
                    // Prometheus decodes with github.com/golang/snappy, whose Decode fails with
                    // ErrCorrupt on 64-bit for every bad block: a bad length varint, a claim
                    // above 4 GiB, bad tags, short input (a claim it cannot fill included).
                    DecompressError::Snappy(_)
                    | DecompressError::TooLarge {
                        codec: "snappy", ..
                    } => "snappy: corrupt input".to_string(),
                    // zstd (klauspost/compress) texts are not matched yet: ours.
                    _ => e.to_string(),
                };
                Some(RecordEvent::Problem(Problem {
                    kind: ProblemKind::Decompression(e),
                    offset,
                    lost_from: offset,
                    end,
                    record_index: index,
                    prometheus: Some(PrometheusError {
                        offset: end,
                        message,
                    }),
                }))
            }
        }
    }
}
