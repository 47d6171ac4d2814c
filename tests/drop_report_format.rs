//! The line that reports lines dropped by a full output (`WriteMode::Drop`)
//! is written in that output's own format: the profile's key names and
//! level spelling, and its static fields, like every other line of the
//! output. A pipeline that parses an ECS or Datadog output must not meet a
//! line in another schema.

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tracing_correlation::{JsonFormat, Output, Profile, WriteMode};

/// Takes one write, then blocks the next until released (a stalled reader).
#[derive(Clone)]
struct Stalling {
    bytes: Arc<Mutex<Vec<u8>>>,
    writes: Arc<Mutex<usize>>,
    entered: mpsc::SyncSender<()>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Write for Stalling {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let first = {
            let mut writes = self.writes.lock().unwrap();
            *writes += 1;
            *writes == 1
        };
        if first {
            let _ = self.entered.try_send(());
            let _ = self.release.lock().unwrap().recv();
        }
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn lines_through(profile: Profile) -> (Vec<Value>, u64) {
    let (entered_tx, entered) = mpsc::sync_channel(1);
    let (release_tx, release) = mpsc::channel();
    let target = Stalling {
        bytes: Arc::default(),
        writes: Arc::default(),
        entered: entered_tx,
        release: Arc::new(Mutex::new(release)),
    };
    let bytes = target.bytes.clone();
    let format = JsonFormat::new()
        .with_profile(profile)
        .with_static_field("service.name", "checkout");
    let (dispatch, guard) = tracing_correlation::builder()
        .filter("info")
        .default_output(
            Output::writer(target)
                .mode(WriteMode::Drop)
                .capacity(2048)
                .json(format),
        )
        .build()
        .expect("valid");
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(seq = 0, "first");
        // The writer is now stuck in its first write: the buffer fills.
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer started");
        for seq in 1..200 {
            tracing::info!(seq, "line of about a hundred bytes, most of them dropped");
        }
    });
    release_tx.send(()).unwrap();
    drop(dispatch);
    let report = guard.shutdown();
    let dropped = report.outputs[0].dropped;
    assert!(dropped > 100, "{report:?}");
    let text = String::from_utf8(bytes.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).expect(line))
        .collect();
    (lines, dropped)
}

/// The report lines among `lines` (those carrying `dropped_lines`): at
/// least one, and their counts add up to `dropped` exactly.
fn reports(lines: &[Value], dropped: u64) -> Vec<&Value> {
    let reports: Vec<&Value> = lines
        .iter()
        .filter(|line| line.get("dropped_lines").is_some())
        .collect();
    assert!(!reports.is_empty(), "no report line in {lines:?}");
    let total: u64 = reports
        .iter()
        .map(|r| r["dropped_lines"].as_u64().unwrap())
        .sum();
    assert_eq!(total, dropped);
    reports
}

#[test]
fn an_ecs_output_reports_its_dropped_lines_in_ecs() {
    let (lines, dropped) = lines_through(Profile::ecs());
    let reports = reports(&lines, dropped);
    for report in reports {
        assert!(report.get("@timestamp").is_some(), "{report}");
        assert!(report.get("timestamp").is_none(), "{report}");
        assert_eq!(report["log.level"], "warn", "{report}");
        assert!(report.get("level").is_none(), "{report}");
        assert_eq!(report["log.logger"], "tracing_correlation", "{report}");
        assert_eq!(report["service.name"], "checkout", "{report}");
        assert_eq!(report["ecs.version"], "8.11.0", "{report}");
        let message = report["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!(
                "{} log lines dropped: the output could not keep up",
                report["dropped_lines"]
            )
        );
    }
    // The application's lines that were written are whole ECS lines too.
    let app: Vec<_> = lines
        .iter()
        .filter(|l| l.get("dropped_lines").is_none())
        .collect();
    assert_eq!(app[0]["message"], "first");
    assert!(app.iter().all(|l| l["log.level"] == "info"));
}

#[test]
fn a_datadog_output_reports_its_dropped_lines_with_datadog_keys() {
    let (lines, dropped) = lines_through(Profile::datadog());
    let reports = reports(&lines, dropped);
    for report in reports {
        assert_eq!(report["status"], "warning", "{report}");
        assert!(report.get("level").is_none(), "{report}");
        assert_eq!(report["logger.name"], "tracing_correlation", "{report}");
        assert_eq!(report["dd.service"], "checkout", "{report}");
        assert!(report.get("timestamp").is_some(), "{report}");
    }
}
