//! Undoing a one-byte error in a fragment from its CRC-32C.
//!
//! CRC-32C is linear: for payloads of equal length, `crc(a) ^ crc(b)` is the raw CRC (no
//! initial value, no final xor) of `a ^ b`. So the syndrome `crc(payload) ^ stored` is the raw
//! CRC of the error. An error of one byte `x` at position `j` has raw CRC `T[x]` (the table
//! entry) carried through the `len - 1 - j` zero bytes after it, and carrying through a zero
//! byte is a bijection of the CRC state. Running the syndrome backwards one byte at a time and
//! looking it up among the 255 values `T[x]` lists every one-byte error that explains it, in
//! one pass over the length. CRC-32C's Hamming distance is 4 at this length (Koopman): every
//! error of up to 3 bits is detected, so a one-bit error is always the only candidate; a
//! one-byte error usually is. A caller accepts a candidate only when it is the only one and
//! the record then decodes.

/// The reflected CRC-32C polynomial.
const POLY: u32 = 0x82F6_3B78;

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

const T: [u32; 256] = table();

/// `T`'s index by its top byte (the top bytes of a CRC table are all different).
const fn top_index() -> [u8; 256] {
    let mut r = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        r[(T[i] >> 24) as usize] = i as u8;
        i += 1;
    }
    r
}

const TOP: [u8; 256] = top_index();

/// One way to make a fragment's CRC match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fix {
    /// XOR the payload byte at `at` (relative to the payload) with `xor`.
    Payload {
        /// Position in the payload.
        at: usize,
        /// The error pattern (non-zero).
        xor: u8,
    },
    /// The payload is intact; byte `byte` (0 = most significant) of the stored CRC in the
    /// header is wrong by `xor`.
    StoredCrc {
        /// Which byte of the big-endian CRC field.
        byte: u8,
        /// The error pattern (non-zero).
        xor: u8,
    },
}

/// Every one-byte error that explains `crc32c(payload) == computed` against `stored`, at most
/// `limit` of them (more means the caller must not pick one anyway).
pub fn one_byte_fixes(payload: &[u8], computed: u32, stored: u32, limit: usize) -> Vec<Fix> {
    let mut out = Vec::new();
    let syndrome = computed ^ stored;
    if syndrome == 0 {
        return out;
    }
    // The CRC field itself: the syndrome is then confined to one byte of it.
    for byte in 0..4u8 {
        let shift = 24 - 8 * u32::from(byte);
        if syndrome & !(0xFF << shift) == 0 {
            out.push(Fix::StoredCrc {
                byte,
                xor: (syndrome >> shift) as u8,
            });
        }
    }
    // Backwards from the last payload byte: `s` is the raw CRC the error must have had just
    // after position `j`.
    let mut s = syndrome;
    for j in (0..payload.len()).rev() {
        if out.len() >= limit {
            break;
        }
        let i = TOP[(s >> 24) as usize];
        if T[i as usize] == s && i != 0 {
            out.push(Fix::Payload { at: j, xor: i });
        }
        // Undo one zero byte: s = (c >> 8) ^ T[c & 0xff] for the previous state c.
        let i = TOP[(s >> 24) as usize];
        s = ((s ^ T[i as usize]) << 8) | u32::from(i);
    }
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crc::crc32c;

    #[test]
    fn the_table_is_crc32c() {
        // The first entries of the Castagnoli table (RFC 3720's polynomial, reflected).
        assert_eq!(T[1], 0xF26B_8303);
        assert_eq!(T[128], POLY);
        // One byte 0x31 ('1') from a zero state is its table entry; the full check value of
        // "123456789" comes from crc.rs, computed by another implementation.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    fn payload(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn every_one_bit_error_is_found_and_is_the_only_candidate() {
        let p = payload(2000, 7);
        let stored = crc32c(&p);
        for at in (0..p.len()).step_by(37).chain([0, p.len() - 1]) {
            for bit in 0..8 {
                let mut bad = p.clone();
                bad[at] ^= 1 << bit;
                let fixes = one_byte_fixes(&bad, crc32c(&bad), stored, 8);
                assert_eq!(
                    fixes,
                    vec![Fix::Payload { at, xor: 1 << bit }],
                    "at {at} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn one_byte_errors_on_a_full_page_fragment_are_found() {
        let p = payload(32 * 1024 - 7, 99);
        let stored = crc32c(&p);
        for (at, xor) in [(0, 0xFF), (12345, 0x5A), (32 * 1024 - 8, 0x81)] {
            let mut bad = p.clone();
            bad[at] ^= xor;
            let fixes = one_byte_fixes(&bad, crc32c(&bad), stored, 8);
            assert!(fixes.contains(&Fix::Payload { at, xor }), "{fixes:?}");
        }
    }

    #[test]
    fn a_wrong_stored_crc_byte_is_a_header_fix() {
        let p = payload(300, 3);
        let good = crc32c(&p);
        let fixes = one_byte_fixes(&p, good, good ^ 0x00FF_0000, 8);
        assert!(
            fixes.contains(&Fix::StoredCrc { byte: 1, xor: 0xFF }),
            "{fixes:?}"
        );
    }

    #[test]
    fn two_scattered_errors_are_not_explained_as_one() {
        let p = payload(4000, 11);
        let stored = crc32c(&p);
        let mut bad = p.clone();
        bad[10] ^= 1;
        bad[3000] ^= 1;
        // Two bits: CRC-32C's Hamming distance over this length is at least 4, so no one-byte
        // error explains them... unless they fall in one byte, which they do not.
        assert!(one_byte_fixes(&bad, crc32c(&bad), stored, 8).is_empty());
    }
}
