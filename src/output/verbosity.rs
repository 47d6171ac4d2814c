//! Per-request verbosity from trusted baggage: a request whose baggage
//! carries the configured key (`log.level=debug`) has its lines written at
//! that level, in every service on its path, within a floor and a rate
//! limit.
//!
//! Cost (see ARCHITECTURE.md, "Raised verbosity"): while no raised request
//! is open in the process, the raise adds nothing to any callsite's
//! interest or to the max level, so a `debug!` the filter disables costs
//! exactly what it costs without this feature. When the first raised
//! request opens, callsite interest is rebuilt once so callsites at or
//! above the floor become `sometimes`; when the last closes, it is rebuilt
//! back. The rate limit bounds those rebuilds.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::TraceContextExt as _;
use tracing_core::span::{Attributes, Id};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Level, LevelFilter, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::layer::{with_span_data, SpanData};

/// Raised traces admitted per minute unless configured.
pub const DEFAULT_MAX_RAISED_PER_MINUTE: usize = 10;

/// Raises the verbosity of single requests marked by a trusted caller.
///
/// A request whose baggage holds `key` (for example `log.level=debug`)
/// when its local root span opens (the request span of
/// [`HttpServerLayer`](crate::HttpServerLayer)) has every line of that span
/// and its descendants written down to the asked level, whatever the
/// output's filter says, on every output. Since baggage travels with the
/// trace context (the client middleware injects it), every service on the
/// request's path that has the same configuration raises it too.
///
/// Bounds:
///
/// * **who**: only baggage the process accepted. The server middleware
///   keeps a caller's baggage only when it trusts the caller
///   ([`HttpServerLayer::trust_incoming`](crate::HttpServerLayer::trust_incoming)):
///   an untrusted caller cannot raise anything;
/// * **how far**: never more verbose than [`floor`](Self::floor) (`DEBUG`
///   by default); a mark asking for `trace` gets `debug` then;
/// * **how often**: at most [`max_per_minute`](Self::max_per_minute)
///   traces raised per rolling minute in this process (10 by default);
///   further marked requests run at the normal level. Several local roots
///   of one trace (two services in one process) count once.
///
/// Values are level names (`error`, `warn`, `info`, `debug`, `trace`, any
/// case); anything else is ignored.
///
/// ```
/// use tracing::Level;
/// use tracing_correlation::VerbosityConfig;
///
/// let (dispatch, _guard) = tracing_correlation::builder()
///     .writer(std::io::sink)
///     .filter("info")
///     .verbosity_from_baggage(
///         VerbosityConfig::new("log.level").floor(Level::DEBUG).max_per_minute(5),
///     )
///     .build()
///     .expect("valid configuration");
/// # drop(dispatch);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a VerbosityConfig does nothing until given to `Builder::verbosity_from_baggage`"]
pub struct VerbosityConfig {
    key: String,
    floor: Level,
    max: usize,
    window: Duration,
}

impl VerbosityConfig {
    /// Reads the asked level from the baggage entry `key`.
    ///
    /// ```
    /// let config = tracing_correlation::VerbosityConfig::new("log.level");
    /// # drop(config);
    /// ```
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            floor: Level::DEBUG,
            max: DEFAULT_MAX_RAISED_PER_MINUTE,
            window: Duration::from_secs(60),
        }
    }

    /// The most verbose level a mark can ask for (`DEBUG` by default); a
    /// mark asking for more gets this one.
    ///
    /// ```
    /// let config = tracing_correlation::VerbosityConfig::new("log.level").floor(tracing::Level::INFO);
    /// # drop(config);
    /// ```
    pub fn floor(mut self, level: Level) -> Self {
        self.floor = level;
        self
    }

    /// At most `traces` raised traces per rolling minute (10 by default;
    /// 0 raises none).
    ///
    /// ```
    /// let config = tracing_correlation::VerbosityConfig::new("log.level").max_per_minute(3);
    /// # drop(config);
    /// ```
    pub fn max_per_minute(self, traces: usize) -> Self {
        self.max_per(traces, Duration::from_secs(60))
    }

    /// At most `traces` raised traces per rolling `window`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let config = tracing_correlation::VerbosityConfig::new("log.level")
    ///     .max_per(100, Duration::from_secs(3600));
    /// # drop(config);
    /// ```
    pub fn max_per(mut self, traces: usize, window: Duration) -> Self {
        self.max = traces;
        self.window = window;
        self
    }
}

/// What the raise did so far, from
/// [`LoggingGuard::verbosity_stats`](crate::LoggingGuard::verbosity_stats).
///
/// ```
/// let stats = tracing_correlation::VerbosityStats::default();
/// assert_eq!(stats.raised, 0);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerbosityStats {
    /// Traces raised (admitted by the rate limit).
    pub raised: u64,
    /// Marked requests refused by the rate limit.
    pub refused: u64,
    /// Marks whose value is not a level name.
    pub invalid: u64,
    /// Raised local root spans open now.
    pub open: u64,
}

/// The raise, shared by the span layer that marks spans and by every
/// output's filter.
pub(crate) struct Verbosity {
    key: Box<str>,
    floor: Level,
    max: usize,
    window: Duration,
    limiter: Mutex<Limiter>,
    /// Raised local roots open: while 0, the raise enables nothing.
    open: AtomicUsize,
    raised: AtomicU64,
    refused: AtomicU64,
    invalid: AtomicU64,
}

impl fmt::Debug for Verbosity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verbosity")
            .field("key", &self.key)
            .field("floor", &self.floor)
            .field("max", &self.max)
            .field("window", &self.window)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Limiter {
    /// When each trace of the current window was admitted.
    admitted: VecDeque<Instant>,
    /// Raised traces with open local roots here, and how many roots.
    open: Vec<(u128, usize)>,
}

/// Marks a raised span, with the level its lines are written down to.
#[derive(Debug, Clone, Copy)]
struct Raised {
    level: Level,
    /// A local root: its close ends the raise.
    root: bool,
    /// The root's trace, when known (several roots of one trace count once).
    trace: Option<u128>,
}

/// Keeps a second dispatcher registered for the life of the process.
///
/// A raise rebuilds callsite interest from inside a span callback. While
/// exactly one dispatcher is registered, tracing-core rebuilds against
/// `dispatcher::get_default`, which, re-entered from inside a callback of a
/// scoped (or, once any scoped one exists, the global) dispatcher, answers
/// the no-op dispatcher: every callsite would be disabled. With two
/// registered, it asks each registered dispatcher directly. The extra one is
/// an idle subscriber: it only turns `always` interests into `sometimes`
/// (event callsites of the builder's stack are never `always` anyway).
fn keep_two_dispatchers_registered() {
    static SECOND: std::sync::OnceLock<tracing_core::Dispatch> = std::sync::OnceLock::new();
    SECOND.get_or_init(|| tracing_core::Dispatch::new(Idle));
}

/// The second dispatcher: wants nothing, and says so in its max level
/// (`NoSubscriber` gives no hint, which would raise the global max level
/// to TRACE).
struct Idle;

impl Subscriber for Idle {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::never()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::OFF)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &tracing_core::span::Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

impl Verbosity {
    pub(crate) fn new(config: VerbosityConfig) -> Self {
        keep_two_dispatchers_registered();
        Self {
            key: config.key.into_boxed_str(),
            floor: config.floor,
            max: config.max,
            window: config.window,
            limiter: Mutex::new(Limiter {
                admitted: VecDeque::with_capacity(config.max.min(1024)),
                open: Vec::new(),
            }),
            open: AtomicUsize::new(0),
            raised: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
        }
    }

    fn limiter(&self) -> MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> VerbosityStats {
        VerbosityStats {
            raised: self.raised.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed) as u64,
        }
    }

    fn is_active(&self) -> bool {
        self.open.load(Ordering::Acquire) > 0
    }

    /// Whether a raise could enable events at `level` now (per event, the
    /// span decides: [`Verbosity::raises`]).
    pub(crate) fn may_raise(&self, level: Level) -> bool {
        level <= self.floor && self.is_active()
    }

    /// Whether this thread is inside a raised span of this raise (`true`
    /// when it cannot tell: the exact check follows in `event_enabled`).
    /// The cheap first answer for events of requests that are not raised.
    pub(crate) fn thread_in_raised(&self) -> bool {
        // The common answer first: this thread is inside no raised span of
        // any raise (one load, no borrow).
        if RAISED_ENTERED.try_with(std::cell::Cell::get) == Ok(0) {
            return false;
        }
        let me = std::ptr::from_ref(self) as usize;
        ENTERED
            .try_with(|entered| {
                entered
                    .try_borrow()
                    .map_or(true, |entered| entered.iter().any(|(who, _)| *who == me))
            })
            .unwrap_or(true)
    }

    /// `sometimes` for callsites a raise could enable while one is open,
    /// else `never`: with no raised request open, the raise costs nothing.
    pub(crate) fn callsite_interest(&self, meta: &Metadata<'_>) -> Interest {
        if !meta.is_span() && self.may_raise(*meta.level()) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    /// The floor while a raise is open.
    pub(crate) fn max_level_hint(&self) -> LevelFilter {
        if self.is_active() {
            LevelFilter::from_level(self.floor)
        } else {
            LevelFilter::OFF
        }
    }

    /// Whether `event` belongs to a raised span whose level enables it.
    pub(crate) fn raises<S>(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = *event.metadata().level();
        if !self.may_raise(level) {
            return false;
        }
        let span = match event.parent() {
            Some(id) => cx.span(id),
            None if event.is_contextual() => cx.lookup_current(),
            None => None,
        };
        span.is_some_and(|span| {
            span.extensions()
                .get::<Raised>()
                .is_some_and(|raised| level <= raised.level)
        })
    }

    /// The level a mark asks for, within the floor; `None` when there is no
    /// mark or its value is not a level (counted).
    fn asked(&self) -> Option<Level> {
        let value = opentelemetry::Context::map_current(|cx| {
            cx.baggage()
                .get(&*self.key)
                .map(|v| v.as_str().trim().parse::<Level>().map_err(|_| ()))
        })?;
        if let Ok(level) = value {
            Some(if level > self.floor {
                self.floor
            } else {
                level
            })
        } else {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Admits one more raised root of `trace`, within the rate limit.
    fn admit(&self, trace: Option<u128>) -> bool {
        let mut limiter = self.limiter();
        if let Some(trace) = trace {
            if let Some(open) = limiter.open.iter_mut().find(|(t, _)| *t == trace) {
                open.1 += 1;
                return true;
            }
        }
        let now = Instant::now();
        while limiter
            .admitted
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.window)
        {
            limiter.admitted.pop_front();
        }
        if limiter.admitted.len() >= self.max {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        limiter.admitted.push_back(now);
        if let Some(trace) = trace {
            limiter.open.push((trace, 1));
        }
        self.raised.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn release(&self, trace: Option<u128>) {
        let Some(trace) = trace else {
            return;
        };
        let mut limiter = self.limiter();
        if let Some(at) = limiter.open.iter().position(|(t, _)| *t == trace) {
            limiter.open[at].1 -= 1;
            if limiter.open[at].1 == 0 {
                limiter.open.swap_remove(at);
            }
        }
    }
}

thread_local! {
    /// The raised spans this thread is inside: (raise instance, span id).
    static ENTERED: std::cell::RefCell<Vec<(usize, u64)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// How many entries `ENTERED` holds, readable without a borrow.
    static RAISED_ENTERED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The span side of the raise: marks the spans of raised requests.
#[derive(Debug)]
pub(crate) struct VerbosityLayer {
    verbosity: Arc<Verbosity>,
}

impl VerbosityLayer {
    pub(crate) fn new(verbosity: Arc<Verbosity>) -> Self {
        Self { verbosity }
    }
}

impl<S> Layer<S> for VerbosityLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let v = &self.verbosity;
        if let Some(parent) = span.parent() {
            // Children of raised spans are raised; with none open, no span is.
            if !v.is_active() {
                return;
            }
            let level = parent.extensions().get::<Raised>().map(|r| r.level);
            if let Some(level) = level {
                span.extensions_mut().insert(Raised {
                    level,
                    root: false,
                    trace: None,
                });
            }
            return;
        }
        // A local root (a request span): raised if its context carries a
        // mark and the rate limit admits its trace.
        if attrs.is_root() {
            return;
        }
        let Some(level) = v.asked() else {
            return;
        };
        let trace = with_span_data(&span, SpanData::ids)
            .flatten()
            .map(|ids| ids.trace_id())
            .or_else(|| {
                opentelemetry::Context::map_current(|cx| {
                    let sc = cx.span().span_context().clone();
                    sc.is_valid().then(|| sc.trace_id())
                })
            })
            .map(|t| u128::from_be_bytes(t.to_bytes()));
        if !v.admit(trace) {
            return;
        }
        span.extensions_mut().insert(Raised {
            level,
            root: true,
            trace,
        });
        if v.open.fetch_add(1, Ordering::AcqRel) == 0 {
            // The first raise: callsites it may enable become `sometimes`.
            crate::output::filter::rebuilt();
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let v = &self.verbosity;
        if !v.is_active() {
            return;
        }
        let raised = ctx
            .span(id)
            .is_some_and(|span| span.extensions().get::<Raised>().is_some());
        if raised {
            let me = std::ptr::from_ref::<Verbosity>(v) as usize;
            let _ = ENTERED.try_with(|entered| {
                if let Ok(mut entered) = entered.try_borrow_mut() {
                    entered.push((me, id.into_u64()));
                    let _ = RAISED_ENTERED.try_with(|count| count.set(entered.len()));
                }
            });
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let me = std::ptr::from_ref::<Verbosity>(&self.verbosity) as usize;
        let _ = ENTERED.try_with(|entered| {
            if let Ok(mut entered) = entered.try_borrow_mut() {
                if let Some(at) = entered
                    .iter()
                    .rposition(|entry| *entry == (me, id.into_u64()))
                {
                    entered.remove(at);
                    let _ = RAISED_ENTERED.try_with(|count| count.set(entered.len()));
                }
            }
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let root = span
            .extensions()
            .get::<Raised>()
            .and_then(|r| r.root.then_some(r.trace));
        let Some(trace) = root else {
            return;
        };
        let v = &self.verbosity;
        v.release(trace);
        if v.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last raise ended: back to `never`, free again.
            crate::output::filter::rebuilt();
        }
    }
}

/// The dispatcher's outermost check while a raise may be open: an event
/// that only a raise could enable (more verbose than every output's own
/// filter and capture), on a thread inside no raised span, is refused here,
/// before the layers' per-layer filter machinery runs (about 800
/// instructions for a `sometimes` callsite it would end up refusing).
/// Everything else is passed to the stack unchanged.
pub(crate) struct RaiseGate<S> {
    inner: S,
    raise: Arc<Verbosity>,
    /// The outputs' line filters and capture directives.
    filters: Vec<crate::output::filter::Swappable>,
    /// The most verbose level they enable, updated at every interest
    /// rebuild (every reload and every raise opening or ending calls one).
    base: AtomicUsize,
}

impl<S> fmt::Debug for RaiseGate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaiseGate")
            .field("raise", &self.raise)
            .finish_non_exhaustive()
    }
}

/// `LevelFilter` as a number: 0 (OFF) to 5 (TRACE).
fn level_rank(filter: LevelFilter) -> usize {
    match filter.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(_) => 5,
    }
}

impl<S: Subscriber> RaiseGate<S> {
    pub(crate) fn new(
        inner: S,
        raise: Arc<Verbosity>,
        filters: Vec<crate::output::filter::Swappable>,
    ) -> Self {
        let gate = Self {
            inner,
            raise,
            filters,
            base: AtomicUsize::new(5),
        };
        gate.update_base();
        gate
    }

    fn update_base(&self) {
        let base = self
            .filters
            .iter()
            .map(|f| f.max_level_hint().map_or(5, level_rank))
            .max()
            .unwrap_or(0);
        self.base.store(base, Ordering::Relaxed);
    }

    /// Only a raise could enable `meta`, and this thread is in no raised span.
    fn refused(&self, meta: &Metadata<'_>) -> bool {
        let rank = match *meta.level() {
            Level::ERROR => 1,
            Level::WARN => 2,
            Level::INFO => 3,
            Level::DEBUG => 4,
            _ => 5,
        };
        rank > self.base.load(Ordering::Relaxed)
            && !meta.is_span()
            && !self.raise.thread_in_raised()
    }
}

impl<S: Subscriber> Subscriber for RaiseGate<S> {
    fn on_register_dispatch(&self, subscriber: &tracing_core::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !self.refused(metadata) && self.inner.enabled(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.update_base();
        self.inner.max_level_hint()
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &Id, values: &tracing_core::span::Record<'_>) {
        self.inner.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        self.inner.event_enabled(event)
    }

    fn event(&self, event: &Event<'_>) {
        self.inner.event(event);
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }

    fn current_span(&self) -> tracing_core::span::Current {
        self.inner.current_span()
    }

    // SAFETY: the pointer returned for `Self` is derived from `&self`; every
    // other answer is the inner subscriber's, whose own `downcast_raw`
    // upholds the contract. So the caller's cast back to the type asked for
    // is valid for as long as the subscriber lives.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else {
            // SAFETY: forwarded with the same contract.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}
