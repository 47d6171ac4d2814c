//! A line writer for many threads: each logging thread copies whole lines
//! into its own queue (a *lane*) under a lock no other logging thread takes,
//! and one background thread takes every lane at once and writes them in
//! batches, in the order the lines were logged, so no logging thread waits
//! on a system call or on the others.
//!
//! Design (see ARCHITECTURE.md, "The output"): a lane is a `Vec<u8>` of
//! lines and a `Vec` of marks (end, epoch, time). The worker advances the
//! epoch, swaps each lane's buffers with empty spares (no allocation), keeps
//! lines of the new epoch for the next batch, and merges the lanes by time.
//! It is woken only when it is idle or a lane is nearly full, so a busy output
//! costs no futex wake per line. A line larger than a lane waits for its lane
//! to be empty and goes alone, in a buffer of its own that the worker frees
//! once the line is written.

mod drop_report;
mod line_sink;
mod target;
#[cfg(test)]
mod tests;

pub(crate) use drop_report::{DropReport, MESSAGE as DROP_MESSAGE};
pub(crate) use line_sink::{flush_all, in_writer, LineSink, DEFAULT_CAPACITY_BYTES};
pub use line_sink::{OutputReport, WriteMode};
pub use target::Target;
