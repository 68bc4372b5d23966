//! A SQLite file whose write lock another process holds for 15 s, longer
//! than the runners' 10 s busy timeout: the runners stay up, log the
//! failed writes, and resume when the lock is released. Runs that ended
//! meanwhile are recorded with their real end, and no tick runs twice.
//!
//! ```text
//! t (s)     0 .. 3        3 ............... 18        18 .. 24
//! lock      -             BEGIN EXCLUSIVE ... COMMIT  -
//! runners   claim, run    claims and records fail,    claim, run
//!                         retried
//! ```

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use quicksilver::{NewTask, Schedule, Status};
use support::cluster::{
    assert_none, assert_running, by_task, describe_with_runner, duplicate_ticks, missing_ticks,
    stop_runners, tail, whole_second_after, with_status,
};

/// Tasks every second that return at once.
const BEATS: usize = 10;

/// Tasks every second that sleep 2 s, so that runs are in flight when the
/// lock is taken and end while it is held.
const SLEEPERS: usize = 4;

/// How long the other process holds the write lock.
const LOCK_HELD: Duration = Duration::from_secs(15);

/// How long the runners serve the tasks after the lock is released.
const RUN_AFTER_LOCK: Duration = Duration::from_secs(6);

/// Holds an exclusive transaction on the SQLite file at `path` for
/// `duration` on a thread. Returns when the lock was taken, and the thread,
/// which returns when the lock was released.
fn hold_write_lock(
    path: String,
    duration: Duration,
) -> (DateTime<Utc>, std::thread::JoinHandle<DateTime<Utc>>) {
    let (taken_sender, taken) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut connection = SqliteConnection::establish(&path)
            .unwrap_or_else(|error| panic!("open {path}: {error}"));
        // The runners write often; wait for a write of theirs to end.
        connection
            .batch_execute("PRAGMA busy_timeout = 10000; BEGIN EXCLUSIVE;")
            .unwrap_or_else(|error| panic!("take the write lock of {path}: {error}"));
        taken_sender
            .send(Utc::now())
            .expect("the test waits for the lock");
        std::thread::sleep(duration);
        connection
            .batch_execute("COMMIT;")
            .unwrap_or_else(|error| panic!("release the write lock of {path}: {error}"));
        Utc::now()
    });
    let taken_at = taken
        .recv_timeout(Duration::from_secs(20))
        .expect("the write lock was taken within 20 s");
    (taken_at, holder)
}

support::cluster_tests! {
    fn runners_outlast_held_write_lock(cluster: Cluster) on [sqlite] {
        let first_tick = whole_second_after(Duration::from_secs(3));
        let every_second = || Schedule::every(1).expect("1 s is a valid interval");
        let mut task_ids = Vec::new();
        for _ in 0..BEATS {
            let task = NewTask::new("beat", every_second()).next_run(first_tick);
            task_ids.push(cluster.add_task(task).id);
        }
        let mut sleeper_ids = BTreeSet::new();
        for _ in 0..SLEEPERS {
            let task = NewTask::new("sleep_for", every_second())
                .arguments(["--seconds", "2"])
                .next_run(first_tick);
            let id = cluster.add_task(task).id;
            task_ids.push(id);
            sleeper_ids.insert(id);
        }

        let args = ["--sleep-duration", "0.5", "--concurrency", "10"];
        let mut runners = [
            cluster.start_runner("a", &args, &[]),
            cluster.start_runner("b", &args, &[]),
        ];

        std::thread::sleep((first_tick - Utc::now()).to_std().unwrap_or_default());
        std::thread::sleep(Duration::from_secs(3));
        let path = cluster.sandbox().database_url();
        let (locked_at, holder) = hold_write_lock(path, LOCK_HELD);
        let in_flight: BTreeSet<i64> = with_status(&cluster.executions(), Status::Ongoing)
            .iter()
            .map(|execution| execution.id)
            .collect();
        assert!(
            !in_flight.is_empty(),
            "runs were in flight when the lock was taken"
        );
        let released_at = holder.join().expect("the lock holder did not panic");

        assert_running(&mut runners, "after the lock");
        std::thread::sleep(RUN_AFTER_LOCK);
        let stopped_at = Utc::now();
        stop_runners(&mut runners);

        let logged: Vec<bool> = runners
            .iter()
            .map(|runner| runner.stderr().contains("database is locked"))
            .collect();
        assert!(
            logged.contains(&true),
            "a runner logged its failed writes with the cause `database is locked`:\n{}\n{}",
            tail(&runners[0]),
            tail(&runners[1])
        );

        let executions = cluster.executions();
        assert!(
            with_status(&executions, Status::Ongoing).is_empty(),
            "no execution is left ongoing after a graceful stop"
        );
        let failed: Vec<String> = executions
            .iter()
            .filter(|execution| execution.status != Status::Success)
            .map(|execution| {
                format!(
                    "#{} {}: {}",
                    execution.id, execution.status, execution.output
                )
            })
            .collect();
        assert_none(&failed, "runs did not succeed");

        // The runs in flight ended while the lock was held. Their ends
        // waited in memory and were written afterwards, with the time they
        // really ended.
        let in_flight_runs: Vec<_> = executions
            .iter()
            .filter(|execution| in_flight.contains(&execution.id))
            .collect();
        assert_eq!(
            in_flight_runs.len(),
            in_flight.len(),
            "every run in flight is still recorded"
        );
        let ended_under_lock = in_flight_runs
            .iter()
            .filter(|execution| execution.ended.is_some_and(|ended| ended < released_at))
            .count();
        assert!(
            ended_under_lock > 0,
            "a run in flight is recorded as ended while the lock was held (from {locked_at} to \
             {released_at}):\n{}",
            describe_with_runner(&in_flight_runs)
        );

        let groups = by_task(&executions, &task_ids);
        assert_none(&duplicate_ticks(&groups), "ticks ran more than once");

        // Ticks are checked up to the lock and from shortly after its
        // release. A sleeper's tick may also wait for its run before the
        // lock to end.
        let grace = TimeDelta::seconds(3);
        let missing = missing_ticks(
            &groups,
            first_tick,
            TimeDelta::seconds(1),
            first_tick + TimeDelta::seconds(1),
            stopped_at - TimeDelta::seconds(1),
            |task_id, tick| {
                let under_lock =
                    tick > locked_at - TimeDelta::seconds(1) && tick <= released_at + grace;
                under_lock || sleeper_ids.contains(&task_id)
            },
        );
        assert_none(&missing, "ticks of the tasks that return at once never ran");

        for task_id in &sleeper_ids {
            let resumed = groups[task_id].iter().any(|execution| {
                execution
                    .started
                    .is_some_and(|started| started > released_at + grace)
            });
            assert!(resumed, "sleeping task {task_id} ran again after the lock");
        }
    }
}
