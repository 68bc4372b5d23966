//! Alert rules: each rule fires exactly when it should, on a chosen clock,
//! and a task alerts once per postponement window whatever the number of
//! runners and restarts. The history is written into the database as the
//! runner would have written it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::alert::{Alert, AlertKind, AlertSettings, AlertSink, Monitor, SinkFuture};
use quicksilver::{NewTask, Schedule, Task};
use support::history::{insert_execution, sql_text, sql_time};
use support::{TestDatabase, TestDb};

/// A sink that keeps what it receives, and fails while set to fail.
#[derive(Clone, Default)]
struct Recorder {
    alerts: Arc<Mutex<Vec<Alert>>>,
    failing: Arc<Mutex<bool>>,
}

impl Recorder {
    fn take(&self) -> Vec<Alert> {
        std::mem::take(&mut *self.alerts.lock().expect("recorder lock"))
    }

    fn fail(&self, failing: bool) {
        *self.failing.lock().expect("recorder lock") = failing;
    }
}

impl AlertSink for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> SinkFuture<'a> {
        Box::pin(async move {
            if *self.failing.lock().expect("recorder lock") {
                return Err("the recorder rejects alerts now".into());
            }
            self.alerts
                .lock()
                .expect("recorder lock")
                .push(alert.clone());
            Ok(())
        })
    }
}

/// Returns the time `seconds` after the fixed instant of these tests.
fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2031-03-01T12:00:00Z")
        .expect("a valid time")
        .with_timezone(&Utc)
        + TimeDelta::seconds(seconds)
}

/// Quotes a time as an SQL literal that every backend reads.
fn quoted_time(time: DateTime<Utc>) -> String {
    sql_text(&sql_time(time))
}

/// Sets the next run of `task` to `next_run`.
async fn set_next_run(db: &TestDb, task: &Task, next_run: DateTime<Utc>) {
    db.store()
        .update_task(
            task.id,
            quicksilver::TaskChanges {
                next_run: Some(next_run),
                ..Default::default()
            },
        )
        .await
        .expect("the task is updated");
}

/// Adds a task of `command` on `queue`, due far in the future unless set
/// otherwise.
async fn add(db: &TestDb, command: &str, queue: &str) -> Task {
    let schedule = Schedule::every(60).expect("a valid interval");
    db.add_task(
        NewTask::new(command, schedule)
            .queue(queue)
            .next_run(at(3_600)),
    )
    .await
}

/// Writes `runtimes.len()` successful runs of `task`, one an hour before
/// `now`.
fn history(database: &TestDatabase, task: &Task, runtimes: &[f64], now: DateTime<Utc>) {
    for (index, runtime) in runtimes.iter().enumerate() {
        let started = now - TimeDelta::hours(index as i64 + 1);
        insert_execution(database, task, "success", started, Some(*runtime), "done");
    }
}

fn monitor(db: &TestDb, settings: AlertSettings, recorder: &Recorder) -> Monitor {
    Monitor::new(db.store().clone(), settings)
        .sink(recorder.clone())
        .host("test-host")
}

/// Returns the kinds of `alerts` by command, sorted by command.
fn by_command(alerts: &[Alert]) -> Vec<(String, AlertKind)> {
    let mut found: Vec<(String, AlertKind)> = alerts
        .iter()
        .map(|alert| (alert.command.clone(), alert.kind))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn expect(pairs: &[(&str, AlertKind)]) -> Vec<(String, AlertKind)> {
    pairs
        .iter()
        .map(|(command, kind)| ((*command).to_owned(), *kind))
        .collect()
}

/// Runtimes around 100 s with a deviation of about 7 s.
fn around_100(count: usize) -> Vec<f64> {
    [100.0, 110.0, 90.0, 105.0, 95.0, 100.0]
        .iter()
        .copied()
        .cycle()
        .take(count)
        .collect()
}

support::backend_tests! {
    #[tokio::test]
    async fn outliers_need_more_than_five_runs(database: TestDatabase);

    #[tokio::test]
    async fn runtime_floor_and_ceiling(database: TestDatabase);

    #[tokio::test]
    async fn overdue_only_when_the_queue_is_idle(database: TestDatabase);

    #[tokio::test]
    async fn killed_stale_and_failed_runs(database: TestDatabase);

    #[tokio::test]
    async fn one_alert_per_window_across_runners_and_restarts(database: TestDatabase);

    #[tokio::test]
    async fn overdue_after_runner_start_or_resume(database: TestDatabase);

    #[tokio::test]
    async fn failing_sink_retried_later(database: TestDatabase);
}

async fn outliers_need_more_than_five_runs(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let now = at(0);
    // Every task has a run going on for 300 s: far above 100 s plus two
    // deviations, and above the 60 s floor.
    let mut tasks = Vec::new();
    for (command, runs) in [("runs_0", 0), ("runs_5", 5), ("runs_6", 6), ("runs_60", 60)] {
        let task = add(&db, command, command).await;
        history(db.database(), &task, &around_100(runs), now);
        insert_execution(
            db.database(),
            &task,
            "ongoing",
            now - TimeDelta::seconds(300),
            None,
            "",
        );
        tasks.push(task);
    }
    // A run within its usual runtime stays quiet, however long the history.
    let usual = add(&db, "usual", "usual").await;
    history(db.database(), &usual, &around_100(20), now);
    insert_execution(
        db.database(),
        &usual,
        "ongoing",
        now - TimeDelta::seconds(108),
        None,
        "",
    );

    let recorder = Recorder::default();
    let evaluation = monitor(&db, AlertSettings::default(), &recorder)
        .evaluate(now)
        .await
        .expect("the rules are evaluated");
    let alerts = recorder.take();
    assert_eq!(evaluation.sent.len(), alerts.len());
    assert_eq!(
        by_command(&alerts),
        expect(&[
            ("runs_6", AlertKind::LongRunning),
            ("runs_60", AlertKind::LongRunning)
        ]),
        "only tasks with more than five successful runs alert: {alerts:#?}"
    );
    let six = alerts
        .iter()
        .find(|alert| alert.command == "runs_6")
        .expect("an alert for runs_6");
    assert_eq!(six.runs, 6);
    let mean = six.mean.expect("a mean").as_secs_f64();
    let deviation = six.deviation.expect("a deviation").as_secs_f64();
    assert!((mean - 100.0).abs() < 1e-6, "mean {mean}");
    assert!(
        (deviation - 6.4550).abs() < 1e-3,
        "deviation of the whole set {deviation}"
    );
    let threshold = six.threshold.expect("a threshold").as_secs_f64();
    assert!(
        (threshold - (mean + 2.0 * deviation)).abs() < 1e-3,
        "threshold {threshold}"
    );
    assert_eq!(six.runtime, Some(Duration::from_secs(300)));
    assert!(six.execution_id.is_some());
    assert_eq!(six.host, "test-host");
    let body = six.body();
    for fact in [
        "runs_6",
        "test-host",
        "300.000 s",
        "100.000 s",
        "6.455 s",
        "execution:",
    ] {
        assert!(body.contains(fact), "the body names {fact}: {body}");
    }
}

async fn runtime_floor_and_ceiling(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let now = at(0);
    let quick = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.0];
    // Thirty times its usual runtime, but under the 60 s floor: quiet.
    let under_floor = add(&db, "under_floor", "a").await;
    history(db.database(), &under_floor, &quick, now);
    insert_execution(
        db.database(),
        &under_floor,
        "ongoing",
        now - TimeDelta::seconds(30),
        None,
        "",
    );
    // The same, past the floor: alerts.
    let over_floor = add(&db, "over_floor", "b").await;
    history(db.database(), &over_floor, &quick, now);
    insert_execution(
        db.database(),
        &over_floor,
        "ongoing",
        now - TimeDelta::seconds(61),
        None,
        "",
    );
    // No history at all: only the ceiling can make them alert.
    let under_ceiling = add(&db, "under_ceiling", "c").await;
    insert_execution(
        db.database(),
        &under_ceiling,
        "ongoing",
        now - TimeDelta::seconds(119),
        None,
        "",
    );
    let over_ceiling = add(&db, "over_ceiling", "d").await;
    insert_execution(
        db.database(),
        &over_ceiling,
        "ongoing",
        now - TimeDelta::seconds(121),
        None,
        "",
    );

    let recorder = Recorder::default();
    let mut settings = AlertSettings::default();
    settings.max_runtime = Some(Duration::from_secs(120));
    monitor(&db, settings, &recorder)
        .evaluate(now)
        .await
        .expect("the rules are evaluated");
    let alerts = recorder.take();
    assert_eq!(
        by_command(&alerts),
        expect(&[
            ("over_ceiling", AlertKind::LongRunning),
            ("over_floor", AlertKind::LongRunning)
        ]),
        "{alerts:#?}"
    );
    let ceiling = alerts
        .iter()
        .find(|alert| alert.command == "over_ceiling")
        .expect("an alert for over_ceiling");
    assert_eq!(ceiling.threshold, Some(Duration::from_secs(120)));
    assert_eq!(ceiling.runs, 0);
}

async fn overdue_only_when_the_queue_is_idle(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let now = at(0);
    let store = db.store();
    let late = add(&db, "late", "idle").await;
    set_next_run(&db, &late, now - TimeDelta::seconds(121)).await;
    let nearly = add(&db, "nearly", "idle").await;
    set_next_run(&db, &nearly, now - TimeDelta::seconds(119)).await;
    // Waits behind a legitimate long run of another task of its queue.
    let waiting = add(&db, "waiting", "busy").await;
    set_next_run(&db, &waiting, now - TimeDelta::seconds(600)).await;
    let long = add(&db, "long_job", "busy").await;
    insert_execution(
        db.database(),
        &long,
        "ongoing",
        now - TimeDelta::seconds(10),
        None,
        "",
    );
    // Paused tasks are never overdue.
    let paused = add(&db, "paused", "idle").await;
    set_next_run(&db, &paused, now - TimeDelta::seconds(600)).await;
    store
        .pause_task(paused.id)
        .await
        .expect("the task is paused");

    let recorder = Recorder::default();
    monitor(&db, AlertSettings::default(), &recorder)
        .evaluate(now)
        .await
        .expect("the rules are evaluated");
    let alerts = recorder.take();
    assert_eq!(
        by_command(&alerts),
        expect(&[("late", AlertKind::Overdue)]),
        "{alerts:#?}"
    );
    assert_eq!(alerts[0].overdue, Some(Duration::from_secs(121)));
    assert_eq!(alerts[0].threshold, Some(Duration::from_secs(120)));

    // Once the long run ends, the task behind it is overdue.
    database_end_runs(db.database(), &long, now);
    monitor(&db, AlertSettings::default(), &recorder)
        .evaluate(now + TimeDelta::seconds(1))
        .await
        .expect("the rules are evaluated");
    let alerts = recorder.take();
    assert_eq!(
        by_command(&alerts),
        expect(&[("waiting", AlertKind::Overdue)]),
        "{alerts:#?}"
    );
}

/// Ends the ongoing runs of `task` with success.
fn database_end_runs(database: &TestDatabase, task: &Task, now: DateTime<Utc>) {
    database.execute_sql(&format!(
        "UPDATE quicksilver_executions SET status = 'success', ended = {}, runtime_seconds = 10 \
         WHERE task_id = {} AND status = 'ongoing'",
        quoted_time(now),
        task.id
    ));
}

async fn killed_stale_and_failed_runs(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let now = at(0);
    let ended = now - TimeDelta::seconds(5);
    let started = ended - TimeDelta::seconds(2);
    let killed = add(&db, "killed", "q").await;
    insert_execution(
        db.database(),
        &killed,
        "killed",
        started,
        Some(2.0),
        "working\nkilled: the run exceeded its max duration of 2s",
    );
    let stale = add(&db, "stale", "q").await;
    insert_execution(
        db.database(),
        &stale,
        "killed",
        started,
        Some(2.0),
        "killed: the runner of this execution sent no heartbeat for over 45s (found by runner x)",
    );
    let orphan = add(&db, "orphan", "q").await;
    insert_execution(
        db.database(),
        &orphan,
        "killed",
        started,
        Some(2.0),
        "killed: the runner that started this execution stopped before it ended",
    );
    let shutdown = add(&db, "shutdown", "q").await;
    insert_execution(db.database(), &shutdown, "killed", started, Some(2.0),
        "killed: the runner received SIGTERM and the run did not finish within the grace period of 20s");
    let failed = add(&db, "failed", "q").await;
    insert_execution(
        db.database(),
        &failed,
        "error",
        started,
        Some(2.0),
        "error: cannot sync the ledger",
    );
    let opted_in = add(&db, "opted_in", "q").await;
    db.database().execute_sql(&format!(
        "UPDATE quicksilver_tasks SET alert_on_failure = TRUE WHERE id = {}",
        opted_in.id
    ));
    insert_execution(
        db.database(),
        &opted_in,
        "error",
        started,
        Some(2.0),
        "error: disk full",
    );
    let opted_out = add(&db, "opted_out", "q").await;
    db.database().execute_sql(&format!(
        "UPDATE quicksilver_tasks SET alert_on_failure = FALSE WHERE id = {}",
        opted_out.id
    ));
    insert_execution(
        db.database(),
        &opted_out,
        "error",
        started,
        Some(2.0),
        "error: expected now and then",
    );

    // Failures alert only where the task opts in.
    let recorder = Recorder::default();
    monitor(&db, AlertSettings::default(), &recorder)
        .evaluate(now)
        .await
        .expect("the rules are evaluated");
    let alerts = recorder.take();
    assert_eq!(
        by_command(&alerts),
        expect(&[
            ("killed", AlertKind::Killed),
            ("opted_in", AlertKind::Failed),
            ("orphan", AlertKind::Stale),
            ("stale", AlertKind::Stale)
        ]),
        "{alerts:#?}"
    );
    let killed_alert = alerts
        .iter()
        .find(|alert| alert.command == "killed")
        .expect("an alert for killed");
    let output = killed_alert.output.as_deref().unwrap_or_default();
    assert!(output.contains("max duration of 2s"), "{output}");

    // With failures on for all, every task that does not opt out alerts.
    let mut settings = AlertSettings::default();
    settings.alert_on_failure = true;
    monitor(&db, settings, &recorder)
        .evaluate(now)
        .await
        .expect("the rules are evaluated");
    let alerts = recorder.take();
    assert_eq!(
        by_command(&alerts),
        expect(&[("failed", AlertKind::Failed)]),
        "{alerts:#?}"
    );
}

async fn one_alert_per_window_across_runners_and_restarts(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add(&db, "flaky", "default").await;
    let mut settings = AlertSettings::default();
    settings.alert_on_failure = true;
    settings.postpone = Duration::from_secs(60);
    let recorder = Recorder::default();
    // Two runners evaluate every second of clock time; the first restarts
    // halfway, which gives it a fresh monitor.
    let mut first = monitor(&db, settings.clone(), &recorder).host("first");
    let second = monitor(&db, settings.clone(), &recorder).host("second");
    for second_of_clock in 0..300 {
        let now = at(second_of_clock);
        insert_execution(
            db.database(),
            &task,
            "error",
            now - TimeDelta::milliseconds(500),
            Some(0.4),
            "error: the service answered 500",
        );
        if second_of_clock == 150 {
            first = monitor(&db, settings.clone(), &recorder).host("first");
        }
        let (a, b) = tokio::join!(first.evaluate(now), second.evaluate(now));
        a.expect("the first runner evaluates");
        b.expect("the second runner evaluates");
    }
    let alerts = recorder.take();
    let times: Vec<i64> = alerts
        .iter()
        .map(|alert| (alert.raised_at - at(0)).num_seconds())
        .collect();
    // A window starts at each alert and holds back failures until its end.
    assert_eq!(times, vec![0, 61, 122, 183, 244], "{alerts:#?}");
    assert!(alerts.iter().all(|alert| alert.kind == AlertKind::Failed));
    let postponed = db.task(task.id).await.alerts_postponed_until;
    assert_eq!(postponed, Some(at(244 + 60)));
}

async fn overdue_after_runner_start_or_resume(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let now = at(0);
    let store = db.store();
    // Both due ten minutes ago, on queues whose runner started 30 s ago
    // (a restart after downtime) and 300 s ago.
    for (command, queue) in [("restarted", "fresh"), ("stuck", "old")] {
        let task = add(&db, command, queue).await;
        set_next_run(&db, &task, now - TimeDelta::seconds(600)).await;
        force_updated_at(db.database(), &task, now - TimeDelta::seconds(3_600));
    }
    for (identity, queue, started) in [("host:1:a", "fresh", 30), ("host:2:b", "old", 300)] {
        db.database().execute_sql(&format!(
            "INSERT INTO quicksilver_runners (id, queue, host, pid, started_at, heartbeat_at) \
             VALUES ({}, {}, 'host', 1, {}, {})",
            sql_text(identity),
            sql_text(queue),
            quoted_time(now - TimeDelta::seconds(started)),
            quoted_time(now - TimeDelta::seconds(5)),
        ));
    }
    // Resumed 30 s ago, its next run long past, no runner: it waits from
    // the resume.
    let resumed = add(&db, "resumed", "none").await;
    set_next_run(&db, &resumed, now - TimeDelta::seconds(600)).await;
    force_updated_at(db.database(), &resumed, now - TimeDelta::seconds(30));

    let recorder = Recorder::default();
    monitor(&db, AlertSettings::default(), &recorder)
        .evaluate(now)
        .await
        .expect("the rules are evaluated");
    let alerts = recorder.take();
    assert_eq!(
        by_command(&alerts),
        expect(&[("stuck", AlertKind::Overdue)]),
        "{alerts:#?}"
    );
    assert_eq!(alerts[0].overdue, Some(Duration::from_secs(300)));
    // The same tasks in the status report.
    let report = quicksilver::status::report(store, &AlertSettings::default(), now)
        .await
        .expect("the report is made");
    let overdue: Vec<&str> = report
        .issues
        .iter()
        .map(|issue| issue.task.as_str())
        .collect();
    assert_eq!(overdue, vec!["stuck"], "{report:#?}");
}

/// Sets the `updated_at` of `task`, as if it last changed at `when`.
fn force_updated_at(database: &TestDatabase, task: &Task, when: DateTime<Utc>) {
    database.execute_sql(&format!(
        "UPDATE quicksilver_tasks SET updated_at = {} WHERE id = {}",
        quoted_time(when),
        task.id
    ));
}

async fn failing_sink_retried_later(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = add(&db, "report", "default").await;
    let now = at(0);
    insert_execution(
        db.database(),
        &task,
        "killed",
        now - TimeDelta::seconds(3),
        Some(2.0),
        "killed: the run exceeded its max duration of 2s",
    );
    let recorder = Recorder::default();
    recorder.fail(true);
    let steady = Recorder::default();
    let monitor = monitor(&db, AlertSettings::default(), &recorder).sink(steady.clone());
    let evaluation = monitor
        .evaluate(now)
        .await
        .expect("the rules are evaluated");
    assert_eq!(
        steady.take().len(),
        1,
        "the sink that works gets the alert at once"
    );
    assert!(evaluation.sent.is_empty());
    assert_eq!(evaluation.failed.len(), 1, "{evaluation:#?}");
    assert!(
        evaluation.failed[0].1.contains("rejects alerts"),
        "{evaluation:#?}"
    );
    assert_eq!(
        db.task(task.id).await.alerts_postponed_until,
        None,
        "a failed alert leaves the task's alerts free"
    );

    // The server stays down past the postponement window: the alert is
    // still tried, and the sink that took it is not given it again.
    let evaluation = monitor
        .evaluate(now + TimeDelta::minutes(20))
        .await
        .expect("the rules are evaluated");
    assert_eq!(evaluation.failed.len(), 1, "{evaluation:#?}");
    recorder.fail(false);
    let evaluation = monitor
        .evaluate(now + TimeDelta::minutes(40))
        .await
        .expect("the rules are evaluated");
    assert!(
        steady.take().is_empty(),
        "the working sink got the alert once"
    );
    assert_eq!(
        evaluation.sent.len(),
        1,
        "the alert is sent at the next evaluation"
    );
    assert_eq!(recorder.take()[0].kind, AlertKind::Killed);
}
