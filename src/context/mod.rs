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
//! # Where context is kept, where it is lost, and the helper for each
//!
//! Each row is backed by the named tests, run in both id modes (stand-alone
//! and OpenTelemetry export).
//!
//! | Where | Without a helper | Helper | Tests |
//! | --- | --- | --- | --- |
//! | `.await` inside a future run with `.in_context(..)` / `.instrument(span)` (timers, `yield_now`, `tokio::join!`, `block_in_place`) | **kept**: the context is entered on every poll | — | `context_tokio::await_inside_an_instrumented_future_keeps_the_context` |
//! | waiting on `tokio::sync::Mutex`, `Semaphore`, `Notify`, `mpsc::Receiver::recv` inside such a task | **kept**, and waiters never see each other's context | — | `context_tokio::tasks_waiting_on_{an_async_mutex,a_semaphore,notify,mpsc_recv}_resume_in_their_own_context` |
//! | a `Span::enter()` guard held across `.await` | **leaks** into other tasks polled on that thread | `fut.in_context(..)` / `Instrument::instrument` | `context_tokio::a_span_guard_held_across_await_leaks_into_other_tasks_and_in_context_does_not` |
//! | `tokio::spawn` | **lost** | `context::tokio::spawn`, `fut.in_current_context()` | `context_tokio::{bare_tokio_spawn_loses_the_context, spawn_carries_the_callers_context}` |
//! | `tokio::task::spawn_blocking` | **lost** | `context::tokio::spawn_blocking` | `context_tokio::{bare_spawn_blocking_loses_the_context, spawn_blocking_carries_the_callers_context}` |
//! | `tokio::task::spawn_local` | **lost** | `context::tokio::spawn_local` | `context_tokio::{bare_spawn_local_loses_the_context, spawn_local_carries_the_callers_context}` |
//! | `JoinSet::spawn` / `spawn_blocking` / `spawn_local` | **lost** | `JoinSetExt::spawn_in_context` / `spawn_blocking_in_context` / `spawn_local_in_context` | `context_tokio::{bare_joinset_spawn_loses_the_context, joinset_spawn_in_context_carries_the_callers_context, joinset_spawn_blocking_in_context_carries_the_callers_context, joinset_spawn_local_in_context_carries_the_callers_context}` |
//! | `std::thread::spawn`, `thread::Builder::spawn` | **lost** | `context::thread::spawn`, `BuilderExt::spawn_in_context` | `context_thread::{bare_std_thread_spawn_loses_the_context, thread_spawn_carries_the_callers_context, builder_spawn_in_context_carries_the_callers_context}` |
//! | `std::thread::scope` spawns | **lost** | `context::thread::scope`, `BuilderExt::spawn_scoped_in_context` | `context_thread::{bare_std_scope_spawn_loses_the_context, scope_spawn_carries_the_callers_context_and_nested_spawns_too, builder_spawn_scoped_in_context_carries_the_callers_context}` |
//! | rayon `join`, `scope` + `spawn`, `spawn` | **lost** on pool threads | `context::rayon::{join, scope, spawn}` | `context_rayon::{bare_rayon_join_loses_the_context_on_pool_threads, bare_rayon_scope_spawn_loses_the_context, join_runs_both_closures_in_the_callers_context, scope_spawns_and_nested_spawns_run_in_the_callers_context, spawn_runs_the_job_in_the_callers_context}` |
//! | a bare rayon job run by a thread that waits inside another job's `join` / `scope` / parallel iterator (work stealing) | **leaks**: it runs inside the waiting job's context | wrap every job (helpers above); a wrapped job enters its own context wherever it runs | `context_stress::negative_control_without_the_helpers_lines_lose_their_trace` (counts such lines as `mismatched` when both stress tests share the rayon pool; not deterministic) |
//! | rayon parallel iterators (`par_iter().map(..).for_each(..)`) | **lost** on pool threads | `.in_current_context()` right after the source (entered once per job) | `context_rayon::{bare_par_iter_loses_the_context_on_pool_threads, par_iter_in_current_context_runs_every_item_in_the_callers_context}` |
//! | a message on `std::sync::mpsc` / `tokio::sync::mpsc` | **lost**: only the value travels | `context::mpsc`, `context::tokio::mpsc`; the receiver picks `Carried::in_context` (child of the sender) or `Carried::following` / `link` (new span linked to the sender); bounded channels keep their backpressure | `context_thread::{bare_mpsc_message_loses_the_context, mpsc_message_handled_in_context_is_part_of_the_senders_trace, mpsc_message_handled_following_gets_a_new_span_linked_to_the_sender, sync_channel_keeps_its_backpressure}`, `context_tokio::{tokio_mpsc_message_handled_in_context_is_part_of_the_senders_trace, tokio_unbounded_message_handled_in_context_is_part_of_the_senders_trace, tokio_mpsc_message_handled_following_gets_a_linked_span_in_the_consumers_trace, tokio_bounded_channel_keeps_its_backpressure}` |
//! | a callback stored and called later (`Box<dyn Fn>`) | **lost** | `bind(f)`, `CapturedContext::wrap` / `wrap_fn` / `wrap_fn_mut` | `context_captured::{a_stored_plain_callback_loses_the_context, a_stored_callback_from_wrap_fn_runs_in_the_registering_context_on_every_call, bind_is_capture_then_wrap, wrap_binds_a_closure_to_the_callers_context}` |
//! | a future polled on another thread, or dropped before completion | **lost** | `FutureContextExt::in_context` (also enters around the drop) | `context_captured::{a_future_in_context_sees_the_callers_context_on_every_poll_and_not_between, a_future_dropped_before_completion_is_dropped_inside_its_context}` |
//! | baggage or a remote parent attached *inside* the caller's span | travels only with the OpenTelemetry context | every helper above (they carry both) | `context_captured::{baggage_entries_are_exactly_the_callers, a_remote_parent_attached_inside_the_span_travels_and_parents_the_workers_spans}` |
//! | a background job that should be its own trace | `info_span!(parent: None, ..)` starts a new trace; if that span is filtered out the ambient trace and baggage show through, and nothing links it to the request | `new_root(root_span!(Level::INFO, "job"))` with `.link_to_ambient()` (the ambient ids as `link.trace_id` / `link.span_id` on its lines) and `.keep_baggage()`; `.spawn(fut)` (feature `tokio`) or `fut.in_new_root(..)` for async jobs | `context_captured::{a_disabled_parent_none_span_lets_the_ambient_trace_show_through, a_disabled_root_span_still_hides_the_ambient_context, new_root_detaches_from_the_ambient_trace_baggage_and_remote_parent, new_root_can_link_to_the_ambient_span_and_keep_baggage, new_root_link_to_ambient_writes_the_ambient_ids_as_link_fields_on_its_lines, new_root_links_to_an_attached_remote_parent_when_that_is_the_ambient_context}`, `context_tokio::{new_root_spawn_runs_the_task_as_a_fresh_trace_linked_to_the_caller, in_new_root_runs_a_future_as_a_fresh_trace_linked_to_the_caller}` |
//! | all of it at once: 1,000 concurrent requests × 10 seeded hops through spawn, spawn_blocking, std threads, rayon and a channel | bare: every hop line loses its ids | the helpers | `context_stress::{stress_every_line_of_every_request_carries_its_own_trace_id, negative_control_without_the_helpers_lines_lose_their_trace}` |
//!
//! What a helper guarantees: inside it, `Span::current()` is the caller's span,
//! `opentelemetry::Context::current()` equals the caller's (same span context,
//! same baggage), events go to the caller's subscriber; afterwards the worker's
//! previous context is restored, and the caller's is never changed. What it does
//! not: the captured span stays open while the captured context (a task, a
//! queued message) lives.
//!
//! The tokio helpers need the `tokio` feature, the rayon ones the `rayon`
//! feature.
//!
//! ```
//! use tracing_correlation::{CapturedContext, FutureContextExt as _};
//!
//! let _request = tracing::info_span!("request").entered();
//! // A thread:
//! tracing_correlation::context::thread::spawn(|| tracing::info!("same trace")).join().ok();
//! // A callback:
//! let callback = tracing_correlation::bind(|| tracing::info!("same trace"));
//! callback();
//! // A future, polled wherever:
//! let _future = async { tracing::info!("same trace") }.in_current_context();
//! // By hand:
//! let context = CapturedContext::capture();
//! std::thread::spawn(move || context.run(|| tracing::info!("same trace"))).join().ok();
//! ```

mod captured;
mod carried;
mod future;
mod link;
pub mod mpsc;
#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
pub mod rayon;
mod root;
pub mod thread;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

pub use captured::{bind, CapturedContext, EnteredContext};
pub use carried::Carried;
pub use future::{FutureContextExt, InContext};
pub use root::{new_root, NewRoot};
