//! Two kinds of filter: one decides which spans exist (and so which ids a
//! line can carry and what is propagated), each output's own decides which
//! lines it writes. Both can be replaced at run time through a
//! [`FilterHandle`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, LevelFilter, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, ParseError, Targets};
use tracing_subscriber::layer::{Context, Filter};

/// Environment variable naming the spans that exist (`RUST_LOG` syntax),
/// whatever the line filter says. `info` when unset.
pub const SPANS_ENV: &str = "RUST_LOG_SPANS";

/// The span directives used when neither the builder nor
/// [`SPANS_ENV`] names any.
pub(crate) const DEFAULT_SPANS: &str = "info";

/// Parsed directives: the `EnvFilter` that decides, and the same directives
/// as `Targets` when they have no span or field parts (for
/// [`LogRecordGate`], which has no layer context to give an `EnvFilter`).
#[derive(Debug)]
pub(crate) struct Directives {
    env: EnvFilter,
    targets: Option<Targets>,
}

impl Directives {
    /// Whether the directives have span or field parts (`[request]=debug`),
    /// the only ones for which `EnvFilter` tracks spans. `Targets` parses
    /// exactly the directives without them.
    fn dynamic(&self) -> bool {
        self.targets.is_none()
    }

    /// Enables nothing (when not even the defaults parse, which they do).
    pub(crate) fn nothing() -> Self {
        Self {
            env: EnvFilter::default(),
            targets: Some(Targets::new()),
        }
    }
}

/// Directives that can be swapped while other threads read them. Readers
/// pay one `arc-swap` load (no shared write, so threads logging at once do
/// not contend), which a `RwLock` would not give.
///
/// `dynamic` mirrors [`Directives::dynamic`] so that span callbacks (new,
/// enter, exit, close: four per span per filter) skip the load altogether
/// when no directive has span or field parts, which is the common case: the
/// `EnvFilter` would do nothing with them. A reload stores the directives
/// first, then the flag; an `EnvFilter` told of a span it never saw created
/// ignores it, so the order between the two is harmless.
#[derive(Clone)]
pub(crate) struct Swappable(Arc<ArcSwap<Directives>>, Arc<DynamicFlag>);

/// Swappables in the process whose directives need span callbacks: while
/// none does, every span callback of every filter returns after one load.
static DYNAMIC_FILTERS: AtomicUsize = AtomicUsize::new(0);

/// Whether one swappable's directives need span callbacks, counted in
/// [`DYNAMIC_FILTERS`] while set.
struct DynamicFlag(AtomicBool);

impl DynamicFlag {
    fn new(dynamic: bool) -> Self {
        let flag = Self(AtomicBool::new(false));
        flag.set(dynamic);
        flag
    }

    fn set(&self, dynamic: bool) {
        if self.0.swap(dynamic, Ordering::AcqRel) != dynamic {
            if dynamic {
                DYNAMIC_FILTERS.fetch_add(1, Ordering::AcqRel);
            } else {
                DYNAMIC_FILTERS.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for DynamicFlag {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// `false` when no filter of the process needs span callbacks.
fn any_dynamic() -> bool {
    DYNAMIC_FILTERS.load(Ordering::Acquire) > 0
}

impl fmt::Debug for Swappable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Swappable")
            .field(&self.0.load().env)
            .finish()
    }
}

impl Swappable {
    pub(crate) fn new(directives: Directives) -> Self {
        let dynamic = Arc::new(DynamicFlag::new(directives.dynamic()));
        Self(Arc::new(ArcSwap::from_pointee(directives)), dynamic)
    }

    /// The `EnvFilter`, when span callbacks matter to it.
    fn tracking_spans(&self) -> Option<arc_swap::Guard<Arc<Directives>>> {
        self.is_dynamic().then(|| self.0.load())
    }

    /// Whether span callbacks matter to the current directives.
    fn is_dynamic(&self) -> bool {
        self.1 .0.load(Ordering::Acquire)
    }

    /// Whether these directives enable `meta` (a span's own metadata, for
    /// its lifecycle lines).
    pub(crate) fn enables<S: Subscriber>(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        Filter::<S>::enabled(&self.0.load().env, meta, cx)
    }

    /// Whether these directives enable `event` (for an event forwarded from
    /// `log`, with its record's own target, as the bridge asked them).
    pub(crate) fn enables_event<S: Subscriber>(
        &self,
        event: &Event<'_>,
        cx: &Context<'_, S>,
    ) -> bool {
        let meta = event.metadata();
        let env = &self.0.load().env;
        if crate::log_bridge::is_forwarded(meta) {
            let level = *meta.level();
            let decided = crate::log_bridge::record_target(event, |target| {
                let record = Metadata::new(
                    "log record",
                    target,
                    level,
                    None,
                    None,
                    None,
                    tracing_core::field::FieldSet::new(
                        crate::log_bridge::FIELD_NAMES,
                        crate::log_bridge::identifier(level),
                    ),
                    tracing_core::metadata::Kind::EVENT,
                );
                Filter::<S>::enabled(env, &record, cx)
            });
            if let Some(enabled) = decided {
                return enabled;
            }
        }
        Filter::<S>::enabled(env, meta, cx)
    }

    /// The most verbose level these directives may enable (`None`: any).
    pub(crate) fn max_level_hint(&self) -> Option<LevelFilter> {
        tracing_subscriber::layer::Filter::<tracing_subscriber::Registry>::max_level_hint(
            &self.0.load().env,
        )
    }

    fn store(&self, directives: Directives) {
        let dynamic = directives.dynamic();
        self.0.store(Arc::new(directives));
        self.1.set(dynamic);
    }
}

/// Parses `RUST_LOG`-syntax directives, saying what to do on error.
pub(crate) fn parse(directives: &str) -> Result<Directives, FilterError> {
    let env = EnvFilter::builder()
        .parse(directives)
        .map_err(|source| FilterError {
            directives: directives.to_owned(),
            source,
        })?;
    // `Targets` would take `[request]=debug` as a target named `[request]`
    // and `foo[{bar}]` as a field-name set: only directives without `[`
    // mean the same to both.
    let targets = if directives.contains('[') {
        None
    } else {
        directives.parse().ok()
    };
    Ok(Directives { env, targets })
}

/// Directives that did not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid filter {directives:?}: {source}; use RUST_LOG syntax such as `info,my_crate=debug`"
)]
pub struct FilterError {
    directives: String,
    source: ParseError,
}

impl FilterError {
    /// The directives as given.
    #[must_use]
    pub fn directives(&self) -> &str {
        &self.directives
    }
}

/// The set of spans that exist: those the span directives enable, plus
/// those any output's line filter enables (so `RUST_LOG=my_crate=debug` keeps
/// the crate's debug spans, as it always did).
#[derive(Debug, Clone)]
pub(crate) struct SpanSet {
    explicit: Swappable,
    lines: Vec<Swappable>,
}

impl SpanSet {
    pub(crate) fn new(explicit: Swappable, lines: Vec<Swappable>) -> Self {
        Self { explicit, lines }
    }

    fn all(&self) -> impl Iterator<Item = &Swappable> {
        std::iter::once(&self.explicit).chain(&self.lines)
    }

    fn enabled<S: Subscriber>(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        self.all()
            .any(|filter| Filter::<S>::enabled(&filter.0.load().env, meta, cx))
    }

    fn callsite_enabled<S: Subscriber>(&self, meta: &'static Metadata<'static>) -> Interest {
        self.all().fold(Interest::never(), |sum, filter| {
            either(
                &sum,
                &Filter::<S>::callsite_enabled(&filter.0.load().env, meta),
            )
        })
    }

    fn max_level_hint<S: Subscriber>(&self) -> Option<LevelFilter> {
        self.all().try_fold(LevelFilter::OFF, |max, filter| {
            Filter::<S>::max_level_hint(&filter.0.load().env).map(|hint| max.max(hint))
        })
    }

    /// What a layer that ignores events says of an event callsite: the
    /// outputs' interest, so that it never turns the callsite's combined
    /// interest from `always` or `never` into `sometimes` (which would make
    /// every event of it pay a filter pass).
    fn events_interest<S: Subscriber>(&self, meta: &'static Metadata<'static>) -> Interest {
        self.lines.iter().fold(Interest::never(), |sum, filter| {
            either(
                &sum,
                &Filter::<S>::callsite_enabled(&filter.0.load().env, meta),
            )
        })
    }

    /// Runs a span callback on each filter that tracks spans.
    fn for_each(&self, f: impl Fn(&EnvFilter)) {
        for filter in self.all() {
            if let Some(directives) = filter.tracking_spans() {
                f(&directives.env);
            }
        }
    }
}

/// The more interested of two interests.
fn either(a: &Interest, b: &Interest) -> Interest {
    if a.is_always() || b.is_always() {
        Interest::always()
    } else if a.is_sometimes() || b.is_sometimes() {
        Interest::sometimes()
    } else {
        Interest::never()
    }
}

/// A per-layer filter deciding spans by a [`SpanSet`] and events by an
/// output's line filter.
///
/// `events: None` is for layers that ignore events (the correlation layer,
/// the OpenTelemetry layer behind [`IgnoreEvents`]): events pass, with the
/// outputs' callsite interest, so an event the outputs always write is
/// dispatched without any per-event filter pass.
#[derive(Debug, Clone)]
pub(crate) struct SplitFilter {
    spans: SpanSet,
    events: Option<Swappable>,
    /// Events enabled besides the line filter's: captured for the error
    /// buffer, or raised by a request's baggage.
    extra: Option<ExtraEvents>,
    /// Also let through the OpenTelemetry SDK's warnings (for the export
    /// health layer that shares the first output's filter).
    sdk_warnings: bool,
}

/// Events an output takes beyond its line filter (see `buffer.rs`,
/// `verbosity.rs`); the output layer tells them apart per event.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtraEvents {
    pub(crate) capture: Option<Swappable>,
    pub(crate) raise: Option<Arc<super::verbosity::Verbosity>>,
}

impl ExtraEvents {
    fn is_empty(&self) -> bool {
        self.capture.is_none() && self.raise.is_none()
    }

    fn enabled<S: Subscriber>(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        self.raise
            .as_ref()
            .is_some_and(|r| r.may_raise(*meta.level()) && r.thread_in_raised())
            || self
                .capture
                .as_ref()
                .is_some_and(|c| Filter::<S>::enabled(&c.0.load().env, meta, cx))
    }

    fn callsite_enabled<S: Subscriber>(&self, meta: &'static Metadata<'static>) -> Interest {
        let raise = self
            .raise
            .as_ref()
            .map_or_else(Interest::never, |r| r.callsite_interest(meta));
        let capture = self.capture.as_ref().map_or_else(Interest::never, |c| {
            Filter::<S>::callsite_enabled(&c.0.load().env, meta)
        });
        either(&raise, &capture)
    }

    fn max_level_hint<S: Subscriber>(&self) -> Option<LevelFilter> {
        let raise = self
            .raise
            .as_ref()
            .map_or(LevelFilter::OFF, |r| r.max_level_hint());
        match &self.capture {
            None => Some(raise),
            Some(c) => Filter::<S>::max_level_hint(&c.0.load().env).map(|h| h.max(raise)),
        }
    }

    fn event_enabled<S>(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        self.raise.as_ref().is_some_and(|r| r.raises(event, cx))
            || self
                .capture
                .as_ref()
                .is_some_and(|c| c.enables_event(event, cx))
    }
}

impl SplitFilter {
    /// For a layer that does nothing with events.
    pub(crate) fn spans_only(spans: SpanSet) -> Self {
        Self {
            spans,
            events: None,
            extra: None,
            sdk_warnings: false,
        }
    }

    pub(crate) fn new(spans: SpanSet, events: Swappable) -> Self {
        Self {
            spans,
            events: Some(events),
            extra: None,
            sdk_warnings: false,
        }
    }

    /// Also enables the OpenTelemetry SDK's warnings and errors, whatever
    /// the line filter says.
    pub(crate) fn with_sdk_warnings(mut self) -> Self {
        self.sdk_warnings = true;
        self
    }

    /// Also enables `extra` events (nothing changes when it is empty).
    pub(crate) fn with_extra(mut self, extra: ExtraEvents) -> Self {
        self.extra = (!extra.is_empty()).then_some(extra);
        self
    }
}

impl SplitFilter {
    /// Whether any of its directives needs span callbacks (span or field
    /// directives): a few atomic loads, checked before anything else on
    /// every span callback.
    /// [`DYNAMIC_FILTERS`] counts every swappable's flag, the line
    /// filter's too, so while it is zero no other load is needed.
    #[inline]
    fn tracks_spans(&self) -> bool {
        any_dynamic()
            && (self.spans.all().any(Swappable::is_dynamic)
                || self.events.as_ref().is_some_and(Swappable::is_dynamic))
    }
}

impl<S> Filter<S> for SplitFilter
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if meta.is_span() {
            self.spans.enabled(meta, cx)
        } else {
            if self.sdk_warnings && crate::export_health::is_sdk_warning(meta) {
                return true;
            }
            match &self.events {
                // A layer that ignores events: they pass.
                None => true,
                Some(events) => {
                    Filter::<S>::enabled(&events.0.load().env, meta, cx)
                        || self.extra.as_ref().is_some_and(|e| e.enabled(meta, cx))
                }
            }
        }
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            self.spans.callsite_enabled::<S>(meta)
        } else {
            if self.sdk_warnings && crate::export_health::is_sdk_warning(meta) {
                return Interest::always();
            }
            let Some(events) = &self.events else {
                return self.spans.events_interest::<S>(meta);
            };
            let lines = Filter::<S>::callsite_enabled(&events.0.load().env, meta);
            match &self.extra {
                None => lines,
                Some(extra) => either(&lines, &extra.callsite_enabled::<S>(meta)),
            }
        }
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        // `EnvFilter` keeps the default `event_enabled` (true): only the
        // extra events need a second look.
        let (Some(events), Some(extra)) = (&self.events, &self.extra) else {
            return true;
        };
        // Only a raise is configured and none can apply: as without it.
        if extra.capture.is_none()
            && !extra
                .raise
                .as_ref()
                .is_some_and(|r| r.may_raise(*event.metadata().level()))
        {
            return true;
        }
        // `enabled` let the event through for the line filter or for the
        // extra events: find out which holds for this event.
        events.enables_event(event, cx) || extra.event_enabled(event, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let spans = self.spans.max_level_hint::<S>()?;
        let mut extra = match &self.extra {
            None => LevelFilter::OFF,
            Some(extra) => extra.max_level_hint::<S>()?,
        };
        if self.sdk_warnings {
            extra = extra.max(LevelFilter::WARN);
        }
        match &self.events {
            None => Some(spans),
            Some(events) => {
                Filter::<S>::max_level_hint(&events.0.load().env).map(|e| e.max(spans).max(extra))
            }
        }
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !self.tracks_spans() {
            return;
        }
        self.spans
            .for_each(|f| Filter::<S>::on_new_span(f, attrs, id, ctx.clone()));
        if let Some(directives) = self.events.as_ref().and_then(Swappable::tracking_spans) {
            Filter::<S>::on_new_span(&directives.env, attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !self.tracks_spans() {
            return;
        }
        self.spans
            .for_each(|f| Filter::<S>::on_record(f, id, values, ctx.clone()));
        if let Some(directives) = self.events.as_ref().and_then(Swappable::tracking_spans) {
            Filter::<S>::on_record(&directives.env, id, values, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !self.tracks_spans() {
            return;
        }
        self.spans
            .for_each(|f| Filter::<S>::on_enter(f, id, ctx.clone()));
        if let Some(directives) = self.events.as_ref().and_then(Swappable::tracking_spans) {
            Filter::<S>::on_enter(&directives.env, id, ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if !self.tracks_spans() {
            return;
        }
        self.spans
            .for_each(|f| Filter::<S>::on_exit(f, id, ctx.clone()));
        if let Some(directives) = self.events.as_ref().and_then(Swappable::tracking_spans) {
            Filter::<S>::on_exit(&directives.env, id, ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if !self.tracks_spans() {
            return;
        }
        self.spans
            .for_each(|f| Filter::<S>::on_close(f, id.clone(), ctx.clone()));
        if let Some(directives) = self.events.as_ref().and_then(Swappable::tracking_spans) {
            Filter::<S>::on_close(&directives.env, id, ctx);
        }
    }
}

/// An output's layer (with the span layers it carries) and its
/// [`SplitFilter`] as the whole subscriber's only layer, the filter deciding
/// globally: for a stack in which that output is the only consumer of spans
/// and events, per-layer filtering decides exactly what a global filter
/// decides, at a price on every span callback (a registry lookup of the
/// span's filter map per layer callback) and every event (the per-layer
/// filter state). Being the only layer (no `Vec` of layers, one `Layered`)
/// also saves a walk of every layer's `downcast_raw` per `Layered` level on
/// each span close. Used by `Builder::build` for a single output with no
/// other layers; anything more keeps the per-layer filters.
pub(crate) struct GlobalFilter<L> {
    filter: SplitFilter,
    layer: L,
}

impl<L> GlobalFilter<L> {
    pub(crate) fn new(filter: SplitFilter, layer: L) -> Self {
        Self { filter, layer }
    }
}

impl<L> fmt::Debug for GlobalFilter<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalFilter")
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl<L, S> tracing_subscriber::Layer<S> for GlobalFilter<L>
where
    L: tracing_subscriber::Layer<S>,
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing_core::Dispatch) {
        self.layer.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.layer.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        Filter::<S>::callsite_enabled(&self.filter, metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        Filter::<S>::enabled(&self.filter, metadata, &ctx)
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        Filter::<S>::event_enabled(&self.filter, event, &ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Filter::<S>::max_level_hint(&self.filter)
    }

    // The span callbacks reach the filter only when it tracks spans:
    // checked here, where it is inlined (one load), since the call alone
    // costs about 20 instructions, four times a span.
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if self.filter.tracks_spans() {
            Filter::<S>::on_new_span(&self.filter, attrs, id, ctx.clone());
        }
        self.layer.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if self.filter.tracks_spans() {
            Filter::<S>::on_record(&self.filter, id, values, ctx.clone());
        }
        self.layer.on_record(id, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.layer.on_follows_from(span, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.layer.on_event(event, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if self.filter.tracks_spans() {
            Filter::<S>::on_enter(&self.filter, id, ctx.clone());
        }
        self.layer.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if self.filter.tracks_spans() {
            Filter::<S>::on_exit(&self.filter, id, ctx.clone());
        }
        self.layer.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if self.filter.tracks_spans() {
            Filter::<S>::on_close(&self.filter, id.clone(), ctx.clone());
        }
        self.layer.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.layer.on_id_change(old, new, ctx);
    }

    // SAFETY: asking for the wrapper's own type yields the wrapper itself;
    // every other answer is the wrapped layer's, whose pointers stay valid as
    // long as this wrapper (which owns it) lives.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else {
            // SAFETY: the wrapped layer upholds the same contract.
            unsafe { self.layer.downcast_raw(id) }
        }
    }
}

/// Tells the log bridge exactly whether any output writes a record.
///
/// With per-layer filters, `Dispatch::enabled` answers `true` for metadata
/// that no registered callsite carries (a `log` record's target) as soon as
/// fewer than 64 filters exist (tracing-subscriber counts unused filter
/// slots as "not disabled"), so the bridge would format records no output
/// writes. The first output layer carries this gate; the bridge finds it
/// with `Dispatch::downcast_ref`.
#[derive(Debug, Clone)]
pub(crate) struct LogRecordGate {
    lines: Vec<Swappable>,
    /// Another layer (a user's, or OpenTelemetry span events) may want any
    /// record: the dispatcher's answer stands.
    open: bool,
    /// While a raised request is open, only the dispatcher (which sees the
    /// span) can tell for levels the raise may enable.
    raise: Option<Arc<super::verbosity::Verbosity>>,
}

impl LogRecordGate {
    pub(crate) fn new(lines: Vec<Swappable>, open: bool) -> Self {
        Self {
            lines,
            open,
            raise: None,
        }
    }

    /// Defers to the dispatcher for records a raise may enable.
    pub(crate) fn with_raise(mut self, raise: Option<Arc<super::verbosity::Verbosity>>) -> Self {
        self.raise = raise;
        self
    }

    /// Whether some output writes a record of `target` at `level`: `None`
    /// when only the dispatcher can tell (another layer may want it, or an
    /// output's directives have span or field parts).
    pub(crate) fn decide(&self, target: &str, level: tracing_core::Level) -> Option<bool> {
        if self.open {
            return None;
        }
        let mut unknown = false;
        for lines in &self.lines {
            match &lines.0.load().targets {
                Some(targets) if targets.would_enable(target, &level) => return Some(true),
                Some(_) => {}
                None => unknown = true,
            }
        }
        if self
            .raise
            .as_ref()
            .is_some_and(|r| r.may_raise(level) && r.thread_in_raised())
        {
            return None;
        }
        (!unknown).then_some(false)
    }
}

/// Changes filters while the program runs: the line filter of each output,
/// and the span directives. Cheap to clone; from [`LoggingGuard::filter_handle`](crate::LoggingGuard::filter_handle).
///
/// A change applies to every thread at once (callsite interest is rebuilt),
/// including to `log` records forwarded by the log bridge. Span-scoped
/// directives (`[request]=debug`) apply to spans created after the change.
///
/// ```
/// let (dispatch, guard) = tracing_correlation::builder()
///     .writer(std::io::sink)
///     .filter("warn")
///     .build()
///     .expect("valid filter");
/// let filters = guard.filter_handle();
/// filters.reload("debug").expect("valid directives");
/// assert!(filters.reload("=bogus=").is_err());
/// # drop(dispatch);
/// ```
#[derive(Debug, Clone)]
pub struct FilterHandle {
    spans: Swappable,
    lines: Vec<Swappable>,
}

impl FilterHandle {
    pub(crate) fn new(spans: Swappable, lines: Vec<Swappable>) -> Self {
        Self { spans, lines }
    }

    /// Replaces the line filter of the first output (the one
    /// [`Builder::filter`](crate::Builder::filter) sets).
    ///
    /// # Errors
    ///
    /// [`FilterError`] when the directives do not parse; the filter in
    /// force is kept.
    pub fn reload(&self, directives: &str) -> Result<(), FilterError> {
        self.reload_output(0, directives)
    }

    /// Replaces the line filter of output `index`, counted in the order the
    /// outputs were added (0 is the first). An index past the last output
    /// changes nothing.
    ///
    /// # Errors
    ///
    /// [`FilterError`] when the directives do not parse; the filter in
    /// force is kept.
    pub fn reload_output(&self, index: usize, directives: &str) -> Result<(), FilterError> {
        let filter = parse(directives)?;
        if let Some(slot) = self.lines.get(index) {
            slot.store(filter);
            rebuilt();
        }
        Ok(())
    }

    /// Replaces the span directives (which spans exist beyond those the
    /// line filters enable; see [`Builder::span_filter`](crate::Builder::span_filter)).
    ///
    /// # Errors
    ///
    /// [`FilterError`] when the directives do not parse; the filter in
    /// force is kept.
    pub fn reload_spans(&self, directives: &str) -> Result<(), FilterError> {
        self.spans.store(parse(directives)?);
        rebuilt();
        Ok(())
    }
}

/// After a swap (or a raise opening or ending): every callsite asks the
/// filters again, the global max level is recomputed, and the `log` crate's
/// max level follows when the bridge is the `log` logger.
pub(crate) fn rebuilt() {
    tracing_core::callsite::rebuild_interest_cache();
    if crate::LogBridge::is_installed() {
        crate::LogBridge::sync_max_level();
    }
}

/// A layer whose events are not wanted: the OpenTelemetry layer when events
/// are not recorded as span events. Forwards everything but `on_event`, so
/// its filter can let events pass (see [`SplitFilter::spans_only`]) without
/// the layer turning them into span events.
pub(crate) struct IgnoreEvents<L>(pub(crate) L);

impl<L, S> tracing_subscriber::Layer<S> for IgnoreEvents<L>
where
    L: tracing_subscriber::Layer<S>,
    S: Subscriber,
{
    fn on_register_dispatch(&self, subscriber: &tracing_core::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.0.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.0.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.0.on_follows_from(span, follows, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.0.on_id_change(old, new, ctx);
    }

    // SAFETY: forwards to the inner layer, whose pointers stay valid as long
    // as this wrapper (which owns it) lives; asking for the wrapper's own
    // type yields the wrapper itself.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else {
            // SAFETY: the inner layer upholds the same contract.
            unsafe { self.0.downcast_raw(id) }
        }
    }
}
