//! A span's fields rendered to JSON once, when they are recorded.

use std::borrow::Cow;
use std::fmt::{self, Write};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Record};

use super::escape::write_escaped;
use super::fields::{JsonFields, KeySet, Pass};

/// The key every span object starts with; a span field of that name is
/// renamed rather than duplicated.
const RESERVED: &[Cow<'static, str>] = &[Cow::Borrowed("name")];

/// A span's name and fields as JSON object members, ready to splice.
pub(crate) struct SpanFields {
    /// `"name":"…"`, escaped.
    name: String,
    /// `,"key":value` for each recorded field, in recording order.
    members: String,
    /// For each member: field name, rename depth, and its byte range in
    /// `members` (leading comma included), so re-recording replaces it.
    index: Vec<(&'static str, u8, usize, usize)>,
}

impl SpanFields {
    pub(crate) fn new(attrs: &Attributes<'_>) -> Self {
        let mut name = String::with_capacity(attrs.metadata().name().len() + 9);
        name.push_str("\"name\":\"");
        let _ = write_escaped(&mut name, attrs.metadata().name());
        name.push('"');
        let mut this = Self {
            name,
            members: String::new(),
            index: Vec::new(),
        };
        if !attrs.fields().is_empty() {
            attrs.record(&mut Recorder { fields: &mut this });
        }
        this
    }

    /// Adds recorded values; a field recorded again replaces its old value.
    pub(crate) fn record(&mut self, values: &Record<'_>) {
        values.record(&mut Recorder { fields: self });
    }

    /// Writes `"name":"…",…fields` (no braces).
    pub(crate) fn write_members<W: Write + ?Sized>(&self, out: &mut W) -> fmt::Result {
        out.write_str(&self.name)?;
        out.write_str(&self.members)
    }


    fn remove_existing(&mut self, name: &str) {
        if let Some(at) = self.index.iter().position(|(n, d, _, _)| *d == 0 && *n == name) {
            let (_, _, start, end) = self.index.remove(at);
            self.members.replace_range(start..end, "");
            let removed = end - start;
            for entry in &mut self.index[at..] {
                entry.2 -= removed;
                entry.3 -= removed;
            }
        }
    }
}

/// Renders each recorded field as one member, keeping the index current.
struct Recorder<'a> {
    fields: &'a mut SpanFields,
}

macro_rules! record_member {
    ($self:ident, $field:ident, |$visitor:ident| $record:expr) => {{
        let fields = &mut *$self.fields;
        fields.remove_existing($field.name());
        let mut keys = KeySet::new(RESERVED);
        for &(name, depth, _, _) in &fields.index {
            keys.insert_claimed(name, depth);
        }
        let start = fields.members.len();
        let mut $visitor = JsonFields::new(&mut fields.members, &mut keys, Pass::All, ",", ",");
        $record;
        let (result, depth) = ($visitor.result, $visitor.last_depth);
        if result.is_ok() {
            let end = fields.members.len();
            fields.index.push(($field.name(), depth, start, end));
        } else {
            fields.members.truncate(start);
        }
    }};
}

impl Visit for Recorder<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        record_member!(self, field, |v| v.record_f64(field, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        record_member!(self, field, |v| v.record_i64(field, value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        record_member!(self, field, |v| v.record_u64(field, value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        record_member!(self, field, |v| v.record_i128(field, value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        record_member!(self, field, |v| v.record_u128(field, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        record_member!(self, field, |v| v.record_bool(field, value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        record_member!(self, field, |v| v.record_str(field, value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        record_member!(self, field, |v| v.record_error(field, value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        record_member!(self, field, |v| v.record_debug(field, value));
    }
}
