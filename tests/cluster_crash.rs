//! A runner killed with SIGKILL while it runs executions, among three
//! runners of one queue with a lock folder each. The two others find it
//! dead by its heartbeat and record its executions as `killed`. Then they
//! take over its tasks, without running any tick twice.
//!
//! ```text
//! heartbeat every 1 s, dead after 3 s
//! victim   beat .. beat .. beat  X (SIGKILL)
//! others   beat .. beat .. beat .. beat .. beat: victim silent > 3 s -> its runs killed
//! ticks    every task, every second, except the victim's tasks until then
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use quicksilver::{Execution, NewTask, Schedule, Status};
use support::cluster::{
    assert_none, assert_running, by_task, describe_with_runner, duplicate_ticks, heartbeat_env,
    identity_pid, missing_ticks, stop_runners, whole_second_after, with_status,
};

/// Tasks every second, each running for [`RUN_SECONDS`].
const TASKS: usize = 30;

/// How long each run sleeps, in seconds.
const RUN_SECONDS: &str = "0.5";

const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the two others run on after the kill.
const RUN_AFTER_KILL: Duration = Duration::from_secs(10);

/// Returns the ongoing executions whose runner has the process id `pid`.
fn ongoing_of(executions: &[Execution], pid: u32) -> Vec<&Execution> {
    executions
        .iter()
        .filter(|execution| execution.status == Status::Ongoing)
        .filter(|execution| execution.runner.as_deref().and_then(identity_pid) == Some(pid))
        .collect()
}

support::cluster_tests! {
    fn killed_runner_runs_are_reaped(cluster: Cluster) on [sqlite, postgres, mysql] {
        let first_tick = whole_second_after(Duration::from_secs(3));
        let task_ids: Vec<i64> = (0..TASKS)
            .map(|_| {
                let schedule = Schedule::every(1).expect("1 s is a valid interval");
                let task = NewTask::new("sleep_for", schedule)
                    .arguments(["--seconds", RUN_SECONDS])
                    .next_run(first_tick);
                cluster.add_task(task).id
            })
            .collect();

        let args = ["--sleep-duration", "0.5", "--concurrency", "15"];
        let env = heartbeat_env(HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT);
        let mut runners: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|name| cluster.start_runner(name, &args, &env))
            .collect();
        let pids: Vec<u32> = runners.iter().map(|runner| runner.pid()).collect();

        // The victim is the runner with the most runs going, once the
        // runners have served a few ticks.
        std::thread::sleep((first_tick - Utc::now()).to_std().unwrap_or_default());
        std::thread::sleep(Duration::from_secs(4));
        let executions = cluster.wait_for_executions(
            Duration::from_secs(10),
            "an ongoing execution of one of the runners",
            |executions| {
                pids.iter()
                    .any(|pid| !ongoing_of(executions, *pid).is_empty())
            },
        );
        let victim = pids
            .iter()
            .copied()
            .enumerate()
            .max_by_key(|(_, pid)| ongoing_of(&executions, *pid).len())
            .map(|(index, _)| index)
            .expect("three runners");
        let victim_pid = pids[victim];

        runners[victim].signal("KILL");
        let killed_at = Utc::now();
        let status = runners[victim].wait(Duration::from_secs(5));
        assert_eq!(
            status.and_then(|status| status.signal()),
            Some(9),
            "SIGKILL ends the victim, got {status:?}"
        );

        // A dead process records nothing more: what is ongoing now is
        // orphaned.
        let orphans: BTreeSet<i64> = ongoing_of(&cluster.executions(), victim_pid)
            .iter()
            .map(|execution| execution.id)
            .collect();
        assert!(
            !orphans.is_empty(),
            "the victim (pid {victim_pid}) had runs going when it was killed"
        );

        let bound = TimeDelta::from_std(HEARTBEAT_TIMEOUT + HEARTBEAT_INTERVAL)
            .expect("the heartbeat fits");
        let executions = cluster.wait_for_executions(
            (HEARTBEAT_TIMEOUT + HEARTBEAT_INTERVAL) * 3,
            "the victim's runs recorded as no longer ongoing",
            |executions| {
                executions
                    .iter()
                    .filter(|execution| orphans.contains(&execution.id))
                    .all(|execution| execution.status != Status::Ongoing)
            },
        );
        let reaped: Vec<&Execution> = executions
            .iter()
            .filter(|execution| orphans.contains(&execution.id))
            .collect();
        let listing = describe_with_runner(&reaped);
        for execution in &reaped {
            assert_eq!(
                execution.status,
                Status::Killed,
                "the victim's run #{} is recorded killed:\n{listing}",
                execution.id
            );
            assert!(
                execution.output.contains("sent no heartbeat"),
                "the output of #{} names the missing heartbeat:\n{listing}",
                execution.id
            );
        }
        let reaped_at: BTreeMap<i64, DateTime<Utc>> = reaped
            .iter()
            .map(|execution| {
                let task_id = execution.task_id.expect("runs of tasks have a task");
                (task_id, execution.ended.expect("a killed run has an end"))
            })
            .collect();
        let slowest = reaped_at.values().max().copied().expect("orphans exist") - killed_at;
        eprintln!(
            "{}: {} runs of the victim killed at most {slowest} after the kill (bound {bound} \
             plus 1 s for the database)",
            cluster.backend(),
            reaped.len()
        );
        assert!(
            slowest <= bound + TimeDelta::seconds(1),
            "the victim's runs were recorded killed within heartbeat timeout + interval \
             ({bound}) of the kill, plus 1 s; the slowest took {slowest}:\n{listing}"
        );

        std::thread::sleep(RUN_AFTER_KILL);
        let stopped_at = Utc::now();
        let mut survivors: Vec<_> = runners
            .into_iter()
            .enumerate()
            .filter(|(index, _)| *index != victim)
            .map(|(_, runner)| runner)
            .collect();
        assert_running(&mut survivors, "after the kill");
        stop_runners(&mut survivors);

        let executions = cluster.executions();
        let groups = by_task(&executions, &task_ids);
        assert_none(&duplicate_ticks(&groups), "ticks ran more than once");

        // A task of the victim waits until its run is reaped. The first
        // claim after that covers the ticks it missed, and the claim after
        // it falls on the next tick after the reap.
        let missing = missing_ticks(
            &groups,
            first_tick,
            TimeDelta::seconds(1),
            first_tick + TimeDelta::seconds(1),
            stopped_at - TimeDelta::seconds(1),
            |task_id, tick| match reaped_at.get(&task_id) {
                Some(reaped) => {
                    tick > killed_at - TimeDelta::seconds(1)
                        && tick <= *reaped + TimeDelta::seconds(2)
                }
                None => false,
            },
        );
        assert_none(&missing, "ticks never ran");

        let after_reap: Vec<String> = reaped_at
            .iter()
            .filter(|(task_id, reaped)| {
                !groups[task_id].iter().any(|execution| {
                    execution.status == Status::Success
                        && execution.started.is_some_and(|started| started > **reaped)
                })
            })
            .map(|(task_id, _)| format!("task {task_id} has no successful run after the reap"))
            .collect();
        assert_none(&after_reap, "tasks of the victim did not run again");

        let failed: Vec<String> = executions
            .iter()
            .filter(|execution| {
                execution.status != Status::Success && !orphans.contains(&execution.id)
            })
            .map(|execution| {
                format!(
                    "#{} {}: {}",
                    execution.id, execution.status, execution.output
                )
            })
            .collect();
        assert_none(&failed, "runs other than the victim's did not succeed");
        assert!(
            with_status(&executions, Status::Ongoing).is_empty(),
            "no execution is left ongoing after a graceful stop"
        );
    }
}
