//! Salvage and loss accounting: which records of a damaged segment are kept, the one-byte
//! corrections, and what a cut, a deletion or a rewrite loses.

use super::*;

#[derive(Default)]
pub(super) struct Count {
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
pub(super) fn record_good(
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
pub(super) const MAX_CORRECTIONS: usize = 64;

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
pub(super) fn verified_front(data: &[u8], from: usize) -> Option<(Vec<u8>, Compression)> {
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
pub(super) fn keep_series_front(
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
pub(super) fn dropped_bytes(data: &[u8], kind: LogKind, cut: Option<usize>) -> u64 {
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

/// Entries of every record in `data` from offset `from` on (for truncation and deletion).
pub(super) fn loss_from(data: &[u8], from: usize) -> Loss {
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
