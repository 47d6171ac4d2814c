//! JSON string escaping straight into any `fmt::Write`, without allocating.

use std::fmt::{self, Write};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `s` escaped for the inside of a JSON string: quotes, backslashes,
/// every control character (so no raw newline or terminal escape sequence
/// ever reaches the output) and DEL.
pub(crate) fn write_escaped<W: Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let short: &str = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f | 0x7f => "",
            _ => continue,
        };
        if start < i {
            // `i` sits on an ASCII byte, so both ends are char boundaries.
            out.write_str(&s[start..i])?;
        }
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
        start = i + 1;
    }
    if start < bytes.len() {
        out.write_str(&s[start..])?;
    }
    Ok(())
}

/// Writes `s` as a complete JSON string literal, quotes included.
pub(crate) fn write_quoted<W: Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    out.write_char('"')?;
    write_escaped(out, s)?;
    out.write_char('"')
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
        let hostile: String = (0u8..=0x7f).map(char::from).chain("é\u{2028}😀".chars()).collect();
        let json = quoted(&hostile);
        assert!(!json.bytes().any(|b| b < 0x20 || b == 0x7f));
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hostile);
    }

    #[test]
    fn short_escapes_are_used_where_json_has_them() {
        assert_eq!(quoted("a\"b\\c\nd\te\u{1b}"), r#""a\"b\\c\nd\te\u001b""#);
    }
}
