//! The builder's lines carry the service named by the OpenTelemetry
//! resource variables, unless the JSON options name it. Sets the process
//! environment: its own binary, one test.

use tracing_correlation::{builder, testing, JsonFormat};

#[test]
fn lines_name_the_service_from_the_otel_resource_variables() {
    std::env::set_var("OTEL_SERVICE_NAME", "checkout");
    std::env::set_var(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.version=1.4.2,deployment.environment.name=prod%20eu",
    );
    let ((), captured) = testing::capture(|| tracing::info!(service.name = "spoofed", "one"));
    let line = captured.line("one");
    assert_eq!(line["service.name"], "checkout");
    assert_eq!(line["service.version"], "1.4.2");
    assert_eq!(line["deployment.environment.name"], "prod eu");
    assert_eq!(line["fields.service.name"], "spoofed", "{line}");

    let ((), explicit) = testing::capture_with(
        builder().json(JsonFormat::new().with_static_field("service.name", "explicit")),
        || tracing::info!("two"),
    );
    let line = explicit.line("two");
    assert_eq!(line["service.name"], "explicit");
    assert_eq!(line["service.version"], "1.4.2");
}
