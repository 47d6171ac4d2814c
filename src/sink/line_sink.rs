//! The sink itself: the shared buffer, the worker, shutdown and counts.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::drop_report::DropReport;
use super::target::{Outcome, Output, Target};

use crate::diagnostics::report;

/// The byte capacity of an output when none is given: 512 KiB of lines may
/// wait, and with the batch being written the output holds at most 1 MiB.
pub(crate) const DEFAULT_CAPACITY_BYTES: usize = 512 * 1024;

/// How long the worker waits for more lines after a batch before it goes
/// idle: the most a line waits before its write starts while lines keep
/// coming, and what saves a wake per line when they do.
const LINGER: Duration = Duration::from_millis(1);

/// What happens to a line when the target is slower than the application.
///
/// Modelled on slog-async's overflow strategies. In `Block` and `Drop`, a
/// background thread writes; a logging thread only copies its line into a
/// buffer of bounded size, and never waits on the target's system calls.
///
/// ```
/// use tracing_correlation::WriteMode;
///
/// // Lossless in a service; synchronous, with no thread, in a short CLI run.
/// let mode = if std::env::args().any(|a| a == "--once") {
///     WriteMode::Direct
/// } else {
///     WriteMode::Block
/// };
/// assert_ne!(mode, WriteMode::Drop);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Background thread; when the buffer is full the logging thread waits
    /// for room (lossless, backpressure).
    Block,
    /// Background thread; when the buffer is full the line is dropped and
    /// counted. The count is written as a line of its own once writing
    /// resumes, and at shutdown.
    Drop,
    /// The logging thread writes each line itself, at once (tests, CLIs). No
    /// background thread; the target is locked while one line is written.
    Direct,
}

/// What became of the lines handed to one output, from the logging guard or
/// `shutdown()`.
///
/// Every line logged is counted exactly once: lines logged =
/// `written + dropped + lost`.
///
/// ```
/// use tracing_correlation::OutputReport;
///
/// fn check(report: OutputReport) {
///     if !report.is_complete() {
///         eprintln!("{} lines were not written", report.dropped + report.lost);
///     }
/// }
/// # check(OutputReport::default());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputReport {
    /// Lines the target accepted.
    pub written: u64,
    /// Lines refused: the buffer was full ([`WriteMode::Drop`]), or they were
    /// logged by the writer itself while it was writing (which would loop or
    /// deadlock).
    pub dropped: u64,
    /// Lines accepted but never written: the target failed (a closed pipe, a
    /// full disk), or they were still waiting when the shutdown timeout ran
    /// out.
    pub lost: u64,
}

impl OutputReport {
    /// `true` when every line was written: nothing dropped, nothing lost.
    ///
    /// ```
    /// assert!(tracing_correlation::OutputReport::default().is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.dropped == 0 && self.lost == 0
    }
}

thread_local! {
    /// Set on a thread that is inside a sink's write: the background worker
    /// for its whole life, a logging thread during a direct write.
    static IN_WRITER: Cell<bool> = const { Cell::new(false) };
}

/// `true` on a thread that is inside a sink's write (the background worker,
/// or a direct write in progress): a line logged there comes from the writer
/// itself and is dropped and counted rather than written.
pub(crate) fn in_writer() -> bool {
    IN_WRITER.try_with(Cell::get).unwrap_or(false)
}

/// Marks this thread as inside a write until dropped (restores the previous
/// state, so nesting is harmless).
pub(super) struct WriterScope(bool);

impl WriterScope {
    pub(super) fn enter() -> WriterScope {
        WriterScope(IN_WRITER.try_with(|w| w.replace(true)).unwrap_or(false))
    }
}

impl Drop for WriterScope {
    fn drop(&mut self) {
        let previous = self.0;
        let _ = IN_WRITER.try_with(|w| w.set(previous));
    }
}

/// Every live sink, for [`flush_all`].
static REGISTRY: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Flushes every live sink of the process, all within `timeout` together.
/// The panic hook calls it so that the panic line, and every line before it,
/// is written before the previous hook runs (which may abort).
///
/// Does nothing on a thread that is inside a sink's write: it would wait on
/// itself.
pub(crate) fn flush_all(timeout: Duration) {
    if in_writer() {
        return;
    }
    let deadline = Instant::now().checked_add(timeout);
    let sinks: Vec<Arc<Shared>> = lock(&REGISTRY).iter().filter_map(Weak::upgrade).collect();
    for shared in sinks {
        let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        shared.flush(left);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A line writer shared by every thread that logs to one output.
#[derive(Clone)]
pub(crate) struct LineSink {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for LineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineSink")
            .field("mode", &self.handle.shared.mode)
            .field("report", &self.report())
            .finish_non_exhaustive()
    }
}

/// The owners' handle: when the last clone of the sink goes away, the worker
/// is told to write what is queued and stop (without waiting for it).
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Where the sink stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The worker writes queued lines.
    Running,
    /// Shutdown asked: the worker writes what is queued, then stops.
    Closing,
    /// No worker (Direct mode, spawn failure, or after shutdown): each line
    /// is written by the thread that logs it.
    Direct,
    /// Shutdown timed out while the worker was still inside a write: lines
    /// are counted as lost until that write returns, then `Direct`.
    Abandoned,
}

struct State {
    /// Whole lines waiting for the worker.
    front: Vec<u8>,
    /// Lines in `front`.
    front_lines: u64,
    /// Lines ever accepted into the queue, and those of them written or lost:
    /// `flush` waits for `settled` to reach `accepted`.
    accepted: u64,
    settled: u64,
    phase: Phase,
    /// The worker waits for work; a producer that sees this wakes it (once).
    worker_idle: bool,
    /// The worker, having just written a batch, waits a little for more
    /// before going idle; a producer wakes it only once the buffer is half
    /// full. Without it a worker faster than its producers (a target like
    /// /dev/null) goes idle after every line, and every line pays a wake.
    worker_lingering: bool,
    /// Threads waiting for room (Block) or for progress (flush, shutdown):
    /// notified only when someone waits.
    space_waiters: u32,
    progress_waiters: u32,
    /// Lines larger than the capacity waiting for an empty buffer; while
    /// any wait, smaller lines do not take the room they need.
    big_waiters: u32,
    /// Lines dropped for lack of room and not yet reported in-band.
    unreported_drops: u64,
}

struct Shared {
    mode: WriteMode,
    capacity: usize,
    state: Mutex<State>,
    /// The worker waits here for lines.
    work: Condvar,
    /// Block-mode producers wait here for room.
    space: Condvar,
    /// `flush` and `shutdown` wait here for the worker.
    progress: Condvar,
    /// The target; locked by the worker while it writes a batch, and by the
    /// logging thread in direct writes. Never locked while `state` is held.
    output: Mutex<Box<dyn Output>>,
    drop_report: DropReport,
    written: AtomicU64,
    dropped_full: AtomicU64,
    dropped_reentrant: AtomicU64,
    lost: AtomicU64,
    error_reported: AtomicBool,
    final_reported: AtomicBool,
    /// Capacity of the worker's own buffer (for the memory bound and tests).
    back_capacity: AtomicUsize,
    /// How many times a producer woke the worker.
    wakeups: AtomicU64,
}

impl LineSink {
    /// A sink writing to `target`. `capacity_bytes` bounds the bytes waiting
    /// for the worker (the sink holds at most twice that: the waiting lines
    /// and the batch being written), except while a single larger line is
    /// written. Falls back to [`WriteMode::Direct`] when the worker thread
    /// cannot be spawned.
    pub(crate) fn new(
        target: Target,
        mode: WriteMode,
        capacity_bytes: usize,
        drop_report: DropReport,
    ) -> LineSink {
        let capacity = capacity_bytes.max(1);
        let queued = mode != WriteMode::Direct;
        let shared = Arc::new(Shared {
            mode,
            capacity,
            state: Mutex::new(State {
                front: if queued {
                    Vec::with_capacity(capacity)
                } else {
                    Vec::new()
                },
                front_lines: 0,
                accepted: 0,
                settled: 0,
                phase: if queued {
                    Phase::Running
                } else {
                    Phase::Direct
                },
                worker_idle: false,
                worker_lingering: false,
                space_waiters: 0,
                progress_waiters: 0,
                big_waiters: 0,
                unreported_drops: 0,
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            progress: Condvar::new(),
            output: Mutex::new(target.output),
            drop_report,
            written: AtomicU64::new(0),
            dropped_full: AtomicU64::new(0),
            dropped_reentrant: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            error_reported: AtomicBool::new(false),
            final_reported: AtomicBool::new(false),
            back_capacity: AtomicUsize::new(0),
            wakeups: AtomicU64::new(0),
        });
        if queued {
            let worker = Arc::clone(&shared);
            let spawned = spawn_worker(move || worker.run_worker());
            if let Err(error) = spawned {
                report!(
                    "could not start the log writer thread ({error}); \
                     lines are written by the threads that log them"
                );
                let mut state = lock(&shared.state);
                state.phase = Phase::Direct;
                state.front = Vec::new();
            }
        }
        {
            let mut registry = lock(&REGISTRY);
            registry.retain(|weak| weak.strong_count() > 0);
            registry.push(Arc::downgrade(&shared));
        }
        LineSink {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// Hands over one complete line (ending in `\n`, with no other `\n`).
    ///
    /// Never panics and allocates nothing in steady state; in Block and Drop
    /// it holds the state lock only to copy the line. Block waits for room;
    /// Drop counts the line when there is none; Direct writes it now. A line
    /// logged by the writer itself (see [`in_writer`]) is dropped and counted.
    pub(crate) fn write_line(&self, line: &[u8]) {
        self.handle.shared.write_line(line);
    }

    /// Counts one line logged by a writer (on a thread where [`in_writer`]
    /// is `true`) as dropped, for callers that skip formatting it. Same count
    /// as `write_line` on such a thread.
    pub(crate) fn drop_writer_line(&self) {
        self.handle
            .shared
            .dropped_reentrant
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until every line accepted before the call is written (or has
    /// failed), at most `timeout`; `true` when it is.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        self.handle.shared.flush(timeout)
    }

    /// Writes everything accepted (waiting at most `timeout`), stops the
    /// worker and returns the final counts. Lines still queued when the time
    /// runs out are counted as lost and reported. Later lines are written
    /// directly by the threads that log them. Idempotent.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OutputReport {
        self.handle.shared.shutdown(timeout)
    }

    /// The counts so far.
    pub(crate) fn report(&self) -> OutputReport {
        self.handle.shared.report()
    }

    /// Bytes of buffer capacity the sink holds (front and back).
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        let shared = &self.handle.shared;
        lock(&shared.state).front.capacity() + shared.back_capacity.load(Ordering::Acquire)
    }

    /// How many times a logging thread woke the worker.
    #[cfg(test)]
    pub(super) fn wakeups(&self) -> u64 {
        self.handle.shared.wakeups.load(Ordering::Relaxed)
    }

    /// `true` once no worker runs (never started, or stopped).
    #[cfg(test)]
    pub(super) fn worker_stopped(&self) -> bool {
        lock(&self.handle.shared.state).phase == Phase::Direct
    }

    /// Tells, once the sink is dropped, whether its state still exists
    /// (held by a worker that has not stopped).
    #[cfg(test)]
    pub(super) fn liveness(&self) -> impl Fn() -> bool {
        let shared = Arc::downgrade(&self.handle.shared);
        move || shared.strong_count() > 0
    }
}

#[cfg(test)]
thread_local! {
    /// Makes the next worker spawn on this thread fail (tests of the fallback).
    pub(super) static FAIL_SPAWN: Cell<bool> = const { Cell::new(false) };
}

fn spawn_worker(run: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    #[cfg(test)]
    if FAIL_SPAWN.with(|fail| fail.replace(false)) {
        return Err(std::io::Error::other("spawn refused by the test"));
    }
    std::thread::Builder::new()
        .name("tracing-correlation-writer".into())
        .spawn(run)
        .map(drop)
}

impl Shared {
    fn write_line(&self, line: &[u8]) {
        if in_writer() {
            self.dropped_reentrant.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.mode == WriteMode::Direct {
            self.write_direct(line);
            return;
        }
        let big = line.len() > self.capacity;
        // A line larger than the buffer is copied into a buffer of its own
        // before taking the lock: allocating and copying megabytes must not
        // hold up the other threads. It replaces the (empty) front buffer.
        let mut own_buffer = if big { line.to_vec() } else { Vec::new() };
        let mut state = lock(&self.state);
        let mut counted_as_big_waiter = false;
        loop {
            match state.phase {
                Phase::Running | Phase::Closing => {}
                Phase::Direct => {
                    if counted_as_big_waiter {
                        state.big_waiters -= 1;
                    }
                    drop(state);
                    self.write_direct(line);
                    return;
                }
                Phase::Abandoned => {
                    if counted_as_big_waiter {
                        state.big_waiters -= 1;
                    }
                    drop(state);
                    self.lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            let fits = if big {
                state.front.is_empty()
            } else {
                state.big_waiters == 0 && state.front.len() + line.len() <= self.capacity
            };
            if fits {
                break;
            }
            if self.mode == WriteMode::Drop {
                state.unreported_drops += 1;
                drop(state);
                self.dropped_full.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if big && !counted_as_big_waiter {
                state.big_waiters += 1;
                counted_as_big_waiter = true;
            }
            state.space_waiters += 1;
            state = self
                .space
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.space_waiters -= 1;
        }
        if counted_as_big_waiter {
            state.big_waiters -= 1;
        }
        if big {
            // The worker frees this buffer once the line is written.
            std::mem::swap(&mut state.front, &mut own_buffer);
        } else {
            state.front.extend_from_slice(line);
        }
        state.front_lines += 1;
        state.accepted += 1;
        let wake = std::mem::replace(&mut state.worker_idle, false)
            || (state.worker_lingering && state.front.len() >= self.capacity / 2 && {
                state.worker_lingering = false;
                true
            });
        drop(state);
        if wake {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            self.work.notify_one();
        }
        // The front buffer a big line replaced is freed here, unlocked.
        drop(own_buffer);
    }

    /// Writes one line on the calling thread, with the target locked.
    fn write_direct(&self, line: &[u8]) {
        let _scope = WriterScope::enter();
        let mut output = lock(&self.output);
        match write_guarded(&mut **output, line, &mut |_| true) {
            Outcome::Written => {
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Stopped => {}
            Outcome::Failed { error, .. } => {
                drop(output);
                self.lost.fetch_add(1, Ordering::Relaxed);
                self.report_error(&error);
            }
        }
    }

    fn report_error(&self, error: &std::io::Error) {
        if !self.error_reported.swap(true, Ordering::Relaxed) {
            report!(
                "could not write log lines ({:?}: {error}); lines that cannot be written \
                 are counted as lost and reported at shutdown",
                error.kind()
            );
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        // Direct writes are complete when `write_line` returns; the worker
        // would wait for itself.
        if self.mode == WriteMode::Direct || in_writer() {
            return true;
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.state);
        let target = state.accepted;
        while state.settled < target && matches!(state.phase, Phase::Running | Phase::Closing) {
            let Some(left) = deadline.map(|d| d.saturating_duration_since(Instant::now())) else {
                state = self.wait_progress(state, None);
                continue;
            };
            if left.is_zero() {
                return false;
            }
            state = self.wait_progress(state, Some(left));
        }
        true
    }

    fn wait_progress<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        state.progress_waiters += 1;
        if state.worker_lingering {
            // Someone waits for the lines: stop gathering and write them.
            self.work.notify_one();
        }
        let mut state = match timeout {
            Some(timeout) => {
                self.progress
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => self
                .progress
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
        state.progress_waiters -= 1;
        state
    }

    /// Asks the worker to write what is queued and stop, without waiting.
    fn close(&self) {
        let mut state = lock(&self.state);
        if state.phase == Phase::Running {
            state.phase = Phase::Closing;
            if std::mem::replace(&mut state.worker_idle, false) || state.worker_lingering {
                drop(state);
                self.work.notify_one();
            }
        }
    }

    fn shutdown(&self, timeout: Duration) -> OutputReport {
        if !in_writer() {
            self.close();
            let deadline = Instant::now().checked_add(timeout);
            let mut state = lock(&self.state);
            while state.phase == Phase::Closing {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left.is_some_and(|left| left.is_zero()) {
                    // Everything not yet written, queued or in the worker's
                    // hands, is lost; the worker stops when its write returns.
                    let unwritten = state.accepted - state.settled;
                    state.settled = state.accepted;
                    state.front = Vec::new();
                    state.front_lines = 0;
                    state.unreported_drops = 0;
                    state.phase = Phase::Abandoned;
                    self.lost.fetch_add(unwritten, Ordering::Relaxed);
                    break;
                }
                state = self.wait_progress(state, left);
            }
            let waiters = state.space_waiters > 0;
            drop(state);
            if waiters {
                self.space.notify_all();
            }
        }
        let report = self.report();
        if !report.is_complete() && !self.final_reported.swap(true, Ordering::Relaxed) {
            let reentrant = self.dropped_reentrant.load(Ordering::Relaxed);
            report!(
                "log output shut down: {} lines written, {} dropped ({} because the output \
                 was full, {} logged by the writer itself), {} lost (accepted but not written: \
                 the target failed or the shutdown timeout ran out)",
                report.written,
                report.dropped,
                report.dropped - reentrant,
                reentrant,
                report.lost
            );
        }
        report
    }

    fn report(&self) -> OutputReport {
        OutputReport {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped_full.load(Ordering::Relaxed)
                + self.dropped_reentrant.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    /// The background thread: takes the queued lines in one swap, writes
    /// them in one batch, repeats; stops when closed and empty.
    fn run_worker(&self) {
        let _scope = WriterScope::enter();
        let mut back: Vec<u8> = Vec::with_capacity(self.capacity);
        self.back_capacity.store(back.capacity(), Ordering::Release);
        let mut report_line = String::new();
        // Whether the last turn wrote a batch: lines are then still coming,
        // and the next batch is gathered for up to `LINGER` (or until the
        // buffer is half full) rather than taken at once. Taking it at once
        // makes a worker faster than its producers (a target like
        // /dev/null) write a few lines per call, contending for the lock
        // with every producer and using a core of its own.
        let mut streaming = false;
        loop {
            let mut state = lock(&self.state);
            let mut lingered = false;
            loop {
                let empty = state.front.is_empty() && state.unreported_drops == 0;
                let waited_on =
                    state.space_waiters > 0 || state.progress_waiters > 0 || state.big_waiters > 0;
                let gather = streaming
                    && !lingered
                    && !waited_on
                    && state.unreported_drops == 0
                    && state.front.len() < self.capacity / 2;
                if state.phase != Phase::Running || !(empty || gather) {
                    break;
                }
                if lingered {
                    state.worker_idle = true;
                    state = self
                        .work
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                    streaming = false;
                } else {
                    state.worker_lingering = true;
                    state = self
                        .work
                        .wait_timeout(state, LINGER)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    state.worker_lingering = false;
                    lingered = true;
                }
            }
            state.worker_idle = false;
            if state.phase == Phase::Abandoned
                || (state.front.is_empty() && state.unreported_drops == 0)
            {
                // Closing with nothing left (or abandoned): later lines are
                // written by the threads that log them.
                state.phase = Phase::Direct;
                let (space, progress) = (state.space_waiters > 0, state.progress_waiters > 0);
                drop(state);
                self.notify(space, progress);
                return;
            }
            streaming = true;
            std::mem::swap(&mut state.front, &mut back);
            let lines = std::mem::take(&mut state.front_lines);
            let drops = std::mem::take(&mut state.unreported_drops);
            let space = state.space_waiters > 0;
            drop(state);
            if space {
                self.space.notify_all();
            }
            if !back.is_empty() && !self.write_batch(&mut back, lines) {
                continue; // abandoned: the next turn sees it and stops
            }
            if drops > 0 {
                report_line.clear();
                self.drop_report.render(drops, &mut report_line);
                let mut output = lock(&self.output);
                if let Outcome::Failed { error, .. } =
                    write_guarded(&mut **output, report_line.as_bytes(), &mut |_| true)
                {
                    drop(output);
                    self.report_error(&error);
                }
            }
        }
    }

    /// Writes one batch of `lines` lines and settles them: written, or lost
    /// from the first failure on. `false` when the sink was abandoned
    /// meanwhile (the batch was already counted as lost).
    fn write_batch(&self, batch: &mut Vec<u8>, lines: u64) -> bool {
        // Lines already settled by partial progress.
        let mut counted = 0u64;
        let mut abandoned = false;
        let outcome = {
            let mut output = lock(&self.output);
            let bytes: &[u8] = batch;
            write_guarded(&mut **output, bytes, &mut |done| {
                let complete = count_lines(&bytes[..done]).min(lines);
                let mut state = lock(&self.state);
                if state.phase == Phase::Abandoned {
                    abandoned = true;
                    return false;
                }
                if complete > counted {
                    self.written
                        .fetch_add(complete - counted, Ordering::Relaxed);
                    state.settled += complete - counted;
                    counted = complete;
                    if state.progress_waiters > 0 {
                        self.progress.notify_all();
                    }
                }
                true
            })
        };
        let (written, error) = match outcome {
            Outcome::Written => (lines - counted, None),
            Outcome::Stopped => (0, None),
            Outcome::Failed { written, error } => {
                let complete = count_lines(&batch[..written.min(batch.len())]).min(lines);
                (complete.saturating_sub(counted), Some(error))
            }
        };
        let lost = if error.is_some() {
            lines - counted - written
        } else {
            0
        };
        // Release a huge line's memory before anyone is told it is written.
        batch.clear();
        if batch.capacity() > self.capacity {
            *batch = Vec::with_capacity(self.capacity);
            self.back_capacity
                .store(batch.capacity(), Ordering::Release);
        }
        let mut state = lock(&self.state);
        if abandoned || state.phase == Phase::Abandoned {
            return false;
        }
        self.written.fetch_add(written, Ordering::Relaxed);
        self.lost.fetch_add(lost, Ordering::Relaxed);
        state.settled += written + lost;
        let progress = state.progress_waiters > 0;
        drop(state);
        self.notify(false, progress);
        if let Some(error) = error {
            self.report_error(&error);
        }
        true
    }

    fn notify(&self, space: bool, progress: bool) {
        if space {
            self.space.notify_all();
        }
        if progress {
            self.progress.notify_all();
        }
    }
}

/// Writes with the target's panics caught: a panicking writer fails the
/// batch instead of killing the worker (which would leave Block-mode
/// producers waiting forever).
fn write_guarded(
    output: &mut dyn Output,
    batch: &[u8],
    progress: &mut dyn FnMut(usize) -> bool,
) -> Outcome {
    panic::catch_unwind(AssertUnwindSafe(|| output.write_batch(batch, progress))).unwrap_or_else(
        |_| Outcome::Failed {
            written: 0,
            error: std::io::Error::other("the log writer panicked"),
        },
    )
}

/// Complete lines in `bytes`. Runs only after a partial write or a failure,
/// never on the usual path, so the plain loop is enough.
#[allow(clippy::naive_bytecount)]
pub(super) fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
