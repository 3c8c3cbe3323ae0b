//! Per-record decompression into a reused buffer, with output bounded by what the input can justify.

use crate::fragment::Compression;

/// Upper bound on any decompressed record, whatever its frame claims. Real records are a few MiB
/// at most; a claim beyond this is treated as damage, not as a reason to allocate.
pub const MAX_RECORD_SIZE: usize = 1 << 30;

/// Why a payload did not decompress.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
