//! `std::sync::mpsc` channels whose messages carry the sender's context.
//!
//! Each `send` captures the sender's context; each receive yields a
//! [`Carried`] message, and the receiver decides whether to handle it in the
//! sender's context ([`Carried::in_context`]) or in a new span following
//! from it ([`Carried::following`]). Bounded channels keep their
//! backpressure: [`SyncSender::send`] blocks while the channel is full.
//!
//! ```
//! use tracing_correlation::context::mpsc;
//!
//! let (tx, rx) = mpsc::channel();
//! let worker = std::thread::spawn(move || {
//!     for message in rx {
//!         message.in_context(|n: u32| tracing::info!(n, "handled in the sender's context"));
//!     }
//! });
//! let _request = tracing::info_span!("request").entered();
//! tx.send(7).ok();
//! drop(tx);
//! worker.join().ok();
//! ```

use std::fmt;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use super::carried::Carried;

/// An unbounded channel (`std::sync::mpsc::channel`) carrying contexts.
///
/// ```
/// let (tx, rx) = tracing_correlation::context::mpsc::channel();
/// tx.send(1).ok();
/// assert_eq!(rx.recv().ok().map(|m| m.into_inner()), Some(1));
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = std_mpsc::channel();
    (Sender(tx), Receiver(rx))
}

/// A bounded channel (`std::sync::mpsc::sync_channel`) carrying contexts.
///
/// ```
/// let (tx, rx) = tracing_correlation::context::mpsc::sync_channel(1);
/// tx.send(1).ok();
/// assert!(tx.try_send(2).is_err()); // full: backpressure is kept
/// assert_eq!(rx.recv().ok().map(|m| m.into_inner()), Some(1));
/// ```
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    let (tx, rx) = std_mpsc::sync_channel(bound);
    (SyncSender(tx), Receiver(rx))
}

/// The sending half of [`channel`]; each message carries the context
/// current at `send`.
pub struct Sender<T>(std_mpsc::Sender<Carried<T>>);

impl<T> Sender<T> {
    /// Sends `value` with the current context; never blocks.
    ///
    /// # Errors
    ///
    /// Gives the value back when the receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = tracing_correlation::context::mpsc::channel();
    /// drop(rx);
    /// assert_eq!(tx.send(1).map_err(|e| e.0), Err(1));
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .send(Carried::new(value))
            .map_err(|SendError(message)| SendError(message.into_inner()))
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

/// The sending half of [`sync_channel`]; each message carries the context
/// current at `send`.
pub struct SyncSender<T>(std_mpsc::SyncSender<Carried<T>>);

impl<T> SyncSender<T> {
    /// Sends `value` with the current context, blocking while the channel
    /// is full.
    ///
    /// # Errors
    ///
    /// Gives the value back when the receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = tracing_correlation::context::mpsc::sync_channel(1);
    /// tx.send('a').ok();
    /// assert_eq!(rx.recv().ok().map(|m| m.into_inner()), Some('a'));
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .send(Carried::new(value))
            .map_err(|SendError(message)| SendError(message.into_inner()))
    }

    /// Sends `value` with the current context if there is room now.
    ///
    /// # Errors
    ///
    /// Gives the value back when the channel is full or the receiver gone.
    ///
    /// ```
    /// use tracing_correlation::context::mpsc::{sync_channel, TrySendError};
    /// let (tx, _rx) = sync_channel(0);
    /// assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.0
            .try_send(Carried::new(value))
            .map_err(|error| match error {
                TrySendError::Full(message) => TrySendError::Full(message.into_inner()),
                TrySendError::Disconnected(message) => {
                    TrySendError::Disconnected(message.into_inner())
                }
            })
    }
}

impl<T> Clone for SyncSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> fmt::Debug for SyncSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyncSender { .. }")
    }
}

/// The receiving half; yields [`Carried`] messages.
pub struct Receiver<T>(std_mpsc::Receiver<Carried<T>>);

impl<T> Receiver<T> {
    /// Blocks until a message arrives.
    ///
    /// # Errors
    ///
    /// When every sender is gone and the channel is empty.
    ///
    /// ```
    /// let (tx, rx) = tracing_correlation::context::mpsc::channel::<u8>();
    /// drop(tx);
    /// assert!(rx.recv().is_err());
    /// ```
    pub fn recv(&self) -> Result<Carried<T>, RecvError> {
        self.0.recv()
    }

    /// A message, if one is waiting.
    ///
    /// # Errors
    ///
    /// When the channel is empty or disconnected.
    ///
    /// ```
    /// let (_tx, rx) = tracing_correlation::context::mpsc::channel::<u8>();
    /// assert!(rx.try_recv().is_err());
    /// ```
    pub fn try_recv(&self) -> Result<Carried<T>, TryRecvError> {
        self.0.try_recv()
    }

    /// Waits at most `timeout` for a message.
    ///
    /// # Errors
    ///
    /// On timeout, or when the channel is disconnected.
    ///
    /// ```
    /// let (_tx, rx) = tracing_correlation::context::mpsc::channel::<u8>();
    /// assert!(rx.recv_timeout(std::time::Duration::from_millis(1)).is_err());
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Carried<T>, RecvTimeoutError> {
        self.0.recv_timeout(timeout)
    }

    /// Iterates over messages, blocking, until every sender is gone.
    ///
    /// ```
    /// let (tx, rx) = tracing_correlation::context::mpsc::channel();
    /// tx.send(1).ok();
    /// drop(tx);
    /// assert_eq!(rx.iter().map(|m| m.into_inner()).sum::<i32>(), 1);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Carried<T>> + '_ {
        self.0.iter()
    }

    /// Iterates over the messages waiting now, without blocking.
    ///
    /// ```
    /// let (tx, rx) = tracing_correlation::context::mpsc::channel();
    /// tx.send(1).ok();
    /// assert_eq!(rx.try_iter().count(), 1);
    /// ```
    pub fn try_iter(&self) -> impl Iterator<Item = Carried<T>> + '_ {
        self.0.try_iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = Carried<T>;
    type IntoIter = std_mpsc::IntoIter<Carried<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}
