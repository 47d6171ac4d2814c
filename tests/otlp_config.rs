//! `ExportConfig` resolution from every `OTEL_*` variable it reads, through a
//! lookup function (the process environment is never touched).
#![cfg(feature = "otlp")]

use std::time::Duration;

use tracing_correlation::{ConfigWarning, ExportConfig, ExportMode, OtlpProtocol, SamplerConfig};

fn config(vars: &[(&str, &str)]) -> ExportConfig {
    ExportConfig::from_lookup(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
}

fn warned_variables(config: &ExportConfig) -> Vec<&'static str> {
    config
        .warnings()
        .iter()
        .map(ConfigWarning::variable)
        .collect()
}

const EP: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_EP: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTO: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTO: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const DISABLED: &str = "OTEL_SDK_DISABLED";
const SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const ATTRS: &str = "OTEL_RESOURCE_ATTRIBUTES";

const HTTP_DEFAULT: &str = "http://localhost:4318/v1/traces";
const GRPC_DEFAULT: &str = "http://localhost:4317";

struct Case {
    vars: &'static [(&'static str, &'static str)],
    mode: ExportMode,
    protocol: OtlpProtocol,
    endpoint: &'static str,
    warnings: &'static [&'static str],
}

use ExportMode::{Otlp, Standalone};
use OtlpProtocol::{Grpc, HttpProtobuf as Http};

#[rustfmt::skip]
const MODE_PROTOCOL_ENDPOINT_CASES: &[Case] = &[
    // Nothing set: stand-alone, defaults.
    Case { vars: &[], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    // Endpoints decide export; generic gets /v1/traces for HTTP, traces-specific is as-is.
    Case { vars: &[(EP, "http://c:4318")], mode: Otlp, protocol: Http, endpoint: "http://c:4318/v1/traces", warnings: &[] },
    Case { vars: &[(EP, "http://c:4318/")], mode: Otlp, protocol: Http, endpoint: "http://c:4318/v1/traces", warnings: &[] },
    Case { vars: &[(EP, "http://c:4318/prefix")], mode: Otlp, protocol: Http, endpoint: "http://c:4318/prefix/v1/traces", warnings: &[] },
    Case { vars: &[(TRACES_EP, "http://c:9999/custom")], mode: Otlp, protocol: Http, endpoint: "http://c:9999/custom", warnings: &[] },
    Case { vars: &[(EP, "http://generic"), (TRACES_EP, "http://specific/x")], mode: Otlp, protocol: Http, endpoint: "http://specific/x", warnings: &[] },
    Case { vars: &[(EP, "http://c:4317"), (PROTO, "grpc")], mode: Otlp, protocol: Grpc, endpoint: "http://c:4317", warnings: &[] },
    Case { vars: &[(TRACES_EP, "http://c:4317"), (TRACES_PROTO, "grpc")], mode: Otlp, protocol: Grpc, endpoint: "http://c:4317", warnings: &[] },
    // Empty and blank values mean unset.
    Case { vars: &[(EP, "")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(EP, "   "), (TRACES_EP, "")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(EP, " http://c:4318 ")], mode: Otlp, protocol: Http, endpoint: "http://c:4318/v1/traces", warnings: &[] },
    // OTEL_TRACES_EXPORTER.
    Case { vars: &[(EXPORTER, "otlp")], mode: Otlp, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(EXPORTER, "OtLp")], mode: Otlp, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(EXPORTER, "otlp"), (PROTO, "grpc")], mode: Otlp, protocol: Grpc, endpoint: GRPC_DEFAULT, warnings: &[] },
    Case { vars: &[(EXPORTER, "none"), (EP, "http://c:4318")], mode: Standalone, protocol: Http, endpoint: "http://c:4318/v1/traces", warnings: &[] },
    Case { vars: &[(EXPORTER, "NONE"), (TRACES_EP, "http://c")], mode: Standalone, protocol: Http, endpoint: "http://c", warnings: &[] },
    Case { vars: &[(EXPORTER, "")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(EXPORTER, "zipkin")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[EXPORTER] },
    Case { vars: &[(EXPORTER, "zipkin"), (EP, "http://c")], mode: Otlp, protocol: Http, endpoint: "http://c/v1/traces", warnings: &[EXPORTER] },
    Case { vars: &[(EXPORTER, "otlp, console")], mode: Otlp, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[EXPORTER] },
    // OTEL_SDK_DISABLED wins over everything.
    Case { vars: &[(DISABLED, "true"), (EP, "http://c")], mode: Standalone, protocol: Http, endpoint: "http://c/v1/traces", warnings: &[] },
    Case { vars: &[(DISABLED, "TRUE"), (EXPORTER, "otlp")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(DISABLED, "false"), (EP, "http://c")], mode: Otlp, protocol: Http, endpoint: "http://c/v1/traces", warnings: &[] },
    Case { vars: &[(DISABLED, "False"), (EXPORTER, "otlp")], mode: Otlp, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(DISABLED, ""), (EP, "http://c")], mode: Otlp, protocol: Http, endpoint: "http://c/v1/traces", warnings: &[] },
    Case { vars: &[(DISABLED, "yes"), (EP, "http://c")], mode: Otlp, protocol: Http, endpoint: "http://c/v1/traces", warnings: &[DISABLED] },
    Case { vars: &[(DISABLED, "1")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[DISABLED] },
    // Protocol: traces-specific over generic, invalid ones ignored with a warning.
    Case { vars: &[(PROTO, "grpc")], mode: Standalone, protocol: Grpc, endpoint: GRPC_DEFAULT, warnings: &[] },
    Case { vars: &[(PROTO, "GRPC")], mode: Standalone, protocol: Grpc, endpoint: GRPC_DEFAULT, warnings: &[] },
    Case { vars: &[(PROTO, "http/protobuf")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(PROTO, "HTTP/Protobuf")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(TRACES_PROTO, "grpc"), (PROTO, "http/protobuf")], mode: Standalone, protocol: Grpc, endpoint: GRPC_DEFAULT, warnings: &[] },
    Case { vars: &[(TRACES_PROTO, "http/protobuf"), (PROTO, "grpc")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
    Case { vars: &[(PROTO, "http/json")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[PROTO] },
    Case { vars: &[(TRACES_PROTO, "http/json")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[TRACES_PROTO] },
    Case { vars: &[(PROTO, "thrift")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[PROTO] },
    Case { vars: &[(TRACES_PROTO, "bogus"), (PROTO, "grpc")], mode: Standalone, protocol: Grpc, endpoint: GRPC_DEFAULT, warnings: &[TRACES_PROTO] },
    Case { vars: &[(PROTO, "")], mode: Standalone, protocol: Http, endpoint: HTTP_DEFAULT, warnings: &[] },
];

#[test]
fn mode_protocol_and_endpoint_follow_the_specification() {
    for case in MODE_PROTOCOL_ENDPOINT_CASES {
        let config = config(case.vars);
        assert_eq!(config.mode(), case.mode, "mode for {:?}", case.vars);
        assert_eq!(
            config.protocol(),
            case.protocol,
            "protocol for {:?}",
            case.vars
        );
        assert_eq!(
            config.endpoint(),
            case.endpoint,
            "endpoint for {:?}",
            case.vars
        );
        assert_eq!(
            warned_variables(&config),
            case.warnings,
            "warnings for {:?}",
            case.vars
        );
        assert_eq!(config.sampler(), SamplerConfig::ParentBasedAlwaysOn);
    }
}

type Vars = &'static [(&'static str, &'static str)];

#[rustfmt::skip]
const SAMPLER_CASES: &[(Vars, SamplerConfig, &[&str])] = &[
    (&[], SamplerConfig::ParentBasedAlwaysOn, &[]),
    (&[(SAMPLER, "")], SamplerConfig::ParentBasedAlwaysOn, &[]),
    (&[(SAMPLER, "always_on")], SamplerConfig::AlwaysOn, &[]),
    (&[(SAMPLER, "ALWAYS_OFF")], SamplerConfig::AlwaysOff, &[]),
    (&[(SAMPLER, "traceidratio"), (ARG, "0.5")], SamplerConfig::TraceIdRatio(0.5), &[]),
    (&[(SAMPLER, "traceidratio"), (ARG, "0")], SamplerConfig::TraceIdRatio(0.0), &[]),
    (&[(SAMPLER, "traceidratio")], SamplerConfig::TraceIdRatio(1.0), &[]),
    (&[(SAMPLER, "traceidratio"), (ARG, "")], SamplerConfig::TraceIdRatio(1.0), &[]),
    (&[(SAMPLER, "traceidratio"), (ARG, "half")], SamplerConfig::TraceIdRatio(1.0), &[ARG]),
    (&[(SAMPLER, "traceidratio"), (ARG, "1.5")], SamplerConfig::TraceIdRatio(1.0), &[ARG]),
    (&[(SAMPLER, "traceidratio"), (ARG, "-0.1")], SamplerConfig::TraceIdRatio(1.0), &[ARG]),
    (&[(SAMPLER, "traceidratio"), (ARG, "NaN")], SamplerConfig::TraceIdRatio(1.0), &[ARG]),
    (&[(SAMPLER, "parentbased_always_on")], SamplerConfig::ParentBasedAlwaysOn, &[]),
    (&[(SAMPLER, "ParentBased_Always_Off")], SamplerConfig::ParentBasedAlwaysOff, &[]),
    (&[(SAMPLER, "parentbased_traceidratio"), (ARG, "0.25")], SamplerConfig::ParentBasedTraceIdRatio(0.25), &[]),
    (&[(SAMPLER, "parentbased_traceidratio"), (ARG, "x")], SamplerConfig::ParentBasedTraceIdRatio(1.0), &[ARG]),
    // The argument only matters for ratio samplers.
    (&[(SAMPLER, "always_on"), (ARG, "garbage")], SamplerConfig::AlwaysOn, &[]),
    (&[(ARG, "0.1")], SamplerConfig::ParentBasedAlwaysOn, &[]),
    (&[(SAMPLER, "sometimes")], SamplerConfig::ParentBasedAlwaysOn, &[SAMPLER]),
    (&[(SAMPLER, "jaeger_remote")], SamplerConfig::ParentBasedAlwaysOn, &[SAMPLER]),
    (&[(SAMPLER, "xray")], SamplerConfig::ParentBasedAlwaysOn, &[SAMPLER]),
];

#[test]
fn sampler_follows_the_specification() {
    for (vars, expected, warnings) in SAMPLER_CASES {
        let config = config(vars);
        assert_eq!(config.sampler(), *expected, "sampler for {vars:?}");
        assert_eq!(
            warned_variables(&config),
            *warnings,
            "warnings for {vars:?}"
        );
        assert_eq!(config.mode(), ExportMode::Standalone);
    }
}

#[test]
fn service_name_comes_from_the_variable_then_the_attributes_then_the_executable() {
    let exe_stem = std::env::current_exe()
        .unwrap()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(config(&[]).service_name(), exe_stem);
    assert_eq!(
        config(&[("OTEL_SERVICE_NAME", "")]).service_name(),
        exe_stem
    );
    assert_eq!(
        config(&[(ATTRS, "service.name=from-attrs")]).service_name(),
        "from-attrs"
    );
    assert_eq!(
        config(&[
            ("OTEL_SERVICE_NAME", "checkout"),
            (ATTRS, "service.name=from-attrs")
        ])
        .service_name(),
        "checkout"
    );
}

#[test]
fn resource_attributes_are_percent_decoded_and_discarded_whole_on_error() {
    let parsed = config(&[(
        ATTRS,
        "deployment.environment.name=staging, team = a%2Cb%3Dc ,note=caf%C3%A9%20ok,",
    )]);
    assert_eq!(
        parsed.resource_attributes(),
        [
            (
                "deployment.environment.name".to_owned(),
                "staging".to_owned()
            ),
            ("team".to_owned(), "a,b=c".to_owned()),
            ("note".to_owned(), "café ok".to_owned()),
        ]
    );
    assert!(parsed.warnings().is_empty());

    for broken in ["a=1,missing-equals", "a=1,=2", "a=%zz", "a=%C3", "a=50%"] {
        let config = config(&[(ATTRS, broken)]);
        assert!(config.resource_attributes().is_empty(), "{broken}");
        assert_eq!(warned_variables(&config), [ATTRS], "{broken}");
        assert_eq!(config.warnings()[0].value(), broken);
    }
    assert!(config(&[(ATTRS, "")]).resource_attributes().is_empty());
}

#[test]
fn builder_methods_override_the_environment() {
    let env = [
        (DISABLED, "true"),
        (EP, "http://env:4318"),
        (PROTO, "http/protobuf"),
        (SAMPLER, "always_off"),
        ("OTEL_SERVICE_NAME", "env-name"),
        (ATTRS, "team=env,region=eu"),
    ];
    let config = config(&env)
        .with_mode(ExportMode::Otlp)
        .with_protocol(OtlpProtocol::Grpc)
        .with_sampler(SamplerConfig::TraceIdRatio(0.5))
        .with_service_name("builder-name")
        .with_resource_attribute("team", "builder")
        .with_export_timeout(Duration::from_millis(1500));
    assert_eq!(config.mode(), ExportMode::Otlp);
    assert_eq!(config.protocol(), OtlpProtocol::Grpc);
    // The generic endpoint now follows gRPC rules: no path appended.
    assert_eq!(config.endpoint(), "http://env:4318");
    assert_eq!(config.sampler(), SamplerConfig::TraceIdRatio(0.5));
    assert_eq!(config.service_name(), "builder-name");
    assert_eq!(
        config.resource_attributes(),
        [
            ("region".to_owned(), "eu".to_owned()),
            ("team".to_owned(), "builder".to_owned())
        ]
    );
    assert_eq!(config.export_timeout(), Some(Duration::from_millis(1500)));

    let config = config.with_endpoint("http://explicit:4317");
    assert_eq!(config.endpoint(), "http://explicit:4317");
}

#[test]
fn each_invalid_value_is_reported_once() {
    let mut config = config(&[
        (DISABLED, "maybe"),
        (EXPORTER, "jaeger"),
        (PROTO, "http/json"),
        (SAMPLER, "traceidratio"),
        (ARG, "lots"),
        (ATTRS, "broken"),
    ]);
    assert_eq!(
        warned_variables(&config),
        [DISABLED, EXPORTER, PROTO, ARG, ATTRS]
    );
    let rendered: Vec<String> = config.warnings().iter().map(ToString::to_string).collect();
    assert!(rendered[0].starts_with("ignoring OTEL_SDK_DISABLED=\"maybe\""));
    assert!(
        rendered[2].contains("`http/json` is not supported"),
        "{}",
        rendered[2]
    );
    assert!(rendered[3].contains("using 1.0"), "{}", rendered[3]);

    let taken = config.take_warnings();
    assert_eq!(taken.len(), 5);
    assert!(config.take_warnings().is_empty());
    config.report_warnings(); // nothing left to print
    assert!(config.warnings().is_empty());
}
