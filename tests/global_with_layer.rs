//! A user layer added with `with_layer` changes none of init's guarantees:
//! the panic hook, the log bridge and the propagators are installed, and
//! the user layer sees the same ids as the lines. Installs globals: its own
//! binary.

mod support;

use std::sync::{Arc, Mutex};

use support::{ids_of, Captured};
use tracing_core::{Event, Subscriber};
use tracing_correlation::{builder, TraceIds};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{filter::LevelFilter, Layer};

/// A user layer (think Sentry): records each event's message and the ids
/// current when it sees it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

/// A message and the ids current when the layer saw it.
type Seen = (String, Option<TraceIds>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .unwrap()
            .push((message.0, TraceIds::current()));
    }
}

#[test]
fn with_layer_keeps_the_panic_hook_the_log_bridge_and_the_propagators() {
    let out = Captured::default();
    let recorder = Recorder::default();
    let guard = builder()
        .writer(out.clone())
        .filter("info")
        .with_layer(recorder.clone().with_filter(LevelFilter::WARN))
        .try_init()
        .expect("first init");

    let span = tracing::info_span!("request");
    let ids = span.in_scope(|| {
        log::warn!(attempt = 2; "retrying through log");
        TraceIds::current().expect("ids")
    });

    // The global propagator injects the ids the lines carry.
    let mut headers = std::collections::HashMap::new();
    span.in_scope(|| {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&opentelemetry::Context::current(), &mut headers);
        });
    });
    assert_eq!(headers.get("traceparent"), Some(&ids.to_string()));

    let job = tracing::info_span!("job");
    let job_ids = TraceIds::from_span(&job).expect("ids");
    let result = std::thread::spawn(move || {
        let _entered = job.enter();
        panic!("boom");
    })
    .join();
    assert!(result.is_err());
    drop(guard);

    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["message"], "retrying through log");
    assert_eq!(lines[0]["attempt"], 2);
    assert_eq!(
        ids_of(&lines[0]),
        Some((
            ids.trace_id_hex().to_string(),
            ids.span_id_hex().to_string(),
            "01".into()
        ))
    );
    assert_eq!(lines[1]["message"], "panicked: boom");
    assert_eq!(lines[1]["span_id"], job_ids.span_id_hex().as_str());

    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("retrying through log".to_owned(), Some(ids)),
            ("panicked: boom".to_owned(), Some(job_ids)),
        ]
    );
}
