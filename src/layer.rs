//! The correlation layer: keeps span ids and the OpenTelemetry context in step
//! with `tracing` spans, and renders each span's fields once.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, ContextGuard};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Dispatch, Subscriber};
use tracing_subscriber::layer;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::format::span_fields::SpanFields;
use crate::ids::{new_span_id, new_trace_id, TraceIds};

/// A `tracing-subscriber` layer that gives every span a W3C trace context and
/// keeps `opentelemetry::Context::current()` in step with the entered span.
///
/// It works in one of two modes, chosen when it is built:
///
/// * **Stand-alone** ([`CorrelationLayer::new`]): no OpenTelemetry SDK runs.
///   The layer mints ids itself — a child span inherits its parent's trace id,
///   flags and trace state; a span created while an OpenTelemetry context is
///   attached (for example a remote parent extracted from a `traceparent`
///   header) becomes its child; otherwise it starts a new random trace. On
///   enter it attaches an OpenTelemetry [`Context`](https://docs.rs/opentelemetry/0.33/opentelemetry/struct.Context.html) carrying that span context
///   (and the ambient baggage) and detaches it on exit, tolerating
///   out-of-order exits, so propagators and OpenTelemetry-native code see the
///   same ids as the log lines.
/// * **With OpenTelemetry** ([`CorrelationLayer::with_opentelemetry`]): a
///   `tracing_opentelemetry` layer sits *below* this one in the stack and
///   owns the ids; this layer records, on each span's first enter, the ids the
///   SDK gave it. It never starts an OpenTelemetry span itself (so
///   `set_parent` keeps working until the span is entered) and never takes
///   the OpenTelemetry layer's per-span lock.
///
/// Either way it also renders each span's fields to JSON once, when they are
/// recorded, so the [`JsonFormat`](crate::JsonFormat) splices them into each
/// line without re-parsing.
///
/// ```
/// use tracing_correlation::{CorrelationLayer, JsonFormat};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(CorrelationLayer::new())
///     .with(tracing_subscriber::fmt::layer().event_format(JsonFormat::new()));
/// tracing::subscriber::with_default(subscriber, || {
///     let _span = tracing::info_span!("request", id = 7).entered();
///     tracing::info!("handled"); // {"timestamp":…,"trace_id":…,"span_id":…}
/// });
/// ```
#[derive(Debug)]
pub struct CorrelationLayer {
    source: IdSource,
    /// Distinguishes this layer's entries in the per-thread guard stack from
    /// those of another subscriber on the same thread (span ids are only
    /// unique within one subscriber).
    instance: u64,
    lookup: IdsLookup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdSource {
    Mint,
    OpenTelemetry,
}

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

impl CorrelationLayer {
    /// A stand-alone layer that mints W3C trace and span ids itself.
    #[must_use]
    pub fn new() -> Self {
        Self::with_source(IdSource::Mint)
    }

    /// A layer that reads ids from a `tracing_opentelemetry` layer, which must
    /// be added to the subscriber *before* this one (so it runs first) with
    /// context activation on (its default).
    ///
    /// ```
    /// use tracing_correlation::{opentelemetry_sdk::trace::SdkTracerProvider, CorrelationLayer};
    /// use tracing_correlation::opentelemetry::trace::TracerProvider as _;
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let provider = SdkTracerProvider::builder().build();
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(tracing_correlation::tracing_opentelemetry::layer().with_tracer(provider.tracer("app")))
    ///     .with(CorrelationLayer::with_opentelemetry());
    /// # drop(subscriber);
    /// ```
    #[must_use]
    pub fn with_opentelemetry() -> Self {
        Self::with_source(IdSource::OpenTelemetry)
    }

    fn with_source(source: IdSource) -> Self {
        Self {
            source,
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            lookup: IdsLookup { get: |_, _| None },
        }
    }
}

impl Default for CorrelationLayer {
    fn default() -> Self {
        Self::new()
    }
}

/// What the layer keeps for each span, in the span's registry extensions.
pub(crate) struct SpanData {
    /// Set at creation (stand-alone) or on first enter (OpenTelemetry).
    ids: SpanIds,
    /// Stand-alone: the context attached while the span is entered.
    context: Option<Context>,
    /// The parent's span id (a local span's or a remote caller's),
    /// `INVALID` for a root. OpenTelemetry mode: the span id current when
    /// this span was created; if the context is still on it at enter, the
    /// SDK did not activate this span.
    parent_span_id: SpanId,
    pub(crate) fields: SpanFields,
}

impl SpanData {
    /// The span's ids, once known.
    pub(crate) fn ids(&self) -> Option<TraceIds> {
        match &self.ids {
            SpanIds::Minted(ids) => Some(*ids),
            SpanIds::FromSdk(ids) => ids.get(),
        }
    }

    /// The parent's span id, `None` for a root.
    pub(crate) fn parent_span_id(&self) -> Option<SpanId> {
        (self.parent_span_id != SpanId::INVALID).then_some(self.parent_span_id)
    }
}

/// A span's ids: known at creation when minted (no synchronisation needed
/// to read them), set once on first enter when the SDK owns them.
enum SpanIds {
    Minted(TraceIds),
    FromSdk(SetOnce),
}

/// Ids written once, on the span's first enter, under the span's extension
/// *read* lock (so events on other threads are never held up), and read by
/// any thread. A state byte orders the writes: the first writer claims it,
/// stores the ids, then publishes them; a reader sees the ids only once
/// published. The same as a `OnceLock` for this use (a reader racing the
/// first enter sees no ids, a second writer is ignored), without its
/// `Once` machinery (about 90 instructions per span).
struct SetOnce {
    state: AtomicU8,
    trace_id: [AtomicU64; 2],
    span_id: AtomicU64,
    flags: AtomicU8,
}

impl SetOnce {
    const EMPTY: u8 = 0;
    const WRITING: u8 = 1;
    const SET: u8 = 2;

    fn new() -> Self {
        Self {
            state: AtomicU8::new(Self::EMPTY),
            trace_id: [AtomicU64::new(0), AtomicU64::new(0)],
            span_id: AtomicU64::new(0),
            flags: AtomicU8::new(0),
        }
    }

    fn get(&self) -> Option<TraceIds> {
        if self.state.load(Ordering::Acquire) != Self::SET {
            return None;
        }
        let high = u128::from(self.trace_id[0].load(Ordering::Relaxed));
        let low = u128::from(self.trace_id[1].load(Ordering::Relaxed));
        Some(TraceIds::from_valid_parts(
            TraceId::from(high << 64 | low),
            SpanId::from(self.span_id.load(Ordering::Relaxed)),
            TraceFlags::new(self.flags.load(Ordering::Relaxed)),
        ))
    }

    fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) == Self::SET
    }

    /// Stores `ids` unless some thread already did (or is doing it).
    fn set(&self, ids: TraceIds) {
        if self
            .state
            .compare_exchange(
                Self::EMPTY,
                Self::WRITING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        let trace_id = u128::from_be_bytes(ids.trace_id().to_bytes());
        // Halves of the 128-bit id: the casts keep exactly 64 bits each.
        #[allow(clippy::cast_possible_truncation)]
        let (high, low) = ((trace_id >> 64) as u64, trace_id as u64);
        self.trace_id[0].store(high, Ordering::Relaxed);
        self.trace_id[1].store(low, Ordering::Relaxed);
        self.span_id.store(
            u64::from_be_bytes(ids.span_id().to_bytes()),
            Ordering::Relaxed,
        );
        self.flags
            .store(ids.trace_flags().to_u8(), Ordering::Relaxed);
        self.state.store(Self::SET, Ordering::Release);
    }
}

/// Reads a span's ids through a type-erased dispatcher (see
/// [`TraceIds::from_span`]).
#[derive(Clone, Copy)]
pub(crate) struct IdsLookup {
    get: fn(&Dispatch, &Id) -> Option<TraceIds>,
}

impl fmt::Debug for IdsLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdsLookup")
    }
}

impl IdsLookup {
    pub(crate) fn ids(self, dispatch: &Dispatch, id: &Id) -> Option<TraceIds> {
        (self.get)(dispatch, id)
    }
}

fn lookup_ids<S>(dispatch: &Dispatch, id: &Id) -> Option<TraceIds>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let subscriber = dispatch.downcast_ref::<S>()?;
    let span = subscriber.span(id)?;
    let extensions = span.extensions();
    extensions.get::<SpanData>()?.ids()
}

/// Per thread, stand-alone mode: the contexts this thread's entered spans
/// attached, and the context of the span it created last.
struct Attached {
    /// Keyed by layer instance and span id, so exits may come in any order.
    entered: Vec<(u64, Id, ContextGuard)>,
    /// Spans entered again while already entered on this thread, once per
    /// such enter. They attach nothing: the registry does not make them the
    /// current span again (its span stack skips such duplicates), so the
    /// context stays the one `Span::current()` is. Such an entry is always
    /// later on the registry's stack than the span's first one, so an exit
    /// of a span listed here is the exit of one of these (the registry pops
    /// the last entry of a span).
    again: Vec<(u64, Id)>,
    /// A span is usually entered right after it is created, on the thread
    /// that created it: its context is kept here so that that enter needs no
    /// registry lookup. Taken by the next enter on this thread (whichever
    /// span it is) or replaced by the next span created, so it never
    /// outlives that; the registry's span ids carry a generation, so a
    /// closed span's id is not the id of the next span in its slot.
    created: Option<(u64, Id, Context)>,
}

thread_local! {
    static ATTACHED: RefCell<Attached> = const {
        RefCell::new(Attached {
            entered: Vec::new(),
            again: Vec::new(),
            created: None,
        })
    };
}

/// Keeps `context` as the context of the span this thread created last and
/// returns the one it replaces (usually none: an enter took it), for the
/// caller to drop outside the borrow (a context's values may run any
/// destructor).
fn keep_created(instance: u64, id: &Id, context: &Context) -> Option<(u64, Id, Context)> {
    ATTACHED
        .try_with(|attached| {
            let mut attached = attached.try_borrow_mut().ok()?;
            attached
                .created
                .replace((instance, id.clone(), context.clone()))
        })
        .ok()
        .flatten()
}

impl CorrelationLayer {
    /// Chooses the parent context and ids of a new span (stand-alone mode).
    fn mint<S>(attrs: &Attributes<'_>, ctx: &layer::Context<'_, S>) -> (Context, TraceIds, SpanId)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let span_id = new_span_id();
        // A child of `parent`'s span (or a new trace), keeping the rest of
        // `parent` (baggage) in the new context.
        let child_of = |parent: &Context| {
            let parent_span = parent.span();
            let parent_context = parent_span.span_context();
            let span_context = if parent_context.is_valid() {
                SpanContext::new(
                    parent_context.trace_id(),
                    span_id,
                    parent_context.trace_flags(),
                    false,
                    parent_context.trace_state().clone(),
                )
            } else {
                SpanContext::new(
                    new_trace_id(),
                    span_id,
                    // Sampled, and random (W3C Level 2): `new_trace_id` is random.
                    TraceFlags::new(0x03),
                    false,
                    TraceState::NONE,
                )
            };
            let ids = TraceIds::from_valid_parts(
                span_context.trace_id(),
                span_id,
                span_context.trace_flags(),
            );
            (
                parent.with_remote_span_context(span_context),
                ids,
                parent_context.span_id(),
            )
        };
        if let Some(parent) = attrs.parent() {
            let parent = ctx.span(parent).and_then(|span| {
                let extensions = span.extensions();
                extensions.get::<SpanData>().and_then(|d| d.context.clone())
            });
            child_of(&parent.unwrap_or_default())
        } else if attrs.is_contextual() {
            Context::map_current(child_of)
        } else {
            child_of(&Context::new())
        }
    }
}

impl<S> Layer<S> for CorrelationLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        self.lookup = IdsLookup {
            get: lookup_ids::<S>,
        };
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: layer::Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        match self.source {
            IdSource::Mint => {
                let (context, ids, parent_span_id) = Self::mint(attrs, &ctx);
                let replaced = keep_created(self.instance, id, &context);
                // Fields rendered in place: a span's data is a few hundred
                // bytes, and each move of it is a copy.
                let mut data = SpanData {
                    ids: SpanIds::Minted(ids),
                    context: Some(context),
                    parent_span_id,
                    fields: SpanFields::unrecorded(attrs.metadata()),
                };
                data.fields.record_new(attrs);
                extensions.insert(data);
                // Outside the span's lock: a context's values may run any
                // destructor.
                drop(extensions);
                drop(replaced);
            }
            IdSource::OpenTelemetry => {
                let parent_span_id = if let Some(parent) = attrs.parent() {
                    ctx.span(parent)
                        .and_then(|p| p.extensions().get::<SpanData>().and_then(SpanData::ids))
                        .map_or(SpanId::INVALID, |ids| ids.span_id())
                } else if attrs.is_contextual() {
                    Context::map_current(|cx| cx.span().span_context().span_id())
                } else {
                    SpanId::INVALID
                };
                let mut data = SpanData {
                    ids: SpanIds::FromSdk(SetOnce::new()),
                    context: None,
                    parent_span_id,
                    fields: SpanFields::unrecorded(attrs.metadata()),
                };
                data.fields.record_new(attrs);
                extensions.insert(data);
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: layer::Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
                data.fields.record(values);
            }
        }
    }

    fn on_enter(&self, id: &Id, ctx: layer::Context<'_, S>) {
        match self.source {
            IdSource::Mint => {
                let instance = self.instance;
                // The span this thread just created: its context is at hand.
                let entered = ATTACHED.try_with(|attached| {
                    let mut attached = attached.try_borrow_mut().ok()?;
                    let created = attached.created.take()?;
                    if created.0 != instance || created.1 != *id {
                        return Some(Err(created));
                    }
                    // A span just created is entered for the first time.
                    let guard = created.2.attach();
                    attached.entered.push((instance, created.1, guard));
                    Some(Ok(()))
                });
                match entered {
                    Ok(Some(Ok(()))) => return,
                    // Dropped here, outside the borrow.
                    Ok(Some(Err(other))) => drop(other),
                    _ => {}
                }
                // Already entered on this thread: the registry keeps the
                // current span as it is, and so does the context.
                let again = ATTACHED.try_with(|attached| {
                    let mut attached = attached.try_borrow_mut().ok()?;
                    let attached = &mut *attached;
                    attached
                        .entered
                        .iter()
                        .any(|(i, entered, _)| *i == instance && entered == id)
                        .then(|| attached.again.push((instance, id.clone())))
                });
                if let Ok(Some(())) = again {
                    return;
                }
                let Some(span) = ctx.span(id) else {
                    return;
                };
                let context = {
                    let extensions = span.extensions();
                    extensions.get::<SpanData>().and_then(|d| d.context.clone())
                };
                if let Some(context) = context {
                    let guard = context.attach();
                    // If the thread is exiting, the guard drops here: nothing leaks.
                    let _ = ATTACHED.try_with(|attached| {
                        if let Ok(mut attached) = attached.try_borrow_mut() {
                            attached.entered.push((instance, id.clone(), guard));
                        }
                    });
                }
            }
            IdSource::OpenTelemetry => {
                let Some(span) = ctx.span(id) else {
                    return;
                };
                let extensions = span.extensions();
                if let Some(data) = extensions.get::<SpanData>() {
                    if let SpanIds::FromSdk(ids) = &data.ids {
                        if ids.is_set() {
                            return;
                        }
                        // The OpenTelemetry layer ran first and attached this
                        // span's context.
                        let current = Context::map_current(|cx| {
                            let sc = cx.span().span_context().clone();
                            (sc.span_id() != data.parent_span_id)
                                .then(|| TraceIds::from_span_context(&sc))
                                .flatten()
                        });
                        if let Some(found) = current {
                            ids.set(found);
                        }
                    }
                }
            }
        }
    }

    fn on_exit(&self, id: &Id, _ctx: layer::Context<'_, S>) {
        if self.source != IdSource::Mint {
            return;
        }
        let instance = self.instance;
        let guard = ATTACHED
            .try_with(|attached| {
                let mut attached = attached.try_borrow_mut().ok()?;
                let attached = &mut *attached;
                if let Some(at) = attached
                    .again
                    .iter()
                    .rposition(|(i, again)| *i == instance && again == id)
                {
                    attached.again.swap_remove(at);
                    return None;
                }
                let stack = &mut attached.entered;
                let at = stack
                    .iter()
                    .rposition(|(i, entered, _)| *i == instance && entered == id)?;
                // Exits usually come in order: the last entry.
                if at + 1 == stack.len() {
                    stack.pop()
                } else {
                    Some(stack.remove(at))
                }
            })
            .ok()
            .flatten();
        // Dropped after the stack's borrow ends: restoring the previous
        // context may run arbitrary destructors.
        drop(guard);
    }

    // SAFETY: each returned pointer is derived from `&self` (or a field of
    // it) and matches the `TypeId` asked for, so the caller's cast back to that
    // type is valid for as long as the layer lives — the contract of
    // `Layer::downcast_raw`.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else if id == std::any::TypeId::of::<IdsLookup>() {
            Some(std::ptr::from_ref(&self.lookup).cast())
        } else {
            None
        }
    }
}

/// Reads what the layer stored for a span, if the layer is present.
pub(crate) fn with_span_data<'a, R: LookupSpan<'a>, T>(
    span: &tracing_subscriber::registry::SpanRef<'a, R>,
    f: impl FnOnce(&SpanData) -> T,
) -> Option<T> {
    let extensions = span.extensions();
    extensions.get::<SpanData>().map(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_once_keeps_the_first_ids_it_is_given() {
        let slot = SetOnce::new();
        assert_eq!(slot.get(), None);
        assert!(!slot.is_set());
        let first = TraceIds::from_valid_parts(
            TraceId::from(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128),
            SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
            TraceFlags::new(0x03),
        );
        slot.set(first);
        assert_eq!(slot.get(), Some(first));
        slot.set(TraceIds::from_valid_parts(
            TraceId::from(1),
            SpanId::from(2),
            TraceFlags::new(0),
        ));
        assert_eq!(slot.get(), Some(first));
    }
}
