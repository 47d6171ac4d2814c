//! The OpenTelemetry span layer as the builder sets it up: which optional
//! attributes tracing-opentelemetry adds to every span ([`SpanDetails`]), the
//! instrumentation scope, and unsigned integers exported as integers
//! ([`SignedIntegers`]).
//!
//! tracing-opentelemetry 0.34 has no `record_u64`: a `u16`/`u32`/`u64` field
//! falls through to `record_debug` and is exported as a *string* attribute
//! (`http.response.status_code = "200"`). It cannot be configured, so
//! [`SignedIntegers`] sits in front of its layer and hands it the same values
//! with every unsigned (and 128-bit) integer that fits an `i64` recorded as
//! an `i64`, the type OTLP's `int_value` has. Larger values stay strings, as
//! before: a wrapped-around negative number would be a wrong number.

use std::any::TypeId;
use std::error::Error;
use std::fmt;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_core::field::{display, DisplayValue, Field, FieldSet, ValueSet, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use tracing_subscriber::Registry;

/// The instrumentation scope of every span and log record this crate exports.
pub(crate) const SCOPE_NAME: &str = "tracing-correlation";
/// This crate's version, the scope's version.
pub(crate) const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The attributes tracing-opentelemetry can add to every exported span
/// (`busy_ns`, `idle_ns`, `thread.*`, `code.*`, `target`), none
/// of which the OpenTelemetry conventions ask for on an HTTP or RPC span; all
/// off by default ([`SpanDetails::NONE`]), chosen with
/// [`Builder::otel_span_details`](crate::Builder::otel_span_details).
///
/// Code locations name the `tracing` callsite that opened the span: for the
/// spans of this crate's middleware that is this crate's source, not yours.
///
/// ```
/// use tracing_correlation::SpanDetails;
///
/// let details = SpanDetails::NONE.with_timings(true);
/// assert!(details.timings() && !details.threads() && !details.code_location());
/// let all = SpanDetails::NONE
///     .with_timings(true)
///     .with_threads(true)
///     .with_code_location(true)
///     .with_target(true);
/// assert_eq!(SpanDetails::ALL, all);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)] // independent switches, each with its own setter
pub struct SpanDetails {
    timings: bool,
    threads: bool,
    code_location: bool,
    target: bool,
}

impl SpanDetails {
    /// No optional attribute (the default).
    pub const NONE: Self = Self {
        timings: false,
        threads: false,
        code_location: false,
        target: false,
    };
    /// Every optional attribute, as tracing-opentelemetry's own defaults.
    pub const ALL: Self = Self {
        timings: true,
        threads: true,
        code_location: true,
        target: true,
    };

    /// `busy_ns` and `idle_ns`: time spent inside and outside the span while
    /// it was open.
    ///
    /// ```
    /// assert!(tracing_correlation::SpanDetails::NONE.with_timings(true).timings());
    /// ```
    #[must_use]
    pub const fn with_timings(mut self, on: bool) -> Self {
        self.timings = on;
        self
    }

    /// `thread.id` and `thread.name` of the thread that opened the span.
    ///
    /// ```
    /// assert!(tracing_correlation::SpanDetails::NONE.with_threads(true).threads());
    /// ```
    #[must_use]
    pub const fn with_threads(mut self, on: bool) -> Self {
        self.threads = on;
        self
    }

    /// `code.file.path`, `code.module.name` and `code.line.number` of the
    /// callsite that opened the span.
    ///
    /// ```
    /// assert!(tracing_correlation::SpanDetails::NONE.with_code_location(true).code_location());
    /// ```
    #[must_use]
    pub const fn with_code_location(mut self, on: bool) -> Self {
        self.code_location = on;
        self
    }

    /// `target`: the `tracing` target of the span's callsite (its module
    /// path unless the callsite names one).
    ///
    /// ```
    /// assert!(tracing_correlation::SpanDetails::NONE.with_target(true).target());
    /// ```
    #[must_use]
    pub const fn with_target(mut self, on: bool) -> Self {
        self.target = on;
        self
    }

    /// Whether `target` is added.
    ///
    /// ```
    /// assert!(!tracing_correlation::SpanDetails::NONE.target());
    /// ```
    #[must_use]
    pub const fn target(self) -> bool {
        self.target
    }

    /// Whether `busy_ns`/`idle_ns` are added.
    ///
    /// ```
    /// assert!(!tracing_correlation::SpanDetails::NONE.timings());
    /// ```
    #[must_use]
    pub const fn timings(self) -> bool {
        self.timings
    }

    /// Whether `thread.id`/`thread.name` are added.
    ///
    /// ```
    /// assert!(tracing_correlation::SpanDetails::ALL.threads());
    /// ```
    #[must_use]
    pub const fn threads(self) -> bool {
        self.threads
    }

    /// Whether `code.*` attributes are added.
    ///
    /// ```
    /// assert!(tracing_correlation::SpanDetails::ALL.code_location());
    /// ```
    #[must_use]
    pub const fn code_location(self) -> bool {
        self.code_location
    }
}

/// The exporting layer for `provider`: tracing-opentelemetry with only the
/// `details` asked for, this crate's scope name and version, behind
/// [`SignedIntegers`].
pub(crate) fn span_layer(
    provider: &SdkTracerProvider,
    details: SpanDetails,
) -> SignedIntegers<
    tracing_opentelemetry::OpenTelemetryLayer<Registry, opentelemetry_sdk::trace::Tracer>,
> {
    let scope = InstrumentationScope::builder(SCOPE_NAME)
        .with_version(SCOPE_VERSION)
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer_with_scope(scope))
        .with_tracked_inactivity(details.timings)
        .with_threads(details.threads)
        .with_location(details.code_location)
        .with_target(details.target);
    SignedIntegers { inner: layer }
}

/// Forwards everything to `inner`, with integers that tracing-opentelemetry
/// would turn into strings recorded as `i64` instead (see the module docs).
#[derive(Debug)]
pub(crate) struct SignedIntegers<L> {
    inner: L,
}

impl<S, L> Layer<S> for SignedIntegers<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static tracing_core::Metadata<'static>,
    ) -> tracing_core::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &tracing_core::Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        let narrowed = with_narrowed(attrs.values(), metadata.fields(), |values| {
            let attrs = if attrs.is_root() {
                Attributes::new_root(metadata, values)
            } else if let Some(parent) = attrs.parent() {
                Attributes::child_of(parent.clone(), metadata, values)
            } else {
                Attributes::new(metadata, values)
            };
            self.inner.on_new_span(&attrs, id, ctx.clone());
        });
        if narrowed.is_none() {
            self.inner.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let fields = ctx.metadata(id).map(tracing_core::Metadata::fields);
        let narrowed = fields.and_then(|fields| {
            with_narrowed_record(values, fields, |narrowed| {
                self.inner
                    .on_record(id, &Record::new(narrowed), ctx.clone());
            })
        });
        if narrowed.is_none() {
            self.inner.on_record(id, values, ctx);
        }
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let narrowed = with_narrowed_event(event, |values| {
            let event = if event.is_contextual() {
                Event::new(metadata, values)
            } else {
                Event::new_child_of(event.parent().cloned(), metadata, values)
            };
            self.inner.on_event(&event, ctx.clone());
        });
        if narrowed.is_none() {
            self.inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    // SAFETY: the inner layer's pointer is derived from `&self.inner`, which
    // lives as long as `&self`; `Self` is answered with a pointer to `self`.
    // Forwarding keeps tracing-opentelemetry's `WithContext` reachable, which
    // `OpenTelemetrySpanExt` needs.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else {
            // SAFETY: the same contract, passed on.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}

/// The most fields one callsite may have (tracing's macros allow 32).
const MAX_FIELDS: usize = 32;

/// A field's value, taken out of a visitor so it can be handed on again.
enum Captured {
    Bool(bool),
    I64(i64),
    F64(f64),
    Str(String),
    /// A `Debug`/`Display` value, already formatted; handed on through
    /// `record_debug` with the same text.
    Formatted(DisplayValue<String>),
    Error(Box<dyn Error + Send + Sync + 'static>),
}

/// An error's message and source chain, kept as text.
#[derive(Debug)]
struct CapturedError {
    message: String,
    source: Option<Box<CapturedError>>,
}

impl CapturedError {
    fn new(error: &(dyn Error + 'static)) -> Self {
        Self {
            message: error.to_string(),
            source: error.source().map(|source| Box::new(Self::new(source))),
        }
    }
}

impl fmt::Display for CapturedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for CapturedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|source| source as _)
    }
}

/// Whether any value would be exported as a string although it is an
/// integer that fits an `i64`.
#[derive(Default)]
struct NeedsNarrowing(bool);

impl Visit for NeedsNarrowing {
    fn record_u64(&mut self, _: &Field, value: u64) {
        self.0 |= i64::try_from(value).is_ok();
    }
    fn record_u128(&mut self, _: &Field, value: u128) {
        self.0 |= i64::try_from(value).is_ok();
    }
    fn record_i128(&mut self, _: &Field, value: i128) {
        self.0 |= i64::try_from(value).is_ok();
    }
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

/// Every value of a record, with the integers narrowed.
#[derive(Default)]
struct Capture {
    values: Vec<(Field, Captured)>,
}

impl Visit for Capture {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.values.push((field.clone(), Captured::Bool(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values.push((field.clone(), Captured::I64(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        let captured = i64::try_from(value).map_or_else(
            |_| Captured::Formatted(display(value.to_string())),
            Captured::I64,
        );
        self.values.push((field.clone(), captured));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        let captured = i64::try_from(value).map_or_else(
            |_| Captured::Formatted(display(value.to_string())),
            Captured::I64,
        );
        self.values.push((field.clone(), captured));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        let captured = i64::try_from(value).map_or_else(
            |_| Captured::Formatted(display(value.to_string())),
            Captured::I64,
        );
        self.values.push((field.clone(), captured));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.values.push((field.clone(), Captured::F64(value)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.values
            .push((field.clone(), Captured::Str(value.to_owned())));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        self.values.push((
            field.clone(),
            Captured::Error(Box::new(CapturedError::new(value))),
        ));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.values.push((
            field.clone(),
            Captured::Formatted(display(format!("{value:?}"))),
        ));
    }
}

/// Runs `f` with a copy of `values` in which integers are narrowed, when
/// any needs it; `None` (and `f` not run) when none does or the set is too
/// large to copy.
fn with_narrowed<R>(
    values: &ValueSet<'_>,
    fields: &FieldSet,
    f: impl FnOnce(&ValueSet<'_>) -> R,
) -> Option<R> {
    let mut needs = NeedsNarrowing::default();
    values.record(&mut needs);
    if !needs.0 {
        return None;
    }
    let mut capture = Capture::default();
    values.record(&mut capture);
    rebuild(&capture, fields, f)
}

fn with_narrowed_record<R>(
    values: &Record<'_>,
    fields: &FieldSet,
    f: impl FnOnce(&ValueSet<'_>) -> R,
) -> Option<R> {
    let mut needs = NeedsNarrowing::default();
    values.record(&mut needs);
    if !needs.0 {
        return None;
    }
    let mut capture = Capture::default();
    values.record(&mut capture);
    rebuild(&capture, fields, f)
}

fn with_narrowed_event<R>(event: &Event<'_>, f: impl FnOnce(&ValueSet<'_>) -> R) -> Option<R> {
    let mut needs = NeedsNarrowing::default();
    event.record(&mut needs);
    if !needs.0 {
        return None;
    }
    let mut capture = Capture::default();
    event.record(&mut capture);
    rebuild(&capture, event.metadata().fields(), f)
}

fn rebuild<R>(
    capture: &Capture,
    fields: &FieldSet,
    f: impl FnOnce(&ValueSet<'_>) -> R,
) -> Option<R> {
    if capture.values.is_empty() || capture.values.len() > MAX_FIELDS {
        return None;
    }
    let values: Vec<&dyn tracing_core::field::Value> = capture
        .values
        .iter()
        .map(|(_, value)| -> &dyn tracing_core::field::Value {
            match value {
                Captured::Bool(value) => value,
                Captured::I64(value) => value,
                Captured::F64(value) => value,
                Captured::Str(value) => value,
                Captured::Formatted(value) => value,
                Captured::Error(error) => error,
            }
        })
        .collect();
    let first = &capture.values[0].0;
    let mut entries: [(&Field, Option<&dyn tracing_core::field::Value>); MAX_FIELDS] =
        [(first, None); MAX_FIELDS];
    for (slot, ((field, _), value)) in entries.iter_mut().zip(capture.values.iter().zip(&values)) {
        *slot = (field, Some(*value));
    }
    Some(f(&fields.value_set(&entries)))
}
