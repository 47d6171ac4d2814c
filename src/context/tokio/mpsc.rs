//! `tokio::sync::mpsc` channels whose messages carry the sender's context
//! (feature `tokio`).
//!
//! Each send captures the sender's context; each receive yields a
//! [`Carried`] message. Bounded channels keep their backpressure:
//! [`Sender::send`] waits while the channel is full.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tracing_correlation::context::tokio::mpsc;
//! use tracing_correlation::FutureContextExt as _;
//!
//! let (tx, mut rx) = mpsc::channel(16);
//! let consumer = tokio::spawn(async move {
//!     while let Some(message) = rx.recv().await {
//!         let (job, context) = message.into_parts();
//!         async move { tracing::info!(job, "in the sender's context") }
//!             .in_context(context)
//!             .await;
//!     }
//! });
//! tx.send(7).await.ok();
//! drop(tx);
//! consumer.await.ok();
//! # }
//! ```

use std::fmt;

use tokio::sync::mpsc as tokio_mpsc;

pub use tokio::sync::mpsc::error::{SendError, TryRecvError, TrySendError};

use crate::context::carried::Carried;

/// A bounded channel (`tokio::sync::mpsc::channel`) carrying contexts.
/// Panics like tokio's if `buffer` is 0.
///
/// ```
/// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::channel(1);
/// tx.try_send(1).ok();
/// assert!(tx.try_send(2).is_err()); // full: backpressure is kept
/// assert_eq!(rx.try_recv().ok().map(|m| m.into_inner()), Some(1));
/// ```
pub fn channel<T>(buffer: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = tokio_mpsc::channel(buffer);
    (Sender(tx), Receiver(rx))
}

/// An unbounded channel (`tokio::sync::mpsc::unbounded_channel`) carrying
/// contexts.
///
/// ```
/// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::unbounded_channel();
/// tx.send(1).ok();
/// assert_eq!(rx.try_recv().ok().map(|m| m.into_inner()), Some(1));
/// ```
pub fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let (tx, rx) = tokio_mpsc::unbounded_channel();
    (UnboundedSender(tx), UnboundedReceiver(rx))
}

fn unwrap_send<T>(error: SendError<Carried<T>>) -> SendError<T> {
    SendError(error.0.into_inner())
}

fn unwrap_try_send<T>(error: TrySendError<Carried<T>>) -> TrySendError<T> {
    match error {
        TrySendError::Full(message) => TrySendError::Full(message.into_inner()),
        TrySendError::Closed(message) => TrySendError::Closed(message.into_inner()),
    }
}

/// The sending half of [`channel`].
pub struct Sender<T>(tokio_mpsc::Sender<Carried<T>>);

impl<T> Sender<T> {
    /// Sends `value` with the context current at this call, waiting for
    /// room while the channel is full.
    ///
    /// # Errors
    ///
    /// Gives the value back when the receiver is closed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::channel(1);
    /// tx.send(1).await.ok();
    /// assert_eq!(rx.recv().await.map(|m| m.into_inner()), Some(1));
    /// # }
    /// ```
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let message = Carried::new(value);
        self.0.send(message).await.map_err(unwrap_send)
    }

    /// Sends `value` with the current context if there is room now.
    ///
    /// # Errors
    ///
    /// Gives the value back when the channel is full or closed.
    ///
    /// ```
    /// let (tx, _rx) = tracing_correlation::context::tokio::mpsc::channel(1);
    /// assert!(tx.try_send(1).is_ok());
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.0
            .try_send(Carried::new(value))
            .map_err(unwrap_try_send)
    }

    /// Sends from synchronous code, blocking while the channel is full.
    /// Panics like tokio's if called inside an async runtime.
    ///
    /// # Errors
    ///
    /// Gives the value back when the receiver is closed.
    ///
    /// ```
    /// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::channel(1);
    /// std::thread::spawn(move || tx.blocking_send(1)).join().ok();
    /// assert_eq!(rx.try_recv().ok().map(|m| m.into_inner()), Some(1));
    /// ```
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .blocking_send(Carried::new(value))
            .map_err(unwrap_send)
    }

    /// Whether the receiver is closed.
    ///
    /// ```
    /// let (tx, rx) = tracing_correlation::context::tokio::mpsc::channel::<u8>(1);
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// How many more messages fit now.
    ///
    /// ```
    /// let (tx, _rx) = tracing_correlation::context::tokio::mpsc::channel::<u8>(4);
    /// assert_eq!(tx.capacity(), 4);
    /// ```
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

/// The receiving half of [`channel`]; yields [`Carried`] messages.
pub struct Receiver<T>(tokio_mpsc::Receiver<Carried<T>>);

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the channel
    /// is empty. Cancel-safe, like tokio's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::channel::<u8>(1);
    /// drop(tx);
    /// assert!(rx.recv().await.is_none());
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<Carried<T>> {
        self.0.recv().await
    }

    /// A message, if one is waiting.
    ///
    /// # Errors
    ///
    /// When the channel is empty or disconnected.
    ///
    /// ```
    /// let (_tx, mut rx) = tracing_correlation::context::tokio::mpsc::channel::<u8>(1);
    /// assert!(rx.try_recv().is_err());
    /// ```
    pub fn try_recv(&mut self) -> Result<Carried<T>, TryRecvError> {
        self.0.try_recv()
    }

    /// Receives from synchronous code. Panics like tokio's if called inside
    /// an async runtime.
    ///
    /// ```
    /// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::channel::<u8>(1);
    /// drop(tx);
    /// assert!(rx.blocking_recv().is_none());
    /// ```
    pub fn blocking_recv(&mut self) -> Option<Carried<T>> {
        self.0.blocking_recv()
    }

    /// Closes the channel to new messages; waiting ones can still be
    /// received.
    ///
    /// ```
    /// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::channel::<u8>(1);
    /// rx.close();
    /// assert!(tx.is_closed());
    /// ```
    pub fn close(&mut self) {
        self.0.close();
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

/// The sending half of [`unbounded_channel`].
pub struct UnboundedSender<T>(tokio_mpsc::UnboundedSender<Carried<T>>);

impl<T> UnboundedSender<T> {
    /// Sends `value` with the current context; never waits.
    ///
    /// # Errors
    ///
    /// Gives the value back when the receiver is closed.
    ///
    /// ```
    /// let (tx, rx) = tracing_correlation::context::tokio::mpsc::unbounded_channel();
    /// drop(rx);
    /// assert_eq!(tx.send(1).map_err(|e| e.0), Err(1));
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.0.send(Carried::new(value)).map_err(unwrap_send)
    }

    /// Whether the receiver is closed.
    ///
    /// ```
    /// let (tx, _rx) = tracing_correlation::context::tokio::mpsc::unbounded_channel::<u8>();
    /// assert!(!tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnboundedSender { .. }")
    }
}

/// The receiving half of [`unbounded_channel`]; yields [`Carried`] messages.
pub struct UnboundedReceiver<T>(tokio_mpsc::UnboundedReceiver<Carried<T>>);

impl<T> UnboundedReceiver<T> {
    /// The next message; `None` once every sender is gone and the channel
    /// is empty.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::unbounded_channel();
    /// tx.send(1).ok();
    /// assert_eq!(rx.recv().await.map(|m| m.into_inner()), Some(1));
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<Carried<T>> {
        self.0.recv().await
    }

    /// A message, if one is waiting.
    ///
    /// # Errors
    ///
    /// When the channel is empty or disconnected.
    ///
    /// ```
    /// let (_tx, mut rx) = tracing_correlation::context::tokio::mpsc::unbounded_channel::<u8>();
    /// assert!(rx.try_recv().is_err());
    /// ```
    pub fn try_recv(&mut self) -> Result<Carried<T>, TryRecvError> {
        self.0.try_recv()
    }

    /// Receives from synchronous code. Panics like tokio's if called inside
    /// an async runtime.
    ///
    /// ```
    /// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::unbounded_channel::<u8>();
    /// drop(tx);
    /// assert!(rx.blocking_recv().is_none());
    /// ```
    pub fn blocking_recv(&mut self) -> Option<Carried<T>> {
        self.0.blocking_recv()
    }

    /// Closes the channel to new messages.
    ///
    /// ```
    /// let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::unbounded_channel::<u8>();
    /// rx.close();
    /// assert!(tx.is_closed());
    /// ```
    pub fn close(&mut self) {
        self.0.close();
    }
}

impl<T> fmt::Debug for UnboundedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnboundedReceiver { .. }")
    }
}
