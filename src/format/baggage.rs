//! Allowlisted W3C baggage entries copied onto JSON lines.

use std::fmt::{self, Write};

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::Context;

use super::escape::write_escaped;
use super::fields::{write_key, KeySet};

/// The longest baggage value written, in bytes, unless configured.
pub(crate) const DEFAULT_MAX_VALUE_LEN: usize = 256;

/// Which baggage keys reach a line, and how long their values may be.
///
/// Baggage arrives from other processes, so nothing is written unless its
/// key was allowed, and values are cut to a bound and escaped.
#[derive(Debug, Clone)]
pub(crate) struct BaggageFields {
    keys: Vec<Box<str>>,
    max_value_len: usize,
}

impl Default for BaggageFields {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            max_value_len: DEFAULT_MAX_VALUE_LEN,
        }
    }
}

impl BaggageFields {
    /// Replaces the allowlist (duplicates dropped, order kept).
    pub(crate) fn set_keys<I, K>(&mut self, keys: I)
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.keys.clear();
        for key in keys {
            let key: String = key.into();
            if !self.keys.iter().any(|k| **k == *key) {
                self.keys.push(key.into_boxed_str());
            }
        }
    }

    pub(crate) fn set_max_value_len(&mut self, bytes: usize) {
        self.max_value_len = bytes;
    }

    /// Whether any key is allowed; when not, lines never look at baggage.
    pub(crate) fn is_active(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Writes `,"key":"value"` for each allowed key present in the current
    /// context's baggage, claiming each key in `keys` so none is written
    /// twice. Looks values up by borrowed key: nothing is allocated.
    pub(crate) fn write<'k, W: Write + ?Sized, const N: usize>(
        &'k self,
        out: &mut W,
        keys: &mut KeySet<'k, N>,
    ) -> fmt::Result {
        Context::map_current(|cx| {
            let baggage = cx.baggage();
            if baggage.is_empty() {
                return Ok(());
            }
            for name in &self.keys {
                if let Some(value) = baggage.get(&**name) {
                    let Some(depth) = keys.claim(name) else {
                        continue;
                    };
                    out.write_str(",")?;
                    write_key(out, name, depth)?;
                    out.write_str("\"")?;
                    write_escaped(out, truncate(value.as_str(), self.max_value_len))?;
                    out.write_str("\"")?;
                }
            }
            Ok(())
        })
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_chars() {
        assert_eq!(truncate("abc", 8), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("ééé", 5), "éé");
        assert_eq!(truncate("€€", 5), "€");
        assert_eq!(truncate("€", 2), "");
        assert_eq!(truncate("x", 0), "");
    }

    #[test]
    fn allowlist_drops_duplicates() {
        let mut fields = BaggageFields::default();
        fields.set_keys(["a", "b", "a"]);
        assert_eq!(fields.keys.len(), 2);
        assert!(fields.is_active());
        fields.set_keys(Vec::<String>::new());
        assert!(!fields.is_active());
    }
}
