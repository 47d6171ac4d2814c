//! The key-values of the record being forwarded on this thread, pre-rendered
//! as JSON, and the helpers formatters use to read a forwarded event.

use std::borrow::Cow;
use std::cell::RefCell;
use std::error::Error;
use std::fmt::{self, Write};

use log::kv::{self, Key, Source, Value, VisitSource, VisitValue};
use tracing_core::field::{Field, Visit};
use tracing_core::Event;

use super::callsite::TARGET_FIELD;
use crate::format::escape::{write_escaped, write_quoted};
use crate::format::fields::{write_display_string, write_f64, write_key, JsonFields, KeySet, Pass};

/// A buffer that grew past this is freed after use rather than kept, so one
/// huge record does not pin its memory to the thread forever.
const RETAINED_CAPACITY: usize = 16 * 1024;

/// Key-values rendered as `key` + JSON value text, back to back in `text`.
#[derive(Default)]
pub(crate) struct StagedKv {
    text: String,
    /// `(key_start, key_end, value_end)`; each value starts where its key ends.
    entries: Vec<(usize, usize, usize)>,
}

thread_local! {
    static STAGED: RefCell<StagedKv> = RefCell::new(StagedKv::default());
}

impl StagedKv {
    fn clear(&mut self) {
        if self.text.capacity() > RETAINED_CAPACITY {
            self.text = String::new();
        }
        if self.entries.capacity() > RETAINED_CAPACITY / 16 {
            self.entries = Vec::new();
        }
        self.text.clear();
        self.entries.clear();
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

impl<'kvs> VisitSource<'kvs> for StagedKv {
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
    fn raw(&mut self, text: &str) -> Result<(), kv::Error> {
        self.0.push_str(text);
        Ok(())
    }
}

impl<'v> VisitValue<'v> for JsonValue<'_> {
    fn visit_any(&mut self, value: Value<'_>) -> Result<(), kv::Error> {
        Ok(write_display_string(self.0, &value)?)
    }

    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.raw("null")
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.raw(itoa::Buffer::new().format(value))
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.raw(itoa::Buffer::new().format(value))
    }

    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        self.raw(itoa::Buffer::new().format(value))
    }

    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        self.raw(itoa::Buffer::new().format(value))
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        Ok(write_f64(self.0, value)?)
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.raw(if value { "true" } else { "false" })
    }

    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        Ok(write_quoted(self.0, value)?)
    }

    fn visit_char(&mut self, value: char) -> Result<(), kv::Error> {
        Ok(write_quoted(self.0, value.encode_utf8(&mut [0; 4]))?)
    }
}

/// Renders a record's key-values into this thread's buffer, runs `f` (which
/// dispatches the event), then clears the buffer.
///
/// The buffer is borrowed only while rendering, never during `f`, so the
/// formatters can read it. If it is unavailable (the thread is exiting) the
/// event is dispatched without key-values.
pub(crate) fn with_staged<R>(source: &dyn Source, f: impl FnOnce() -> R) -> R {
    let staged = STAGED
        .try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut staged) => {
                staged.clear();
                // A failing value keeps the pairs rendered before it.
                let _ = source.visit(&mut *staged);
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

/// Runs `f` with the staged key-values of the event being forwarded on this
/// thread (`None` if they cannot be read: the thread is exiting).
fn read_staged<R>(mut f: impl FnMut(Option<&StagedKv>) -> R) -> R {
    let read = STAGED.try_with(|cell| {
        let staged = cell.try_borrow().ok();
        f(staged.as_deref())
    });
    match read {
        Ok(result) => result,
        Err(_) => f(None),
    }
}

/// Writes a forwarded event's fields (all but `message` and `log.target`)
/// and then its key-values, as members of the JSON object being written,
/// with unique keys. Returns whether any member was written.
pub(crate) fn write_json_fields<W: Write + ?Sized>(
    out: &mut W,
    event: &Event<'_>,
    reserved: &[Cow<'static, str>],
    opening: &str,
) -> Result<bool, fmt::Error> {
    read_staged(|staged| {
        let mut keys = KeySet::new(reserved);
        let mut fields = JsonFields::new(&mut *out, &mut keys, Pass::SkipMessage, opening, ",");
        event.record(&mut SkipLogTarget(&mut fields));
        let mut wrote_any = fields.wrote_any();
        fields.result?;
        for (name, value) in staged.into_iter().flat_map(StagedKv::pairs) {
            out.write_str(if wrote_any { "," } else { opening })?;
            wrote_any = true;
            let depth = keys.claim(name);
            write_key(out, name, depth)?;
            out.write_str(value)?;
        }
        Ok(wrote_any)
    })
}

/// Writes a forwarded event's key-values as ` key=value` (values as JSON,
/// keys with control characters escaped).
pub(crate) fn write_pretty_key_values<W: Write + ?Sized>(out: &mut W) -> fmt::Result {
    read_staged(|staged| {
        for (name, value) in staged.into_iter().flat_map(StagedKv::pairs) {
            out.write_char(' ')?;
            write_escaped(out, name)?;
            out.write_char('=')?;
            out.write_str(value)?;
        }
        Ok(())
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
    event.record(&mut visitor);
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
        let mut staged = StagedKv::default();
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
        let mut staged = StagedKv::default();
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
