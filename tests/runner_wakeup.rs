//! Wake-ups: a runner that sleeps up to 30 s between checks still starts a
//! task at once when the task is added, made due or resumed through the
//! same store, and never starts a paused task.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use quicksilver::{Context, NewTask, Schedule, Status};
use support::{describe, millis, started, BackgroundRunner, TestDatabase, TestDb};

/// Far longer than any wait of these tests, so that only a wake-up can
/// start a task in time.
const SLEEP_DURATION: Duration = Duration::from_secs(30);

/// The largest accepted delay between a change and the start of the run it
/// causes.
const MAX_DELAY: TimeDelta = TimeDelta::milliseconds(200);

/// How long the tests let the runner settle into its sleep.
const SETTLE: Duration = Duration::from_millis(300);

const WAIT: Duration = Duration::from_secs(5);

#[quicksilver::command]
async fn heartbeat(ctx: &Context) {
    ctx.write_line("beat");
}

fn hourly() -> Schedule {
    Schedule::every(3600).expect("1 hour is a valid interval")
}

fn start_sleepy_runner(db: &TestDb) -> BackgroundRunner {
    BackgroundRunner::start(db.runner("default").sleep_duration(SLEEP_DURATION))
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn added_task_wakes_runner(database: TestDatabase);
}
async fn added_task_wakes_runner(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let runner = start_sleepy_runner(&db);
    tokio::time::sleep(SETTLE).await;

    let added_at = Utc::now();
    let task = db.add_task(NewTask::new("heartbeat", hourly())).await;
    let executions = db.wait_for_status(task.id, Status::Success, 1, WAIT).await;
    runner.stop().await;

    let delay = started(&executions[0]) - added_at;
    assert!(
        delay <= MAX_DELAY,
        "the added task started {} after it was added:\n{}",
        millis(delay),
        describe(&executions)
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn change_during_claim_wakes_runner(database: TestDatabase);
}
async fn change_during_claim_wakes_runner(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let runner = start_sleepy_runner(&db);
    tokio::time::sleep(SETTLE).await;

    // Adding a task due in an hour wakes the runner, which finds nothing
    // due and goes back to sleep. A due task added while it looks must wake
    // it again, or it waits for the next check, 30 s later. The pause
    // between the two changes varies by a few microseconds, so that the
    // second one lands at different points of the runner's check.
    let later = Utc::now() + TimeDelta::hours(1);
    for attempt in 0..100_u64 {
        db.add_task(NewTask::new("heartbeat", hourly()).next_run(later))
            .await;
        for _ in 0..attempt % 20 {
            tokio::task::yield_now().await;
        }
        let added_at = Utc::now();
        let due = db.add_task(NewTask::new("heartbeat", hourly())).await;

        let expected =
            format!("attempt {attempt}: a run of the task added while the runner looked");
        let executions = db
            .wait_until(due.id, WAIT, &expected, |executions| !executions.is_empty())
            .await;
        let delay = started(&executions[0]) - added_at;
        assert!(
            delay <= MAX_DELAY,
            "attempt {attempt}: task {} started {} after it was added:\n{}",
            due.id,
            millis(delay),
            describe(&executions)
        );
    }
    runner.stop().await;
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_task_now_wakes_runner(database: TestDatabase);
}
async fn run_task_now_wakes_runner(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let later = Utc::now() + TimeDelta::hours(1);
    let task = db
        .add_task(NewTask::new("heartbeat", hourly()).next_run(later))
        .await;
    let runner = start_sleepy_runner(&db);
    tokio::time::sleep(SETTLE).await;
    assert!(
        db.executions(task.id).await.is_empty(),
        "the task does not run before its next run"
    );

    let requested_at = Utc::now();
    db.store()
        .run_task_now(task.id)
        .await
        .expect("make the task due now");
    let executions = db.wait_for_status(task.id, Status::Success, 1, WAIT).await;
    runner.stop().await;

    let delay = started(&executions[0]) - requested_at;
    assert!(
        delay <= MAX_DELAY,
        "the task started {} after `run_task_now`:\n{}",
        millis(delay),
        describe(&executions)
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paused_task_runs_only_when_resumed(database: TestDatabase);
}
async fn paused_task_runs_only_when_resumed(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db
        .add_task(NewTask::new("heartbeat", hourly()).paused(true))
        .await;
    let runner = start_sleepy_runner(&db);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let while_paused = db.executions(task.id).await;
    assert!(
        while_paused.is_empty(),
        "a paused task that is due does not run:\n{}",
        describe(&while_paused)
    );
    db.store()
        .run_task_now(task.id)
        .await
        .expect("make the paused task due now");
    tokio::time::sleep(SETTLE).await;
    let after_run_now = db.executions(task.id).await;
    assert!(
        after_run_now.is_empty(),
        "`run_task_now` does not start a paused task:\n{}",
        describe(&after_run_now)
    );

    let resumed_at = Utc::now();
    db.store()
        .resume_task(task.id)
        .await
        .expect("resume the task");
    let executions = db.wait_for_status(task.id, Status::Success, 1, WAIT).await;
    runner.stop().await;

    let delay = started(&executions[0]) - resumed_at;
    assert!(
        delay <= MAX_DELAY,
        "the resumed task started {} after `resume_task`:\n{}",
        millis(delay),
        describe(&executions)
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pausing_stops_a_repeating_task(database: TestDatabase);
}
async fn pausing_stops_a_repeating_task(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let schedule = Schedule::every(1).expect("1 second is a valid interval");
    let task = db.add_task(NewTask::new("heartbeat", schedule)).await;
    let runner = start_sleepy_runner(&db);

    db.wait_for_status(task.id, Status::Success, 2, WAIT).await;
    db.store()
        .pause_task(task.id)
        .await
        .expect("pause the task");
    let at_pause = db.executions(task.id).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let executions = db.executions(task.id).await;
    runner.stop().await;

    assert_eq!(
        executions.len(),
        at_pause,
        "no run starts in the 2.5 s after the pause:\n{}",
        describe(&executions)
    );
}
