//! CRC-32C (Castagnoli), as Prometheus computes it over each fragment payload.

/// CRC-32C of `data` (hardware accelerated where the CPU supports it).
///
/// ```
/// assert_eq!(walfix_format::crc::crc32c(b"123456789"), 0xE306_9283);
/// assert_eq!(walfix_format::crc::crc32c(b""), 0);
/// ```
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    // The iSCSI CRC-32 is CRC-32C; the result fits in 32 bits.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// CRC-32C of `data` followed by `zeros` zero bytes: the checksum Prometheus computes when a
/// fragment body runs past the end of a torn segment (its reader pads the last page with zeros).
pub fn crc32c_with_zeros(data: &[u8], zeros: usize) -> u32 {
    const Z: [u8; 4096] = [0; 4096];
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    digest.update(data);
    let mut left = zeros;
    while left > 0 {
        let n = left.min(Z.len());
        digest.update(&Z[..n]);
        left -= n;
    }
    digest.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Check values from RFC 3720 (iSCSI), appendix B.4.
    #[test]
    fn rfc3720_vectors() {
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113F_DB5C);
    }

    /// Every length around the SIMD block sizes, against a bitwise CRC-32C written from the
    /// polynomial (reflected 0x82F63B78), and with zero padding against the padded bytes.
    #[test]
    fn matches_bitwise_definition() {
        fn bitwise(data: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &b in data {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0x82F6_3B78
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in (0..300).chain([511, 512, 513, 1023, 1024, 4095, 4096, 4999]) {
            assert_eq!(crc32c(&data[..len]), bitwise(&data[..len]), "len {len}");
        }
        for zeros in [0, 1, 7, 4096, 5000] {
            let mut padded = data[..123].to_vec();
            padded.resize(123 + zeros, 0);
            assert_eq!(
                crc32c_with_zeros(&data[..123], zeros),
                bitwise(&padded),
                "zeros {zeros}"
            );
        }
    }
}
