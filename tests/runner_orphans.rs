//! Orphans: an execution left `ongoing` by a runner that stopped without a
//! shutdown is recorded `killed` by the next runner of its queue, and its
//! task runs again.
//!
//! The first runner stops by having its tokio task aborted, which drops
//! the runner at its next await as a crash would, but keeps the process
//! and the database alive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use quicksilver::{Context, Execution, NewTask, Schedule, Status};
use support::{describe, with_status, BackgroundRunner, TestDb};

const WAIT: Duration = Duration::from_secs(5);

/// How many runs of `tracked_sleep` are going in this process.
static TRACKED_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The maximum number of runs of `tracked_sleep` seen going at once.
static TRACKED_MAX: AtomicUsize = AtomicUsize::new(0);

/// Counts a run of `tracked_sleep` from its start until it returns or is
/// dropped.
struct Tracked;

impl Tracked {
    fn start() -> Tracked {
        let running = TRACKED_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        TRACKED_MAX.fetch_max(running, Ordering::SeqCst);
        Tracked
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        TRACKED_RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[quicksilver::command]
async fn sleep_10s(ctx: &Context) {
    ctx.write_line("started");
    tokio::time::sleep(Duration::from_secs(10)).await;
    ctx.write_line("finished");
}

#[quicksilver::command]
async fn tracked_sleep(ctx: &Context) {
    let _tracked = Tracked::start();
    ctx.write_line("started");
    tokio::time::sleep(Duration::from_secs(10)).await;
}

fn every_second() -> Schedule {
    Schedule::every(1).expect("1 second is a valid interval")
}

/// Waits until the task with `task_id` has a run going and returns it.
async fn wait_for_ongoing(db: &TestDb, task_id: i64) -> Execution {
    let executions = db
        .wait_until(task_id, WAIT, "a run ongoing", |executions| {
            !with_status(executions, Status::Ongoing).is_empty()
        })
        .await;
    with_status(&executions, Status::Ongoing)[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_execution_is_killed_by_next_runner() {
    let db = TestDb::new().await;
    let task = db.add_task(NewTask::new("sleep_10s", every_second())).await;
    let other_queue = db
        .add_task(NewTask::new("sleep_10s", every_second()).queue("reports"))
        .await;
    let short_grace = Duration::from_millis(200);
    let reports = BackgroundRunner::start(db.runner("reports").grace_period(short_grace));
    let first = BackgroundRunner::start(db.runner("default"));
    let orphan = wait_for_ongoing(&db, task.id).await;
    let other = wait_for_ongoing(&db, other_queue.id).await;

    first.abort().await;
    let left = db.executions(task.id).await;
    assert_eq!(
        with_status(&left, Status::Ongoing).len(),
        1,
        "the aborted runner leaves its run ongoing:\n{}",
        describe(&left)
    );

    let second = BackgroundRunner::start(db.runner("default").grace_period(short_grace));
    let executions = db
        .wait_until(
            task.id,
            WAIT,
            "the orphan killed and a new run",
            |executions| {
                let killed = executions.iter().any(|execution| {
                    execution.id == orphan.id && execution.status == Status::Killed
                });
                let rerun = executions.iter().any(|execution| execution.id > orphan.id);
                killed && rerun
            },
        )
        .await;
    let other_now = db.executions(other_queue.id).await;
    second.stop().await;
    reports.stop().await;

    let listing = describe(&executions);
    let killed = executions
        .iter()
        .find(|execution| execution.id == orphan.id)
        .expect("the orphan is still recorded");
    let output = &killed.output;
    assert!(
        output.contains("the runner that started this execution stopped before it ended"),
        "the orphan's output says why it was killed: {output:?}"
    );
    assert!(
        killed.ended.is_some(),
        "the orphan has an end time:\n{listing}"
    );
    assert!(
        killed.runtime_seconds.is_some(),
        "the orphan has a run time:\n{listing}"
    );

    let still_going = other_now
        .iter()
        .find(|execution| execution.id == other.id)
        .expect("the other queue's run is recorded");
    assert_eq!(
        still_going.status,
        Status::Ongoing,
        "the run of another queue, whose runner is alive, stays ongoing:\n{}",
        describe(&other_now)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_run_stops_with_its_runner() {
    let db = TestDb::new().await;
    let task = db
        .add_task(NewTask::new("tracked_sleep", every_second()))
        .await;
    let first = BackgroundRunner::start(db.runner("default"));
    wait_for_ongoing(&db, task.id).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    first.abort().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running_after_abort = TRACKED_RUNNING.load(Ordering::SeqCst);

    // A second runner takes the task over. Had the first run survived its
    // runner, two runs of one task would now be going at once.
    let second = BackgroundRunner::start(
        db.runner("default")
            .grace_period(Duration::from_millis(200)),
    );
    let executions = db
        .wait_until(task.id, WAIT, "a second run", |executions| {
            executions.len() >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.stop().await;

    assert_eq!(
        running_after_abort, 0,
        "the command stops when its runner is dropped, instead of running on unrecorded"
    );
    assert_eq!(
        TRACKED_MAX.load(Ordering::SeqCst),
        1,
        "two runs of one task never go at once:\n{}",
        describe(&executions)
    );
}
