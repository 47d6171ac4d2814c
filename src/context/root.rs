//! Starting a new trace, detached from the ambient one.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;
use tracing::Span;

use super::captured::{keep_baggage, CapturedContext, OtelView};
use super::future::{FutureContextExt as _, InContext};
use super::link::{declares_link_fields, record_link_fields};
use crate::diagnostics::report;

/// Starts a new root trace with `root` as its first span (a background job,
/// a scheduled task), detached from the ambient trace. See [`NewRoot`].
///
/// `root` must be created with an explicit `parent: None`
/// (`tracing::info_span!(parent: None, "job")`): a span created with the
/// current span as its parent stays its child, whatever is done with it
/// afterwards. [`root_span!`](crate::root_span) does that, and declares the
/// `link.trace_id` / `link.span_id` fields that
/// [`link_to_ambient`](NewRoot::link_to_ambient) fills in.
///
/// ```
/// use tracing_correlation::{new_root, CorrelationLayer, TraceIds};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry().with(CorrelationLayer::new());
/// tracing::subscriber::with_default(subscriber, || {
///     let _request = tracing::info_span!("request").entered();
///     let request = TraceIds::current().map(|ids| ids.trace_id());
///     let job = new_root(tracing::info_span!(parent: None, "nightly_job"))
///         .link_to_ambient()
///         .capture();
///     let job_trace = std::thread::spawn(move || job.run(TraceIds::current)).join();
///     assert_ne!(job_trace.ok().flatten().map(|ids| ids.trace_id()), request);
/// });
/// ```
pub fn new_root(root: Span) -> NewRoot {
    NewRoot {
        span: root,
        link_to_ambient: false,
        keep_baggage: false,
    }
}

/// A new root trace, built by [`new_root`].
///
/// # Guarantees
///
/// Inside it (entered with [`run`](Self::run), or
/// [`capture`](Self::capture)d and entered later, anywhere):
///
/// * `tracing::Span::current()` is the root span;
/// * `opentelemetry::Context::current()` holds the root span's context and
///   nothing of the ambient one: no ambient remote parent, no ambient
///   baggage (unless [`keep_baggage`](Self::keep_baggage)), no other ambient
///   context values;
/// * events go to the caller's default subscriber.
///
/// What it keeps from the ambient context: the subscriber; with
/// [`link_to_ambient`](Self::link_to_ambient) a *link* (not a parent) to
/// the ambient span; with [`keep_baggage`](Self::keep_baggage) the ambient
/// baggage entries.
///
/// # Non-guarantees
///
/// * If `root` is disabled (filtered out), there is no trace inside at all:
///   lines carry no ids (kept baggage is still visible), and no link.
/// * The link reaches log lines only through the `link.trace_id` /
///   `link.span_id` fields, so only when `root` declares them (see
///   [`link_to_ambient`](Self::link_to_ambient)).
#[derive(Debug)]
#[must_use = "a new root does nothing until it is run or captured"]
pub struct NewRoot {
    span: Span,
    link_to_ambient: bool,
    keep_baggage: bool,
}

impl NewRoot {
    /// Links the root span to the ambient span, so the job can be found from
    /// the request that started it without being part of its trace:
    ///
    /// * on log lines, in both id modes: the ambient ids (those of
    ///   `opentelemetry::Context::current()` when the root is captured) as
    ///   the root span's `link.trace_id` and `link.span_id` fields — the same
    ///   fields [`HttpServerLayer`](crate::HttpServerLayer) writes for an
    ///   untrusted caller. The span must declare them, as
    ///   [`root_span!`](crate::root_span) does (or with
    ///   `link.trace_id = tracing::field::Empty, link.span_id = tracing::field::Empty`);
    ///   if it does not, the crate says so once on stderr;
    /// * for `tracing` layers: `Span::follows_from` the ambient span;
    /// * when spans are exported: an OpenTelemetry link to the ambient span.
    ///
    /// Nothing is linked when there is no ambient trace.
    ///
    /// ```
    /// use tracing_correlation::{new_root, root_span, CorrelationLayer, TraceIds};
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let subscriber = tracing_subscriber::registry().with(CorrelationLayer::new());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let _request = tracing::info_span!("request").entered();
    ///     let request = TraceIds::current().map(|ids| ids.trace_id());
    ///     let job = new_root(root_span!(tracing::Level::INFO, "job"))
    ///         .link_to_ambient()
    ///         .run(|| {
    ///             tracing::info!("this line carries link.trace_id and link.span_id");
    ///             TraceIds::current().map(|ids| ids.trace_id())
    ///         });
    ///     assert_ne!(job, request);
    /// });
    /// ```
    pub fn link_to_ambient(mut self) -> Self {
        self.link_to_ambient = true;
        self
    }

    /// Keeps the ambient baggage entries (tenant, user…) inside the new
    /// trace.
    ///
    /// ```
    /// let job = tracing_correlation::new_root(tracing::info_span!(parent: None, "job"))
    ///     .keep_baggage();
    /// # drop(job);
    /// ```
    pub fn keep_baggage(mut self) -> Self {
        self.keep_baggage = true;
        self
    }

    /// The new root as a [`CapturedContext`], to enter here or elsewhere
    /// (a thread, a task). Links and baggage are taken from the ambient
    /// context now.
    ///
    /// ```
    /// let job = tracing_correlation::new_root(tracing::info_span!(parent: None, "job")).capture();
    /// std::thread::spawn(move || job.run(|| tracing::info!("in the job's own trace"))).join().ok();
    /// ```
    pub fn capture(self) -> CapturedContext {
        if self.link_to_ambient {
            CapturedContext::capture().link_follower(&self.span);
            let ambient = Context::map_current(|cx| cx.span().span_context().clone());
            if ambient.is_valid() && !self.span.is_disabled() {
                if declares_link_fields(&self.span) {
                    record_link_fields(&self.span, &ambient);
                } else {
                    report_undeclared_link_fields(&self.span);
                }
            }
        }
        let baggage = self
            .keep_baggage
            .then(|| Context::map_current(keep_baggage));
        CapturedContext::from_parts(self.span, OtelView::SpanOwn { baggage })
    }

    /// Runs `f` on this thread inside the new root; the ambient context is
    /// restored afterwards.
    ///
    /// ```
    /// tracing_correlation::new_root(tracing::info_span!(parent: None, "job"))
    ///     .run(|| tracing::info!("in the job's own trace"));
    /// ```
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        self.capture().run(f)
    }

    /// Wraps `future` so that it runs inside the new root on every poll
    /// (and is dropped inside it), on whatever executor polls it. Links and
    /// baggage are taken from the ambient context now, as with
    /// [`capture`](Self::capture). Same as
    /// [`FutureContextExt::in_new_root`](crate::FutureContextExt::in_new_root).
    ///
    /// ```
    /// use tracing_correlation::{new_root, root_span};
    ///
    /// let job = new_root(root_span!(tracing::Level::INFO, "nightly_job"))
    ///     .link_to_ambient()
    ///     .in_future(async { tracing::info!("in the job's own trace") });
    /// # drop(job);
    /// ```
    pub fn in_future<F: Future>(self, future: F) -> InContext<F> {
        future.in_context(self.capture())
    }

    /// Spawns `future` on the current tokio runtime as the new root
    /// (`tokio::spawn(new_root.in_future(future))`): every poll of the task,
    /// on any worker thread, runs inside the new trace.
    ///
    /// Links and baggage are taken from the ambient context at the call.
    /// Everything else is `tokio::spawn`'s: there is no guarantee that the
    /// task runs to completion, and it panics if called from outside a tokio
    /// runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tracing_correlation::{new_root, root_span};
    ///
    /// let job = new_root(root_span!(tracing::Level::INFO, "nightly_job"))
    ///     .link_to_ambient()
    ///     .spawn(async { tracing::info!("in the job's own trace") });
    /// job.await.ok();
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn spawn<F>(self, future: F) -> ::tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        ::tokio::spawn(self.in_future(future))
    }
}

/// Says once per process that a linked root cannot show its link on lines.
fn report_undeclared_link_fields(span: &Span) {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if !REPORTED.swap(true, Ordering::Relaxed) {
        let name = span.metadata().map_or("?", |metadata| metadata.name());
        report!(
            "new_root(..).link_to_ambient(): span `{name}` declares no `link.trace_id` / \
             `link.span_id` fields, so its log lines cannot show the link; create it with \
             `tracing_correlation::root_span!` or declare both as `tracing::field::Empty` \
             (reported once)"
        );
    }
}

/// Creates a span for [`new_root`]: a `tracing::span!` with `parent: None`
/// (so it starts a new trace) that declares the `link.trace_id` and
/// `link.span_id` fields [`NewRoot::link_to_ambient`] records, followed by
/// your own fields.
///
/// `root_span!(level, name)` or `root_span!(level, name, fields…)`, with
/// fields written as for `tracing::span!`.
///
/// ```
/// use tracing::Level;
/// use tracing_correlation::{new_root, root_span};
///
/// let attempt = 3;
/// new_root(root_span!(Level::INFO, "nightly_cleanup", attempt, kind = "full"))
///     .link_to_ambient()
///     .run(|| tracing::info!("cleaning up"));
/// ```
#[macro_export]
macro_rules! root_span {
    ($level:expr, $name:expr) => {
        $crate::__private::tracing::span!(
            parent: ::core::option::Option::None,
            $level,
            $name,
            link.trace_id = $crate::__private::tracing::field::Empty,
            link.span_id = $crate::__private::tracing::field::Empty
        )
    };
    ($level:expr, $name:expr, $($fields:tt)+) => {
        $crate::__private::tracing::span!(
            parent: ::core::option::Option::None,
            $level,
            $name,
            link.trace_id = $crate::__private::tracing::field::Empty,
            link.span_id = $crate::__private::tracing::field::Empty,
            $($fields)+
        )
    };
}
