//! Graceful stops of a runner in this process, after its shutdown future
//! completes or once its restart time has passed. The runner stops claiming
//! and lets running executions finish. It records as `killed` those still
//! going when the grace period ends, and returns why it stopped.

use std::time::{Duration, Instant};

use chrono::Utc;
use quicksilver::{Context, Execution, NewTask, Schedule, Status, StopReason};
use support::{describe, ended, with_status, BackgroundRunner, TestDatabase, TestDb};

const WAIT: Duration = Duration::from_secs(5);

#[quicksilver::command]
async fn sleep_2s(ctx: &Context) {
    ctx.write_line("started");
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctx.write_line("finished");
}

#[quicksilver::command]
async fn sleep_10s(ctx: &Context) {
    ctx.write_line("started");
    tokio::time::sleep(Duration::from_secs(10)).await;
    ctx.write_line("finished");
}

fn every_second() -> Schedule {
    Schedule::every(1).expect("1 second is a valid interval")
}

/// Waits until the task with `task_id` has a run going.
async fn wait_for_ongoing(db: &TestDb, task_id: i64) {
    db.wait_until(task_id, WAIT, "a run ongoing", |executions| {
        !with_status(executions, Status::Ongoing).is_empty()
    })
    .await;
}

/// Checks that no execution in the database is left `ongoing`.
fn assert_none_ongoing(executions: &[Execution]) {
    assert_eq!(
        with_status(executions, Status::Ongoing).len(),
        0,
        "no execution is left ongoing:\n{}",
        describe(executions)
    );
}

/// Checks that `execution` was killed when a grace period of `grace` ran
/// out.
fn assert_killed_by_grace(execution: &Execution, grace: &str) {
    let output = &execution.output;
    assert_eq!(
        execution.status,
        Status::Killed,
        "execution {} is killed: {output:?}",
        execution.id
    );
    assert!(
        output.contains(&format!("grace period of {grace}")),
        "execution {} output names the grace period of {grace}: {output:?}",
        execution.id
    );
    assert!(
        output.starts_with("started\n"),
        "execution {} output keeps what the command wrote: {output:?}",
        execution.id
    );
    assert!(
        !output.contains("finished"),
        "execution {} was stopped before its command finished: {output:?}",
        execution.id
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_lets_run_finish_within_grace(database: TestDatabase);
}
async fn shutdown_lets_run_finish_within_grace(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("sleep_2s", every_second())).await;
    let builder = db.runner("default").grace_period(Duration::from_secs(10));
    let runner = BackgroundRunner::start(builder);
    wait_for_ongoing(&db, task.id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stop_started = Instant::now();
    let reason = runner.stop().await;
    let stop_took = stop_started.elapsed();
    assert_eq!(reason, StopReason::Shutdown, "stop reason");
    assert!(
        stop_took < Duration::from_millis(2500),
        "the runner returned {stop_took:?} after the shutdown, not when the run ended"
    );

    let executions = db.all_executions().await;
    let listing = describe(&executions);
    assert_eq!(
        executions.len(),
        1,
        "no run starts after the shutdown, though the task is due every second:\n{listing}"
    );
    let output = &executions[0].output;
    assert_eq!(
        executions[0].status,
        Status::Success,
        "the run finished within the grace period:\n{listing}"
    );
    assert!(
        output.contains("finished"),
        "the command ran to its end: {output:?}"
    );
    assert_none_ongoing(&executions);
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_past_grace_kills_run(database: TestDatabase);
}
async fn shutdown_past_grace_kills_run(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("sleep_2s", every_second())).await;
    let builder = db
        .runner("default")
        .grace_period(Duration::from_millis(200));
    let runner = BackgroundRunner::start(builder);
    wait_for_ongoing(&db, task.id).await;

    let stop_started = Instant::now();
    let reason = runner.stop().await;
    let stop_took = stop_started.elapsed();
    assert_eq!(reason, StopReason::Shutdown, "stop reason");
    assert!(
        stop_took < Duration::from_secs(1),
        "the runner returned {stop_took:?} after the shutdown, with a grace period of 200 ms"
    );

    let executions = db.all_executions().await;
    assert_eq!(executions.len(), 1, "one run:\n{}", describe(&executions));
    assert_killed_by_grace(&executions[0], "0.2s");
    assert_none_ongoing(&executions);
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restart_after_finishes_current_run(database: TestDatabase);
}
async fn restart_after_finishes_current_run(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("sleep_2s", every_second())).await;
    let builder = db
        .runner("default")
        .restart_after(Duration::from_secs(1))
        .grace_period(Duration::from_millis(200));
    let started_at = Instant::now();
    let runner = BackgroundRunner::start(builder);

    let reason = runner.join(Duration::from_secs(10)).await;
    let returned_at = Utc::now();
    let ran_for = started_at.elapsed();
    assert_eq!(reason, StopReason::RestartDue, "stop reason");
    assert!(
        ran_for >= Duration::from_secs(2),
        "the runner returned after {ran_for:?}, before its 2 s run could end"
    );

    let executions = db.executions(task.id).await;
    let listing = describe(&executions);
    assert_eq!(
        executions.len(),
        1,
        "no run starts once the restart is due:\n{listing}"
    );
    assert_eq!(
        executions[0].status,
        Status::Success,
        "the run started before the restart time finishes, past the grace period:\n{listing}"
    );
    assert!(
        ended(&executions[0]) <= returned_at,
        "the runner returned before the run ended:\n{listing}"
    );
    assert_none_ongoing(&executions);
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_during_restart_applies_grace(database: TestDatabase);
}
async fn shutdown_during_restart_applies_grace(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("sleep_10s", every_second())).await;
    let builder = db
        .runner("default")
        .restart_after(Duration::from_millis(500))
        .grace_period(Duration::from_millis(200));
    let runner = BackgroundRunner::start(builder);
    wait_for_ongoing(&db, task.id).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !runner.is_finished(),
        "the runner waits for the run after its restart time"
    );

    let reason = runner.stop().await;
    assert_eq!(
        reason,
        StopReason::Shutdown,
        "a shutdown during the wait for a restart is the stop reason"
    );
    let executions = db.all_executions().await;
    assert_eq!(executions.len(), 1, "one run:\n{}", describe(&executions));
    assert_killed_by_grace(&executions[0], "0.2s");
    assert_none_ongoing(&executions);
}
