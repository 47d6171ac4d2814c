//! rayon jobs that run in the caller's context (feature `rayon`).
//!
//! rayon runs jobs on its pool's threads, which have no current span, an
//! empty OpenTelemetry context and only the global subscriber: a bare
//! `rayon::join`, `rayon::scope`/`spawn` or `par_iter()` closure logs without
//! the caller's ids (except for the part rayon happens to run inline on the
//! calling thread). The helpers here capture the caller's context and enter
//! it around each job.
//!
//! For parallel iterators, put [`in_current_context`](ParallelIteratorExt::in_current_context)
//! right after the source: every closure of the adaptors chained after it
//! (`map`, `filter`, `for_each`, `reduce`…) then runs in the caller's
//! context. It enters the context once per job (per chunk of items rayon
//! hands to a thread), not per item.
//!
//! Non-guarantee: a rayon thread that waits inside `join`, `scope` or a
//! parallel iterator runs other queued jobs meanwhile, on the same stack. A
//! job spawned *with* these helpers enters its own context there and is
//! unaffected; a *bare* job run there sees the waiting job's context and
//! logs with its ids. Wrap every job that logs.
//!
//! ```
//! use rayon::prelude::*;
//! use tracing_correlation::context::rayon::ParallelIteratorExt as _;
//!
//! let _request = tracing::info_span!("request").entered();
//! let total: u64 = (1..=100u64)
//!     .into_par_iter()
//!     .in_current_context()
//!     .map(|n| {
//!         tracing::debug!(n, "in the request's context, on any pool thread");
//!         n
//!     })
//!     .sum();
//! assert_eq!(total, 5050);
//! ```

use rayon::iter::plumbing::{Consumer, Folder, Reducer, UnindexedConsumer};
use rayon::iter::ParallelIterator;

use super::captured::CapturedContext;

/// `rayon::join`, with both closures running in the caller's context
/// (captured now), whichever thread runs them.
///
/// ```
/// let _request = tracing::info_span!("request").entered();
/// let (a, b) = tracing_correlation::context::rayon::join(|| 1, || 2);
/// assert_eq!(a + b, 3);
/// ```
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let context = CapturedContext::capture();
    let context = &context;
    rayon::join(move || context.run(a), move || context.run(b))
}

/// `rayon::spawn` (fire and forget), with the job running in the caller's
/// context (captured now).
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// tracing_correlation::context::rayon::spawn(move || {
///     tx.send(1).ok();
/// });
/// assert_eq!(rx.recv().ok(), Some(1));
/// ```
pub fn spawn<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    let context = CapturedContext::capture();
    rayon::spawn(move || context.run(f));
}

/// `rayon::scope`, with `op` and every job spawned through [`Scope::spawn`]
/// running in the context current at the spawn (the caller's, for `op`).
///
/// ```
/// let mut halves = [0u32; 2];
/// let (left, right) = halves.split_at_mut(1);
/// tracing_correlation::context::rayon::scope(|s| {
///     s.spawn(|_| left[0] = 1);
///     s.spawn(|_| right[0] = 2);
/// });
/// assert_eq!(halves, [1, 2]);
/// ```
pub fn scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'_, 'scope>) -> R + Send,
    R: Send,
{
    let context = CapturedContext::capture();
    rayon::scope(move |inner| context.run(|| op(&Scope { inner })))
}

/// A `rayon::Scope` whose spawned jobs run in the spawner's context.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a, 'scope> {
    inner: &'a rayon::Scope<'scope>,
}

impl<'scope> Scope<'_, 'scope> {
    /// Spawns a job into the scope, running in the context current now.
    ///
    /// ```
    /// tracing_correlation::context::rayon::scope(|s| {
    ///     s.spawn(|s| s.spawn(|_| tracing::info!("nested, in the caller's context")));
    /// });
    /// ```
    pub fn spawn<B>(&self, body: B)
    where
        B: for<'b> FnOnce(&Scope<'b, 'scope>) + Send + 'scope,
    {
        let context = CapturedContext::capture();
        self.inner
            .spawn(move |inner| context.run(|| body(&Scope { inner })));
    }

    /// The underlying rayon scope (its `spawn` does not carry context).
    ///
    /// ```
    /// tracing_correlation::context::rayon::scope(|s| {
    ///     let _rayon: &rayon::Scope<'_> = s.as_rayon();
    /// });
    /// ```
    pub fn as_rayon(&self) -> &rayon::Scope<'scope> {
        self.inner
    }
}

/// Runs parallel iterators in a captured context.
///
/// ```
/// use rayon::prelude::*;
/// use tracing_correlation::context::rayon::ParallelIteratorExt as _;
///
/// let squares: Vec<u32> = vec![1, 2, 3]
///     .into_par_iter()
///     .in_current_context()
///     .map(|n| n * n)
///     .collect();
/// assert_eq!(squares, [1, 4, 9]);
/// ```
pub trait ParallelIteratorExt: ParallelIterator {
    /// Every adaptor and consumer chained after this runs in `context`,
    /// entered once per job. The result is not an
    /// `IndexedParallelIterator`: call `enumerate`, `zip` and the like
    /// before it.
    ///
    /// ```
    /// use rayon::prelude::*;
    /// use tracing_correlation::{context::rayon::ParallelIteratorExt as _, CapturedContext};
    ///
    /// let context = CapturedContext::capture();
    /// (0..4).into_par_iter().in_context(context).for_each(|i| tracing::info!(i, "item"));
    /// ```
    fn in_context(self, context: CapturedContext) -> InContextIter<Self> {
        InContextIter {
            base: self,
            context,
        }
    }

    /// [`in_context`](Self::in_context) with the context current now.
    ///
    /// ```
    /// use rayon::prelude::*;
    /// use tracing_correlation::context::rayon::ParallelIteratorExt as _;
    ///
    /// (0..4).into_par_iter().in_current_context().for_each(|i| tracing::info!(i, "item"));
    /// ```
    fn in_current_context(self) -> InContextIter<Self> {
        self.in_context(CapturedContext::capture())
    }
}

impl<I: ParallelIterator> ParallelIteratorExt for I {}

/// A parallel iterator whose downstream work runs in a captured context;
/// see [`ParallelIteratorExt`].
///
/// ```
/// use rayon::prelude::*;
/// use tracing_correlation::context::rayon::{InContextIter, ParallelIteratorExt as _};
///
/// let iter: InContextIter<_> = (0..2).into_par_iter().in_current_context();
/// assert_eq!(iter.count(), 2);
/// ```
#[derive(Debug, Clone)]
#[must_use = "iterator adaptors are lazy"]
pub struct InContextIter<I> {
    base: I,
    context: CapturedContext,
}

impl<I: ParallelIterator> ParallelIterator for InContextIter<I> {
    type Item = I::Item;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        let Self { base, context } = self;
        base.drive_unindexed(InContextConsumer {
            base: consumer,
            context: &context,
        })
    }

    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

struct InContextConsumer<'c, C> {
    base: C,
    context: &'c CapturedContext,
}

impl<'c, C> InContextConsumer<'c, C> {
    fn wrap<B>(&self, base: B) -> InContextConsumer<'c, B> {
        InContextConsumer {
            base,
            context: self.context,
        }
    }
}

impl<'c, T, C: Consumer<T>> Consumer<T> for InContextConsumer<'c, C> {
    type Folder = InContextFolder<'c, C::Folder>;
    type Reducer = InContextReducer<'c, C::Reducer>;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, Self::Reducer) {
        let (left, right, reducer) = self.base.split_at(index);
        let context = self.context;
        (
            InContextConsumer {
                base: left,
                context,
            },
            InContextConsumer {
                base: right,
                context,
            },
            InContextReducer {
                base: reducer,
                context,
            },
        )
    }

    fn into_folder(self) -> Self::Folder {
        InContextFolder {
            base: self.base.into_folder(),
            context: self.context,
        }
    }

    fn full(&self) -> bool {
        self.base.full()
    }
}

impl<T, C: UnindexedConsumer<T>> UnindexedConsumer<T> for InContextConsumer<'_, C> {
    fn split_off_left(&self) -> Self {
        self.wrap(self.base.split_off_left())
    }

    fn to_reducer(&self) -> Self::Reducer {
        InContextReducer {
            base: self.base.to_reducer(),
            context: self.context,
        }
    }
}

struct InContextFolder<'c, F> {
    base: F,
    context: &'c CapturedContext,
}

impl<T, F: Folder<T>> Folder<T> for InContextFolder<'_, F> {
    type Result = F::Result;

    fn consume(self, item: T) -> Self {
        let Self { base, context } = self;
        let base = context.run(|| base.consume(item));
        Self { base, context }
    }

    fn consume_iter<I>(self, iter: I) -> Self
    where
        I: IntoIterator<Item = T>,
    {
        let Self { base, context } = self;
        let base = context.run(|| base.consume_iter(iter));
        Self { base, context }
    }

    fn complete(self) -> F::Result {
        let Self { base, context } = self;
        context.run(|| base.complete())
    }

    fn full(&self) -> bool {
        self.base.full()
    }
}

struct InContextReducer<'c, R> {
    base: R,
    context: &'c CapturedContext,
}

impl<T, R: Reducer<T>> Reducer<T> for InContextReducer<'_, R> {
    fn reduce(self, left: T, right: T) -> T {
        let Self { base, context } = self;
        context.run(|| base.reduce(left, right))
    }
}
