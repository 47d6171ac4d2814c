//! Rendering `tracing` fields as JSON object members, with unique keys.

use std::borrow::Cow;
use std::fmt::{self, Write};

use tracing_core::field::{Field, Visit};

use super::escape::{write_escaped, write_quoted, Escaping};

/// The prefix given to a field whose name is already taken, repeated until
/// the key is unique: a user field `message` becomes `fields.message`.
pub(crate) const RENAME_PREFIX: &str = "fields.";

/// The deepest rename: a key is tried bare and under up to this many
/// prefixes. A JSON object built from one `tracing` field set (at most 32
/// fields) always finds a free key within it; only unbounded sources (`log`
/// key-values) can exhaust it, and their extra members are dropped and
/// counted.
pub(crate) const MAX_RENAME_DEPTH: u8 = 32;

/// The most members one object takes from unbounded sources (OpenTelemetry's
/// default attribute count limit): later ones are dropped and counted, so a
/// hostile record costs bounded work and output.
pub(crate) const MAX_CLAIMS: u16 = 128;

/// The key that reports how many members a line left out; reserved on
/// every line.
pub(crate) const DROPPED_KEY: &str = "dropped_attributes_count";

/// One claimed key: `depth` copies of [`RENAME_PREFIX`], then `name`, then
/// `suffix` (for example `.chain`).
#[derive(Clone, Copy)]
struct Claimed<'k> {
    name: &'k str,
    depth: u8,
    suffix: &'static str,
}

impl Claimed<'_> {
    fn len(&self) -> usize {
        self.name.len() + usize::from(self.depth) * RENAME_PREFIX.len() + self.suffix.len()
    }

    fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        std::iter::repeat(RENAME_PREFIX)
            .take(usize::from(self.depth))
            .chain([self.name, self.suffix])
            .flat_map(str::bytes)
    }

    /// Whether both are the same text.
    #[inline]
    fn same(&self, other: &Claimed<'_>) -> bool {
        if self.depth == other.depth && self.suffix == other.suffix {
            return self.name == other.name;
        }
        self.len() == other.len() && self.bytes().eq(other.bytes())
    }
}

/// The keys written so far in one JSON object, so that no key appears twice.
///
/// Keys are compared by their output text: `depth` copies of
/// [`RENAME_PREFIX`] followed by `name` (and a suffix). The first `N` keys
/// live inline, so an ordinary event allocates nothing here. A key with no
/// free form within [`MAX_RENAME_DEPTH`] prefixes, and every key after
/// [`MAX_CLAIMS`] claims, is refused and counted in [`KeySet::dropped`].
pub(crate) struct KeySet<'k, const N: usize = 16> {
    reserved: &'k [Cow<'static, str>],
    /// A one-bit-per-key summary of `reserved` (see [`key_bit`]).
    reserved_bits: u64,
    inline: [Claimed<'k>; N],
    len: usize,
    spill: Vec<Claimed<'k>>,
    /// False when the caller knows every key will be unique: `claim` then
    /// just answers depth 0.
    check: bool,
    /// Every name claimed is known to need no escaping (decided once per
    /// callsite): keys are written as they are.
    clean_names: bool,
    claims: u16,
    dropped: u32,
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
            inline: [Claimed {
                name: "",
                depth: 0,
                suffix: "",
            }; N],
            len: 0,
            spill: Vec::new(),
            check: true,
            clean_names: false,
            claims: 0,
            dropped: 0,
        }
    }

    fn taken(&self, key: &Claimed<'_>) -> bool {
        let maybe_reserved =
            key.depth > 0 || !key.suffix.is_empty() || self.reserved_bits & key_bit(key.name) != 0;
        if maybe_reserved
            && self.reserved.iter().any(|r| {
                key.same(&Claimed {
                    name: r,
                    depth: 0,
                    suffix: "",
                })
            })
        {
            return true;
        }
        self.inline[..self.len]
            .iter()
            .chain(&self.spill)
            .any(|claimed| claimed.same(key))
    }

    /// Records a key claimed earlier (by a previous rendering).
    pub(crate) fn insert_claimed(&mut self, name: &'k str, depth: u8) {
        self.insert_suffixed(name, depth, "");
    }

    /// Records a suffixed key claimed earlier.
    pub(crate) fn insert_suffixed(&mut self, name: &'k str, depth: u8, suffix: &'static str) {
        let claimed = Claimed {
            name,
            depth,
            suffix,
        };
        if self.len < self.inline.len() {
            self.inline[self.len] = claimed;
            self.len += 1;
        } else {
            self.spill.push(claimed);
        }
    }

    /// A set for keys known to be unique and unreserved.
    pub(crate) fn unchecked() -> Self {
        let mut this = Self::with_bits(&[], 0);
        this.check = false;
        this
    }

    /// A set for keys known to be unique, unreserved and free of anything
    /// JSON escapes.
    pub(crate) fn unchecked_clean() -> Self {
        let mut this = Self::unchecked();
        this.clean_names = true;
        this
    }

    /// Claims the first free key for `name` and returns its prefix depth;
    /// `None` (counted as dropped) when there is none within the bounds.
    pub(crate) fn claim(&mut self, name: &'k str) -> Option<u8> {
        self.claim_suffixed(name, "")
    }

    /// Claims the first free key for `name` + `suffix` (the prefixes go
    /// before `name`).
    pub(crate) fn claim_suffixed(&mut self, name: &'k str, suffix: &'static str) -> Option<u8> {
        if !self.check {
            return Some(0);
        }
        if self.claims >= MAX_CLAIMS {
            self.dropped = self.dropped.saturating_add(1);
            return None;
        }
        self.claims += 1;
        let mut key = Claimed {
            name,
            depth: 0,
            suffix,
        };
        while self.taken(&key) {
            if key.depth == MAX_RENAME_DEPTH {
                self.dropped = self.dropped.saturating_add(1);
                return None;
            }
            key.depth += 1;
        }
        self.insert_suffixed(name, key.depth, suffix);
        Some(key.depth)
    }

    /// How many keys were refused.
    pub(crate) fn dropped(&self) -> u32 {
        self.dropped
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

/// Writes `"key":` for a claimed key, escaping the name.
pub(crate) fn write_key<W: Write + ?Sized>(out: &mut W, name: &str, depth: u8) -> fmt::Result {
    write_suffixed_key(out, name, depth, "")
}

/// Writes `"key":` for a claimed suffixed key.
pub(crate) fn write_suffixed_key<W: Write + ?Sized>(
    out: &mut W,
    name: &str,
    depth: u8,
    suffix: &str,
) -> fmt::Result {
    out.write_str("\"")?;
    for _ in 0..depth {
        out.write_str(RENAME_PREFIX)?;
    }
    write_escaped(out, name)?;
    if !suffix.is_empty() {
        write_escaped(out, suffix)?;
    }
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

/// The suffix of the key holding an error field's source chain
/// (`error.chain`).
pub(crate) const CHAIN_SUFFIX: &str = ".chain";

/// The most sources written in an error's chain (a chain may be long, or
/// even cyclic).
pub(crate) const MAX_ERROR_SOURCES: usize = 8;

/// Where a profile writes the first `dyn Error` field of an event, besides
/// the field itself (already rendered as `,"key":`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExceptionKeys {
    /// `exception.type`, `error.type`, `error.kind`…
    pub(crate) type_key: Option<Cow<'static, str>>,
    /// `exception.message`, `error.message`…
    pub(crate) message_key: Option<Cow<'static, str>>,
    /// Leave the field's own member out (its text is the message key's):
    /// an `error` string beside `error.message` is a mapping conflict in
    /// stores that expand dotted keys.
    pub(crate) replaces_field: bool,
}

impl ExceptionKeys {
    pub(crate) fn is_empty(&self) -> bool {
        self.type_key.is_none() && self.message_key.is_none()
    }
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
    /// `,"message":` (or the profile's name) for [`Pass::InlineMessage`].
    message_key: &'a str,
    /// The profile's keys for the event's first error, when it has some.
    exception: Option<&'k ExceptionKeys>,
    wrote_any: bool,
    pub(crate) result: fmt::Result,
    /// The rename depth of the last key written; `None` when it was dropped.
    pub(crate) last_depth: Option<u8>,
    /// The rename depth of the last error field's `.chain` key, if written.
    pub(crate) last_chain_depth: Option<u8>,
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
            message_key: ",\"message\":",
            exception: None,
            wrote_any: false,
            result: Ok(()),
            last_depth: None,
            last_chain_depth: None,
        }
    }

    /// Writes the inline message under this pre-rendered key instead.
    pub(crate) fn with_message_key(mut self, rendered: &'a str) -> Self {
        self.message_key = rendered;
        self
    }

    /// Writes the first error field's type and message under these keys too.
    pub(crate) fn with_exception_keys(mut self, keys: Option<&'k ExceptionKeys>) -> Self {
        self.exception = keys.filter(|keys| !keys.is_empty());
        self
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
            self.result = self.out.write_str(self.message_key);
            return self.result.is_ok();
        }
        let depth = self.member(field.name(), "");
        self.last_depth = depth;
        depth.is_some() && self.result.is_ok()
    }

    /// Claims a key for `name` + `suffix` and writes the separator and
    /// `"key":`; `None` when the key set refused it (nothing written).
    fn member(&mut self, name: &'k str, suffix: &'static str) -> Option<u8> {
        let depth = self.keys.claim_suffixed(name, suffix)?;
        let lead = if self.wrote_any {
            self.separator
        } else {
            self.opening
        };
        self.wrote_any = true;
        self.result = if self.keys.clean_names && depth == 0 && suffix.is_empty() {
            let out = &mut *self.out;
            let opened = if lead == "," {
                out.write_str(",\"")
            } else {
                out.write_str(lead).and_then(|()| out.write_str("\""))
            };
            opened
                .and_then(|()| out.write_str(name))
                .and_then(|()| out.write_str("\":"))
        } else {
            self.out
                .write_str(lead)
                .and_then(|()| write_suffixed_key(self.out, name, depth, suffix))
        };
        Some(depth)
    }

    fn write_raw(&mut self, text: &str) {
        self.result = self.out.write_str(text);
    }

    /// The event's first error: the profile's type and message members.
    /// Returns whether the field's own member is to be left out.
    fn write_exception(&mut self, value: &(dyn std::error::Error + 'static)) -> bool {
        let Some(keys) = self.exception.take() else {
            return false;
        };
        if let Some(key) = keys.type_key.as_deref() {
            let mut head = Prefix::<96>::default();
            let _ = write!(head, "{value:?}");
            if let Some(type_name) = leading_type_name(&head) {
                if self.result.is_ok() && self.member(key, "").is_some() {
                    self.result = write_quoted(self.out, type_name);
                }
            }
        }
        if let Some(key) = keys.message_key.as_deref() {
            if self.result.is_ok() && self.member(key, "").is_some() {
                self.result = write_display_string(self.out, value);
            }
        }
        keys.replaces_field
    }

    /// `"<name>.chain":["source",…]`: the error's sources, outermost first,
    /// at most [`MAX_ERROR_SOURCES`].
    fn write_chain(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.last_chain_depth = None;
        let Some(first) = value.source() else {
            return;
        };
        if self.result.is_err() {
            return;
        }
        let Some(depth) = self.member(field.name(), CHAIN_SUFFIX) else {
            return;
        };
        self.last_chain_depth = Some(depth);
        self.result = (|| {
            self.out.write_str("[")?;
            let mut source = Some(first);
            let mut written = 0;
            while let Some(error) = source {
                if written == MAX_ERROR_SOURCES {
                    break;
                }
                if written > 0 {
                    self.out.write_str(",")?;
                }
                write_display_string(self.out, error)?;
                written += 1;
                source = error.source();
            }
            self.out.write_str("]")
        })();
    }
}

/// The type name a `Debug` output starts with (`MyError { .. }`,
/// `Timeout`, `io::ErrorKind(..)`), or `None` when it starts with anything
/// else (a quoted string, a sentence).
fn leading_type_name<const N: usize>(head: &Prefix<N>) -> Option<&str> {
    let text = head.as_str();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let (name, rest) = text.split_at(end);
    let first = name.chars().next()?;
    let whole = !(rest.is_empty() && head.overflowed);
    let follows = rest.is_empty() || rest.starts_with('(') || rest.starts_with(" {");
    (first.is_ascii_alphabetic() && whole && follows && !name.ends_with(':')).then_some(name)
}

/// The first `N` bytes written to it; later writes fail, which stops a
/// `Debug` implementation early.
pub(crate) struct Prefix<const N: usize> {
    bytes: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> Default for Prefix<N> {
    fn default() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
            overflowed: false,
        }
    }
}

impl<const N: usize> Prefix<N> {
    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> Write for Prefix<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > N {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
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
        if self.result.is_err() {
            return;
        }
        let replaced = self.write_exception(value);
        if replaced {
            self.last_depth = None;
        } else if self.begin(field) {
            self.result = write_display_string(self.out, value);
        }
        self.write_chain(field, value);
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
        assert_eq!(keys.claim("a"), Some(0));
        assert_eq!(keys.claim("message"), Some(1)); // fields.message
                                                    // "fields.message" is taken by the rename: "fields.fields.message".
        assert_eq!(keys.claim("fields.message"), Some(1));
        assert_eq!(keys.claim("a"), Some(1)); // fields.a
        assert_eq!(keys.claim("fields.a"), Some(1)); // fields.fields.a
        assert_eq!(keys.claim("fields.fields.a"), Some(1)); // fields.fields.fields.a
        assert_eq!(keys.claim("a"), Some(4)); // every shorter form is taken
        for i in 0..40 {
            // Spills past the inline capacity.
            let name: &'static str = Box::leak(format!("k{i}").into_boxed_str());
            assert_eq!(keys.claim(name), Some(0));
        }
        assert_eq!(keys.claim("k39"), Some(1));
        assert_eq!(keys.dropped(), 0);
    }

    #[test]
    fn suffixed_keys_compare_by_their_text() {
        let mut keys = KeySet::<4>::new(&[]);
        assert_eq!(keys.claim("error.chain"), Some(0));
        assert_eq!(keys.claim_suffixed("error", CHAIN_SUFFIX), Some(1)); // fields.error.chain
        assert_eq!(keys.claim("fields.error.chain"), Some(1)); // fields.fields.error.chain
        assert_eq!(keys.claim_suffixed("error", CHAIN_SUFFIX), Some(3));
        assert_eq!(keys.claim("error"), Some(0));
    }

    #[test]
    fn renaming_and_claims_are_bounded_and_refusals_counted() {
        let mut keys = KeySet::<4>::new(&[]);
        for depth in 0..=MAX_RENAME_DEPTH {
            assert_eq!(keys.claim("k"), Some(depth));
        }
        assert_eq!(keys.claim("k"), None);
        assert_eq!(keys.dropped(), 1);
        let mut keys = KeySet::<4>::new(&[]);
        for i in 0..usize::from(MAX_CLAIMS) {
            let name: &'static str = Box::leak(format!("k{i}").into_boxed_str());
            assert_eq!(keys.claim(name), Some(0));
        }
        assert_eq!(keys.claim("other"), None);
        assert_eq!(keys.dropped(), 1);
    }

    #[test]
    fn type_names_come_from_the_start_of_debug_output() {
        let name = |debug: &str| {
            let mut head = Prefix::<24>::default();
            for piece in debug.split_inclusive(' ') {
                let _ = head.write_str(piece);
            }
            leading_type_name(&head).map(str::to_owned)
        };
        assert_eq!(name("MyError { code: 3 }").as_deref(), Some("MyError"));
        assert_eq!(name("Timeout").as_deref(), Some("Timeout"));
        assert_eq!(name("io::Kind(3)").as_deref(), Some("io::Kind"));
        assert_eq!(name("\"text\"").as_deref(), None);
        assert_eq!(name("connection refused").as_deref(), None);
        // Cut before the name ends: not a name.
        assert_eq!(name("AVeryLongTypeNameThatOverflows").as_deref(), None);
        assert_eq!(
            name("Partial { with: a, long: tail }").as_deref(),
            Some("Partial")
        );
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
