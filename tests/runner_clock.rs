//! Wall-clock jumps: after a jump forward the missed ticks coalesce into one
//! run, and after a jump back the task keeps its cadence instead of waiting
//! for the wall clock to catch up.
//!
//! The runner reads the time from a `TestClock`, which runs at real speed
//! and jumps when the test moves it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::{Clock, Context, Execution, NewTask, Schedule, Status, TestClock};
use support::{describe, due_at, millis, started, BackgroundRunner, TestDatabase, TestDb};

const INTERVAL: TimeDelta = TimeDelta::seconds(2);

/// The largest accepted delay between a due time and the start of its run.
const MAX_LATENESS: TimeDelta = TimeDelta::milliseconds(200);

const WAIT: Duration = Duration::from_secs(10);

#[quicksilver::command]
async fn heartbeat(ctx: &Context) {
    ctx.write_line("beat");
}

/// Adds a `heartbeat` task every 2 s, first due at the clock's now.
async fn add_heartbeat(db: &TestDb, clock: &TestClock) -> quicksilver::Task {
    let schedule = Schedule::every(2).expect("2 seconds is a valid interval");
    db.add_task(NewTask::new("heartbeat", schedule).next_run(clock.now()))
        .await
}

/// Checks that the executions are due 2 s apart and each started soon after
/// its due time.
fn assert_cadence(executions: &[&Execution], listing: &str) {
    for pair in executions.windows(2) {
        let (previous, next) = (pair[0], pair[1]);
        assert_eq!(
            due_at(next) - due_at(previous),
            INTERVAL,
            "execution {} is due 2 s after execution {}:\n{listing}",
            next.id,
            previous.id
        );
    }
    for execution in executions {
        let lateness = started(execution) - due_at(execution);
        assert!(
            lateness >= TimeDelta::zero() && lateness <= MAX_LATENESS,
            "execution {} started {} after its due time:\n{listing}",
            execution.id,
            millis(lateness)
        );
    }
}

/// Returns whether `offset` is a whole number of intervals.
fn on_grid(offset: TimeDelta) -> bool {
    let micros = offset.num_microseconds().expect("offsets of hours fit");
    micros % INTERVAL.num_microseconds().expect("2 s fits") == 0
}

//   real:    0     2   2.5              4      6  s
//   clock:   T    T+2  T+2.5 → J=T+3h+2.5  T+3h+4  T+3h+6
//   runs:    x     x      x (catch-up,      x      x
//                           due T+4)
//
// The ticks between T+4 and J, 5400 of them, coalesce into the catch-up
// run. The next runs stay on the grid of T.
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forward_jump_runs_once_then_keeps_cadence(database: TestDatabase);
}
async fn forward_jump_runs_once_then_keeps_cadence(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let clock = TestClock::new();
    let task = add_heartbeat(&db, &clock).await;
    let first_due = task.next_run;
    let runner = BackgroundRunner::start(db.runner("default").clock(clock.clone()));

    let before = db
        .wait_for_status(task.id, Status::Success, 2, WAIT)
        .await
        .len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    clock.advance(TimeDelta::hours(3));
    let jumped_at = clock.now();

    let executions = db
        .wait_for_status(task.id, Status::Success, before + 3, WAIT)
        .await;
    runner.stop().await;
    let listing = describe(&executions);

    let after: Vec<&Execution> = executions
        .iter()
        .filter(|execution| started(execution) >= jumped_at)
        .collect();
    let catch_up: Vec<&Execution> = after
        .iter()
        .copied()
        .filter(|execution| due_at(execution) < jumped_at)
        .collect();
    assert_eq!(
        catch_up.len(),
        1,
        "exactly one run serves the 3 hours of missed ticks:\n{listing}"
    );
    let catch_up_delay = started(catch_up[0]) - jumped_at;
    assert!(
        catch_up_delay <= MAX_LATENESS,
        "the catch-up run started {} after the jump:\n{listing}",
        millis(catch_up_delay)
    );
    assert!(
        after.len() <= 4,
        "about 3.5 s after the jump, 3 runs are expected, got {}:\n{listing}",
        after.len()
    );

    let on_cadence: Vec<&Execution> = after
        .iter()
        .copied()
        .filter(|execution| due_at(execution) >= jumped_at)
        .collect();
    assert!(
        on_cadence.len() >= 2,
        "runs go on every 2 s after the catch-up:\n{listing}"
    );
    for execution in &on_cadence {
        let offset = due_at(execution) - first_due;
        assert!(
            on_grid(offset),
            "execution {} is due {} s after the first tick, off the 2 s grid:\n{listing}",
            execution.id,
            offset.as_seconds_f64()
        );
    }
    assert_cadence(&on_cadence, &listing);
}

//   real:    0     2   2.5                 4       6       8  s
//   clock:   T    T+2  T+2.5 → J=T-1d+2.5  T-1d+4  T-1d+6  T-1d+8
//   runs:    x     x                        x       x       x
//
// Without following the jump, the next run would stay at T+4, a day away.
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backward_jump_keeps_cadence_without_stall(database: TestDatabase);
}
async fn backward_jump_keeps_cadence_without_stall(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let clock = TestClock::new();
    let task = add_heartbeat(&db, &clock).await;
    let runner = BackgroundRunner::start(db.runner("default").clock(clock.clone()));

    let before = db.wait_for_status(task.id, Status::Success, 2, WAIT).await;
    let last_before = before
        .iter()
        .map(|execution| execution.id)
        .max()
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    clock.advance(TimeDelta::days(-1));
    let jumped_at: DateTime<Utc> = clock.now();

    let executions = db
        .wait_until(task.id, WAIT, "3 runs after the jump back", |executions| {
            executions
                .iter()
                .filter(|execution| {
                    execution.id > last_before && execution.status == Status::Success
                })
                .count()
                >= 3
        })
        .await;
    runner.stop().await;
    let listing = describe(&executions);

    let after: Vec<&Execution> = executions
        .iter()
        .filter(|execution| execution.id > last_before)
        .collect();
    let first_delay = started(after[0]) - jumped_at;
    assert!(
        first_delay <= INTERVAL + MAX_LATENESS,
        "the first run after the jump back started {} after it, not within one interval:\n{listing}",
        millis(first_delay)
    );
    assert!(
        after.len() <= 4,
        "about 5.5 s after the jump, 3 runs are expected, got {}:\n{listing}",
        after.len()
    );
    for execution in &after {
        assert!(
            due_at(execution) < jumped_at + TimeDelta::minutes(1),
            "execution {} is due on the clock before the jump back:\n{listing}",
            execution.id
        );
    }
    assert_cadence(&after, &listing);

    let stored = db.task(task.id).await;
    let ahead = stored.next_run - clock.now();
    assert!(
        ahead <= INTERVAL,
        "the task's next run is {} ahead of the clock, more than one interval",
        millis(ahead)
    );
}
