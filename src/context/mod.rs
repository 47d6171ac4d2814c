//! Carrying the trace across threads, tasks, thread pools, channels and
//! callbacks.
//!
//! `tracing` keeps the current span per thread and OpenTelemetry keeps the
//! current context per thread. Work that runs somewhere else — a spawned
//! task or thread, a rayon job, a channel message, a callback stored and
//! called later — starts without them, and its log lines lose the trace.
//!
//! A [`CapturedContext`] holds the caller's subscriber, span *and*
//! OpenTelemetry context (so baggage and a remote parent attached after the
//! span was created travel too). Capture it where the work is created, enter
//! it where the work runs. Every helper below is that, applied to one place.
//!
//! TABLE

mod captured;
mod carried;
mod future;
pub mod mpsc;
#[cfg(feature = "rayon")]
pub mod rayon;
mod root;
pub mod thread;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use captured::{bind, CapturedContext, EnteredContext};
pub use carried::Carried;
pub use future::{FutureContextExt, InContext};
pub use root::{new_root, NewRoot};
