//! Alerts raised by running runners: a task that fails every second alerts
//! once per postponement window while two runners watch it and one of them
//! restarts, and a run killed at its max duration alerts at once, without
//! waiting for the next check.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quicksilver::alert::{Alert, AlertKind, AlertSettings, AlertSink, SinkFuture};
use quicksilver::{Context, NewTask, Schedule, Status};
use support::{BackgroundRunner, TestDatabase, TestDb};

#[quicksilver::command]
async fn always_fails(_ctx: &Context) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("the upstream returned 503"))
}

#[quicksilver::command]
async fn sleeps_too_long(_ctx: &Context) {
    tokio::time::sleep(Duration::from_secs(30)).await;
}

/// A sink that keeps each alert with the moment it arrived.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Instant, Alert)>>>);

impl Recorder {
    fn alerts(&self) -> Vec<(Instant, Alert)> {
        self.0.lock().expect("recorder lock").clone()
    }
}

impl AlertSink for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a> {
        Box::pin(async move {
            self.0
                .lock()
                .expect("recorder lock")
                .push((Instant::now(), alert.clone()));
            Ok(())
        })
    }
}

fn settings(postpone: Duration, check_interval: Duration) -> AlertSettings {
    let mut settings = AlertSettings::default();
    settings.postpone = postpone;
    settings.check_interval = check_interval;
    settings
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_task_alerts_once_per_window(database: TestDatabase);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_at_max_duration_alerts_at_once(database: TestDatabase);
}

async fn failing_task_alerts_once_per_window(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let every_second = Schedule::every(1).expect("a valid interval");
    let task = db
        .add_task(NewTask::new("always_fails", every_second).alert_on_failure(true))
        .await;
    let postpone = Duration::from_secs(2);
    let recorder = Recorder::default();
    let runner = |queue: &str| {
        db.runner(queue)
            .alerts(settings(postpone, Duration::from_millis(200)))
            .alert_sink(recorder.clone())
    };

    // The second runner serves another queue and watches every task too.
    let watcher = BackgroundRunner::start(runner("watch"));
    let first = BackgroundRunner::start(runner("default"));
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    first.stop().await;
    let restarted = BackgroundRunner::start(runner("default"));
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    restarted.stop().await;
    watcher.stop().await;

    let failures = db.executions(task.id).await;
    let failed = failures
        .iter()
        .filter(|execution| execution.status == Status::Error)
        .count();
    assert!(
        failed >= 6,
        "the task failed every second: {failed} failures"
    );
    let alerts = recorder.alerts();
    assert!(
        alerts
            .iter()
            .all(|(_, alert)| alert.kind == AlertKind::Failed && alert.task_id == task.id),
        "{alerts:#?}"
    );
    let times: Vec<_> = alerts.iter().map(|(_, alert)| alert.raised_at).collect();
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).to_std().unwrap_or_default();
        assert!(
            gap >= postpone,
            "alerts {gap:?} apart, inside one window: {times:?}"
        );
    }
    // About nine seconds of failures, a window of two: one alert per
    // window, so three to five in all.
    assert!(
        (3..=5).contains(&alerts.len()),
        "{} alerts for {failed} failures: {times:?}",
        alerts.len()
    );
}

async fn kill_at_max_duration_alerts_at_once(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let hourly = Schedule::every(3_600).expect("a valid interval");
    let task = db
        .add_task(NewTask::new("sleeps_too_long", hourly).max_duration(Duration::from_secs(1)))
        .await;
    let recorder = Recorder::default();
    // A check interval of a minute: only the runner's wake-up on the kill
    // can send the alert within the test.
    let runner = BackgroundRunner::start(
        db.runner("default")
            .alerts(settings(Duration::from_secs(900), Duration::from_secs(60)))
            .alert_sink(recorder.clone()),
    );
    let killed = db
        .wait_for_status(task.id, Status::Killed, 1, Duration::from_secs(10))
        .await;
    let recorded = Instant::now();
    let deadline = recorded + Duration::from_secs(3);
    while recorder.alerts().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runner.stop().await;

    let alerts = recorder.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let (arrived, alert) = &alerts[0];
    assert_eq!(alert.kind, AlertKind::Killed);
    assert_eq!(alert.execution_id, Some(killed[0].id));
    assert!(
        arrived.saturating_duration_since(recorded) < Duration::from_secs(2),
        "the alert came {:?} after the kill was recorded",
        arrived.saturating_duration_since(recorded)
    );
    let output = alert.output.as_deref().unwrap_or_default();
    assert!(output.contains("max duration of 1s"), "{output}");
}
