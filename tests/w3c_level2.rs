//! W3C Trace Context Level 2, rule by rule: each case extracts headers and
//! injects the resulting context again, and compares the exact headers that
//! go downstream. Then the same through spans, in both id modes.
#![allow(clippy::too_many_lines)] // case tables

mod support;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceState};
use opentelemetry::Context;
use support::{Harness, Mode, MODES};
use tracing_correlation::{Carrier, TraceIds, W3cTraceContextPropagator};

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SID: &str = "00f067aa0ba902b7";

fn parent(flags: &str) -> String {
    format!("00-{TID}-{SID}-{flags}")
}

fn extract(traceparent: &str, tracestates: &[&str]) -> Context {
    let mut carrier = vec![("traceparent".to_owned(), traceparent.to_owned())];
    carrier.extend(
        tracestates
            .iter()
            .map(|v| ("tracestate".to_owned(), (*v).to_owned())),
    );
    W3cTraceContextPropagator::new()
        .extract_with_context(&Context::new(), &Carrier::new(&mut carrier))
}

fn inject(cx: &Context) -> Vec<(String, String)> {
    let mut out = Vec::new();
    W3cTraceContextPropagator::new().inject_context(cx, &mut Carrier::new(&mut out));
    out
}

/// Extract then inject: the headers a pass-through hop sends downstream.
fn round_trip(traceparent: &str, tracestates: &[&str]) -> Vec<(String, String)> {
    inject(&extract(traceparent, tracestates))
}

/// The exact downstream headers: a `traceparent`, and a `tracestate` only when
/// there is one to send.
fn expected(traceparent: &str, tracestate: Option<&str>) -> Vec<(String, String)> {
    let mut out = vec![("traceparent".to_owned(), traceparent.to_owned())];
    if let Some(state) = tracestate {
        out.push(("tracestate".to_owned(), state.to_owned()));
    }
    out
}

fn members(n: usize) -> String {
    (1..=n)
        .map(|i| format!("k{i:02}=v{i:02}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn tracestate_rules_round_trip_exactly() {
    let all_key_chars = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/";
    let all_value_chars: String = (0x20_u8..=0x7e)
        .filter(|b| *b != b',' && *b != b'=')
        .map(char::from)
        .collect();
    let key_256 = "z".repeat(256);
    let key_257 = "z".repeat(257);
    let old_multi_tenant_limits = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let long_system = format!("t@{}", "v".repeat(15));
    let long_tenant = format!("{}@v", "t".repeat(242));
    let value_256 = "v".repeat(256);
    let value_257 = "v".repeat(257);

    // (rule, tracestate header values, downstream tracestate)
    let cases: Vec<(&str, Vec<String>, Option<String>)> = vec![
        // key = (lcalpha / DIGIT) 0*255(keychar), keychar includes "@"
        ("simple key", vec!["foo=1".into()], Some("foo=1".into())),
        (
            "key ending in @",
            vec!["foo@=1,bar=2".into()],
            Some("foo@=1,bar=2".into()),
        ),
        (
            "key with @@",
            vec!["foo@@bar=1,bar=2".into()],
            Some("foo@@bar=1,bar=2".into()),
        ),
        (
            "key with two @",
            vec!["foo@bar@baz=1,bar=2".into()],
            Some("foo@bar@baz=1,bar=2".into()),
        ),
        (
            "key starting with a digit",
            vec!["1a=1,0@x=2".into()],
            Some("1a=1,0@x=2".into()),
        ),
        (
            "key with 14 chars after @",
            vec![format!("x@{}=1", "s".repeat(14))],
            Some(format!("x@{}=1", "s".repeat(14))),
        ),
        (
            "Level 1's 241-char tenant with a 14-char system",
            vec!["foo=1".into(), format!("{old_multi_tenant_limits}=1")],
            Some(format!("foo=1,{old_multi_tenant_limits}=1")),
        ),
        (
            "Level 1's 15-char system is a valid key now",
            vec!["foo=1".into(), format!("{long_system}=1")],
            Some(format!("foo=1,{long_system}=1")),
        ),
        (
            "Level 1's 242-char tenant is a valid key now",
            vec!["foo=1".into(), format!("{long_tenant}=1")],
            Some(format!("foo=1,{long_tenant}=1")),
        ),
        (
            "every key char",
            vec![format!("{all_key_chars}=1")],
            Some(format!("{all_key_chars}=1")),
        ),
        (
            "256-char key",
            vec!["foo=1".into(), format!("{key_256}=1")],
            Some(format!("foo=1,{key_256}=1")),
        ),
        (
            "257-char key drops the list",
            vec!["foo=1".into(), format!("{key_257}=1")],
            None,
        ),
        (
            "key starting with @ drops the list",
            vec!["@foo=1,bar=2".into()],
            None,
        ),
        (
            "uppercase key drops the list",
            vec!["FOO=1,bar=2".into()],
            None,
        ),
        (
            "key with . drops the list",
            vec!["foo.bar=1,bar=2".into()],
            None,
        ),
        (
            "space inside key drops the list",
            vec!["foo =1,bar=2".into()],
            None,
        ),
        ("empty key drops the list", vec!["=1,bar=2".into()], None),
        (
            "member without = drops the list",
            vec!["foo,bar=2".into()],
            None,
        ),
        // value = 0*255(chr) nblk-chr
        (
            "every value char",
            vec![format!("foo={all_value_chars}")],
            Some(format!("foo={all_value_chars}")),
        ),
        (
            "empty value drops the list",
            vec!["foo=,bar=3".into()],
            None,
        ),
        (
            "blank value drops the list",
            vec!["foo= ,bar=3".into()],
            None,
        ),
        (
            "leading spaces belong to the value",
            vec!["foo=  1".into()],
            Some("foo=  1".into()),
        ),
        (
            "trailing space is OWS",
            vec!["foo=1 ,bar=2 ".into()],
            Some("foo=1,bar=2".into()),
        ),
        (
            "trailing tab is OWS",
            vec!["foo=1\t".into()],
            Some("foo=1".into()),
        ),
        (
            "OWS around members",
            vec!["foo=1 \t , \t bar=2,\t baz=3".into()],
            Some("foo=1,bar=2,baz=3".into()),
        ),
        (
            "256-char value",
            vec![format!("foo={value_256}")],
            Some(format!("foo={value_256}")),
        ),
        (
            "257-char value drops the list",
            vec!["bar=1".into(), format!("foo={value_257}")],
            None,
        ),
        (
            "= in value drops the list",
            vec!["foo=a=b,bar=2".into()],
            None,
        ),
        (
            "tab in value drops the list",
            vec!["foo=a\tb,bar=2".into()],
            None,
        ),
        (
            "DEL in value drops the list",
            vec!["foo=a\u{7f},bar=2".into()],
            None,
        ),
        (
            "non-ASCII value drops the list",
            vec!["foo=é,bar=2".into()],
            None,
        ),
        // list: at most 32 members, empty members allowed
        ("32 members", vec![members(32)], Some(members(32))),
        ("33 members drop the list", vec![members(33)], None),
        (
            "33 members across headers drop the list",
            vec![
                members(16),
                members(33)
                    .split(',')
                    .skip(16)
                    .collect::<Vec<_>>()
                    .join(","),
            ],
            None,
        ),
        (
            "empty members are not counted",
            vec![format!(",{}, ,,\t,", members(32))],
            Some(members(32)),
        ),
        ("empty header", vec![String::new()], None),
        (
            "empty header before a valid one",
            vec![String::new(), "foo=1".into()],
            Some("foo=1".into()),
        ),
        (
            "headers combined in order",
            vec![
                "foo=1,bar=2".into(),
                "rojo=1,congo=2".into(),
                "baz=3".into(),
            ],
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3".into()),
        ),
        // duplicates: the first occurrence (the left-most, most recent) wins
        (
            "identical duplicate",
            vec!["foo=1,foo=1".into()],
            Some("foo=1".into()),
        ),
        (
            "conflicting duplicate",
            vec!["foo=1,foo=2".into()],
            Some("foo=1".into()),
        ),
        (
            "duplicate across headers",
            vec!["foo=1".into(), "foo=2".into()],
            Some("foo=1".into()),
        ),
        (
            "duplicate keeps the others in order",
            vec!["a=1,b=2,a=3,c=4".into()],
            Some("a=1,b=2,c=4".into()),
        ),
        (
            "duplicates still count toward 32",
            vec![format!("{},k01=x", members(32))],
            None,
        ),
    ];
    // Every rule is checked, then all the broken ones are reported together.
    let broken: Vec<String> = cases
        .into_iter()
        .filter_map(|(rule, values, state)| {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let got = round_trip(&parent("01"), &values);
            (got != expected(&parent("01"), state.as_deref()))
                .then(|| format!("{rule}: sent {:?}", got.get(1)))
        })
        .collect();
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn traceparent_flags_round_trip_exactly() {
    // (incoming flags, downstream flags): sampled and random are kept as they
    // came, unknown bits are zeroed.
    for (incoming, outgoing) in [
        ("00", "00"),
        ("01", "01"),
        ("02", "02"),
        ("03", "03"),
        ("07", "03"),
        ("fe", "02"),
        ("ff", "03"),
        ("04", "00"),
    ] {
        assert_eq!(
            round_trip(&parent(incoming), &["congo=t61rcWkgMzE"]),
            expected(&parent(outgoing), Some("congo=t61rcWkgMzE")),
            "{incoming}"
        );
    }
    // A higher version is parsed by its version-00 prefix and sent as 00.
    assert_eq!(
        round_trip(
            &format!("cc-{TID}-{SID}-03-what-the-future-holds"),
            &["a=1"]
        ),
        expected(&parent("03"), Some("a=1"))
    );
    // No valid traceparent: nothing to continue, the tracestate is not parsed.
    assert!(round_trip(&format!("00-{TID}-{SID}-1"), &["a=1"]).is_empty());
}

#[test]
fn long_tracestate_is_truncated_by_whole_members() {
    // 32 members of 20 chars: 671 chars. The trailing ones go until at most
    // 512 remain: 24 members, 503 chars.
    let kvs: Vec<String> = (0..32)
        .map(|i| format!("key{i:02}={}", "x".repeat(14)))
        .collect();
    let header = kvs.join(",");
    assert_eq!(
        round_trip(&parent("01"), &[&header]),
        expected(&parent("01"), Some(&kvs[..24].join(",")))
    );

    // Members over 128 chars go first (right-most first), then from the end.
    let big1 = format!("big1={}", "a".repeat(200));
    let big2 = format!("big2={}", "b".repeat(150));
    let small: Vec<String> = (0..4)
        .map(|i| format!("s{i}={}", "y".repeat(100)))
        .collect();
    let header = format!(
        "{big1},{},{big2},{}",
        small[..2].join(","),
        small[2..].join(",")
    );
    // 206 + 155 + 4 * 103 + 5 commas = 778: dropping big2 leaves 622, dropping
    // big1 too leaves 415.
    assert_eq!(
        round_trip(&parent("01"), &[&header]),
        expected(&parent("01"), Some(&small.join(",")))
    );
}

fn inject_current() -> Vec<(String, String)> {
    Context::map_current(inject)
}

fn flags_of(headers: &[(String, String)]) -> &str {
    &headers[0].1[53..]
}

#[test]
fn spans_forward_the_validated_tracestate_and_the_random_flag() {
    let incoming = "foo@bar@baz=1,congo=t61rcWkgMzE,foo@bar@baz=2";
    for mode in MODES {
        for flags in ["00", "01", "02", "03"] {
            let h = Harness::new(mode);
            let remote = extract(&parent(flags), &[incoming]);
            let (ids, out) = h.run(|| {
                let _remote = remote.attach();
                let server = tracing::info_span!("server");
                let _s = server.enter();
                let child = tracing::info_span!("client");
                let _c = child.enter();
                (TraceIds::current().expect("ids"), inject_current())
            });
            assert_eq!(
                out,
                expected(
                    &format!("00-{TID}-{}-{flags}", ids.span_id_hex()),
                    Some("foo@bar@baz=1,congo=t61rcWkgMzE")
                ),
                "{mode:?} {flags}"
            );
        }
    }
}

#[test]
fn traces_started_stand_alone_set_the_random_flag() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (ids, out) = h.run(|| {
            let root = tracing::info_span!(parent: None, "job");
            let _r = root.enter();
            tracing::info!("started");
            (TraceIds::current().expect("ids"), inject_current())
        });
        let line = &h.lines()[0];
        match mode {
            // The correlation layer minted a random trace id: random + sampled.
            Mode::Standalone => {
                assert_eq!(ids.trace_flags_hex().as_str(), "03");
                assert_eq!(line["trace_flags"], "03");
                assert_eq!(flags_of(&out), "03");
            }
            // The SDK mints these and sets only `sampled` (opentelemetry_sdk
            // 0.33): what it decided is what goes downstream.
            Mode::Otel => {
                assert_eq!(ids.trace_flags_hex().as_str(), "01");
                assert_eq!(flags_of(&out), "01");
            }
        }
        assert_eq!(
            out,
            expected(
                &format!(
                    "00-{}-{}-{}",
                    ids.trace_id_hex(),
                    ids.span_id_hex(),
                    ids.trace_flags_hex()
                ),
                None
            )
        );
    }
}

#[test]
fn changes_made_through_opentelemetry_trace_state_are_merged() {
    // `foo@bar@baz` cannot be held by opentelemetry's TraceState; the rest can.
    let remote = extract(
        &parent("01"),
        &["foo@bar@baz=1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"],
    );
    let span = remote.span().span_context().clone();
    assert_eq!(
        span.trace_state().header(),
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );
    let with_state = |state: TraceState| {
        remote.with_remote_span_context(SpanContext::new(
            span.trace_id(),
            span.span_id(),
            span.trace_flags(),
            false,
            state,
        ))
    };
    let state = span.trace_state();
    let cases = [
        (
            "unchanged",
            state.clone(),
            "foo@bar@baz=1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        ),
        (
            "added key goes first",
            state.insert("ours", "x1").unwrap(),
            "ours=x1,foo@bar@baz=1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        ),
        (
            "updated key moves first",
            state.insert("rojo", "new").unwrap(),
            "rojo=new,foo@bar@baz=1,congo=t61rcWkgMzE",
        ),
        (
            "deleted key is gone",
            state.delete("congo").unwrap(),
            "foo@bar@baz=1,rojo=00f067aa0ba902b7",
        ),
    ];
    for (name, state, downstream) in cases {
        assert_eq!(
            inject(&with_state(state)),
            expected(&parent("01"), Some(downstream)),
            "{name}"
        );
    }

    // Another trace: what was received for this one does not apply.
    let other = remote.with_remote_span_context(SpanContext::new(
        opentelemetry::trace::TraceId::from(7),
        span.span_id(),
        span.trace_flags(),
        false,
        TraceState::NONE,
    ));
    assert_eq!(
        inject(&other),
        expected(&format!("00-{:032x}-{SID}-01", 7), None)
    );
}
