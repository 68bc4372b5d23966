//! Every connection to the database closed under two runners, several
//! times while they run, as a server restart does. The runners carry on
//! without a restart of their own and no tick runs twice. No tick is lost
//! beyond the moment of each cut, and no execution is left `ongoing` once
//! they stop.
//!
//! The server itself keeps running, because other tests share it: the
//! test closes the connections of its own database only, with
//! `pg_terminate_backend` on PostgreSQL and `KILL CONNECTION` on MySQL.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::{NewTask, Schedule, Status};
use support::cluster::{
    assert_none, assert_running, by_task, duplicate_ticks, heartbeat_env, identity_pid,
    missing_ticks, stderr_lines_with, stop_runners, whole_second_after, with_status,
};

/// Tasks every second that return at once.
const BEATS: usize = 10;

/// Tasks every second that sleep [`SLEEP_SECONDS`], so that runs are in
/// flight at each cut.
const SLEEPERS: usize = 10;

/// How long each sleeping run takes, in seconds.
const SLEEP_SECONDS: &str = "0.4";

/// The cuts, each this long after the previous one, so that they fall at
/// different moments of the second.
const CUT_INTERVALS: [Duration; 6] = [
    Duration::from_millis(1300),
    Duration::from_millis(1700),
    Duration::from_millis(1100),
    Duration::from_millis(1900),
    Duration::from_millis(1500),
    Duration::from_millis(1000),
];

/// How long a cut may keep a task from running: a claim retries after
/// 100 ms, then 200 ms and so on, and the first claim after the cut
/// covers the ticks it missed.
const RECOVERY: TimeDelta = TimeDelta::seconds(3);

/// How long the runners serve the tasks after the last cut.
const RUN_AFTER_CUTS: Duration = Duration::from_secs(6);

support::cluster_tests! {
    fn runners_survive_closed_connections(cluster: Cluster) on [postgres, mysql] {
        let first_tick = whole_second_after(Duration::from_secs(3));
        let every_second = || Schedule::every(1).expect("1 s is a valid interval");
        let mut task_ids = Vec::new();
        for _ in 0..BEATS {
            let task = NewTask::new("beat", every_second()).next_run(first_tick);
            task_ids.push(cluster.add_task(task).id);
        }
        for _ in 0..SLEEPERS {
            let task = NewTask::new("sleep_for", every_second())
                .arguments(["--seconds", SLEEP_SECONDS])
                .next_run(first_tick);
            task_ids.push(cluster.add_task(task).id);
        }

        let env = heartbeat_env(Duration::from_secs(1), Duration::from_secs(5));
        let args = ["--sleep-duration", "0.5", "--concurrency", "10"];
        let mut runners = [
            cluster.start_runner("a", &args, &env),
            cluster.start_runner("b", &args, &env),
        ];
        let pids = [runners[0].pid(), runners[1].pid()];

        std::thread::sleep((first_tick - Utc::now()).to_std().unwrap_or_default());
        std::thread::sleep(Duration::from_secs(3));
        let mut cuts: Vec<DateTime<Utc>> = Vec::new();
        let mut closed: Vec<usize> = Vec::new();
        for interval in CUT_INTERVALS {
            closed.push(cluster.close_connections());
            cuts.push(Utc::now());
            std::thread::sleep(interval);
        }
        eprintln!(
            "{}: connections closed by each cut: {closed:?}",
            cluster.backend()
        );
        assert!(closed[0] > 0, "the first cut closed no connection");
        let last_cut = *cuts.last().expect("cuts were made");
        std::thread::sleep(RUN_AFTER_CUTS);

        assert_running(&mut runners, "after the cuts");
        let stopped_at = Utc::now();
        stop_runners(&mut runners);
        let retries: usize = runners
            .iter()
            .map(|runner| stderr_lines_with(runner, "retrying").len())
            .sum();

        let executions = cluster.executions();
        assert!(
            with_status(&executions, Status::Ongoing).is_empty(),
            "no execution is left ongoing after a graceful stop:\n{}",
            support::describe(&with_status(&executions, Status::Ongoing))
        );
        let groups = by_task(&executions, &task_ids);
        assert_none(&duplicate_ticks(&groups), "ticks ran more than once");

        let missing = missing_ticks(
            &groups,
            first_tick,
            TimeDelta::seconds(1),
            first_tick + TimeDelta::seconds(1),
            stopped_at - TimeDelta::seconds(1),
            |_, tick| {
                cuts.iter()
                    .any(|cut| tick > *cut - TimeDelta::seconds(1) && tick <= *cut + RECOVERY)
            },
        );
        assert_none(&missing, "ticks never ran outside the cuts");

        // A run may end `killed` only when a cut lost the result of its
        // claim's commit, so that its runner never started it.
        let failed: Vec<String> = executions
            .iter()
            .filter(|execution| execution.status != Status::Success)
            .filter(|execution| {
                execution.status != Status::Killed || !execution.output.contains("connection")
            })
            .map(|execution| {
                format!(
                    "#{} {}: {}",
                    execution.id, execution.status, execution.output
                )
            })
            .collect();
        assert_none(&failed, "runs failed");
        let killed = with_status(&executions, Status::Killed).len();

        // Both runners claimed again after the last cut, on their own.
        let recovered_by: BTreeSet<u32> = executions
            .iter()
            .filter(|execution| {
                execution
                    .started
                    .is_some_and(|started| started > last_cut + RECOVERY)
            })
            .filter_map(|execution| execution.runner.as_deref().and_then(identity_pid))
            .collect();
        for pid in pids {
            assert!(
                recovered_by.contains(&pid),
                "the runner with pid {pid} ran tasks after the last cut, got runs of \
                 {recovered_by:?}"
            );
        }
        eprintln!(
            "{}: {} cuts, {} executions, {killed} killed because a cut took their claim; \
             {retries} retries logged",
            cluster.backend(),
            cuts.len(),
            executions.len()
        );
    }
}
