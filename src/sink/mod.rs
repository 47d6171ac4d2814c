//! A line writer for many threads: whole lines go into one byte buffer under
//! a short lock (a `memcpy`), and one background thread writes the buffer in
//! batches, so no logging thread waits on a system call.
//!
//! Design (see ARCHITECTURE.md, "The output"): two `Vec<u8>` of `capacity`
//! bytes. Producers append whole lines to the *front* one under the state
//! mutex; the worker swaps it with its empty *back* one (no allocation) and
//! writes the whole batch with the lock released. The worker is woken only
//! when it is idle, so a busy output costs no futex wake per line. A line
//! larger than the capacity waits for an empty queue and goes alone, in a
//! buffer of its own that the worker frees once the line is written.

mod drop_report;
mod line_sink;
mod target;
#[cfg(test)]
mod tests;

pub(crate) use drop_report::{DropReport, MESSAGE as DROP_MESSAGE};
pub(crate) use line_sink::{flush_all, in_writer, LineSink, DEFAULT_CAPACITY_BYTES};
pub use line_sink::{OutputReport, WriteMode};
pub use target::Target;
