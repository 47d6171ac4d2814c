//! Property tests: hostile header values never panic, and
//! `extract(inject(x)) == x` for valid span contexts and baggage.

use opentelemetry::baggage::{BaggageExt, KeyValueMetadata};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use tracing_correlation::{
    format_traceparent, parse_traceparent, parse_tracestate, Carrier, W3cPropagator, W3cTracestate,
};

fn extract(carrier: &mut Vec<(String, String)>) -> Context {
    W3cPropagator::new().extract_with_context(&Context::new(), &Carrier::new(carrier))
}

/// Arbitrary text, raw bytes decoded lossily, and near-valid traceparents.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        vec(any::<u8>(), 0..120).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[0-9a-fA-F\\- \t]{0,70}",
        "[0-9a-f]{2}-[0-9a-f]{30,34}-[0-9a-f]{14,18}-[0-9a-f]{1,3}(-.{0,5})?",
        "[a-z0-9@=,;% \t*/_\\-]{0,80}",
    ]
}

/// Keys `opentelemetry::trace::TraceState` can hold (at most one `@`, at
/// most 13 characters after it), all valid Level 2 keys.
fn tracestate_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9_*/\\-]{0,12}",
        "[a-z0-9][a-z0-9_*/\\-]{0,6}@[a-z0-9][a-z0-9_*/\\-]{0,12}",
    ]
}

/// Any Level 2 key: `(lcalpha / DIGIT) 0*255(keychar)`, `@` anywhere after
/// the first character.
fn level2_key() -> impl Strategy<Value = String> {
    prop_oneof![
        tracestate_key(),
        "[a-z0-9][a-z0-9_*/@\\-]{0,20}",
        "[a-z0-9]@{1,3}[a-z0-9_*/@\\-]{0,20}",
    ]
}

/// Printable ASCII except `,` and `=`, not ending in a space, never empty.
fn tracestate_value() -> impl Strategy<Value = String> {
    "[ -+\\--<>-~]{0,19}[!-+\\--<>-~]"
}

fn span_context() -> impl Strategy<Value = SpanContext> {
    (
        1..=u128::MAX,
        1..=u64::MAX,
        prop::sample::select(vec![0x00_u8, 0x01, 0x02, 0x03]),
        btree_map(tracestate_key(), tracestate_value(), 0..8),
    )
        .prop_map(|(trace, span, flags, state)| {
            let state = TraceState::from_key_value(state).unwrap_or_default();
            SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                TraceFlags::new(flags),
                false,
                state,
            )
        })
}

fn baggage_members() -> impl Strategy<Value = Vec<KeyValueMetadata>> {
    btree_map(
        "[a-zA-Z0-9!#$%&'*+.^_`|~\\-]{1,10}",
        (
            any::<String>(),
            "([a-z]{1,4}(=[a-zA-Z0-9%]{0,4})?(;[a-z]{1,4}){0,2})?",
        ),
        0..10,
    )
    .prop_map(|members| {
        members
            .into_iter()
            .map(|(key, (value, metadata))| KeyValueMetadata::new(key, value, metadata))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hostile_headers_never_panic(
        traceparent in header_value(),
        tracestate in vec(header_value(), 0..3),
        baggage in vec(header_value(), 0..3),
    ) {
        let mut carrier = vec![("traceparent".to_owned(), traceparent.clone())];
        carrier.extend(tracestate.iter().map(|v| ("tracestate".to_owned(), v.clone())));
        carrier.extend(baggage.iter().map(|v| ("baggage".to_owned(), v.clone())));
        let cx = extract(&mut carrier);
        let _ = parse_tracestate(tracestate.iter().map(String::as_str));

        // Whatever was accepted is re-emitted in canonical, re-parseable form.
        if let Ok(parsed) = parse_traceparent(&traceparent) {
            prop_assert_eq!(cx.span().span_context().trace_id(), parsed.trace_id());
            let canonical = format_traceparent(&parsed).unwrap_or_default();
            prop_assert_eq!(parse_traceparent(&canonical), Ok(parsed));
        } else {
            prop_assert!(!cx.span().span_context().is_valid());
        }
        let mut out: Vec<(String, String)> = Vec::new();
        W3cPropagator::new().inject_context(&cx, &mut Carrier::new(&mut out));
        let again = extract(&mut out);
        prop_assert_eq!(again.span().span_context().clone(), cx.span().span_context().clone());
        prop_assert_eq!(again.baggage().len(), cx.baggage().len());
    }

    #[test]
    fn trace_context_round_trips(original in span_context()) {
        let cx = Context::new().with_remote_span_context(original.clone());
        let mut carrier: Vec<(String, String)> = Vec::new();
        W3cPropagator::new().inject_context(&cx, &mut Carrier::new(&mut carrier));
        let back = extract(&mut carrier);
        let back = back.span().span_context().clone();
        prop_assert_eq!(back.trace_id(), original.trace_id());
        prop_assert_eq!(back.span_id(), original.span_id());
        prop_assert_eq!(back.trace_flags(), original.trace_flags());
        prop_assert_eq!(back.trace_state(), original.trace_state());
        prop_assert!(back.is_remote());
    }

    #[test]
    fn level2_tracestate_round_trips(
        members in vec((level2_key(), tracestate_value()), 0..8),
        flags in prop::sample::select(vec!["00", "01", "02", "03"]),
    ) {
        let header = members
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let parsed = parse_tracestate([header.as_str()]);
        prop_assert!(parsed.is_ok(), "{header:?}: {parsed:?}");
        let parsed = parsed.unwrap_or_default();
        let traceparent = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
        let mut carrier = vec![
            ("traceparent".to_owned(), traceparent.clone()),
            ("tracestate".to_owned(), header),
        ];
        let cx = extract(&mut carrier);
        prop_assert_eq!(&W3cTracestate::from_context(&cx), &parsed);
        let mut out: Vec<(String, String)> = Vec::new();
        W3cPropagator::new().inject_context(&cx, &mut Carrier::new(&mut out));
        // At most 8 members of at most 45 characters: never truncated.
        let mut expected = vec![("traceparent".to_owned(), traceparent)];
        if !parsed.is_empty() {
            expected.push(("tracestate".to_owned(), parsed.header()));
        }
        prop_assert_eq!(&out, &expected);
        prop_assert_eq!(W3cTracestate::from_context(&extract(&mut out)), parsed);
    }

    #[test]
    fn baggage_round_trips(members in baggage_members()) {
        let cx = Context::new().with_baggage(members);
        let mut carrier: Vec<(String, String)> = Vec::new();
        W3cPropagator::new().inject_context(&cx, &mut Carrier::new(&mut carrier));
        let back = extract(&mut carrier);
        prop_assert_eq!(back.baggage().len(), cx.baggage().len());
        for (key, entry) in cx.baggage() {
            prop_assert_eq!(back.baggage().get_with_metadata(key.as_str()), Some(entry));
        }
    }
}
