//! Orphans: an execution left `ongoing` by a runner that stopped without a
//! shutdown is recorded `killed` by the next runner of its queue, and its
//! task runs again.
//!
//! The first runner stops by having its tokio task aborted, which drops
//! the runner at its next await as a crash would, but keeps the process
//! and the database alive.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use quicksilver::{Context, Execution, NewTask, Schedule, Status};
use support::{describe, with_status, BackgroundRunner, TestDatabase, TestDb};

const WAIT: Duration = Duration::from_secs(5);

/// The runs of `tracked_sleep` in this process, by the `--tracker` name that
/// each test gives its task, so that the tests of the backends, which run
/// at the same time, count apart.
static TRACKERS: Mutex<BTreeMap<String, RunCount>> = Mutex::new(BTreeMap::new());

/// How many runs of one tracker are going, and the maximum seen at once.
#[derive(Clone, Copy, Debug, Default)]
struct RunCount {
    running: usize,
    max: usize,
}

/// Returns the run count of `tracker` after `update` changed it.
fn update_tracker(tracker: &str, update: impl FnOnce(&mut RunCount)) -> RunCount {
    let mut trackers = TRACKERS.lock().unwrap_or_else(PoisonError::into_inner);
    let count = trackers.entry(tracker.to_owned()).or_default();
    update(count);
    *count
}

/// Counts a run of `tracked_sleep` from its start until it returns or is
/// dropped.
struct Tracked {
    tracker: String,
}

impl Tracked {
    fn start(tracker: &str) -> Tracked {
        update_tracker(tracker, |count| {
            count.running += 1;
            count.max = count.max.max(count.running);
        });
        Tracked {
            tracker: tracker.to_owned(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        update_tracker(&self.tracker, |count| count.running -= 1);
    }
}

#[derive(Debug, clap::Parser)]
struct TrackedArguments {
    /// The name that the runs are counted under.
    #[arg(long)]
    tracker: String,
}

#[quicksilver::command]
async fn sleep_10s(ctx: &Context) {
    ctx.write_line("started");
    tokio::time::sleep(Duration::from_secs(10)).await;
    ctx.write_line("finished");
}

#[quicksilver::command]
async fn tracked_sleep(ctx: &Context, arguments: TrackedArguments) {
    let _tracked = Tracked::start(&arguments.tracker);
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

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_execution_is_killed_by_next_runner(database: TestDatabase);
}
async fn abandoned_execution_is_killed_by_next_runner(database: TestDatabase) {
    let db = TestDb::open(database).await;
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

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_run_stops_with_its_runner(database: TestDatabase);
}
async fn abandoned_run_stops_with_its_runner(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let tracker = db.backend().name();
    let task = db
        .add_task(NewTask::new("tracked_sleep", every_second()).arguments(["--tracker", tracker]))
        .await;
    let first = BackgroundRunner::start(db.runner("default"));
    wait_for_ongoing(&db, task.id).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    first.abort().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running_after_abort = update_tracker(tracker, |_| {}).running;

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
        update_tracker(tracker, |_| {}).max,
        1,
        "two runs of one task never go at once:\n{}",
        describe(&executions)
    );
}
