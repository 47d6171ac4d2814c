//! A span's fields rendered to JSON once, when they are recorded.

use std::borrow::Cow;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Record};

use super::escape::write_escaped;
use super::fields::{JsonFields, KeySet, Pass, CHAIN_SUFFIX};

/// The key every span object starts with; a span field of that name is
/// renamed rather than duplicated.
const RESERVED: &[Cow<'static, str>] = &[Cow::Borrowed("name")];

/// Keys checked inline while rendering a span's fields; more spill.
const SPAN_KEYS: usize = 4;

/// Fields whose positions are kept inline; more spill to the heap.
const INLINE_FIELDS: usize = 4;

/// Where one field's member sits in [`SpanFields::members`].
///
/// Small (12 bytes): a span's data is moved a few times while it is created.
#[derive(Clone, Copy, Default)]
struct Member {
    start: u32,
    end: u32,
    /// The field's position in its field set (at most 32 fields): a field
    /// recorded again replaces exactly its own member, whatever key it was
    /// given. Its name is the field set's.
    index: u8,
    depth: u8,
    /// The depth of the `<name>.chain` key an error field also claimed.
    chain: Option<u8>,
}

/// A span's name and fields as JSON object members, ready to splice.
pub(crate) struct SpanFields {
    /// The span's callsite: its name, and its field set (the members' names).
    metadata: &'static tracing_core::Metadata<'static>,
    /// `name` needs no escaping (decided once, at creation).
    clean_name: bool,
    /// `,"key":value` for each recorded field, in recording order.
    members: MemberText,
    /// Each member's key and byte range (leading comma included), so a field
    /// recorded again replaces its value.
    inline: [Member; INLINE_FIELDS],
    len: usize,
    spill: Vec<Member>,
}

impl SpanFields {
    /// A span's fields before its attributes are recorded into it with
    /// [`SpanFields::record_new`]: the span's data is built around this
    /// and the fields rendered in place, since a span's data is a few
    /// hundred bytes and each move of it is a copy.
    pub(crate) fn unrecorded(metadata: &'static tracing_core::Metadata<'static>) -> Self {
        Self {
            metadata,
            clean_name: false,
            // Typical fields fit inline: creating a span allocates nothing
            // for them.
            members: MemberText::default(),
            inline: [Member::default(); INLINE_FIELDS],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Renders a new span's attributes (once, into an
    /// [`unrecorded`](SpanFields::unrecorded) value of its callsite).
    #[inline]
    pub(crate) fn record_new(&mut self, attrs: &Attributes<'_>) {
        self.record_attributes(attrs, true);
    }

    #[cfg(test)]
    fn with_fast_path(attrs: &Attributes<'_>, fast: bool) -> Self {
        let mut this = Self::unrecorded(attrs.metadata());
        this.record_attributes(attrs, fast);
        this
    }

    fn record_attributes(&mut self, attrs: &Attributes<'_>, fast: bool) {
        let (clean_name, plain) = span_facts(attrs.metadata());
        self.clean_name = clean_name;
        if !attrs.fields().is_empty() {
            // A new span has no members yet: one key set serves every field,
            // and most field sets need no checking at all.
            let plain = fast && plain;
            let mut keys = None;
            attrs.record(&mut Recorder {
                fields: self,
                keys: Some(&mut keys),
                plain,
            });
        }
    }

    /// Adds recorded values; a field recorded again replaces its old value.
    pub(crate) fn record(&mut self, values: &Record<'_>) {
        values.record(&mut Recorder {
            fields: self,
            keys: None,
            plain: false,
        });
        // After the change, while the caller still holds the span's write
        // lock: a span list rendered from the old fields carries an older
        // generation and is rendered again.
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }

    /// Writes `"name":"…",…fields` (no braces).
    pub(crate) fn write_members<W: Write + ?Sized>(&self, out: &mut W) -> fmt::Result {
        out.write_str("\"name\":\"")?;
        if self.clean_name {
            out.write_str(self.metadata.name())?;
        } else {
            write_escaped(out, self.metadata.name())?;
        }
        out.write_str("\"")?;
        out.write_str(self.members.as_str())
    }

    fn index(&self) -> impl Iterator<Item = &Member> {
        self.inline[..self.len].iter().chain(&self.spill)
    }

    fn push(&mut self, member: Member) {
        if self.len < INLINE_FIELDS {
            self.inline[self.len] = member;
            self.len += 1;
        } else {
            self.spill.push(member);
        }
    }

    fn remove_existing(&mut self, index: usize) {
        let Some(at) = self.index().position(|m| usize::from(m.index) == index) else {
            return;
        };
        let mut all: Vec<Member> = self.index().copied().collect();
        let removed = all.remove(at);
        let (start, end) = (removed.start as usize, removed.end as usize);
        self.members.remove(start..end);
        let shift = removed.end - removed.start;
        for member in &mut all[at..] {
            member.start -= shift;
            member.end -= shift;
        }
        self.len = 0;
        self.spill.clear();
        for member in all {
            self.push(member);
        }
    }
}

/// Counts changes to any span's fields (see [`generation`]).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Changes whenever some span's fields change after its creation, so text
/// rendered from span fields can be cached until then (the span list).
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Bytes of rendered members kept inside the span's own data.
const INLINE_TEXT: usize = 96;

/// A span's rendered members: inline up to [`INLINE_TEXT`] bytes (typical
/// span fields: `,"method":"GET","path":"/orders/42"`), so that creating a
/// span allocates nothing for them; longer text moves to a `String`.
///
/// Only whole `&str`s are appended, and text is only cut at lengths read
/// between appends (member boundaries), so the bytes are always UTF-8.
pub(crate) enum MemberText {
    Inline { bytes: [u8; INLINE_TEXT], len: u8 },
    Heap(String),
}

impl Default for MemberText {
    fn default() -> Self {
        Self::Inline {
            bytes: [0; INLINE_TEXT],
            len: 0,
        }
    }
}

impl MemberText {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Inline { bytes, len } => {
                let bytes = &bytes[..usize::from(*len)];
                debug_assert!(std::str::from_utf8(bytes).is_ok());
                // SAFETY: see the type's invariant: only whole `&str`s are
                // appended and cuts fall between them, so `bytes` is UTF-8.
                #[allow(unsafe_code)]
                unsafe {
                    std::str::from_utf8_unchecked(bytes)
                }
            }
            Self::Heap(text) => text,
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Inline { len, .. } => usize::from(*len),
            Self::Heap(text) => text.len(),
        }
    }

    /// Cuts the text back to `len` bytes (a length read earlier).
    fn truncate(&mut self, new_len: usize) {
        match self {
            Self::Inline { len, .. } => *len = (*len).min(u8::try_from(new_len).unwrap_or(u8::MAX)),
            Self::Heap(text) => text.truncate(new_len),
        }
    }

    /// Removes one member's bytes (a range read earlier).
    fn remove(&mut self, range: std::ops::Range<usize>) {
        match self {
            Self::Inline { bytes, len } => {
                let end = usize::from(*len);
                if range.start <= range.end && range.end <= end {
                    bytes.copy_within(range.end..end, range.start);
                    *len -= u8::try_from(range.end - range.start).unwrap_or(*len);
                }
            }
            Self::Heap(text) => {
                if range.start <= range.end && range.end <= text.len() {
                    text.replace_range(range, "");
                }
            }
        }
    }

    /// Appends each of `parts`, in order (one bounds check for all of them
    /// while the text stays inline).
    fn append(&mut self, parts: &[&str]) {
        match self {
            Self::Inline { bytes, len } => {
                let mut at = usize::from(*len);
                let end = at + parts.iter().map(|p| p.len()).sum::<usize>();
                if end <= INLINE_TEXT {
                    for part in parts {
                        bytes[at..at + part.len()].copy_from_slice(part.as_bytes());
                        at += part.len();
                    }
                    // `end` ≤ 96 fits a `u8`.
                    *len = u8::try_from(end).unwrap_or(u8::MAX);
                } else {
                    let mut text = String::with_capacity(end.max(2 * INLINE_TEXT));
                    text.push_str(self.as_str());
                    for part in parts {
                        text.push_str(part);
                    }
                    *self = Self::Heap(text);
                }
            }
            Self::Heap(text) => {
                for part in parts {
                    text.push_str(part);
                }
            }
        }
    }

    /// Appends `,"name":value`, with `value` between quotes when `quoted`
    /// (`name` and `value` need no escaping). The common case, a member
    /// that fits the inline text, is written by `Recorder::plain_member`
    /// itself.
    fn append_member(&mut self, name: &str, quoted: bool, value: &str) {
        let quote = if quoted { "\"" } else { "" };
        self.append(&[",\"", name, "\":", quote, value, quote]);
    }
}

/// Writes `,"name":value` (`value` between quotes when `quoted`) into `out`,
/// which is exactly that long.
#[inline]
fn write_member(out: &mut [u8], name: &[u8], quoted: bool, value: &[u8]) {
    let Some((head, rest)) = out.split_first_chunk_mut::<2>() else {
        return;
    };
    *head = *b",\"";
    let (key, rest) = rest.split_at_mut(name.len().min(rest.len()));
    copy_short(key, name);
    let Some((colon, rest)) = rest.split_first_chunk_mut::<2>() else {
        return;
    };
    *colon = *b"\":";
    if quoted {
        if let Some((open, rest)) = rest.split_first_mut() {
            *open = b'"';
            if let Some((close, inner)) = rest.split_last_mut() {
                *close = b'"';
                copy_short(inner, value);
            }
        }
    } else {
        copy_short(rest, value);
    }
}

/// Copies `src` into `dst` (of the same length). Field names and values
/// are usually a few bytes: those are copied with fixed-size moves (two
/// overlapping ones) rather than a call to `memcpy`, which costs about 30
/// instructions a call, two per member.
#[inline]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return;
    }
    if (8..=16).contains(&n) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if (4..8).contains(&n) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if (2..4).contains(&n) {
        dst[..2].copy_from_slice(&src[..2]);
        dst[n - 2..].copy_from_slice(&src[n - 2..]);
    } else if n == 1 {
        dst[0] = src[0];
    } else {
        dst.copy_from_slice(src);
    }
}

impl Write for MemberText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.append(&[s]);
        Ok(())
    }
}

/// Slots of the per-thread [`SPAN_FACTS`] memo.
const FACT_SLOTS: usize = 32;

thread_local! {
    /// Per thread, direct-mapped by callsite address: the callsite last seen
    /// in each slot, with its facts in the low bits (a `Metadata` is at
    /// least 8-byte aligned): bit 0 the name needs no escaping, bit 1 the
    /// field names are plain, bit 2 the slot is filled.
    static SPAN_FACTS: [std::cell::Cell<usize>; FACT_SLOTS] =
        const { [const { std::cell::Cell::new(0) }; FACT_SLOTS] };
}

/// Whether a span callsite's name needs no escaping, and whether its field
/// names are [`plain_names`]: decided once per callsite per thread.
fn span_facts(metadata: &'static tracing_core::Metadata<'static>) -> (bool, bool) {
    let address = std::ptr::from_ref(metadata) as usize;
    let slot = (address >> 4) % FACT_SLOTS;
    let decide = || {
        (
            !super::escape::may_need_escape(metadata.name().as_bytes()),
            plain_names(metadata.fields()),
        )
    };
    if address & 0b111 != 0 {
        return decide();
    }
    SPAN_FACTS
        .try_with(|memo| {
            let seen = memo[slot].get();
            if seen & !0b111 == address && seen & 0b100 != 0 {
                return (seen & 0b001 != 0, seen & 0b010 != 0);
            }
            let (clean, plain) = decide();
            memo[slot].set(address | 0b100 | usize::from(plain) << 1 | usize::from(clean));
            (clean, plain)
        })
        .unwrap_or_else(|_| decide())
}

/// Whether a field set's names can be written as they are: distinct, not
/// `name`, not looking like a renamed key or an error's chain key, and with
/// nothing to escape.
fn plain_names(fields: &tracing_core::field::FieldSet) -> bool {
    let mut names = fields.iter().map(|f| f.name());
    let mut seen: [&str; SPAN_KEYS] = [""; SPAN_KEYS];
    for (i, name) in (&mut names).enumerate() {
        if i >= SPAN_KEYS
            || name == "name"
            || name.starts_with(super::fields::RENAME_PREFIX)
            || name.ends_with(CHAIN_SUFFIX)
            || super::escape::may_need_escape(name.as_bytes())
            || seen[..i].contains(&name)
        {
            return false;
        }
        seen[i] = name;
    }
    true
}

/// Renders each recorded field as one member, keeping the index current.
struct Recorder<'a, 'k> {
    fields: &'a mut SpanFields,
    /// Shared across the fields of a new span, made by the first field
    /// that takes the general path (the plain path needs none: most spans
    /// never make one); `None` when recording into an existing span, whose
    /// keys are rebuilt per field.
    keys: Option<&'a mut Option<KeySet<'k, SPAN_KEYS>>>,
    /// A new span whose field names need no checking or escaping
    /// ([`plain_names`]): a field with a number, a boolean or a string with
    /// nothing to escape is appended as `,"name":value` in one go.
    plain: bool,
}

impl Recorder<'_, '_> {
    /// Appends `,"name":` and `value` (between quotes when `quoted`) as one
    /// member; only for a [`Recorder::plain`] recorder.
    fn plain_member(&mut self, field: &Field, quoted: bool, value: &str) {
        let fields = &mut *self.fields;
        // The usual case, a few short fields: the member goes straight into
        // the inline text and the inline index (one bounds check for the
        // bytes, no length conversions: both fit 96).
        if let (MemberText::Inline { bytes, len }, Some(slot), Ok(index)) = (
            &mut fields.members,
            fields.inline.get_mut(fields.len),
            u8::try_from(field.index()),
        ) {
            let name = field.name().as_bytes();
            let at = *len;
            let quote = usize::from(quoted);
            let size = name.len() + value.len() + 4 + 2 * quote;
            if let Some(out) = bytes.get_mut(usize::from(at)..usize::from(at) + size) {
                write_member(out, name, quoted, value.as_bytes());
                // `at + size` ≤ 96.
                #[allow(clippy::cast_possible_truncation)]
                let end = at + size as u8;
                *len = end;
                *slot = Member {
                    start: u32::from(at),
                    end: u32::from(end),
                    index,
                    depth: 0,
                    chain: None,
                };
                fields.len += 1;
                return;
            }
        }
        let start = fields.members.len();
        fields.members.append_member(field.name(), quoted, value);
        match (
            u32::try_from(start),
            u32::try_from(fields.members.len()),
            u8::try_from(field.index()),
        ) {
            (Ok(start), Ok(end), Ok(index)) => fields.push(Member {
                start,
                end,
                index,
                depth: 0,
                chain: None,
            }),
            _ => fields.members.truncate(start),
        }
    }

    fn member(
        &mut self,
        field: &Field,
        record: impl FnOnce(&mut JsonFields<'_, '_, MemberText, SPAN_KEYS>),
    ) {
        let mut rebuilt;
        let plain = self.plain;
        let keys = if let Some(keys) = self.keys.as_deref_mut() {
            // A plain field set has nothing to check: every key is its
            // field's name.
            keys.get_or_insert_with(|| {
                if plain {
                    KeySet::<SPAN_KEYS>::unchecked_clean()
                } else {
                    KeySet::<SPAN_KEYS>::new(RESERVED)
                }
            })
        } else {
            self.fields.remove_existing(field.index());
            rebuilt = KeySet::<SPAN_KEYS>::new(RESERVED);
            let names = self.fields.metadata.fields();
            for member in self.fields.index() {
                let Some(name) = names.iter().nth(usize::from(member.index)) else {
                    continue;
                };
                rebuilt.insert_claimed(name.name(), member.depth);
                if let Some(depth) = member.chain {
                    rebuilt.insert_suffixed(name.name(), depth, CHAIN_SUFFIX);
                }
            }
            &mut rebuilt
        };
        let fields = &mut *self.fields;
        let start = fields.members.len();
        let mut visitor = JsonFields::new(&mut fields.members, keys, Pass::All, ",", ",");
        record(&mut visitor);
        let (result, depth, chain) = (visitor.result, visitor.last_depth, visitor.last_chain_depth);
        // A span's field set has at most 32 fields, so a free key always
        // exists within the rename bound: `depth` is `None` only on error.
        match (
            result,
            depth,
            u32::try_from(start),
            u32::try_from(fields.members.len()),
            u8::try_from(field.index()),
        ) {
            (Ok(()), Some(depth), Ok(start), Ok(end), Ok(index)) => fields.push(Member {
                start,
                end,
                index,
                depth,
                chain,
            }),
            _ => fields.members.truncate(start),
        }
    }
}

impl Visit for Recorder<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |v| v.record_f64(field, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.plain {
            self.plain_member(field, false, itoa::Buffer::new().format(value));
        } else {
            self.member(field, |v| v.record_i64(field, value));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.plain {
            self.plain_member(field, false, itoa::Buffer::new().format(value));
        } else {
            self.member(field, |v| v.record_u64(field, value));
        }
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |v| v.record_i128(field, value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |v| v.record_u128(field, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.plain {
            self.plain_member(field, false, if value { "true" } else { "false" });
        } else {
            self.member(field, |v| v.record_bool(field, value));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.plain && !super::escape::may_need_escape(value.as_bytes()) {
            self.plain_member(field, true, value);
        } else {
            self.member(field, |v| v.record_str(field, value));
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |v| v.record_error(field, value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |v| v.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing_core::span::{Attributes, Id, Record};
    use tracing_core::{Event, Metadata, Subscriber};

    use super::SpanFields;

    /// Renders each new span's fields with and without the fast path.
    #[derive(Default)]
    struct BothPaths(Mutex<Vec<(String, String)>>);

    impl Subscriber for BothPaths {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let render = |fields: SpanFields| {
                let mut text = String::new();
                fields.write_members(&mut text).unwrap();
                text
            };
            let fast = render(SpanFields::with_fast_path(attrs, true));
            let general = render(SpanFields::with_fast_path(attrs, false));
            self.0.lock().unwrap().push((fast, general));
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn the_fast_path_renders_exactly_what_the_general_one_does() {
        let both = std::sync::Arc::new(BothPaths::default());
        let long = "x".repeat(150);
        tracing::subscriber::with_default(both.clone(), || {
            let _ = tracing::info_span!("numbers", a = 1_i64, b = -5, c = u64::MAX, d = i64::MIN);
            let _ = tracing::info_span!("flags", yes = true, no = false);
            let _ = tracing::info_span!("strings", plain = "GET", path = "/orders/42");
            let _ =
                tracing::info_span!("escaped", quote = "say \"hi\"", nl = "a\nb", ctl = "\u{1}");
            let _ = tracing::info_span!("unicode", text = "caf\u{e9} \u{1F600}");
            let _ = tracing::info_span!(
                "long",
                first = long.as_str(),
                second = 7,
                third = long.as_str()
            );
            let _ = tracing::info_span!("mixed", n = 1, f = 1.5, dbg = ?vec![1, 2], s = "ok");
            let _ = tracing::info_span!("empty", e = "");
            let _ = tracing::info_span!("declared", later = tracing::field::Empty, now = 3);
        });
        let rendered = both.0.lock().unwrap();
        assert_eq!(rendered.len(), 9);
        for (fast, general) in rendered.iter() {
            assert_eq!(fast, general);
        }
        assert_eq!(
            rendered[0].0,
            r#""name":"numbers","a":1,"b":-5,"c":18446744073709551615,"d":-9223372036854775808"#
        );
        assert_eq!(
            rendered[2].0,
            r#""name":"strings","plain":"GET","path":"/orders/42""#
        );
        assert_eq!(
            rendered[3].0,
            r#""name":"escaped","quote":"say \"hi\"","nl":"a\nb","ctl":"\u0001""#
        );
        assert_eq!(
            rendered[5].0,
            format!(r#""name":"long","first":"{long}","second":7,"third":"{long}""#)
        );
        assert_eq!(rendered[8].0, r#""name":"declared","now":3"#);
    }
}
