//! `std::thread` helpers whose threads start in the caller's context.
//!
//! A bare `std::thread::spawn` starts with no current span, an empty
//! OpenTelemetry context and the global subscriber only.

use std::io;
use std::thread::{self as std_thread, JoinHandle, ScopedJoinHandle};

use super::captured::CapturedContext;

/// Spawns a thread that runs `f` in the caller's context (captured now).
///
/// Same as `std::thread::spawn` otherwise, including its panics (if the
/// operating system fails to create a thread; use [`BuilderExt`] to get the
/// error instead).
///
/// ```
/// let _request = tracing::info_span!("request").entered();
/// let worker = tracing_correlation::context::thread::spawn(|| {
///     tracing::info!("logged with the request's ids");
/// });
/// worker.join().ok();
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let context = CapturedContext::capture();
    std_thread::spawn(move || context.run(f))
}

/// Context-carrying spawns for `std::thread::Builder`.
///
/// ```
/// use tracing_correlation::context::thread::BuilderExt as _;
///
/// let worker = std::thread::Builder::new()
///     .name("indexer".into())
///     .spawn_in_context(|| tracing::info!("in the caller's context"))?;
/// worker.join().ok();
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait BuilderExt: sealed::Sealed {
    /// `Builder::spawn`, with the thread starting in the caller's context
    /// (captured now).
    ///
    /// # Errors
    ///
    /// Those of `std::thread::Builder::spawn`.
    ///
    /// ```
    /// use tracing_correlation::context::thread::BuilderExt as _;
    /// let worker = std::thread::Builder::new().spawn_in_context(|| 1)?;
    /// assert_eq!(worker.join().ok(), Some(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn spawn_in_context<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// `Builder::spawn_scoped`, with the thread starting in the caller's
    /// context (captured now).
    ///
    /// # Errors
    ///
    /// Those of `std::thread::Builder::spawn_scoped`.
    ///
    /// ```
    /// use tracing_correlation::context::thread::BuilderExt as _;
    /// let data = vec![1, 2, 3];
    /// let sum = std::thread::scope(|s| {
    ///     std::thread::Builder::new()
    ///         .spawn_scoped_in_context(s, || data.iter().sum::<i32>())
    ///         .ok()
    ///         .and_then(|worker| worker.join().ok())
    /// });
    /// assert_eq!(sum, Some(6));
    /// ```
    fn spawn_scoped_in_context<'scope, 'env, F, T>(
        self,
        scope: &'scope std_thread::Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope;
}

impl BuilderExt for std_thread::Builder {
    fn spawn_in_context<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let context = CapturedContext::capture();
        self.spawn(move || context.run(f))
    }

    fn spawn_scoped_in_context<'scope, 'env, F, T>(
        self,
        scope: &'scope std_thread::Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let context = CapturedContext::capture();
        self.spawn_scoped(scope, move || context.run(f))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::thread::Builder {}
}

/// `std::thread::scope`, whose [`Scope::spawn`] starts each thread in the
/// context current at the `spawn` call.
///
/// ```
/// let mut totals = [0, 0];
/// let _request = tracing::info_span!("request").entered();
/// tracing_correlation::context::thread::scope(|s| {
///     for (i, total) in totals.iter_mut().enumerate() {
///         s.spawn(move || {
///             tracing::info!(i, "summing in the request's context");
///             *total = i + 1;
///         });
///     }
/// });
/// assert_eq!(totals, [1, 2]);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(Scope<'scope, 'env>) -> T,
{
    std_thread::scope(|inner| f(Scope { inner }))
}

/// A `std::thread::Scope` whose threads start in the spawner's context.
/// It is `Copy`: move it into threads that spawn more threads.
///
/// ```
/// tracing_correlation::context::thread::scope(|s| {
///     s.spawn(move || {
///         s.spawn(|| tracing::info!("nested, still in the caller's context"));
///     });
/// });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Scope<'scope, 'env: 'scope> {
    inner: &'scope std_thread::Scope<'scope, 'env>,
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a scoped thread running `f` in the context current now.
    /// Panics like `std::thread::Scope::spawn` if the operating system fails
    /// to create a thread.
    ///
    /// ```
    /// let n = tracing_correlation::context::thread::scope(|s| s.spawn(|| 3).join().ok());
    /// assert_eq!(n, Some(3));
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let context = CapturedContext::capture();
        self.inner.spawn(move || context.run(f))
    }

    /// The underlying `std` scope (its `spawn` does not carry context).
    ///
    /// ```
    /// tracing_correlation::context::thread::scope(|s| {
    ///     let _std: &std::thread::Scope<'_, '_> = s.as_std();
    /// });
    /// ```
    pub fn as_std(&self) -> &'scope std_thread::Scope<'scope, 'env> {
        self.inner
    }
}
