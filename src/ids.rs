//! The ids a log line carries, their allocation-free hex forms, and id minting.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};

/// The trace context of a unit of work: trace id, span id and trace flags.
///
/// This is what the JSON formatter writes on every line. It is `Copy` and
/// formats to hex without allocating ([`TraceIds::trace_id_hex`],
/// [`TraceIds::span_id_hex`]).
///
/// ```
/// use tracing_correlation::TraceIds;
///
/// let ids = TraceIds::from_hex("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x01)
///     .expect("valid ids");
/// assert_eq!(ids.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(ids.span_id_hex().as_str(), "00f067aa0ba902b7");
/// assert!(ids.is_sampled());
/// assert_eq!(ids.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceIds {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
}

impl TraceIds {
    /// Builds ids from OpenTelemetry values; `None` unless both ids are
    /// non-zero (the W3C rule for a valid context).
    #[must_use]
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Option<Self> {
        (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// For ids known to be non-zero (minted here or taken from a valid
    /// context).
    pub(crate) const fn from_valid_parts(
        trace_id: TraceId,
        span_id: SpanId,
        flags: TraceFlags,
    ) -> Self {
        Self {
            trace_id,
            span_id,
            flags,
        }
    }

    /// Parses lowercase or uppercase hex ids (32 and 16 digits); `None` when
    /// either is malformed or zero.
    #[must_use]
    pub fn from_hex(trace_id: &str, span_id: &str, flags: u8) -> Option<Self> {
        if trace_id.len() != 32 || span_id.len() != 16 {
            return None;
        }
        let trace = u128::from_str_radix(trace_id, 16).ok()?;
        let span = u64::from_str_radix(span_id, 16).ok()?;
        Self::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::new(flags),
        )
    }

    /// The ids of an OpenTelemetry span context, if it is valid.
    #[must_use]
    pub fn from_span_context(cx: &SpanContext) -> Option<Self> {
        Self::new(cx.trace_id(), cx.span_id(), cx.trace_flags())
    }

    /// The ids of the current context of this thread: the innermost of the
    /// entered `tracing` span and any explicitly attached OpenTelemetry
    /// context. `None` outside any trace.
    ///
    /// This reads `opentelemetry::Context::current()` without cloning it
    /// (a few nanoseconds), so it agrees with what OpenTelemetry propagators
    /// inject. It needs a [`CorrelationLayer`](crate::CorrelationLayer) (or a
    /// tracing-opentelemetry layer) in the subscriber to follow `tracing` spans.
    ///
    /// ```
    /// use tracing_correlation::{CorrelationLayer, TraceIds};
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let subscriber = tracing_subscriber::registry().with(CorrelationLayer::new());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     assert!(TraceIds::current().is_none());
    ///     let span = tracing::info_span!("request");
    ///     let _entered = span.enter();
    ///     let ids = TraceIds::current().expect("inside a span");
    ///     assert_eq!(Some(ids), TraceIds::from_span(&span));
    /// });
    /// ```
    #[must_use]
    pub fn current() -> Option<Self> {
        opentelemetry::Context::map_current(Self::from_context)
    }

    /// The ids of the span held by an OpenTelemetry context, if valid.
    #[must_use]
    pub fn from_context(cx: &opentelemetry::Context) -> Option<Self> {
        Self::from_span_context(cx.span().span_context())
    }

    /// The ids of a given `tracing` span, read from the
    /// [`CorrelationLayer`](crate::CorrelationLayer) of the span's subscriber.
    ///
    /// `None` when the span is disabled, when the subscriber has no
    /// correlation layer, or — with OpenTelemetry export — when the span has
    /// never been entered yet: its OpenTelemetry span starts lazily, and
    /// reading its ids earlier would start it before a `set_parent` call
    /// had its chance.
    #[must_use]
    pub fn from_span(span: &tracing::Span) -> Option<Self> {
        span.with_subscriber(|(id, dispatch)| {
            dispatch
                .downcast_ref::<crate::layer::IdsLookup>()
                .and_then(|lookup| lookup.ids(dispatch, id))
        })
        .flatten()
    }

    /// The trace id.
    #[must_use]
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span id.
    #[must_use]
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The W3C trace flags.
    #[must_use]
    pub fn trace_flags(&self) -> TraceFlags {
        self.flags
    }

    /// Whether the sampled flag is set.
    #[must_use]
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// The trace id as 32 lowercase hex digits, without allocating.
    #[must_use]
    pub fn trace_id_hex(&self) -> Hex<32> {
        Hex::from_bytes(&self.trace_id.to_bytes())
    }

    /// The span id as 16 lowercase hex digits, without allocating.
    #[must_use]
    pub fn span_id_hex(&self) -> Hex<16> {
        Hex::from_bytes(&self.span_id.to_bytes())
    }

    /// The trace flags as 2 lowercase hex digits, without allocating.
    #[must_use]
    pub fn trace_flags_hex(&self) -> Hex<2> {
        Hex::from_bytes(&[self.flags.to_u8()])
    }

    /// These ids as a non-remote OpenTelemetry span context.
    #[must_use]
    pub fn to_span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.span_id,
            self.flags,
            false,
            opentelemetry::trace::TraceState::NONE,
        )
    }
}

impl fmt::Debug for TraceIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceIds")
            .field("trace_id", &self.trace_id_hex().as_str())
            .field("span_id", &self.span_id_hex().as_str())
            .field("trace_flags", &self.trace_flags_hex().as_str())
            .finish()
    }
}

/// Formats as a version-00 W3C `traceparent` value.
impl fmt::Display for TraceIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{}",
            self.trace_id_hex(),
            self.span_id_hex(),
            self.trace_flags_hex()
        )
    }
}

/// `N` lowercase hex digits held inline; derefs to `str`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hex<const N: usize>([u8; N]);

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The two digits of every byte: one lookup per byte instead of two.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = [HEX_DIGITS[byte >> 4], HEX_DIGITS[byte & 0x0f]];
        byte += 1;
    }
    table
};

impl<const N: usize> Hex<N> {
    /// Encodes `N / 2` bytes (extra bytes are ignored, missing digits are `0`).
    fn from_bytes(bytes: &[u8]) -> Self {
        let mut out = [b'0'; N];
        for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
        }
        Self(out)
    }

    /// The digits as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        debug_assert!(self.0.is_ascii());
        // SAFETY: `from_bytes` (the only constructor) stores ASCII hex digits
        // and `b'0'`s only, and ASCII is UTF-8. Checking would cost a scan
        // per id on every line.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }
}

impl<const N: usize> std::ops::Deref for Hex<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

pub(crate) fn hex_u128(value: u128) -> Hex<32> {
    Hex::from_bytes(&value.to_be_bytes())
}

pub(crate) fn hex_u64(value: u64) -> Hex<16> {
    Hex::from_bytes(&value.to_be_bytes())
}

pub(crate) fn hex_u8(value: u8) -> Hex<2> {
    Hex::from_bytes(&[value])
}

// Per-thread wyrand generator. Trace ids need uniqueness and unpredictability
// against accidental collision, not cryptographic secrecy; a per-thread
// generator seeded from the process' random hasher keys costs ~1 ns per id and
// needs no lock.
thread_local! {
    static RNG_STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    // The hasher's address differs per thread stack: more entropy per thread.
    hasher.write_usize(std::ptr::from_ref(&hasher) as usize);
    hasher.finish()
}

fn next_u64() -> u64 {
    RNG_STATE
        .try_with(|state| {
            let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
            state.set(s);
            let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
            ((t >> 64) as u64) ^ (t as u64)
        })
        // Thread-local storage is gone only while the thread is exiting.
        .unwrap_or_else(|_| seed())
}

/// A fresh random non-zero span id.
pub(crate) fn new_span_id() -> SpanId {
    loop {
        let id = next_u64();
        if id != 0 {
            return SpanId::from(id);
        }
    }
}

/// A fresh random non-zero trace id.
pub(crate) fn new_trace_id() -> TraceId {
    loop {
        let id = (u128::from(next_u64()) << 64) | u128::from(next_u64());
        if id != 0 {
            return TraceId::from(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms_match_opentelemetry_display() {
        let trace = TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128);
        let span = SpanId::from(0x00f0_67aa_0ba9_02b7_u64);
        let ids = TraceIds::new(trace, span, TraceFlags::new(3)).unwrap();
        assert_eq!(ids.trace_id_hex().as_str(), trace.to_string());
        assert_eq!(ids.span_id_hex().as_str(), span.to_string());
        assert_eq!(ids.trace_flags_hex().as_str(), "03");
    }

    #[test]
    fn zero_ids_are_not_a_context() {
        assert!(TraceIds::new(TraceId::INVALID, SpanId::from(1), TraceFlags::SAMPLED).is_none());
        assert!(TraceIds::new(TraceId::from(1), SpanId::INVALID, TraceFlags::SAMPLED).is_none());
        assert!(TraceIds::from_hex(&"0".repeat(32), "00f067aa0ba902b7", 1).is_none());
        assert!(TraceIds::from_hex("abc", "00f067aa0ba902b7", 1).is_none());
    }

    #[test]
    fn minted_ids_are_non_zero_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(new_trace_id()));
            assert_ne!(new_span_id(), SpanId::INVALID);
        }
    }
}
