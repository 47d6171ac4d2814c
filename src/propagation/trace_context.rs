//! Strict W3C Trace Context (Level 2): `traceparent` and `tracestate`.
//!
//! The parser follows <https://www.w3.org/TR/trace-context-2/> to the letter
//! instead of `opentelemetry_sdk`'s lenient one, which accepts one-digit versions,
//! short ids (left-padded), a trailing `-` after version `00`, and drops the
//! Level 2 random flag.

use opentelemetry::{
    propagation::{text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
    Context,
};
use std::sync::OnceLock;

pub(crate) const TRACEPARENT: &str = "traceparent";
pub(crate) const TRACESTATE: &str = "tracestate";

/// Length of a version-00 `traceparent`: `vv-<32 hex>-<16 hex>-ff`.
const TRACEPARENT_V00_LEN: usize = 55;
/// Flags defined by Level 2: sampled (`0x01`) and random (`0x02`).
const KNOWN_FLAGS: u8 = 0x03;
/// The spec's cap on list members, for extraction and injection alike.
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Vendors must propagate at least this many characters; we never send more.
const MAX_TRACESTATE_INJECT_LEN: usize = 512;
/// Members longer than this are the first ones dropped when truncating.
const LARGE_TRACESTATE_MEMBER: usize = 128;
/// `tracestate` values hold at most this many characters.
const MAX_TRACESTATE_VALUE_LEN: usize = 256;

/// Why a `traceparent` value was rejected by [`parse_traceparent`].
///
/// ```
/// use tracing_correlation::{parse_traceparent, TraceparentError};
///
/// let err = parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert_eq!(err.unwrap_err(), TraceparentError::ForbiddenVersion);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceparentError {
    /// The version is not two lowercase hex digits.
    #[error("traceparent version must be two lowercase hex digits")]
    InvalidVersion,
    /// Version `ff` is forbidden by the specification.
    #[error("traceparent version ff is forbidden")]
    ForbiddenVersion,
    /// A `-` separator is missing where the version-00 layout requires one.
    #[error("traceparent separator '-' expected at byte {position}")]
    InvalidSeparator {
        /// Byte offset (after trimming OWS) where `-` was expected.
        position: usize,
    },
    /// The trace id is not 32 lowercase hex digits.
    #[error("traceparent trace id must be 32 lowercase hex digits")]
    InvalidTraceId,
    /// The trace id is all zeros.
    #[error("traceparent trace id must not be all zeros")]
    ZeroTraceId,
    /// The parent (span) id is not 16 lowercase hex digits.
    #[error("traceparent parent id must be 16 lowercase hex digits")]
    InvalidSpanId,
    /// The parent (span) id is all zeros.
    #[error("traceparent parent id must not be all zeros")]
    ZeroSpanId,
    /// The flags are not two lowercase hex digits.
    #[error("traceparent flags must be two lowercase hex digits")]
    InvalidFlags,
    /// Version `00` carries data after the flags (including a lone trailing `-`).
    #[error("traceparent version 00 must end after the flags")]
    TrailingData,
    /// A higher version continues after the flags without a `-`.
    #[error("traceparent of a future version must continue with '-' after the flags")]
    InvalidSuffix,
}

/// Why a `tracestate` value was rejected by [`parse_tracestate`].
///
/// A rejected `tracestate` is treated as empty by [`W3cTraceContextPropagator`];
/// the `traceparent` is still honoured.
///
/// ```
/// use tracing_correlation::{parse_tracestate, TracestateError};
///
/// let err = parse_tracestate(["a=1,a=2"]).unwrap_err();
/// assert_eq!(err, TracestateError::DuplicateKey("a".to_owned()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TracestateError {
    /// More than 32 non-empty list members.
    #[error("tracestate has more than 32 list members")]
    TooManyMembers,
    /// A list member has no `=`.
    #[error("tracestate list member without '=': {0:?}")]
    MissingEquals(String),
    /// A key does not follow the specification's grammar.
    #[error("invalid tracestate key {0:?}")]
    InvalidKey(String),
    /// A value does not follow the specification's grammar.
    #[error("invalid tracestate value {0:?}")]
    InvalidValue(String),
    /// The same key appears twice.
    #[error("duplicate tracestate key {0:?}")]
    DuplicateKey(String),
    /// The key is valid per the specification but `opentelemetry::trace::TraceState`
    /// refuses it (it caps the system id of `tenant@system` keys at 13 characters,
    /// the specification at 14).
    #[error(
        "tracestate key {0:?} is valid but cannot be represented by opentelemetry's TraceState"
    )]
    Unrepresentable(String),
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => 0,
    }
}

/// Decodes exactly `N * 2` lowercase hex digits.
fn decode_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != N * 2 || !hex.iter().all(|&b| is_lower_hex(b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Some(out)
}

fn expect_dash(bytes: &[u8], position: usize) -> Result<(), TraceparentError> {
    if bytes.get(position) == Some(&b'-') {
        Ok(())
    } else {
        Err(TraceparentError::InvalidSeparator { position })
    }
}

/// Trims HTTP optional whitespace (space and horizontal tab) only.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses one `traceparent` value strictly (W3C Trace Context Level 2).
///
/// Leading and trailing spaces/tabs (HTTP OWS) are ignored. The returned
/// [`SpanContext`] is remote, carries only the sampled (`0x01`) and random
/// (`0x02`) flags (other bits are zeroed) and an empty [`TraceState`].
///
/// Version `00` must be exactly 55 characters; versions `01`–`fe` are parsed
/// by their version-00 prefix and may continue only after a `-`.
///
/// # Errors
///
/// Returns the first [`TraceparentError`] found, reading left to right.
///
/// ```
/// use tracing_correlation::parse_traceparent;
///
/// let cx = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")?;
/// assert_eq!(cx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(cx.trace_flags().to_u8(), 0x03);
/// assert!(cx.is_remote());
/// # Ok::<(), tracing_correlation::TraceparentError>(())
/// ```
pub fn parse_traceparent(value: &str) -> Result<SpanContext, TraceparentError> {
    let bytes = trim_ows(value).as_bytes();

    let version = bytes
        .get(0..2)
        .and_then(decode_hex::<1>)
        .ok_or(TraceparentError::InvalidVersion)?[0];
    if version == 0xff {
        return Err(TraceparentError::ForbiddenVersion);
    }
    expect_dash(bytes, 2)?;
    let trace_id = bytes
        .get(3..35)
        .and_then(decode_hex::<16>)
        .map(TraceId::from_bytes)
        .ok_or(TraceparentError::InvalidTraceId)?;
    expect_dash(bytes, 35)?;
    let span_id = bytes
        .get(36..52)
        .and_then(decode_hex::<8>)
        .map(SpanId::from_bytes)
        .ok_or(TraceparentError::InvalidSpanId)?;
    expect_dash(bytes, 52)?;
    let flags = bytes
        .get(53..55)
        .and_then(decode_hex::<1>)
        .ok_or(TraceparentError::InvalidFlags)?[0];

    if bytes.len() > TRACEPARENT_V00_LEN {
        if version == 0 {
            return Err(TraceparentError::TrailingData);
        }
        if bytes[TRACEPARENT_V00_LEN] != b'-' {
            return Err(TraceparentError::InvalidSuffix);
        }
    }
    if trace_id == TraceId::INVALID {
        return Err(TraceparentError::ZeroTraceId);
    }
    if span_id == SpanId::INVALID {
        return Err(TraceparentError::ZeroSpanId);
    }

    Ok(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & KNOWN_FLAGS),
        true,
        TraceState::NONE,
    ))
}

/// Formats a version-00 `traceparent` for a valid span context, keeping only
/// the sampled and random flags. Returns `None` for an invalid span context.
///
/// ```
/// use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
/// use tracing_correlation::format_traceparent;
///
/// let cx = SpanContext::new(
///     TraceId::from(1),
///     SpanId::from(2),
///     TraceFlags::new(0x03),
///     false,
///     TraceState::NONE,
/// );
/// assert_eq!(
///     format_traceparent(&cx).as_deref(),
///     Some("00-00000000000000000000000000000001-0000000000000002-03")
/// );
/// ```
#[must_use]
pub fn format_traceparent(span_context: &SpanContext) -> Option<String> {
    if !span_context.is_valid() {
        return None;
    }
    Some(format!(
        "00-{:032x}-{:016x}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8() & KNOWN_FLAGS
    ))
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`,
/// `multi-tenant-key = tenant-id "@" system-id` with
/// `tenant-id = (lcalpha / DIGIT) 0*240(...)` and `system-id = lcalpha 0*13(...)`.
fn is_valid_tracestate_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match key.split_once('@') {
        None => {
            matches!(bytes.first(), Some(b) if b.is_ascii_lowercase())
                && bytes.len() <= 256
                && bytes.iter().all(|&b| is_key_char(b))
        }
        Some((tenant, system)) => {
            let (tenant, system) = (tenant.as_bytes(), system.as_bytes());
            matches!(tenant.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
                && tenant.len() <= 241
                && tenant.iter().all(|&b| is_key_char(b))
                && matches!(system.first(), Some(b) if b.is_ascii_lowercase())
                && system.len() <= 14
                && system.iter().all(|&b| is_key_char(b))
        }
    }
}

/// Values: up to 256 printable ASCII characters (0x20–0x7E) except `,` and
/// `=`, not ending in a space. The empty value is accepted.
fn is_valid_tracestate_value(value: &str) -> bool {
    value.len() <= MAX_TRACESTATE_VALUE_LEN
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !value.ends_with(' ')
}

/// Parses and validates one or more `tracestate` header values as one list
/// (multiple header values are concatenated with `,`, as HTTP combines them).
///
/// Empty and whitespace-only list members are skipped and OWS (spaces, tabs)
/// around members is ignored. Any invalid member, a duplicate key or more
/// than 32 members rejects the whole list, as the specification asks. Work is
/// bounded: parsing stops at the 33rd member.
///
/// # Errors
///
/// Returns the first [`TracestateError`] found.
///
/// ```
/// use tracing_correlation::parse_tracestate;
///
/// let state = parse_tracestate(["congo=t61rcWkgMzE", " rojo=00f067aa0ba902b7 "])?;
/// assert_eq!(state.header(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
/// # Ok::<(), tracing_correlation::TracestateError>(())
/// ```
pub fn parse_tracestate<'a, I>(values: I) -> Result<TraceState, TracestateError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut members: Vec<(&'a str, &'a str)> = Vec::new();
    for member in values.into_iter().flat_map(|v| v.split(',')) {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        if members.len() == MAX_TRACESTATE_MEMBERS {
            return Err(TracestateError::TooManyMembers);
        }
        let (key, value) = member
            .split_once('=')
            .ok_or_else(|| TracestateError::MissingEquals(member.to_owned()))?;
        if !is_valid_tracestate_key(key) {
            return Err(TracestateError::InvalidKey(key.to_owned()));
        }
        if !is_valid_tracestate_value(value) {
            return Err(TracestateError::InvalidValue(value.to_owned()));
        }
        if members.iter().any(|(k, _)| *k == key) {
            return Err(TracestateError::DuplicateKey(key.to_owned()));
        }
        members.push((key, value));
    }
    TraceState::from_key_value(members.iter().copied()).map_err(|_| {
        // Every member passed the stricter checks above; the only key
        // opentelemetry refuses is a multi-tenant one with a 14-char system id.
        let key = members
            .iter()
            .find(|(k, _)| {
                k.split_once('@')
                    .is_some_and(|(_, system)| system.len() == 14)
            })
            .map_or_else(String::new, |(k, _)| (*k).to_owned());
        TracestateError::Unrepresentable(key)
    })
}

/// Serializes a `TraceState` for injection: members that are invalid per the
/// specification (or duplicates) are skipped, then whole members are dropped
/// until at most 32 remain and the header is at most 512 characters — members
/// longer than 128 characters first (from the end), then from the end.
pub(crate) fn format_tracestate(state: &TraceState) -> String {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for (key, value) in state {
        if is_valid_tracestate_key(key)
            && is_valid_tracestate_value(value)
            && !members.iter().any(|(k, _)| *k == key)
        {
            members.push((key, value));
        }
    }
    members.truncate(MAX_TRACESTATE_MEMBERS);

    let member_len = |(k, v): &(&str, &str)| k.len() + 1 + v.len();
    let header_len = |members: &[(&str, &str)]| {
        members.iter().map(member_len).sum::<usize>() + members.len().saturating_sub(1)
    };
    while header_len(&members) > MAX_TRACESTATE_INJECT_LEN {
        let victim = members
            .iter()
            .rposition(|m| member_len(m) > LARGE_TRACESTATE_MEMBER)
            .unwrap_or(members.len().saturating_sub(1));
        members.remove(victim);
    }

    let mut header = String::with_capacity(header_len(&members));
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header.push_str(key);
        header.push('=');
        header.push_str(value);
    }
    header
}

fn trace_context_fields() -> &'static [String; 2] {
    static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
    FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()])
}

/// Extracts a remote span context (with its `tracestate`) from a carrier, or
/// `None` when the `traceparent` is missing, invalid or repeated.
pub(crate) fn extract_span_context(extractor: &dyn Extractor) -> Option<SpanContext> {
    let parents = extractor.get_all(TRACEPARENT)?;
    // Several traceparent headers cannot be told apart: the spec says restart.
    let [parent] = parents.as_slice() else {
        return None;
    };
    let parsed = parse_traceparent(parent).ok()?;
    let state = extractor
        .get_all(TRACESTATE)
        .and_then(|values| parse_tracestate(values).ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        parsed.trace_id(),
        parsed.span_id(),
        parsed.trace_flags(),
        true,
        state,
    ))
}

/// W3C Trace Context Level 2 propagator (`traceparent`, `tracestate`), strict.
///
/// Extraction:
/// - an invalid, missing or repeated `traceparent` leaves the context unchanged
///   (the caller then starts a fresh trace) and the `tracestate` is ignored;
/// - otherwise the context gets a remote span context with the sampled and
///   random flags (unknown flag bits are zeroed);
/// - an invalid `tracestate` (bad key or value, duplicate key, more than 32
///   members) is dropped as a whole; several `tracestate` values are combined.
///
/// Injection writes version `00` with the sampled and random flags of a valid
/// span context, and a `tracestate` (only when non-empty) of at most 32
/// members and 512 characters, truncated by whole members.
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use opentelemetry::Context;
/// use std::collections::HashMap;
/// use tracing_correlation::W3cTraceContextPropagator;
///
/// let propagator = W3cTraceContextPropagator::new();
/// let mut headers = HashMap::new();
/// headers.insert(
///     "traceparent".to_owned(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
/// );
/// let cx = propagator.extract_with_context(&Context::new(), &headers);
/// assert!(cx.span().span_context().is_sampled());
///
/// let mut out = HashMap::new();
/// propagator.inject_context(&cx, &mut out);
/// assert_eq!(out["traceparent"], headers["traceparent"]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct W3cTraceContextPropagator {
    _private: (),
}

impl W3cTraceContextPropagator {
    /// Creates the propagator.
    ///
    /// ```
    /// let _propagator = tracing_correlation::W3cTraceContextPropagator::new();
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl TextMapPropagator for W3cTraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        let Some(traceparent) = format_traceparent(span_context) else {
            return;
        };
        injector.set(TRACEPARENT, traceparent);
        let tracestate = format_tracestate(span_context.trace_state());
        if !tracestate.is_empty() {
            injector.set(TRACESTATE, tracestate);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extract_span_context(extractor) {
            Some(span_context) => cx.with_remote_span_context(span_context),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(trace_context_fields())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_multi_tenant_keys() {
        assert!(is_valid_tracestate_key("a"));
        assert!(is_valid_tracestate_key("a-b_c*d/e"));
        assert!(!is_valid_tracestate_key("1a"));
        assert!(!is_valid_tracestate_key("A"));
        assert!(!is_valid_tracestate_key(""));
        assert!(is_valid_tracestate_key(&"a".repeat(256)));
        assert!(!is_valid_tracestate_key(&"a".repeat(257)));
        assert!(is_valid_tracestate_key("1tenant@sys"));
        assert!(is_valid_tracestate_key(&format!(
            "{}@{}",
            "t".repeat(241),
            "s".repeat(14)
        )));
        assert!(!is_valid_tracestate_key(&format!("{}@s", "t".repeat(242))));
        assert!(!is_valid_tracestate_key(&format!("t@{}", "s".repeat(15))));
        assert!(!is_valid_tracestate_key("t@1s"));
        assert!(!is_valid_tracestate_key("t@"));
        assert!(!is_valid_tracestate_key("@s"));
        assert!(!is_valid_tracestate_key("t@s@x"));
    }

    #[test]
    fn values() {
        assert!(is_valid_tracestate_value(""));
        assert!(is_valid_tracestate_value(" leading space ok"));
        assert!(!is_valid_tracestate_value("trailing "));
        assert!(!is_valid_tracestate_value("a,b"));
        assert!(!is_valid_tracestate_value("a=b"));
        assert!(!is_valid_tracestate_value("tab\there"));
        assert!(!is_valid_tracestate_value("é"));
        assert!(is_valid_tracestate_value(&"v".repeat(256)));
        assert!(!is_valid_tracestate_value(&"v".repeat(257)));
    }

    #[test]
    fn fourteen_char_system_id_is_reported_as_unrepresentable() {
        let key = format!("t@{}", "s".repeat(14));
        assert_eq!(
            parse_tracestate([format!("{key}=v").as_str()]),
            Err(TracestateError::Unrepresentable(key))
        );
    }

    #[test]
    fn truncation_drops_large_members_first() {
        let big = format!("big={}", "x".repeat(200));
        let mut members = vec![
            ("a".to_owned(), "1".repeat(100)),
            ("big".to_owned(), "x".repeat(200)),
        ];
        members.push(("c".to_owned(), "2".repeat(100)));
        members.push(("d".to_owned(), "3".repeat(100)));
        members.push(("e".to_owned(), "4".repeat(100)));
        let state = TraceState::from_key_value(members).expect("valid");
        let header = format_tracestate(&state);
        assert!(!header.contains(&big));
        assert!(header.len() <= 512);
        assert!(header.starts_with("a=") && header.ends_with(&"4".repeat(100)));
    }
}
