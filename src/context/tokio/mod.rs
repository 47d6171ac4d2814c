//! tokio tasks that start in the caller's context (feature `tokio`).
//!
//! **A bare `tokio::spawn` does not carry the caller's context**: the task
//! runs with no current span and an empty OpenTelemetry context (and, on a
//! worker thread, only the global subscriber), so its lines carry no ids, or
//! those of whatever the worker thread last had attached. The same holds for
//! `tokio::task::spawn_blocking`, `spawn_local` and `JoinSet::spawn`. The
//! functions here capture the caller's context at the call and enter it
//! around every poll of the task (or around the blocking closure).
//!
//! Inside a task, context *is* kept across `.await` points, including waits
//! on `tokio::sync` locks, semaphores, `Notify` and channels: the task's
//! context is entered on every poll and left before the poll returns, so
//! tasks waiting on the same primitive never see each other's context.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tracing::Instrument as _;
//!
//! async {
//!     let task = tracing_correlation::context::tokio::spawn(async {
//!         tracing::info!("logged with the request's ids");
//!     });
//!     task.await.ok();
//! }
//! .instrument(tracing::info_span!("request"))
//! .await;
//! # }
//! ```

pub mod mpsc;

use std::future::Future;

use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use super::captured::CapturedContext;
use super::future::FutureContextExt as _;

/// `tokio::spawn`, with the task running in the caller's context (captured
/// now) on every poll and when dropped.
///
/// Everything else is `tokio::spawn`'s: there is no guarantee that the task
/// runs to completion, and it panics if called from outside a tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let task = tracing_correlation::context::tokio::spawn(async { 1 + 1 });
/// assert_eq!(task.await.ok(), Some(2));
/// # }
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::tokio::spawn(future.in_current_context())
}

/// `tokio::task::spawn_blocking`, with the closure running in the caller's
/// context (captured now).
///
/// Panics like `spawn_blocking` if called from outside a tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let task = tracing_correlation::context::tokio::spawn_blocking(|| {
///     tracing::info!("blocking work, in the caller's context");
///     3
/// });
/// assert_eq!(task.await.ok(), Some(3));
/// # }
/// ```
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let context = CapturedContext::capture();
    ::tokio::task::spawn_blocking(move || context.run(f))
}

/// `tokio::task::spawn_local`, with the task running in the caller's context
/// (captured now).
///
/// Panics like `spawn_local` if called outside a `LocalSet` (or a local
/// runtime).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let local = tokio::task::LocalSet::new();
/// let value = local
///     .run_until(async {
///         let shared = std::rc::Rc::new(5); // not `Send`
///         tracing_correlation::context::tokio::spawn_local(async move { *shared }).await
///     })
///     .await;
/// assert_eq!(value.ok(), Some(5));
/// # }
/// ```
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    ::tokio::task::spawn_local(future.in_current_context())
}

/// Context-carrying spawns for `tokio::task::JoinSet`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tracing_correlation::context::tokio::JoinSetExt as _;
///
/// let mut set = tokio::task::JoinSet::new();
/// for i in 0..3 {
///     set.spawn_in_context(async move { i });
/// }
/// let mut sum = 0;
/// while let Some(Ok(i)) = set.join_next().await {
///     sum += i;
/// }
/// assert_eq!(sum, 3);
/// # }
/// ```
pub trait JoinSetExt<T>: sealed::Sealed {
    /// `JoinSet::spawn` in the caller's context (captured now). Panics like
    /// `JoinSet::spawn` outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tracing_correlation::context::tokio::JoinSetExt as _;
    /// let mut set = tokio::task::JoinSet::new();
    /// set.spawn_in_context(async { 1 });
    /// assert_eq!(set.join_next().await.and_then(Result::ok), Some(1));
    /// # }
    /// ```
    fn spawn_in_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send;

    /// `JoinSet::spawn_blocking` in the caller's context (captured now).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tracing_correlation::context::tokio::JoinSetExt as _;
    /// let mut set = tokio::task::JoinSet::new();
    /// set.spawn_blocking_in_context(|| 1);
    /// assert_eq!(set.join_next().await.and_then(Result::ok), Some(1));
    /// # }
    /// ```
    fn spawn_blocking_in_context<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send;

    /// `JoinSet::spawn_local` in the caller's context (captured now). Panics
    /// like `JoinSet::spawn_local` outside a `LocalSet`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tracing_correlation::context::tokio::JoinSetExt as _;
    /// let local = tokio::task::LocalSet::new();
    /// let one = local.run_until(async {
    ///     let mut set = tokio::task::JoinSet::new();
    ///     set.spawn_local_in_context(async { 1 });
    ///     set.join_next().await.and_then(Result::ok)
    /// }).await;
    /// assert_eq!(one, Some(1));
    /// # }
    /// ```
    fn spawn_local_in_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static;
}

impl<T: 'static> JoinSetExt<T> for JoinSet<T> {
    fn spawn_in_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        self.spawn(future.in_current_context())
    }

    fn spawn_blocking_in_context<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        let context = CapturedContext::capture();
        self.spawn_blocking(move || context.run(f))
    }

    fn spawn_local_in_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.spawn_local(future.in_current_context())
    }
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for tokio::task::JoinSet<T> {}
}
