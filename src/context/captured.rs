//! The captured context: the caller's subscriber, span and OpenTelemetry
//! context in one value, to be entered later on any thread.

use opentelemetry::baggage::{Baggage, BaggageExt, BaggageMetadata};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, ContextGuard, Key, StringValue};
use tracing::dispatcher::{self, DefaultGuard, Dispatch};
use tracing::Span;
use tracing_core::subscriber::NoSubscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::ids::TraceIds;

/// The caller's view of "where am I": its `tracing` subscriber, its current
/// [`Span`][span] and its current OpenTelemetry [`Context`][context] (so
/// baggage and a remote parent attached *inside* the span travel too),
/// captured now and entered later, on any thread, as often as needed.
///
/// [span]: https://docs.rs/tracing/0.1/tracing/struct.Span.html
/// [context]: https://docs.rs/opentelemetry/0.33/opentelemetry/struct.Context.html
///
/// `tracing` keeps the current span per thread and OpenTelemetry keeps the
/// current context per thread, so work that runs elsewhere — another thread,
/// another task, a callback called later — starts without them and its log
/// lines lose the trace. Capture on the caller's side, enter on the worker's:
///
/// ```
/// use tracing_correlation::{CapturedContext, CorrelationLayer, TraceIds};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry().with(CorrelationLayer::new());
/// tracing::subscriber::with_default(subscriber, || {
///     let _request = tracing::info_span!("request").entered();
///     let caller = TraceIds::current();
///     let context = CapturedContext::capture();
///     let worker = std::thread::spawn(move || context.run(TraceIds::current));
///     assert_eq!(worker.join().ok().flatten(), caller);
/// });
/// ```
///
/// # Guarantees
///
/// While entered (by [`run`](Self::run), [`enter`](Self::enter),
/// [`wrap`](Self::wrap) or a future from
/// [`in_context`](crate::FutureContextExt::in_context)):
///
/// * `tracing::Span::current()` is the captured span, so new spans are its
///   children and events belong to it;
/// * `opentelemetry::Context::current()` equals the captured context: same
///   span context, same baggage, same other values;
/// * events go to the caller's default subscriber (also when it was a scoped
///   one set with `tracing::subscriber::with_default`), unless the caller had
///   none, in which case the thread's own default is used.
///
/// When the guard is dropped, all three are restored to what they were.
/// Entering nests, and entering the same captured context on many threads at
/// once is fine.
///
/// # Non-guarantees
///
/// * The captured span stays open (is not closed) while any clone of the
///   captured context lives, so a task or a queued message holding one
///   extends its span's lifetime, as `Future::instrument` does.
/// * Capturing does not record *when* the work ran: a worker that runs after
///   the caller's span closed still logs with its ids.
/// * Order: the span is entered first (which, in both id modes, attaches the
///   span's own OpenTelemetry context), then the captured OpenTelemetry
///   context is attached on top, since it may be more specific (a remote
///   parent or baggage attached inside the span). Leaving undoes both in
///   reverse.
#[derive(Debug, Clone)]
pub struct CapturedContext {
    dispatch: Option<Dispatch>,
    span: Span,
    otel: OtelView,
}

/// What to attach on top of the entered span.
#[derive(Debug, Clone)]
pub(crate) enum OtelView {
    /// Exactly this context (the caller's `Context::current()`).
    Exact(Context),
    /// Nothing but what entering the span attaches (a new root's own
    /// context), plus kept baggage. If the span is disabled, an empty
    /// context, so nothing ambient shows through.
    SpanOwn { baggage: Option<KeptBaggage> },
}

/// Baggage entries kept for a new root (`Baggage` itself is not `Clone`).
pub(crate) type KeptBaggage = Vec<(Key, (StringValue, BaggageMetadata))>;

pub(crate) fn keep_baggage(cx: &Context) -> KeptBaggage {
    cx.baggage()
        .into_iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn rebuild(kept: &KeptBaggage) -> Baggage {
    kept.iter().cloned().collect()
}

impl CapturedContext {
    /// Captures the current subscriber, span and OpenTelemetry context of
    /// this thread.
    ///
    /// Outside any span and context it captures "no trace": entering it
    /// hides whatever trace the worker thread had.
    ///
    /// ```
    /// let context = tracing_correlation::CapturedContext::capture();
    /// assert!(context.span().is_none());
    /// assert_eq!(context.trace_ids(), None);
    /// ```
    pub fn capture() -> Self {
        Self {
            dispatch: current_dispatch(),
            span: Span::current(),
            otel: OtelView::Exact(Context::current()),
        }
    }

    pub(crate) fn from_parts(span: Span, otel: OtelView) -> Self {
        Self {
            dispatch: current_dispatch(),
            span,
            otel,
        }
    }

    /// Enters the context on this thread until the returned guard is dropped.
    ///
    /// The guard is not `Send`; do not hold it across an `.await` (the task
    /// may move, and other tasks polled on this thread would see this
    /// context): instrument the future with
    /// [`in_context`](crate::FutureContextExt::in_context) instead.
    ///
    /// ```
    /// use tracing_correlation::CapturedContext;
    ///
    /// let context = CapturedContext::capture();
    /// let guard = context.enter();
    /// tracing::info!("logged in the captured context");
    /// drop(guard);
    /// ```
    pub fn enter(&self) -> EnteredContext<'_> {
        let dispatch = self.dispatch.as_ref().map(dispatcher::set_default);
        let span = self.span.enter();
        let otel = match &self.otel {
            OtelView::Exact(cx) => Some(cx.clone().attach()),
            OtelView::SpanOwn { baggage } => {
                if self.span.is_disabled() {
                    let empty = Context::new();
                    Some(
                        match baggage {
                            Some(baggage) => empty.with_baggage(rebuild(baggage)),
                            None => empty,
                        }
                        .attach(),
                    )
                } else {
                    baggage.as_ref().map(|baggage| {
                        Context::map_current(|cx| cx.with_baggage(rebuild(baggage))).attach()
                    })
                }
            }
        };
        EnteredContext {
            _otel: otel,
            _span: span,
            _dispatch: dispatch,
        }
    }

    /// Runs `f` inside the context and returns its result; the previous
    /// context is restored afterwards, also when `f` panics.
    ///
    /// ```
    /// use tracing_correlation::CapturedContext;
    ///
    /// let context = CapturedContext::capture();
    /// let answer = std::thread::spawn(move || context.run(|| 6 * 7)).join();
    /// assert_eq!(answer.ok(), Some(42));
    /// ```
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.enter();
        f()
    }

    /// Binds `f` to this context: calling the result runs `f` inside it.
    /// The closure is `Send` when `f` is.
    ///
    /// ```
    /// use tracing_correlation::CapturedContext;
    ///
    /// let job = CapturedContext::capture().wrap(|| tracing::info!("in the caller's context"));
    /// std::thread::spawn(job).join().ok();
    /// ```
    pub fn wrap<F, R>(self, f: F) -> impl FnOnce() -> R
    where
        F: FnOnce() -> R,
    {
        move || self.run(f)
    }

    /// Binds a callback that may be called many times (and from many threads
    /// at once when it is `Sync`): each call runs inside this context. For
    /// more than one argument, take a tuple.
    ///
    /// ```
    /// use tracing_correlation::CapturedContext;
    ///
    /// let on_item = CapturedContext::capture().wrap_fn(|n: u32| tracing::info!(n, "item"));
    /// let callbacks: Vec<Box<dyn Fn(u32) + Send + Sync>> = vec![Box::new(on_item)];
    /// for callback in &callbacks {
    ///     callback(7);
    /// }
    /// ```
    pub fn wrap_fn<F, A, R>(self, f: F) -> impl Fn(A) -> R
    where
        F: Fn(A) -> R,
    {
        move |arg| self.run(|| f(arg))
    }

    /// Binds a stateful callback: each call runs inside this context.
    ///
    /// ```
    /// use tracing_correlation::CapturedContext;
    ///
    /// let mut seen = 0;
    /// let mut count = CapturedContext::capture().wrap_fn_mut(|n: u32| seen += n);
    /// count(2);
    /// count(3);
    /// drop(count);
    /// assert_eq!(seen, 5);
    /// ```
    pub fn wrap_fn_mut<F, A, R>(self, mut f: F) -> impl FnMut(A) -> R
    where
        F: FnMut(A) -> R,
    {
        move |arg| self.run(|| f(arg))
    }

    /// The captured span (`Span::none()` when the caller was in none).
    ///
    /// ```
    /// use tracing_correlation::CapturedContext;
    /// assert!(CapturedContext::capture().span().is_none());
    /// ```
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The ids a log line written inside this context carries, when they are
    /// known now: those of the captured OpenTelemetry context, or, for a new
    /// root, of its span (`None` until an OpenTelemetry-exported root is
    /// first entered).
    ///
    /// ```
    /// use tracing_correlation::CapturedContext;
    /// assert_eq!(CapturedContext::capture().trace_ids(), None);
    /// ```
    pub fn trace_ids(&self) -> Option<TraceIds> {
        match &self.otel {
            OtelView::Exact(cx) => TraceIds::from_context(cx),
            OtelView::SpanOwn { .. } => TraceIds::from_span(&self.span),
        }
    }

    /// Records that `follower` follows from this context, for a span that is
    /// caused by this work but is not its child (a queue consumer, a
    /// background job): `follower.follows_from(captured span)`, which the
    /// tracing-opentelemetry layer exports as a link, plus an OpenTelemetry
    /// link to the captured OpenTelemetry span context when that is not the
    /// captured span's own (a remote parent attached inside it).
    ///
    /// Call it before `follower` is first entered. Stand-alone (no
    /// OpenTelemetry layer) the relation is only seen by `tracing` layers
    /// that implement `on_follows_from`; log lines are unaffected.
    ///
    /// ```
    /// use tracing_correlation::CapturedContext;
    ///
    /// let producer = CapturedContext::capture();
    /// let consumer = tracing::info_span!(parent: None, "consume");
    /// producer.link_follower(&consumer);
    /// ```
    pub fn link_follower(&self, follower: &Span) {
        follower.follows_from(&self.span);
        if let OtelView::Exact(cx) = &self.otel {
            let linked = cx.span().span_context().clone();
            let own = TraceIds::from_span(&self.span);
            if linked.is_valid() && own != TraceIds::from_span_context(&linked) {
                follower.add_link(linked);
            }
        }
    }
}

fn current_dispatch() -> Option<Dispatch> {
    dispatcher::get_default(|dispatch| (!dispatch.is::<NoSubscriber>()).then(|| dispatch.clone()))
}

/// A [`CapturedContext`] entered on this thread; dropping it restores what
/// was current before. Returned by [`CapturedContext::enter`].
///
/// ```
/// let context = tracing_correlation::CapturedContext::capture();
/// let _entered: tracing_correlation::EnteredContext<'_> = context.enter();
/// ```
#[must_use = "the context is left as soon as this guard is dropped"]
#[derive(Debug)]
pub struct EnteredContext<'a> {
    // Fields drop in declaration order: the OpenTelemetry context first, then
    // the span, then the subscriber — the reverse of entering.
    _otel: Option<ContextGuard>,
    _span: tracing::span::Entered<'a>,
    _dispatch: Option<DefaultGuard>,
}

/// Binds `f` to the current context: shorthand for
/// `CapturedContext::capture().wrap(f)`.
///
/// ```
/// let _request = tracing::info_span!("request").entered();
/// let callback = tracing_correlation::bind(|| tracing::info!("still in the request"));
/// std::thread::spawn(callback).join().ok();
/// ```
pub fn bind<F, R>(f: F) -> impl FnOnce() -> R
where
    F: FnOnce() -> R,
{
    CapturedContext::capture().wrap(f)
}
