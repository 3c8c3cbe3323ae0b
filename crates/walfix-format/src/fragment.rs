//! Pages and the 7-byte fragment header.
//!
//! A segment is a run of 32 KiB pages. Each page holds fragments back to back, then optional zero
//! padding. A fragment is `type:u8 | len:u16 BE | crc32c:u32 BE | payload[len]`.

/// Size of a page; fragments never cross one when written by Prometheus.
pub const PAGE_SIZE: usize = 32 * 1024;
/// Size of a fragment header.
pub const HEADER_SIZE: usize = 7;
/// Largest payload a fragment can carry (`PAGE_SIZE - HEADER_SIZE`).
pub const MAX_FRAGMENT_LEN: usize = PAGE_SIZE - HEADER_SIZE;
/// Prometheus's default segment size (128 MiB); checkpoints always use it.
pub const DEFAULT_SEGMENT_SIZE: usize = 128 * 1024 * 1024;

const TYPE_MASK: u8 = 0x07;
const SNAPPY_BIT: u8 = 0x08;
const ZSTD_BIT: u8 = 0x10;
const RESERVED_MASK: u8 = 0xE0;

/// The low three bits of the type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FragmentType {
    /// Type 0: the rest of the page is zero padding.
    PageTerm,
    /// A whole record.
    Full,
    /// The first fragment of a record split over pages.
    First,
    /// A fragment in the middle of a split record.
    Middle,
    /// The last fragment of a split record.
    Last,
    /// Types 5, 6 and 7 are never written.
    Invalid(u8),
}

impl FragmentType {
    /// Type from the low three bits of a header's first byte.
    pub fn from_byte(b: u8) -> FragmentType {
        match b & TYPE_MASK {
            0 => FragmentType::PageTerm,
            1 => FragmentType::Full,
            2 => FragmentType::First,
            3 => FragmentType::Middle,
            4 => FragmentType::Last,
            n => FragmentType::Invalid(n),
        }
    }

    /// The name Prometheus prints for this type.
    pub fn name(self) -> &'static str {
        match self {
            FragmentType::PageTerm => "zero",
            FragmentType::Full => "full",
            FragmentType::First => "first",
            FragmentType::Middle => "middle",
            FragmentType::Last => "last",
            FragmentType::Invalid(_) => "<invalid>",
        }
    }

    fn bits(self) -> u8 {
        match self {
            FragmentType::PageTerm => 0,
            FragmentType::Full => 1,
            FragmentType::First => 2,
            FragmentType::Middle => 3,
            FragmentType::Last => 4,
            FragmentType::Invalid(n) => n & TYPE_MASK,
        }
    }
}

/// How a record's payload is compressed (per record, flagged on every fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    /// Stored as is.
    None,
    /// Snappy block format (not the framed format).
    Snappy,
    /// A standard zstd frame.
    Zstd,
}

impl Compression {
    /// Compression from a type byte. Snappy wins if both bits are set, as in Prometheus's reader.
    pub fn from_byte(b: u8) -> Compression {
        if b & SNAPPY_BIT != 0 {
            Compression::Snappy
        } else if b & ZSTD_BIT != 0 {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Lower-case name: `none`, `snappy`, `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
        }
    }

    fn bits(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Snappy => SNAPPY_BIT,
            Compression::Zstd => ZSTD_BIT,
        }
    }
}

/// A decoded fragment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// The raw type byte.
    pub byte: u8,
    /// Payload length as stored.
    pub len: u16,
    /// Stored CRC-32C of the payload.
    pub crc: u32,
}

impl FragmentHeader {
    /// Parses the 7 header bytes.
    pub fn parse(b: [u8; HEADER_SIZE]) -> FragmentHeader {
        FragmentHeader {
            byte: b[0],
            len: u16::from_be_bytes([b[1], b[2]]),
            crc: u32::from_be_bytes([b[3], b[4], b[5], b[6]]),
        }
    }

    /// Builds a header.
    pub fn new(kind: FragmentType, compression: Compression, len: u16, crc: u32) -> Self {
        FragmentHeader {
            byte: kind.bits() | compression.bits(),
            len,
            crc,
        }
    }

    /// The 7 bytes on disk.
    pub fn to_bytes(self) -> [u8; HEADER_SIZE] {
        let l = self.len.to_be_bytes();
        let c = self.crc.to_be_bytes();
        [self.byte, l[0], l[1], c[0], c[1], c[2], c[3]]
    }

    /// Fragment type from the low three bits.
    pub fn kind(self) -> FragmentType {
        FragmentType::from_byte(self.byte)
    }

    /// Compression as Prometheus's reader decides it.
    pub fn compression(self) -> Compression {
        Compression::from_byte(self.byte)
    }

    /// True when both compression bits are set (snappy is used).
    pub fn both_compression_bits(self) -> bool {
        self.byte & (SNAPPY_BIT | ZSTD_BIT) == SNAPPY_BIT | ZSTD_BIT
    }

    /// The reserved high bits (always zero from Prometheus's writer; its readers ignore them).
    pub fn reserved_bits(self) -> u8 {
        self.byte & RESERVED_MASK
    }
}

/// Offset of the start of the page holding `offset`.
#[inline]
pub fn page_start(offset: usize) -> usize {
    offset - offset % PAGE_SIZE
}

/// `len` rounded up to a whole number of pages: the length Prometheus reads a segment as.
#[inline]
pub fn padded_len(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE)
}
