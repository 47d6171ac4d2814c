//! The sink itself: the lanes, the worker, shutdown and counts.

use std::cell::Cell;
use std::io::IoSlice;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::drop_report::DropReport;
use super::target::{Outcome, Output, Target};

use crate::diagnostics::report;
use crate::format::time::take_line_clock;

/// The byte capacity of an output when none is given: 512 KiB of lines may
/// wait, and with the batch being written the output holds at most 1 MiB.
pub(crate) const DEFAULT_CAPACITY_BYTES: usize = 512 * 1024;

/// How long the worker waits for more lines after a batch before it goes
/// idle, at most: the most a line waits before its write starts while lines
/// keep coming, and what saves a wake per line when they do. The worker
/// waits less when lanes fill faster (see `run_worker`), down to
/// [`MIN_LINGER`].
const LINGER: Duration = Duration::from_millis(1);
const MIN_LINGER: Duration = Duration::from_micros(50);

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

/// Where the sink stands. Kept in an atomic: logging threads read it under
/// their lane's lock, without the state lock; it changes only under the
/// state lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// The worker writes queued lines.
    Running = 0,
    /// Shutdown asked: the worker writes what is queued, then stops.
    Closing = 1,
    /// No worker (Direct mode, spawn failure, or after shutdown): each line
    /// is written by the thread that logs it.
    Direct = 2,
    /// Shutdown timed out while the worker was still inside a write: lines
    /// are counted as lost until that write returns, then `Direct`.
    Abandoned = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Running,
            1 => Phase::Closing,
            2 => Phase::Direct,
            _ => Phase::Abandoned,
        }
    }
}

/// The least a lane may hold, however many threads log: enough for a batch
/// of a few hundred lines.
const MIN_LANE_BYTES: usize = 64 * 1024;

/// What one queued line costs a lane beyond its bytes: its [`Mark`].
pub(super) const MARK_BYTES: usize = std::mem::size_of::<Mark>();

/// One queued line's place in its lane.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    /// When it was logged: the time its format read for it (else the time
    /// it was queued), in nanoseconds since the Unix epoch. Lines of one
    /// epoch from different lanes are written in this order.
    at: u64,
    /// The sink's epoch when it was accepted, read under the lane's lock.
    epoch: u64,
    /// Where the line ends in the lane's bytes.
    end: usize,
}

/// The lines one thread has queued for one sink. Only its own thread
/// appends to it (except the shared fallback lane), so its lock is
/// contended only by the worker taking its lines, once per batch.
struct Lane {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Whole lines, back to back.
    bytes: Vec<u8>,
    /// One per line in `bytes`, in order.
    marks: Vec<Mark>,
    /// Lines ever accepted into this lane.
    accepted: u64,
    /// Lines dropped for lack of room and not yet reported in-band.
    unreported_drops: u64,
    /// The sink has stopped using its lanes: the thread may forget it.
    closed: bool,
}

impl Queue {
    /// Bytes this queue holds against its lane's limit.
    fn used(&self) -> usize {
        self.bytes.len() + self.marks.len() * MARK_BYTES
    }

    fn push(&mut self, line: &[u8], at: u64, epoch: u64) {
        self.bytes.extend_from_slice(line);
        self.marks.push(Mark {
            at,
            epoch,
            end: self.bytes.len(),
        });
        self.accepted += 1;
    }
}

/// The lanes of a sink, and what the lanes of exited threads had accepted.
#[derive(Default)]
struct Lanes {
    list: Vec<Arc<Lane>>,
    /// Lines accepted by lanes that were removed (their thread exited and
    /// the worker had written everything in them).
    retired_accepted: u64,
}

/// Sink ids, so that a thread's lanes are found by their sink (an address
/// could be reused by a later sink).
static NEXT_SINK_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's lane of each sink it has logged to.
    static MY_LANES: std::cell::RefCell<Vec<(u64, Arc<Lane>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

// Independent flags, each read and written under the lock.
#[allow(clippy::struct_excessive_bools)]
struct State {
    /// A worker thread was started and has not finished: lines queued in
    /// lanes will be written.
    worker_running: bool,
    /// Lines written or counted as lost, over all lanes.
    settled: u64,
    /// Every line tagged with an epoch up to this one is settled.
    written_epoch: u64,
    /// The highest epoch a `flush` waits for.
    flush_epoch: u64,
    /// The worker waits for work; a producer that sees this wakes it (once).
    worker_idle: bool,
    /// The worker, having just written a batch, waits a little for more
    /// before going idle; a producer wakes it only once its lane is three
    /// quarters full. Without it a worker faster than its producers (a
    /// target like /dev/null) goes idle after every line, and every line
    /// pays a wake.
    worker_lingering: bool,
    /// Threads waiting for room in their lane (Block), or for progress
    /// (flush, shutdown): notified only when someone waits.
    space_waiters: u32,
    progress_waiters: u32,
    /// A Block-mode producer found its lane full since the worker last
    /// started a batch: the worker takes the lanes at once.
    space_wanted: bool,
}

struct Shared {
    id: u64,
    mode: WriteMode,
    capacity: usize,
    phase: AtomicU8,
    /// Advanced by the worker at each batch; every queued line carries the
    /// epoch it was accepted in (see [`Shared::collect`]).
    epoch: AtomicU64,
    /// What one lane may hold: the capacity shared among the lanes, never
    /// less than [`MIN_LANE_BYTES`].
    lane_limit: AtomicUsize,
    /// Mirrors of `State::worker_idle` and `worker_lingering`, read by
    /// logging threads without the lock.
    idle: AtomicBool,
    lingering: AtomicBool,
    state: Mutex<State>,
    lanes: Mutex<Lanes>,
    /// For a thread whose own lanes cannot be reached (while its
    /// thread-locals are torn down, or inside a nested call).
    fallback: Arc<Lane>,
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
    /// Capacity of the worker's own buffers (for the memory bound and tests).
    worker_capacity: AtomicUsize,
    /// How many times a producer woke the worker.
    wakeups: AtomicU64,
}

impl LineSink {
    /// A sink writing to `target`. `capacity_bytes` bounds the bytes waiting
    /// for the worker, shared among the threads that log (each may queue at
    /// least [`MIN_LANE_BYTES`]), except while a single larger line is
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
        let fallback = Arc::new(Lane {
            queue: Mutex::new(Queue::default()),
        });
        let shared = Arc::new(Shared {
            id: NEXT_SINK_ID.fetch_add(1, Ordering::Relaxed),
            mode,
            capacity,
            phase: AtomicU8::new(if queued {
                Phase::Running
            } else {
                Phase::Direct
            } as u8),
            epoch: AtomicU64::new(1),
            lane_limit: AtomicUsize::new(capacity),
            idle: AtomicBool::new(false),
            lingering: AtomicBool::new(false),
            state: Mutex::new(State {
                worker_running: queued,
                settled: 0,
                written_epoch: 0,
                flush_epoch: 0,
                worker_idle: false,
                worker_lingering: false,
                space_waiters: 0,
                progress_waiters: 0,
                space_wanted: false,
            }),
            lanes: Mutex::new(Lanes {
                list: vec![Arc::clone(&fallback)],
                retired_accepted: 0,
            }),
            fallback,
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
            worker_capacity: AtomicUsize::new(0),
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
                state.worker_running = false;
                shared.set_phase(Phase::Direct);
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
    /// it holds only its own thread's lane lock, to copy the line. Block
    /// waits for room; Drop counts the line when there is none; Direct
    /// writes it now. A line logged by the writer itself (see [`in_writer`])
    /// is dropped and counted.
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

    /// Bytes of buffer capacity the sink holds: its lanes' and its worker's.
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        let shared = &self.handle.shared;
        let lanes: usize = lock(&shared.lanes)
            .list
            .iter()
            .map(|lane| {
                let queue = lock(&lane.queue);
                queue.bytes.capacity() + queue.marks.capacity() * MARK_BYTES
            })
            .sum();
        lanes + shared.worker_capacity.load(Ordering::Acquire)
    }

    /// How many times a logging thread woke the worker.
    #[cfg(test)]
    pub(super) fn wakeups(&self) -> u64 {
        self.handle.shared.wakeups.load(Ordering::Relaxed)
    }

    /// `true` once no worker runs (never started, or stopped).
    #[cfg(test)]
    pub(super) fn worker_stopped(&self) -> bool {
        !lock(&self.handle.shared.state).worker_running
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

/// What became of an attempt to queue a line in a lane.
enum Step {
    /// Queued; `nearly_full` when the lane is now three quarters full.
    Queued { nearly_full: bool },
    /// Dropped and counted (Drop mode, no room).
    Dropped,
    /// No room (Block mode): wait for the worker.
    Full,
    /// The sink no longer queues lines.
    NotQueued(Phase),
}

/// Lines taken from one lane for one batch, and the buffers they came in.
pub(super) struct Chunk {
    pub(super) bytes: Vec<u8>,
    pub(super) marks: Vec<Mark>,
}

/// The worker's buffers, kept from batch to batch (no allocation in steady
/// state).
struct Work {
    /// A snapshot of the lanes, taken each batch.
    lanes: Vec<Arc<Lane>>,
    /// The lines taken this batch, one chunk per lane that had any.
    chunks: Vec<Chunk>,
    /// Emptied buffers, given to the next lanes taken.
    spares: Vec<Chunk>,
    /// Lines of several lanes, merged in the order they were accepted.
    merged: Vec<u8>,
    /// Where the merge stands in each chunk.
    positions: Vec<usize>,
    /// The merged order, as runs of lines of one chunk.
    runs: Vec<Run>,
    report_line: String,
}

impl Shared {
    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Only with the state lock held.
    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    fn write_line(&self, line: &[u8]) {
        if in_writer() {
            self.dropped_reentrant.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.mode == WriteMode::Direct {
            self.write_direct(line);
            return;
        }
        // Checked again under the lane's lock; here so that a thread does
        // not set up a lane for a sink that has stopped queueing.
        let phase = self.phase();
        let step = if !matches!(phase, Phase::Running | Phase::Closing) {
            Step::NotQueued(phase)
        } else if line.len() + MARK_BYTES > self.lane_limit() {
            self.write_big(line)
        } else {
            self.with_lane(|lane| match self.try_queue(lane, line) {
                Step::Full => Err(Arc::clone(lane)),
                step => Ok(step),
            })
            .unwrap_or_else(|lane| self.wait_for_room(&lane, line))
        };
        match step {
            Step::Queued { nearly_full } => self.after_queue(nearly_full),
            Step::Dropped | Step::Full => {}
            Step::NotQueued(Phase::Abandoned) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
            Step::NotQueued(_) => self.write_direct(line),
        }
    }

    fn lane_limit(&self) -> usize {
        self.lane_limit.load(Ordering::Relaxed)
    }

    /// Runs `f` with this thread's lane of this sink, registering one on
    /// first use; with the shared fallback lane when the thread's lanes
    /// cannot be reached (its thread-locals are being torn down).
    fn with_lane<R>(&self, mut f: impl FnMut(&Arc<Lane>) -> R) -> R {
        let mut result = None;
        let _ = MY_LANES.try_with(|mine| {
            let Ok(mut mine) = mine.try_borrow_mut() else {
                return;
            };
            let found = mine.iter().position(|(id, _)| *id == self.id);
            let index = found.unwrap_or_else(|| {
                // Forget the lanes of sinks that have stopped.
                mine.retain(|(_, lane)| !lock(&lane.queue).closed);
                mine.push((self.id, self.register_lane()));
                mine.len() - 1
            });
            result = Some(f(&mine[index].1));
        });
        match result {
            Some(result) => result,
            None => f(&self.fallback),
        }
    }

    /// A new lane for the calling thread, its buffers sized for the limit
    /// once it is counted.
    fn register_lane(&self) -> Arc<Lane> {
        let mut lanes = lock(&self.lanes);
        // The fallback lane is not counted: it is rarely used.
        let count = lanes.list.len();
        let limit = (self.capacity / count.max(1))
            .max(MIN_LANE_BYTES)
            .min(self.capacity);
        self.lane_limit.store(limit, Ordering::Relaxed);
        let (bytes, marks) = lane_buffers(limit);
        let lane = Arc::new(Lane {
            queue: Mutex::new(Queue {
                bytes,
                marks,
                ..Queue::default()
            }),
        });
        lanes.list.push(Arc::clone(&lane));
        lane
    }

    fn try_queue(&self, own: &Lane, line: &[u8]) -> Step {
        let mut queue = lock(&own.queue);
        let phase = self.phase();
        if !matches!(phase, Phase::Running | Phase::Closing) {
            return Step::NotQueued(phase);
        }
        let limit = self.lane_limit();
        // Within the lane's limit (its buffers grow only while a lane of
        // short lines first fills up); an empty lane takes any line that is
        // not big (the limit may have shrunk since the caller checked).
        let fits = queue.marks.is_empty() || queue.used() + line.len() + MARK_BYTES <= limit;
        if !fits {
            if self.mode == WriteMode::Drop {
                queue.unreported_drops += 1;
                drop(queue);
                self.dropped_full.fetch_add(1, Ordering::Relaxed);
                return Step::Dropped;
            }
            return Step::Full;
        }
        // Both under the lane's lock: see `collect`.
        let epoch = self.epoch.load(Ordering::Relaxed);
        queue.push(line, take_line_clock(), epoch);
        Step::Queued {
            nearly_full: queue.used() >= limit / 4 * 3,
        }
    }

    /// Wakes the worker if it went idle, or if it is gathering and this
    /// lane is nearly full (the worker times its gathering so that this is
    /// rare: a wake costs the logging thread a system call).
    fn after_queue(&self, nearly_full: bool) {
        if self.idle.load(Ordering::SeqCst)
            || (nearly_full && self.lingering.load(Ordering::Relaxed))
        {
            let mut state = lock(&self.state);
            if state.worker_idle || (nearly_full && state.worker_lingering) {
                self.wake_worker(&mut state);
                self.wakeups.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// With the state lock held: gets the worker going now.
    fn wake_worker(&self, state: &mut State) {
        state.worker_idle = false;
        state.worker_lingering = false;
        self.idle.store(false, Ordering::SeqCst);
        self.lingering.store(false, Ordering::Relaxed);
        self.work.notify_one();
    }

    /// Block mode, this thread's lane full: waits until the worker has taken
    /// its lines.
    fn wait_for_room(&self, own: &Arc<Lane>, line: &[u8]) -> Step {
        let mut state = lock(&self.state);
        state.space_waiters += 1;
        let step = loop {
            match self.try_queue(own, line) {
                Step::Full => {}
                step => break step,
            }
            state = self.wait_for_space(state);
        };
        state.space_waiters -= 1;
        step
    }

    /// Asks the worker to take the lanes now, and waits until it has.
    fn wait_for_space<'a>(&self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.space_wanted = true;
        self.wake_worker(&mut state);
        self.space
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A line larger than a lane: copied into a buffer of its own before
    /// any lock (allocating and copying megabytes must not hold up the
    /// worker), which replaces this thread's lane buffer once that lane is
    /// empty. The worker frees it once the line is written.
    fn write_big(&self, line: &[u8]) -> Step {
        let mut own = line.to_vec();
        let mine = self.with_lane(Arc::clone);
        let mut state = lock(&self.state);
        let mut waiting = false;
        let step = loop {
            {
                let mut queue = lock(&mine.queue);
                let phase = self.phase();
                if !matches!(phase, Phase::Running | Phase::Closing) {
                    break Step::NotQueued(phase);
                }
                if queue.marks.is_empty() {
                    let epoch = self.epoch.load(Ordering::Relaxed);
                    let at = take_line_clock();
                    std::mem::swap(&mut queue.bytes, &mut own);
                    let end = queue.bytes.len();
                    queue.marks.push(Mark { at, epoch, end });
                    queue.accepted += 1;
                    break Step::Queued { nearly_full: true };
                }
                if self.mode == WriteMode::Drop {
                    queue.unreported_drops += 1;
                    drop(queue);
                    self.dropped_full.fetch_add(1, Ordering::Relaxed);
                    break Step::Dropped;
                }
            }
            if !waiting {
                state.space_waiters += 1;
                waiting = true;
            }
            state = self.wait_for_space(state);
        };
        if waiting {
            state.space_waiters -= 1;
        }
        drop(state);
        // The lane's previous buffer (or the unused copy) is freed here,
        // unlocked.
        drop(own);
        step
    }

    /// Writes one line on the calling thread, with the target locked.
    fn write_direct(&self, line: &[u8]) {
        let _scope = WriterScope::enter();
        let mut output = lock(&self.output);
        match write_guarded(&mut **output, &Batch::Bytes(line), &mut |_| true) {
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
        // Every line accepted before this call carries this epoch or an
        // earlier one.
        let target = self.epoch.load(Ordering::Acquire);
        let mut state = lock(&self.state);
        while state.written_epoch < target
            && state.worker_running
            && self.phase() != Phase::Abandoned
        {
            state.flush_epoch = state.flush_epoch.max(target);
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
        if state.worker_lingering || state.worker_idle {
            // Someone waits for the lines: stop gathering and write them.
            self.wake_worker(&mut state);
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
        if self.phase() == Phase::Running {
            self.set_phase(Phase::Closing);
            self.wake_worker(&mut state);
        }
    }

    fn shutdown(&self, timeout: Duration) -> OutputReport {
        if !in_writer() {
            self.close();
            let deadline = Instant::now().checked_add(timeout);
            let mut state = lock(&self.state);
            while state.worker_running && self.phase() != Phase::Abandoned {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left.is_some_and(|left| left.is_zero()) {
                    // Everything not yet written, queued or in the worker's
                    // hands, is lost; the worker stops when its write returns.
                    self.set_phase(Phase::Abandoned);
                    let accepted = self.take_all_lanes(|_, _| {});
                    let unwritten = accepted.saturating_sub(state.settled);
                    state.settled = accepted;
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
                "log output shut down; lines written: {}, dropped: {} ({} because the output \
                 was full, {} logged by the writer itself), lost: {} (accepted but not written: \
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

    /// Empties every lane (handing each one's bytes and marks to `take`)
    /// and marks them closed; returns the lines ever accepted into lanes.
    /// Only once the sink no longer queues lines.
    fn take_all_lanes(&self, mut take: impl FnMut(&mut Vec<u8>, &mut Vec<Mark>)) -> u64 {
        let lanes = lock(&self.lanes);
        let mut accepted = lanes.retired_accepted;
        for lane in &lanes.list {
            let mut queue = lock(&lane.queue);
            accepted += queue.accepted;
            let Queue { bytes, marks, .. } = &mut *queue;
            take(bytes, marks);
            // A stopped sink's lanes hold no memory.
            *bytes = Vec::new();
            *marks = Vec::new();
            queue.closed = true;
        }
        accepted
    }

    fn report(&self) -> OutputReport {
        OutputReport {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped_full.load(Ordering::Relaxed)
                + self.dropped_reentrant.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    /// Waits until there may be lines to write, or someone waits on the
    /// worker, or the sink is closing. After a batch (`streaming`), first
    /// gathers for up to `linger`.
    fn wait_for_lines(&self, streaming: bool, linger: Duration) {
        let mut state = lock(&self.state);
        let mut lingered = !streaming;
        loop {
            // Producers waiting for room once their lanes are taken are
            // served by the batch that takes them; waiting on them again
            // (until they run) would spin.
            let waited_on =
                std::mem::take(&mut state.space_wanted) || state.flush_epoch > state.written_epoch;
            if self.phase() != Phase::Running || waited_on {
                return;
            }
            if !lingered {
                state.worker_lingering = true;
                self.lingering.store(true, Ordering::Relaxed);
                state = self
                    .work
                    .wait_timeout(state, linger)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                state.worker_lingering = false;
                self.lingering.store(false, Ordering::Relaxed);
                lingered = true;
                continue;
            }
            // Lines are usually there: look before raising the flag, which
            // sends every thread that sees it to the state lock.
            if self.any_queued() {
                return;
            }
            // Idle only once every lane is seen empty after the flag is up:
            // a line queued after a lane was looked at sees the flag.
            state.worker_idle = true;
            self.idle.store(true, Ordering::SeqCst);
            if self.any_queued() {
                state.worker_idle = false;
                self.idle.store(false, Ordering::SeqCst);
                return;
            }
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.worker_idle = false;
            self.idle.store(false, Ordering::SeqCst);
        }
    }

    fn any_queued(&self) -> bool {
        lock(&self.lanes).list.iter().any(|lane| {
            let queue = lock(&lane.queue);
            !queue.marks.is_empty() || queue.unreported_drops > 0
        })
    }

    /// Takes the lines of every lane for one batch, and returns
    /// (epoch cut, lines taken, drops to report, whether lines were left
    /// for the next batch).
    ///
    /// Order across lanes: the epoch is advanced first, then each lane is
    /// locked in turn; a line accepted after its lane was taken reads the
    /// new epoch (the lane lock orders the two), so every line of the old
    /// epoch or before is taken now. Lines of the new epoch that were
    /// taken stay for the next batch: one of them may follow a line not yet
    /// queued in a lane taken before it. If a line was logged after
    /// another returned (on any thread), it carries the same epoch or a
    /// later one, and a later time: within an epoch, lanes are merged by
    /// time.
    fn collect(&self, work: &mut Work) -> (u64, u64, u64, bool) {
        let cut = self.epoch.fetch_add(1, Ordering::AcqRel);
        {
            let mut lanes = lock(&self.lanes);
            let Lanes {
                list,
                retired_accepted,
            } = &mut *lanes;
            let before = list.len();
            list.retain(|lane| {
                // Only the list holds it: its thread has exited.
                if Arc::strong_count(lane) > 1 {
                    return true;
                }
                let queue = lock(&lane.queue);
                if queue.marks.is_empty() && queue.unreported_drops == 0 {
                    *retired_accepted += queue.accepted;
                    false
                } else {
                    true
                }
            });
            if list.len() != before {
                let count = list.len().saturating_sub(1).max(1);
                let limit = (self.capacity / count)
                    .max(MIN_LANE_BYTES)
                    .min(self.capacity);
                self.lane_limit.store(limit, Ordering::Relaxed);
            }
            work.lanes.clear();
            work.lanes.extend(list.iter().cloned());
        }
        let (mut lines, mut drops, mut held) = (0, 0, false);
        let limit = self.lane_limit();
        for lane in &work.lanes {
            let mut queue = lock(&lane.queue);
            drops += std::mem::take(&mut queue.unreported_drops);
            if queue.marks.is_empty() {
                continue;
            }
            let mut chunk = work.spares.pop().unwrap_or_else(|| {
                let (bytes, marks) = lane_buffers(limit);
                Chunk { bytes, marks }
            });
            std::mem::swap(&mut queue.bytes, &mut chunk.bytes);
            std::mem::swap(&mut queue.marks, &mut chunk.marks);
            let keep = chunk.marks.partition_point(|mark| mark.epoch <= cut);
            if keep < chunk.marks.len() {
                held = true;
                let start = keep.checked_sub(1).map_or(0, |last| chunk.marks[last].end);
                queue.bytes.extend_from_slice(&chunk.bytes[start..]);
                for mark in &chunk.marks[keep..] {
                    queue.marks.push(Mark {
                        end: mark.end - start,
                        ..*mark
                    });
                }
                chunk.bytes.truncate(start);
                chunk.marks.truncate(keep);
            }
            drop(queue);
            if chunk.marks.is_empty() {
                work.spares.push(chunk);
            } else {
                lines += chunk.marks.len() as u64;
                work.chunks.push(chunk);
            }
        }
        work.lanes.clear();
        (cut, lines, drops, held)
    }

    /// The background thread: takes the queued lines of every lane, writes
    /// them in one batch, repeats; stops when closed and empty.
    fn run_worker(&self) {
        let _scope = WriterScope::enter();
        let mut work = Work {
            lanes: Vec::new(),
            chunks: Vec::new(),
            spares: Vec::new(),
            merged: Vec::new(),
            positions: Vec::new(),
            runs: Vec::new(),
            report_line: String::new(),
        };
        // Whether the last turn wrote a batch: lines are then still coming,
        // and the next batch is gathered for a while (`linger`, or until a
        // lane is nearly full) rather than taken at once. Taking it at once
        // makes a worker faster than its producers (a target like
        // /dev/null) write a few lines per call, contending for the lanes
        // with every producer and using a core of its own.
        let mut streaming = false;
        let mut linger = LINGER;
        let mut last_taken = Instant::now();
        loop {
            self.wait_for_lines(streaming, linger);
            let (cut, lines, drops, held) = self.collect(&mut work);
            // Gather next time for about as long as the fastest lane takes
            // to fill half its room: long enough for big batches, short
            // enough that its thread rarely has to wake the worker.
            let now = Instant::now();
            let fullest = work
                .chunks
                .iter()
                .map(|chunk| chunk.bytes.len() + chunk.marks.len() * MARK_BYTES)
                .max()
                .unwrap_or(0);
            linger = half_fill_time(now.duration_since(last_taken), fullest, self.lane_limit());
            last_taken = now;
            let phase = self.phase();
            if phase == Phase::Abandoned {
                self.recycle(&mut work);
                let mut state = lock(&self.state);
                state.worker_running = false;
                self.set_phase(Phase::Direct);
                return;
            }
            if lines == 0 && drops == 0 && !held {
                self.settle_epoch(cut);
                if phase == Phase::Closing {
                    self.finish(&mut work);
                    return;
                }
                streaming = false;
                continue;
            }
            streaming = true;
            if lines > 0 {
                let space = lock(&self.state).space_waiters > 0;
                if space {
                    self.space.notify_all();
                }
                let mut output = lock(&self.output);
                let batch = merge(&mut work, output.vectored());
                let written = self.write_batch(&mut **output, &batch, lines);
                drop(output);
                self.recycle(&mut work);
                if !written {
                    continue; // abandoned: the next turn sees it and stops
                }
            }
            self.settle_epoch(cut);
            if drops > 0 {
                self.write_drop_report(&mut **lock(&self.output), &mut work.report_line, drops);
            }
        }
    }

    /// Every line of epoch `cut` or before is settled: tells waiting flushes.
    fn settle_epoch(&self, cut: u64) {
        let mut state = lock(&self.state);
        state.written_epoch = state.written_epoch.max(cut);
        let progress = state.progress_waiters > 0;
        drop(state);
        if progress {
            self.progress.notify_all();
        }
    }

    fn write_drop_report(&self, output: &mut dyn Output, report_line: &mut String, drops: u64) {
        report_line.clear();
        self.drop_report.render(drops, report_line);
        if let Outcome::Failed { error, .. } =
            write_guarded(output, &Batch::Bytes(report_line.as_bytes()), &mut |_| true)
        {
            self.report_error(&error);
        }
    }

    /// Empties the chunks into the spares; a buffer grown past the lane
    /// size by a huge line is freed, and at most two spares are kept.
    fn recycle(&self, work: &mut Work) {
        let limit = self.lane_limit();
        let lanes = lock(&self.lanes).list.len().saturating_sub(1);
        for mut chunk in work.chunks.drain(..) {
            chunk.bytes.clear();
            chunk.marks.clear();
            if chunk.bytes.capacity() > self.capacity
                || chunk.marks.capacity() > self.capacity / MARK_BYTES + 1
            {
                (chunk.bytes, chunk.marks) = lane_buffers(limit);
            }
            work.spares.push(chunk);
        }
        // One spare per lane is what a batch swaps in.
        work.spares.truncate(lanes.max(1));
        if work.merged.capacity() > self.capacity {
            work.merged = Vec::new();
        }
        work.merged.clear();
        let held: usize = work
            .spares
            .iter()
            .map(|chunk| chunk.bytes.capacity() + chunk.marks.capacity() * MARK_BYTES)
            .sum();
        self.worker_capacity
            .store(held + work.merged.capacity(), Ordering::Release);
    }

    /// Closing with nothing queued: from now on logging threads write their
    /// own lines. Lines queued since the last batch are written first, with
    /// the target held so that no direct write overtakes them; `shutdown`
    /// and `flush` return once they are.
    fn finish(&self, work: &mut Work) {
        let mut output = lock(&self.output);
        {
            let _state = lock(&self.state);
            self.set_phase(Phase::Direct);
        }
        let mut lines = 0;
        let mut drops = 0;
        for lane in &lock(&self.lanes).list {
            drops += std::mem::take(&mut lock(&lane.queue).unreported_drops);
        }
        let mut chunks = Vec::new();
        self.take_all_lanes(|bytes, marks| {
            if !marks.is_empty() {
                lines += marks.len() as u64;
                chunks.push(Chunk {
                    bytes: std::mem::take(bytes),
                    marks: std::mem::take(marks),
                });
            }
        });
        if lines > 0 {
            work.chunks = chunks;
            let batch = merge(work, output.vectored());
            self.write_batch(&mut **output, &batch, lines);
            self.recycle(work);
        }
        if drops > 0 {
            self.write_drop_report(&mut **output, &mut work.report_line, drops);
        }
        drop(output);
        let mut state = lock(&self.state);
        state.worker_running = false;
        let (space, progress) = (state.space_waiters > 0, state.progress_waiters > 0);
        drop(state);
        self.notify(space, progress);
    }

    /// Writes one batch of `lines` lines and settles them: written, or lost
    /// from the first failure on. `false` when the sink was abandoned
    /// meanwhile (the batch was already counted as lost).
    fn write_batch(&self, output: &mut dyn Output, batch: &Batch<'_>, lines: u64) -> bool {
        if self.phase() == Phase::Abandoned {
            // Counted as lost already: a write that would start after the
            // deadline is not made.
            return false;
        }
        // Lines already settled by partial progress.
        let mut counted = 0u64;
        let mut abandoned = false;
        let outcome = {
            write_guarded(output, batch, &mut |done| {
                let complete = batch.lines_in(done).min(lines);
                let mut state = lock(&self.state);
                if self.phase() == Phase::Abandoned {
                    abandoned = true;
                    return false;
                }
                if complete > counted {
                    self.written
                        .fetch_add(complete - counted, Ordering::Relaxed);
                    state.settled += complete - counted;
                    counted = complete;
                }
                true
            })
        };
        let (written, error) = match outcome {
            Outcome::Written => (lines - counted, None),
            Outcome::Stopped => (0, None),
            Outcome::Failed { written, error } => {
                let complete = batch.lines_in(written).min(lines);
                (complete.saturating_sub(counted), Some(error))
            }
        };
        let lost = if error.is_some() {
            lines - counted - written
        } else {
            0
        };
        let mut state = lock(&self.state);
        if abandoned || self.phase() == Phase::Abandoned {
            return false;
        }
        self.written.fetch_add(written, Ordering::Relaxed);
        self.lost.fetch_add(lost, Ordering::Relaxed);
        state.settled += written + lost;
        drop(state);
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

/// Lines of one chunk written together: (chunk, start, end) in its bytes.
pub(super) type Run = (usize, usize, usize);

/// What one write hands to the target.
pub(super) enum Batch<'a> {
    /// One buffer of whole lines.
    Bytes(&'a [u8]),
    /// Runs of lines from several chunks, in this order, written with one
    /// `writev` per [`WINDOW`] runs (no copy).
    Runs {
        chunks: &'a [Chunk],
        runs: &'a [Run],
    },
}

/// Runs handed to one `writev`: Linux's limit (`IOV_MAX`, 1,024; std clamps
/// to the system's own where it is lower). Two threads logging at once give
/// runs of about one line, so the window sets the number of system calls.
const WINDOW: usize = 1024;

impl Batch<'_> {
    /// Complete lines in the first `done` bytes. Only after a partial write
    /// or a failure.
    pub(super) fn lines_in(&self, done: usize) -> u64 {
        match self {
            Batch::Bytes(bytes) => count_lines(&bytes[..done.min(bytes.len())]),
            Batch::Runs { chunks, runs } => {
                let mut left = done;
                let mut lines = 0;
                for &(chunk, start, end) in *runs {
                    if left == 0 {
                        break;
                    }
                    let bytes = &chunks[chunk].bytes[start..end];
                    let taken = left.min(bytes.len());
                    lines += count_lines(&bytes[..taken]);
                    left -= taken;
                }
                lines
            }
        }
    }

    pub(super) fn write(
        &self,
        output: &mut dyn Output,
        progress: &mut dyn FnMut(usize) -> bool,
    ) -> Outcome {
        let (chunks, runs) = match self {
            Batch::Bytes(bytes) => return output.write_batch(bytes, progress),
            Batch::Runs { chunks, runs } => (chunks, runs),
        };
        let mut base = 0;
        for window in runs.chunks(WINDOW) {
            let mut parts = [IoSlice::new(&[]); WINDOW];
            let mut len = 0;
            for (part, &(chunk, start, end)) in parts.iter_mut().zip(window) {
                *part = IoSlice::new(&chunks[chunk].bytes[start..end]);
                len += end - start;
            }
            match output
                .write_parts(&mut parts[..window.len()], &mut |done| {
                    progress(base + done)
                })
                .after(base)
            {
                Outcome::Written => base += len,
                stopped_or_failed => return stopped_or_failed,
            }
        }
        Outcome::Written
    }
}

/// The batch to write: a single chunk as it is; several interleaved by the
/// time their lines were logged (each chunk is in that order already), in
/// runs of lines that precede every other chunk's next line. A vectored
/// target gets the runs as they are; another gets them copied into
/// `work.merged`.
fn merge(work: &mut Work, vectored: bool) -> Batch<'_> {
    if work.chunks.len() == 1 {
        return Batch::Bytes(&work.chunks[0].bytes);
    }
    let Work {
        chunks,
        merged,
        positions,
        runs,
        ..
    } = work;
    runs.clear();
    positions.clear();
    positions.resize(chunks.len(), 0);
    loop {
        let mut first: Option<(usize, u64)> = None;
        let mut second = u64::MAX;
        for (index, chunk) in chunks.iter().enumerate() {
            let Some(mark) = chunk.marks.get(positions[index]) else {
                continue;
            };
            match first {
                Some((_, at)) if mark.at >= at => second = second.min(mark.at),
                Some((_, at)) => {
                    second = at;
                    first = Some((index, mark.at));
                }
                None => first = Some((index, mark.at)),
            }
        }
        let Some((index, _)) = first else {
            break;
        };
        let chunk = &chunks[index];
        let from = positions[index];
        let mut to = from + 1;
        while chunk.marks.get(to).is_some_and(|mark| mark.at <= second) {
            to += 1;
        }
        let start = from.checked_sub(1).map_or(0, |last| chunk.marks[last].end);
        runs.push((index, start, chunk.marks[to - 1].end));
        positions[index] = to;
    }
    if vectored {
        return Batch::Runs { chunks, runs };
    }
    merged.clear();
    for &(chunk, start, end) in runs.iter() {
        merged.extend_from_slice(&chunks[chunk].bytes[start..end]);
    }
    Batch::Bytes(merged)
}

/// How long a lane that received `taken` bytes in `elapsed` takes to fill
/// half of `limit`, within [`MIN_LINGER`]..=[`LINGER`].
fn half_fill_time(elapsed: Duration, taken: usize, limit: usize) -> Duration {
    if taken == 0 {
        return LINGER;
    }
    let nanos = elapsed.as_nanos() * (limit / 2) as u128 / taken as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).clamp(MIN_LINGER, LINGER)
}

/// A lane's buffers for `limit` bytes of lines: the bytes, and as many marks
/// as lines of 128 bytes need (shorter lines grow the marks once, up to the
/// limit: a mark counts against it).
pub(super) fn lane_buffers(limit: usize) -> (Vec<u8>, Vec<Mark>) {
    (
        Vec::with_capacity(limit),
        Vec::with_capacity((limit / (128 + MARK_BYTES)).max(16)),
    )
}

/// Writes with the target's panics caught: a panicking writer fails the
/// batch instead of killing the worker (which would leave Block-mode
/// producers waiting forever).
fn write_guarded(
    output: &mut dyn Output,
    batch: &Batch<'_>,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Outcome {
    panic::catch_unwind(AssertUnwindSafe(|| batch.write(output, progress))).unwrap_or_else(|_| {
        Outcome::Failed {
            written: 0,
            error: std::io::Error::other("the log writer panicked"),
        }
    })
}

/// Complete lines in `bytes`. Runs only after a partial write or a failure,
/// never on the usual path, so the plain loop is enough.
#[allow(clippy::naive_bytecount)]
pub(super) fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
