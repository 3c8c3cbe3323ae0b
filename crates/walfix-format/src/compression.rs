//! Per-record decompression into a reused buffer, with output bounded by what the input can justify.

use crate::fragment::Compression;

/// Upper bound on any decompressed record, whatever its frame claims. Real records are a few MiB
/// at most; a claim beyond this is treated as damage, not as a reason to allocate.
pub const MAX_RECORD_SIZE: usize = 1 << 30;

/// Why a payload did not decompress.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecompressError {
    /// Snappy rejected the payload.
    #[error("snappy: {0}")]
    Snappy(String),
    /// zstd rejected the payload.
    #[error("zstd: {0}")]
    Zstd(String),
    /// The payload claims more output than its size can produce, or more than [`MAX_RECORD_SIZE`].
    #[error("{codec} payload of {input} bytes claims {claimed} bytes uncompressed, more than it can hold")]
    TooLarge {
        /// `snappy` or `zstd`.
        codec: &'static str,
        /// Compressed size.
        input: usize,
        /// Claimed or produced size.
        claimed: u64,
    },
}

/// Decompresses `input` into `out` (cleared first; its capacity is reused).
///
/// ```
/// use walfix_format::{compression::decompress, fragment::Compression};
/// let packed = snap::raw::Encoder::new().compress_vec(b"hello hello hello").unwrap();
/// let mut out = Vec::new();
/// decompress(Compression::Snappy, &packed, &mut out).unwrap();
/// assert_eq!(out, b"hello hello hello");
/// ```
pub fn decompress(
    compression: Compression,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    out.clear();
    match compression {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Snappy => snappy(input, out),
        Compression::Zstd => zstd_frame(input, out),
    }
}

/// Most output one snappy input byte can produce: a 3-byte copy element emits up to 64 bytes.
const SNAPPY_MAX_RATIO: u64 = 22;

fn snappy(input: &[u8], out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let n = snappy_into(input, out)?;
    out.truncate(n);
    Ok(())
}

/// Snappy-decodes `input` into `out[..n]` and returns `n`, with the same checks and errors as
/// [`decompress`]. `out` is only ever lengthened (zero-filling just the new bytes), never
/// cleared, so a buffer reused record after record is not zeroed again each time; bytes past
/// `n` are left over from earlier records.
pub(crate) fn snappy_into(input: &[u8], out: &mut Vec<u8>) -> Result<usize, DecompressError> {
    let claimed = snap::raw::decompress_len(input)
        .map_err(|e| DecompressError::Snappy(e.to_string()))? as u64;
    if claimed > (input.len() as u64).saturating_mul(SNAPPY_MAX_RATIO) + 64
        || claimed > MAX_RECORD_SIZE as u64
    {
        return Err(DecompressError::TooLarge {
            codec: "snappy",
            input: input.len(),
            claimed,
        });
    }
    let claimed = claimed as usize;
    if out.len() < claimed {
        out.resize(claimed, 0);
    }
    snap::raw::Decoder::new()
        .decompress(input, &mut out[..claimed])
        .map_err(|e| DecompressError::Snappy(e.to_string()))
}

/// A zstd decompression context kept across records (creating one per record costs more than
/// decoding a small record).
pub(crate) struct ZstdContext {
    dec: zstd::stream::raw::Decoder<'static>,
}

impl ZstdContext {
    pub(crate) fn new() -> Result<Self, DecompressError> {
        Ok(ZstdContext {
            dec: zstd::stream::raw::Decoder::new()
                .map_err(|e| DecompressError::Zstd(e.to_string()))?,
        })
    }

    /// Decodes one frame into `out[..n]` and returns `n`. Like [`snappy_into`], `out` only grows
    /// (doubling with the output really produced, never with what the frame header claims), and
    /// bytes past `n` are left over from earlier records.
    pub(crate) fn decode_into(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, DecompressError> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let err = |e: std::io::Error| DecompressError::Zstd(e.to_string());
        self.dec.reinit().map_err(err)?;
        let mut inb = InBuffer::around(input);
        let mut filled = 0usize;
        loop {
            if out.len() - filled < 32 * 1024 {
                let want = (out.len() * 2)
                    .max(filled + 64 * 1024)
                    .min(MAX_RECORD_SIZE + 1);
                if want <= out.len() {
                    return Err(DecompressError::TooLarge {
                        codec: "zstd",
                        input: input.len(),
                        claimed: filled as u64,
                    });
                }
                out.resize(want, 0);
            }
            let mut outb = OutBuffer::around(&mut out[filled..]);
            let hint = self.dec.run(&mut inb, &mut outb).map_err(err)?;
            let produced = outb.pos();
            filled += produced;
            if hint == 0 {
                break;
            }
            if inb.pos() == input.len() && produced == 0 {
                return Err(DecompressError::Zstd(
                    "frame ends before its last block".to_string(),
                ));
            }
        }
        if inb.pos() != input.len() {
            return Err(DecompressError::Zstd(format!(
                "{} bytes after the end of the frame",
                input.len() - inb.pos()
            )));
        }
        Ok(filled)
    }
}

fn zstd_frame(input: &[u8], out: &mut Vec<u8>) -> Result<(), DecompressError> {
    // The same streaming decoder `RecordReader` keeps: output grows with what the frame really
    // produces, and a frame that ends short of its declared content is an error whatever room
    // the buffer has.
    let n = ZstdContext::new()?.decode_into(input, out)?;
    out.truncate(n);
    Ok(())
}

/// Decompresses as much of `input` as can be decoded from its start, into `out` (cleared
/// first), and stops without error at the first element that is cut off or invalid.
///
/// For salvage: the verified fragments of a record whose tail was lost hold the front of its
/// compressed stream, and snappy and zstd both decode front to back, so the bytes produced
/// before the stream breaks off are the front of the original record. Output is bounded as in
/// [`decompress`] (and by [`MAX_RECORD_SIZE`]), and grows only with output really produced.
///
/// ```
/// use walfix_format::{compression::decompress_prefix, fragment::Compression};
/// let text = b"series series series and more series".repeat(20);
/// let packed = snap::raw::Encoder::new().compress_vec(&text).unwrap();
/// let mut out = Vec::new();
/// decompress_prefix(Compression::Snappy, &packed[..packed.len() / 2], &mut out);
/// assert!(!out.is_empty() && text.starts_with(&out));
/// ```
pub fn decompress_prefix(compression: Compression, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    match compression {
        Compression::None => out.extend_from_slice(input),
        Compression::Snappy => snappy_prefix(input, out),
        Compression::Zstd => zstd_prefix(input, out),
    }
}

/// Snappy's block format element by element (format_description.txt in google/snappy): a
/// uvarint length, then literals and back-references. Slow and simple: salvage only.
fn snappy_prefix(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0usize;
    let mut claimed = 0u64;
    let mut shift = 0u32;
    loop {
        let Some(&b) = input.get(i) else { return };
        i += 1;
        claimed |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return;
        }
    }
    let limit = (claimed as usize)
        .min(MAX_RECORD_SIZE)
        .min(input.len().saturating_mul(SNAPPY_MAX_RATIO as usize) + 64);
    let le = |from: usize, n: usize| -> Option<usize> {
        let b = input.get(from..from + n)?;
        Some(
            b.iter()
                .rev()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x)),
        )
    };
    while out.len() < limit {
        let Some(&tag) = input.get(i) else { return };
        let (len, offset, used) = match tag & 3 {
            0 => {
                let short = usize::from(tag >> 2);
                let (len, used) = if short < 60 {
                    (short + 1, 1)
                } else {
                    let n = short - 59;
                    match le(i + 1, n) {
                        Some(v) => (v + 1, 1 + n),
                        None => return,
                    }
                };
                // A literal cut off by the end of the input still gives the bytes it has.
                let start = (i + used).min(input.len());
                let have = len.min(input.len() - start).min(limit - out.len());
                out.extend_from_slice(&input[start..start + have]);
                if have < len {
                    return;
                }
                i += used + len;
                continue;
            }
            1 => match input.get(i + 1) {
                Some(&lo) => (
                    4 + usize::from((tag >> 2) & 7),
                    (usize::from(tag >> 5) << 8) | usize::from(lo),
                    2,
                ),
                None => return,
            },
            2 => match le(i + 1, 2) {
                Some(o) => (1 + usize::from(tag >> 2), o, 3),
                None => return,
            },
            _ => match le(i + 1, 4) {
                Some(o) => (1 + usize::from(tag >> 2), o, 5),
                None => return,
            },
        };
        if offset == 0 || offset > out.len() || out.len() + len > limit {
            return;
        }
        // Byte by byte: a copy may overlap what it produces (offset < len repeats a pattern).
        let from = out.len() - offset;
        for k in 0..len {
            let b = out[from + k];
            out.push(b);
        }
        i += used;
    }
}

fn zstd_prefix(input: &[u8], out: &mut Vec<u8>) {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let Ok(mut dec) = Decoder::new() else { return };
    let mut inb = InBuffer::around(input);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut outb = OutBuffer::around(&mut chunk[..]);
        let res = dec.run(&mut inb, &mut outb);
        let produced = outb.pos();
        if out.len() + produced > MAX_RECORD_SIZE {
            return;
        }
        out.extend_from_slice(&chunk[..produced]);
        match res {
            Ok(0) => return,
            Ok(_) if produced == 0 && inb.pos() == input.len() => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    /// Record-like bytes: repeated label strings (back-references) mixed with noise (literals).
    fn sample_record(n: usize) -> Vec<u8> {
        let mut v = vec![1u8];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..n {
            v.extend_from_slice(b"\x08__name__\x13node_cpu_seconds_total\x03cpu");
            v.extend_from_slice(format!("{}", i % 17).as_bytes());
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes()[..(i % 8)]);
        }
        v
    }

    /// Every cut of a stream made by the snap crate (an independent encoder) decodes to a prefix
    /// of the original; the whole stream decodes to all of it; longer cuts never give less.
    #[test]
    fn snappy_prefix_of_every_cut() {
        let rec = sample_record(300);
        let packed = snap::raw::Encoder::new().compress_vec(&rec).unwrap();
        let mut out = Vec::new();
        let mut last = 0;
        for cut in 0..=packed.len() {
            decompress_prefix(Compression::Snappy, &packed[..cut], &mut out);
            assert!(rec.starts_with(&out), "cut {cut}");
            assert!(out.len() >= last, "cut {cut}: {} < {last}", out.len());
            last = out.len();
        }
        assert_eq!(out, rec);
    }

    #[test]
    fn zstd_prefix_of_cuts() {
        // Small blocks would need a special encoder; a long record makes several 128 KiB blocks.
        let rec = sample_record(20_000);
        let packed = zstd::bulk::compress(&rec, 3).unwrap();
        let mut out = Vec::new();
        let mut last = 0;
        for cut in (0..=packed.len()).step_by(997).chain([packed.len()]) {
            decompress_prefix(Compression::Zstd, &packed[..cut], &mut out);
            assert!(rec.starts_with(&out), "cut {cut}");
            assert!(out.len() >= last);
            last = out.len();
        }
        assert_eq!(out, rec);
        // A cut near the end leaves the blocks before it.
        decompress_prefix(Compression::Zstd, &packed[..packed.len() - 100], &mut out);
        assert!(out.len() >= 128 * 1024, "{} bytes", out.len());
    }

    /// Hand-made snappy: a literal "abc", a 1-byte-offset copy that overlaps itself, then a copy
    /// whose offset points before the start (invalid: decoding stops there).
    #[test]
    fn snappy_prefix_hand_made() {
        // Preamble 20; literal len 3 (tag (3-1)<<2 = 8); copy1 len 6 off 3: tag = ((6-4)<<2)|1,
        // offset byte 3; copy1 len 4 off 200: invalid.
        let stream = [20u8, 8, b'a', b'b', b'c', (2 << 2) | 1, 3, 1, 200];
        let mut out = Vec::new();
        decompress_prefix(Compression::Snappy, &stream, &mut out);
        assert_eq!(out, b"abcabcabc");
        // The snap crate agrees on the valid part and rejects the whole.
        let mut full = [0u8; 9];
        assert!(snap::raw::Decoder::new()
            .decompress(&[9u8, 8, b'a', b'b', b'c', (2 << 2) | 1, 3], &mut full)
            .is_ok());
        assert_eq!(&full, b"abcabcabc");
        assert!(snap::raw::Decoder::new()
            .decompress(&stream, &mut [0u8; 20])
            .is_err());
    }

    #[test]
    fn prefix_never_claims_beyond_input() {
        // A preamble claiming 4 GiB with no elements: nothing produced, nothing allocated.
        let mut out = Vec::new();
        decompress_prefix(
            Compression::Snappy,
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            &mut out,
        );
        assert!(out.is_empty() && out.capacity() == 0);
    }
}
