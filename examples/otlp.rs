//! Export spans over OTLP, configured only by the standard variables, and see
//! that each log line's ids are the exported span's ids.
//!
//! ```sh
//! # with a collector (OpenTelemetry Collector, Jaeger, Tempo…) listening:
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=checkout \
//!     cargo run --example otlp --features otlp
//! # gRPC instead of HTTP/protobuf:
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
//!     cargo run --example otlp --features otlp
//! ```
//!
//! Without those variables (or with `OTEL_SDK_DISABLED=true`) it runs
//! stand-alone: same lines, ids minted locally, nothing exported.

use tracing::{info, info_span, warn};
use tracing_correlation::{ExportConfig, ExportMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ExportConfig::from_env();
    let exporting = config.mode() == ExportMode::Otlp;
    let endpoint = config.endpoint();
    // `init_json_logging()` reads the same variables; passing the config we
    // inspected just avoids reading them twice.
    let guard = tracing_correlation::builder().export(config).try_init()?;
    if exporting {
        info!(endpoint, "exporting spans over OTLP");
    } else {
        warn!("no OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER=otlp: running stand-alone");
    }

    for order in 1..=3u32 {
        let checkout = info_span!("checkout", order);
        let _entered = checkout.enter();
        info!("validating cart");
        info_span!("charge_card", amount_cents = 1999 * order).in_scope(|| {
            info!("card charged");
        });
        info_span!("reserve_stock").in_scope(|| info!(items = order, "stock reserved"));
    }

    // Dropping the guard flushes the batch exporter (bounded wait, so an
    // unreachable collector cannot hang the exit).
    drop(guard);
    Ok(())
}
