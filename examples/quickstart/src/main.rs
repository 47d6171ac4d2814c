//! Correlated log lines with no collector. Each step announces itself on its
//! own lines ("1/4 …"); every line inside a span carries the `trace_id` and
//! `span_id` of the work it belongs to.
//!
//! Run from the repository root: `cargo run -p quickstart`
//! (`LOG_FORMAT=pretty cargo run -p quickstart` for human-readable lines).

use std::time::Duration;

use tracing::{error, info, info_span, Instrument as _, Level};
use tracing_correlation::{new_root, root_span};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One call: JSON lines on stdout (or `LOG_FORMAT=pretty`), `RUST_LOG`
    // filter (default `info`), W3C propagators, a flush on drop.
    let _guard = tracing_correlation::init_json_logging()?;

    info!("0/4 outside any span: this line has no trace ids");

    let request = info_span!("request", method = "GET", path = "/orders/42");
    request.in_scope(|| {
        info!("1/4 a request span: this line carries the request's trace_id and span_id");
        info_span!("db_lookup", table = "orders").in_scope(|| {
            info!(
                rows = 1,
                "1/4 a child span: same trace_id as the request, its own span_id"
            );
        });
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(
        async {
            info!("2/4 async: two calls run concurrently, each keeps its own span across .await");
            let inventory = async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                info!(
                    available = 3,
                    "2/4 inventory answered (span inventory_call)"
                );
            }
            .instrument(info_span!("inventory_call"));
            let pricing = async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                info!(
                    price_cents = 1999,
                    "2/4 pricing answered (span pricing_call)"
                );
            }
            .instrument(info_span!("pricing_call"));
            tokio::join!(inventory, pricing);

            if let Err(err) = render_report() {
                error!(
                    error = &err as &dyn std::error::Error,
                    "3/4 an error, logged with its error value and the request's ids"
                );
            }

            // A background job the request starts but that is not part of
            // it: a new trace, whose lines name the request's ids as
            // link.trace_id / link.span_id.
            let job = new_root(root_span!(Level::INFO, "nightly_cleanup"))
                .link_to_ambient()
                .spawn(async {
                    info!("4/4 a background job: a new trace_id, linked to the request (link.*)");
                });
            job.await
        }
        .instrument(request),
    )?;
    Ok(())
}

fn render_report() -> Result<String, std::io::Error> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "report template missing",
    ))
}
