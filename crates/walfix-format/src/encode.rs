//! Writing records into pages exactly as Prometheus's `WL.log` packs them.

use crate::crc::crc32c;
use crate::fragment::{Compression, FragmentHeader, FragmentType, HEADER_SIZE, PAGE_SIZE};

/// Compresses one record the way Prometheus does: the compressed form is kept only when it is
/// strictly smaller, and empty records are never compressed. Returns the stored bytes and the
/// compression actually used.
pub fn compress_record(record: &[u8], wanted: Compression) -> (Vec<u8>, Compression) {
    if record.is_empty() {
        return (Vec::new(), Compression::None);
    }
    let packed = match wanted {
        Compression::None => None,
        Compression::Snappy => snap::raw::Encoder::new().compress_vec(record).ok(),
        Compression::Zstd => zstd::bulk::compress(record, 3).ok(),
    };
    match packed {
        Some(p) if p.len() < record.len() => (p, wanted),
        _ => (record.to_vec(), Compression::None),
    }
}

/// Builds the bytes of one segment: records packed into pages, fragments split at page ends,
/// padding where the writer pads. The last page is left unpadded, as after a crash or a flush.
///
/// ```
/// use walfix_format::encode::SegmentEncoder;
/// use walfix_format::fragment::Compression;
/// let mut enc = SegmentEncoder::new();
/// enc.append(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 8, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 2, b'u', b'p'], Compression::None);
/// // The series test vector of the format spec: one `full` fragment of 22 payload bytes.
/// assert_eq!(enc.bytes()[..7], [0x01, 0x00, 0x16, 0x39, 0x19, 0x94, 0xf3]);
/// ```
#[derive(Default, Clone)]
pub struct SegmentEncoder {
    out: Vec<u8>,
}

impl SegmentEncoder {
    /// An empty segment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Current length in bytes.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Finishes and returns the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    fn page_used(&self) -> usize {
        self.out.len() % PAGE_SIZE
    }

    /// Pads the current page with zeros to its end (no-op on a page boundary).
    pub fn pad_page(&mut self) {
        let used = self.page_used();
        if used != 0 {
            self.out.resize(self.out.len() + PAGE_SIZE - used, 0);
        }
    }

    /// How many payload bytes fit before the segment reaches `segment_size` (Prometheus's
    /// rollover check: a record that does not fit goes to a new segment).
    pub fn capacity(&self, segment_size: usize) -> usize {
        let pages_total = segment_size / PAGE_SIZE;
        let done_pages = self.out.len() / PAGE_SIZE;
        let free = PAGE_SIZE - self.page_used();
        if done_pages >= pages_total {
            return 0;
        }
        let rest = pages_total - done_pages - 1;
        free.saturating_sub(HEADER_SIZE) + (PAGE_SIZE - HEADER_SIZE) * rest
    }

    /// Compresses (if smaller) and appends one record. Returns the compression used.
    pub fn append(&mut self, record: &[u8], wanted: Compression) -> Compression {
        let (stored, used) = compress_record(record, wanted);
        self.append_stored(&stored, used);
        used
    }

    /// Appends an already stored (maybe compressed) payload, flagging every fragment with
    /// `compression`.
    pub fn append_stored(&mut self, stored: &[u8], compression: Compression) {
        if PAGE_SIZE - self.page_used() < HEADER_SIZE {
            self.pad_page();
        }
        let mut rest = stored;
        let mut first = true;
        loop {
            let room = PAGE_SIZE - self.page_used() - HEADER_SIZE;
            let n = rest.len().min(room);
            let (part, tail) = rest.split_at(n);
            let kind = match (first, tail.is_empty()) {
                (true, true) => FragmentType::Full,
                (true, false) => FragmentType::First,
                (false, true) => FragmentType::Last,
                (false, false) => FragmentType::Middle,
            };
            let h = FragmentHeader::new(kind, compression, n as u16, crc32c(part));
            self.out.extend_from_slice(&h.to_bytes());
            self.out.extend_from_slice(part);
            if PAGE_SIZE - self.page_used() < HEADER_SIZE && self.page_used() != 0 {
                self.pad_page();
            }
            rest = tail;
            first = false;
            if rest.is_empty() {
                break;
            }
        }
    }
}
