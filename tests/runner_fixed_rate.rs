//! Fixed-rate repeats: a task every second runs on the grid of its first
//! due time, starts close to each tick, and does not drift by its run time.

use std::time::Duration;

use chrono::TimeDelta;
use quicksilver::{Context, NewTask, Schedule, Status};
use support::{due_at, millis, started, with_status, BackgroundRunner, TestDatabase, TestDb};

/// How long each run takes, so that a runner that schedules from the end
/// of the previous run would drift by this much each time.
const RUN_TIME: Duration = Duration::from_millis(300);

/// The largest accepted delay between a tick and the start of its run.
const MAX_LATENESS: TimeDelta = TimeDelta::milliseconds(200);

#[quicksilver::command]
async fn sleep_300ms(_ctx: &Context) {
    tokio::time::sleep(RUN_TIME).await;
}

//   tick:   0s     1s     2s     3s   ...   9s
//   run:    [--]   [--]   [--]   [--]       [--]     each 300 ms long
//   due_at: t0     t0+1s  t0+2s  t0+3s      t0+9s    whatever the run time
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_second_runs_on_grid_without_drift(database: TestDatabase);
}
async fn every_second_runs_on_grid_without_drift(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let schedule = Schedule::every(1).expect("1 second is a valid interval");
    let task = db.add_task(NewTask::new("sleep_300ms", schedule)).await;
    let runner = BackgroundRunner::start(db.runner("default"));

    tokio::time::sleep(Duration::from_secs(10)).await;
    let reason = runner.stop().await;
    assert_eq!(reason, quicksilver::StopReason::Shutdown, "stop reason");

    let executions = db.executions(task.id).await;
    let listing = support::describe(&executions);
    let successes = with_status(&executions, Status::Success);
    assert_eq!(
        successes.len(),
        executions.len(),
        "every run succeeds:\n{listing}"
    );
    assert!(
        (9..=11).contains(&successes.len()),
        "9 to 11 runs in 10 s, got {}:\n{listing}",
        successes.len()
    );

    let first_due = due_at(&executions[0]);
    let mut max_lateness = TimeDelta::zero();
    for (index, execution) in executions.iter().enumerate() {
        let due = due_at(execution);
        let offset = due - first_due;
        assert_eq!(
            offset,
            TimeDelta::seconds(i64::try_from(index).expect("few executions")),
            "run {index} (execution {}) serves tick {index} of the first due time {first_due}, \
             so no tick is skipped and none is shifted by the run time:\n{listing}",
            execution.id
        );

        let lateness = started(execution) - due;
        assert!(
            lateness >= TimeDelta::zero(),
            "execution {} started {} before its due time:\n{listing}",
            execution.id,
            millis(-lateness)
        );
        assert!(
            lateness <= MAX_LATENESS,
            "execution {} started {} after its due time, more than {}:\n{listing}",
            execution.id,
            millis(lateness),
            millis(MAX_LATENESS)
        );
        max_lateness = max_lateness.max(lateness);

        let runtime = execution.runtime_seconds.unwrap_or_default();
        assert!(
            runtime >= RUN_TIME.as_secs_f64(),
            "execution {} ran for {runtime} s, less than the command's {RUN_TIME:?}:\n{listing}",
            execution.id
        );
    }

    let tenth_due = due_at(&executions[9]);
    assert_eq!(
        tenth_due - first_due,
        TimeDelta::seconds(9),
        "the 10th tick is 9 s after the first:\n{listing}"
    );
    eprintln!(
        "max lateness of {} runs: {}",
        executions.len(),
        millis(max_lateness)
    );
}
