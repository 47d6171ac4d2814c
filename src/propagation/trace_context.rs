//! Strict W3C Trace Context (Level 2): `traceparent` and `tracestate`.
//!
//! The parser follows <https://www.w3.org/TR/trace-context-2/> to the letter
//! instead of `opentelemetry_sdk`'s lenient one, which accepts one-digit versions,
//! short ids (left-padded), a trailing `-` after version `00`, and drops the
//! Level 2 random flag. Each rule's reason is written next to it.
//!
//! `opentelemetry::trace::TraceState` (0.33) checks keys with Level 1's
//! `tenant@system` grammar (one `@`, at most 13 characters after it), so it
//! refuses valid Level 2 keys such as `foo@bar@baz`. Extraction therefore
//! keeps the validated list itself, as a value of the OpenTelemetry
//! [`Context`](https://docs.rs/opentelemetry/0.33/opentelemetry/struct.Context.html) beside the remote span context (which gets the members
//! `TraceState` can hold), and injection sends that list for the same trace.

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
/// Flags defined by Level 2: sampled (`0x01`) and random (`0x02`). "Other
/// flags ... Vendors MUST set those to zero."
const KNOWN_FLAGS: u8 = 0x03;
/// The Level 2 random trace id flag.
const RANDOM_FLAG: u8 = 0x02;
/// "There can be a maximum of 32 list-members in a list."
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// "Vendors SHOULD propagate at least 512 characters of a combined header":
/// we propagate exactly that much at most (the spec asks for the maximum to
/// be documented), so a hostile caller cannot make us forward 16 KiB.
const MAX_TRACESTATE_INJECT_LEN: usize = 512;
/// "Entries larger than 128 characters long SHOULD be removed first."
const LARGE_TRACESTATE_MEMBER: usize = 128;
/// `key = (lcalpha / DIGIT) 0*255(keychar)`: at most 256 characters.
const MAX_TRACESTATE_KEY_LEN: usize = 256;
/// `value = 0*255(chr) nblk-chr`: at most 256 characters.
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
/// the `traceparent` is still honoured. A duplicated key is not an error
/// (see [`parse_tracestate`]).
///
/// ```
/// use tracing_correlation::{parse_tracestate, TracestateError};
///
/// let err = parse_tracestate(["a=1,b="]).unwrap_err();
/// assert_eq!(err, TracestateError::InvalidValue(String::new()));
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
    /// A key does not follow the specification's grammar: 1 to 256 characters,
    /// the first a lowercase letter or digit, the others lowercase letters,
    /// digits or `_ - * / @`.
    #[error("invalid tracestate key {0:?}: expected 1-256 of a-z 0-9 _ - * / @, starting with a-z or 0-9")]
    InvalidKey(String),
    /// A value does not follow the specification's grammar: 1 to 256 printable
    /// ASCII characters except `,` and `=`, the last one not a space.
    #[error("invalid tracestate value {0:?}: expected 1-256 printable ASCII characters except ',' and '=', not ending in a space")]
    InvalidValue(String),
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
/// [`SpanContext`](https://docs.rs/opentelemetry/0.33/opentelemetry/trace/struct.SpanContext.html) is remote, carries only the sampled (`0x01`) and random
/// (`0x02`) flags (other bits are zeroed) and an empty [`TraceState`](https://docs.rs/opentelemetry/0.33/opentelemetry/trace/struct.TraceState.html).
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

/// `keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"`.
fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// `key = (lcalpha / DIGIT) 0*255(keychar)`.
///
/// Level 2 dropped Level 1's `tenant@system` split: `@` is an ordinary key
/// character after the first one, so `foo@`, `foo@@bar` and `foo@bar@baz` are
/// keys, and there is no limit on either side of an `@` but the 256 in total.
fn is_valid_tracestate_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    matches!(bytes.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.len() <= MAX_TRACESTATE_KEY_LEN
        && bytes[1..].iter().all(|&b| is_key_char(b))
}

/// `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`: printable, not a space, `,` or `=`.
fn is_non_blank_value_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b',' && b != b'='
}

/// `value = 0*255(chr) nblk-chr`, `chr = %x20 / nblk-chr`.
///
/// The value must end in a non-blank character, so it is never empty: `foo=`
/// is not a list member. Leading spaces belong to the value; trailing ones
/// are OWS, trimmed before this check.
fn is_valid_tracestate_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    matches!(bytes.last(), Some(&b) if is_non_blank_value_char(b))
        && bytes.len() <= MAX_TRACESTATE_VALUE_LEN
        && bytes
            .iter()
            .all(|&b| b == b' ' || is_non_blank_value_char(b))
}

/// A validated W3C `tracestate` list (Level 2 grammar), in header order, each
/// key once.
///
/// Returned by [`parse_tracestate`] and [`W3cTracestate::from_context`].
/// Unlike `opentelemetry::trace::TraceState`, it holds every key Level 2
/// allows, `foo@bar@baz` included; [`to_trace_state`](Self::to_trace_state)
/// gives the members `TraceState` can hold.
///
/// ```
/// use tracing_correlation::parse_tracestate;
///
/// let state = parse_tracestate(["foo@bar@baz=1,congo=t61rcWkgMzE"])?;
/// assert_eq!(state.get("foo@bar@baz"), Some("1"));
/// assert_eq!(state.to_trace_state().header(), "congo=t61rcWkgMzE");
/// # Ok::<(), tracing_correlation::TracestateError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct W3cTracestate {
    members: Vec<(String, String)>,
}

impl W3cTracestate {
    /// The list as one header value, `key=value` members joined by `,`
    /// (empty for an empty list). Not truncated: the propagator's injection
    /// is what keeps a header within 512 characters.
    ///
    /// ```
    /// let state = tracing_correlation::parse_tracestate(["b=2", " a=1 "])?;
    /// assert_eq!(state.header(), "b=2,a=1");
    /// # Ok::<(), tracing_correlation::TracestateError>(())
    /// ```
    #[must_use]
    pub fn header(&self) -> String {
        join_members(self.iter())
    }

    /// The value of `key`, if the list has it.
    ///
    /// ```
    /// let state = tracing_correlation::parse_tracestate(["a=1,a=2"])?;
    /// assert_eq!(state.get("a"), Some("1"));
    /// assert_eq!(state.get("b"), None);
    /// # Ok::<(), tracing_correlation::TracestateError>(())
    /// ```
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The members, left to right.
    ///
    /// ```
    /// let state = tracing_correlation::parse_tracestate(["a=1,b=2"])?;
    /// assert_eq!(state.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
    /// # Ok::<(), tracing_correlation::TracestateError>(())
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of members.
    ///
    /// ```
    /// assert_eq!(tracing_correlation::parse_tracestate(["a=1, ,b=2"])?.len(), 2);
    /// # Ok::<(), tracing_correlation::TracestateError>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the list has no member.
    ///
    /// ```
    /// assert!(tracing_correlation::parse_tracestate([""])?.is_empty());
    /// # Ok::<(), tracing_correlation::TracestateError>(())
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members `opentelemetry::trace::TraceState` can hold, in order: it
    /// refuses keys with more than one `@` or more than 13 characters after
    /// the `@`, which Level 2 allows.
    ///
    /// ```
    /// let state = tracing_correlation::parse_tracestate(["a@b@c=1,rojo=2"])?;
    /// assert_eq!(state.to_trace_state().header(), "rojo=2");
    /// # Ok::<(), tracing_correlation::TracestateError>(())
    /// ```
    #[must_use]
    pub fn to_trace_state(&self) -> TraceState {
        // `TraceState` itself decides what it can hold: one member at a time,
        // so a refused key costs only that member.
        let representable = self
            .iter()
            .filter(|member| TraceState::from_key_value([*member]).is_ok());
        TraceState::from_key_value(representable).unwrap_or_default()
    }

    /// The `tracestate` that [`W3cTraceContextPropagator`] injects for `cx`
    /// (before truncating it to 512 characters).
    ///
    /// When `cx` continues a trace this propagator extracted, that is the
    /// received list, validated, with the changes made since through the span
    /// context's `TraceState` (added or updated keys first, deleted keys
    /// gone). Otherwise it is the span context's `TraceState`, keeping only
    /// members valid per the specification.
    ///
    /// ```
    /// use opentelemetry::propagation::TextMapPropagator;
    /// use opentelemetry::Context;
    /// use std::collections::HashMap;
    /// use tracing_correlation::{W3cTraceContextPropagator, W3cTracestate};
    ///
    /// let headers = HashMap::from([
    ///     (
    ///         "traceparent".to_owned(),
    ///         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
    ///     ),
    ///     ("tracestate".to_owned(), "foo@bar@baz=1,congo=2".to_owned()),
    /// ]);
    /// let cx = W3cTraceContextPropagator::new().extract_with_context(&Context::new(), &headers);
    /// assert_eq!(W3cTracestate::from_context(&cx).header(), "foo@bar@baz=1,congo=2");
    /// ```
    #[must_use]
    pub fn from_context(cx: &Context) -> Self {
        let span = cx.span();
        let span_context = span.span_context();
        let members = outgoing_members(span_context, Received::for_trace(cx, span_context));
        Self {
            members: members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

/// Parses and validates one or more `tracestate` header values as one list
/// (several header values are combined with `,`, in order, as RFC 9110 asks).
///
/// The rules, with their reasons:
/// - Empty and whitespace-only members are skipped, OWS (spaces, tabs) around
///   members is ignored: the specification allows both because proxies
///   produce them when combining headers.
/// - Keys and values follow the Level 2 grammar (see [`TracestateError`]).
/// - **Any invalid member rejects the whole list**, and so do more than 32
///   members. The specification defines the header as a `list` of valid
///   members; a value that does not match it is not a `tracestate`, and
///   nothing tells us where the bad member ends (a missing `,` and a stray
///   `=` look alike), so forwarding the "valid rest" could forward garbage
///   under someone else's key. It grants using partially parsed members only
///   for a higher `traceparent` version, and even then leaves it to the
///   vendor; we do not, for one rule. The W3C test suite expects the same.
/// - **A duplicated key keeps its first occurrence**; later ones are dropped,
///   the list is not. The specification makes unique keys the sender's duty
///   ("Adding a key/value pair MUST NOT result in the same key being present
///   multiple times") and lets a receiver keep duplicates or reduce them; we
///   reduce them because the left-most entry is the most recent position of
///   that vendor (updated keys move to the left), and because receivers that
///   still apply Level 1 drop a whole list with duplicates.
/// - Duplicates still count toward the 32 members: the limit is on the
///   header as received.
///
/// Work is bounded: parsing stops at the 33rd member.
///
/// # Errors
///
/// Returns the first [`TracestateError`] found.
///
/// ```
/// use tracing_correlation::parse_tracestate;
///
/// let state = parse_tracestate(["congo=t61rcWkgMzE", " rojo=00f067aa0ba902b7 ", "congo=2"])?;
/// assert_eq!(state.header(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
/// # Ok::<(), tracing_correlation::TracestateError>(())
/// ```
pub fn parse_tracestate<'a, I>(values: I) -> Result<W3cTracestate, TracestateError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut members: Vec<(String, String)> = Vec::new();
    let mut count = 0;
    for member in values.into_iter().flat_map(|v| v.split(',')) {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_TRACESTATE_MEMBERS {
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
        if !members.iter().any(|(k, _)| k == key) {
            members.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(W3cTracestate { members })
}

/// What extraction received, kept as a value of the extracted [`Context`](https://docs.rs/opentelemetry/0.33/opentelemetry/struct.Context.html)
/// (so it travels to every child context built from it, in both id modes)
/// for injection to honour while the trace id stays the same.
#[derive(Debug)]
struct Received {
    trace_id: TraceId,
    /// The incoming random flag: "If the flag is unset in the incoming
    /// traceparent header, it MUST also be unset in any outgoing traceparent
    /// headers which use the same trace-id", and a set one stays set. The
    /// SDK's unsampled spans get flags `00` whatever the parent had.
    random: bool,
    /// The validated incoming list, every Level 2 key included.
    state: W3cTracestate,
    /// What the remote span context's `TraceState` got from `state`: a
    /// `TraceState` still equal to it has not been changed since.
    projection: TraceState,
}

impl Received {
    /// What was received for the trace of `span_context`, if anything.
    fn for_trace<'a>(cx: &'a Context, span_context: &SpanContext) -> Option<&'a Self> {
        cx.get::<Self>()
            .filter(|received| received.trace_id == span_context.trace_id())
    }
}

/// The members to send for `span_context`, before truncation: see
/// [`W3cTracestate::from_context`].
fn outgoing_members<'a>(
    span_context: &'a SpanContext,
    received: Option<&'a Received>,
) -> Vec<(&'a str, &'a str)> {
    let current = span_context.trace_state();
    let Some(received) = received else {
        return valid_unique(current.into_iter());
    };
    if *current == received.projection {
        return received.state.iter().collect();
    }
    // Changed through `TraceState` since extraction (a sampler or the
    // application): the spec's mutations are add, update (both move the key
    // to the left) and delete; unchanged members keep their order.
    let unchanged = |key: &str, value: &str| received.projection.get(key) == Some(value);
    let mut members: Vec<(&str, &str)> = current
        .into_iter()
        .filter(|&(k, v)| !unchanged(k, v))
        .collect();
    for (key, value) in received.state.iter() {
        let keep = match current.get(key) {
            // Unchanged; an updated value was added above.
            Some(now) => now == value && unchanged(key, value),
            // Deleted if `TraceState` held it; else a key it cannot hold.
            None => received.projection.get(key).is_none(),
        };
        if keep {
            members.push((key, value));
        }
    }
    valid_unique(members.into_iter())
}

/// The members valid per the specification, each key once (the first).
fn valid_unique<'a>(members: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (key, value) in members {
        if is_valid_tracestate_key(key)
            && is_valid_tracestate_value(value)
            && !out.iter().any(|(k, _)| *k == key)
        {
            out.push((key, value));
        }
    }
    out
}

/// Truncates by whole members, as the spec requires, to at most 32 members
/// and 512 characters: members longer than 128 characters go first (the
/// right-most first), then members from the end.
fn truncate(members: &mut Vec<(&str, &str)>) {
    members.truncate(MAX_TRACESTATE_MEMBERS);
    let member_len = |(k, v): &(&str, &str)| k.len() + 1 + v.len();
    let header_len = |members: &[(&str, &str)]| {
        members.iter().map(member_len).sum::<usize>() + members.len().saturating_sub(1)
    };
    while header_len(members) > MAX_TRACESTATE_INJECT_LEN {
        let victim = members
            .iter()
            .rposition(|m| member_len(m) > LARGE_TRACESTATE_MEMBER)
            .unwrap_or(members.len().saturating_sub(1));
        members.remove(victim);
    }
}

fn join_members<'a>(members: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut header = String::new();
    for (i, (key, value)) in members.enumerate() {
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

/// Extracts a remote span context and what was received with it, or `None`
/// when the `traceparent` is missing, invalid or repeated.
fn extract(extractor: &dyn Extractor) -> Option<(SpanContext, Received)> {
    let parents = extractor.get_all(TRACEPARENT)?;
    // Several traceparent headers cannot be told apart: the spec says restart.
    let [parent] = parents.as_slice() else {
        return None;
    };
    let parsed = parse_traceparent(parent).ok()?;
    // "failure to parse tracestate MUST NOT affect the parsing of traceparent".
    let state = extractor
        .get_all(TRACESTATE)
        .and_then(|values| parse_tracestate(values).ok())
        .unwrap_or_default();
    let projection = state.to_trace_state();
    let span_context = SpanContext::new(
        parsed.trace_id(),
        parsed.span_id(),
        parsed.trace_flags(),
        true,
        projection.clone(),
    );
    let received = Received {
        trace_id: parsed.trace_id(),
        random: parsed.trace_flags().to_u8() & RANDOM_FLAG != 0,
        state,
        projection,
    };
    Some((span_context, received))
}

/// W3C Trace Context Level 2 propagator (`traceparent`, `tracestate`), strict.
///
/// Extraction:
/// - an invalid, missing or repeated `traceparent` leaves the context unchanged
///   (the caller then starts a fresh trace) and the `tracestate` is not parsed
///   ("If the vendor failed to parse traceparent, it MUST NOT attempt to
///   parse tracestate");
/// - otherwise the context gets a remote span context with the sampled and
///   random flags as received (unknown flag bits are zeroed);
/// - the `tracestate` follows [`parse_tracestate`]'s rules: Level 2 keys
///   (`@` anywhere after the first character), non-empty values, at most 32
///   members, an invalid list dropped as a whole, duplicated keys reduced to
///   their first occurrence, several header values combined in order;
/// - the validated list is kept in the returned context beside the span
///   context (whose `TraceState` holds the members it can represent).
///
/// Injection writes version `00` for a valid span context, with its sampled
/// and random flags; while the trace is one this propagator extracted, the
/// random flag is the received one (the spec requires it unchanged for the
/// same trace id). The `tracestate` is [`W3cTracestate::from_context`],
/// truncated by whole members to at most 32 members and 512 characters
/// (members over 128 characters first), and sent only when non-empty.
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
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03".to_owned(),
/// );
/// headers.insert("tracestate".to_owned(), "foo@bar@baz=1,foo@bar@baz=2".to_owned());
/// let cx = propagator.extract_with_context(&Context::new(), &headers);
/// assert!(cx.span().span_context().is_sampled());
///
/// let mut out = HashMap::new();
/// propagator.inject_context(&cx, &mut out);
/// assert_eq!(out["traceparent"], headers["traceparent"]);
/// assert_eq!(out["tracestate"], "foo@bar@baz=1");
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
        if !span_context.is_valid() {
            return;
        }
        let received = Received::for_trace(cx, span_context);
        let mut flags = span_context.trace_flags().to_u8() & KNOWN_FLAGS;
        if let Some(received) = received {
            flags = (flags & !RANDOM_FLAG) | if received.random { RANDOM_FLAG } else { 0 };
        }
        injector.set(
            TRACEPARENT,
            format!(
                "00-{:032x}-{:016x}-{flags:02x}",
                span_context.trace_id(),
                span_context.span_id(),
            ),
        );
        let mut members = outgoing_members(span_context, received);
        truncate(&mut members);
        if !members.is_empty() {
            injector.set(TRACESTATE, join_members(members.into_iter()));
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extract(extractor) {
            // Always replaces a `Received` that `cx` may already hold.
            Some((span_context, received)) => cx
                .with_remote_span_context(span_context)
                .with_value(received),
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
    fn level_2_keys() {
        for key in [
            "a",
            "a-b_c*d/e",
            "1a",
            "0",
            "foo@",
            "foo@@bar",
            "foo@bar@baz",
            "t@1s",
            &"a".repeat(256),
            &format!("{}@{}", "t".repeat(241), "s".repeat(14)),
            &format!("{}@s", "t".repeat(242)),
            &format!("t@{}", "s".repeat(15)),
        ] {
            assert!(is_valid_tracestate_key(key), "{key}");
        }
        for key in ["", "A", "@s", "_a", "a.b", "a b", "é", &"a".repeat(257)] {
            assert!(!is_valid_tracestate_key(key), "{key}");
        }
    }

    #[test]
    fn values() {
        for value in ["x", " leading space ok", "a b", "!", "~", &"v".repeat(256)] {
            assert!(is_valid_tracestate_value(value), "{value:?}");
        }
        for value in [
            "",
            " ",
            "trailing ",
            "a,b",
            "a=b",
            "tab\there",
            "é",
            "\u{7f}",
            &"v".repeat(257),
        ] {
            assert!(!is_valid_tracestate_value(value), "{value:?}");
        }
    }

    #[test]
    fn keys_opentelemetry_refuses_are_kept_beside_the_trace_state() {
        let key = format!("t@{}", "s".repeat(14));
        let state = parse_tracestate([format!("{key}=v,x@y@z=w,a=1").as_str()]).expect("valid");
        assert_eq!(state.header(), format!("{key}=v,x@y@z=w,a=1"));
        assert_eq!(state.to_trace_state().header(), "a=1");
    }

    #[test]
    fn truncation_drops_large_members_first() {
        let big = format!("big={}", "x".repeat(200));
        let small: Vec<String> = (0..4)
            .map(|i| format!("s{i}={}", "y".repeat(100)))
            .collect();
        let mut members: Vec<(&str, &str)> = std::iter::once(big.as_str())
            .chain(small.iter().map(String::as_str))
            .map(|m| m.split_once('=').expect("member"))
            .collect();
        truncate(&mut members);
        assert_eq!(join_members(members.into_iter()), small.join(","));
    }
}
