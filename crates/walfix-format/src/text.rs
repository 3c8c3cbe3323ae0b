//! Showing bytes that came from disk (label names and values, file names) without letting them
//! fool a terminal or get lost on the way to JSON.
//!
//! Prometheus's WAL decoder accepts any bytes as a label name or value, and a file name can be
//! any bytes but `/` and NUL. Printed as they are, control characters can rewrite a terminal
//! (escape sequences) or forge report lines (newlines); replaced by U+FFFD, invalid UTF-8 loses
//! what the bytes were.

use std::fmt::Write;

/// The bytes as text a terminal shows as they are: valid UTF-8 is kept except control
/// characters and the backslash, which are escaped the way Go's `%q` does (`\n`, `\t`, `\r`,
/// `\\`, `\x1b`, `\u0085`); each byte that is not part of valid UTF-8 becomes `\xNN`. Different
/// inputs give different outputs, so the escaped form identifies the bytes.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                // C1 controls, line/paragraph separators and bidirectional overrides change
                // how the rest of a line is shown.
                c if is_invisible_control(c) => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Text made by walfix itself (messages that may quote file names): like [`escape`] but the
/// backslash stays as it is, since nothing here is meant to be read back as bytes.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| is_control(c) || is_invisible_control(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push(c);
        } else {
            out.push_str(&escape(c.encode_utf8(&mut [0; 4]).as_bytes()));
        }
    }
    std::borrow::Cow::Owned(out)
}

fn is_control(c: char) -> bool {
    (c as u32) < 0x20 || c == '\u{7f}'
}

fn is_invisible_control(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x9f | 0x2028 | 0x2029 | 0x202a..=0x202e | 0x2066..=0x2069 | 0x200e | 0x200f)
}

/// True when [`escape`] would return the bytes unchanged.
pub fn is_plain(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(s) => !s
            .chars()
            .any(|c| (c as u32) < 0x20 || c == '\u{7f}' || c == '\\' || is_invisible_control(c)),
        Err(_) => false,
    }
}

/// Standard base64 (RFC 4648 section 4, with `=` padding), for bytes that are not UTF-8 in JSON.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_plain_text_and_escapes_controls_and_invalid_bytes() {
        assert_eq!(escape(b"pod-7f9c"), "pod-7f9c");
        assert_eq!(escape("größe ✓".as_bytes()), "größe ✓");
        assert_eq!(escape(b"a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(escape(b"\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(escape(b"nul\0del\x7f"), "nul\\x00del\\x7f");
        assert_eq!(escape(b"back\\slash"), "back\\\\slash");
        assert_eq!(escape(b"bad\xff\xfeutf8"), "bad\\xff\\xfeutf8");
        assert_eq!(escape("\u{85}\u{202e}x".as_bytes()), "\\u0085\\u202ex");
        // A truncated multi-byte sequence is shown byte by byte.
        assert_eq!(escape(b"\xe2\x9c"), "\\xe2\\x9c");
        // The escaped form of a backslash cannot be confused with an escape.
        assert_ne!(escape(b"\\x41"), escape(b"A"));
        assert_ne!(escape(b"\\n"), escape(b"\n"));
    }

    #[test]
    fn escape_controls_leaves_backslashes() {
        assert_eq!(escape_controls("C:\\wal\n\x1b[2J"), "C:\\wal\\n\\x1b[2J");
        assert_eq!(escape_controls("plain"), "plain");
    }

    #[test]
    fn is_plain_agrees_with_escape() {
        for s in [&b"up"[..], b"a\nb", b"\xff", b"\\", "ü".as_bytes(), b""] {
            assert_eq!(is_plain(s), escape(s).as_bytes() == s, "{s:?}");
        }
    }

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        // RFC 4648 section 10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
