//! Three runner processes of one queue on one database, each with a lock
//! folder of its own as on separate hosts: every due tick of every task
//! runs exactly once, and none is skipped.
//!
//! ```text
//! tick         T0    T0+1  T0+2  ...  T0+59
//! task 1..50   run   run   run   ...  run     (one runner each, any of 3)
//! ```

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use quicksilver::{NewTask, Schedule, Status};
use support::cluster::{
    assert_none, assert_running, by_task, duplicate_ticks, missing_ticks, runs_by_pid,
    stop_runners, whole_second_after, with_status,
};

/// Tasks every second.
const TASKS: usize = 50;

/// How long the runners serve the tasks.
const RUN_FOR: Duration = Duration::from_secs(60);

support::cluster_tests! {
    fn three_runners_run_each_tick_once(cluster: Cluster) on [sqlite, postgres, mysql] {
        let first_tick = whole_second_after(Duration::from_secs(3));
        let task_ids: Vec<i64> = (0..TASKS)
            .map(|_| {
                let schedule = Schedule::every(1).expect("1 s is a valid interval");
                cluster
                    .add_task(NewTask::new("beat", schedule).next_run(first_tick))
                    .id
            })
            .collect();

        let args = ["--sleep-duration", "0.5", "--concurrency", "10"];
        let mut runners: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|name| cluster.start_runner(name, &args, &[]))
            .collect();
        let started_late = Utc::now() - first_tick;
        assert!(
            started_late < TimeDelta::zero(),
            "the runners started {started_late} after the first tick; raise the lead"
        );

        std::thread::sleep(RUN_FOR + Duration::from_secs(3));
        assert_running(&mut runners, &format!("after {RUN_FOR:?}"));
        let stopped_at = Utc::now();
        stop_runners(&mut runners);

        let executions = cluster.executions();
        let groups = by_task(&executions, &task_ids);
        assert_none(&duplicate_ticks(&groups), "ticks ran more than once");

        // The first second is left out: a runner may still be starting.
        let last_tick = first_tick + TimeDelta::from_std(RUN_FOR).expect("60 s fits");
        let missing = missing_ticks(
            &groups,
            first_tick,
            TimeDelta::seconds(1),
            first_tick + TimeDelta::seconds(1),
            last_tick.min(stopped_at - TimeDelta::seconds(1)),
            |_, _| false,
        );
        assert_none(&missing, "ticks never ran");

        let not_successful: Vec<String> = executions
            .iter()
            .filter(|execution| execution.status != Status::Success)
            .map(|execution| {
                format!(
                    "#{} {}: {}",
                    execution.id, execution.status, execution.output
                )
            })
            .collect();
        assert_none(&not_successful, "executions did not succeed");
        assert!(
            with_status(&executions, Status::Ongoing).is_empty(),
            "no execution is left ongoing after a graceful stop"
        );

        let per_runner = runs_by_pid(&executions);
        eprintln!(
            "{} executions by runner pid: {per_runner:?}",
            cluster.backend()
        );
        assert!(
            per_runner.len() >= 2,
            "the runs are shared by at least two of the three runners, got {per_runner:?}"
        );
    }
}
