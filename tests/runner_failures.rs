//! Failures: a command that returns an error or panics, a task naming a
//! command that does not exist, and arguments the command rejects are each
//! recorded as `error`, and the runner and the task's schedule go on.

use std::time::Duration;

use quicksilver::{Context, NewTask, Schedule, Status, StopReason};
use support::{describe, due_at, with_status, BackgroundRunner, TestDatabase, TestDb};

const WAIT: Duration = Duration::from_secs(8);

#[derive(Debug, thiserror::Error)]
#[error("cannot sync the ledger")]
struct SyncError {
    #[source]
    source: std::io::Error,
}

#[quicksilver::command]
async fn sync_ledger(_ctx: &Context) -> Result<(), SyncError> {
    Err(SyncError {
        source: std::io::Error::other("connection reset by peer"),
    })
}

#[quicksilver::command]
async fn index_ledger(ctx: &Context) {
    ctx.write_line("indexing");
    let position = 7;
    panic!("ledger index out of range: {position}");
}

#[quicksilver::command]
async fn heartbeat(ctx: &Context) {
    ctx.write_line("beat");
}

#[derive(Debug, clap::Parser)]
struct ResizeArguments {
    #[arg(long)]
    width: u32,
}

#[quicksilver::command]
async fn resize(ctx: &Context, arguments: ResizeArguments) {
    ctx.write_line(format!("width {}", arguments.width));
}

fn every_second() -> Schedule {
    Schedule::every(1).expect("1 second is a valid interval")
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn error_and_panic_are_recorded(database: TestDatabase);
}
async fn error_and_panic_are_recorded(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let failing = db
        .add_task(NewTask::new("sync_ledger", every_second()))
        .await;
    let panicking = db
        .add_task(NewTask::new("index_ledger", every_second()))
        .await;
    let healthy = db.add_task(NewTask::new("heartbeat", every_second())).await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let failed = db.wait_for_status(failing.id, Status::Error, 2, WAIT).await;
    let panicked = db
        .wait_for_status(panicking.id, Status::Error, 2, WAIT)
        .await;
    let beats = db
        .wait_for_status(healthy.id, Status::Success, 3, WAIT)
        .await;
    let reason = runner.stop().await;
    assert_eq!(reason, StopReason::Shutdown, "stop reason");

    for execution in with_status(&failed, Status::Error) {
        let output = &execution.output;
        assert!(
            output.contains("error: cannot sync the ledger"),
            "execution {} output has the error: {output:?}",
            execution.id
        );
        assert!(
            output.contains("\ncaused by: connection reset by peer"),
            "execution {} output has the cause on its own line: {output:?}",
            execution.id
        );
        assert_eq!(
            output.matches("connection reset by peer").count(),
            1,
            "execution {} output has the cause once: {output:?}",
            execution.id
        );
    }

    for execution in with_status(&panicked, Status::Error) {
        let output = &execution.output;
        assert!(
            output.contains("ledger index out of range: 7"),
            "execution {} output has the panic message: {output:?}",
            execution.id
        );
        assert!(
            output.contains("panicked"),
            "execution {} output says the command panicked: {output:?}",
            execution.id
        );
        assert!(
            output.starts_with("indexing\n"),
            "execution {} output keeps what the command wrote before the panic: {output:?}",
            execution.id
        );
    }

    let beat_listing = describe(&beats);
    let successes = with_status(&beats, Status::Success);
    let last_panic = with_status(&panicked, Status::Error)
        .into_iter()
        .map(due_at)
        .max()
        .expect("the panicking task ran");
    assert!(
        successes
            .iter()
            .any(|execution| due_at(execution) > last_panic),
        "the healthy task keeps succeeding after the last panic at {last_panic}:\n{beat_listing}"
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_command_is_error_and_keeps_schedule(database: TestDatabase);
}
async fn unknown_command_is_error_and_keeps_schedule(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db
        .add_task(NewTask::new("no_such_command", every_second()))
        .await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db.wait_for_status(task.id, Status::Error, 2, WAIT).await;
    runner.stop().await;
    let listing = describe(&executions);

    let errors = with_status(&executions, Status::Error);
    let output = &errors[0].output;
    assert!(
        output.contains(&format!("task {}", task.id)),
        "output names the task: {output:?}"
    );
    assert!(
        output.contains("`no_such_command`"),
        "output names the command: {output:?}"
    );
    assert!(
        output.contains("#[quicksilver::command]"),
        "output says how to register the command: {output:?}"
    );
    assert!(
        output.contains(&format!("tasks edit {} --command", task.id)),
        "output says how to change the task's command: {output:?}"
    );

    assert_eq!(
        due_at(errors[1]) - due_at(errors[0]),
        chrono::TimeDelta::seconds(1),
        "the second run is at the next tick:\n{listing}"
    );
    let stored = db.task(task.id).await;
    assert!(!stored.paused, "the task is not paused: {stored:?}");
    let last_due = executions.iter().map(due_at).max().expect("executions");
    assert!(
        stored.next_run > last_due,
        "the next run {} is after the last tick served {last_due}",
        stored.next_run
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_arguments_are_error_with_clap_message(database: TestDatabase);
}
async fn invalid_arguments_are_error_with_clap_message(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let invalid_value = db
        .add_task(NewTask::new("resize", every_second()).arguments(["--width", "wide"]))
        .await;
    let unknown_flag = db
        .add_task(
            NewTask::new("resize", every_second()).arguments(["--width", "3", "--height", "4"]),
        )
        .await;
    let unexpected = db
        .add_task(NewTask::new("heartbeat", every_second()).arguments(["now"]))
        .await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let cases = [
        (
            invalid_value.id,
            "invalid value 'wide' for '--width <WIDTH>'",
        ),
        (unknown_flag.id, "unexpected argument '--height'"),
        (unexpected.id, "takes no arguments"),
    ];
    for (task_id, message) in cases {
        let executions = db.wait_for_status(task_id, Status::Error, 2, WAIT).await;
        let listing = describe(&executions);
        for execution in with_status(&executions, Status::Error) {
            let output = &execution.output;
            assert!(
                output.contains(message),
                "task {task_id}: execution {} output has {message:?}: {output:?}",
                execution.id
            );
            assert!(
                output.contains(&format!("tasks edit {task_id} --arguments")),
                "task {task_id}: execution {} output says how to fix the arguments: {output:?}",
                execution.id
            );
        }
        let stored = db.task(task_id).await;
        assert!(!stored.paused, "task {task_id} is not paused:\n{listing}");
    }
    runner.stop().await;
}
