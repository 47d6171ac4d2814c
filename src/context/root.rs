//! Starting a new trace, detached from the ambient one.

use opentelemetry::Context;
use tracing::Span;

use super::captured::{keep_baggage, CapturedContext, OtelView};

/// Starts a new root trace with `root` as its first span (a background job,
/// a scheduled task), detached from the ambient trace. See [`NewRoot`].
///
/// `root` must be created with an explicit `parent: None`
/// (`tracing::info_span!(parent: None, "job")`): a span created with the
/// current span as its parent stays its child, whatever is done with it
/// afterwards.
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
///   lines carry no ids (kept baggage is still visible).
/// * Stand-alone (no OpenTelemetry layer) the link is only a
///   `Span::follows_from` relation for `tracing` layers; nothing exports it.
#[derive(Debug)]
#[must_use = "a new root does nothing until it is run or captured"]
pub struct NewRoot {
    span: Span,
    link_to_ambient: bool,
    keep_baggage: bool,
}

impl NewRoot {
    /// Links the root span to the ambient span ( `Span::follows_from`,
    /// exported as an OpenTelemetry link), so the job can be found from the
    /// request that started it, without being part of its trace.
    ///
    /// ```
    /// let job = tracing_correlation::new_root(tracing::info_span!(parent: None, "job"))
    ///     .link_to_ambient();
    /// # drop(job);
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
}
