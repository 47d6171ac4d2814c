//! W3C Baggage (<https://www.w3.org/TR/baggage/>): bounded, member-by-member.

use opentelemetry::{
    baggage::{Baggage, BaggageExt, BaggageMetadata},
    propagation::{text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator},
    Context, Key, StringValue,
};
use std::fmt::Write as _;
use std::sync::OnceLock;

pub(crate) const BAGGAGE: &str = "baggage";

/// The spec's grammar allows at most 180 list members.
const MAX_MEMBERS: usize = 180;
/// Implementations must propagate at least 8192 bytes; we read and write no more.
const MAX_BYTES: usize = 8192;

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(is_ows)
}

/// RFC 7230 `token`: the key syntax of baggage members and properties.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// `baggage-octet`: printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

fn is_baggage_value(s: &str) -> bool {
    s.bytes().all(is_baggage_octet)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes a value; a `%` not followed by two hex digits is kept as
/// is, and byte sequences that are not UTF-8 become U+FFFD, as the spec asks.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = if bytes[i] == b'%' {
            match (
                bytes.get(i + 1).copied().and_then(hex_digit),
                bytes.get(i + 2).copied().and_then(hex_digit),
            ) {
                (Some(hi), Some(lo)) => Some((hi << 4) | lo),
                _ => None,
            }
        } else {
            None
        };
        if let Some(byte) = decoded {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes every byte outside `baggage-octet`, plus `%` (so decoding
/// is exact) and `=` (for peers that split members on every `=`).
fn percent_encode_into(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if is_baggage_octet(b) && b != b'%' && b != b'=' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Validates `property *( OWS ";" OWS property )` and returns it normalized
/// (`key=value` or `key`, joined by `;`, OWS removed), still percent-encoded.
fn normalize_properties<'a>(properties: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut out = String::new();
    for property in properties {
        let property = trim_ows(property);
        let (key, value) = match property.split_once('=') {
            Some((key, value)) => (trim_ows(key), Some(trim_ows(value))),
            None => (property, None),
        };
        if !is_token(key) || !value.map_or(true, is_baggage_value) {
            return None;
        }
        if !out.is_empty() {
            out.push(';');
        }
        out.push_str(key);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
    Some(out)
}

/// Parses one list member; `None` when it does not follow the grammar.
fn parse_member(member: &str) -> Option<(String, String, String)> {
    let mut parts = member.split(';');
    let (key, value) = parts.next()?.split_once('=')?;
    let (key, value) = (trim_ows(key), trim_ows(value));
    if !is_token(key) || !is_baggage_value(value) {
        return None;
    }
    let properties = normalize_properties(parts)?;
    Some((key.to_owned(), percent_decode(value), properties))
}

/// Parses `baggage` header values into a [`Baggage`](https://docs.rs/opentelemetry/0.33/opentelemetry/baggage/struct.Baggage.html), bounded and lenient
/// member by member.
fn parse_baggage<'a>(values: impl IntoIterator<Item = &'a str>) -> Baggage {
    let mut baggage = Baggage::new();
    let mut members = 0usize;
    let mut bytes = 0usize;
    for (index, raw) in values.into_iter().flat_map(|v| v.split(',')).enumerate() {
        // Raw bytes (OWS and invalid members included) count, so the work
        // done on a hostile header is bounded too.
        bytes += raw.len() + usize::from(index > 0);
        if bytes > MAX_BYTES {
            break;
        }
        let member = trim_ows(raw);
        if member.is_empty() {
            continue;
        }
        members += 1;
        if members > MAX_MEMBERS {
            break;
        }
        if let Some((key, value, properties)) = parse_member(member) {
            // Later duplicates replace earlier ones; Baggage keeps the first 64 keys.
            baggage.insert_with_metadata(
                Key::from(key),
                StringValue::from(value),
                BaggageMetadata::from(properties),
            );
        }
    }
    baggage
}

/// Serializes baggage (sorted by key, so output is deterministic) within the
/// spec's limits, dropping whole members that do not fit.
pub(crate) fn format_baggage(baggage: &Baggage) -> String {
    let mut entries: Vec<_> = baggage.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));

    let mut header = String::new();
    let mut member = String::new();
    let mut count = 0usize;
    for (key, (value, metadata)) in entries {
        if count == MAX_MEMBERS || !is_token(key.as_str()) {
            continue;
        }
        member.clear();
        member.push_str(key.as_str());
        member.push('=');
        percent_encode_into(&mut member, value.as_str());
        // Properties are kept in their wire form; ones that are not valid
        // on the wire are left out rather than sent broken.
        let metadata = metadata.as_str();
        if !metadata.is_empty() {
            if let Some(properties) = normalize_properties(metadata.split(';')) {
                member.push(';');
                member.push_str(&properties);
            }
        }
        let separator = usize::from(!header.is_empty());
        if header.len() + separator + member.len() > MAX_BYTES {
            continue;
        }
        if separator == 1 {
            header.push(',');
        }
        header.push_str(&member);
        count += 1;
    }
    header
}

fn baggage_fields() -> &'static [String; 1] {
    static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
    FIELDS.get_or_init(|| [BAGGAGE.to_owned()])
}

/// W3C Baggage propagator: percent-decoding and -encoding, properties kept,
/// invalid members dropped one by one, input bounded.
///
/// Extraction reads every `baggage` value of the carrier as one list and
/// stops at 180 list members or 8192 bytes (whole members only), so a
/// hostile header costs bounded work. Each member is validated on its own
/// (key: RFC 7230 token; value: `baggage-octet`s, then percent-decoded with
/// invalid UTF-8 replaced by U+FFFD; properties: `key` or `key=value`); an
/// invalid member is dropped, the others kept. A duplicate key replaces the
/// earlier one. When no member is valid the context is returned unchanged;
/// otherwise the extracted baggage replaces the context's baggage.
///
/// Properties are stored in [`BaggageMetadata`](https://docs.rs/opentelemetry/0.33/opentelemetry/baggage/struct.BaggageMetadata.html) in their wire form
/// (normalized to `k=v;flag`, still percent-encoded), so they round-trip
/// exactly.
///
/// Injection percent-encodes values (every byte outside `baggage-octet`, plus
/// `%` and `=`), sorts members by key and drops whole members so that the
/// header stays within 8192 bytes.
///
/// # Limits of `opentelemetry::baggage::Baggage`
///
/// The [`Baggage`](https://docs.rs/opentelemetry/0.33/opentelemetry/baggage/struct.Baggage.html) type caps itself at 64 entries and 8192 bytes of
/// key + decoded value + metadata (separators not counted), and silently
/// refuses inserts beyond that. So of a header with more than 64 members, the
/// first 64 distinct keys are kept: the spec's minimum (64 members, 8192
/// bytes) is met, the grammar's maximum of 180 members is not. `Baggage` is a
/// hash map: member order is not preserved (we sort by key on injection).
///
/// ```
/// use opentelemetry::baggage::BaggageExt;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::Context;
/// use std::collections::HashMap;
/// use tracing_correlation::W3cBaggagePropagator;
///
/// let propagator = W3cBaggagePropagator::new();
/// let mut headers = HashMap::new();
/// headers.insert("baggage".to_owned(), "user=J%C3%B6rg;pii, bad key=1".to_owned());
/// let cx = propagator.extract_with_context(&Context::new(), &headers);
/// let (value, metadata) = cx.baggage().get_with_metadata("user").expect("kept");
/// assert_eq!(value.as_str(), "Jörg");
/// assert_eq!(metadata.as_str(), "pii");
/// assert_eq!(cx.baggage().len(), 1);
///
/// let mut out = HashMap::new();
/// propagator.inject_context(&cx, &mut out);
/// assert_eq!(out["baggage"], "user=J%C3%B6rg;pii");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct W3cBaggagePropagator {
    _private: (),
}

impl W3cBaggagePropagator {
    /// Creates the propagator.
    ///
    /// ```
    /// let _propagator = tracing_correlation::W3cBaggagePropagator::new();
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl TextMapPropagator for W3cBaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let header = format_baggage(cx.baggage());
        if !header.is_empty() {
            injector.set(BAGGAGE, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(values) = extractor.get_all(BAGGAGE) else {
            return cx.clone();
        };
        let baggage = parse_baggage(values);
        if baggage.is_empty() {
            cx.clone()
        } else {
            cx.with_baggage(baggage)
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(baggage_fields())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_keeps_malformed_escapes_and_replaces_bad_utf8() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
        assert_eq!(percent_decode("%c3%a9"), "é");
    }

    #[test]
    fn encode_is_inverse_of_decode() {
        for s in ["", "plain", "a b,c;d\"e\\f%g=h", "Jörg 🚀", "\u{0}\u{7f}"] {
            let mut encoded = String::new();
            percent_encode_into(&mut encoded, s);
            assert!(is_baggage_value(&encoded), "{encoded}");
            assert_eq!(percent_decode(&encoded), s);
        }
    }

    #[test]
    fn member_grammar() {
        assert_eq!(
            parse_member("k = v ; p1 ; p2 = x"),
            Some(("k".into(), "v".into(), "p1;p2=x".into()))
        );
        assert_eq!(
            parse_member("k="),
            Some(("k".into(), String::new(), String::new()))
        );
        assert_eq!(parse_member("k"), None);
        assert_eq!(parse_member("=v"), None);
        assert_eq!(parse_member("k=v v"), None);
        assert_eq!(parse_member("k=v\""), None);
        assert_eq!(parse_member("k=v;"), None);
        assert_eq!(parse_member("k=v;p q"), None);
        assert_eq!(parse_member("k(=v"), None);
    }
}
