//! CRC-32C (Castagnoli), as Prometheus computes it over each fragment payload.

/// CRC-32C of `data` (hardware accelerated where the CPU supports it).
///
/// ```
/// assert_eq!(walfix_format::crc::crc32c(b"123456789"), 0xE306_9283);
/// assert_eq!(walfix_format::crc::crc32c(b""), 0);
/// ```
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// CRC-32C of `data` followed by `zeros` zero bytes: the checksum Prometheus computes when a
/// fragment body runs past the end of a torn segment (its reader pads the last page with zeros).
pub fn crc32c_with_zeros(data: &[u8], zeros: usize) -> u32 {
    const Z: [u8; 4096] = [0; 4096];
    let mut crc = crc32c::crc32c(data);
    let mut left = zeros;
    while left > 0 {
        let n = left.min(Z.len());
        crc = crc32c::crc32c_append(crc, &Z[..n]);
        left -= n;
    }
    crc
}
