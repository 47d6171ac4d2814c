//! JSON string escaping straight into any `fmt::Write`, without allocating.

use std::fmt::{self, Write};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that cannot appear raw inside a JSON string (plus DEL, escaped so
/// terminal control never reaches the output).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table
};

/// Whether any byte may need escaping, eight bytes at a time. Never misses
/// one; may say yes when none does (the exact path then writes it as is).
pub(crate) fn may_need_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero when some byte of `word` is zero.
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
        let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
        let delete = zero_byte(word ^ (ONES * 0x7f));
        if control | quote | backslash | delete != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| NEEDS_ESCAPE[usize::from(b)])
}

/// Writes `s` escaped for the inside of a JSON string: quotes, backslashes,
/// every control character (so no raw newline or terminal escape sequence
/// ever reaches the output) and DEL. Runs without escapes are written whole.
pub(crate) fn write_escaped<W: Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    if !may_need_escape(bytes) {
        return out.write_str(s);
    }
    let mut start = 0;
    while let Some(offset) = bytes[start..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
    {
        let at = start + offset;
        if start < at {
            // `at` sits on an ASCII byte, so both ends are char boundaries.
            out.write_str(&s[start..at])?;
        }
        let byte = bytes[at];
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        if short.is_empty() {
            let code = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0x0f)],
            ];
            out.write_str(std::str::from_utf8(&code).unwrap_or("\\ufffd"))?;
        } else {
            out.write_str(short)?;
        }
        start = at + 1;
    }
    if start < bytes.len() {
        out.write_str(&s[start..])?;
    }
    Ok(())
}

/// Writes `s` as a complete JSON string literal, quotes included.
pub(crate) fn write_quoted<W: Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    out.write_str("\"")?;
    write_escaped(out, s)?;
    out.write_str("\"")
}

/// A `fmt::Write` adapter that escapes everything written through it, so
/// `Debug`/`Display` output can stream into a JSON string.
pub(crate) struct Escaping<'a, W: Write + ?Sized>(pub(crate) &'a mut W);

impl<W: Write + ?Sized> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = String::new();
        write_quoted(&mut out, s).unwrap();
        out
    }

    #[test]
    fn escapes_every_control_character_and_round_trips() {
        let hostile: String = (0u8..=0x7f)
            .map(char::from)
            .chain("é\u{2028}😀".chars())
            .collect();
        let json = quoted(&hostile);
        assert!(!json.bytes().any(|b| b < 0x20 || b == 0x7f));
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hostile);
    }

    #[test]
    fn the_word_check_never_misses_a_byte_that_needs_escaping() {
        for needle in 0u8..=0x7f {
            for position in 0..19 {
                let mut bytes = vec![b'a'; 19];
                bytes[position] = needle;
                let text = std::str::from_utf8(&bytes).unwrap();
                assert!(
                    may_need_escape(text.as_bytes()) || !NEEDS_ESCAPE[usize::from(needle)],
                    "byte {needle:#x} at {position}"
                );
                let json = quoted(text);
                assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text);
                assert!(!json.bytes().any(|b| b < 0x20 || b == 0x7f));
            }
        }
    }

    #[test]
    fn short_escapes_are_used_where_json_has_them() {
        assert_eq!(quoted("a\"b\\c\nd\te\u{1b}"), r#""a\"b\\c\nd\te\u001b""#);
    }
}
