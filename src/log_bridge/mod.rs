//! Records from the `log` crate, with the same trace ids as `tracing` events.
//!
//! Two ways in, one per situation:
//!
//! * [`LogBridge`] forwards every `log` record into the `tracing` pipeline,
//!   so the [`JsonFormat`](crate::JsonFormat) writes it like any event: same
//!   ids, the record's own target, and its key-values as fields.
//!   [`init_json_logging`](crate::init_json_logging) installs it.
//! * [`CorrelatedLogger`] wraps an existing `log::Log` (env_logger, log4rs,
//!   fern…) and adds `trace_id`, `span_id` and `trace_flags` to each record
//!   as key-values, or to the message text.
//!
//! How the key-values reach the formatter: `tracing` fields are fixed per
//! callsite, a record's key-values are not. The bridge copies the record's
//! target and location and renders its key-values as JSON into a reused
//! per-thread buffer just before it dispatches the event, and the
//! formatters, recognising the bridge's callsites, write them from there
//! through the same duplicate-key check as ordinary fields. Nothing is
//! allocated once the buffer has grown to the largest record seen. The event
//! also carries the target and location as ordinary fields, for other
//! formatters and for the rare event formatted without the buffer.

mod callsite;
mod decorator;
mod forward;
mod staged;

pub use decorator::CorrelatedLogger;
pub use forward::LogBridge;

pub(crate) use callsite::{identifier, is_forwarded, FIELD_NAMES};
pub(crate) use staged::{
    location_key_reserved, record_target, write_json_fields, write_message,
    write_pretty_key_values, SkipLogTarget,
};
