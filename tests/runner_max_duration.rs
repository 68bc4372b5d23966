//! Max duration: a run past its task's max duration, or the runner's
//! default one, is stopped and recorded `killed`, and the runner and the
//! task's schedule go on.

use std::time::Duration;

use chrono::TimeDelta;
use quicksilver::{Context, NewTask, Schedule, Status, StopReason};
use support::{
    describe, due_at, ended, millis, run_time, started, with_status, BackgroundRunner,
    TestDatabase, TestDb,
};

const WAIT: Duration = Duration::from_secs(10);

/// The time a killed run may take past its max duration. The runner gives
/// an aborted command 100 ms to emit its last events, and the rest is slack
/// for a loaded machine.
const KILL_SLACK: TimeDelta = TimeDelta::milliseconds(700);

#[quicksilver::command]
async fn sleep_10s(ctx: &Context) {
    ctx.write_line("started");
    tokio::time::sleep(Duration::from_secs(10)).await;
    ctx.write_line("finished");
}

#[quicksilver::command]
async fn heartbeat(ctx: &Context) {
    ctx.write_line("beat");
}

fn every(seconds: u64) -> Schedule {
    Schedule::every(seconds).expect("a valid interval")
}

/// Checks that `execution` was killed for its max duration of `seconds`,
/// soon after that much run time.
fn assert_killed_at_max(execution: &quicksilver::Execution, seconds: i64) {
    let output = &execution.output;
    let id = execution.id;
    assert_eq!(
        execution.status,
        Status::Killed,
        "execution {id} is killed: {output:?}"
    );
    assert!(
        output.contains(&format!("max duration of {seconds}s")),
        "execution {id} output names the max duration of {seconds}s: {output:?}"
    );
    assert!(
        output.starts_with("started\n"),
        "execution {id} output keeps what the command wrote before the kill: {output:?}"
    );
    assert!(
        !output.contains("finished"),
        "execution {id} was stopped before its command finished: {output:?}"
    );

    let limit = TimeDelta::seconds(seconds);
    let took = run_time(execution);
    assert!(
        took >= limit,
        "execution {id} ran {}, less than its max duration of {seconds}s",
        millis(took)
    );
    assert!(
        took <= limit + KILL_SLACK,
        "execution {id} ran {}, more than {} past its max duration of {seconds}s",
        millis(took),
        millis(KILL_SLACK)
    );
}

//   tick (3 s):  0           3           6 s
//   sleep_10s:   [killed at 1]  [killed at 4]
//   heartbeat:      x  x     x   x  x  ...   runs whenever the lane is free
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_past_max_duration_is_killed(database: TestDatabase);
}
async fn run_past_max_duration_is_killed(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let sleeper = db
        .add_task(NewTask::new("sleep_10s", every(3)).max_duration(Duration::from_secs(1)))
        .await;
    let beating = db.add_task(NewTask::new("heartbeat", every(1))).await;
    let runner = BackgroundRunner::start(db.runner("default").concurrency(1));

    let killed = db
        .wait_for_status(sleeper.id, Status::Killed, 2, WAIT)
        .await;
    let killed = with_status(&killed, Status::Killed);
    let first_kill_ended = ended(killed[0]);
    let beats = db
        .wait_until(
            beating.id,
            WAIT,
            "a success after the first kill",
            |executions| {
                with_status(executions, Status::Success)
                    .iter()
                    .any(|execution| started(execution) >= first_kill_ended)
            },
        )
        .await;
    let reason = runner.stop().await;
    assert_eq!(reason, StopReason::Shutdown, "stop reason");

    assert_killed_at_max(killed[0], 1);
    assert_killed_at_max(killed[1], 1);
    let listing = describe(&killed);
    assert_eq!(
        due_at(killed[1]) - due_at(killed[0]),
        TimeDelta::seconds(3),
        "the killed task runs again at its next tick:\n{listing}"
    );
    let stored = db.task(sleeper.id).await;
    assert!(!stored.paused, "the killed task is not paused: {stored:?}");

    // The wait above proves that the heartbeat ran after the kill. No
    // heartbeat may have failed meanwhile either.
    let beat_listing = describe(&beats);
    assert_eq!(
        with_status(&beats, Status::Error).len(),
        0,
        "no heartbeat failed:\n{beat_listing}"
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn default_max_duration_applies_to_tasks_without_one(database: TestDatabase);
}
async fn default_max_duration_applies_to_tasks_without_one(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let unlimited = db.add_task(NewTask::new("sleep_10s", every(60))).await;
    let limited = db
        .add_task(NewTask::new("sleep_10s", every(60)).max_duration(Duration::from_secs(2)))
        .await;
    let quick = db.add_task(NewTask::new("heartbeat", every(60))).await;
    let builder = db
        .runner("default")
        .concurrency(3)
        .default_max_duration(Duration::from_secs(1));
    let runner = BackgroundRunner::start(builder);

    let by_default = db
        .wait_for_status(unlimited.id, Status::Killed, 1, WAIT)
        .await;
    let by_task = db
        .wait_for_status(limited.id, Status::Killed, 1, WAIT)
        .await;
    let beats = db.wait_for_status(quick.id, Status::Success, 1, WAIT).await;
    runner.stop().await;

    assert_killed_at_max(&by_default[0], 1);
    assert_killed_at_max(&by_task[0], 2);
    assert_eq!(
        beats[0].status,
        Status::Success,
        "a run within the default max duration succeeds: {:?}",
        beats[0].output
    );
}

#[quicksilver::command]
async fn block_thread_4s(ctx: &Context) {
    ctx.write_line("blocking");
    // Deliberately blocks a worker thread, as careless commands do.
    std::thread::sleep(Duration::from_secs(4));
}

// Two runs block both worker threads of the host's runtime for 4 s. The
// runner's own loop runs on a thread of its own, so it still records each
// run `killed` at its max duration of 1 s instead of `success` at 4 s.
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thread_blocking_runs_killed_on_time(database: TestDatabase);
}
async fn thread_blocking_runs_killed_on_time(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let first = db
        .add_task(NewTask::new("block_thread_4s", every(60)).max_duration(Duration::from_secs(1)))
        .await;
    let second = db
        .add_task(NewTask::new("block_thread_4s", every(60)).max_duration(Duration::from_secs(1)))
        .await;
    let runner = BackgroundRunner::start(db.runner("default").concurrency(3));

    let first_runs = db.wait_for_status(first.id, Status::Killed, 1, WAIT).await;
    let second_runs = db.wait_for_status(second.id, Status::Killed, 1, WAIT).await;
    runner.stop().await;

    for execution in [&first_runs[0], &second_runs[0]] {
        let took = run_time(execution);
        assert!(
            took < TimeDelta::seconds(1) + KILL_SLACK,
            "execution {} was recorded after {}, not at its max duration of 1s:\n{}",
            execution.id,
            millis(took),
            describe(std::slice::from_ref(execution))
        );
    }
}
