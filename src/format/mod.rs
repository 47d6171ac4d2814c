//! Event formatters: JSON lines and a human-readable variant, both carrying
//! the trace context.

pub(crate) mod baggage;
pub(crate) mod escape;
pub(crate) mod fields;
pub(crate) mod json;
pub(crate) mod keys;
pub(crate) mod pretty;
pub(crate) mod span_fields;
pub(crate) mod time;
