//! Futures that run every poll inside a captured context.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use super::captured::CapturedContext;
use super::root::NewRoot;

/// Runs a future inside a [`CapturedContext`].
///
/// Implemented for every future. A bare `tokio::spawn(future)` runs
/// `future` without the caller's span and OpenTelemetry context; spawn
/// `future.in_current_context()` (or use
/// [`context::tokio::spawn`](crate::context)) instead.
///
/// ```
/// use tracing_correlation::FutureContextExt as _;
///
/// async fn handle() {
///     tracing::info!("in the request's context, on every poll");
/// }
///
/// let _request = tracing::info_span!("request").entered();
/// let future = handle().in_current_context();
/// # drop(future);
/// ```
pub trait FutureContextExt: Future + Sized {
    /// Wraps the future so that `context` is entered around every poll of
    /// it, and around its drop.
    ///
    /// ```
    /// use tracing_correlation::{CapturedContext, FutureContextExt as _};
    ///
    /// let context = CapturedContext::capture();
    /// let future = async { 42 }.in_context(context);
    /// # drop(future);
    /// ```
    fn in_context(self, context: CapturedContext) -> InContext<Self> {
        InContext {
            context,
            inner: Some(self),
        }
    }

    /// Wraps the future in the context current now (see
    /// [`CapturedContext::capture`]).
    ///
    /// ```
    /// use tracing_correlation::FutureContextExt as _;
    ///
    /// let future = async { 42 }.in_current_context();
    /// # drop(future);
    /// ```
    fn in_current_context(self) -> InContext<Self> {
        self.in_context(CapturedContext::capture())
    }

    /// Wraps the future so that it runs as a new root trace (see
    /// [`new_root`](crate::new_root)): the root is captured now, with its
    /// link and kept baggage taken from the ambient context now, and entered
    /// around every poll and the drop. Spawn the result on any executor.
    ///
    /// ```
    /// use tracing_correlation::{new_root, root_span, FutureContextExt as _};
    ///
    /// let job = async { tracing::info!("in the job's own trace") }
    ///     .in_new_root(new_root(root_span!(tracing::Level::INFO, "job")).link_to_ambient());
    /// # drop(job);
    /// ```
    fn in_new_root(self, root: NewRoot) -> InContext<Self> {
        root.in_future(self)
    }
}

impl<F: Future> FutureContextExt for F {}

pin_project! {
    /// A future that enters its [`CapturedContext`] on every poll and leaves
    /// it before returning, so the context is current exactly while the
    /// future's own code runs — never while another task runs on the same
    /// thread. The inner future is also dropped inside the context, so
    /// destructors that log keep their ids.
    ///
    /// Created by [`FutureContextExt::in_context`].
    ///
    /// ```
    /// use tracing_correlation::{FutureContextExt as _, InContext};
    ///
    /// let future: InContext<_> = async { 1 }.in_current_context();
    /// assert!(future.context().span().is_none());
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct InContext<F> {
        context: CapturedContext,
        // `None` only after the drop below: dropping it in place with
        // `Pin::set` keeps the pinning guarantee without unsafe code.
        #[pin]
        inner: Option<F>,
    }

    impl<F> PinnedDrop for InContext<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _entered = this.context.enter();
            this.inner.set(None);
        }
    }
}

impl<F> InContext<F> {
    /// The context this future runs in.
    ///
    /// ```
    /// use tracing_correlation::FutureContextExt as _;
    /// let future = async {}.in_current_context();
    /// assert_eq!(future.context().trace_ids(), None);
    /// ```
    pub fn context(&self) -> &CapturedContext {
        &self.context
    }
}

impl<F: Future> Future for InContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.context.enter();
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx),
            // Unreachable: the slot is emptied only while dropping.
            None => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for InContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InContext")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}
