//! Table-driven tests of the strict W3C propagators, the carriers,
//! `OTEL_PROPAGATORS` and the child-process (environment) carrier.
#![allow(clippy::too_many_lines)] // case tables

use opentelemetry::baggage::{BaggageExt, BaggageMetadata, KeyValueMetadata};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use tracing_correlation::{
    context_from_env, context_from_env_with, extract_context, extract_context_with, inject_context,
    inject_context_with, inject_current_context, inject_into_command, inject_into_command_with,
    parse_traceparent, propagator_from_env_with, Carrier, TextMapCarrier, TraceparentError,
    W3cBaggagePropagator, W3cPropagator, W3cTraceContextPropagator,
};

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SID: &str = "00f067aa0ba902b7";

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A context that already holds a (different) remote parent, so "unchanged"
/// is observable.
fn marker_context() -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0xabc_u128),
        SpanId::from(0xdef_u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    ))
}

fn extract_tc(pairs: &[(&str, &str)]) -> Context {
    let mut carrier = headers(pairs);
    W3cTraceContextPropagator::new()
        .extract_with_context(&marker_context(), &Carrier::new(&mut carrier))
}

fn span_of(cx: &Context) -> SpanContext {
    cx.span().span_context().clone()
}

fn local_span(trace: u128, span: u64, flags: u8, state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::new(flags),
        false,
        state,
    )
}

// ---------------------------------------------------------------- traceparent

#[derive(Debug)]
enum Expect {
    Valid { flags: u8 },
    Invalid(TraceparentError),
}

#[test]
fn traceparent_table() {
    use Expect::{Invalid, Valid};
    use TraceparentError as E;
    let zeros32 = "0".repeat(32);
    let zeros16 = "0".repeat(16);
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "sampled",
            format!("00-{TID}-{SID}-01"),
            Valid { flags: 0x01 },
        ),
        (
            "not sampled",
            format!("00-{TID}-{SID}-00"),
            Valid { flags: 0x00 },
        ),
        (
            "random flag kept",
            format!("00-{TID}-{SID}-02"),
            Valid { flags: 0x02 },
        ),
        (
            "sampled+random",
            format!("00-{TID}-{SID}-03"),
            Valid { flags: 0x03 },
        ),
        (
            "unknown bits zeroed ff",
            format!("00-{TID}-{SID}-ff"),
            Valid { flags: 0x03 },
        ),
        (
            "unknown bits zeroed 09",
            format!("00-{TID}-{SID}-09"),
            Valid { flags: 0x01 },
        ),
        (
            "unknown bits zeroed fc",
            format!("00-{TID}-{SID}-fc"),
            Valid { flags: 0x00 },
        ),
        (
            "higher version exact",
            format!("cc-{TID}-{SID}-01"),
            Valid { flags: 0x01 },
        ),
        (
            "higher version extra fields",
            format!("01-{TID}-{SID}-09-XYZ-more"),
            Valid { flags: 0x01 },
        ),
        (
            "version fe extra field",
            format!("fe-{TID}-{SID}-03-abc"),
            Valid { flags: 0x03 },
        ),
        (
            "higher version trailing dash",
            format!("01-{TID}-{SID}-01-"),
            Valid { flags: 0x01 },
        ),
        (
            "OWS around value",
            format!(" \t00-{TID}-{SID}-01\t "),
            Valid { flags: 0x01 },
        ),
        ("empty", String::new(), Invalid(E::InvalidVersion)),
        (
            "version one digit",
            format!("0-{TID}-{SID}-01"),
            Invalid(E::InvalidVersion),
        ),
        (
            "version three digits",
            format!("000-{TID}-{SID}-01"),
            Invalid(E::InvalidSeparator { position: 2 }),
        ),
        (
            "version uppercase",
            format!("0A-{TID}-{SID}-01"),
            Invalid(E::InvalidVersion),
        ),
        (
            "version non-hex",
            format!("0x-{TID}-{SID}-01"),
            Invalid(E::InvalidVersion),
        ),
        (
            "version ff",
            format!("ff-{TID}-{SID}-01"),
            Invalid(E::ForbiddenVersion),
        ),
        (
            "trace id uppercase",
            format!("00-{}-{SID}-01", TID.to_uppercase()),
            Invalid(E::InvalidTraceId),
        ),
        (
            "span id uppercase",
            format!("00-{TID}-{}-01", SID.to_uppercase()),
            Invalid(E::InvalidSpanId),
        ),
        (
            "flags uppercase",
            format!("00-{TID}-{SID}-0A"),
            Invalid(E::InvalidFlags),
        ),
        (
            "trace id short",
            format!("00-{}-{SID}-01", &TID[..31]),
            Invalid(E::InvalidTraceId),
        ),
        (
            "trace id long",
            format!("00-{TID}a-{SID}-01"),
            Invalid(E::InvalidSeparator { position: 35 }),
        ),
        (
            "span id short",
            format!("00-{TID}-{}-01", &SID[..15]),
            Invalid(E::InvalidSpanId),
        ),
        (
            "span id long",
            format!("00-{TID}-{SID}a-01"),
            Invalid(E::InvalidSeparator { position: 52 }),
        ),
        (
            "flags one digit",
            format!("00-{TID}-{SID}-1"),
            Invalid(E::InvalidFlags),
        ),
        (
            "flags missing",
            format!("00-{TID}-{SID}"),
            Invalid(E::InvalidSeparator { position: 52 }),
        ),
        (
            "flags empty",
            format!("00-{TID}-{SID}-"),
            Invalid(E::InvalidFlags),
        ),
        (
            "trace id non-hex",
            format!("00-{}g-{SID}-01", &TID[..31]),
            Invalid(E::InvalidTraceId),
        ),
        (
            "span id non-hex",
            format!("00-{TID}-{}z-01", &SID[..15]),
            Invalid(E::InvalidSpanId),
        ),
        (
            "flags non-hex",
            format!("00-{TID}-{SID}-0g"),
            Invalid(E::InvalidFlags),
        ),
        (
            "flags non-ascii",
            format!("00-{TID}-{SID}-0é"),
            Invalid(E::InvalidFlags),
        ),
        (
            "zero trace id",
            format!("00-{zeros32}-{SID}-01"),
            Invalid(E::ZeroTraceId),
        ),
        (
            "zero span id",
            format!("00-{TID}-{zeros16}-01"),
            Invalid(E::ZeroSpanId),
        ),
        (
            "v00 trailing dash",
            format!("00-{TID}-{SID}-01-"),
            Invalid(E::TrailingData),
        ),
        (
            "v00 trailing data",
            format!("00-{TID}-{SID}-01-what"),
            Invalid(E::TrailingData),
        ),
        (
            "v00 trailing char",
            format!("00-{TID}-{SID}-01x"),
            Invalid(E::TrailingData),
        ),
        (
            "higher version no dash",
            format!("01-{TID}-{SID}-01x"),
            Invalid(E::InvalidSuffix),
        ),
        (
            "separator after version",
            format!("00_{TID}-{SID}-01"),
            Invalid(E::InvalidSeparator { position: 2 }),
        ),
        (
            "separator after trace id",
            format!("00-{TID}_{SID}-01"),
            Invalid(E::InvalidSeparator { position: 35 }),
        ),
        (
            "separator after span id",
            format!("00-{TID}-{SID}_01"),
            Invalid(E::InvalidSeparator { position: 52 }),
        ),
        (
            "inner whitespace",
            format!("00 -{TID}-{SID}-01"),
            Invalid(E::InvalidSeparator { position: 2 }),
        ),
    ];

    for (name, header, expected) in cases {
        let parsed = parse_traceparent(&header);
        let cx = extract_tc(&[("traceparent", &header), ("tracestate", "k=v")]);
        let span = span_of(&cx);
        match expected {
            Valid { flags } => {
                let parsed = parsed.unwrap_or_else(|e| panic!("{name}: {header:?} rejected: {e}"));
                assert_eq!(parsed.trace_id().to_string(), TID, "{name}");
                assert_eq!(parsed.span_id().to_string(), SID, "{name}");
                assert_eq!(parsed.trace_flags(), TraceFlags::new(flags), "{name}");
                assert!(parsed.is_remote(), "{name}");
                assert_eq!(span.trace_id().to_string(), TID, "{name}");
                assert_eq!(span.span_id().to_string(), SID, "{name}");
                assert_eq!(span.trace_flags(), TraceFlags::new(flags), "{name}");
                assert!(span.is_remote(), "{name}");
                assert_eq!(span.trace_state().header(), "k=v", "{name}");
            }
            Invalid(error) => {
                assert_eq!(parsed.err(), Some(error), "{name}: {header:?}");
                assert_eq!(
                    span,
                    span_of(&marker_context()),
                    "{name}: context must be unchanged"
                );
            }
        }
    }
}

#[test]
fn missing_or_repeated_traceparent_leaves_context_unchanged() {
    let valid = format!("00-{TID}-{SID}-01");
    let unchanged = span_of(&marker_context());
    assert_eq!(span_of(&extract_tc(&[])), unchanged);
    assert_eq!(span_of(&extract_tc(&[("tracestate", "a=1")])), unchanged);
    let twice = extract_tc(&[("traceparent", &valid), ("TraceParent", &valid)]);
    assert_eq!(span_of(&twice), unchanged);
}

#[test]
fn lax_sdk_inputs_are_rejected() {
    // Inputs opentelemetry_sdk's TraceContextPropagator accepts.
    for header in [
        format!("0-{TID}-{SID}-01"),
        format!("00-{}-{SID}-01", &TID[1..]),
        format!("00-{TID}-{}-01", &SID[1..]),
        format!("00-{TID}-{SID}-01-"),
    ] {
        assert!(parse_traceparent(&header).is_err(), "{header}");
    }
}

// ---------------------------------------------------------------- tracestate

fn extracted_state(values: &[&str]) -> String {
    let parent = format!("00-{TID}-{SID}-01");
    let mut pairs = vec![("traceparent", parent.as_str())];
    pairs.extend(values.iter().map(|v| ("tracestate", *v)));
    let cx = extract_tc(&pairs);
    assert_eq!(span_of(&cx).trace_id().to_string(), TID, "traceparent kept");
    span_of(&cx).trace_state().header()
}

fn members(n: usize) -> String {
    (0..n)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn tracestate_table() {
    let max_value = "v".repeat(256);
    let max_key = format!("{}@{}", "t".repeat(241), "s".repeat(13));
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        ("two members", vec!["a=1,b=2".into()], "a=1,b=2".into()),
        ("32 members kept", vec![members(32)], members(32)),
        ("33 members rejected", vec![members(33)], String::new()),
        (
            "33 across two headers rejected",
            vec![members(16), members(17).replace('k', "x")],
            String::new(),
        ),
        (
            "empty members not counted",
            vec![format!("{},,, ,", members(32))],
            members(32),
        ),
        (
            "duplicate key: the first is kept",
            vec!["a=1,b=2,a=3".into()],
            "a=1,b=2".into(),
        ),
        (
            "duplicate across headers: the first is kept",
            vec!["a=1".into(), "a=2".into()],
            "a=1".into(),
        ),
        (
            "uppercase key rejected",
            vec!["A=1,b=2".into()],
            String::new(),
        ),
        (
            "key starting with digit (Level 2)",
            vec!["1a=1".into()],
            "1a=1".into(),
        ),
        (
            "key with bad char rejected",
            vec!["a.b=1".into()],
            String::new(),
        ),
        (
            "multi-tenant key",
            vec!["0tenant@sys-1=x".into()],
            "0tenant@sys-1=x".into(),
        ),
        (
            "longest representable key",
            vec![format!("{max_key}=1")],
            format!("{max_key}=1"),
        ),
        (
            "digit after @ (Level 2)",
            vec!["t@1s=1".into()],
            "t@1s=1".into(),
        ),
        (
            "value 256 chars",
            vec![format!("a={max_value}")],
            format!("a={max_value}"),
        ),
        (
            "value 257 chars rejected",
            vec![format!("a={max_value}v")],
            String::new(),
        ),
        (
            "space before comma is OWS",
            vec!["a=x ,b=2".into()],
            "a=x,b=2".into(),
        ),
        (
            "value inner space kept",
            vec!["a=x y".into()],
            "a=x y".into(),
        ),
        ("value with = rejected", vec!["a=x=y".into()], String::new()),
        (
            "value non-printable rejected",
            vec!["a=x\u{1}y".into()],
            String::new(),
        ),
        (
            "value non-ascii rejected",
            vec!["a=é".into()],
            String::new(),
        ),
        (
            "empty value rejected (Level 2)",
            vec!["a=,b=1".into()],
            String::new(),
        ),
        (
            "member without = rejected",
            vec!["a=1,b".into()],
            String::new(),
        ),
        (
            "OWS tolerated",
            vec![" a=1 ,\tb=2\t, ,".into()],
            "a=1,b=2".into(),
        ),
        (
            "multiple header values combined",
            vec!["a=1".into(), "b=2, c=3".into()],
            "a=1,b=2,c=3".into(),
        ),
        ("empty header", vec![String::new()], String::new()),
    ];
    for (name, values, expected) in cases {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        assert_eq!(extracted_state(&values), expected, "{name}");
    }
}

#[test]
fn value_trailing_space_is_trimmed_as_ows_but_inner_tab_rejected() {
    // A trailing space at the end of a list member is OWS, not part of the value.
    assert_eq!(extracted_state(&["a=x "]), "a=x");
    assert_eq!(extracted_state(&["a=x\ty"]), "");
}

#[test]
fn tracestate_ignored_when_traceparent_invalid() {
    let cx = extract_tc(&[
        ("traceparent", &format!("00-{TID}-{SID}-01-")),
        ("tracestate", "a=1"),
    ]);
    assert_eq!(span_of(&cx), span_of(&marker_context()));
}

fn injected(span: SpanContext) -> Vec<(String, String)> {
    let cx = Context::new().with_remote_span_context(span);
    let mut out = Vec::new();
    inject_context_with(&W3cTraceContextPropagator::new(), &cx, &mut out);
    out
}

#[test]
fn inject_writes_version_00_and_known_flags() {
    for (flags, expected) in [
        (0x00, "00"),
        (0x01, "01"),
        (0x02, "02"),
        (0x03, "03"),
        (0xff, "03"),
    ] {
        let out = injected(local_span(0x1234, 0x5678, flags, TraceState::NONE));
        assert_eq!(
            out,
            headers(&[(
                "traceparent",
                &format!("00-00000000000000000000000000001234-0000000000005678-{expected}")
            )]),
            "flags {flags:#x}; no tracestate header when empty"
        );
    }
    assert!(injected(SpanContext::empty_context()).is_empty());
}

#[test]
fn inject_skips_members_invalid_per_spec() {
    // opentelemetry's TraceState accepts all four; the wire must not carry a
    // value ending in a space or holding DEL (`1b` is a valid Level 2 key).
    let state =
        TraceState::from_key_value([("a", "x "), ("1b", "1"), ("c", "\u{7f}"), ("d", "ok")])
            .expect("accepted by opentelemetry");
    let out = injected(local_span(1, 2, 1, state));
    assert_eq!(out[1], ("tracestate".to_owned(), "1b=1,d=ok".to_owned()));
}

#[test]
fn inject_truncates_tracestate_by_whole_members() {
    // 32 members of 20 chars = 671 chars: trailing members go.
    let kvs: Vec<(String, String)> = (0..32)
        .map(|i| (format!("key{i:02}"), "x".repeat(14)))
        .collect();
    let state = TraceState::from_key_value(kvs.clone()).expect("valid");
    let out = injected(local_span(1, 2, 1, state));
    let header = &out[1].1;
    assert!(header.len() <= 512, "{}", header.len());
    let expected: Vec<String> = kvs
        .iter()
        .take(24)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(header, &expected.join(","));

    // Members over 128 chars go first, even when they come early.
    let big = "b".repeat(200);
    let mut kvs = vec![
        ("first".to_owned(), big.clone()),
        ("second".to_owned(), "s".repeat(100)),
    ];
    kvs.extend((0..3).map(|i| (format!("k{i}"), "y".repeat(100))));
    let state = TraceState::from_key_value(kvs).expect("valid");
    let out = injected(local_span(1, 2, 1, state));
    let header = &out[1].1;
    assert!(!header.contains(&big));
    assert!(header.starts_with("second=") && header.ends_with(&format!("k2={}", "y".repeat(100))));
}

#[test]
fn trace_context_round_trips() {
    let state =
        TraceState::from_key_value([("congo", "t61rcWkgMzE"), ("t@sys", "a b")]).expect("valid");
    for flags in [0x00, 0x01, 0x02, 0x03] {
        let original = local_span(u128::MAX, u64::MAX, flags, state.clone());
        let mut carrier = injected(original.clone());
        let cx = W3cTraceContextPropagator::new()
            .extract_with_context(&Context::new(), &Carrier::new(&mut carrier));
        let back = span_of(&cx);
        assert_eq!(back.trace_id(), original.trace_id());
        assert_eq!(back.span_id(), original.span_id());
        assert_eq!(back.trace_flags(), original.trace_flags());
        assert_eq!(back.trace_state(), original.trace_state());
        assert!(back.is_remote());
    }
}

// ---------------------------------------------------------------- baggage

fn extract_bg(values: &[&str]) -> Context {
    let mut carrier: Vec<(String, String)> = values
        .iter()
        .map(|v| ("baggage".to_owned(), (*v).to_owned()))
        .collect();
    W3cBaggagePropagator::new().extract_with_context(&Context::new(), &Carrier::new(&mut carrier))
}

fn inject_bg(cx: &Context) -> Option<String> {
    let mut out: HashMap<String, String> = HashMap::new();
    inject_context_with(&W3cBaggagePropagator::new(), cx, &mut out);
    out.remove("baggage")
}

fn value_of(cx: &Context, key: &str) -> Option<String> {
    cx.baggage().get(key).map(|v| v.as_str().to_owned())
}

#[test]
fn baggage_percent_decoding_and_encoding() {
    let cx = extract_bg(&["k=a%20b%2C%3B%25%3D%22%5C%C3%A9,raw=100%,bad=%FF"]);
    assert_eq!(value_of(&cx, "k").as_deref(), Some("a b,;%=\"\\é"));
    assert_eq!(value_of(&cx, "raw").as_deref(), Some("100%"));
    assert_eq!(value_of(&cx, "bad").as_deref(), Some("\u{FFFD}"));

    let cx = Context::new().with_baggage([KeyValue::new("k", "a b,;%=\"\\é\n~!")]);
    assert_eq!(
        inject_bg(&cx).as_deref(),
        Some("k=a%20b%2C%3B%25%3D%22%5C%C3%A9%0A~!")
    );
}

#[test]
fn baggage_properties_are_kept() {
    let cx = extract_bg(&["k = v ; p1 ; p2 = x%20y , plain=1"]);
    let (value, metadata) = cx.baggage().get_with_metadata("k").expect("k kept");
    assert_eq!(value.as_str(), "v");
    assert_eq!(metadata, &BaggageMetadata::from("p1;p2=x%20y"));
    assert_eq!(inject_bg(&cx).as_deref(), Some("k=v;p1;p2=x%20y,plain=1"));

    // Properties that cannot go on the wire are left out, the value is kept.
    let cx = Context::new().with_baggage([KeyValueMetadata::new("k", "v", "bad prop")]);
    assert_eq!(inject_bg(&cx).as_deref(), Some("k=v"));
}

#[test]
fn baggage_invalid_members_dropped_individually() {
    let cx = extract_bg(&["good=1,bad key=2,also=3,=x,noeq,q=\"x\",semi=1;,t(=1,last=4"]);
    let mut keys: Vec<&str> = cx.baggage().iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["also", "good", "last"]);
}

#[test]
fn baggage_multiple_headers_combined() {
    let cx = extract_bg(&["a=1", "b=2, c=3"]);
    assert_eq!(cx.baggage().len(), 3);
    assert_eq!(value_of(&cx, "c").as_deref(), Some("3"));
}

#[test]
fn baggage_without_valid_member_leaves_context_unchanged() {
    let before = Context::new().with_baggage([KeyValue::new("local", "1")]);
    let mut carrier = headers(&[("baggage", "bad key=1")]);
    let cx = W3cBaggagePropagator::new().extract_with_context(&before, &Carrier::new(&mut carrier));
    assert_eq!(value_of(&cx, "local").as_deref(), Some("1"));
}

#[test]
fn baggage_64_members_and_8192_bytes_propagated() {
    let mut members: Vec<String> = (0..63)
        .map(|i| format!("k{i:02}={}", "v".repeat(122)))
        .collect();
    let used: usize = members.iter().map(String::len).sum::<usize>() + 63;
    members.push(format!("k63={}", "w".repeat(8192 - used - 4)));
    let header = members.join(",");
    assert_eq!(header.len(), 8192);

    let cx = extract_bg(&[&header]);
    assert_eq!(cx.baggage().len(), 64);
    assert_eq!(inject_bg(&cx).as_deref(), Some(header.as_str()));
}

#[test]
fn baggage_oversize_input_is_bounded_by_whole_members() {
    // More than 64 members: opentelemetry's Baggage keeps the first 64 keys.
    let many = (0..200)
        .map(|i| format!("k{i:03}=1"))
        .collect::<Vec<_>>()
        .join(",");
    let cx = extract_bg(&[&many]);
    assert_eq!(cx.baggage().len(), 64);
    assert!(cx.baggage().get("k063").is_some() && cx.baggage().get("k064").is_none());

    // The member crossing 8192 bytes, and everything after it, is dropped.
    let a = format!("a={}", "x".repeat(4000));
    let b = format!("b={}", "y".repeat(4000));
    let cx = extract_bg(&[&format!("{a},{b},c={},d=1", "z".repeat(500))]);
    assert!(cx.baggage().get("a").is_some() && cx.baggage().get("b").is_some());
    assert!(cx.baggage().get("c").is_none() && cx.baggage().get("d").is_none());

    // A huge header costs bounded work and keeps what fits.
    let huge = format!("first=1,{}", "x".repeat(10_000_000));
    let cx = extract_bg(&[&huge]);
    assert_eq!(cx.baggage().len(), 1);
    let commas = format!("first=1{}", ",".repeat(10_000_000));
    assert_eq!(extract_bg(&[&commas]).baggage().len(), 1);
}

#[test]
fn baggage_inject_stays_within_8192_bytes() {
    // 10 values of 800 spaces fit Baggage's own cap but encode to 2400 bytes each.
    let cx = Context::new()
        .with_baggage((0..10).map(|i| KeyValue::new(format!("k{i}"), " ".repeat(800))));
    assert_eq!(cx.baggage().len(), 10);
    let header = inject_bg(&cx).expect("some baggage");
    assert!(header.len() <= 8192);
    let back = extract_bg(&[&header]);
    assert_eq!(back.baggage().len(), 3);
    for (_, (value, _)) in back.baggage() {
        assert_eq!(value.as_str(), " ".repeat(800));
    }
}

#[test]
fn baggage_round_trip() {
    let cx = Context::new().with_baggage([
        KeyValueMetadata::new("user.id", "Jörg Müller", "pii;ttl=60"),
        KeyValueMetadata::new("empty", "", ""),
        KeyValueMetadata::new("odd!#$%&'*+-.^_`|~", "=,;%\"\\", ""),
    ]);
    let back = extract_bg(&[&inject_bg(&cx).expect("baggage")]);
    assert_eq!(back.baggage().len(), 3);
    for (key, entry) in cx.baggage() {
        assert_eq!(
            back.baggage().get_with_metadata(key.as_str()),
            Some(entry),
            "{key}"
        );
    }
}

// ---------------------------------------------------------------- composite, OTEL_PROPAGATORS

#[test]
fn otel_propagators_table() {
    let both = W3cPropagator::new();
    let none = W3cPropagator::none();
    let tc = none.with_trace_context(true);
    let bg = none.with_baggage(true);
    let cases: [(Option<&str>, W3cPropagator); 15] = [
        (None, both),
        (Some(""), both),
        (Some("   "), both),
        (Some(",,"), both),
        (Some("tracecontext"), tc),
        (Some("baggage"), bg),
        (Some("tracecontext,baggage"), both),
        (Some(" TraceContext , BAGGAGE "), both),
        (Some("tracecontext,tracecontext"), tc),
        (Some("none"), none),
        (Some(" None "), none),
        (Some("none,baggage"), bg),
        (Some("b3"), none),
        (Some("b3,tracecontext,xray"), tc),
        (Some("baggage,,tracecontext,"), both),
    ];
    for (value, expected) in cases {
        let got = propagator_from_env_with(|name| {
            assert_eq!(name, "OTEL_PROPAGATORS");
            value.map(str::to_owned)
        });
        assert_eq!(got, expected, "{value:?}");
    }
}

#[test]
fn composite_propagates_both_and_none_propagates_nothing() {
    let span = local_span(
        7,
        8,
        0x03,
        TraceState::from_key_value([("a", "1")]).expect("valid"),
    );
    let cx = Context::new()
        .with_remote_span_context(span)
        .with_baggage([KeyValue::new("k", "v")]);

    let mut out = BTreeMap::new();
    inject_context_with(&W3cPropagator::new(), &cx, &mut out);
    let expected: BTreeMap<String, String> = [
        ("baggage", "k=v"),
        (
            "traceparent",
            "00-00000000000000000000000000000007-0000000000000008-03",
        ),
        ("tracestate", "a=1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(out, expected);

    let back = extract_context_with(&W3cPropagator::new(), &out);
    assert_eq!(span_of(&back).trace_flags(), TraceFlags::new(0x03));
    assert_eq!(value_of(&back, "k").as_deref(), Some("v"));

    let only_baggage = W3cPropagator::none().with_baggage(true);
    let mut out = BTreeMap::new();
    inject_context_with(&only_baggage, &cx, &mut out);
    assert_eq!(out.keys().collect::<Vec<_>>(), ["baggage"]);

    let mut out = BTreeMap::new();
    inject_context_with(&W3cPropagator::none(), &cx, &mut out);
    assert!(out.is_empty());
    let back = extract_context_with(&W3cPropagator::none(), &expected);
    assert!(!span_of(&back).is_valid());
}

// ---------------------------------------------------------------- carriers

#[test]
fn vec_carrier_replaces_case_insensitively_and_keeps_other_headers() {
    let span = local_span(1, 2, 1, TraceState::NONE);
    let cx = Context::new().with_remote_span_context(span);
    let mut carrier = headers(&[
        ("content-type", "json"),
        ("TRACEPARENT", "stale"),
        ("traceparent", "stale"),
    ]);
    inject_context_with(&W3cTraceContextPropagator::new(), &cx, &mut carrier);
    assert_eq!(
        carrier,
        headers(&[
            ("content-type", "json"),
            (
                "traceparent",
                "00-00000000000000000000000000000001-0000000000000002-01"
            ),
        ])
    );
}

#[test]
fn hash_map_and_btree_map_names_are_case_insensitive() {
    let parent = format!("00-{TID}-{SID}-01");
    let mut map = HashMap::new();
    map.insert("TraceParent".to_owned(), parent.clone());
    let cx = extract_context_with(&W3cPropagator::new(), &map);
    assert_eq!(span_of(&cx).trace_id().to_string(), TID);
    assert_eq!(
        TextMapCarrier::values(&map, "TRACEPARENT"),
        [parent.as_str()]
    );

    let mut tree = BTreeMap::new();
    tree.insert("TRACEPARENT".to_owned(), parent);
    let cx = extract_context_with(&W3cPropagator::new(), &tree);
    assert_eq!(span_of(&cx).span_id().to_string(), SID);
}

/// The only test in this binary that touches the global propagator.
#[test]
fn global_propagator_helpers() {
    let span = local_span(3, 4, 1, TraceState::NONE);
    let cx = Context::new().with_remote_span_context(span.clone());

    // Before installation the global propagator is a no-op.
    let mut out: HashMap<String, String> = HashMap::new();
    inject_context(&cx, &mut out);
    assert!(out.is_empty());

    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    inject_context(&cx, &mut out);
    assert_eq!(
        out["traceparent"],
        "00-00000000000000000000000000000003-0000000000000004-01"
    );

    let mut queue_headers: Vec<(String, String)> = Vec::new();
    {
        let _guard = cx.clone().attach();
        inject_current_context(&mut queue_headers);
    }
    assert_eq!(
        queue_headers,
        headers(&[("traceparent", &out["traceparent"])])
    );

    let back = extract_context(&queue_headers);
    assert_eq!(span_of(&back).trace_id(), span.trace_id());
    assert!(span_of(&back).is_remote());
}

#[cfg(feature = "http")]
mod header_map {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn names_case_insensitive_values_combined_invalid_ignored() {
        let mut map = HeaderMap::new();
        map.insert(
            "TraceParent",
            HeaderValue::from_str(&format!("00-{TID}-{SID}-03")).expect("ascii"),
        );
        map.append("TRACESTATE", HeaderValue::from_static("a=1"));
        map.append(
            "tracestate",
            HeaderValue::from_bytes(b"b=\xff").expect("obs-text allowed"),
        );
        map.append("tracestate", HeaderValue::from_static("c=3"));
        map.append("baggage", HeaderValue::from_static("k=v"));
        map.append(
            "baggage",
            HeaderValue::from_bytes(b"x=\xfe").expect("obs-text allowed"),
        );
        map.append("baggage", HeaderValue::from_static("k2=v2"));

        let cx = extract_context_with(&W3cPropagator::new(), &map);
        let span = span_of(&cx);
        assert_eq!(span.trace_id().to_string(), TID);
        assert_eq!(span.trace_flags(), TraceFlags::new(0x03));
        assert_eq!(span.trace_state().header(), "a=1,c=3");
        assert_eq!(cx.baggage().len(), 2);
        assert!(cx.baggage().get("x").is_none());
    }

    #[test]
    fn repeated_traceparent_is_rejected() {
        let mut map = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("00-{TID}-{SID}-01")).expect("ascii");
        map.append("traceparent", value.clone());
        map.append("traceparent", value);
        let cx = extract_context_with(&W3cPropagator::new(), &map);
        assert!(!span_of(&cx).is_valid());
    }

    #[test]
    fn non_utf8_traceparent_is_ignored() {
        let mut map = HeaderMap::new();
        map.insert(
            "traceparent",
            HeaderValue::from_bytes(b"00-\xff").expect("obs-text allowed"),
        );
        let cx = extract_context_with(&W3cPropagator::new(), &map);
        assert!(!span_of(&cx).is_valid());
    }

    #[test]
    fn inject_replaces_existing_values() {
        let mut map = HeaderMap::new();
        map.append("traceparent", HeaderValue::from_static("stale"));
        map.append("Traceparent", HeaderValue::from_static("stale2"));
        map.insert("x-other", HeaderValue::from_static("kept"));
        let cx = Context::new()
            .with_remote_span_context(local_span(5, 6, 0, TraceState::NONE))
            .with_baggage([KeyValue::new("k", "a b")]);
        inject_context_with(&W3cPropagator::new(), &cx, &mut map);
        let values: Vec<_> = map.get_all("traceparent").iter().collect();
        assert_eq!(
            values,
            ["00-00000000000000000000000000000005-0000000000000006-00"]
        );
        assert_eq!(map["baggage"], "k=a%20b");
        assert_eq!(map["x-other"], "kept");
        assert!(map.get("tracestate").is_none());
    }
}

// ---------------------------------------------------------------- child processes

const CHILD_PROBE: &str = "TRACING_CORRELATION_W3C_CHILD_PROBE";

/// Runs only when re-invoked by `child_process_extracts_injected_context`:
/// prints what `context_from_env` extracted.
#[test]
fn child_probe() {
    if std::env::var_os(CHILD_PROBE).is_none() {
        return;
    }
    let cx = context_from_env();
    let span = span_of(&cx);
    let mut baggage: Vec<String> = cx
        .baggage()
        .iter()
        .map(|(k, (v, _))| format!("{k}={}", v.as_str()))
        .collect();
    baggage.sort();
    println!(
        "PROBE {} {} {:02x} {} remote={} [{}] [{}]",
        span.trace_id(),
        span.span_id(),
        span.trace_flags().to_u8(),
        span.trace_state().header(),
        span.is_remote(),
        baggage.join(";"),
        span.is_valid(),
    );
}

fn probe_output(command: &mut Command) -> String {
    let output = command.output().expect("spawn test binary");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        // libtest prints "test child_probe ... " before the probe's own output.
        .find_map(|line| line.find("PROBE ").map(|at| line[at..].to_owned()))
        .unwrap_or_else(|| panic!("no probe line in {output:?}"))
}

fn probe_command() -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command
        .args(["--exact", "child_probe", "--nocapture", "--test-threads=1"])
        .env(CHILD_PROBE, "1");
    command
}

#[test]
fn child_process_extracts_injected_context() {
    let state = TraceState::from_key_value([("vendor", "x")]).expect("valid");
    let cx = Context::new()
        .with_remote_span_context(local_span(0x0102, 0x0304, 0x03, state))
        .with_baggage([KeyValue::new("user", "a b")]);
    let mut command = probe_command();
    {
        let _guard = cx.attach();
        inject_into_command(&mut command);
    }
    assert_eq!(
        probe_output(&mut command),
        "PROBE 00000000000000000000000000000102 0000000000000304 03 vendor=x remote=true [user=a b] [true]"
    );
}

#[test]
fn child_process_with_invalid_traceparent_starts_fresh() {
    let mut command = probe_command();
    command.env("TRACEPARENT", format!("00-{TID}-{SID}-01-"));
    command.env("TRACESTATE", "a=1");
    assert_eq!(
        probe_output(&mut command),
        "PROBE 00000000000000000000000000000000 0000000000000000 00  remote=false [] [false]"
    );
}

#[cfg(unix)]
#[test]
fn shell_child_receives_exact_variables() {
    let cx = Context::new()
        .with_remote_span_context(local_span(0xaa, 0xbb, 0x01, TraceState::NONE))
        .with_baggage([KeyValue::new("k", "v,w")]);
    let mut command = Command::new("sh");
    command.args([
        "-c",
        r#"printf '%s|%s|%s' "$TRACEPARENT" "${TRACESTATE-unset}" "$BAGGAGE""#,
    ]);
    command.env("TRACESTATE", "stale=1");
    inject_into_command_with(&W3cPropagator::new(), &cx, &mut command);
    let output = command.output().expect("spawn sh");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "00-000000000000000000000000000000aa-00000000000000bb-01|unset|k=v%2Cw"
    );

    // No current span: stale variables are removed, nothing is set.
    let mut command = Command::new("sh");
    command.args(["-c", r#"printf '%s' "${TRACEPARENT-unset}""#]);
    command.env("TRACEPARENT", "stale");
    inject_into_command(&mut command);
    let output = command.output().expect("spawn sh");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "unset");
}

#[test]
fn env_lookup_uses_uppercase_names_and_validates() {
    let lookup = |name: &str| match name {
        "TRACEPARENT" => Some(format!("00-{TID}-{SID}-02")),
        "TRACESTATE" => Some("a=1,a=2".to_owned()),
        "BAGGAGE" => Some("k=v,bad key=1".to_owned()),
        _ => None,
    };
    let cx = context_from_env_with(lookup);
    let span = span_of(&cx);
    assert_eq!(span.trace_id().to_string(), TID);
    assert_eq!(span.trace_flags(), TraceFlags::new(0x02));
    assert_eq!(
        span.trace_state().header(),
        "a=1",
        "a duplicated key keeps its first occurrence"
    );
    assert_eq!(cx.baggage().len(), 1);

    let lowercase_only = |name: &str| (name == "traceparent").then(|| format!("00-{TID}-{SID}-01"));
    assert!(!span_of(&context_from_env_with(lowercase_only)).is_valid());
}
