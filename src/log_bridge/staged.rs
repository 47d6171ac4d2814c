//! The record being forwarded on this thread — its target, location and
//! key-values, the key-values pre-rendered as JSON — and the helpers
//! formatters use to write a forwarded event.

use std::borrow::Cow;
use std::cell::RefCell;
use std::error::Error;
use std::fmt::{self, Write};
use std::ops::Range;

use log::kv::{self, Key, Value, VisitSource, VisitValue};

use crate::format::baggage::BaggageFields;
use tracing_core::field::{Field, Visit};
use tracing_core::Event;

use super::callsite::TARGET_FIELD;
use crate::format::escape::{may_need_escape, write_escaped, write_quoted, Escaping};
use crate::format::fields::{write_display_string, write_f64, write_key, JsonFields, KeySet, Pass};

/// A buffer that grew past this is freed after use rather than kept, so one
/// huge record does not pin its memory to the thread forever.
const RETAINED_CAPACITY: usize = 16 * 1024;

/// The location keys, bare and as written (`"name":`).
const MODULE_PATH_KEY: (&str, &str) = ("log.module_path", "\"log.module_path\":");
const FILE_KEY: (&str, &str) = ("log.file", "\"log.file\":");
const LINE_KEY: (&str, &str) = ("log.line", "\"log.line\":");

/// The location members (`"log.module_path":…,"log.file":…,"log.line":…`) of
/// the last few call sites, rendered once: a call site logs from one place,
/// so its escaped location text never changes. Only records whose file and
/// module path are `'static` (every `log!` macro call) are cached, keyed by
/// those strings' addresses.
#[derive(Default)]
struct LocationCache {
    text: String,
    entries: Vec<(LocationKey, Range<usize>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct LocationKey {
    file: (usize, usize),
    module_path: Option<(usize, usize)>,
    line: Option<u32>,
    /// The module path is left out when it equals the target.
    module_path_written: bool,
}

const CACHED_CALL_SITES: usize = 32;

impl LocationCache {
    /// The rendered members for `record`'s call site, rendering them on a
    /// miss; `None` for a record without a static file.
    fn lookup(&mut self, record: &log::Record<'_>) -> Option<Range<usize>> {
        let file = record.file_static()?;
        let module_path = record.module_path_static();
        let key = LocationKey {
            file: (file.as_ptr() as usize, file.len()),
            module_path: module_path.map(|m| (m.as_ptr() as usize, m.len())),
            line: record.line(),
            module_path_written: module_path.is_some_and(|m| m != record.target()),
        };
        if let Some((_, range)) = self.entries.iter().find(|(k, _)| *k == key) {
            return Some(range.clone());
        }
        if self.entries.len() >= CACHED_CALL_SITES || self.text.len() > RETAINED_CAPACITY {
            // Start over rather than track ages: a thread cycling through
            // more call sites than this pays one render per record.
            self.entries.clear();
            self.text.clear();
        }
        let start = self.text.len();
        let mut first = true;
        let mut member = |text: &mut String, key: &str| {
            if !first {
                text.push(',');
            }
            first = false;
            text.push_str(key);
        };
        if let (true, Some(path)) = (key.module_path_written, module_path) {
            member(&mut self.text, MODULE_PATH_KEY.1);
            let _ = write_quoted(&mut self.text, path);
        }
        member(&mut self.text, FILE_KEY.1);
        let _ = write_quoted(&mut self.text, file);
        if let Some(line) = key.line {
            member(&mut self.text, LINE_KEY.1);
            self.text.push_str(itoa::Buffer::new().format(line));
        }
        let range = start..self.text.len();
        self.entries.push((key, range.clone()));
        Some(range)
    }
}

/// The record being forwarded, copied into one reused buffer.
#[derive(Default)]
pub(crate) struct StagedRecord {
    /// Set from staging until the event has been dispatched: formatters fall
    /// back to the event's own fields otherwise.
    active: bool,
    text: String,
    target: Range<usize>,
    /// The message, already escaped for a JSON string.
    message: Range<usize>,
    module_path: Option<Range<usize>>,
    file: Option<Range<usize>>,
    line: Option<u32>,
    /// The location members, pre-rendered, when the record's call site is
    /// in [`LocationCache`] (a range of its text); the file and module path
    /// are then not copied, their `'static` originals are kept instead.
    location: Option<Range<usize>>,
    static_file: Option<&'static str>,
    static_module_path: Option<&'static str>,
    /// Rendered location members of recent call sites.
    cache: LocationCache,
    /// Key-values: `(key_start, key_end, value_end)`, the JSON value text
    /// starting where its key ends.
    entries: Vec<(usize, usize, usize)>,
}

thread_local! {
    static STAGED: RefCell<StagedRecord> = RefCell::new(StagedRecord::default());
}

impl StagedRecord {
    fn clear(&mut self) {
        if self.text.capacity() > RETAINED_CAPACITY {
            self.text = String::new();
        }
        if self.entries.capacity() > RETAINED_CAPACITY / 16 {
            self.entries = Vec::new();
        }
        self.active = false;
        self.text.clear();
        self.entries.clear();
        self.target = 0..0;
        self.message = 0..0;
        self.module_path = None;
        self.file = None;
        self.line = None;
        self.location = None;
        self.static_file = None;
        self.static_module_path = None;
    }

    fn push(&mut self, text: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(text);
        start..self.text.len()
    }

    fn stage(&mut self, record: &log::Record<'_>) {
        self.clear();
        self.target = self.push(record.target());
        self.line = record.line();
        self.location = self.cache.lookup(record);
        if self.location.is_some() {
            self.static_file = record.file_static();
            self.static_module_path = record.module_path_static();
        } else {
            self.module_path = record.module_path().map(|path| self.push(path));
            self.file = record.file().map(|file| self.push(file));
        }
        // Rendered here, escaped, so formatters copy it instead of visiting
        // the event's fields for it.
        let start = self.text.len();
        let _ = fmt::write(&mut Escaping(&mut self.text), *record.args());
        self.message = start..self.text.len();
        // A failing value keeps the pairs rendered before it.
        let _ = record.key_values().visit(self);
        self.active = true;
    }

    fn get(&self, range: Option<&Range<usize>>) -> Option<&str> {
        self.text.get(range?.clone())
    }

    fn target(&self) -> &str {
        self.get(Some(&self.target)).unwrap_or_default()
    }

    fn module_path(&self) -> Option<&str> {
        self.static_module_path
            .or_else(|| self.get(self.module_path.as_ref()))
    }

    fn file(&self) -> Option<&str> {
        self.static_file.or_else(|| self.get(self.file.as_ref()))
    }

    /// The staged `(key, JSON value)` pairs, in record order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .filter_map(|&(start, key_end, value_end)| {
                Some((
                    self.text.get(start..key_end)?,
                    self.text.get(key_end..value_end)?,
                ))
            })
    }
}

impl<'kvs> VisitSource<'kvs> for StagedRecord {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let start = self.text.len();
        self.text.push_str(key.as_str());
        let key_end = self.text.len();
        if let Err(error) = value.visit(JsonValue(&mut self.text)) {
            self.text.truncate(start);
            return Err(error);
        }
        self.entries.push((start, key_end, self.text.len()));
        Ok(())
    }
}

/// Renders one `log` value as JSON text.
struct JsonValue<'a>(&'a mut String);

impl JsonValue<'_> {
    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }
}

impl VisitValue<'_> for JsonValue<'_> {
    fn visit_any(&mut self, value: Value<'_>) -> Result<(), kv::Error> {
        Ok(write_display_string(self.0, &value)?)
    }

    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.raw("null");
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.raw(itoa::Buffer::new().format(value));
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.raw(itoa::Buffer::new().format(value));
        Ok(())
    }

    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        self.raw(itoa::Buffer::new().format(value));
        Ok(())
    }

    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        self.raw(itoa::Buffer::new().format(value));
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        Ok(write_f64(self.0, value)?)
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.raw(if value { "true" } else { "false" });
        Ok(())
    }

    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        Ok(write_quoted(self.0, value)?)
    }

    fn visit_char(&mut self, value: char) -> Result<(), kv::Error> {
        Ok(write_quoted(self.0, value.encode_utf8(&mut [0; 4]))?)
    }
}

/// Copies `record` (and renders its key-values) into this thread's buffer,
/// runs `f` (which dispatches the event), then clears the buffer.
///
/// The buffer is borrowed only while staging, never during `f`, so the
/// formatters can read it. If it is unavailable (the thread is exiting) the
/// formatters fall back to the event's fields, without key-values.
pub(crate) fn with_staged<R>(record: &log::Record<'_>, f: impl FnOnce() -> R) -> R {
    let staged = STAGED
        .try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut staged) => {
                staged.stage(record);
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false);
    let result = f();
    if staged {
        let _ = STAGED.try_with(|cell| {
            if let Ok(mut staged) = cell.try_borrow_mut() {
                staged.clear();
            }
        });
    }
    result
}

/// Runs `f` with the record being forwarded on this thread, if it is staged
/// and readable.
fn read_staged<R>(mut f: impl FnMut(Option<&StagedRecord>) -> R) -> R {
    let read = STAGED.try_with(|cell| {
        let staged = cell.try_borrow().ok();
        f(staged.as_deref().filter(|staged| staged.active))
    });
    match read {
        Ok(result) => result,
        Err(_) => f(None),
    }
}

/// Writes a forwarded event's location (`log.module_path` unless it equals
/// the target, `log.file`, `log.line`) and key-values as members of the JSON
/// object being written, with unique keys. Returns whether any member was
/// written, and how many were dropped (see [`KeySet`]: a record may have any
/// number of key-values, so the rename depth and the member count are
/// bounded).
pub(crate) fn write_json_fields<W: Write + ?Sized>(
    out: &mut W,
    event: &Event<'_>,
    (reserved, reserved_bits, location_keys_free): (&[Cow<'static, str>], u64, bool),
    opening: &str,
    baggage: Option<&BaggageFields>,
) -> Result<(bool, u32), fmt::Error> {
    read_staged(|staged| {
        let mut keys = KeySet::with_bits(reserved, reserved_bits);
        let Some(staged) = staged else {
            // Not staged: the event's own fields, without key-values.
            let mut fields = JsonFields::new(&mut *out, &mut keys, Pass::SkipMessage, opening, ",");
            event.record(&mut SkipLogTarget(&mut fields));
            let wrote_any = fields.wrote_any();
            fields.result?;
            if let Some(baggage) = baggage {
                baggage.write(out, &mut keys)?;
            }
            return Ok((wrote_any, keys.dropped()));
        };
        let mut members = Members {
            out: &mut *out,
            keys,
            // Trace keys are the only keys before the location keys.
            location_keys_free,
            opening,
            wrote_any: false,
        };
        let target = staged.target();
        let cached = staged
            .location
            .as_ref()
            .filter(|_| members.location_keys_free)
            .and_then(|range| staged.cache.text.get(range.clone()));
        if let Some(rendered) = cached {
            members.lead()?;
            members.out.write_str(rendered)?;
            if staged.module_path().is_some_and(|path| path != target) {
                members.keys.insert_claimed(MODULE_PATH_KEY.0, 0);
            }
            members.keys.insert_claimed(FILE_KEY.0, 0);
            if staged.line.is_some() {
                members.keys.insert_claimed(LINE_KEY.0, 0);
            }
        } else if let Some(path) = staged.module_path().filter(|path| *path != target) {
            if members.location_key(MODULE_PATH_KEY)? {
                write_quoted(members.out, path)?;
            }
        }
        if cached.is_none() {
            if let Some(file) = staged.file() {
                if members.location_key(FILE_KEY)? {
                    write_quoted(members.out, file)?;
                }
            }
            if let Some(line) = staged.line {
                if members.location_key(LINE_KEY)? {
                    members.out.write_str(itoa::Buffer::new().format(line))?;
                }
            }
        }
        for (name, value) in staged.pairs() {
            if members.key(name)? {
                members.out.write_str(value)?;
            }
        }
        // Allowlisted baggage (flattened placement only) after the record's
        // own keys, which keep their names.
        if let Some(baggage) = baggage {
            baggage.write(members.out, &mut members.keys)?;
        }
        Ok((members.wrote_any, members.keys.dropped()))
    })
}

/// Whether a reserved key (a trace key so named) could be a location key;
/// formatters compute it once per configuration.
pub(crate) fn location_key_reserved(reserved: &[Cow<'static, str>]) -> bool {
    reserved
        .iter()
        .any(|key| [MODULE_PATH_KEY.0, FILE_KEY.0, LINE_KEY.0].contains(&&**key))
}

/// Writes `"key":` members with unique keys after an opening.
struct Members<'o, 'k, W: ?Sized> {
    out: &'o mut W,
    keys: KeySet<'k>,
    location_keys_free: bool,
    opening: &'o str,
    wrote_any: bool,
}

impl<'k, W: Write + ?Sized> Members<'_, 'k, W> {
    fn lead(&mut self) -> fmt::Result {
        let lead = if self.wrote_any { "," } else { self.opening };
        self.wrote_any = true;
        self.out.write_str(lead)
    }

    /// Writes `"key":` for `name` under a free key; `false` (nothing
    /// written) when the key set dropped it.
    fn key(&mut self, name: &'k str) -> Result<bool, fmt::Error> {
        let Some(depth) = self.keys.claim(name) else {
            return Ok(false);
        };
        self.lead()?;
        if depth == 0 && !may_need_escape(name.as_bytes()) {
            self.out.write_str("\"")?;
            self.out.write_str(name)?;
            self.out.write_str("\":")?;
        } else {
            write_key(self.out, name, depth)?;
        }
        Ok(true)
    }

    /// A location key: written first, so only a reserved key (a trace key
    /// of that name) can collide with it.
    fn location_key(&mut self, (name, rendered): (&'static str, &str)) -> Result<bool, fmt::Error> {
        if !self.location_keys_free {
            return self.key(name);
        }
        self.lead()?;
        self.keys.insert_claimed(name, 0);
        self.out.write_str(rendered)?;
        Ok(true)
    }
}

/// Writes a forwarded event's key-values as ` key=value` (values as JSON,
/// keys with control characters escaped).
pub(crate) fn write_pretty_key_values<W: Write + ?Sized>(out: &mut W) -> fmt::Result {
    read_staged(|staged| {
        for (name, value) in staged.into_iter().flat_map(StagedRecord::pairs) {
            out.write_char(' ')?;
            write_escaped(out, name)?;
            out.write_char('=')?;
            out.write_str(value)?;
        }
        Ok(())
    })
}

/// Writes a forwarded event's message (escaped, no quotes) from the staged
/// record; `None` when it is not staged.
pub(crate) fn write_message<W: Write + ?Sized>(out: &mut W) -> Option<fmt::Result> {
    read_staged(|staged| {
        staged.map(|staged| out.write_str(staged.get(Some(&staged.message)).unwrap_or_default()))
    })
}

/// Runs `f` with a forwarded event's record target; `None` if the event has
/// none.
pub(crate) fn record_target<R>(event: &Event<'_>, f: impl FnOnce(&str) -> R) -> Option<R> {
    struct Target<F, R> {
        f: Option<F>,
        result: Option<R>,
    }
    impl<F: FnOnce(&str) -> R, R> Visit for Target<F, R> {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == TARGET_FIELD {
                if let Some(f) = self.f.take() {
                    self.result = Some(f(value));
                }
            }
        }
        fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
    }
    let mut visitor = Target {
        f: Some(f),
        result: None,
    };
    read_staged(|staged| {
        if let (Some(staged), Some(f)) = (staged, visitor.f.take()) {
            visitor.result = Some(f(staged.target()));
        }
    });
    if visitor.f.is_some() {
        event.record(&mut visitor);
    }
    visitor.result
}

/// A field visitor that passes every field but `log.target` on (the
/// formatters write the record's target in the target's place).
pub(crate) struct SkipLogTarget<'v, V>(pub(crate) &'v mut V);

impl<V: Visit> Visit for SkipLogTarget<'_, V> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.record_f64(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.record_i64(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.record_u64(field, value);
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.record_i128(field, value);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.record_u128(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.record_bool(field, value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != TARGET_FIELD {
            self.0.record_str(field, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        self.0.record_error(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != TARGET_FIELD {
            self.0.record_debug(field, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(pairs: &[(&str, Value<'_>)]) -> Vec<(String, String)> {
        let mut staged = StagedRecord::default();
        for (key, value) in pairs {
            staged
                .visit_pair(Key::from_str(key), value.clone())
                .unwrap();
        }
        staged
            .pairs()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn values_render_as_json() {
        let rendered = staged(&[
            ("n", Value::from(7u64)),
            ("neg", Value::from(-3i64)),
            ("f", Value::from(1.5f64)),
            ("nan", Value::from(f64::NAN)),
            ("b", Value::from(true)),
            ("s", Value::from("a\"b\n\u{1b}")),
            ("c", Value::from('"')),
            ("d", Value::from_debug(&vec![1, 2])),
            ("unit", Value::null()),
        ]);
        let values: Vec<&str> = rendered.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            [
                "7",
                "-3",
                "1.5",
                "\"NaN\"",
                "true",
                r#""a\"b\n\u001b""#,
                r#""\"""#,
                "\"[1, 2]\"",
                "null"
            ]
        );
        for (_, value) in &rendered {
            serde_json::from_str::<serde_json::Value>(value).unwrap();
        }
    }

    #[test]
    fn clearing_keeps_small_buffers_and_frees_huge_ones() {
        let mut staged = StagedRecord::default();
        staged
            .visit_pair(Key::from_str("k"), Value::from("v"))
            .unwrap();
        let capacity = staged.text.capacity();
        staged.clear();
        assert_eq!(staged.text.capacity(), capacity);
        assert_eq!(staged.pairs().count(), 0);
        let huge = "x".repeat(RETAINED_CAPACITY * 2);
        staged
            .visit_pair(Key::from_str("k"), Value::from(huge.as_str()))
            .unwrap();
        staged.clear();
        assert_eq!(staged.text.capacity(), 0);
    }
}
