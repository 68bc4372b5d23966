//! Cron schedules under the runner: the seconds field, a time zone, and the
//! days daylight saving starts and ends, on a clock moved to those days.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use quicksilver::{Clock, Context, NewTask, Schedule, Status, TestClock};
use support::{describe, due_at, BackgroundRunner, TestDatabase, TestDb};

#[quicksilver::command]
async fn tick(_ctx: &Context) {}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid RFC 3339 in the test")
        .with_timezone(&Utc)
}

fn cron(expression: &str, zone: &str) -> Schedule {
    Schedule::cron(expression, zone).unwrap_or_else(|error| panic!("{expression}: {error}"))
}

/// Adds a `tick` task whose first run the schedule takes from the test
/// clock, not from the system clock.
async fn add_cron_task(db: &TestDb, clock: &TestClock, schedule: Schedule) -> quicksilver::Task {
    let first = schedule.first_run_at(clock.now());
    db.add_task(NewTask::new("tick", schedule).next_run(first))
        .await
}

support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seconds_field_fires_on_matching_seconds(database: TestDatabase);
}
async fn seconds_field_fires_on_matching_seconds(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let clock = TestClock::new();
    let task = add_cron_task(&db, &clock, cron("*/2 * * * * *", "Asia/Kolkata")).await;
    let runner = BackgroundRunner::start(db.runner("default").clock(clock.clone()));

    let executions = db
        .wait_for_status(task.id, Status::Success, 3, Duration::from_secs(10))
        .await;
    runner.stop().await;

    let listing = describe(&executions);
    for execution in &executions {
        let due = due_at(execution);
        assert_eq!(due.second() % 2, 0, "due on an even second:\n{listing}");
        assert_eq!(due.nanosecond(), 0, "due on a whole second:\n{listing}");
    }
    for pair in executions.windows(2) {
        assert_eq!(
            due_at(&pair[1]) - due_at(&pair[0]),
            TimeDelta::seconds(2),
            "consecutive runs are 2 s apart:\n{listing}"
        );
    }
}

// Europe/Paris, 2026-03-29: at 01:00 UTC the wall clock jumps from 02:00
// to 03:00.
//
//   UTC     00:59:58  00:59:59 | 01:00:00  01:00:01
//   Paris   01:59:58  01:59:59 | 03:00:00  03:00:01
//   * * *      run       run   |   run       run      every second, no gap
//   02:30                      |   run                once, at the end of the gap
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spring_forward_loses_and_doubles_nothing(database: TestDatabase);
}
async fn spring_forward_loses_and_doubles_nothing(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let clock = TestClock::starting_at(utc("2026-03-29T00:59:57Z"));
    let every_second = add_cron_task(&db, &clock, cron("* * * * * *", "Europe/Paris")).await;
    let in_gap = add_cron_task(&db, &clock, cron("0 30 2 * * *", "Europe/Paris")).await;
    let runner = BackgroundRunner::start(db.runner("default").clock(clock.clone()).concurrency(2));

    let seconds = db
        .wait_until(
            every_second.id,
            Duration::from_secs(15),
            "a run due at 01:00:03Z",
            |runs| {
                runs.iter()
                    .any(|run| due_at(run) >= utc("2026-03-29T01:00:03Z"))
            },
        )
        .await;
    let gap = db
        .wait_for_status(in_gap.id, Status::Success, 1, Duration::from_secs(5))
        .await;
    runner.stop().await;

    let listing = describe(&seconds);
    for pair in seconds.windows(2) {
        assert_eq!(
            due_at(&pair[1]) - due_at(&pair[0]),
            TimeDelta::seconds(1),
            "every-second runs stay 1 s apart across the jump:\n{listing}"
        );
    }
    assert!(
        seconds
            .iter()
            .any(|run| due_at(run) == utc("2026-03-29T01:00:00Z")),
        "the first second after the jump runs:\n{listing}"
    );

    let gap_listing = describe(&gap);
    assert_eq!(
        gap.len(),
        1,
        "02:30 runs once on the short day:\n{gap_listing}"
    );
    assert_eq!(
        due_at(&gap[0]),
        utc("2026-03-29T01:00:00Z"),
        "02:30, which the jump skips, runs when the gap ends (03:00 Paris):\n{gap_listing}"
    );
    assert_eq!(
        db.task(in_gap.id).await.next_run,
        utc("2026-03-30T00:30:00Z"),
        "the next run is 02:30 Paris summer time the next day"
    );
}

// Europe/Paris, 2026-10-25: at 01:00 UTC the wall clock goes back from
// 03:00 to 02:00, so 02:30 shows twice.
//
//   UTC     00:30:00            01:30:00
//   Paris   02:30 (summer)      02:30 (winter)
//   02:30      run                 no run          first pass only
support::backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fall_back_runs_fixed_time_once(database: TestDatabase);
}
async fn fall_back_runs_fixed_time_once(database: TestDatabase) {
    let db = TestDb::open(database).await;
    let clock = TestClock::starting_at(utc("2026-10-25T00:29:58Z"));
    let repeated = add_cron_task(&db, &clock, cron("0 30 2 * * *", "Europe/Paris")).await;
    let quarterly = add_cron_task(&db, &clock, cron("0 */15 * * * *", "Europe/Paris")).await;
    let runner = BackgroundRunner::start(db.runner("default").clock(clock.clone()).concurrency(2));

    let first = db
        .wait_for_status(repeated.id, Status::Success, 1, Duration::from_secs(10))
        .await;
    assert_eq!(
        due_at(&first[0]),
        utc("2026-10-25T00:30:00Z"),
        "02:30 runs in its first pass:\n{}",
        describe(&first)
    );
    assert_eq!(
        db.task(repeated.id).await.next_run,
        utc("2026-10-26T01:30:00Z"),
        "the next run skips the second 02:30 and is 02:30 winter time the next day"
    );

    // Jump to just before the second 02:30 and let it pass.
    clock.set(utc("2026-10-25T01:29:58Z"));
    let quarters = db
        .wait_until(
            quarterly.id,
            Duration::from_secs(10),
            "the run due at 01:30Z",
            |runs| {
                runs.iter()
                    .any(|run| due_at(run) == utc("2026-10-25T01:30:00Z"))
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    runner.stop().await;

    let after = db.executions(repeated.id).await;
    assert_eq!(
        after.len(),
        1,
        "02:30 did not run again in the repeated hour:\n{}",
        describe(&after)
    );

    let listing = describe(&quarters);
    let dues: Vec<DateTime<Utc>> = quarters.iter().map(due_at).collect();
    assert_eq!(
        dues.first().copied(),
        Some(utc("2026-10-25T00:30:00Z")),
        "the quarter-hour task starts at its first tick:\n{listing}"
    );
    assert!(
        dues.windows(2).all(|pair| pair[0] < pair[1]),
        "quarter-hour runs are in order:\n{listing}"
    );
}
