//! A command that returns its own next run overrides the task's schedule
//! for that run.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::{Context, NewTask, NextRun, Schedule, Status};
use support::{
    describe, due_at, ended, millis, started, with_status, BackgroundRunner, TestDatabase, TestDb,
};

const WAIT: Duration = Duration::from_secs(10);

/// The largest accepted delay between a due time and the start of its run.
const MAX_LATENESS: TimeDelta = TimeDelta::milliseconds(200);

/// The largest accepted difference between the end of a run and the time
/// that its command computed its next run from.
const END_SLACK: TimeDelta = TimeDelta::milliseconds(100);

#[quicksilver::command]
async fn defer_3s(ctx: &Context) -> NextRun {
    ctx.write_line("deferring");
    NextRun::After(Duration::from_secs(3))
}

#[quicksilver::command]
async fn rerun_at(ctx: &Context) -> Result<NextRun, std::io::Error> {
    let due = ctx
        .due_at()
        .ok_or_else(|| std::io::Error::other("a runner's run has a due time"))?;
    Ok(NextRun::At(due + TimeDelta::milliseconds(2500)))
}

#[quicksilver::command]
async fn defer_forever(ctx: &Context) -> NextRun {
    ctx.write_line("deferring forever");
    NextRun::After(Duration::MAX)
}

/// Runs once, then asks never to run again.
#[quicksilver::command]
async fn run_once(ctx: &Context) -> NextRun {
    ctx.write_line("done for good");
    NextRun::At(DateTime::<Utc>::MAX_UTC)
}

#[quicksilver::command]
async fn heartbeat(ctx: &Context) {
    ctx.write_line("beat");
}

fn every_second() -> Schedule {
    Schedule::every(1).expect("1 second is a valid interval")
}

//   schedule:  0  1  2  3  4  5  6 s   (every second)
//   runs:      x        x        x     (each 3 s after the previous ended)
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn next_run_after_delays_from_end_of_run(database: TestDatabase);
}
async fn next_run_after_delays_from_end_of_run(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("defer_3s", every_second())).await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db.wait_for_status(task.id, Status::Success, 3, WAIT).await;
    runner.stop().await;
    let listing = describe(&executions);
    let successes = with_status(&executions, Status::Success);
    assert_eq!(
        successes.len(),
        executions.len(),
        "every run succeeds:\n{listing}"
    );

    for pair in successes.windows(2) {
        let (previous, next) = (pair[0], pair[1]);
        let requested = ended(previous) + TimeDelta::seconds(3);
        let offset = due_at(next) - requested;
        assert!(
            offset.abs() <= END_SLACK,
            "execution {} is due {} away from 3 s after execution {} ended:\n{listing}",
            next.id,
            millis(offset),
            previous.id
        );
        let lateness = started(next) - due_at(next);
        assert!(
            lateness >= TimeDelta::zero() && lateness <= MAX_LATENESS,
            "execution {} started {} after its due time:\n{listing}",
            next.id,
            millis(lateness)
        );
        let gap = started(next) - ended(previous);
        assert!(
            gap >= TimeDelta::milliseconds(2900),
            "execution {} started {} after execution {} ended, not 3 s:\n{listing}",
            next.id,
            millis(gap),
            previous.id
        );
    }
}

//   schedule:  0  1  2  3  4  5 s        (every second)
//   runs:      x       x       x         (each at the time the previous one returned)
//              0      2.5      5
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn next_run_at_sets_exact_due_time(database: TestDatabase);
}
async fn next_run_at_sets_exact_due_time(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db.add_task(NewTask::new("rerun_at", every_second())).await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db.wait_for_status(task.id, Status::Success, 3, WAIT).await;
    runner.stop().await;
    let listing = describe(&executions);
    let successes = with_status(&executions, Status::Success);
    assert_eq!(
        successes.len(),
        executions.len(),
        "every run succeeds:\n{listing}"
    );

    for pair in successes.windows(2) {
        let (previous, next) = (pair[0], pair[1]);
        assert_eq!(
            due_at(next) - due_at(previous),
            TimeDelta::milliseconds(2500),
            "execution {} is due at the time execution {} returned:\n{listing}",
            next.id,
            previous.id
        );
        let lateness = started(next) - due_at(next);
        assert!(
            lateness >= TimeDelta::zero() && lateness <= MAX_LATENESS,
            "execution {} started {} after its due time:\n{listing}",
            next.id,
            millis(lateness)
        );
    }
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn next_run_after_huge_delay_is_recorded(database: TestDatabase);
}
async fn next_run_after_huge_delay_is_recorded(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let task = db
        .add_task(NewTask::new("defer_forever", every_second()))
        .await;
    let runner = BackgroundRunner::start(db.runner("default"));

    let executions = db
        .wait_until(task.id, WAIT, "a finished run", |executions| {
            executions
                .iter()
                .any(|execution| execution.status != Status::Ongoing)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = db.executions(task.id).await;
    runner.stop().await;

    let listing = describe(&executions);
    assert_eq!(
        executions[0].status,
        Status::Success,
        "a run that asks for a next run past the calendar's end succeeds:\n{listing}"
    );
    assert_eq!(
        later.len(),
        1,
        "the task does not run again within 1.5 s:\n{}",
        describe(&later)
    );
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_that_never_recurs_leaves_queue_running(database: TestDatabase);
}
async fn task_that_never_recurs_leaves_queue_running(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let once = db.add_task(NewTask::new("run_once", every_second())).await;
    let beating = db.add_task(NewTask::new("heartbeat", every_second())).await;
    let runner = BackgroundRunner::start(db.runner("default"));

    db.wait_for_status(once.id, Status::Success, 1, WAIT).await;
    let beats_before = db.executions(beating.id).await.len();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let beats = db.executions(beating.id).await;
    let once_runs = db.executions(once.id).await;
    runner.stop().await;

    assert_eq!(
        once_runs.len(),
        1,
        "the task that asked never to run again ran once:\n{}",
        describe(&once_runs)
    );
    let new_beats = beats.len() - beats_before;
    assert!(
        new_beats >= 3,
        "the other task of the queue ran {new_beats} times in the 3.5 s after, not every second:\n{}",
        describe(&beats)
    );
}
