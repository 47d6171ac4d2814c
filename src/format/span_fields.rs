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
#[derive(Clone, Copy, Default)]
struct Member {
    /// The field's position in its field set: a field recorded again
    /// replaces exactly its own member, whatever key it was given.
    index: usize,
    name: &'static str,
    depth: u8,
    /// The depth of the `<name>.chain` key an error field also claimed.
    chain: Option<u8>,
    start: u32,
    end: u32,
}

/// A span's name and fields as JSON object members, ready to splice.
pub(crate) struct SpanFields {
    name: &'static str,
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
    pub(crate) fn new(attrs: &Attributes<'_>) -> Self {
        let field_count = attrs.fields().len();
        let mut this = Self {
            name: attrs.metadata().name(),
            clean_name: !super::escape::may_need_escape(attrs.metadata().name().as_bytes()),
            // Typical fields fit inline: creating a span allocates nothing
            // for them.
            members: MemberText::default(),
            inline: [Member::default(); INLINE_FIELDS],
            len: 0,
            spill: Vec::new(),
        };
        if field_count > 0 {
            // A new span has no members yet: one key set serves every field,
            // and most field sets need no checking at all.
            let mut keys = if plain_names(attrs.metadata().fields()) {
                KeySet::<SPAN_KEYS>::unchecked_clean()
            } else {
                KeySet::<SPAN_KEYS>::new(RESERVED)
            };
            attrs.record(&mut Recorder {
                fields: &mut this,
                keys: Some(&mut keys),
            });
        }
        this
    }

    /// Adds recorded values; a field recorded again replaces its old value.
    pub(crate) fn record(&mut self, values: &Record<'_>) {
        values.record(&mut Recorder {
            fields: self,
            keys: None,
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
            out.write_str(self.name)?;
        } else {
            write_escaped(out, self.name)?;
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
        let Some(at) = self.index().position(|m| m.index == index) else {
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
}

impl Write for MemberText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self {
            Self::Inline { bytes, len } => {
                let at = usize::from(*len);
                let end = at + s.len();
                if end <= INLINE_TEXT {
                    bytes[at..end].copy_from_slice(s.as_bytes());
                    // `end` ≤ 96 fits a `u8`.
                    *len = u8::try_from(end).unwrap_or(u8::MAX);
                } else {
                    let mut text = String::with_capacity(end.max(2 * INLINE_TEXT));
                    text.push_str(self.as_str());
                    text.push_str(s);
                    *self = Self::Heap(text);
                }
                Ok(())
            }
            Self::Heap(text) => text.write_str(s),
        }
    }
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
    /// Shared across the fields of a new span; `None` when recording into an
    /// existing span, whose keys are rebuilt per field.
    keys: Option<&'a mut KeySet<'k, SPAN_KEYS>>,
}

impl Recorder<'_, '_> {
    fn member(
        &mut self,
        field: &Field,
        record: impl FnOnce(&mut JsonFields<'_, '_, MemberText, SPAN_KEYS>),
    ) {
        let mut rebuilt;
        let keys = if let Some(keys) = self.keys.as_deref_mut() {
            keys
        } else {
            self.fields.remove_existing(field.index());
            rebuilt = KeySet::<SPAN_KEYS>::new(RESERVED);
            for member in self.fields.index() {
                rebuilt.insert_claimed(member.name, member.depth);
                if let Some(depth) = member.chain {
                    rebuilt.insert_suffixed(member.name, depth, CHAIN_SUFFIX);
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
        ) {
            (Ok(()), Some(depth), Ok(start), Ok(end)) => fields.push(Member {
                index: field.index(),
                name: field.name(),
                depth,
                chain,
                start,
                end,
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
        self.member(field, |v| v.record_i64(field, value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |v| v.record_u64(field, value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |v| v.record_i128(field, value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |v| v.record_u128(field, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |v| v.record_bool(field, value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |v| v.record_str(field, value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |v| v.record_error(field, value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |v| v.record_debug(field, value));
    }
}
