//! Rendering `tracing` fields as JSON object members, with unique keys.

use std::borrow::Cow;
use std::fmt::{self, Write};

use tracing_core::field::{Field, Visit};

use super::escape::{write_escaped, write_quoted, Escaping};

/// The prefix given to a field whose name is already taken, repeated until
/// the key is unique: a user field `message` becomes `fields.message`.
pub(crate) const RENAME_PREFIX: &str = "fields.";

/// The keys written so far in one JSON object, so that no key appears twice.
///
/// Keys are compared by their output text: `depth` copies of
/// [`RENAME_PREFIX`] followed by `name`. The first `N` keys live inline, so an
/// ordinary event allocates nothing here.
pub(crate) struct KeySet<'k, const N: usize = 16> {
    reserved: &'k [Cow<'static, str>],
    /// A one-bit-per-key summary of `reserved` (see [`key_bit`]).
    reserved_bits: u64,
    inline: [(&'k str, u8); N],
    len: usize,
    spill: Vec<(&'k str, u8)>,
    /// False when the caller knows every key will be unique: `claim` then
    /// just answers depth 0.
    check: bool,
}

impl<'k, const N: usize> KeySet<'k, N> {
    pub(crate) fn new(reserved: &'k [Cow<'static, str>]) -> Self {
        Self::with_bits(reserved, reserved_bits(reserved))
    }

    /// Like [`KeySet::new`], with the summary of `reserved` precomputed.
    pub(crate) fn with_bits(reserved: &'k [Cow<'static, str>], reserved_bits: u64) -> Self {
        Self {
            reserved,
            reserved_bits,
            inline: [("", 0); N],
            len: 0,
            spill: Vec::new(),
            check: true,
        }
    }

    fn taken(&self, name: &str, depth: u8) -> bool {
        let maybe_reserved = depth > 0 || self.reserved_bits & key_bit(name) != 0;
        if maybe_reserved && self.reserved.iter().any(|r| same_key(r, 0, name, depth)) {
            return true;
        }
        for &(n, d) in &self.inline[..self.len] {
            if same_key(n, d, name, depth) {
                return true;
            }
        }
        self.spill.iter().any(|&(n, d)| same_key(n, d, name, depth))
    }

    /// Records a key claimed earlier (by a previous rendering).
    pub(crate) fn insert_claimed(&mut self, name: &'k str, depth: u8) {
        if self.len < self.inline.len() {
            self.inline[self.len] = (name, depth);
            self.len += 1;
        } else {
            self.spill.push((name, depth));
        }
    }

    /// A set for keys known to be unique and unreserved.
    pub(crate) fn unchecked() -> Self {
        let mut this = Self::with_bits(&[], 0);
        this.check = false;
        this
    }

    /// Claims the first free key for `name` and returns its prefix depth.
    pub(crate) fn claim(&mut self, name: &'k str) -> u8 {
        if !self.check {
            return 0;
        }
        let mut depth = 0u8;
        while self.taken(name, depth) && depth < u8::MAX {
            depth += 1;
        }
        self.insert_claimed(name, depth);
        depth
    }
}

/// One of 64 bits chosen by a key's length and first byte: a key whose bit
/// is not in a set's summary is not in the set.
fn key_bit(name: &str) -> u64 {
    let first = name.as_bytes().first().copied().unwrap_or(0);
    1 << ((name.len() * 7 + usize::from(first)) % 64)
}

/// The summary of a set of reserved keys, for [`KeySet::with_bits`].
pub(crate) fn reserved_bits(reserved: &[Cow<'static, str>]) -> u64 {
    reserved.iter().fold(0, |bits, name| bits | key_bit(name))
}

/// Whether `prefix^d1 + n1` and `prefix^d2 + n2` are the same text.
#[inline]
fn same_key(n1: &str, d1: u8, n2: &str, d2: u8) -> bool {
    if d1 == d2 {
        return n1 == n2;
    }
    if n1.len() + usize::from(d1) * RENAME_PREFIX.len()
        != n2.len() + usize::from(d2) * RENAME_PREFIX.len()
    {
        return false;
    }
    let (short, long, diff) = if d1 >= d2 {
        (n1, n2, d1 - d2)
    } else {
        (n2, n1, d2 - d1)
    };
    let mut rest = long;
    for _ in 0..diff {
        match rest.strip_prefix(RENAME_PREFIX) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest == short
}

/// Writes `"key":` for a claimed key, escaping the name.
pub(crate) fn write_key<W: Write + ?Sized>(out: &mut W, name: &str, depth: u8) -> fmt::Result {
    out.write_str("\"")?;
    for _ in 0..depth {
        out.write_str(RENAME_PREFIX)?;
    }
    write_escaped(out, name)?;
    out.write_str("\":")
}

/// Writes a float as a JSON number, or as a string where JSON has no number
/// for it (NaN and infinities).
pub(crate) fn write_f64<W: Write + ?Sized>(out: &mut W, value: f64) -> fmt::Result {
    if value.is_finite() {
        let mut buf = ryu::Buffer::new();
        out.write_str(buf.format_finite(value))
    } else if value.is_nan() {
        out.write_str("\"NaN\"")
    } else if value > 0.0 {
        out.write_str("\"inf\"")
    } else {
        out.write_str("\"-inf\"")
    }
}

/// Which fields a [`JsonFields`] pass writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Every field.
    All,
    /// Every field but `message`.
    SkipMessage,
    /// Every field, the first `message` written as `,"message":"…"` before
    /// the opening (so it must come first, as `tracing`'s macros put it).
    InlineMessage,
}

/// A field visitor writing `"key":value` members separated by commas.
pub(crate) struct JsonFields<'a, 'k, W: Write + ?Sized, const N: usize = 16> {
    out: &'a mut W,
    keys: &'a mut KeySet<'k, N>,
    pass: Pass,
    /// Written before the first member (for example `,"fields":{`); empty
    /// once written.
    opening: &'a str,
    /// Written before every member after the first.
    separator: &'a str,
    wrote_any: bool,
    pub(crate) result: fmt::Result,
    /// The rename depth of the last key written.
    pub(crate) last_depth: u8,
}

impl<'a, 'k, W: Write + ?Sized, const N: usize> JsonFields<'a, 'k, W, N> {
    pub(crate) fn new(
        out: &'a mut W,
        keys: &'a mut KeySet<'k, N>,
        pass: Pass,
        opening: &'a str,
        separator: &'a str,
    ) -> Self {
        Self {
            out,
            keys,
            pass,
            opening,
            separator,
            wrote_any: false,
            result: Ok(()),
            last_depth: 0,
        }
    }

    /// Whether any member was written.
    pub(crate) fn wrote_any(&self) -> bool {
        self.wrote_any
    }

    fn begin(&mut self, field: &Field) -> bool {
        if self.result.is_err() || (self.pass == Pass::SkipMessage && field.name() == "message") {
            return false;
        }
        if self.pass == Pass::InlineMessage && field.name() == "message" {
            // Any later field called `message` is an ordinary (renamed) one.
            self.pass = Pass::All;
            self.result = self.out.write_str(",\"message\":");
            return self.result.is_ok();
        }
        let name: &'static str = field.name();
        let depth = self.keys.claim(name);
        self.last_depth = depth;
        let lead = if self.wrote_any {
            self.separator
        } else {
            self.opening
        };
        self.wrote_any = true;
        self.result = self
            .out
            .write_str(lead)
            .and_then(|()| write_key(self.out, name, depth));
        self.result.is_ok()
    }

    fn write_raw(&mut self, text: &str) {
        self.result = self.out.write_str(text);
    }
}

impl<W: Write + ?Sized, const N: usize> Visit for JsonFields<'_, '_, W, N> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.begin(field) {
            self.result = write_f64(self.out, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.begin(field) {
            self.write_raw(itoa::Buffer::new().format(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.begin(field) {
            self.write_raw(itoa::Buffer::new().format(value));
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if self.begin(field) {
            self.write_raw(itoa::Buffer::new().format(value));
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if self.begin(field) {
            self.write_raw(itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.begin(field) {
            self.write_raw(if value { "true" } else { "false" });
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.begin(field) {
            self.result = write_quoted(self.out, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.begin(field) {
            self.result = write_display_string(self.out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.begin(field) {
            self.result = write_debug_string(self.out, value);
        }
    }
}

/// Writes a value's `Debug` output as a JSON string.
pub(crate) fn write_debug_string<W: Write + ?Sized>(
    out: &mut W,
    value: &dyn fmt::Debug,
) -> fmt::Result {
    out.write_str("\"")?;
    write!(Escaping(out), "{value:?}")?;
    out.write_str("\"")
}

/// Writes a value's `Display` output as a JSON string.
pub(crate) fn write_display_string<W: Write + ?Sized>(
    out: &mut W,
    value: &dyn fmt::Display,
) -> fmt::Result {
    out.write_str("\"")?;
    write!(Escaping(out), "{value}")?;
    out.write_str("\"")
}

/// Writes only the `message` field's text (escaped, without quotes).
pub(crate) struct MessageOnly<'a, W: Write + ?Sized> {
    pub(crate) out: &'a mut W,
    pub(crate) found: bool,
    pub(crate) result: fmt::Result,
}

impl<W: Write + ?Sized> Visit for MessageOnly<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && !self.found {
            self.found = true;
            self.result = write_escaped(self.out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && !self.found {
            self.found = true;
            self.result = write!(Escaping(self.out), "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_keys_never_collide_with_literal_names() {
        let reserved = [Cow::Borrowed("message"), Cow::Borrowed("trace_id")];
        let mut keys = KeySet::<16>::new(&reserved);
        assert_eq!(keys.claim("a"), 0);
        assert_eq!(keys.claim("message"), 1); // fields.message
                                              // "fields.message" is taken by the rename: "fields.fields.message".
        assert_eq!(keys.claim("fields.message"), 1);
        assert_eq!(keys.claim("a"), 1); // fields.a
        assert_eq!(keys.claim("fields.a"), 1); // fields.fields.a
        assert_eq!(keys.claim("fields.fields.a"), 1); // fields.fields.fields.a
        assert_eq!(keys.claim("a"), 4); // every shorter form is taken
        for i in 0..40 {
            // Spills past the inline capacity.
            let name: &'static str = Box::leak(format!("k{i}").into_boxed_str());
            assert_eq!(keys.claim(name), 0);
        }
        assert_eq!(keys.claim("k39"), 1);
    }

    #[test]
    fn floats_are_valid_json() {
        for (value, text) in [
            (1.5, "1.5"),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"inf\""),
            (f64::NEG_INFINITY, "\"-inf\""),
        ] {
            let mut out = String::new();
            write_f64(&mut out, value).unwrap();
            assert_eq!(out, text);
        }
    }
}
