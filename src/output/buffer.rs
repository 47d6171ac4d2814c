//! Error-triggered buffering: a request's lines below the output's filter
//! (DEBUG, say) are kept per trace in bounded memory instead of being
//! written; an ERROR line of the trace, a 5xx completion line or a panic
//! writes them out, in order, before the triggering line; otherwise they
//! are discarded when the trace's last local root span closes.
//!
//! Design (see ARCHITECTURE.md, "Error-triggered buffering"): one table per
//! output, sharded 16 ways by trace id, each shard a `Mutex` that only this
//! module takes, never while writing or calling other code. An entry holds
//! its lines as bytes in one `Vec<u8>` (already formatted and marked), the
//! ids of the local roots that registered it, and its drop count. Memory is
//! charged by capacity against one atomic total: entries' vectors, pooled
//! vectors and a fixed per-entry overhead, so the bound holds whatever the
//! load. Vectors of closed traces go back to a small per-shard pool, so a
//! steady flow of requests allocates nothing.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use std::cell::RefCell;
use std::sync::Arc;

use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::filter::Swappable;
use super::layer::{write_count_line, LineFormat, OutputLayer};
use super::verbosity::Verbosity;
use crate::ids::TraceIds;
use crate::layer::{with_span_data, SpanData};

/// The most bytes of lines one trace may hold unless configured: 64 KiB.
pub const DEFAULT_PER_TRACE_BYTES: usize = 64 * 1024;

/// The most bytes all buffers of one output may hold together unless
/// configured: 8 MiB.
pub const DEFAULT_TOTAL_BYTES: usize = 8 * 1024 * 1024;

/// The key written on each line that was held in a buffer.
pub(crate) const MARK_KEY: &str = "buffered";
/// Used instead when the line already has a `"buffered"` key of its own.
pub(crate) const MARK_KEY_ALT: &str = "log.buffered";

const SHARDS: usize = 16;
/// Smallest vector an entry starts with (a few lines).
const MIN_CAPACITY: usize = 1024;
/// Vectors at most this large are kept for reuse…
const POOLED_MAX_CAPACITY: usize = 8 * 1024;
/// …at most this many per shard.
const POOLED_PER_SHARD: usize = 8;
/// What an entry costs besides its vector: the map slot (key, value and
/// control byte), charged against the total bound.
pub(crate) const ENTRY_OVERHEAD: usize = std::mem::size_of::<(u128, Entry)>() + 8;

/// Which lines are held until the request fails, and how much memory they
/// may take.
///
/// Lines the output's own filter writes are written as always; lines it
/// does not write but this configuration captures (`DEBUG` ones, with
/// `BufferConfig::new(Level::DEBUG)` and an `info` filter) are kept per
/// trace. If the trace then fails — an `ERROR` line in it, a completion
/// line of the tower middleware with a 5xx status (or a failed or panicked
/// request), a panic — they are written before the triggering line, each
/// with `"buffered":true` and its original timestamp and ids; later
/// captured lines of that trace are written at once, marked the same way.
/// If the trace never fails, they are discarded when its last local root
/// span (the request span) closes.
///
/// Lines outside any span, or in a trace with no open span in this process,
/// are never buffered.
///
/// ```
/// use tracing::Level;
/// use tracing_correlation::BufferConfig;
///
/// let (dispatch, _guard) = tracing_correlation::builder()
///     .writer(std::io::sink)
///     .filter("info")
///     .buffer_until_error(
///         BufferConfig::new(Level::DEBUG)
///             .per_trace_bytes(32 * 1024)
///             .total_bytes(4 << 20),
///     )
///     .build()
///     .expect("valid configuration");
/// # drop(dispatch);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a BufferConfig does nothing until given to `Builder::buffer_until_error`"]
pub struct BufferConfig {
    pub(crate) capture: String,
    pub(crate) per_trace_bytes: usize,
    pub(crate) total_bytes: usize,
}

impl BufferConfig {
    /// Captures every line down to `level` (`Level::DEBUG`: DEBUG lines;
    /// `Level::TRACE`: DEBUG and TRACE lines) that the output's filter does
    /// not write.
    ///
    /// ```
    /// let config = tracing_correlation::BufferConfig::new(tracing::Level::TRACE);
    /// # drop(config);
    /// ```
    pub fn new(level: Level) -> Self {
        Self {
            capture: level.as_str().to_ascii_lowercase(),
            per_trace_bytes: DEFAULT_PER_TRACE_BYTES,
            total_bytes: DEFAULT_TOTAL_BYTES,
        }
    }

    /// Captures the lines these directives enable (`RUST_LOG` syntax, say
    /// `debug,hyper=off`) instead of a plain level.
    ///
    /// ```
    /// use tracing_correlation::BufferConfig;
    ///
    /// let config = BufferConfig::new(tracing::Level::DEBUG).filter("my_app=trace,debug,h2=off");
    /// # drop(config);
    /// ```
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.capture = directives.into();
        self
    }

    /// The most bytes of lines one trace holds (64 KiB by default). When a
    /// line does not fit, the trace's oldest lines make room for it; they
    /// are counted, and the count is written as a line of its own before
    /// the buffered lines when the trace fails.
    ///
    /// ```
    /// let config = tracing_correlation::BufferConfig::new(tracing::Level::DEBUG).per_trace_bytes(16 * 1024);
    /// # drop(config);
    /// ```
    pub fn per_trace_bytes(mut self, bytes: usize) -> Self {
        self.per_trace_bytes = bytes.max(1);
        self
    }

    /// The most bytes all traces' buffers of this output take together (8
    /// MiB by default), including each trace's fixed overhead and vectors
    /// kept for reuse. When it is reached a trace makes room from its own
    /// oldest lines; a trace with none drops the line. Every drop is
    /// counted.
    ///
    /// ```
    /// let config = tracing_correlation::BufferConfig::new(tracing::Level::DEBUG).total_bytes(1 << 20);
    /// # drop(config);
    /// ```
    pub fn total_bytes(mut self, bytes: usize) -> Self {
        self.total_bytes = bytes.max(1);
        self
    }
}

/// What an output's buffers did so far, from
/// [`LoggingGuard::buffer_stats`](crate::LoggingGuard::buffer_stats).
///
/// Every captured line is counted once as `buffered` or `dropped` (lines
/// written at once in a trace that already failed are `passed_through`);
/// every buffered line ends as `flushed`, `evicted` (dropped later to make
/// room), `discarded`, or is still `held_lines`.
///
/// ```
/// let stats = tracing_correlation::BufferStats::default();
/// assert_eq!(stats.buffered, 0);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Lines kept in a buffer.
    pub buffered: u64,
    /// Lines not kept: larger than the per-trace bound, or no room left.
    pub dropped: u64,
    /// Buffered lines dropped later to make room for newer ones.
    pub evicted: u64,
    /// Buffered lines written because their trace failed.
    pub flushed: u64,
    /// Buffered lines discarded because their trace ended without failing
    /// (or at shutdown).
    pub discarded: u64,
    /// Captured lines written at once because their trace had failed.
    pub passed_through: u64,
    /// Traces that failed while they had a buffer.
    pub triggered: u64,
    /// Lines held now.
    pub held_lines: u64,
    /// Bytes charged now (vectors' capacity, pooled vectors, per-trace
    /// overhead).
    pub held_bytes: u64,
    /// The most bytes ever charged at once.
    pub max_held_bytes: u64,
    /// Traces with a buffer now.
    pub traces: u64,
}

/// Hashes a trace id (already random) by folding and one multiply.
#[derive(Default)]
struct TraceHasher(u64);

impl Hasher for TraceHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = ((value as u64) ^ ((value >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type TraceMap = HashMap<u128, Entry, BuildHasherDefault<TraceHasher>>;

/// The local root spans (registry span ids) that hold an entry open.
#[derive(Default)]
struct Roots {
    inline: [u64; 2],
    len: usize,
    more: Vec<u64>,
}

impl Roots {
    fn contains(&self, root: u64) -> bool {
        self.inline[..self.len.min(2)].contains(&root) || self.more.contains(&root)
    }

    fn add(&mut self, root: u64) {
        if self.contains(root) {
            return;
        }
        if self.len < 2 {
            self.inline[self.len] = root;
        } else {
            self.more.push(root);
        }
        self.len += 1;
    }

    /// Removes `root`; `true` if it was there.
    fn remove(&mut self, root: u64) -> bool {
        if let Some(at) = self.inline[..self.len.min(2)]
            .iter()
            .position(|r| *r == root)
        {
            if let Some(moved) = self.more.pop() {
                self.inline[at] = moved;
            } else if at == 0 && self.len == 2 {
                self.inline[0] = self.inline[1];
            }
            self.len -= 1;
            true
        } else if let Some(at) = self.more.iter().position(|r| *r == root) {
            self.more.swap_remove(at);
            self.len -= 1;
            true
        } else {
            false
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One trace's buffer.
pub(crate) struct Entry {
    /// Lines from `start` on, each ending in `\n`.
    bytes: Vec<u8>,
    start: usize,
    lines: u64,
    /// Lines of this trace dropped or evicted, not yet reported.
    dropped: u64,
    roots: Roots,
    /// The trace failed: captured lines are written at once.
    triggered: bool,
}

#[derive(Default)]
struct Shard {
    entries: TraceMap,
    /// Empty vectors kept for reuse (their capacity stays charged).
    pool: Vec<Vec<u8>>,
}

/// What became of a captured line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Kept.
    Buffered,
    /// The trace already failed: write it now.
    PassThrough,
    /// Not kept (counted).
    Dropped,
}

/// Lines taken out of a failed trace's buffer, to be written, then
/// returned with [`TraceBuffers::recycle`].
pub(crate) struct Taken {
    bytes: Vec<u8>,
    start: usize,
    /// Lines of the trace that were dropped or evicted.
    pub(crate) dropped: u64,
}

impl Taken {
    /// Each line, with its `\n`.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes[self.start..].split_inclusive(|b| *b == b'\n')
    }
}

/// The buffers of one output.
pub(crate) struct TraceBuffers {
    shards: Box<[Mutex<Shard>]>,
    per_trace: usize,
    total: usize,
    held: AtomicUsize,
    max_held: AtomicUsize,
    buffered: AtomicU64,
    dropped: AtomicU64,
    evicted: AtomicU64,
    flushed: AtomicU64,
    discarded: AtomicU64,
    passed_through: AtomicU64,
    triggered: AtomicU64,
}

impl fmt::Debug for TraceBuffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceBuffers")
            .field("per_trace", &self.per_trace)
            .field("total", &self.total)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TraceBuffers {
    pub(crate) fn new(config: &BufferConfig) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_trace: config.per_trace_bytes,
            total: config.total_bytes,
            held: AtomicUsize::new(0),
            max_held: AtomicUsize::new(0),
            buffered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            passed_through: AtomicU64::new(0),
            triggered: AtomicU64::new(0),
        }
    }

    fn shard(&self, trace: u128) -> &Mutex<Shard> {
        let folded = (trace as u64) ^ ((trace >> 64) as u64);
        &self.shards[(folded % SHARDS as u64) as usize]
    }

    /// Charges `bytes` against the total; `false` (nothing charged) when
    /// they do not fit.
    fn charge(&self, bytes: usize) -> bool {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let Some(next) = held.checked_add(bytes).filter(|n| *n <= self.total) else {
                return false;
            };
            match self
                .held
                .compare_exchange_weak(held, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.max_held.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(actual) => held = actual,
            }
        }
    }

    fn uncharge(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A new entry, its vector from the pool when one is there; `None`
    /// when its overhead does not fit.
    fn new_entry(&self, shard: &mut Shard) -> Option<Entry> {
        if !self.charge(ENTRY_OVERHEAD) {
            return None;
        }
        Some(Entry {
            bytes: shard.pool.pop().unwrap_or_default(),
            start: 0,
            lines: 0,
            dropped: 0,
            roots: Roots::default(),
            triggered: false,
        })
    }

    /// Keeps `line` (one whole line) for `trace`, registering `root` (the
    /// local root span of the line's span) as holding the entry open.
    pub(crate) fn append(&self, trace: u128, root: u64, line: &[u8]) -> Appended {
        let mut guard = lock(self.shard(trace));
        let shard = &mut *guard;
        if !shard.entries.contains_key(&trace) {
            let Some(entry) = self.new_entry(shard) else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Appended::Dropped;
            };
            shard.entries.insert(trace, entry);
        }
        let Some(entry) = shard.entries.get_mut(&trace) else {
            return Appended::Dropped;
        };
        entry.roots.add(root);
        if entry.triggered {
            self.passed_through.fetch_add(1, Ordering::Relaxed);
            return Appended::PassThrough;
        }
        let outcome = self.push(entry, line);
        match outcome {
            Appended::Buffered => self.buffered.fetch_add(1, Ordering::Relaxed),
            _ => self.dropped.fetch_add(1, Ordering::Relaxed),
        };
        outcome
    }

    /// Copies `line` into `entry`, growing it within both bounds, else
    /// evicting its oldest lines.
    fn push(&self, entry: &mut Entry, line: &[u8]) -> Appended {
        let len = line.len();
        if len > self.per_trace {
            entry.dropped += 1;
            return Appended::Dropped;
        }
        let kept = entry.bytes.len() - entry.start;
        let capacity = entry.bytes.capacity();
        if kept + len > capacity {
            let wanted = (capacity * 2)
                .max(kept + len)
                .max(MIN_CAPACITY)
                .min(self.per_trace);
            if wanted > capacity && self.charge(wanted - capacity) {
                entry.bytes.drain(..entry.start);
                entry.start = 0;
                entry.bytes.reserve_exact(wanted - entry.bytes.len());
                // The allocator's answer is what memory holds: charge it
                // even past the bound (by the allocator's rounding at most).
                let actual = entry.bytes.capacity();
                if actual > wanted {
                    self.held.fetch_add(actual - wanted, Ordering::Relaxed);
                    self.max_held
                        .fetch_max(self.held.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
        let capacity = entry.bytes.capacity();
        if len > capacity {
            entry.dropped += 1;
            return Appended::Dropped;
        }
        // Evict the oldest lines until this one fits.
        while entry.bytes.len() - entry.start + len > capacity {
            let oldest = &entry.bytes[entry.start..];
            let Some(end) = oldest.iter().position(|b| *b == b'\n') else {
                entry.bytes.clear();
                entry.start = 0;
                break;
            };
            entry.start += end + 1;
            entry.lines -= 1;
            entry.dropped += 1;
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        if entry.bytes.len() + len > capacity {
            entry.bytes.drain(..entry.start);
            entry.start = 0;
        }
        entry.bytes.extend_from_slice(line);
        entry.lines += 1;
        Appended::Buffered
    }

    /// The trace failed: marks it (later captured lines pass through) and
    /// takes its lines out, registering `root` so the mark lasts as long as
    /// the request. `None` when it holds no line and dropped none.
    pub(crate) fn trigger(&self, trace: u128, root: Option<u64>) -> Option<Taken> {
        let mut guard = lock(self.shard(trace));
        let shard = &mut *guard;
        if !shard.entries.contains_key(&trace) {
            // No buffered line yet: remember the failure for the lines to
            // come, if the request's root is known and the overhead fits.
            let root = root?;
            let mut entry = self.new_entry(shard)?;
            entry.triggered = true;
            entry.roots.add(root);
            shard.entries.insert(trace, entry);
            return None;
        }
        let entry = shard.entries.get_mut(&trace)?;
        if let Some(root) = root {
            entry.roots.add(root);
        }
        if entry.triggered {
            return None;
        }
        entry.triggered = true;
        self.triggered.fetch_add(1, Ordering::Relaxed);
        if entry.lines == 0 && entry.dropped == 0 {
            return None;
        }
        self.flushed.fetch_add(entry.lines, Ordering::Relaxed);
        let taken = Taken {
            bytes: std::mem::take(&mut entry.bytes),
            start: entry.start,
            dropped: std::mem::take(&mut entry.dropped),
        };
        entry.start = 0;
        entry.lines = 0;
        Some(taken)
    }

    /// Returns a written-out buffer's vector: to its entry if that still
    /// exists (and has none), else to the pool, else freed.
    pub(crate) fn recycle(&self, trace: u128, taken: Taken) {
        let mut bytes = taken.bytes;
        bytes.clear();
        let mut guard = lock(self.shard(trace));
        let shard = &mut *guard;
        if let Some(entry) = shard.entries.get_mut(&trace) {
            if entry.bytes.capacity() == 0 {
                entry.bytes = bytes;
                return;
            }
        }
        self.release(shard, bytes);
    }

    /// Pools an emptied vector, or frees it and its charge.
    fn release(&self, shard: &mut Shard, mut bytes: Vec<u8>) {
        bytes.clear();
        let capacity = bytes.capacity();
        if capacity == 0 {
            return;
        }
        if capacity <= POOLED_MAX_CAPACITY && shard.pool.len() < POOLED_PER_SHARD {
            shard.pool.push(bytes);
        } else {
            drop(bytes);
            self.uncharge(capacity);
        }
    }

    /// A local root span of `trace` closed: when it was the last one holding
    /// the entry, the entry's lines are discarded.
    pub(crate) fn close_root(&self, trace: u128, root: u64) {
        let mut guard = lock(self.shard(trace));
        let shard = &mut *guard;
        let Some(entry) = shard.entries.get_mut(&trace) else {
            return;
        };
        if !entry.roots.remove(root) || !entry.roots.is_empty() {
            return;
        }
        if let Some(entry) = shard.entries.remove(&trace) {
            self.discard(shard, entry);
        }
    }

    fn discard(&self, shard: &mut Shard, entry: Entry) {
        self.discarded.fetch_add(entry.lines, Ordering::Relaxed);
        self.release(shard, entry.bytes);
        self.uncharge(ENTRY_OVERHEAD);
    }

    /// Discards every buffer (the output shuts down); failed traces' lines
    /// were written when they failed. Returns the lines discarded.
    pub(crate) fn shutdown(&self) -> u64 {
        let before = self.discarded.load(Ordering::Relaxed);
        for shard in &*self.shards {
            let mut guard = lock(shard);
            let shard = &mut *guard;
            let entries: Vec<Entry> = shard.entries.drain().map(|(_, e)| e).collect();
            for entry in entries {
                self.discard(shard, entry);
            }
        }
        self.discarded.load(Ordering::Relaxed) - before
    }

    pub(crate) fn stats(&self) -> BufferStats {
        let mut held_lines = 0;
        let mut traces = 0;
        for shard in &*self.shards {
            let shard = lock(shard);
            traces += shard.entries.len() as u64;
            held_lines += shard.entries.values().map(|e| e.lines).sum::<u64>();
        }
        BufferStats {
            buffered: self.buffered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            flushed: self.flushed.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            passed_through: self.passed_through.load(Ordering::Relaxed),
            triggered: self.triggered.load(Ordering::Relaxed),
            held_lines,
            held_bytes: self.held.load(Ordering::Relaxed) as u64,
            max_held_bytes: self.max_held.load(Ordering::Relaxed) as u64,
            traces,
        }
    }
}

/// The output layer's side of buffering: decides, per event, whether the
/// output writes it, keeps it, or writes a failed trace's buffer first.
pub(crate) struct BufferHook {
    pub(crate) buffers: Arc<TraceBuffers>,
    /// The output's own line filter: what it enables is written as always.
    lines: Swappable,
    /// Lines of a raised request are written, not buffered.
    raise: Option<Arc<Verbosity>>,
}

impl fmt::Debug for BufferHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferHook")
            .field("buffers", &self.buffers)
            .finish_non_exhaustive()
    }
}

/// What the output layer does with an event after [`BufferHook::route`].
pub(crate) enum Route {
    /// Format and write it as usual.
    Write,
    /// Nothing more: it was kept, dropped or already written.
    Done,
}

thread_local! {
    /// A captured line being formatted on this thread, reused.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

impl BufferHook {
    pub(crate) fn new(
        buffers: Arc<TraceBuffers>,
        lines: Swappable,
        raise: Option<Arc<Verbosity>>,
    ) -> Self {
        Self {
            buffers,
            lines,
            raise,
        }
    }

    /// Routes one event: written by the output's filter (and, for a
    /// trigger, preceded by its trace's buffer), or captured.
    pub(crate) fn route<S, F>(
        &self,
        layer: &OutputLayer<F>,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
        span: Option<&SpanRef<'_, S>>,
        ids: Option<TraceIds>,
    ) -> Route
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        F: LineFormat,
    {
        let written = self.lines.enables_event(event, ctx)
            || self
                .raise
                .as_ref()
                .is_some_and(|raise| raise.raises(event, ctx));
        if written {
            if is_trigger(event) {
                if let (Some(span), Some(ids)) = (span, ids) {
                    self.flush(layer, span, ids);
                }
            }
            return Route::Write;
        }
        // Captured: only a line of a request (a span of a trace) is kept.
        let (Some(span), Some(ids)) = (span, ids) else {
            return Route::Done;
        };
        let trace = u128::from_be_bytes(ids.trace_id().to_bytes());
        let Some(root) = local_root(span, trace) else {
            return Route::Done;
        };
        with_scratch(|line| {
            line.clear();
            if layer
                .format
                .write_line(line, event, Some(span), Some(ids))
                .is_err()
            {
                return;
            }
            mark(line);
            if self.buffers.append(trace, root, line.as_bytes()) == Appended::PassThrough {
                layer.sink.write_line(line.as_bytes());
            } else {
                crate::format::time::discard_line_clock();
            }
        });
        Route::Done
    }

    /// Writes the buffer of the failed trace of `span` (a report of its
    /// dropped lines first), before the triggering line.
    fn flush<S, F>(&self, layer: &OutputLayer<F>, span: &SpanRef<'_, S>, ids: TraceIds)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        F: LineFormat,
    {
        let trace = u128::from_be_bytes(ids.trace_id().to_bytes());
        let root = local_root(span, trace);
        let Some(taken) = self.buffers.trigger(trace, root) else {
            return;
        };
        if taken.dropped > 0 {
            with_scratch(|line| {
                line.clear();
                if write_drop_report(layer, line, span, ids, taken.dropped).is_ok() {
                    mark(line);
                    layer.sink.write_line(line.as_bytes());
                }
            });
        }
        for line in taken.lines() {
            layer.sink.write_line(line);
        }
        self.buffers.recycle(trace, taken);
    }

    /// A span closed: if it is a local root, its trace's buffer may end.
    pub(crate) fn on_close<S>(&self, span: &SpanRef<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if span.parent().is_some() {
            return;
        }
        if let Some(ids) = with_span_data(span, SpanData::ids).flatten() {
            let trace = u128::from_be_bytes(ids.trace_id().to_bytes());
            self.buffers.close_root(trace, span.id().into_u64());
        }
    }
}

/// The local root of `span` (the outermost span of the output's span set),
/// as a registry id, when it is in `trace`: its close ends the buffer.
fn local_root<S>(span: &SpanRef<'_, S>, trace: u128) -> Option<u64>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let root = span.scope().last()?;
    let root_ids = with_span_data(&root, SpanData::ids).flatten()?;
    (u128::from_be_bytes(root_ids.trace_id().to_bytes()) == trace).then(|| root.id().into_u64())
}

fn with_scratch(f: impl FnOnce(&mut String)) {
    let mut f = Some(f);
    let _ = SCRATCH.try_with(|scratch| {
        if let Ok(mut scratch) = scratch.try_borrow_mut() {
            if let Some(f) = f.take() {
                f(&mut scratch);
            }
            if scratch.capacity() > crate::format::json::MAX_KEPT_LINE_CAPACITY {
                *scratch = String::new();
            }
        }
    });
    // Busy (a captured line logged while formatting one) or the thread is
    // ending: a buffer of its own.
    if let Some(f) = f {
        f(&mut String::new());
    }
}

/// The line saying how many lines of a trace were dropped from its buffer,
/// in the output's own format, with the trace's ids.
fn write_drop_report<S, F>(
    layer: &OutputLayer<F>,
    out: &mut String,
    span: &SpanRef<'_, S>,
    ids: TraceIds,
    dropped: u64,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: LineFormat,
{
    write_count_line(
        &layer.format,
        out,
        report::callsite(Level::WARN).0,
        format_args!("{dropped} {}", report::MESSAGE),
        dropped,
        Some(span),
        Some(ids),
    )
}

/// Marks a formatted line as buffered: `,"buffered":true` before a JSON
/// line's closing brace (`"log.buffered"` when the line already has a
/// `"buffered"` key), ` buffered=true` at the end of a pretty line.
pub(crate) fn mark(line: &mut String) {
    if line.starts_with('{') && line.ends_with("}\n") {
        let key = if line.contains("\"buffered\":") {
            MARK_KEY_ALT
        } else {
            MARK_KEY
        };
        line.truncate(line.len() - 2);
        line.push_str(",\"");
        line.push_str(key);
        line.push_str("\":true}\n");
    } else if line.ends_with('\n') {
        line.pop();
        line.push_str(" buffered=true\n");
    }
}

/// Whether a line is a trigger: `ERROR`, or a completion line of the tower
/// middleware for a 5xx response, a failed or a panicked request.
pub(crate) fn is_trigger(event: &tracing_core::Event<'_>) -> bool {
    let meta = event.metadata();
    if *meta.level() == Level::ERROR {
        return true;
    }
    if meta.target() != COMPLETION_TARGET {
        return false;
    }
    let mut visitor = FailedRequest(false);
    event.record(&mut visitor);
    visitor.0
}

/// The target of the tower middleware's completion lines.
const COMPLETION_TARGET: &str = "tracing_correlation::tower";

/// Finds a 5xx status, or the message of a failed or panicked request.
struct FailedRequest(bool);

impl tracing_core::field::Visit for FailedRequest {
    fn record_i64(&mut self, field: &tracing_core::Field, value: i64) {
        if field.name() == "http.response.status_code" && (500..600).contains(&value) {
            self.0 = true;
        }
    }

    fn record_u64(&mut self, field: &tracing_core::Field, value: u64) {
        if field.name() == "http.response.status_code" && (500..600).contains(&value) {
            self.0 = true;
        }
    }

    fn record_str(&mut self, field: &tracing_core::Field, value: &str) {
        if field.name() == "message" && matches!(value, "request failed" | "request panicked") {
            self.0 = true;
        }
    }

    fn record_debug(&mut self, field: &tracing_core::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let mut probe = MessageProbe(false);
            let _ = fmt::write(&mut probe, format_args!("{value:?}"));
            if probe.0 {
                self.0 = true;
            }
        }
    }
}

/// Matches the message text without allocating: the completion line's
/// message is one `write_str` of "request failed" or "request panicked".
struct MessageProbe(bool);

impl fmt::Write for MessageProbe {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if matches!(s, "request failed" | "request panicked") {
            self.0 = true;
        }
        Ok(())
    }
}

/// The five static callsites of the line that reports a trace's dropped
/// buffered lines (only WARN is used); formatted by the output itself.
pub(crate) mod report {
    pub(crate) const FIELDS: &[&str] = &["message", "dropped_lines"];

    crate::level_callsites::level_callsites!("buffer dropped", "tracing_correlation", FIELDS);

    pub(crate) const MESSAGE: &str =
        "buffered lines of this trace were dropped: its buffer was full";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffers(per_trace: usize, total: usize) -> TraceBuffers {
        TraceBuffers::new(
            &BufferConfig::new(Level::DEBUG)
                .per_trace_bytes(per_trace)
                .total_bytes(total),
        )
    }

    fn lines(taken: &Taken) -> Vec<String> {
        taken
            .lines()
            .map(|l| String::from_utf8(l.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn lines_come_out_in_order_and_the_entry_goes_with_its_last_root() {
        let b = buffers(4096, 1 << 20);
        assert_eq!(b.append(7, 1, b"a\n"), Appended::Buffered);
        assert_eq!(b.append(7, 2, b"b\n"), Appended::Buffered);
        assert_eq!(b.append(8, 3, b"other\n"), Appended::Buffered);
        b.close_root(7, 1);
        assert_eq!(b.stats().traces, 2, "root 2 still holds trace 7");
        let taken = b.trigger(7, None).expect("two lines");
        assert_eq!(lines(&taken), ["a\n", "b\n"]);
        assert_eq!(taken.dropped, 0);
        b.recycle(7, taken);
        assert_eq!(b.append(7, 2, b"c\n"), Appended::PassThrough);
        b.close_root(7, 2);
        b.close_root(8, 3);
        let stats = b.stats();
        assert_eq!(
            (
                stats.buffered,
                stats.flushed,
                stats.discarded,
                stats.passed_through,
                stats.traces
            ),
            (3, 2, 1, 1, 0)
        );
    }

    #[test]
    fn the_per_trace_bound_evicts_the_oldest_lines_and_counts_them() {
        // Lines of 10 bytes, room for 3.
        let b = buffers(30, 1 << 20);
        for i in 0..5 {
            let line = format!("line {i:03}\n");
            assert_eq!(line.len(), 9);
            assert_eq!(b.append(1, 1, line.as_bytes()), Appended::Buffered);
        }
        let taken = b.trigger(1, None).unwrap();
        assert_eq!(lines(&taken), ["line 002\n", "line 003\n", "line 004\n"]);
        assert_eq!(taken.dropped, 2);
        assert_eq!(b.stats().evicted, 2);
        // A line larger than the bound is dropped alone.
        assert_eq!(b.append(2, 1, &[b'x'; 31]), Appended::Dropped);
    }

    #[test]
    fn the_total_bound_holds_and_drops_are_counted() {
        let total = ENTRY_OVERHEAD * 3 + MIN_CAPACITY * 2;
        let b = buffers(MIN_CAPACITY, total);
        let line = [b'y'; 99];
        let mut dropped = 0;
        for trace in 0..10u128 {
            if b.append(trace, 1, &line) == Appended::Dropped {
                dropped += 1;
            }
        }
        let stats = b.stats();
        assert!(stats.max_held_bytes <= total as u64, "{stats:?}");
        assert_eq!(stats.buffered + stats.dropped, 10);
        assert_eq!(stats.dropped, dropped);
        assert_eq!(stats.buffered, 2);
        b.shutdown();
        let stats = b.stats();
        assert_eq!(stats.traces, 0);
        assert_eq!(stats.discarded, 2);
    }

    #[test]
    fn a_steady_flow_reuses_pooled_vectors() {
        let b = buffers(4096, 1 << 20);
        b.append(1, 1, b"first\n");
        b.close_root(1, 1);
        let held = b.stats().held_bytes;
        assert_eq!(held, MIN_CAPACITY as u64, "the vector stays in the pool");
        b.append(1 + SHARDS as u128, 1, b"again\n");
        assert_eq!(
            b.stats().held_bytes,
            (MIN_CAPACITY + ENTRY_OVERHEAD) as u64,
            "same shard: the pooled vector is reused"
        );
    }

    #[test]
    fn marks_json_and_pretty_lines_without_duplicate_keys() {
        let mut json = String::from("{\"a\":1}\n");
        mark(&mut json);
        assert_eq!(json, "{\"a\":1,\"buffered\":true}\n");
        let mut taken = String::from("{\"buffered\":\"user\"}\n");
        mark(&mut taken);
        assert_eq!(taken, "{\"buffered\":\"user\",\"log.buffered\":true}\n");
        let mut pretty = String::from("2026 DEBUG x: y\n");
        mark(&mut pretty);
        assert_eq!(pretty, "2026 DEBUG x: y buffered=true\n");
    }
}
