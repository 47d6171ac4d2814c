//! Context follows each task across `.await` points and never leaks between
//! tasks interleaved on one thread.

mod support;

use std::sync::Arc;

use support::{ids_of, Harness, Mode, MODES};
use tracing::Instrument;
use tracing_correlation::TraceIds;

#[test]
fn interleaved_tasks_on_one_thread_never_see_each_others_ids() {
    for mode in MODES {
        let h = Harness::new(mode);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let notify = Arc::new(tokio::sync::Notify::new());
        let task_ids = h.run(|| {
            rt.block_on(async {
                let mut handles = Vec::new();
                for task in 0..2u32 {
                    let notify = notify.clone();
                    let span = tracing::info_span!("task", task);
                    handles.push(tokio::spawn(
                        async move {
                            let mine = TraceIds::current().expect("inside the task span");
                            for step in 0..5u32 {
                                tracing::info!(task, step, "tick");
                                if step % 2 == 0 {
                                    tokio::task::yield_now().await;
                                } else {
                                    // Wake the other task, then wait a real timer.
                                    notify.notify_waiters();
                                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                                }
                                // After every await: still exactly our context.
                                assert_eq!(
                                    TraceIds::current(),
                                    Some(mine),
                                    "task {task} step {step}"
                                );
                            }
                            mine
                        }
                        .instrument(span),
                    ));
                }
                // Outside the tasks, no context at all.
                assert_eq!(TraceIds::current(), None);
                let mut ids = Vec::new();
                for handle in handles {
                    ids.push(handle.await.unwrap());
                }
                ids
            })
        });
        assert_ne!(task_ids[0].trace_id(), task_ids[1].trace_id(), "{mode:?}");
        let lines = h.lines();
        assert_eq!(lines.len(), 10);
        let order: Vec<u64> = lines.iter().map(|l| l["task"].as_u64().unwrap()).collect();
        assert!(
            order.windows(2).any(|w| w[0] != w[1]) && order[..5] != [0; 5],
            "interleaved: {order:?}"
        );
        for line in &lines {
            let ids = task_ids[line["task"].as_u64().unwrap() as usize];
            assert_eq!(
                ids_of(line),
                Some((
                    ids.trace_id_hex().to_string(),
                    ids.span_id_hex().to_string(),
                    // Stand-alone roots are random + sampled; the SDK's sampled.
                    if mode == Mode::Standalone { "03" } else { "01" }.into()
                )),
                "{mode:?}"
            );
        }
    }
}
