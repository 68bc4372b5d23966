//! Overlap: a run longer than its task's interval is never joined by a
//! second run of the task, and the ticks it misses coalesce into one run.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use quicksilver::{Context, NewTask, Schedule, Status};
use support::{
    describe, due_at, ended, started, with_status, BackgroundRunner, TestDatabase, TestDb,
};

const INTERVAL: TimeDelta = TimeDelta::seconds(2);

#[quicksilver::command]
async fn sleep_3s(_ctx: &Context) {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

// Each run takes 3 s and the task is due every 2 s. A tick that falls
// during a run waits for it, and the next due time is the first tick after
// that late start:
//
//   tick:   0     2     4     6     8     10 s
//   runs:   [A-------][B-------][C-------][D-------]
//           0        3        6        9        12 s
//   due_at: A=0   B=2   C=4         D=8          (6 and 10 coalesce)
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_runs_never_overlap_and_ticks_coalesce(database: TestDatabase);
}
async fn long_runs_never_overlap_and_ticks_coalesce(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let schedule = Schedule::every(2).expect("2 seconds is a valid interval");
    let task = db.add_task(NewTask::new("sleep_3s", schedule)).await;
    // Free lanes, so that only the rule against overlapping runs of one
    // task holds the next run back.
    let runner = BackgroundRunner::start(db.runner("default").concurrency(4));

    let watch_until = Instant::now() + Duration::from_secs(10);
    let mut max_ongoing = 0;
    let mut max_ongoing_listing = String::new();
    while Instant::now() < watch_until {
        let executions = db.executions(task.id).await;
        let ongoing = with_status(&executions, Status::Ongoing);
        if ongoing.len() > max_ongoing {
            max_ongoing = ongoing.len();
            max_ongoing_listing = describe(&executions);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped_at = Utc::now();
    let reason = runner.stop().await;
    assert_eq!(reason, quicksilver::StopReason::Shutdown, "stop reason");
    assert!(
        max_ongoing <= 1,
        "at most one run of the task is ongoing at a time, saw {max_ongoing}:\n{max_ongoing_listing}"
    );

    let executions = db.executions(task.id).await;
    let listing = describe(&executions);
    assert_eq!(
        with_status(&executions, Status::Success).len(),
        executions.len(),
        "every run finishes with success, the last one during shutdown:\n{listing}"
    );

    for pair in executions.windows(2) {
        let (previous, next) = (&pair[0], &pair[1]);
        assert!(
            started(next) >= ended(previous),
            "execution {} started before execution {} ended:\n{listing}",
            next.id,
            previous.id
        );
    }

    let first_due = due_at(&executions[0]);
    for execution in &executions {
        let offset = due_at(execution) - first_due;
        let remainder = offset.num_microseconds().expect("short test")
            % INTERVAL.num_microseconds().expect("short interval");
        assert_eq!(
            remainder,
            0,
            "execution {} is due {} s after the first, off the 2 s grid:\n{listing}",
            execution.id,
            offset.as_seconds_f64()
        );
    }

    for pair in executions.windows(2) {
        let (previous, next) = (&pair[0], &pair[1]);
        let claimed_at = started(previous);
        assert!(
            due_at(next) > claimed_at,
            "execution {} is due at {}, not after the claim of execution {} at {claimed_at}:\n{listing}",
            next.id,
            due_at(next),
            previous.id
        );
        assert!(
            due_at(next) - INTERVAL <= claimed_at,
            "execution {} is due at {}, not at the first tick after the claim of execution {} \
             at {claimed_at}:\n{listing}",
            next.id,
            due_at(next),
            previous.id
        );
    }

    let ticks = (stopped_at - first_due).num_milliseconds() / INTERVAL.num_milliseconds() + 1;
    let runs = i64::try_from(executions.len()).expect("few executions");
    assert!(
        runs < ticks,
        "missed ticks coalesce, so fewer runs than the {ticks} ticks until the stop, got {runs}:\n{listing}"
    );
    assert!(
        runs >= 3,
        "3 s runs back to back fit at least 3 times in 10 s, got {runs}:\n{listing}"
    );
}
