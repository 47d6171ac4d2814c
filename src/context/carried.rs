//! A value that carries its sender's context.

use tracing::Span;

use super::captured::CapturedContext;

/// A value together with the context it was sent from: the messages of the
/// context-carrying channels ([`context::mpsc`](crate::context::mpsc), and
/// `context::tokio::mpsc` with the `tokio` feature).
///
/// The receiver chooses, per message, how to handle it:
///
/// * [`in_context`](Self::in_context): *in* the sender's context — the
///   handler's spans are children of the sender's span, its lines carry the
///   sender's trace id (a worker doing the sender's work);
/// * [`following`](Self::following): in a *new* span of the receiver's
///   choosing that follows from the sender (a link, not a parent — a queue
///   consumer whose work belongs to its own trace);
/// * [`into_inner`](Self::into_inner): ignore the context.
///
/// ```
/// use tracing_correlation::Carried;
///
/// let message = Carried::new("resize image 7");
/// let handled = message.in_context(|job| {
///     tracing::info!(job, "handled with the sender's ids");
///     job.len()
/// });
/// assert_eq!(handled, 14);
/// ```
#[derive(Debug, Clone)]
pub struct Carried<T> {
    value: T,
    context: CapturedContext,
}

impl<T> Carried<T> {
    /// Wraps `value` with the current context.
    ///
    /// ```
    /// let message = tracing_correlation::Carried::new(5);
    /// assert_eq!(*message.value(), 5);
    /// ```
    pub fn new(value: T) -> Self {
        Self::with_context(value, CapturedContext::capture())
    }

    /// Wraps `value` with a given context.
    ///
    /// ```
    /// use tracing_correlation::{CapturedContext, Carried};
    /// let message = Carried::with_context(5, CapturedContext::capture());
    /// assert_eq!(message.into_inner(), 5);
    /// ```
    pub fn with_context(value: T, context: CapturedContext) -> Self {
        Self { value, context }
    }

    /// The value.
    ///
    /// ```
    /// assert_eq!(*tracing_correlation::Carried::new('x').value(), 'x');
    /// ```
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The sender's context.
    ///
    /// ```
    /// let message = tracing_correlation::Carried::new(());
    /// assert!(message.context().span().is_none());
    /// ```
    pub fn context(&self) -> &CapturedContext {
        &self.context
    }

    /// The value, dropping the context.
    ///
    /// ```
    /// assert_eq!(tracing_correlation::Carried::new(1).into_inner(), 1);
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The value and the context, for handling the value in async code:
    /// `handle(value).in_context(context).await`.
    ///
    /// ```
    /// let (value, _context) = tracing_correlation::Carried::new(1).into_parts();
    /// assert_eq!(value, 1);
    /// ```
    pub fn into_parts(self) -> (T, CapturedContext) {
        (self.value, self.context)
    }

    /// Runs `handler` on the value inside the sender's context: its spans
    /// are children of the sender's span, its lines carry the sender's ids
    /// and see the sender's baggage. The receiver's context is restored
    /// afterwards.
    ///
    /// ```
    /// let doubled = tracing_correlation::Carried::new(21).in_context(|n| n * 2);
    /// assert_eq!(doubled, 42);
    /// ```
    pub fn in_context<R>(self, handler: impl FnOnce(T) -> R) -> R {
        let Self { value, context } = self;
        context.run(|| handler(value))
    }

    /// Runs `handler` on the value inside `span`, which is linked to the
    /// sender's context (see [`CapturedContext::link_follower`]) first.
    ///
    /// Create `span` in the receiver: as a child of the receiver's current
    /// span (`info_span!("consume")`) or as a new root
    /// (`info_span!(parent: None, "consume")`). The handler then runs in
    /// `span`'s trace, not the sender's; the link leads from one to the
    /// other. For async handlers use [`link`](Self::link) and
    /// `Instrument::instrument`.
    ///
    /// ```
    /// let message = tracing_correlation::Carried::new("job");
    /// message.following(tracing::info_span!(parent: None, "consume"), |job| {
    ///     tracing::info!(job, "in the consumer's own trace, linked to the producer");
    /// });
    /// ```
    pub fn following<R>(self, span: Span, handler: impl FnOnce(T) -> R) -> R {
        self.context.link_follower(&span);
        // Consumed: the span closes when the handler is done.
        let _entered = span.entered();
        handler(self.value)
    }

    /// Links `follower` to the sender's context without running anything
    /// (see [`CapturedContext::link_follower`]).
    ///
    /// ```
    /// let message = tracing_correlation::Carried::new(1);
    /// let span = tracing::info_span!("consume");
    /// message.link(&span);
    /// ```
    pub fn link(&self, follower: &Span) {
        self.context.link_follower(follower);
    }
}
